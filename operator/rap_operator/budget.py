"""Shares of each database server's connection budget among the runs' Jobs.

Every shard pod holds `SHARD_POD_CONNECTIONS`; the operator caps a Job's
parallelism so that the pods of all runs on one server stay within its budget
(analyzer_runtime.ledger.budget), instead of letting Postgres refuse connections.

A run grows only into what no other run holds: nobody is preempted (shrinking a
running Job kills pods), and a run that finishes hands its share to the next run
whose reconcile pass asks. Before a run's loop has said which server it uses (just
after an operator restart), its Job's pods count against every server.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from analyzer_runtime.ledger.budget import SHARD_POD_CONNECTIONS, Budget

JSON = dict[str, Any]
CONDITION = "ParallelismCapped"


@dataclass
class _Claim:
    server: str | None  # None: seen as a Job before its run said which database
    pods: int


class Ledger:
    """Pods granted per run; one per operator process (the reconcile passes of all
    runs share it, one at a time: grant() never awaits)."""

    def __init__(self) -> None:
        self._claims: dict[str, _Claim] = {}
        self._budgets: dict[str, int] = {}  # server -> pods its budget allows (last seen)

    def observe_job(self, uid: str, job: JSON | None) -> None:
        """A Job seen on the watch before its run's pass holds what it may still run
        (None: the Job is gone); a run's own pass has the last word once it ran."""
        claim = self._claims.get(uid)
        if claim is not None and claim.server is not None:
            return
        pods = job_pods(job) if job is not None else 0
        if pods:
            self._claims[uid] = _Claim(None, pods)
        else:  # finished, suspended or deleted Jobs hold nothing: keep no entry
            self._claims.pop(uid, None)

    def held_by_others(self, uid: str, server: str) -> int:
        return sum(
            c.pods for u, c in self._claims.items() if u != uid and c.server in (server, None)
        )

    def grant(self, uid: str, server: str, wanted: int, budget_pods: int) -> int:
        """Pods run `uid` may run now: what it wants, within what others leave free."""
        granted = max(0, min(wanted, budget_pods - self.held_by_others(uid, server)))
        self._claims[uid] = _Claim(server, granted)
        self._budgets[server] = budget_pods
        return granted

    def servers(self) -> dict[str, tuple[int, int]]:
        """server -> (pods its budget allows, pods runs hold there), for the metrics."""
        held = dict.fromkeys(self._budgets, 0)
        for c in self._claims.values():
            if c.server is not None:
                held[c.server] = held.get(c.server, 0) + c.pods
        return {s: (self._budgets.get(s, 0), n) for s, n in held.items()}

    def release(self, uid: str) -> None:
        self._claims.pop(uid, None)


def job_pods(job: JSON) -> int:
    """Shard pods a Job may run from now on: its parallelism, or fewer when fewer
    indexes are left; none once it is suspended or finished."""
    spec, status = job.get("spec") or {}, job.get("status") or {}
    done = any(
        c.get("type") in ("Complete", "Failed") and c.get("status") == "True"
        for c in status.get("conditions") or []
    )
    if done or spec.get("suspend"):
        return 0
    left = int(spec.get("completions") or 0) - int(status.get("succeeded") or 0)
    return max(0, min(int(spec.get("parallelism") or 0), left))


@dataclass(frozen=True, slots=True)
class Share:
    """What a pass decided for one run."""

    requested: int  # the spec's parallelism (the shard count when unset)
    wanted: int  # pods the run could use now (unfinished shards; 0 while suspended)
    granted: int
    others: int  # pods other runs on the server hold
    budget: Budget
    server: str

    @property
    def capped(self) -> bool:
        return self.granted < self.wanted

    @property
    def parallelism(self) -> int:
        """The Job's parallelism: the spec's, unless the budget caps it."""
        return self.granted if self.capped else self.requested

    def message(self) -> str:
        return (
            f"{self.granted} of {self.requested} shard pods at once: the database at"
            f" {self.server} allows {self.budget.pods} shard pods ({self.budget.connections}"
            f" connections = {self.budget.explanation}; {SHARD_POD_CONNECTIONS} per pod),"
            f" other runs hold {self.others}; more start as they finish"
        )


def condition(share: Share, previous: JSON, generation: int) -> JSON | None:
    """ParallelismCapped: True while capped; False once a capped run is no longer
    (absent for runs that were never capped, so most runs never show it)."""
    old = next((c for c in previous.get("conditions") or [] if c.get("type") == CONDITION), None)
    if not share.capped and old is None:
        return None
    status = "True" if share.capped else "False"
    since = old.get("lastTransitionTime") if old and old.get("status") == status else None
    return {
        "type": CONDITION,
        "status": status,
        "reason": "ConnectionBudget" if share.capped else "WithinBudget",
        "message": share.message()
        if share.capped
        else f"all {share.wanted} wanted shard pods run within the database's budget"
        f" of {share.budget.pods}",
        "observedGeneration": generation,
        "lastTransitionTime": since or datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
    }


# The shard pods every run holds, against each database server's connection budget:
# one per operator process, shared by the reconcile passes and the metrics.
LEDGER = Ledger()
