"""The generated Reference (rap_devtools.docs_reference) lists everything there is,
each part checked against an enumeration of its own: the committed CRD files for
the fields, typer's registrations and the functions' signatures for the CLI, the
parsed values.yaml for the chart, the metric names written in the source for the
metrics. A spec field, CLI command, argument or option without a description fails
here, and so does a site that does not build with --strict."""

from __future__ import annotations

import ast
import inspect
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Annotated, Any

import pytest
import typer
import yaml
from pydantic import BaseModel, Field
from rap_devtools.docs_reference import chart_values, cli, crd_fields, markdown, pages

from analyzer_runtime.cli import app
from analyzer_runtime.contract.crd import analysisrun_crd, openapi_schema, scrapejob_crd

ROOT = Path(__file__).resolve().parents[2]
KINDS = {
    "analysisrun.yaml": (analysisrun_crd, pages.analysisrun_page),
    "scrapejob.yaml": (scrapejob_crd, pages.scrapejob_page),
}
# Kubernetes describes these; our models do not.
KUBERNETES_FIELDS = frozenset({"metadata"})


# --- CRD fields -------------------------------------------------------------------


def _yaml_paths(schema: dict[str, Any], path: str) -> Iterator[str]:
    for name, sub in schema.get("properties", {}).items():
        here = f"{path}.{name}" if path else name
        yield here
        yield from _yaml_paths(sub, here)
    for key, mark in (("items", "[]"), ("additionalProperties", "{}")):
        if isinstance(schema.get(key), dict):
            yield from _yaml_paths(schema[key], path + mark)


