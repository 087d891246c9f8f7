"""The labels, annotations and finalizer names the operator puts on (or reads from)
Kubernetes objects: one place for names that Jobs, pods, dashboards, Argo CD health
checks and users' selectors depend on."""

from __future__ import annotations

# ---- on a run's Job and pods -------------------------------------------------------
LABEL_RUN = "rapanalyzer.io/run"  # the run's name (at most 63 characters)
LABEL_RUN_UID = "rapanalyzer.io/run-uid"  # the run resource's uid
LABEL_KIND = "rapanalyzer.io/kind"  # analysisrun | scrapejob
LABEL_APP_NAME = "app.kubernetes.io/name"
LABEL_APP_COMPONENT = "app.kubernetes.io/component"
LABEL_MANAGED_BY = "app.kubernetes.io/managed-by"
APP_NAME = "rap-analyzer"
SHARD_COMPONENT = "shard"
MANAGED_BY = "rap-analyzer-operator"

# ---- on an AnalysisRun a ScrapeJob created (spec.analyze) ---------------------------
LABEL_SCRAPEJOB = "rapanalyzer.io/scrapejob"  # the ScrapeJob's name

# ---- on a run resource ---------------------------------------------------------------
# The database Secret (name/key) a run was planned with: after an operator restart the
# status is read from that database, whatever a (refused) spec change says now.
DATABASE_ANNOTATION = "rapanalyzer.io/database-secret"
# The finalizer older versions put on every run; removed on sight.
OLD_FINALIZER = "rapanalyzer.io/finalizer"

# ---- on a Secret ---------------------------------------------------------------------
# `true`: runs may reference the Secret (the chart's default policy; policy.py).
USABLE_LABEL = "rapanalyzer.io/usable-by-runs"

# ---- Kueue's, passed on or set by the operator --------------------------------------
QUEUE_LABEL = "kueue.x-k8s.io/queue-name"
PRIORITY_CLASS_LABEL = "kueue.x-k8s.io/priority-class"
# Kueue's partial admission: the Job may be admitted with as few pods as this.
MIN_PARALLELISM_ANNOTATION = "kueue.x-k8s.io/job-min-parallelism"
