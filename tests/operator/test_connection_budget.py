"""The connection budget, as pure logic: what the server allows, how runs share it,
what a Job holds, and the condition a capped run shows."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from rap_operator import budget, manifests
from rap_operator.config import OperatorConfig

from analyzer_runtime.ledger.budget import (
    SHARD_POD_CONNECTIONS,
    Budget,
    ServerLimits,
    configured,
    from_server,
)


def test_budget_from_the_server_leaves_reserved_slots_and_the_reserve() -> None:
    b = from_server(ServerLimits(30, 3, 0), reserve=10)
    assert b.connections == 17
    assert b.pods == 17 // SHARD_POD_CONNECTIONS == 8
    assert b.explanation == (
        "max_connections 30 − 3 superuser-reserved − 10 kept for the operator and tools"
    )
    # PostgreSQL 16's reserved_connections counts too; never below zero.
    assert from_server(ServerLimits(100, 3, 5), reserve=10).connections == 82
    assert from_server(ServerLimits(10, 3, 0), reserve=10).pods == 0
    assert configured(41).pods == 20 and configured(-1).connections == 0


def test_config_reads_the_budget_settings() -> None:
    assert OperatorConfig.from_env({}).connection_budget is None
    assert OperatorConfig.from_env({}).reserved_connections == 10
    cfg = OperatorConfig.from_env(
        {"RAP_DB_CONNECTION_BUDGET": "200", "RAP_DB_RESERVED_CONNECTIONS": "0"}
    )
    assert (cfg.connection_budget, cfg.reserved_connections) == (200, 0)
    assert OperatorConfig.from_env({"RAP_DB_CONNECTION_BUDGET": ""}).connection_budget is None
    for bad in ("-1", "lots", "1.5"):
        with pytest.raises(ValueError, match="RAP_DB_CONNECTION_BUDGET must be a non-negative"):
            OperatorConfig.from_env({"RAP_DB_CONNECTION_BUDGET": bad})


def test_an_older_run_keeps_its_pods_and_a_new_one_gets_what_is_left() -> None:
    led = budget.Ledger()
    assert led.grant("a", "db:5432", wanted=6, budget_pods=8) == 6
    assert led.grant("b", "db:5432", wanted=40, budget_pods=8) == 2
    # Another server's runs are not counted against this one.
    assert led.grant("c", "other:5432", wanted=8, budget_pods=8) == 8
    # b asks again: a still holds 6. a finishes: b grows into its share.
    assert led.grant("b", "db:5432", wanted=40, budget_pods=8) == 2
    led.release("a")
    assert led.grant("b", "db:5432", wanted=40, budget_pods=8) == 8
    # A run wanting less (shards done, or suspended) frees what it no longer needs.
    assert led.grant("b", "db:5432", wanted=0, budget_pods=8) == 0
    assert led.held_by_others("x", "db:5432") == 0


def test_jobs_seen_before_their_runs_say_where_count_against_every_server() -> None:
    led = budget.Ledger()
    led.observe_job("old", job(parallelism=5, completions=10))
    assert led.grant("new", "db:5432", wanted=8, budget_pods=8) == 3
    # Once its run's pass says which server it uses, it counts only there.
    assert led.grant("old", "elsewhere:5432", wanted=5, budget_pods=8) == 5
    assert led.grant("new", "db:5432", wanted=8, budget_pods=8) == 8
    # A later watch event of its Job does not turn it back into "anywhere".
    led.observe_job("old", job(parallelism=5, completions=10))
    assert led.held_by_others("new", "db:5432") == 0
    # Jobs that finished or went away before their run said anything hold nothing.
    led.observe_job("gone", job(parallelism=5, completions=10))
    assert led.held_by_others("new", "db:5432") == 5
    led.observe_job("gone", None)
    assert led.held_by_others("new", "db:5432") == 0
    done = {"conditions": [{"type": "Complete", "status": "True"}]}
    led.observe_job("ended", job(parallelism=5, completions=10, status=done))
    assert led.held_by_others("new", "db:5432") == 0


def job(**spec: Any) -> dict[str, Any]:
    status = spec.pop("status", {})
    return {"spec": spec, "status": status}


def test_what_a_job_may_still_run() -> None:
    assert budget.job_pods(job(parallelism=8, completions=20)) == 8
    assert budget.job_pods(job(parallelism=8, completions=20, status={"succeeded": 15})) == 5
    assert budget.job_pods(job(parallelism=8, completions=20, suspend=True)) == 0
    complete = {"conditions": [{"type": "Complete", "status": "True"}], "succeeded": 3}
    assert budget.job_pods(job(parallelism=8, completions=20, status=complete)) == 0


@settings(max_examples=300, deadline=None)
@given(
    st.lists(
        st.tuples(st.sampled_from("abcdef"), st.integers(0, 50), st.booleans()),
        max_size=60,
    ),
    st.integers(0, 30),
)
def test_grants_never_exceed_the_budget(
    steps: list[tuple[str, int, bool]], budget_pods: int
) -> None:
    led = budget.Ledger()
    held: dict[str, int] = {}
    for uid, wanted, finishes in steps:
        if finishes:
            led.release(uid)
            held.pop(uid, None)
            continue
        held[uid] = led.grant(uid, "db", wanted, budget_pods)
        assert 0 <= held[uid] <= wanted
        assert sum(held.values()) <= budget_pods


def share(granted: int, wanted: int = 40, requested: int = 40) -> budget.Share:
    return budget.Share(
        requested=requested, wanted=wanted, granted=granted, others=0,
        budget=Budget(17, "max_connections 30 − 3 superuser-reserved − 10 kept"), server="db:5432",
    )  # fmt: skip


def test_the_job_runs_the_spec_parallelism_unless_capped() -> None:
    assert share(8).parallelism == 8 and share(8).capped
    # Not capped: the spec's parallelism, even when fewer shards are left to run.
    assert share(3, wanted=3).parallelism == 40 and not share(3, wanted=3).capped
    assert manifests.parallelism({"shards": 40, "parallelism": 0}) == 0
    assert manifests.parallelism({"shards": 40}) == 40


def test_the_condition_says_why_and_clears() -> None:
    assert budget.condition(share(40), {}, 1) is None  # never capped: never shown
    capped = budget.condition(share(8), {}, 1)
    assert capped is not None
    assert (capped["status"], capped["reason"]) == ("True", "ConnectionBudget")
    assert capped["message"].startswith("8 of 40 shard pods at once: the database at db:5432")
    assert "max_connections 30" in capped["message"] and "2 per pod" in capped["message"]
    capped["lastTransitionTime"] = "2026-01-01T00:00:00Z"
    again = budget.condition(share(9), {"conditions": [capped]}, 1)
    assert again is not None and again["lastTransitionTime"] == "2026-01-01T00:00:00Z"
    cleared = budget.condition(share(40), {"conditions": [capped]}, 2)
    assert cleared is not None
    assert (cleared["status"], cleared["reason"]) == ("False", "WithinBudget")
    assert cleared["lastTransitionTime"] != "2026-01-01T00:00:00Z"


def test_the_budget_per_server_is_exported() -> None:
    from prometheus_client import REGISTRY, generate_latest
    from rap_operator import metrics  # noqa: F401  (registers the collectors)

    led = budget.LEDGER
    try:
        led.grant("metrics-a", "budget-db:5432", wanted=6, budget_pods=8)
        led.grant("metrics-b", "budget-db:5432", wanted=40, budget_pods=8)
        assert led.servers()["budget-db:5432"] == (8, 8)
        text = generate_latest(REGISTRY).decode()
        assert 'rap_operator_db_budget_shard_pods{server="budget-db:5432"} 8.0' in text
        assert 'rap_operator_db_granted_shard_pods{server="budget-db:5432"} 8.0' in text
        led.release("metrics-a")
        text = generate_latest(REGISTRY).decode()
        assert 'rap_operator_db_granted_shard_pods{server="budget-db:5432"} 2.0' in text
    finally:
        led.release("metrics-a")
        led.release("metrics-b")
