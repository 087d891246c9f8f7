"""The layers, and the only arrows allowed between them (a module may import its own
layer and the layers listed for it):

    contract  -> (nothing of ours)          analyzer_runtime.contract: spec/status types, names
    ledger    -> contract                   analyzer_runtime.ledger: the one writer of the run tables
    operator  -> contract, ledger           rap_operator
    runtime   -> contract, ledger           the rest of analyzer_runtime (pods, CLI, API, reports)
    devtools  -> contract, ledger, runtime  rap_devtools (never the operator's modules)

tests and bench may import anything. The imports are read from the AST
(tests/import_graph.py: imports inside functions count, `if TYPE_CHECKING:` ones do
not). The operator image ships only contract, ledger and rap_operator, so the second
test imports the operator in a fresh interpreter and checks that none of the runtime's
heavy libraries comes with it."""

from __future__ import annotations

import json
import subprocess
import sys

from tests.import_graph import ROOT, graph

LAYERS: dict[str, set[str]] = {
    "contract": set(),
    "ledger": {"contract"},
    "operator": {"contract", "ledger"},
    "runtime": {"contract", "ledger"},
    "devtools": {"contract", "ledger", "runtime"},
}

# Arrows that break the table today, each to be removed with the import it names;
# the test fails when one is fixed and still listed, so the list only shrinks.
KNOWN_VIOLATIONS: set[tuple[str, str]] = set()

# What the operator image leaves out (C's image test relies on the same list).
NOT_IN_OPERATOR_IMAGE = (
    "numpy", "scipy", "sklearn", "openai", "httpx", "tokenizers", "safetensors", "pyarrow",
    "matplotlib", "fastapi", "skops",
)  # fmt: skip


def layer(module: str) -> str:
    if module == "analyzer_runtime":  # the empty top-level package every layer needs
        return "contract"
    for name in ("contract", "ledger"):
        prefix = f"analyzer_runtime.{name}"
        if module == prefix or module.startswith(prefix + "."):
            return name
    if module.startswith("analyzer_runtime"):
        return "runtime"
    if module.startswith("rap_operator"):
        return "operator"
    if module.startswith("rap_devtools"):
        return "devtools"
    raise ValueError(f"{module} is in no layer")


def violations(imports: dict[str, set[str]]) -> set[tuple[str, str]]:
    return {
        (src, dst)
        for src, targets in imports.items()
        for dst in targets
        if layer(dst) != layer(src) and layer(dst) not in LAYERS[layer(src)]
    }


def test_imports_follow_the_layer_table() -> None:
    found = violations(graph())
    new = sorted(found - KNOWN_VIOLATIONS)
    fixed = sorted(KNOWN_VIOLATIONS - found)
    assert not new, "imports against the layer table:\n" + "\n".join(f"{a} -> {b}" for a, b in new)
    assert not fixed, "no longer violated; remove from KNOWN_VIOLATIONS: " + repr(fixed)


def test_the_table_catches_an_arrow_against_it() -> None:
    imports = {
        "analyzer_runtime.ledger.shards": {"analyzer_runtime.contract.status"},
        "analyzer_runtime.contract.status": {"analyzer_runtime.ledger.shards"},
        "rap_operator.reconcile": {"analyzer_runtime.worker", "analyzer_runtime.ledger"},
        "analyzer_runtime.worker": {"analyzer_runtime", "rap_operator.kube"},
        "rap_devtools.demo": {"analyzer_runtime.cli"},
    }
    assert violations(imports) == {
        ("analyzer_runtime.contract.status", "analyzer_runtime.ledger.shards"),
        ("rap_operator.reconcile", "analyzer_runtime.worker"),
        ("analyzer_runtime.worker", "rap_operator.kube"),
    }


def test_the_operator_imports_none_of_the_runtimes_libraries() -> None:
    code = "import json, sys; import rap_operator.__main__; print(json.dumps(sorted(sys.modules)))"
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True
    ).stdout
    loaded = set(json.loads(out))
    heavy = sorted({m.split(".")[0] for m in loaded} & set(NOT_IN_OPERATOR_IMAGE))
    ours = sorted(m for m in loaded if layer_or_none(m) in ("runtime", "devtools"))
    assert not heavy, f"the operator imports {heavy}"
    assert not ours, f"the operator imports runtime modules {ours}"
    assert "kopf" in loaded and "rap_operator.reconcile" in loaded  # it did import the operator


def layer_or_none(module: str) -> str | None:
    try:
        return layer(module)
    except ValueError:
        return None
