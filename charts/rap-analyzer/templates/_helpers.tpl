{{/* Names, labels and the shared pieces every template uses. */}}

{{- define "rap-analyzer.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Release-wide name prefix: the release name, plus the chart name unless the release name contains it. */}}
{{- define "rap-analyzer.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- $name := default .Chart.Name .Values.nameOverride }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{- define "rap-analyzer.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "rap-analyzer.labels" -}}
helm.sh/chart: {{ include "rap-analyzer.chart" . }}
app.kubernetes.io/name: {{ include "rap-analyzer.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: rap-analyzer
{{- end }}

{{/* Selector labels of the operator (component=operator). */}}
{{- define "rap-analyzer.selectorLabels" -}}
app.kubernetes.io/name: {{ include "rap-analyzer.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/component: operator
{{- end }}

{{/* Selector labels of the in-cluster Postgres (component=database). */}}
{{- define "rap-analyzer.postgres.selectorLabels" -}}
app.kubernetes.io/name: {{ include "rap-analyzer.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/component: database
{{- end }}

{{- define "rap-analyzer.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "rap-analyzer.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{/*
The worker image (values `image`): the Job pods (RAP_RUNTIME_IMAGE), the search
API, the ledger gc and the db-roles hook run it.
*/}}
{{- define "rap-analyzer.image" -}}
{{- include "rap-analyzer.imageRef" (dict "image" .Values.image "defaultTag" .Chart.AppVersion) }}
{{- end }}

{{/*
The operator image (values `operator.image`): the operator Deployment and the hooks
that only talk to the Kubernetes API (CRD upgrade, database Secret, search token).
Each empty field follows `image`, so a chart that sets only image.repository/tag
(one image before 0.2.0) gets <repository>-operator at the same tag. A digest is
never derived (it names one image's content): with image.digest set,
operator.image.digest must be set too, or the operator would run a mutable tag.
*/}}
{{- define "rap-analyzer.operatorImage" -}}
{{- $op := .Values.operator.image | default dict }}
{{- if and .Values.image.digest (not $op.digest) }}
{{- fail "image.digest pins the worker image: set operator.image.digest too (the operator has its own image since chart 0.2.0; operator.image.repository=<image.repository> with the same digest runs it from the worker image)" }}
{{- end }}
{{- $img := dict
  "repository" ($op.repository | default (printf "%s-operator" .Values.image.repository))
  "tag" ($op.tag | default .Values.image.tag)
  "digest" ($op.digest | default "") }}
{{- include "rap-analyzer.imageRef" (dict "image" $img "defaultTag" .Chart.AppVersion) }}
{{- end }}

{{/* The operator image's pull policy: operator.image.pullPolicy, else image.pullPolicy. */}}
{{- define "rap-analyzer.operatorImagePullPolicy" -}}
{{- (.Values.operator.image | default dict).pullPolicy | default .Values.image.pullPolicy }}
{{- end }}

{{/*
An image reference from {repository, tag, digest}: repository@digest when a
digest is set (tags are mutable; a digest is what was reviewed), else
repository:tag (defaultTag when tag is empty).
*/}}
{{- define "rap-analyzer.imageRef" -}}
{{- $img := .image }}
{{- with $img.digest }}
{{- if not (regexMatch "^sha256:[a-f0-9]{64}$" .) }}
{{- fail (printf "image digest %q of %s must be sha256:<64 hex digits>" . $img.repository) }}
{{- end }}
{{- printf "%s@%s" $img.repository . }}
{{- else }}
{{- printf "%s:%s" $img.repository ($img.tag | default $.defaultTag) }}
{{- end }}
{{- end }}

{{/*
The namespaces the operator watches, comma-separated (RAP_NAMESPACES); empty
means all namespaces. With rbac.clusterWide=false and no watchNamespaces the
release namespace alone is watched: namespaced RBAC cannot cover "all".
*/}}
{{- define "rap-analyzer.watchNamespaces" -}}
{{- if .Values.watchNamespaces }}
{{- join "," (uniq .Values.watchNamespaces) }}
{{- else if not .Values.rbac.clusterWide }}
{{- .Release.Namespace }}
{{- end }}
{{- end }}

{{/* postgres.enabled and no external database configured. */}}
{{- define "rap-analyzer.postgres.enabled" -}}
{{- if and .Values.postgres.enabled (not .Values.database.url) (not .Values.database.existingSecret) }}true{{- end }}
{{- end }}

{{- define "rap-analyzer.postgres.fullname" -}}
{{- printf "%s-postgres" (include "rap-analyzer.fullname" .) | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
The in-cluster Postgres password, given as a value: postgres.auth.password, or
postgres.password (its name before postgres.auth existed). Empty: it comes from
postgres.auth.existingSecret, or the hook Job generates it (never a render:
no cluster reads and no randomness at render time, so `helm template` output
is stable).
*/}}
{{- define "rap-analyzer.postgres.passwordValue" -}}
{{- $auth := .Values.postgres.auth | default dict }}
{{- $auth.password | default .Values.postgres.password | default "" }}
{{- end }}

{{/* Where the Postgres password is: existingSecret, value or generated. */}}
{{- define "rap-analyzer.postgres.passwordSource" -}}
{{- $auth := .Values.postgres.auth | default dict }}
{{- if $auth.existingSecret }}existingSecret
{{- else if include "rap-analyzer.postgres.passwordValue" . }}value
{{- else }}generated
{{- end }}
{{- end }}

{{/* The Secret (and key) the Postgres container reads POSTGRES_PASSWORD from. */}}
{{- define "rap-analyzer.postgres.passwordSecret" -}}
{{- $auth := .Values.postgres.auth | default dict }}
{{- $auth.existingSecret | default (include "rap-analyzer.postgres.fullname" .) }}
{{- end }}

{{- define "rap-analyzer.postgres.passwordKey" -}}
{{- $auth := .Values.postgres.auth | default dict }}
{{- if $auth.existingSecret }}
{{- $auth.existingSecretKey | default "password" }}
{{- else }}
{{- print "password" }}
{{- end }}
{{- end }}

{{/*
The hook Job (templates/postgres-secret-job.yaml) writes the password Secret
(generated) and the database URL Secret: in-cluster Postgres whose password is
not a value. With a value, both Secrets are ordinary rendered objects.
*/}}
{{- define "rap-analyzer.postgres.secretJob.enabled" -}}
{{- if and (include "rap-analyzer.postgres.enabled" .) (ne (include "rap-analyzer.postgres.passwordSource" .) "value") }}true{{- end }}
{{- end }}

{{- define "rap-analyzer.postgres.secretJob.fullname" -}}
{{- printf "%s-db-secret" (include "rap-analyzer.fullname" .) | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* The in-cluster Postgres's host: the namespace-qualified Service name. */}}
{{- define "rap-analyzer.pgbouncer.fullname" -}}
{{- printf "%s-pgbouncer" (include "rap-analyzer.fullname" .) | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "rap-analyzer.postgres.host" -}}
{{- printf "%s.%s.svc" (include "rap-analyzer.postgres.fullname" .) .Release.Namespace }}
{{- end }}

{{/*
Labels and annotations of the Secrets the hook Job writes. No
app.kubernetes.io/instance: Argo CD tracks resources by that label and would
prune a Secret that is not in the rendered manifest. resource-policy keep: Helm
(and Argo CD) never delete them, since the data volume outlives the release.
The meta.helm.sh annotations and managed-by=Helm let a later release that
renders the same Secret (postgres.auth.password set) adopt it.
*/}}
{{- define "rap-analyzer.postgres.secretJob.secretLabels" -}}
{{- dict "app.kubernetes.io/name" (include "rap-analyzer.name" .) "app.kubernetes.io/part-of" "rap-analyzer" "app.kubernetes.io/component" "database" "app.kubernetes.io/managed-by" "Helm" | toJson }}
{{- end }}

{{- define "rap-analyzer.postgres.secretJob.secretAnnotations" -}}
{{- dict "helm.sh/resource-policy" "keep" "meta.helm.sh/release-name" .Release.Name "meta.helm.sh/release-namespace" .Release.Namespace | toJson }}
{{- end }}

{{/* Name and key of the Secret holding the database URL (RAP_DATABASE_SECRET[_KEY]). */}}
{{- define "rap-analyzer.database.secretName" -}}
{{- default .Values.database.secretName .Values.database.existingSecret }}
{{- end }}

{{- define "rap-analyzer.database.secretKey" -}}
{{- if .Values.database.existingSecret }}
{{- .Values.database.existingSecretKey | default "url" }}
{{- else }}
{{- .Values.database.secretKey | default "url" }}
{{- end }}
{{- end }}

{{/* Refuse a release without any database. */}}
{{- define "rap-analyzer.database.validate" -}}
{{- if not (or .Values.database.url .Values.database.existingSecret .Values.postgres.enabled) }}
{{- fail "no database: set database.url, database.existingSecret, or postgres.enabled=true" }}
{{- end }}
{{- if and .Values.database.url .Values.database.existingSecret }}
{{- fail "set database.url or database.existingSecret, not both" }}
{{- end }}
{{- end }}

{{/*
The RBAC rules of the operator. ONE definition for both the namespaced Role
and the ClusterRole so the two can never diverge; the e2e tests run the
operator with exactly these rules (tests/helm.py: rbac_rules).

"rap-analyzer.rbac.namespacedRules": what it does inside a watched namespace.
*/}}
{{- define "rap-analyzer.rbac.namespacedRules" -}}
# The custom resources: kopf lists and watches them, patches metadata
# (finalizer, its progress/diff-base annotations) and the operator's handlers
# read them. update: kopf falls back to it when removing its finalizer.
- apiGroups: ["rapanalyzer.io"]
  resources: ["analysisruns", "scrapejobs"]
  verbs: ["get", "list", "watch", "patch", "update"]
# A ScrapeJob with spec.analyze: once it succeeds, the operator creates that
# AnalysisRun (owned by the ScrapeJob). create on analysisruns only.
- apiGroups: ["rapanalyzer.io"]
  resources: ["analysisruns"]
  verbs: ["create"]
# .status is a subresource: the status refresh timer patches it.
- apiGroups: ["rapanalyzer.io"]
  resources: ["analysisruns/status", "scrapejobs/status"]
  verbs: ["get", "patch", "update"]
# The Jobs (and a ScrapeJob's AnalysisRun) the operator creates name their owner
# with blockOwnerDeletion: true. With the OwnerReferencesPermissionEnforcement
# admission plugin (OpenShift), that create is refused unless the creator may
# update the owner's finalizers subresource.
- apiGroups: ["rapanalyzer.io"]
  resources: ["analysisruns/finalizers", "scrapejobs/finalizers"]
  verbs: ["update"]
# The Indexed Job per run: created on plan, read by the status refresh, patched
# for suspend/parallelism, deleted when the run is deleted.
- apiGroups: ["batch"]
  resources: ["jobs"]
  verbs: ["get", "list", "watch", "create", "patch", "delete"]
# Kueue (a run with spec.queueName): the Workload of each queued Job is watched
# for the run's QueueAdmitted/Queued/Preempted conditions, and patched
# (spec.active) for spec.suspend. Harmless where Kueue is not installed.
- apiGroups: ["kueue.x-k8s.io"]
  resources: ["workloads"]
  verbs: ["get", "list", "watch", "patch"]
# Validation reads the database URL (and LLM API-key, Genius/Spotify) Secrets a run names; the
# operator needs the URL itself to plan the run in Postgres. get only: it never
# lists Secrets.
- apiGroups: [""]
  resources: ["secrets"]
  verbs: ["get"]
# A ScrapeJob's spec.artistsFrom: its ConfigMap key is read once, at planning.
- apiGroups: [""]
  resources: ["configmaps"]
  verbs: ["get"]
# Kubernetes Events on phase changes and validation failures (kopf posts
# core/v1 Events; events.k8s.io for clients that use the newer API). list: a Job
# without pods has its FailedCreate Events read, to say why on the run.
- apiGroups: [""]
  resources: ["events"]
  verbs: ["create", "patch", "list"]
# A run's pods are listed (never watched) only when its Job says some are not
# ready or failed: unschedulable, image pull errors and OOM kills show on the run.
- apiGroups: [""]
  resources: ["pods"]
  verbs: ["list"]
- apiGroups: ["events.k8s.io"]
  resources: ["events"]
  verbs: ["create", "patch"]
{{- end }}

{{/*
"rap-analyzer.rbac.clusterRules": the cluster-scoped reads kopf itself makes,
which no Role can grant.
*/}}
{{- define "rap-analyzer.rbac.clusterRules" -}}
# kopf scans CustomResourceDefinitions at start-up and watches them to learn
# which of its resources exist (and their status subresource).
- apiGroups: ["apiextensions.k8s.io"]
  resources: ["customresourcedefinitions"]
  verbs: ["list", "watch"]
# kopf watches Namespaces to follow the set of namespaces it serves.
- apiGroups: [""]
  resources: ["namespaces"]
  verbs: ["list", "watch"]
{{- end }}

{{/*
Name of cluster-scoped objects (ClusterRole, ClusterRoleBinding): prefixed
with the release namespace so two releases of the same name in different
namespaces do not collide.
*/}}
{{- define "rap-analyzer.clusterName" -}}
{{- printf "%s-%s" .Release.Namespace (include "rap-analyzer.fullname" .) | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
Least-privilege roles (database.roles): with the in-cluster Postgres whose password
the hook Job handles (generated or existingSecret), so that the same Job generates
the roles' passwords. Otherwise the single database URL stays as it was.
*/}}
{{- define "rap-analyzer.database.roles.enabled" -}}
{{- $roles := .Values.database.roles | default dict }}
{{- if and $roles.enabled (include "rap-analyzer.postgres.secretJob.enabled" .) }}true{{- end }}
{{- end }}

{{- define "rap-analyzer.database.roles.jobName" -}}
{{- printf "%s-db-roles" (include "rap-analyzer.fullname" .) | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* The Secret (and key) of the search API's database URL: the search role's with roles. */}}
{{- define "rap-analyzer.database.searchSecretName" -}}
{{- if include "rap-analyzer.database.roles.enabled" . }}
{{- .Values.database.roles.search.secretName }}
{{- else }}
{{- include "rap-analyzer.database.secretName" . }}
{{- end }}
{{- end }}

{{- define "rap-analyzer.database.searchSecretKey" -}}
{{- if include "rap-analyzer.database.roles.enabled" . }}
{{- print "url" }}
{{- else }}
{{- include "rap-analyzer.database.secretKey" . }}
{{- end }}
{{- end }}
