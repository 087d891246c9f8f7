"""The fake provider's sampling noise (answers.sampled): answers that vary between
requests like a model sampled at temperature > 0, reproducibly for one seed."""

from __future__ import annotations

import json
import random

from rap_devtools.fake_llm import answers

TRACK = {"id": "t1", "artist": "A", "lyrics": "money cash love pain hate struggle bands"}


def test_no_noise_is_the_expected_answer() -> None:
    e = answers.expected(TRACK)
    assert answers.sampled(e, random.Random(1), sentiment_noise=0.0, theme_noise=0.0) == e


def test_full_noise_changes_the_sentiment_and_one_theme() -> None:
    e = answers.expected(TRACK)
    for seed in range(20):
        s = answers.sampled(e, random.Random(seed), sentiment_noise=1.0, theme_noise=1.0)
        assert s["sentiment"] != e["sentiment"]
        assert s["sentiment"] in answers.SENTIMENTS
        assert len(s["themes"]) == len(e["themes"])
        assert len(set(s["themes"]) - set(e["themes"])) == 1


def test_answers_vary_between_requests_and_repeat_for_one_seed() -> None:
    tracks = [{**TRACK, "id": str(i)} for i in range(50)]

    def sentiments(request_seed: str) -> list[str]:
        content, _, _ = answers.answer(
            tracks, repair=False, rng=random.Random(request_seed), sentiment_noise=0.3
        )
        assert content is not None
        return [e["sentiment"] for e in json.loads(content)["results"]]

    first, again, other = sentiments("0:1"), sentiments("0:1"), sentiments("0:2")
    assert first == again
    assert first != other
    honest = answers.expected(TRACK)["sentiment"]
    changed = sum(s != honest for s in first)
    assert 5 <= changed <= 25  # ~15 of 50 at p = 0.3
