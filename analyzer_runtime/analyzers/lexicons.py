"""Small built-in word lists for the algorithmic analyzer.

Words are in `text.normalize_word` form (lower case, "goin'" -> "going").
Lists are deliberately short and transparent: a feature built on them is a
keyword density, not a classifier, and the docstrings say so.
"""

from __future__ import annotations

# Common English profanity as it appears in rap lyrics. Slurs are left out on
# purpose: the repo ships no slur list, and their absence only lowers the ratio.
PROFANITY: frozenset[str] = frozenset(
    """
    fuck fucks fucked fucker fuckers fucking motherfucker motherfuckers
    shit shits shitty bullshit bitch bitches ass asses asshole assholes
    damn goddamn dick dicks pussy hoe hoes cunt bastard bastards piss pissed
    crap thot thots
    """.split()
)

THEMES: dict[str, frozenset[str]] = {
    name: frozenset(words.split())
    for name, words in {
        "money": """
            money cash paper bands racks stacks bank rich dollar dollars dough
            bread guap bills check checks millionaire billionaire wealth profit
            paid pay diamonds gold rolex chain chains ice benz bentley bag bags
            hundreds riches vault safe invest
        """,
        "violence": """
            gun guns glock pistol trigger shot shots shoot shooting bullet bullets
            kill killed killer murder blood bleed war fight fighting knife
            beef opps smoke strap choppa pull blast dead die dying grave
            revenge enemy enemies violence attack
        """,
        "love": """
            love lover loving baby babe heart hearts kiss kisses darling queen
            romance forever touch miss together soulmate girl wife honey
            sweet beautiful adore desire passion
        """,
        "struggle": """
            struggle struggling pain hurt broke poverty hungry starving tears
            cry crying grind grinding hustle hustling survive surviving
            stress pressure lost alone fall fell suffer trouble hard
            rent eviction debt sorrow scars rain
        """,
        "party": """
            party club dance dancing drink drinking shots bottle bottles
            champagne toast celebrate celebration turnt lit vibe vibes night
            weekend dj speakers bounce crowd faded wild
        """,
        "fame": """
            fame famous star stars spotlight camera cameras fans crowd stage
            legend legendary icon celebrity platinum grammy charts headline
            name throne crown king famed interview paparazzi
        """,
        "drugs": """
            weed kush blunt blunts joint high lean pills pill molly coke
            dope dealer dealing trap trapping plug zip pack smoke
        """,
        "street": """
            street streets block hood corner city projects gang gangs crew
            squad homies homie concrete alley avenue cops police jail prison
            cell court bail
        """,
    }.items()
}
