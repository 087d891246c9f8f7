"""deploy/argocd/argocd-cm-health.yaml is generated from deploy/argocd/health/*.lua
by deploy/argocd/gen_argocd_cm.py: the committed file must be current, and carry
each Lua file verbatim under the key Argo CD reads. (Argo CD itself evaluates the
Lua in tests/gitops, which needs bin/argocd.)"""

from __future__ import annotations

import importlib.util
from pathlib import Path
from types import ModuleType

import yaml

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy" / "argocd"


def _gen() -> ModuleType:
    spec = importlib.util.spec_from_file_location("gen_argocd_cm", DEPLOY / "gen_argocd_cm.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_committed_snippet_is_generated() -> None:
    committed = (DEPLOY / "argocd-cm-health.yaml").read_text(encoding="utf-8")
    assert committed == _gen().render(), (
        "deploy/argocd/argocd-cm-health.yaml is stale: run python deploy/argocd/gen_argocd_cm.py"
    )


def test_snippet_carries_each_lua_file_verbatim() -> None:
    cm = yaml.safe_load((DEPLOY / "argocd-cm-health.yaml").read_text(encoding="utf-8"))
    assert (cm["apiVersion"], cm["kind"], cm["metadata"]["name"]) == (
        "v1",
        "ConfigMap",
        "argocd-cm",
    )
    lua_files = sorted((DEPLOY / "health").glob("*.lua"))
    assert [p.name for p in lua_files] == ["rapanalyzer.lua"]
    lua = lua_files[0].read_text(encoding="utf-8")
    assert cm["data"] == {
        f"resource.customizations.health.rapanalyzer.io_{kind}": lua
        for kind in ("AnalysisRun", "ScrapeJob")
    }


def test_check_mode_reports_a_stale_file(tmp_path: Path) -> None:
    gen = _gen()
    out = tmp_path / "argocd-cm-health.yaml"
    assert gen.main(["--check", "--output", str(out)]) == 1
    assert gen.main(["--output", str(out)]) == 0
    assert gen.main(["--check", "--output", str(out)]) == 0
