"""Operator configuration, from the environment (the chart sets these)."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any

from analyzer_runtime.contract import labels
from analyzer_runtime.ledger.budget import DEFAULT_RESERVED
from analyzer_runtime.ledger.connect import POOL_MODE_ENV, pool_mode
from analyzer_runtime.ledger.shards import STOP_GRACE_ENV
from rap_operator.policy import DEFAULT_HOSTS, Policy


def _list(value: str | None) -> list[str]:
    return [v.strip() for v in (value or "").split(",") if v.strip()]


RUNTIME_SUBCOMMANDS = frozenset({"analyze", "scrape"})

# The numeric uid (and gid) of the image's user (Dockerfile: USER 10001:10001).
DEFAULT_POD_RUN_AS_USER = 10001


def _run_as_user(value: str | None) -> int | None:
    """RAP_POD_RUN_AS_USER: a non-zero uid, or empty for none (the platform assigns
    one, as OpenShift's restricted SCC does; the image's numeric USER applies)."""
    if value is None:
        return DEFAULT_POD_RUN_AS_USER
    if not value.strip():
        return None
    try:
        uid = int(value)
    except ValueError:
        uid = -1
    if not 0 < uid <= 2**31 - 1:
        raise ValueError(
            f"RAP_POD_RUN_AS_USER must be a non-zero numeric uid (or empty), got {value!r}"
        )
    return uid


def _count(name: str, value: str | None) -> int | None:
    """A non-negative integer setting, or None when unset or empty."""
    if value is None or not value.strip():
        return None
    try:
        n = int(value)
    except ValueError:
        n = -1
    if n < 0:
        raise ValueError(f"{name} must be a non-negative integer (or empty), got {value!r}")
    return n


def _flag(name: str, value: str | None) -> bool:
    """A boolean setting: true/false (1/0, yes/no); unset or empty is false."""
    v = (value or "").strip().lower()
    if v in ("", "false", "0", "no"):
        return False
    if v in ("true", "1", "yes"):
        return True
    raise ValueError(f"{name} must be true or false, got {value!r}")


def _hosts(provider: str, value: str | None) -> tuple[str, ...]:
    """RAP_POLICY_ALLOWED_HOSTS_<PROVIDER>: a list that is set (even empty) replaces
    the provider's default (the presets' official hosts); `*` allows any host."""
    return DEFAULT_HOSTS[provider] if value is None else tuple(_list(value))


@dataclass(frozen=True)
class OperatorConfig:
    # Empty: all namespaces (cluster-wide RBAC); otherwise only these.
    namespaces: list[str] = field(default_factory=list)
    # The runtime image the Job pods run (one image for operator and runtime).
    image: str = "ghcr.io/rap-analyzer/rap-analyzer:latest"
    image_pull_policy: str = "IfNotPresent"
    # The Secret (in the run's namespace) holding the database URL when the spec names none.
    database_secret: str = "rap-analyzer-db"
    database_secret_key: str = "url"
    # Seconds between status refreshes of a running run.
    status_interval: float = 5.0
    # Seconds between sweeps of a database's ledger for runs whose resource is gone
    # (sweep.py); a database the operator has just come to know is swept at once.
    sweep_interval: float = 180.0
    # The runtime program a pod runs, before its subcommand (analyze, scrape);
    # overridable so a test kubelet can run the same module.
    runtime_command: list[str] = field(default_factory=lambda: ["python", "-m", "analyzer_runtime"])
    service_account: str | None = None
    metrics_port: int = 9090
    pod_metrics_port: int = 9102
    # runAsUser, runAsGroup and fsGroup of the Job pods (Pod Security `restricted`
    # needs runAsNonRoot; a numeric uid lets the kubelet check it). None: not set.
    pod_run_as_user: int | None = DEFAULT_POD_RUN_AS_USER
    # Connections shard pods of all runs on one database may hold; None: read
    # max_connections from the server and keep `reserved_connections` free.
    connection_budget: int | None = None
    reserved_connections: int = DEFAULT_RESERVED
    # Leader election on a Lease (leader.py): only the holder reconciles. Off for a
    # single process (`make operator-up`, the e2e suite); the chart turns it on.
    leader_election: bool = False
    lease_name: str = "rap-analyzer-operator"
    # None: POD_NAMESPACE's fallback in leader.lease_namespace.
    lease_namespace: str | None = None
    # The pod's name (downward API): this replica's identity in the Lease.
    pod_name: str | None = None
    # What runs may ask for (policy.py): images, endpoint hosts, Secrets.
    policy: Policy = field(default_factory=Policy)
    # Handed on to the shard pods when the chart sets them (None: the pods' defaults):
    # DATABASE_POOL_MODE (validated here) and RAP_STOP_GRACE_SECONDS.
    pool_mode: str | None = None
    stop_grace: str | None = None

    def command_for(self, subcommand: str) -> list[str]:
        """The pod's command for a kind's subcommand. A configured command that already
        ends in a subcommand (the form before ScrapeJob existed) has it replaced."""
        base = list(self.runtime_command)
        if base and base[-1] in RUNTIME_SUBCOMMANDS:
            base.pop()
        return [*base, subcommand]

    @classmethod
    def from_env(cls, env: dict[str, str] | None = None) -> OperatorConfig:
        e = os.environ if env is None else env
        d = cls()
        reserved = _count("RAP_DB_RESERVED_CONNECTIONS", e.get("RAP_DB_RESERVED_CONNECTIONS"))
        return cls(
            namespaces=_list(e.get("RAP_NAMESPACES")),
            image=e.get("RAP_RUNTIME_IMAGE", d.image),
            image_pull_policy=e.get("RAP_RUNTIME_IMAGE_PULL_POLICY", d.image_pull_policy),
            database_secret=e.get("RAP_DATABASE_SECRET", d.database_secret),
            database_secret_key=e.get("RAP_DATABASE_SECRET_KEY", d.database_secret_key),
            status_interval=float(e.get("RAP_STATUS_INTERVAL", d.status_interval)),
            sweep_interval=float(e.get("RAP_SWEEP_INTERVAL", d.sweep_interval)),
            runtime_command=_list(e.get("RAP_RUNTIME_COMMAND")) or d.runtime_command,
            service_account=e.get("RAP_RUNTIME_SERVICE_ACCOUNT") or None,
            metrics_port=int(e.get("RAP_METRICS_PORT", d.metrics_port)),
            pod_metrics_port=int(e.get("RAP_POD_METRICS_PORT", d.pod_metrics_port)),
            pod_run_as_user=_run_as_user(e.get("RAP_POD_RUN_AS_USER")),
            connection_budget=_count("RAP_DB_CONNECTION_BUDGET", e.get("RAP_DB_CONNECTION_BUDGET")),
            reserved_connections=d.reserved_connections if reserved is None else reserved,
            leader_election=_flag("RAP_LEADER_ELECTION", e.get("RAP_LEADER_ELECTION")),
            lease_name=e.get("RAP_LEADER_ELECTION_LEASE") or d.lease_name,
            lease_namespace=(
                e.get("RAP_LEADER_ELECTION_NAMESPACE") or e.get("POD_NAMESPACE") or None
            ),
            pod_name=e.get("POD_NAME") or None,
            # The admin's policy (policy.py).
            policy=Policy(
                images=tuple(_list(e.get("RAP_POLICY_ALLOWED_IMAGES"))),
                hosts={
                    "llm": _hosts("llm", e.get("RAP_POLICY_ALLOWED_HOSTS_LLM")),
                    "genius": _hosts("genius", e.get("RAP_POLICY_ALLOWED_HOSTS_GENIUS")),
                    "spotify": _hosts("spotify", e.get("RAP_POLICY_ALLOWED_HOSTS_SPOTIFY")),
                },
                secret_label=e.get("RAP_POLICY_SECRET_LABEL", labels.USABLE_LABEL).strip(),
                secrets=tuple(_list(e.get("RAP_POLICY_ALLOWED_SECRETS"))),
            ),
            pool_mode=pool_mode(dict(e)) if e.get(POOL_MODE_ENV) else None,
            stop_grace=e.get(STOP_GRACE_ENV) or None,
        )


def database_secret(spec: dict[str, Any], config: OperatorConfig) -> tuple[str, str]:
    """(Secret name, key) of a run's database URL: `spec.database.secretRef`, else the
    operator's default Secret in the run's namespace."""
    ref = (spec.get("database") or {}).get("secretRef") or {}
    return ref.get("name") or config.database_secret, ref.get("key") or config.database_secret_key