@pytest.mark.parametrize("name", sorted(KINDS))
def test_every_spec_and_status_field_is_on_its_page(name: str) -> None:
    committed = yaml.safe_load((ROOT / "crds" / name).read_text(encoding="utf-8"))
    schema = committed["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    paths = [p for p in _yaml_paths(schema, "") if p.startswith(("spec", "status"))]
    assert len(paths) > 40  # the walk found the nested models, not only the top
    page = KINDS[name][1]()
    missing = [p for p in paths if f"`{p}`" not in page]
    assert not missing, f"fields of {name} missing from the reference: {missing}"


@pytest.mark.parametrize("name", sorted(KINDS))
def test_every_spec_and_status_field_has_a_description(name: str) -> None:
    crd = KINDS[name][0]()
    fields = list(crd_fields.walk(crd_fields.root_schema(crd), ""))
    missing = crd_fields.missing_descriptions(fields, KUBERNETES_FIELDS)
    assert not missing, (
        f"{name}: fields without a description (add Field(description=...) to the "
        f"model, then `make crds`): {missing}"
    )


def test_a_field_without_a_description_is_reported() -> None:
    class Inner(BaseModel):
        documented: int = Field(1, description="Has one.")
        bare: str = "x"

    class Spec(BaseModel):
        inner: Inner = Field(description="A nested model.")
        items: list[Inner] = Field(default_factory=list, description="A list of them.")

    fields = list(crd_fields.walk(openapi_schema(Spec), "spec"))
    assert crd_fields.missing_descriptions(fields, frozenset()) == [
        "spec.inner.bare",
        "spec.items[].bare",
    ]


def test_a_field_row_has_its_type_default_and_limits() -> None:
    page = pages.analysisrun_page()
    row = next(line for line in page.splitlines() if line.startswith("| `spec.batchSize`"))
    assert row == (
        "| `spec.batchSize`<br>integer | Tracks per transaction in a shard."
        "<br>Default: `50` · ≥ 1 · ≤ 10000 |"
    )
    # An object's row links to its own table, whose anchor the page defines.
    assert "| [`spec.llm`](#spec-llm)<br>object |" in page
    assert "## `spec.llm` {#spec-llm}" in page


def test_constraints_read_as_limits() -> None:
    schema = {
        "type": "number",
        "minimum": 0,
        "exclusiveMinimum": True,
        "maximum": 1,
        "enum": [0.5, 1],
        "x-kubernetes-validations": [{"rule": "self > 0", "message": "a | b"}],
    }
    assert list(crd_fields.constraints(schema)) == [
        "one of `0.5`, `1`",
        "greater than 0",
        "≤ 1",
        "rule: a \\| b",
    ]


# --- CLI --------------------------------------------------------------------------


def _registered(typer_app: typer.Typer, path: tuple[str, ...]) -> Iterator[tuple[str, ...]]:
    """(command path..., parameter) from typer's own registrations: the functions'
    signatures, not the click objects the generator reads."""
    if typer_app.registered_callback and typer_app.registered_callback.callback:
        for param in inspect.signature(typer_app.registered_callback.callback).parameters:
            yield (*path, param)
    for info in typer_app.registered_commands:
        assert info.callback is not None
        name = info.name or info.callback.__name__.replace("_", "-")
        yield (*path, name)
        for param in inspect.signature(info.callback).parameters:
            yield (*path, name, param)
    for group in typer_app.registered_groups:
        assert group.name and group.typer_instance
        yield (*path, group.name)
        yield from _registered(group.typer_instance, (*path, group.name))


def test_every_cli_command_and_parameter_is_documented() -> None:
    docs = {d.path: d for d in pages.cli_docs()}
    expected = list(_registered(app, ("rap-analyzer",)))
    assert len(expected) > 80
    missing = []
    for entry in expected:
        if entry in docs:
            continue
        command, param = docs.get(entry[:-1]), entry[-1]
        if command is None or param not in {p.name for p in command.params}:
            missing.append(" ".join(entry))
    assert not missing, f"not in the CLI reference: {missing}"
    page = pages.cli_page()
    for d in docs.values():
        for p in d.params:
            assert markdown.code(p.usage) in page, (d.line, p.usage)


def test_every_cli_command_argument_and_option_has_help() -> None:
    missing = cli.missing_help(pages.cli_docs())
    assert not missing, f"add help=... (a command: a docstring) to: {missing}"


def test_a_cli_option_without_help_is_reported() -> None:
    demo = typer.Typer(help="A demo.")

    @demo.command()
    def go(
        n: Annotated[int, typer.Argument(help="how many")],
        fast: Annotated[bool, typer.Option()] = False,
    ) -> None:
        """Go."""

    @demo.command()
    def stop() -> None:
        pass

    root = typer.main.get_command(demo)
    docs = cli.commands(root, root.context_class, "demo")
    assert cli.missing_help(docs) == ["demo stop", "demo go --fast / --no-fast"]


def test_an_option_row_has_its_default_range_and_environment() -> None:
    docs = {d.line: d for d in pages.cli_docs()}
    limit = next(p for p in docs["rap-analyzer search"].params if p.name == "limit")
    assert (limit.default, limit.bounds) == ("10", "1 <= x <= 100")
    port = next(p for p in docs["rap-analyzer analyze"].params if p.name == "metrics_port")
    assert port.envvar == "METRICS_PORT"
    progress = next(p for p in docs["rap-analyzer run"].params if p.name == "progress")
    assert progress.default == "--progress"


# --- Configuration ------------------------------------------------------------------


def _leaves(data: dict[str, Any], prefix: str = "") -> Iterator[str]:
    for key, value in data.items():
        path = f"{prefix}.{key}" if prefix else key
        if isinstance(value, dict) and value:
            yield from _leaves(value, path)
        else:
            yield path


def test_every_chart_value_is_on_the_configuration_page() -> None:
    values = yaml.safe_load(pages.VALUES_YAML.read_text(encoding="utf-8"))
    leaves = list(_leaves(values))
    docs = pages.value_docs()
    assert sorted(d.key for d in docs if d.leaf) == sorted(leaves)
    page = pages.configuration_page()
    missing = [key for key in leaves if f"`{key}`" not in page]
    assert not missing


def test_a_value_carries_the_comment_above_it() -> None:
    text = (
        "# The file's header.\n"
        "\n"
        "# A section about a.\n"
        "a:\n"
        "  # -- What b is,\n"
        "  # on two lines.\n"
        "  b: 1\n"
        "  c: [x, y]\n"
        "  # Background that is no description.\n"
        "  # -- What d is.\n"
        "  d: {}\n"
    )
    docs = {d.key: d for d in chart_values.values(text)}
    assert docs["a"].description == "A section about a."
    assert not docs["a"].leaf
    assert docs["a.b"].description == "What b is, on two lines."
    assert (docs["a.c"].description, docs["a.c"].default) == ("", ["x", "y"])
    assert docs["a.d"].description == "What d is."
    assert chart_values.yaml_default(docs["a.c"].default) == "[x, y]"


# --- Metrics ------------------------------------------------------------------------

PRODUCT = (ROOT / "analyzer_runtime", ROOT / "operator" / "rap_operator")
METRIC_CLASSES = {"Counter", "Gauge", "Histogram", "Summary", "Info", "Enum"}


def _metric_names_in_source() -> dict[str, tuple[str, ...] | None]:
    """Metric name -> label names (None where the source does not spell them out),
    from the string literals of every module that imports prometheus_client."""
    found: dict[str, tuple[str, ...] | None] = {}
    for base in PRODUCT:
        for path in base.rglob("*.py"):
            text = path.read_text(encoding="utf-8")
            if "prometheus_client" not in text:
                continue
            for node in ast.walk(ast.parse(text)):
                if isinstance(node, ast.Constant) and isinstance(node.value, str):
                    if node.value.startswith("rap_") and node.value.isidentifier():
                        found.setdefault(node.value, None)
                if (
                    isinstance(node, ast.Call)
                    and isinstance(node.func, ast.Name)
                    and node.func.id in METRIC_CLASSES
                    and len(node.args) >= 2
                    and isinstance(node.args[0], ast.Constant)
                ):
                    labels = node.args[2] if len(node.args) > 2 else None
                    found[node.args[0].value] = (
                        tuple(ast.literal_eval(labels)) if labels is not None else ()
                    )
    return found


def test_every_metric_in_the_source_is_on_the_metrics_page() -> None:
    documented = {d.name: d for _, docs in pages.metric_docs() for d in docs}
    in_source = _metric_names_in_source()
    assert len(in_source) > 25
    for name, labels in in_source.items():
        doc = documented.get(name) or documented.get(name + "_total")
        assert doc is not None, f"{name} is defined in the source but not in the reference"
        if labels is not None:
            assert doc.labels == labels, name
    page = pages.metrics_page()
    assert all(f"`{name}`" in page for name in documented)


def test_each_metric_has_its_type_and_help() -> None:
    documented = {d.name: d for _, docs in pages.metric_docs() for d in docs}
    assert documented["rap_analyzer_items_total"].type == "counter"
    assert documented["rap_operator_reconcile_seconds"].type == "histogram"
    # A custom collector's family: built at scrape time, labels included.
    run_phase = documented["rap_operator_run_phase"]
    assert run_phase.labels == ("namespace", "name", "kind", "analyzer", "phase")
    assert all(d.help for d in documented.values())


# --- The site -----------------------------------------------------------------------


@pytest.mark.slow  # builds the whole site
def test_the_site_builds_with_strict(tmp_path: Path) -> None:
    """Broken links and anchors, and pages outside the nav, fail the build
    (mkdocs.yml's validation); the generated pages are in the site."""
    env = {**os.environ, "NO_MKDOCS_2_WARNING": "1"}
    result = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(tmp_path)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-4000:]
    assert "WARNING" not in result.stderr, result.stderr[-4000:]
    cli_html = (tmp_path / "reference" / "cli" / "index.html").read_text(encoding="utf-8")
    assert "rap-analyzer db migrate" in cli_html
    fields_html = (tmp_path / "reference" / "analysisrun" / "index.html").read_text(
        encoding="utf-8"
    )
    assert "spec.llm.batch.completionWindow" in fields_html


