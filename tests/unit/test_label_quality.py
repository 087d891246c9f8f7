"""The label-quality numbers of `report llm` (reports/label_quality.py, reference.py)
against values computed by hand, and kappa against scikit-learn's."""

from __future__ import annotations

import random
from pathlib import Path

import pytest
from sklearn.metrics import cohen_kappa_score

from analyzer_runtime.reports import ReportError, reference
from analyzer_runtime.reports.consistency import repeat_spec
from analyzer_runtime.reports.label_quality import (
    SENTIMENTS,
    Answer,
    ReferenceRow,
    Repeated,
    cascade_agreement,
    cohen_kappa,
    consistency,
    failure_kind,
    reference_agreement,
    schema_validity,
)


def test_kappa_of_the_textbook_example() -> None:
    # 50 items: 20 both positive, 15 both negative, 5 + 10 disagreements.
    # p_o = 35/50 = 0.7; p_e = (25*30 + 25*20) / 50^2 = 0.5; kappa = 0.2 / 0.5 = 0.4.
    pairs = (
        [("positive", "positive")] * 20
        + [("positive", "negative")] * 5
        + [("negative", "positive")] * 10
        + [("negative", "negative")] * 15
    )
    k = cohen_kappa(pairs)
    assert k["kappa"] == 0.4
    assert k["accuracy"] == 0.7
    assert k["n"] == 50
    assert k["per_class"]["positive"] == {"reference": 25, "llm": 30, "both": 20}
    assert k["per_class"]["negative"] == {"reference": 25, "llm": 20, "both": 15}
    assert k["per_class"]["mixed"] == {"reference": 0, "llm": 0, "both": 0}
    assert k["confusion"]["counts"]["negative"]["positive"] == 10


def test_kappa_matches_scikit_learn() -> None:
    rng = random.Random(7)
    for _ in range(20):
        a = [rng.choice(SENTIMENTS) for _ in range(200)]
        b = [x if rng.random() < 0.6 else rng.choice(SENTIMENTS) for x in a]
        assert cohen_kappa(list(zip(a, b, strict=True)))["kappa"] == pytest.approx(
            cohen_kappa_score(a, b), abs=1e-4
        )


def test_kappa_undefined_and_empty() -> None:
    assert cohen_kappa([("neutral", "neutral")] * 5)["kappa"] is None  # p_e = 1
    assert cohen_kappa([("neutral", "neutral")] * 5)["accuracy"] == 1.0
    empty = cohen_kappa([])
    assert empty["kappa"] is None and empty["accuracy"] is None and empty["n"] == 0
    # Perfect agreement over two classes: kappa 1; systematic opposite: below 0.
    assert cohen_kappa([("positive", "positive"), ("negative", "negative")])["kappa"] == 1.0
    assert cohen_kappa([("positive", "negative"), ("negative", "positive")])["kappa"] == -1.0


def test_consistency_by_hand() -> None:
    samples = [
        Repeated(1, Answer("positive", ["money", "love"]),
                 [Answer("positive", ["money", "love"]), Answer("negative", ["money"])]),
        Repeated(2, Answer("negative", ["life"]),
                 [Answer("negative", ["life"]), Answer("negative", ["party"])]),
        Repeated(3, Answer("neutral", ["life"]), [None, None]),
    ]  # fmt: skip
    c = consistency(samples, repeats=2, tokens={"prompt": 1})
    assert c["tracks"] == 3 and c["tracks_compared"] == 2
    assert c["answered_repeats"] == 4 and c["failed_repeats"] == 2
    assert c["sentiment_all_match"] == 0.5  # track 2 only
    assert c["sentiment_vs_stored"] == 0.75  # 3 of 4 repeats
    # Track 1: (pos,pos) (pos,neg) (pos,neg) -> 1 of 3; track 2: 3 of 3 -> 4/6.
    assert c["sentiment_pairwise"] == 0.6667
    # vs stored: 1, 0.5 (track 1), 1, 0 (track 2) -> 0.625.
    assert c["themes_jaccard_vs_stored"] == 0.625
    # Pairs: 1, .5, .5 (track 1); 1, 0, 0 (track 2) -> 3/6.
    assert c["themes_jaccard_pairwise"] == 0.5
    assert c["tokens"] == {"prompt": 1}


def test_consistency_with_no_answers() -> None:
    c = consistency([Repeated(1, Answer("neutral", []), [None])], repeats=1)
    assert c["sentiment_all_match"] is None and c["themes_jaccard_vs_stored"] is None


