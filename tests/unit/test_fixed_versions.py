"""contract.types.fixed_versions: the versions an analyzer with a fixed set implements
(what the analyzers and the quality features take their current version from)."""

from __future__ import annotations

import pytest

from analyzer_runtime.contract.types import ANALYZER_VERSIONS, AnalyzerName, fixed_versions


@pytest.mark.parametrize("name", [a for a, v in ANALYZER_VERSIONS.items() if v is not None])
def test_a_fixed_set_is_returned(name: AnalyzerName) -> None:
    assert fixed_versions(name) == ANALYZER_VERSIONS[name]
    assert fixed_versions(name)


def test_a_free_label_has_no_fixed_versions() -> None:
    with pytest.raises(ValueError, match="llm has no fixed versions"):
        fixed_versions(AnalyzerName.llm)
