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

{{/* One image for operator and runtime. */}}
{{- define "rap-analyzer.image" -}}
{{- printf "%s:%s" .Values.image.repository (.Values.image.tag | default .Chart.AppVersion) }}
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
The Postgres password: postgres.password, else the one already stored in the
<fullname>-postgres Secret (so upgrades keep it), else 32 random characters.
Computed once per render and memoised in .Values (shared by every template),
so the password Secret and the URL in the database Secret agree.
`helm template` has no cluster, so it always generates a fresh one.
*/}}
{{- define "rap-analyzer.postgres.password" -}}
{{- if not (hasKey .Values.postgres "_resolvedPassword") }}
{{- $password := .Values.postgres.password }}
{{- if not $password }}
{{- $existing := lookup "v1" "Secret" .Release.Namespace (include "rap-analyzer.postgres.fullname" .) }}
{{- if and $existing $existing.data (hasKey $existing.data "password") }}
{{- $password = index $existing.data "password" | b64dec }}
{{- else }}
{{- $password = randAlphaNum 32 }}
{{- end }}
{{- end }}
{{- $_ := set .Values.postgres "_resolvedPassword" $password }}
{{- end }}
{{- .Values.postgres._resolvedPassword }}
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
# The Indexed Job per run: created on plan, read by the status refresh, patched
# for suspend/parallelism, deleted when the run is deleted.
- apiGroups: ["batch"]
  resources: ["jobs"]
  verbs: ["get", "list", "watch", "create", "patch", "delete"]
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
# core/v1 Events; events.k8s.io for clients that use the newer API).
- apiGroups: [""]
  resources: ["events"]
  verbs: ["create", "patch"]
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
