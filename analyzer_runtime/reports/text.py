"""TF-IDF terms of lyrics (scikit-learn), for the trend report's terms and clusters."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

# Section markers and filler every rap lyric has: never a "theme".
LYRICS_STOP_WORDS = frozenset(
    "verse chorus hook intro outro bridge pre refrain yeah yea yo uh huh ooh oh ah ay ayy"
    " like got get gotta gonna wanna ain don know just cause let em ya na la"
    " i'm ain't can't don't won't it's that's you're we're they're i've i'll i'd"
    " y'all 'cause bout till tryna".split()
)
TOKEN_PATTERN = r"(?u)\b[a-z][a-z']{2,}\b"


def vectorizer(*, min_df: int | float = 1, max_features: int = 20000) -> Any:
    from sklearn.feature_extraction.text import ENGLISH_STOP_WORDS, TfidfVectorizer

    return TfidfVectorizer(
        lowercase=True,
        token_pattern=TOKEN_PATTERN,
        stop_words=sorted(ENGLISH_STOP_WORDS | LYRICS_STOP_WORDS),
        min_df=min_df,
        max_df=0.9 if min_df != 1 else 1.0,
        max_features=max_features,
        sublinear_tf=True,
    )


def top_terms_per_document(docs: Sequence[str], n: int = 8) -> list[list[str]]:
    """The n highest TF-IDF terms of each document, the documents weighed against
    each other (one document per group: the terms that set a year or an artist apart)."""
    if not docs:
        return []
    if not any(d.strip() for d in docs):
        return [[] for _ in docs]
    vec = vectorizer()
    try:
        m = vec.fit_transform(docs)
    except ValueError:  # only stop words
        return [[] for _ in docs]
    vocab = vec.get_feature_names_out()
    out = []
    for i in range(m.shape[0]):
        row = m.getrow(i)
        pairs = sorted(zip(row.data, row.indices, strict=True), key=lambda p: (-p[0], vocab[p[1]]))
        out.append([str(vocab[j]) for _, j in pairs[:n]])
    return out
