"""docs/operations/troubleshooting.md says what every condition reason means and what
to do: each reason the code may set (contract.reasons, our own and those passed through
from Kubernetes and Kueue) and each condition type that carries one appears there."""

from pathlib import Path

from analyzer_runtime.contract import reasons

PAGE = Path(__file__).resolve().parents[2] / "docs" / "operations" / "troubleshooting.md"


def test_every_reason_and_condition_is_on_the_troubleshooting_page() -> None:
    text = PAGE.read_text()
    listed = (*reasons.REASONS, *reasons.PASSED_THROUGH)
    names = {r.name for r in listed} | {c for r in listed for c in r.conditions}
    missing = sorted(n for n in names if f"`{n}`" not in text and f"`{n}=" not in text)
    assert not missing, f"{PAGE.name} does not explain: {missing}"
