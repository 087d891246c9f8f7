"""rap_operator.crd_apply's pure part: which documents it accepts and what it sends."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from rap_operator.crd_apply import (
    OUR_CRDS,
    NotOurCRD,
    apply_body,
    established,
    parse_crds,
    read_dir,
)

ROOT = Path(__file__).resolve().parents[2]
GENERATED = sorted((ROOT / "crds").glob("*.yaml"))


def _texts() -> list[str]:
    return [p.read_text() for p in GENERATED]


def test_the_generated_crds_are_accepted() -> None:
    crds = parse_crds(_texts())
    assert {c["metadata"]["name"] for c in crds} == OUR_CRDS


def test_a_file_of_several_documents_and_empty_ones() -> None:
    crds = parse_crds(["---\n" + "\n---\n".join(_texts()) + "\n---\n"])
    assert len(crds) == 2


@pytest.mark.parametrize(
    "doc, reason",
    [
        (
            {
                "apiVersion": "apiextensions.k8s.io/v1",
                "kind": "CustomResourceDefinition",
                "metadata": {"name": "certificates.cert-manager.io"},
            },
            "not one of this chart's CRDs",
        ),
        (
            {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "analysisruns.x"}},
            "not a CustomResourceDefinition",
        ),
        (
            {
                "apiVersion": "apiextensions.k8s.io/v1beta1",
                "kind": "CustomResourceDefinition",
                "metadata": {"name": sorted(OUR_CRDS)[0]},
            },
            "not a CustomResourceDefinition",
        ),
    ],
)
def test_anything_else_is_refused(doc: dict, reason: str) -> None:
    with pytest.raises(NotOurCRD, match=reason):
        parse_crds([*_texts(), yaml.safe_dump(doc)])


def test_a_crd_given_twice_or_none_is_refused() -> None:
    with pytest.raises(NotOurCRD, match="given twice"):
        parse_crds(_texts() + _texts()[:1])
    with pytest.raises(NotOurCRD, match="no CRD"):
        parse_crds(["# nothing\n"])


def test_apply_body_drops_what_the_server_owns() -> None:
    (crd, *_) = parse_crds(_texts())
    live = {
        **crd,
        "metadata": {
            **crd["metadata"],
            "resourceVersion": "42",
            "uid": "u",
            "managedFields": [{}],
            "annotations": {"a": "b"},
        },
        "status": {"conditions": []},
    }
    body = apply_body(live)
    assert body["metadata"] == {"name": crd["metadata"]["name"], "annotations": {"a": "b"}}
    assert "status" not in body
    assert body["spec"] == crd["spec"]
    assert apply_body(crd) == {k: crd[k] for k in ("apiVersion", "kind", "metadata", "spec")}


@pytest.mark.parametrize(
    "conditions, ready",
    [
        ([], False),
        ([{"type": "Established", "status": "True"}], False),
        (
            [
                {"type": "NamesAccepted", "status": "True"},
                {"type": "Established", "status": "False"},
            ],
            False,
        ),
        (
            [
                {"type": "NamesAccepted", "status": "True"},
                {"type": "Established", "status": "True"},
            ],
            True,
        ),
    ],
)
def test_established(conditions: list[dict], ready: bool) -> None:
    assert established({"status": {"conditions": conditions}}) is ready
    assert established({}) is False


def test_read_dir_reads_a_mounted_configmap(tmp_path: Path) -> None:
    """A ConfigMap volume: keys are symlinks into ..data; the dot-entries are not CRDs."""
    data = tmp_path / "..2026_12_04"
    data.mkdir()
    for p in GENERATED:
        (data / p.name).write_text(p.read_text())
        (tmp_path / p.name).symlink_to(Path("..data") / p.name)
    (tmp_path / "..data").symlink_to(data.name)
    assert len(parse_crds(read_dir(tmp_path))) == 2
