"""The documentation site's Reference pages, generated from the code on every
build (mkdocs.yml's hook is hook.py): the CRD fields from the pydantic models, the
CLI from typer, the configuration from the environment-variable table and the
chart's values.yaml, the metrics from the prometheus_client collectors. Generated,
so a field, option, value or metric cannot be missing from the docs."""
