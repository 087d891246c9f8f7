"""Images pinned by digest: every pod the chart renders (and the runtime image the
operator gives its Job pods) runs repository@sha256:… once a digest is set, and a
malformed digest fails the render instead of producing an unpullable reference.
The operator's image is pinned on its own (operator.image.digest): a digest names
one image's content, so pinning the worker alone fails rather than leaving the
operator on a tag."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from rap_devtools.helm import HelmError, operator_env, pod_containers, render_chart

pytestmark = pytest.mark.helm  # renders the chart with bin/helm (make helm)

APP = "sha256:" + "a" * 64
OPERATOR = "sha256:" + "d" * 64
PG = "sha256:" + "b" * 64
BOUNCER = "sha256:" + "c" * 64


def _images(docs: list[dict[str, Any]]) -> Iterator[str]:
    """Every container image of every pod template in the render."""
    return (c["image"] for _, c in pod_containers(docs))


def test_without_digests_the_tags_are_used() -> None:
    images = set(_images(render_chart({"search": {"enabled": True}})))
    assert images, "the chart renders pods"
    assert not any("@" in i for i in images), images
    assert "pgvector/pgvector:pg16" in images


def test_digests_pin_every_pod_and_the_runtime_image() -> None:
    docs = render_chart(
        {
            "image": {"digest": APP, "tag": "ignored"},
            "operator": {"image": {"digest": OPERATOR}},
            "postgres": {"image": {"digest": PG}},
            "pgbouncer": {"enabled": True, "image": {"digest": BOUNCER}},
            "search": {"enabled": True},
        }
    )
    images = set(_images(docs))
    assert images == {
        f"ghcr.io/rap-analyzer/rap-analyzer@{APP}",
        f"ghcr.io/rap-analyzer/rap-analyzer-operator@{OPERATOR}",
        f"pgvector/pgvector@{PG}",
        f"rap-analyzer-postgres@{BOUNCER}",
    }
    assert operator_env(docs)["RAP_RUNTIME_IMAGE"] == f"ghcr.io/rap-analyzer/rap-analyzer@{APP}"


def test_a_worker_digest_without_an_operator_digest_fails_the_render() -> None:
    with pytest.raises(HelmError, match=r"set operator\.image\.digest too"):
        render_chart({"image": {"digest": APP}})
    # The operator alone may be pinned (the worker then runs its tag).
    images = set(_images(render_chart({"operator": {"image": {"digest": OPERATOR}}})))
    assert f"ghcr.io/rap-analyzer/rap-analyzer-operator@{OPERATOR}" in images
    assert "ghcr.io/rap-analyzer/rap-analyzer:0.2.0" in images


@pytest.mark.parametrize("which", ["image", "operator.image"])
@pytest.mark.parametrize("digest", ["sha256:abc", "latest", "sha512:" + "a" * 128])
def test_a_malformed_digest_fails_the_render(which: str, digest: str) -> None:
    digests = {"image": APP, "operator.image": OPERATOR, which: digest}
    values = {"image": {"digest": digests["image"]},
              "operator": {"image": {"digest": digests["operator.image"]}}}  # fmt: skip
    with pytest.raises(HelmError, match="must be sha256:<64 hex digits>"):
        render_chart(values)
