"""`rap-analyzer model ...`: models distilled from stored results (the quality model)."""

from __future__ import annotations

from typing import Annotated, Any

import typer

from analyzer_runtime.commands.common import EXIT_INVALID, _fail, _migrate, _with_db, out
from analyzer_runtime.ledger.connect import pool_for

model_app = typer.Typer(
    no_args_is_help=True, help="Models distilled from stored results (the quality model)."
)


@model_app.command("train")
def model_train(
    name: Annotated[str, typer.Argument(help="the model to train: quality")],
    from_run: Annotated[
        str | None,
        typer.Option("--from-run", help="the llm AnalysisRun (name or uid) whose labels"),
    ] = None,
    from_analyzer: Annotated[
        str | None,
        typer.Option(
            "--from-analyzer",
            help="instead of a run: an analyzer_type's stored labels, e.g. the adopted"
            " qwen-3-4b-fp8 (README: Legacy labels)",
        ),
    ] = None,
    version: Annotated[
        str | None,
        typer.Option("--version", help="with --from-analyzer: one model_version (default: all)"),
    ] = None,
    folds: Annotated[int, typer.Option(help="k of the k-fold evaluation")] = 5,
    as_json: Annotated[bool, typer.Option("--json", help="print the metrics as JSON")] = False,
) -> None:
    """Train the distilled quality model from an llm run's labels (or an analyzer's:
    --from-analyzer) and the stored algorithmic/emotion features; report k-fold MAE and
    Spearman; store it versioned."""
    import json

    from analyzer_runtime.quality import MODEL_NAME, training

    if name != MODEL_NAME:
        raise _fail(f"unknown model {name!r}; available: {MODEL_NAME}", EXIT_INVALID)
    if (from_run is None) == (from_analyzer is None):
        raise _fail(
            "give --from-run RUN (an llm AnalysisRun) or --from-analyzer TYPE, not both",
            EXIT_INVALID,
        )
    if version is not None and from_analyzer is None:
        raise _fail("--version goes with --from-analyzer", EXIT_INVALID)

    async def go(url: str) -> Any:
        await _migrate(url)
        async with pool_for(url, max_size=1) as pool, pool.acquire() as conn:
            return await training.train(
                conn,
                from_run,
                from_analyzer=from_analyzer,
                analyzer_version=version,
                folds=folds,
            )

    try:
        model, metrics = _with_db(go)
    except training.TrainingError as exc:
        raise _fail(str(exc), EXIT_INVALID) from None
    if as_json:
        doc = {"name": model.name, "version": model.version, "trainedFrom": model.training_run,
               "sha256": model.sha256, "metrics": metrics}  # fmt: skip
        print(json.dumps(doc, indent=2))
    else:
        out.print(training.render_metrics(model, metrics), highlight=False)


@model_app.command("list")
def model_list(
    as_json: Annotated[bool, typer.Option("--json", help="print JSON")] = False,
) -> None:
    """The stored models: name, version, training run, tracks, held-out MAE."""
    import json

    from analyzer_runtime.quality import storage

    async def go(url: str) -> Any:
        await _migrate(url)
        async with pool_for(url, max_size=1) as pool, pool.acquire() as conn:
            return await storage.list_models(conn)

    models = _with_db(go)
    rows = [
        {"name": m.name, "version": m.version, "trainedFrom": m.training_run,
         "tracks": m.training_tracks, "createdAt": m.created_at.isoformat(),
         "format": m.format, "sklearnVersion": m.sklearn_version,
         "mae": {t: v["gradient_boosting"]["mae"] for t, v in m.metrics["targets"].items()}}
        for m in models
    ]  # fmt: skip
    if as_json:
        print(json.dumps(rows, indent=2))
        return
    if not rows:
        out.print(
            "no models; train one: rap-analyzer model train quality --from-run <llm run>"
            " (or --from-analyzer <analyzer_type>)"
        )
    for r in rows:
        maes = ", ".join(f"{t} MAE {v:.3f}" for t, v in r["mae"].items())
        # A pickle (or another scikit-learn) is listed but not loaded: say so here.
        made = f"{r['format']}, scikit-learn {r['sklearnVersion'] or '?'}"
        out.print(
            f"{r['name']} v{r['version']}  from {r['trainedFrom']}  {r['tracks']} tracks"
            f"  {maes}  {made}  {r['createdAt']}",
            highlight=False,
        )
