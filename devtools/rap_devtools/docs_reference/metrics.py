"""The Prometheus metrics a module defines, read from its prometheus_client
collectors: the metric objects at module level (Counter, Gauge, Histogram, ...) and
the custom collectors its classes implement (families built at scrape time).

prometheus_client keeps a metric's label names only in the private `_labelnames`
(its public describe() and collect() carry labels on samples, and a labelled
metric has none until a label set is used), so that attribute is read here, in one
place; tests/unit/test_docs_reference.py checks the names against the source."""

from __future__ import annotations

import inspect
from collections.abc import Iterator
from dataclasses import dataclass
from types import ModuleType
from typing import Any, cast

from prometheus_client.metrics import MetricWrapperBase
from prometheus_client.registry import Collector

from rap_devtools.docs_reference.markdown import cell, code, table, with_details

# The series each type exposes besides its name.
_SUFFIXES = {
    "histogram": ("_bucket", "_sum", "_count"),
    "summary": ("_sum", "_count"),
    "info": ("_info",),
}


@dataclass(frozen=True)
class MetricDoc:
    name: str  # as queried: rap_analyzer_items_total, rap_operator_reconcile_seconds
    type: str
    labels: tuple[str, ...]
    help: str


def module_metrics(module: ModuleType) -> list[MetricDoc]:
    """Every metric `module` defines, by name."""
    found: dict[str, MetricDoc] = {}
    for value in vars(module).values():
        if isinstance(value, MetricWrapperBase):
            doc = _wrapper(value)
            found[doc.name] = doc
        elif (
            inspect.isclass(value)
            and value.__module__ == module.__name__
            # Collector is a Protocol without runtime checks: issubclass() refuses
            # it, the MRO says whether the class derives from it.
            and Collector in value.__mro__
            and MetricWrapperBase not in value.__mro__
        ):
            # A custom collector: a fresh instance has no data yet, but its families
            # (names, types, help, label names) are all there.
            collector = cast(Collector, value())  # the MRO check above
            for doc in _families(collector.collect()):
                found[doc.name] = doc
    return sorted(found.values(), key=lambda d: d.name)


def _wrapper(metric: MetricWrapperBase) -> MetricDoc:
    (family,) = metric.describe()
    return MetricDoc(
        name=_queried_name(family.name, family.type),
        type=family.type,
        labels=tuple(getattr(metric, "_labelnames", ())),
        help=family.documentation,
    )


def _families(families: Any) -> Iterator[MetricDoc]:
    for family in families:
        yield MetricDoc(
            name=_queried_name(family.name, family.type),
            type=family.type,
            labels=tuple(getattr(family, "_labelnames", ())),
            help=family.documentation,
        )


def _queried_name(family: str, kind: str) -> str:
    # A counter's family is named without _total; its one series is family_total.
    return family + "_total" if kind == "counter" else family


def series_suffixes(doc: MetricDoc) -> tuple[str, ...]:
    """The suffixes of the series a scrape shows besides the name (a histogram's
    _bucket, _sum, _count); none for a counter, whose name already ends in _total."""
    if doc.type == "counter":
        return ()
    return _SUFFIXES.get(doc.type, ())


def render_section(title: str, where: str, docs: list[MetricDoc]) -> str:
    rows = [
        [
            f"{code(d.name)}<br>{d.type}",
            with_details(
                cell(d.help),
                [
                    ("Labels", ", ".join(code(label) for label in d.labels)),
                    ("Series", " ".join(code(d.name + s) for s in series_suffixes(d))),
                ],
            ),
        ]
        for d in docs
    ]
    return f"## {title}\n\n{where}\n\n" + table(["Metric", "Description"], rows)
