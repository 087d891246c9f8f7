"""Every environment variable our code reads: its name, what it means, and who reads it.

The configuration reference of the documentation is generated from `ENV_VARS`, and
tests/unit/test_env_vars.py fails when a module reads a variable (by a literal name)
that is not listed here. Modules use the constants below rather than repeating a name.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

Reader = Literal["operator", "shard pods", "search", "gc", "cli"]
READERS: tuple[Reader, ...] = ("operator", "shard pods", "search", "gc", "cli")


@dataclass(frozen=True, slots=True)
class EnvVar:
    name: str
    description: str
    used_by: tuple[Reader, ...]


_ALL_DB: tuple[Reader, ...] = ("operator", "shard pods", "search", "gc", "cli")
_PODS_CLI: tuple[Reader, ...] = ("shard pods", "cli")

# ---- the database --------------------------------------------------------------
DATABASE_URL = "DATABASE_URL"
DATABASE_POOL_MODE = "DATABASE_POOL_MODE"
RAP_MIGRATION_DATABASE_URL = "RAP_MIGRATION_DATABASE_URL"
DB_CONNECT_TIMEOUT = "DB_CONNECT_TIMEOUT"
RAP_DB_CONNECT_TIMEOUT = "RAP_DB_CONNECT_TIMEOUT"
RAP_DB_COMMAND_TIMEOUT = "RAP_DB_COMMAND_TIMEOUT"
RAP_DB_LONG_COMMAND_TIMEOUT = "RAP_DB_LONG_COMMAND_TIMEOUT"
RAP_DB_CONNECTION_BUDGET = "RAP_DB_CONNECTION_BUDGET"
RAP_DB_RESERVED_CONNECTIONS = "RAP_DB_RESERVED_CONNECTIONS"
RAP_DATABASE_SECRET = "RAP_DATABASE_SECRET"
RAP_DATABASE_SECRET_KEY = "RAP_DATABASE_SECRET_KEY"
RAP_DB_OWNER_ROLE = "RAP_DB_OWNER_ROLE"
RAP_DB_RUNTIME_ROLE = "RAP_DB_RUNTIME_ROLE"
RAP_DB_SEARCH_ROLE = "RAP_DB_SEARCH_ROLE"
RAP_DB_OWNER_PASSWORD = "RAP_DB_OWNER_PASSWORD"
RAP_DB_RUNTIME_PASSWORD = "RAP_DB_RUNTIME_PASSWORD"
RAP_DB_SEARCH_PASSWORD = "RAP_DB_SEARCH_PASSWORD"
RAP_ANALYZER_DATA_DIR = "RAP_ANALYZER_DATA_DIR"

# ---- the operator ---------------------------------------------------------------
RAP_NAMESPACES = "RAP_NAMESPACES"
RAP_RUNTIME_IMAGE = "RAP_RUNTIME_IMAGE"
RAP_RUNTIME_IMAGE_PULL_POLICY = "RAP_RUNTIME_IMAGE_PULL_POLICY"
RAP_RUNTIME_COMMAND = "RAP_RUNTIME_COMMAND"
RAP_RUNTIME_SERVICE_ACCOUNT = "RAP_RUNTIME_SERVICE_ACCOUNT"
RAP_STATUS_INTERVAL = "RAP_STATUS_INTERVAL"
RAP_SWEEP_INTERVAL = "RAP_SWEEP_INTERVAL"
RAP_METRICS_PORT = "RAP_METRICS_PORT"
RAP_POD_METRICS_PORT = "RAP_POD_METRICS_PORT"
RAP_POD_RUN_AS_USER = "RAP_POD_RUN_AS_USER"
RAP_METRICS_RUN_RETENTION_SECONDS = "RAP_METRICS_RUN_RETENTION_SECONDS"
RAP_LIVENESS = "RAP_LIVENESS"
RAP_LEADER_ELECTION = "RAP_LEADER_ELECTION"
RAP_LEADER_ELECTION_LEASE = "RAP_LEADER_ELECTION_LEASE"
RAP_LEADER_ELECTION_NAMESPACE = "RAP_LEADER_ELECTION_NAMESPACE"
POD_NAME = "POD_NAME"
POD_NAMESPACE = "POD_NAMESPACE"
LOG_LEVEL = "LOG_LEVEL"
KUBECONFIG = "KUBECONFIG"
KUBERNETES_SERVICE_HOST = "KUBERNETES_SERVICE_HOST"
RAP_POLICY_ALLOWED_IMAGES = "RAP_POLICY_ALLOWED_IMAGES"
RAP_POLICY_ALLOWED_HOSTS_LLM = "RAP_POLICY_ALLOWED_HOSTS_LLM"
RAP_POLICY_ALLOWED_HOSTS_GENIUS = "RAP_POLICY_ALLOWED_HOSTS_GENIUS"
RAP_POLICY_ALLOWED_HOSTS_SPOTIFY = "RAP_POLICY_ALLOWED_HOSTS_SPOTIFY"
RAP_POLICY_SECRET_LABEL = "RAP_POLICY_SECRET_LABEL"
RAP_POLICY_ALLOWED_SECRETS = "RAP_POLICY_ALLOWED_SECRETS"

# ---- the shard pods -------------------------------------------------------------
JOB_COMPLETION_INDEX = "JOB_COMPLETION_INDEX"
RAP_LEASE_SECONDS = "RAP_LEASE_SECONDS"
RAP_STOP_GRACE_SECONDS = "RAP_STOP_GRACE_SECONDS"
LLM_API_KEY = "LLM_API_KEY"
NOVITA_API_KEY = "NOVITA_API_KEY"
OPENAI_API_KEY = "OPENAI_API_KEY"
RAP_LLM_RATE_WINDOW_SECONDS = "RAP_LLM_RATE_WINDOW_SECONDS"
RAP_LLM_BATCH_POLL_SECONDS = "RAP_LLM_BATCH_POLL_SECONDS"
GENIUS_ACCESS_TOKEN = "GENIUS_ACCESS_TOKEN"
SPOTIFY_CLIENT_ID = "SPOTIFY_CLIENT_ID"
SPOTIFY_CLIENT_SECRET = "SPOTIFY_CLIENT_SECRET"
RAP_EMBEDDING_MODEL_DIR = "RAP_EMBEDDING_MODEL_DIR"
RAP_EMBEDDING_THREADS = "RAP_EMBEDDING_THREADS"
RAP_EMBEDDING_ROW_BLOCK = "RAP_EMBEDDING_ROW_BLOCK"
RAP_ANALYZER_DEBUG = "RAP_ANALYZER_DEBUG"
METRICS_PORT = "METRICS_PORT"

# ---- the search API (api/settings.py builds these from a prefix) ----------------
RAP_SEARCH_TOKEN = "RAP_SEARCH_TOKEN"
RAP_SEARCH_TOKEN_FILE = "RAP_SEARCH_TOKEN_FILE"
RAP_SEARCH_MAX_IN_FLIGHT = "RAP_SEARCH_MAX_IN_FLIGHT"
RAP_SEARCH_POOL_SIZE = "RAP_SEARCH_POOL_SIZE"
RAP_SEARCH_ACQUIRE_TIMEOUT = "RAP_SEARCH_ACQUIRE_TIMEOUT"
RAP_SEARCH_STATEMENT_TIMEOUT = "RAP_SEARCH_STATEMENT_TIMEOUT"
RAP_SEARCH_READY_TIMEOUT = "RAP_SEARCH_READY_TIMEOUT"
RAP_SEARCH_METRICS_PORT = "RAP_SEARCH_METRICS_PORT"

ENV_VARS: tuple[EnvVar, ...] = (
    EnvVar(DATABASE_URL, "The postgres:// URL of the database (from the database Secret in the cluster); the CLI starts an embedded Postgres when it is unset.", _ALL_DB),
    EnvVar(DATABASE_POOL_MODE, "How DATABASE_URL's server pools connections: `session` (default: PostgreSQL, or a pooler in session mode) or `transaction` (PgBouncer's pool_mode=transaction).", _ALL_DB),
    EnvVar(RAP_MIGRATION_DATABASE_URL, "The URL the operator migrates its database through: the schema owner's (the chart's db-roles Secret), while DATABASE_URL is the runtime role's; unset: DATABASE_URL.", ("operator",)),
    EnvVar(DB_CONNECT_TIMEOUT, "Seconds a shard pod keeps retrying its first connection before it exits (default 60).", ("shard pods",)),
    EnvVar(RAP_DB_CONNECT_TIMEOUT, "Seconds the operator waits for one connection to the database (default 5).", ("operator",)),
    EnvVar(RAP_DB_COMMAND_TIMEOUT, "Seconds one operator statement may take (default 5; a status refresh reads O(shards) rows).", ("operator",)),
    EnvVar(RAP_DB_LONG_COMMAND_TIMEOUT, "Seconds the operator's long statements (planning, migrations) may take (default 300).", ("operator",)),
    EnvVar(RAP_DB_CONNECTION_BUDGET, "Connections the operator may let runs use in total; unset: read from the server's max_connections.", ("operator",)),
    EnvVar(RAP_DB_RESERVED_CONNECTIONS, "Connections kept out of the budget for everything else (admins, search, gc).", ("operator",)),
    EnvVar(RAP_DATABASE_SECRET, "The Secret holding the database URL that the operator hands to the pods of runs without spec.database.", ("operator",)),
    EnvVar(RAP_DATABASE_SECRET_KEY, "The key of that Secret's URL.", ("operator",)),
    EnvVar(RAP_DB_OWNER_ROLE, "The role that owns the schema and migrates it (`rap-analyzer db roles`).", ("cli",)),
    EnvVar(RAP_DB_RUNTIME_ROLE, "The role shard pods and the operator connect as (`rap-analyzer db roles`).", ("cli",)),
    EnvVar(RAP_DB_SEARCH_ROLE, "The read-only role of the search API (`rap-analyzer db roles`).", ("cli",)),
    EnvVar(RAP_DB_OWNER_PASSWORD, "The owner role's password, set by `rap-analyzer db roles`.", ("cli",)),
    EnvVar(RAP_DB_RUNTIME_PASSWORD, "The runtime role's password, set by `rap-analyzer db roles`.", ("cli",)),
    EnvVar(RAP_DB_SEARCH_PASSWORD, "The search role's password, set by `rap-analyzer db roles`.", ("cli",)),
    EnvVar(RAP_ANALYZER_DATA_DIR, "Where the CLI's embedded Postgres keeps its data (default: the user data directory).", ("cli",)),
    EnvVar(RAP_NAMESPACES, "Namespaces the operator watches (comma-separated); unset: every namespace.", ("operator",)),
    EnvVar(RAP_RUNTIME_IMAGE, "The image of the shard pods the operator creates.", ("operator",)),
    EnvVar(RAP_RUNTIME_IMAGE_PULL_POLICY, "The shard pods' imagePullPolicy.", ("operator",)),
    EnvVar(RAP_RUNTIME_COMMAND, "The shard pods' command before the subcommand (default `python -m analyzer_runtime`).", ("operator",)),
    EnvVar(RAP_RUNTIME_SERVICE_ACCOUNT, "The service account of the shard pods; unset: the namespace's default.", ("operator",)),
    EnvVar(RAP_STATUS_INTERVAL, "Seconds between status refreshes of an active run.", ("operator",)),
    EnvVar(RAP_SWEEP_INTERVAL, "Seconds between the operator's sweeps of stale runs and leases.", ("operator",)),
    EnvVar(RAP_METRICS_PORT, "The port of the operator's Prometheus metrics.", ("operator",)),
    EnvVar(RAP_POD_METRICS_PORT, "The port of the shard pods' Prometheus metrics.", ("operator",)),
    EnvVar(RAP_POD_RUN_AS_USER, "A non-zero uid the shard pods run as; empty: the platform assigns one.", ("operator",)),
    EnvVar(RAP_METRICS_RUN_RETENTION_SECONDS, "Seconds a finished run's metric series stay exported (default 900).", ("operator",)),
    EnvVar(RAP_LIVENESS, "The URL the operator serves its health probes on (default http://0.0.0.0:8080/healthz).", ("operator",)),
    EnvVar(RAP_LEADER_ELECTION, "Whether operator replicas elect a leader (true/false; default false).", ("operator",)),
    EnvVar(RAP_LEADER_ELECTION_LEASE, "The name of the leader-election Lease.", ("operator",)),
    EnvVar(RAP_LEADER_ELECTION_NAMESPACE, "The namespace of that Lease (default: POD_NAMESPACE).", ("operator",)),
    EnvVar(POD_NAME, "The operator pod's name (downward API): its identity in leader election.", ("operator",)),
    EnvVar(POD_NAMESPACE, "The operator pod's namespace (downward API).", ("operator",)),
    EnvVar(LOG_LEVEL, "The operator's Python log level (default INFO).", ("operator",)),
    EnvVar(KUBECONFIG, "The kubeconfig the operator uses outside a cluster.", ("operator",)),
    EnvVar(KUBERNETES_SERVICE_HOST, "Set by Kubernetes in a pod: the operator then uses its service account.", ("operator",)),
    EnvVar(RAP_POLICY_ALLOWED_IMAGES, "Images a run's pod template may name (comma-separated); unset: any.", ("operator",)),
    EnvVar(RAP_POLICY_ALLOWED_HOSTS_LLM, "LLM endpoint hosts runs may use; a set value (even empty) replaces the presets' hosts.", ("operator",)),
    EnvVar(RAP_POLICY_ALLOWED_HOSTS_GENIUS, "Genius API hosts ScrapeJobs may use; a set value replaces the default.", ("operator",)),
    EnvVar(RAP_POLICY_ALLOWED_HOSTS_SPOTIFY, "Spotify API hosts ScrapeJobs may use; a set value replaces the default.", ("operator",)),
    EnvVar(RAP_POLICY_SECRET_LABEL, "The label a Secret needs before runs may reference it.", ("operator",)),
    EnvVar(RAP_POLICY_ALLOWED_SECRETS, "Secrets runs may reference without that label (comma-separated).", ("operator",)),
    EnvVar(JOB_COMPLETION_INDEX, "Set by Kubernetes in an Indexed Job's pod: the shard it runs.", ("shard pods",)),
    EnvVar(RAP_LEASE_SECONDS, "Seconds a shard's claim on its items lasts without renewal (default 30).", _PODS_CLI),
    EnvVar(RAP_STOP_GRACE_SECONDS, "Seconds the batch in flight gets to commit after SIGTERM (default 3); the operator passes its own value on to the pods.", ("operator", "shard pods")),
    EnvVar(LLM_API_KEY, "The LLM provider's API key (from spec.llm.apiKeySecretRef in the cluster).", _PODS_CLI),
    EnvVar(NOVITA_API_KEY, "The novita preset's key when LLM_API_KEY is unset (local runs).", ("cli",)),
    EnvVar(OPENAI_API_KEY, "The openai preset's key when LLM_API_KEY is unset (local runs).", ("cli",)),
    EnvVar(RAP_LLM_RATE_WINDOW_SECONDS, "Tests and benchmarks only: the rate limit's minute, in seconds (default 60).", _PODS_CLI),
    EnvVar(RAP_LLM_BATCH_POLL_SECONDS, "Tests and benchmarks only: seconds between polls of a provider batch, instead of spec pollSeconds.", _PODS_CLI),
    EnvVar(GENIUS_ACCESS_TOKEN, "The Genius API token of a ScrapeJob (from spec.genius.tokenSecretRef).", _PODS_CLI),
    EnvVar(SPOTIFY_CLIENT_ID, "The Spotify app's client id (from spec.spotify.clientIdSecretRef).", _PODS_CLI),
    EnvVar(SPOTIFY_CLIENT_SECRET, "The Spotify app's client secret (from spec.spotify.clientSecretSecretRef).", _PODS_CLI),
    EnvVar(RAP_EMBEDDING_MODEL_DIR, "Where the embedding model's files are (default: the one the image ships).", ("shard pods", "search", "cli")),
    EnvVar(RAP_EMBEDDING_THREADS, "BLAS threads of the embedding model (default 1: a shard process holds one model).", ("shard pods", "search", "cli")),
    EnvVar(RAP_EMBEDDING_ROW_BLOCK, "Token rows per forward block of the embedding model (a tuning knob, default 512).", ("shard pods", "search", "cli")),
    EnvVar(RAP_ANALYZER_DEBUG, "Set (to anything) to print tracebacks instead of one-line errors, like --debug.", ("shard pods", "gc", "cli")),
    EnvVar(METRICS_PORT, "The port a shard pod serves its Prometheus metrics on, 0: none (`--metrics-port`; the operator sets it from RAP_POD_METRICS_PORT; default 9102).", ("shard pods",)),
    EnvVar(RAP_SEARCH_TOKEN, "The search API's bearer token; unset (and no RAP_SEARCH_TOKEN_FILE): no authentication.", ("search",)),
    EnvVar(RAP_SEARCH_TOKEN_FILE, "A file holding the search API's bearer token, instead of RAP_SEARCH_TOKEN (not both).", ("search",)),
    EnvVar(RAP_SEARCH_MAX_IN_FLIGHT, "Search requests served at once; more get 429 (default 32).", ("search",)),
    EnvVar(RAP_SEARCH_POOL_SIZE, "Database connections of the search API for queries (default 4).", ("search",)),
    EnvVar(RAP_SEARCH_ACQUIRE_TIMEOUT, "Seconds a search request waits for a database connection, then 503 (default 2).", ("search",)),
    EnvVar(RAP_SEARCH_STATEMENT_TIMEOUT, "Seconds a search statement may run, then 503 (default 5).", ("search",)),
    EnvVar(RAP_SEARCH_READY_TIMEOUT, "Seconds /readyz waits for the database (default 2).", ("search",)),
    EnvVar(RAP_SEARCH_METRICS_PORT, "The search API's management port: /metrics, /readyz and /healthz; 0 or unset: not served.", ("search",)),
)  # fmt: skip

BY_NAME: dict[str, EnvVar] = {v.name: v for v in ENV_VARS}
