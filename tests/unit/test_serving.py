"""Serving under load with a fake clock and known service times: the server loop's queueing
equals the Lindley recursion, Poisson arrivals have their rate, policies share arrivals, an
overloaded static policy is flagged, the queue-aware controller meets deadlines a static full
policy misses, traces and settings are validated, and the oracle is chosen in hindsight."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from adabench.analysis import serving
from adabench.config import SweepConfig
from adabench.errors import UserError
from adabench.slo.controller import SloController
from adabench.slo.latency_model import LatencyModel
from adabench.slo.server import (
    MIN_REQUESTS,
    FixedBudget,
    QueueAwareController,
    check_window,
    lindley_waits,
    load_metrics,
    poisson_arrivals,
    read_trace,
    serve,
)


class FakeClock:
    """Virtual time: sleep and service advance it; nothing waits."""

    def __init__(self) -> None:
        self.t = 0.0

    def now(self) -> float:
        return self.t

    def sleep(self, seconds: float) -> None:
        self.t += max(0.0, seconds)


def fake_service(clock: FakeClock, ms_at_budget):
    """A model whose service time at budget b is ms_at_budget(b) milliseconds."""

    def service(i: int, budget: float) -> dict:
        clock.t += ms_at_budget(budget) / 1e3
        return {"score": 1.0 if budget >= 0.75 else 0.9}

    return service


def test_queueing_equals_the_lindley_recursion():
    rng = np.random.default_rng(3)
    arrivals = np.cumsum(rng.exponential(0.01, 300))
    service_s = rng.uniform(0.004, 0.016, 300)
    clock = FakeClock()
    served = serve(arrivals, FixedBudget(1.0),
                   lambda i, b: (setattr(clock, "t", clock.t + service_s[i]) or {}), clock)  # fmt: skip
    waits = np.array([s.wait_ms for s in served]) / 1e3
    np.testing.assert_allclose(waits, lindley_waits(arrivals, service_s), atol=1e-12)
    assert waits.max() > 0.02  # the queue really built up
    latency = np.array([s.latency_ms for s in served]) / 1e3
    np.testing.assert_allclose(latency, waits + service_s, atol=1e-12)


def test_poisson_arrivals_have_their_rate_and_are_replayed():
    times = poisson_arrivals(50.0, 200.0, seed=1)
    n = len(times)
    assert abs(n - 10_000) < 4 * math.sqrt(10_000)  # Poisson count: mean 10000, sd 100
    gaps = np.diff(times)
    assert abs(gaps.mean() - 0.02) < 0.001 and abs(gaps.std() / gaps.mean() - 1) < 0.05
    np.testing.assert_array_equal(times, poisson_arrivals(50.0, 200.0, seed=1))  # paired
    assert not np.array_equal(times[:50], poisson_arrivals(50.0, 200.0, seed=2)[:50])


def _model() -> LatencyModel:
    return LatencyModel(budgets=[0.5, 0.75, 1.0], latency_ms=[5.0, 7.5, 10.0], runs=[3, 3, 3])


def test_overloaded_static_policy_is_flagged_and_the_controller_keeps_up():
    arrivals = poisson_arrivals(120.0, 20.0, seed=0)  # full serves 100/s: 1.2 x its capacity
    results = {}
    for name, policy in {
        "full": FixedBudget(1.0),
        "controller": QueueAwareController(SloController(_model(), 20.0)),
    }.items():
        clock = FakeClock()
        served = serve(arrivals, policy, fake_service(clock, lambda b: 10.0 * b), clock)
        results[name] = load_metrics(served, 20.0, 120.0, 20.0)
    full, ctl = results["full"], results["controller"]
    assert full["overloaded"] and full["slo_attainment"] < 0.5
    assert not ctl["overloaded"] and ctl["slo_attainment"] >= 0.9
    assert ctl["goodput_per_s"] >= 1.5 * full["goodput_per_s"]
    assert 0.5 <= ctl["budget_mean"] < 1.0 and ctl["valid"]


def test_queue_aware_budget_shrinks_with_the_queue():
    policy = QueueAwareController(SloController(_model(), 20.0, margin=0.0, k_dev=0.0))
    assert policy.choose([0.0])[0] == 1.0  # 10 ms fits 20 ms
    assert policy.choose([0.0, 0.0])[0] == 1.0  # two services of 10 ms: 20 ms
    assert policy.choose([2.0, 1.0, 0.0])[0] == 0.5  # min(18/1, 19/2, 20/3) = 6.7 ms
    budget, flagged = policy.choose([19.0])
    assert budget == 0.5 and flagged


def test_dropped_requests_miss_and_mark_overload():
    arrivals = np.linspace(0, 1, 200, endpoint=False)
    clock = FakeClock()
    served = serve(arrivals, FixedBudget(1.0), fake_service(clock, lambda b: 50.0), clock,
                   stop_after_s=3.0)  # fmt: skip
    metrics = load_metrics(served, 100.0, 200.0, 1.0)
    assert metrics["requests_dropped"] > 0 and metrics["overloaded"]
    assert metrics["slo_attainment"] < 0.1


def test_trace_is_validated(tmp_path):
    good = tmp_path / "good.csv"
    good.write_text("t_s\n10.0\n10.5\n11.25\n")
    np.testing.assert_allclose(read_trace(good), [0.0, 0.5, 1.25])
    for text, needle in [("t_s\n1\nx\n", "csv:3: timestamp 'x' is not a number"),
                         ("t_s\n1\n-2\n", "is negative"),
                         ("t_s\n2\n1\n", "comes before 2"),
                         ("when\n1\n", "needs a t_s column"),
                         ("t_s\n", "no timestamps")]:  # fmt: skip
        bad = tmp_path / "bad.csv"
        bad.write_text(text)
        with pytest.raises(UserError, match=needle):
            read_trace(bad)


@pytest.mark.parametrize(
    ("kwargs", "needle"),
    [
        ({"scenario": "server", "rates": [20.0]}, "needs one --slo-ms"),
        ({"scenario": "server", "slo_ms": [10.0]}, "needs --rates"),
        ({"scenario": "server", "slo_ms": [10.0], "rates": [-1.0]}, "rates must be > 0"),
        ({"scenario": "sever", "slo_ms": [10.0], "rates": [5.0]}, "Did you mean 'server'"),
        ({"rates": [5.0]}, "belong to --scenario server"),
    ],
)
def test_server_settings_are_checked(kwargs, needle):
    with pytest.raises(UserError, match=needle):
        SweepConfig(**kwargs)


def test_window_too_short_for_validity():
    with pytest.raises(UserError, match=f"fewer than the {MIN_REQUESTS}"):
        check_window([2.0], 10.0)
    check_window([20.0], 10.0)


def test_oracle_is_the_best_static_budget_per_rate():
    base = {"scenario": "server", "model": "m", "suite": "s", "contention": 0.0, "method": "ada",
            "accuracy": 0.9, "overloaded": False, "goodput_per_s": 1.0, "e2e_ms_p99": 1.0,
            "queue_ms_p99": 0.0, "budget_mean": 1.0, "service_ms_mean": 5.0}  # fmt: skip
    rows = [
        {**base, "policy": "static", "budget": 0.5, "rate_per_s": 10.0, "slo_attainment": 0.99,
         "policy_label": "ada@0.5"},
        {**base, "policy": "static", "budget": 1.0, "rate_per_s": 10.0, "slo_attainment": 0.99,
         "policy_label": "ada@1", "accuracy": 0.95},
        {**base, "policy": "static", "budget": 0.5, "rate_per_s": 50.0, "slo_attainment": 0.97,
         "policy_label": "ada@0.5"},
        {**base, "policy": "static", "budget": 1.0, "rate_per_s": 50.0, "slo_attainment": 0.20,
         "policy_label": "ada@1"},
        {**base, "policy": "controller", "budget": 1.0, "rate_per_s": 50.0,
         "slo_attainment": 0.80, "policy_label": "ada (controller)"},
    ]  # fmt: skip
    best = serving.oracle(pd.DataFrame(rows)).set_index("rate_per_s")
    assert best.loc[10.0, "oracle_budget"] == 1.0  # tie on attainment: higher accuracy
    assert best.loc[50.0, "oracle_budget"] == 0.5
    (text,) = serving.findings(pd.DataFrame(rows))
    assert "meets 0.80" in text and "best fixed budget (0.5) meets 0.97" in text
    assert "0.17 below it" in text