def test_every_environment_variable_is_on_the_configuration_page() -> None:
    from analyzer_runtime.contract.env import ENV_VARS

    page = pages.configuration_page()
    assert len(ENV_VARS) > 20
    missing = [v.name for v in ENV_VARS if f"| `{v.name}` |" not in page]
    assert not missing


def test_every_rap_variable_the_code_or_chart_names_is_listed() -> None:
    """Names built from a prefix (api/settings.py's RAP_SEARCH_*) escape a scan for
    reads by literal name; their full spelling in the source (docstrings, messages)
    and in the chart's templates does not."""
    from analyzer_runtime.contract.env import BY_NAME

    sources = [p for base in PRODUCT for p in base.rglob("*.py")]
    sources += list((ROOT / "charts" / "rap-analyzer" / "templates").glob("*"))
    named = {
        name
        for path in sources
        for name in re.findall(r"\bRAP_[A-Z0-9_]*[A-Z0-9]\b", path.read_text(encoding="utf-8"))
    }
    assert len(named) > 30
    assert named <= set(BY_NAME), sorted(named - set(BY_NAME))


def test_the_cli_reads_only_listed_environment_variables() -> None:
    """An option's envvar is configuration too: the table lists it."""
    from analyzer_runtime.contract.env import BY_NAME

    read = {p.envvar for d in pages.cli_docs() for p in d.params if p.envvar}
    assert read  # --debug and --metrics-port at least
    assert read <= set(BY_NAME), read - set(BY_NAME)


