"""Every generated Reference page: its path under docs/ and its Markdown. The one
module here that imports the product and reads the chart; the renderers beside it
are pure."""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from rap_devtools.docs_reference import chart_values, cli, crd_fields, env_vars, metrics

if TYPE_CHECKING:
    from analyzer_runtime.contract.env import EnvVar

ROOT = Path(__file__).resolve().parents[3]
VALUES_YAML = ROOT / "charts" / "rap-analyzer" / "values.yaml"


@dataclass(frozen=True)
class MetricSource:
    title: str
    module: str
    where: str


# Every module that defines Prometheus metrics, with the process that exports them.
# tests/unit/test_docs_reference.py finds the metric names in the source and fails
# on one that no module here defines.
METRIC_SOURCES = (
    MetricSource(
        "Operator",
        "rap_operator.metrics",
        "Exported by every operator replica on its metrics port (chart value "
        "`metrics.port`, `RAP_METRICS_PORT`), which the chart's metrics Service exposes. "
        "The per-run gauges (`rap_operator_run_*`) carry the run's namespace, name, kind "
        "and analyzer; a run's series go away when it is deleted and a while after it "
        "finished.",
    ),
    MetricSource(
        "Shard pods: analysis",
        "analyzer_runtime.metrics",
        "Exported by each shard pod of an AnalysisRun on port `METRICS_PORT` (the "
        "`--metrics-port` of `rap-analyzer analyze`). Which run and shard a series "
        "belongs to comes from the pod's labels, which the scrape attaches.",
    ),
    MetricSource(
        "Shard pods: scraping",
        "analyzer_runtime.scrape.http",
        "Exported by each shard pod of a ScrapeJob on port `METRICS_PORT` (the "
        "`--metrics-port` of `rap-analyzer scrape`).",
    ),
    MetricSource(
        "Search API",
        "analyzer_runtime.api.app",
        "Exported by `rap-analyzer serve` on its management port "
        "(`RAP_SEARCH_METRICS_PORT`; chart value `search.metricsPort`), not on the "
        "public port.",
    ),
)

GENERATED = (
    "This page is generated from the code on every build of the site "
    "(`rap_devtools/docs_reference`, run by the hook in `mkdocs.yml`); to change it, "
    "change the code it is read from."
)


def reference_pages() -> dict[str, str]:
    """docs/-relative path -> Markdown, for each page under docs/reference/."""
    return {
        "reference/index.md": index_page(),
        "reference/analysisrun.md": analysisrun_page(),
        "reference/scrapejob.md": scrapejob_page(),
        "reference/cli.md": cli_page(),
        "reference/configuration.md": configuration_page(),
        "reference/metrics.md": metrics_page(),
    }


def index_page() -> str:
    return (
        "# Reference\n\n"
        "Everything here is generated from the code, so it lists every field, command, "
        "option, setting and metric there is:\n\n"
        "- [AnalysisRun](analysisrun.md): every field of the resource's spec and status, "
        "with its type, default, limits and meaning (from the pydantic models the CRD "
        "is generated from).\n"
        "- [ScrapeJob](scrapejob.md): the same for ScrapeJob.\n"
        "- [Command line](cli.md): every `rap-analyzer` command, argument and option.\n"
        "- [Configuration](configuration.md): the environment variables each process "
        "reads, and every value of the Helm chart.\n"
        "- [Metrics](metrics.md): every Prometheus metric the operator, the shard pods "
        "and the search API export.\n\n" + GENERATED + "\n"
    )


def analysisrun_page() -> str:
    from analyzer_runtime.contract.crd import analysisrun_crd

    return crd_fields.render_page(
        "AnalysisRun",
        analysisrun_crd(),
        "Examples: `examples/analysisrun*.yaml`; `rap-analyzer validate FILE` checks "
        "a manifest against the same models, without a cluster.",
    )


def scrapejob_page() -> str:
    from analyzer_runtime.contract.crd import scrapejob_crd

    return crd_fields.render_page(
        "ScrapeJob",
        scrapejob_crd(),
        "An example: `examples/scrapejob.yaml`.",
    )


def cli_docs() -> list[cli.CommandDoc]:
    import typer

    from analyzer_runtime.cli import app

    root = typer.main.get_command(app)
    return cli.commands(root, root.context_class, "rap-analyzer")


def cli_page() -> str:
    return cli.render_page(
        cli_docs(),
        "`rap-analyzer` runs everything outside the operator: local runs, the shard "
        "pods' work, the database, search, export and reports. `rap-analyzer COMMAND "
        "--help` prints the same as this page. " + GENERATED,
    )


def env_entries() -> list[EnvVar]:
    from analyzer_runtime.contract.env import ENV_VARS

    return list(ENV_VARS)


def value_docs() -> list[chart_values.ValueDoc]:
    return chart_values.values(VALUES_YAML.read_text(encoding="utf-8"))


def configuration_page() -> str:
    return (
        "# Configuration\n\n" + GENERATED + "\n\n"
        "## Environment variables {#environment-variables}\n\n"
        "What each process reads from its environment. The chart sets the operator's "
        "from its values, and the operator sets the shard pods'.\n\n"
        + env_vars.render_section(env_entries())
        + "\n## Helm chart values {#chart-values}\n\n"
        "The values of `charts/rap-analyzer` (`helm install ... --set key=value` or "
        "`--values file.yaml`), with their defaults and the comments of "
        "`values.yaml`. A key without a description of its own belongs to the map "
        "above it (Kubernetes fields such as `resources` and `securityContext`).\n\n"
        + chart_values.render_section(value_docs())
    )


def metric_docs() -> list[tuple[MetricSource, list[metrics.MetricDoc]]]:
    return [(s, metrics.module_metrics(importlib.import_module(s.module))) for s in METRIC_SOURCES]


def metrics_page() -> str:
    sections = [metrics.render_section(s.title, s.where, docs) for s, docs in metric_docs()]
    return (
        "# Metrics\n\n"
        "Every Prometheus metric the project exports, read from the prometheus_client "
        "collectors of the modules that define them. Labels are bounded: never a run's "
        "or a shard's id. " + GENERATED + "\n\n" + "\n".join(sections)
    )
