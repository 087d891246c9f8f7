"""Every condition reason the code sets is listed, with its meaning, in
contract/reasons.py (the troubleshooting page is generated from it): the reasons are
found in the AST of analyzer_runtime and rap_operator where conditions are built:
`_Verdict(phase, "Reason", ...)`, `(type, "True"|"False"|"Unknown", "Reason", message)`
rows, condition dicts (`{"type": ..., "reason": "Reason"}`) and `invalid_reason=`."""

from __future__ import annotations

import ast
from pathlib import Path

from rap_operator import errors

from analyzer_runtime.contract import reasons

ROOT = Path(__file__).resolve().parents[2]
SOURCES = (ROOT / "analyzer_runtime", ROOT / "operator" / "rap_operator")
STATUSES = ("True", "False", "Unknown")


def _literal(node: ast.AST | None) -> list[str]:
    if isinstance(node, ast.IfExp):
        return _literal(node.body) + _literal(node.orelse)
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return [node.value]
    return []


def condition_reasons(source: str) -> list[tuple[str, int]]:
    out: list[tuple[str, int]] = []
    for node in ast.walk(ast.parse(source)):
        found: list[str] = []
        if isinstance(node, ast.Call):
            name = node.func.id if isinstance(node.func, ast.Name) else None
            if name == "_Verdict" and len(node.args) >= 2:
                found += _literal(node.args[1])
            for kw in node.keywords:
                if kw.arg == "invalid_reason":
                    found += _literal(kw.value)
        elif isinstance(node, ast.Tuple) and len(node.elts) == 4:
            if any(s in STATUSES for s in _literal(node.elts[1])):
                found += _literal(node.elts[2])
        elif isinstance(node, ast.Dict):
            keys = [k.value for k in node.keys if isinstance(k, ast.Constant)]
            if "type" in keys and "reason" in keys:
                found += _literal(node.values[keys.index("reason")])
        out += [(r, getattr(node, "lineno", 0)) for r in found]
    return out


def test_every_condition_reason_is_listed() -> None:
    missing: dict[str, list[str]] = {}
    seen = 0
    for base in SOURCES:
        for path in sorted(base.rglob("*.py")):
            for reason, line in condition_reasons(path.read_text()):
                seen += 1
                if reason not in reasons.BY_NAME:
                    missing.setdefault(reason, []).append(f"{path.relative_to(ROOT)}:{line}")
    assert seen > 20, "the scan no longer finds the conditions the code builds"
    assert not missing, f"add these to analyzer_runtime/contract/reasons.py: {missing}"


def test_the_operators_verdict_reasons_are_listed() -> None:
    assert set(errors.REASONS) <= set(reasons.BY_NAME)


def test_each_reason_is_listed_once_with_a_meaning() -> None:
    names = [r.name for r in (*reasons.REASONS, *reasons.PASSED_THROUGH)]
    assert len(names) == len(set(names))
    for r in (*reasons.REASONS, *reasons.PASSED_THROUGH):
        assert r.conditions and r.meaning.rstrip().endswith("."), r


def test_the_scan_sees_each_form() -> None:
    source = """
_Verdict(p, "A", m)
rows.append(("Valid", "False", "B" if x else "C", m))
cond = {"type": "T", "status": s, "reason": "D", "message": m}
RunObservation(invalid_reason="E")
event = {"reason": "NotACondition"}
"""
    assert sorted(r for r, _ in condition_reasons(source)) == ["A", "B", "C", "D", "E"]
