"""The fixture texts for the embedding reference (tests/fixtures/embedding_reference.json).

Written for this fixture (no real songs): short lines, verses, long lyrics past
the 256-token window, emoji, non-Latin scripts, accents, whitespace-only and
punctuation runs, plus texts on both sides of the one-window boundary.
Imported by make_reference.py (throwaway venv) only; the tests read the JSON.
"""

from __future__ import annotations

VERSES = [
    """[Verse 1]
Woke up on the east side, sirens for an alarm clock
Mama on a double shift, I'm counting every car stop
Notebook in my backpack, rhymes folded like a pocket knife
Teacher said I talk too much, I said I'm talking for my life
Corner store philosophers debating who the realest is
Meanwhile I'm just trying to turn these bars into a business""",
    """[Verse 2]
Came up out the basement with a sampler and a dream
Forty dollar microphone, the neighbors heard me scream
Every beat a blueprint, every verse another brick
Built a house of metaphors the critics couldn't pick
Now they want a feature, now they calling me a king
But I remember winters when the heat ain't do a thing""",
    """[Chorus]
We don't stop, we don't sleep, we just climb (climb)
Every block got a story, every story got a rhyme (rhyme)
From the bottom to the top, it's a matter of time
Yeah, we don't stop, we don't sleep, we just shine""",
    """[Verse 3]
Rolling through the city with the windows halfway down
Bass knocking like a landlord every corner of the town
I got ghosts in my rearview and angels on my chain
Praying that the sunshine gonna wash away the rain
Homie caught a case and now he writing me in ink
Told him keep his head up, told him freedom's on the brink""",
    """[Bridge]
If the money fades and the lights go dim
Will you still know my name, will you still sing the hymn?
I been on the edge, I been out on a limb
Tryna make a sound that they can't forget, they can't forget""",
    """[Verse 4]
Grandpa played the saxophone in smoky jazz saloons
I inherited the rhythm and the melancholy tunes
Now I flip his records into loops at 2 a.m.
Every crackle on the vinyl is a conversation with him
People ask me why I rap about the past so much
'Cause the future's built on memories you're scared to touch""",
    """[Verse 5]
Spit it like a prophecy, the flow is astronomy
Stars in my economy, I'm breaking down the honesty
Cats wanna copy me, but never got the chemistry
Mic is like a remedy, I'm healing with the energy
Ayy, from the block to the stage in a single leap
Promises I made to myself, I intend to keep""",
    """[Outro]
Yeah... this one's for the kids on the bus with headphones
Writing in the margins, making anthems out of dead zones
Peace to the corner, peace to the crew
Last verse, first light, we brand new""",
]

SHORT = [
    "Hello world",
    "Money on my mind, mind on my money",
    "I'm the illest MC to ever touch a microphone, no cap",
    "Started from the bottom now we here",
    "BARS!!! BARS!!! BARS!!!",
    "Y'all ain't ready for this... uh, uh, check it: 1, 2, 1, 2",
    "🔥🔥🔥💯🎤",
    "Drip so cold 🥶💎 I need a coat, no joke 😂",
    "Я читаю рэп на районе, где зима длится полгода",
    "東京の夜、ビートが止まらない。マイクを握って叫ぶ",
    "الكلمات سلاحي والإيقاع قلبي",
    "Ça va être la fête ce soir, déjà vu à Montréal, señor",
    "Über den Dächern, Straßenrap mit Köpfchen",
    "저 하늘 위로 날아가 꿈을 향해",
    "हम भी रैप करते हैं, दिल से",
    "Καλησπέρα, το ρυθμό μας δεν σταματά",
    "   \n\t  ",
    "",
    "!!!!!!!!!!??????......,,,,;;;;",
    "www.mixtape-drop.com/vol2 #NewMusic @dj_kool 2026",
    "A",
]


def texts() -> list[str]:
    """Every fixture text, in a fixed order."""
    long_one = "\n\n".join([VERSES[0], VERSES[2], VERSES[1], VERSES[2], VERSES[3], VERSES[2]])
    long_two = "\n\n".join([VERSES[3], VERSES[4], VERSES[5], VERSES[6], VERSES[4]])
    long_mixed = "\n\n".join(
        [
            VERSES[6],
            "🔥🔥 Йо, это не конец 🔥🔥",
            VERSES[0],
            "東京から ロンドンまで",
            VERSES[5],
            VERSES[7],
        ]
    )
    # The whole songbook: well past four windows.
    very_long = "\n\n".join(VERSES * 3)
    # 254 one-piece tokens fill exactly one window; 255 need two.
    boundary_in = " ".join(["yeah"] * 254)
    boundary_out = " ".join(["yeah"] * 255)
    return [
        *SHORT,
        *VERSES,
        long_one,
        long_two,
        long_mixed,
        very_long,
        boundary_in,
        boundary_out,
    ]
