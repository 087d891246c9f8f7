"""Original word material for the synthetic corpus (written for this repo).

A bar is built as ``<fragment> <lead-in> <end word>``: a themed fragment, a
lead-in ending just before a noun, and an end word from a rhyme family. The
lists are sized so bars average about nine words, and they carry slang
("finna", "y'all", "'bout", "nothin'"), profanity (explicit fragments only)
and keywords of the themes the analyzers look for.
"""

from __future__ import annotations

THEMES: tuple[str, ...] = ("money", "violence", "love", "struggle", "party", "fame")

# Clean fragments per theme.
FRAGMENTS: dict[str, tuple[str, ...]] = {
    "money": (
        "racks on racks",
        "count the paper twice",
        "bands in my pocket",
        "diamonds on my wrist",
        "cash rules everything",
        "made a million dollars",
        "stackin' bread since twelve",
        "gold chains swingin'",
        "my bank account is heavy",
        "rich before the summer",
        "check came in",
        "money on my mind",
    ),
    "violence": (
        "opps keep talkin'",
        "smoke in the air",
        "pull up with the strap",
        "blood on the pavement",
        "we at war",
        "one shot and they scatter",
        "never fight fair",
        "grave dug deep",
        "trigger finger itchin'",
        "beef don't die",
        "killers on the corner",
    ),
    "love": (
        "baby hold me close",
        "my heart beats for you",
        "kiss me slow",
        "you my queen forever",
        "love me like you mean it",
        "girl you beautiful",
        "miss you every evening",
        "sweet talk all night",
        "together we unbreakable",
        "darling don't you leave",
    ),
    "struggle": (
        "mama cried at night",
        "broke and hungry",
        "grindin' through the pain",
        "rent due again",
        "nothin' in the fridge",
        "tears on the pillow",
        "pressure on my chest",
        "lost my homie young",
        "survive another winter",
        "hustle just to eat",
        "scars on my knuckles",
    ),
    "party": (
        "pop another bottle",
        "club jumpin' tonight",
        "dance until the sunrise",
        "champagne everywhere",
        "turnt up with the crew",
        "shots on the table",
        "weekend never ends",
        "dj play it loud",
        "vibes too lit",
        "celebrate the win",
    ),
    "fame": (
        "cameras flashin'",
        "my name in lights",
        "fans screamin' loud",
        "platinum on the wall",
        "headline every show",
        "legend in the makin'",
        "spotlight on me",
        "crown on my head",
        "famous overnight",
        "stars know my number",
    ),
}

# Extra fragments for explicit tracks, by theme.
EXPLICIT: dict[str, tuple[str, ...]] = {
    "money": ("fuck a budget", "rich as shit", "damn these bills paid"),
    "violence": ("fuck the opps", "bitch I'm dangerous", "talkin' shit get you hurt"),
    "love": ("damn you fine", "fuck what they sayin'"),
    "struggle": ("shit was hard", "damn near starvin'", "fuck the struggle"),
    "party": ("shake that ass", "drunk as hell", "fuckin' up the club"),
    "fame": ("bitch I'm famous", "fuck a rumor", "motherfuckers watchin'"),
}

# General fragments any bar may use.
GENERAL: tuple[str, ...] = (
    "yeah",
    "uh",
    "y'all ain't ready",
    "I'm finna go",
    "tell 'em how it is",
    "real ones know",
    "look",
    "no cap",
    "tryna make it",
    "from the bottom",
    "I been 'bout it",
    "shorty say",
)

# Lead-ins that end right before the end word.
LEAD_INS: tuple[str, ...] = (
    "in the",
    "for the",
    "with the",
    "all about the",
    "never scared of the",
    "came up from the",
    "ridin' through the",
    "chasin' after the",
    "they can't stop the",
    "I'm married to the",
    "livin' for the",
    "shinin' like the",
    "countin' up the",
    "prayin' for the",
    "ain't worried 'bout the",
    "runnin' from the",
    "straight to the",
    "rep it for the",
)

# Candidate end words; grouped into rhyme families by CMU rhyming part at
# import time, and only families with at least two words are used.
END_WORDS: tuple[str, ...] = tuple(
    """
    night light fight sight height kite
    game fame name flame frame shame claim
    pain rain chain lane brain train vein champagne plane cane
    cash stash flash crash splash trash
    street beat heat seat concrete elite fleet sheet
    gold fold mold road
    block clock rock stock dock lock
    ring king thing bling spring sting wing swing
    throne phone zone bone stone chrome
    star car bar scar jar guitar
    dream team cream scheme stream beam steam
    life knife wife strife
    smoke joke coke oak
    money honey
    hustle muscle
    heart art start part chart
    war floor door store score shore
    grind mind kind blind
    stage page cage rage wage
    love glove dove
    crew view shoe truth
    crown town
    city pity
    pressure treasure measure
    """.split()
)

ARTIST_PREFIXES: tuple[str, ...] = (
    "Lil",
    "Young",
    "Big",
    "MC",
    "DJ",
    "King",
    "Yung",
    "Kid",
    "Lord",
    "Saint",
    "Baby",
    "Smooth",
)
ARTIST_CORES: tuple[str, ...] = tuple(
    """
    Vandal Cipher Stacks Nova Ghost Blaze Jinx Rook Flex Rebel Prophet Ace
    Onyx Ledger Drifter Cobalt Marrow Tempo Vapor Quill Static Ember Halo
    Granite Pharaoh Nomad Riddle Saber Tundra Velvet Wraith Zephyr Bishop
    Comet Dagger Falcon Gravel Harbor Ivory Jackal Kestrel Lotus Mantis
    """.split()
)
ARTIST_SUFFIXES: tuple[str, ...] = ("", "", "", " Da Kid", " Tha Great", " Supreme", " Jr")

ALBUM_WORDS: tuple[str, ...] = tuple(
    """
    Midnight Concrete Dreams Gold Tapes Summer Chronicles Hustle Diaries
    Avenue Static Crown Letters Underground Season Blueprint Heat Rain
    Harbor Signals Velvet Ashes Echoes Frontline Skyline
    """.split()
)