def test_schema_validity_and_failure_kinds() -> None:
    assert failure_kind("provider unavailable: HTTP 503 (after 4 attempts)") == "no_answer"
    assert failure_kind("rejected: HTTP 400: too long") == "no_answer"
    assert failure_kind("no valid answer after one repair request: malformed JSON") == "invalid"
    assert failure_kind("the model refused: no") == "invalid"
    rows = [{"repaired": False}] * 3 + [{"repaired": True}]
    v = schema_validity(rows, {"invalid": 1, "no_answer": 3}, fallbacks=2)
    assert v["answered_tracks"] == 5
    assert (v["share_first"], v["share_after_second"], v["share_never"]) == (0.6, 0.2, 0.2)
    assert v["share_valid"] == 0.8
    assert v["no_answer_failures"] == 3 and v["fallbacks"] == 2
    assert schema_validity([], {}, 0)["share_valid"] is None


def test_reference_agreement_by_hand() -> None:
    refs = [
        ReferenceRow(2, 10, None, None, "positive", ["money", "fame"], 7.0),
        ReferenceRow(3, 11, None, None, "negative", None, 3.0),
        ReferenceRow(4, 12, None, None, "neutral"),  # a track without an LLM label
        ReferenceRow(5, None, "Nobody", "Nothing", "mixed"),  # no such track
    ]
    rows = {
        10: {"sentiment": "positive", "themes": ["money"], "quality": 8},
        11: {"sentiment": "positive", "themes": ["life"], "quality": 3},
    }
    r = reference_agreement(refs, {2: 10, 3: 11, 4: 12}, rows, source="ref.csv")
    assert (r["rows"], r["matched_rows"], r["unmatched_rows"], r["with_llm_label"]) == (
        4,
        3,
        1,
        2,
    )
    assert r["sentiment"]["accuracy"] == 0.5
    # ref (pos, neg) vs llm (pos, pos): p_o 0.5, p_e (1*2 + 1*0)/4 = 0.5 -> kappa 0.
    assert r["sentiment"]["kappa"] == 0.0
    assert r["themes_jaccard_mean"] == 0.5 and r["themes_rows"] == 1
    assert r["quality"]["n"] == 2 and r["quality"]["mean_abs_diff"] == 0.5


def test_cascade_agreement_by_hand() -> None:
    def c(kind: str, s: str | None, q: float | None) -> dict[str, object]:
        return {"analyzer_type": kind, "sentiment": s, "quality": q, "complexity": None}

    pairs = [
        (c("algorithmic", "positive", None), c("llm", "positive", 7)),
        (c("algorithmic", "negative", None), c("llm", "mixed", 4)),
        (c("quality", None, 6.0), c("llm", "neutral", 8)),
        (c("quality", None, 5.0), c("llm", "neutral", 5)),
    ]
    a = cascade_agreement(pairs)
    assert a["tracks"] == 4 and a["by_analyzer"] == {"algorithmic": 2, "quality": 2}
    assert a["sentiment_tracks"] == 2 and a["sentiment_agreement"] == 0.5
    assert a["quality_tracks"] == 2 and a["quality_mean_abs_diff"] == 1.0
    assert a["quality_within_1"] == 0.5


def test_repeats_leave_out_fallback_cascade_and_batch() -> None:
    spec = {
        "analyzer": "llm",
        "fallbackAnalyzer": "algorithmic",
        "llm": {"provider": "openai", "mode": "batch", "batch": {}, "cascade": {"analyzer": "quality"},
                "tracksPerRequest": 4},
    }  # fmt: skip
    assert repeat_spec(spec) == {
        "analyzer": "llm",
        "llm": {"provider": "openai", "tracksPerRequest": 4},
    }


def test_reference_files(tmp_path: Path) -> None:
    csv_file = tmp_path / "ref.csv"
    csv_file.write_text(
        "track_id,artist,title,sentiment,themes,quality\n"
        "7,,,Positive,money; Fame,8\n"
        ",Some Artist,Some Title,neutral,,\n"
    )
    rows = reference.load(csv_file)
    assert rows[0] == ReferenceRow(2, 7, None, None, "positive", ["money", "fame"], 8.0)
    assert rows[1] == ReferenceRow(3, None, "Some Artist", "Some Title", "neutral")
    jsonl = tmp_path / "ref.jsonl"
    jsonl.write_text(
        '{"track_id": 3, "sentiment": "mixed", "themes": ["Love"]}\n\n'
        '{"artist": "A", "title": "T", "sentiment": "negative"}\n'
    )
    rows = reference.load(jsonl)
    assert rows[0] == ReferenceRow(1, 3, None, None, "mixed", ["love"])
    assert rows[1].line == 3 and rows[1].artist == "A"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("track_id,sentiment\n1,happy\n", "ref.csv:2: sentiment 'happy'"),
        ("track_id,sentiment\nx,positive\n", "ref.csv:2: track_id 'x' is not a number"),
        ("artist,sentiment\nA,positive\n", "ref.csv:2: name the track"),
        ("id;label\n1;positive\n", "a CSV header"),
        ("track_id,sentiment\n", "no reference rows"),
    ],
)
def test_reference_file_errors_name_the_line(tmp_path: Path, text: str, message: str) -> None:
    f = tmp_path / "ref.csv"
    f.write_text(text)
    with pytest.raises(ReportError, match=message):
        reference.load(f)
