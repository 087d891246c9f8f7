"""The operator refuses `llm.mode: batch` for a provider without a Batch API: Valid=False
with a message a person can act on (check_spec is what the operator runs first)."""

from __future__ import annotations

from typing import Any

import pytest
from rap_operator.validation import InvalidRun, check_spec


def _body(llm: dict[str, Any]) -> dict[str, Any]:
    return {
        "apiVersion": "rapanalyzer.io/v1alpha1",
        "kind": "AnalysisRun",
        "metadata": {"name": "batch", "namespace": "ns", "uid": "u-1", "generation": 1},
        "spec": {"analyzer": "llm", "llm": llm},
    }


@pytest.mark.parametrize("provider", ["vllm", "ollama"])
def test_batch_mode_without_a_batch_api_is_invalid_with_what_to_do(provider: str) -> None:
    llm = {"provider": provider, "baseURL": "http://server:8000/v1", "model": "m", "mode": "batch"}
    with pytest.raises(InvalidRun) as err:
        check_spec(_body(llm))
    message = str(err.value)
    assert f"provider '{provider}' has none" in message and "use mode sync" in message
    assert "Traceback" not in message


@pytest.mark.parametrize("provider", ["openai", "novita"])
def test_batch_mode_on_a_provider_with_a_batch_api_is_valid(provider: str) -> None:
    m = check_spec(_body({"provider": provider, "mode": "batch"}))
    assert m.spec.llm is not None and m.spec.llm.mode == "batch"