def _build_small_site(
    tmp_path: Path, pages: dict[str, str], nav: list[str], hooks: bool = False
) -> str:
    """Build a site of `pages` with mkdocs.yml's validation settings (and hooks) and
    --strict; its log, after asserting that the build failed."""
    config = yaml.safe_load((ROOT / "mkdocs.yml").read_text(encoding="utf-8"))
    for name, text in pages.items():
        (tmp_path / "docs" / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / "docs" / name).write_text(text, encoding="utf-8")
    site = {"site_name": "t", "validation": config["validation"], "nav": nav}
    if hooks:
        site["hooks"] = [str(ROOT / hook) for hook in config["hooks"]]
    (tmp_path / "mkdocs.yml").write_text(yaml.safe_dump(site), encoding="utf-8")
    result = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "-d", str(tmp_path / "site")],
        cwd=tmp_path,
        env={**os.environ, "NO_MKDOCS_2_WARNING": "1"},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode != 0, result.stderr
    return result.stderr


@pytest.mark.parametrize(
    ("link", "warning"),
    [
        ("[gone](missing.md)", "not found among documentation files"),
        ("[gone](other.md#no-such-heading)", "does not contain an anchor '#no-such-heading'"),
        ("[outside](../README.md)", "not found among documentation files"),
    ],
)
def test_strict_fails_on_a_broken_link(tmp_path: Path, link: str, warning: str) -> None:
    """mkdocs.yml's validation settings make each of these a warning, which --strict
    turns into a failed build."""
    pages = {"index.md": f"# Home\n\n{link}\n", "other.md": "# Other\n\n## A heading\n"}
    assert warning in _build_small_site(tmp_path, pages, ["index.md", "other.md"])


def test_strict_fails_on_a_page_outside_the_nav(tmp_path: Path) -> None:
    pages = {"index.md": "# Home\n", "unlisted.md": "# Not in the nav\n"}
    assert "unlisted.md" in _build_small_site(tmp_path, pages, ["index.md"])


@pytest.mark.slow  # builds the whole site
def test_a_hand_written_page_where_a_generated_one_goes_fails_the_build(tmp_path: Path) -> None:
    pages = {"index.md": "# Home\n", "reference/cli.md": "# Edited by hand\n"}
    log = _build_small_site(tmp_path, pages, ["index.md"], hooks=True)
    assert "docs/reference/cli.md is generated" in log
