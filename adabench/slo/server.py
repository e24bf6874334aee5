"""Serving under load: requests arrive on their own clock, wait in a FIFO queue, and are served
one at a time (batch 1). A request's latency is completion − arrival, queueing included.

This module holds what does not touch a model: arrival processes (seeded Poisson, or a replayed
trace), the single-server loop over any `service` callable and any clock (so tests drive it with
a fake clock and known service times), the budget policies (a fixed budget, or the SLO
controller told how long the request already waited), and the metrics of one run — throughput,
goodput, attainment, latency and wait percentiles, and whether the server was overloaded.

Validity rules (docs/measurement.md, "Serving under load"): the first `WARMUP_SHARE` of the
arrival window is warm-up and not scored; a run needs at least `MIN_REQUESTS` scored requests;
it is overloaded when its achieved throughput is below `OVERLOAD_SHARE` of the offered rate (the
queue grew for the whole window instead of draining).
"""

from __future__ import annotations

import csv
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from adabench.errors import UserError
from adabench.slo.controller import SloController

WARMUP_SHARE = 0.1
"""Share of the arrival window at its start whose requests are served but not scored."""
MIN_REQUESTS = 50
"""Scored requests a (policy, rate) cell needs to be valid."""
OVERLOAD_SHARE = 0.95
"""A run whose throughput is below this share of the offered rate is overloaded."""
P99_MIN_REQUESTS = 100
"""Scored requests below which a p99 is reported but marked unreliable (`p99_reliable`)."""
MAX_OVERRUN = 3.0
"""A run stops serving at MAX_OVERRUN × its arrival window; requests still queued are dropped."""


# ---------------------------------------------------------------- arrivals


def poisson_arrivals(rate_per_s: float, duration_s: float, seed: int) -> np.ndarray:
    """Returns the arrival times (s, from 0, sorted) of a Poisson process at `rate_per_s` over
    [0, duration_s): exponential gaps from a generator seeded by (seed, rate), so every policy
    at one rate sees the same arrivals and `--resume` replays them."""
    if not (rate_per_s > 0 and math.isfinite(rate_per_s)):
        raise UserError(f"rates must be > 0 requests/s, got {rate_per_s:g}")
    rng = np.random.default_rng([int(seed), int(round(rate_per_s * 1000))])
    n = int(rate_per_s * duration_s * 1.5) + 20  # enough gaps; trimmed to the window below
    times = np.cumsum(rng.exponential(1.0 / rate_per_s, n))
    while times[-1] < duration_s:  # practically never: extend with more gaps
        times = np.concatenate([times, times[-1] + np.cumsum(rng.exponential(1 / rate_per_s, n))])
    return times[times < duration_s]


def read_trace(path: str | Path) -> np.ndarray:
    """Returns the arrival times (s) of a trace file: a CSV with a `t_s` column (or one
    unnamed column) of timestamps in seconds, shifted so the first is 0. UserError naming the
    line for a non-numeric, negative or out-of-order timestamp, or an empty trace."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"--arrivals {path}: no such file")
    with path.open(newline="") as f:
        rows = list(csv.reader(f))
    if rows and rows[0] and not _is_number(rows[0][0]):
        header = [h.strip() for h in rows[0]]
        if "t_s" not in header:
            raise UserError(f"--arrivals {path}: needs a t_s column (seconds), got {header}")
        column, rows, first_line = header.index("t_s"), rows[1:], 2
    else:
        column, first_line = 0, 1
    times: list[float] = []
    for line, row in enumerate(rows, start=first_line):
        if not row or not "".join(row).strip():
            continue
        text = row[column].strip() if column < len(row) else ""
        if not _is_number(text):
            raise UserError(f"--arrivals {path}:{line}: timestamp {text!r} is not a number")
        t = float(text)
        if t < 0:
            raise UserError(f"--arrivals {path}:{line}: timestamp {t:g} is negative")
        if times and t < times[-1]:
            raise UserError(
                f"--arrivals {path}:{line}: timestamp {t:g} comes before {times[-1]:g} "
                "(sort the trace by time)"
            )
        times.append(t)
    if not times:
        raise UserError(f"--arrivals {path}: no timestamps")
    return np.asarray(times) - times[0]


def trace_window_s(times: np.ndarray) -> float:
    """Returns the arrival window (s) of a trace read by `read_trace`: its last timestamp
    (1 s for a single timestamp)."""
    return float(times[-1]) if len(times) > 1 and times[-1] > 0 else 1.0


def _is_number(text: str) -> bool:
    try:
        return math.isfinite(float(text))
    except ValueError:
        return False


def lindley_waits(arrivals_s: np.ndarray, service_s: np.ndarray) -> np.ndarray:
    """Returns each request's queue wait (s) in a FIFO single server: the Lindley recursion
    W₀ = 0, Wₙ₊₁ = max(0, Wₙ + Sₙ − (Aₙ₊₁ − Aₙ))."""
    waits = np.zeros(len(arrivals_s))
    for n in range(1, len(arrivals_s)):
        gap = arrivals_s[n] - arrivals_s[n - 1]
        waits[n] = max(0.0, waits[n - 1] + service_s[n - 1] - gap)
    return waits


# ---------------------------------------------------------------- clocks and policies


class WallClock:
    """The real clock: `now()` in seconds (monotonic), `sleep(s)` blocks."""

    def now(self) -> float:
        return time.perf_counter()

    def sleep(self, seconds: float) -> None:
        if seconds > 0:
            time.sleep(seconds)


class FixedBudget:
    """A static policy: every request runs at `budget`."""

    name = "static"

    def __init__(self, budget: float) -> None:
        self.budget = float(budget)

    def choose(self, waits_ms: list[float], rate_per_s: float = math.nan) -> tuple[float, bool]:
        """Returns (budget, flagged): always the fixed budget, never flagged."""
        return self.budget, False

    def observe(self, budget: float, service_ms: float) -> None:
        """A static policy learns nothing."""


class QueueAwareController:
    """The SLO controller told the queue. The request at the head has waited w₀; the k-th
    request behind it has waited w_k and will finish after k + 1 services, so if every queued
    request ran at the head's budget each must satisfy w_k + (k + 1)·t ≤ SLO. The time allowed
    per service is therefore t = min_k (SLO − w_k) / (k + 1) (the head alone when the queue
    is empty: SLO − w₀), and the controller picks the largest budget predicted to fit it.
    At most `LOOKAHEAD` queued requests are considered.

    Requests that will arrive during the service are not in the queue yet; so that they do not
    pile up, the service time is also capped at `MAX_UTILIZATION` / λ̂, where λ̂ is the arrival
    rate over the last `RATE_WINDOW` arrivals (an M/G/1 queue's wait grows as 1 / (1 − ρ)):
    the controller keeps the server's utilization ρ = λ̂·t below the cap."""

    name = "controller"
    LOOKAHEAD = 64
    MAX_UTILIZATION = 0.7

    def __init__(self, controller: SloController) -> None:
        self.controller = controller

    def allowed_ms(self, waits_ms: list[float]) -> float:
        """Returns the service time (ms) allowed for the head of the queue (see the class)."""
        target = self.controller.target_ms
        return min((target - w) / (k + 1) for k, w in enumerate(waits_ms[: self.LOOKAHEAD]))

    def choose(self, waits_ms: list[float], rate_per_s: float = math.nan) -> tuple[float, bool]:
        """Returns (budget, flagged) for the head of a queue whose requests have waited
        `waits_ms` (head first), with arrivals at `rate_per_s` (NaN: unknown, no utilization
        cap); flagged when even the smallest budget is predicted to miss."""
        allowed = self.allowed_ms(waits_ms)
        if rate_per_s > 0:  # choose_within applies the margin: undo it for the cap
            cap_ms = self.MAX_UTILIZATION * 1e3 / rate_per_s / (1.0 - self.controller.margin)
            allowed = min(allowed, cap_ms)
        decision = self.controller.choose_within(allowed)
        return decision.budget, decision.flagged

    def observe(self, budget: float, service_ms: float) -> None:
        """Feeds the service time of a finished request (ms) to the slowdown estimate."""
        self.controller.observe(budget, service_ms)


# ---------------------------------------------------------------- the server loop


@dataclass
class Served:
    """One request: when it arrived, started and ended (s from the start of the window), the
    budget it ran at, and what `service` returned for it (answer, score, model latency...)."""

    index: int
    arrival_s: float
    start_s: float
    end_s: float
    budget: float
    flagged: bool
    result: dict = field(default_factory=dict)

    @property
    def dropped(self) -> bool:
        """Whether the request was never served (the run stopped with it still queued)."""
        return math.isnan(self.end_s)

    @property
    def wait_ms(self) -> float:
        return (self.start_s - self.arrival_s) * 1e3

    @property
    def service_ms(self) -> float:
        return (self.end_s - self.start_s) * 1e3

    @property
    def latency_ms(self) -> float:
        return (self.end_s - self.arrival_s) * 1e3


def serve(
    arrivals_s: np.ndarray,
    policy,
    service: Callable[[int, float], dict],
    clock=None,
    on_request: Callable[[int, int], None] | None = None,
    stop_after_s: float | None = None,
) -> list[Served]:
    """Serves every arrival FIFO, one at a time, and returns one `Served` per request.

    The server idles (sleeps on `clock`) until the next arrival when the queue is empty, else
    starts the next request at once. Before each request the policy picks a budget from how
    long it and the requests queued behind it have waited (head first); `service(index, budget)` runs it (and returns its record); the
    policy also sees the recent arrival rate. It then observes the service time (wall clock: all the server's work on the request). Times come from `clock` (default: the wall clock).
    Past `stop_after_s` (an overloaded server whose backlog would take too long to drain) the
    requests still queued are returned unserved (`dropped`: they miss the SLO)."""
    clock = clock or WallClock()
    out: list[Served] = []
    t0 = clock.now()
    for i, arrival in enumerate(arrivals_s):
        now = clock.now() - t0
        if stop_after_s is not None and now > stop_after_s:
            out += [Served(j, float(a), math.nan, math.nan, math.nan, False)
                    for j, a in enumerate(arrivals_s[i:], start=i)]  # fmt: skip
            break
        if now < arrival:
            clock.sleep(arrival - now)
        start = max(clock.now() - t0, float(arrival))
        queued = arrivals_s[i : i + QueueAwareController.LOOKAHEAD]
        waits = [(start - a) * 1e3 for a in queued[queued <= start]] or [0.0]
        budget, flagged = policy.choose(waits, _recent_rate(arrivals_s, i))
        result = service(i, budget)
        end = clock.now() - t0
        policy.observe(budget, (end - start) * 1e3)  # what the queue saw, overheads included
        out.append(Served(i, float(arrival), start, end, budget, flagged, result))
        if on_request is not None:
            on_request(i + 1, len(arrivals_s))
    return out


RATE_WINDOW = 32
"""Arrivals over which the server estimates the current arrival rate."""


def _recent_rate(arrivals_s: np.ndarray, i: int) -> float:
    """Returns the arrival rate (requests/s) over the last RATE_WINDOW arrivals up to request
    `i` (NaN before two arrivals): what a server could know at that moment."""
    first = max(0, i - RATE_WINDOW + 1)
    span = float(arrivals_s[i] - arrivals_s[first])
    return (i - first) / span if i > first and span > 0 else math.nan


# ---------------------------------------------------------------- metrics


def load_metrics(
    served: list[Served], slo_ms: float, offered_rate_per_s: float, window_s: float
) -> dict:
    """Returns the metrics of one (policy, rate) run over its scored requests (arrival after
    the warm-up share of `window_s`): counts, throughput and goodput (requests/s), SLO
    attainment (with a Wilson 95 % interval), p50/p90/p99 of latency and of queue wait (ms),
    mean service time (ms), mean budget, accuracy, and `overloaded` / `valid` with reasons."""
    warmup_s = WARMUP_SHARE * window_s
    scored = [s for s in served if s.arrival_s >= warmup_s]
    n = len(scored)
    out: dict = {"requests": len(served), "requests_scored": n, "warmup_s": warmup_s,
                 "offered_rate_per_s": float(offered_rate_per_s), "window_s": float(window_s)}  # fmt: skip
    if n == 0:
        return {**out, "valid": False, "invalid_reason": "no scored request", "overloaded": False}
    done = [s for s in scored if not s.dropped]
    latency = np.array([s.latency_ms if not s.dropped else math.inf for s in scored])
    wait = np.array([s.wait_ms for s in done]) if done else np.array([math.nan])
    met = latency <= slo_ms
    ends = [s.end_s for s in done]
    span = (max(ends) if ends else window_s) - min(s.arrival_s for s in scored)
    throughput = len(done) / span if span > 0 else math.nan
    scores = np.array([float(s.result.get("score", math.nan)) for s in done] or [math.nan])
    out["requests_dropped"] = n - len(done)
    method = "linear" if len(done) == n else "higher"  # a dropped request's latency is inf
    low, high = wilson(int(met.sum()), n)
    out.update(
        {
            "throughput_per_s": throughput,
            "goodput_per_s": int(met.sum()) / span if span > 0 else math.nan,
            "slo_attainment": float(met.mean()),
            "slo_attainment_ci_low": low,
            "slo_attainment_ci_high": high,
            **{
                f"e2e_ms_p{q}": float(np.percentile(latency, q, method=method))
                for q in (50, 90, 99)
            },
            **{f"queue_ms_p{q}": float(np.percentile(wait, q)) for q in (50, 90, 99)},
            "queue_ms_mean": float(wait.mean()),
            "service_ms_mean": float(np.mean([s.service_ms for s in done])) if done else math.nan,
            "service_ms_p50": float(np.median([s.service_ms for s in done])) if done else math.nan,
            "budget_mean": float(np.mean([s.budget for s in done])) if done else math.nan,
            "flagged_share": float(np.mean([s.flagged for s in done])) if done else math.nan,
            "accuracy": float(np.nanmean(scores)) if np.isfinite(scores).any() else math.nan,
            "p99_reliable": n >= P99_MIN_REQUESTS,
        }
    )
    overloaded = bool(throughput < OVERLOAD_SHARE * offered_rate_per_s) or len(done) < n
    out["overloaded"] = overloaded
    out["utilization"] = float(
        sum(s.service_ms for s in done) / 1e3 / span if span > 0 else math.nan
    )
    reasons = []
    if n < MIN_REQUESTS:
        reasons.append(f"{n} scored requests < {MIN_REQUESTS}")
    out["valid"] = not reasons
    out["invalid_reason"] = "; ".join(reasons)
    return out


def wilson(k: int, n: int, z: float = 1.96) -> tuple[float, float]:
    """Returns the Wilson score interval of k successes in n trials (NaN, NaN when n = 0)."""
    if n == 0:
        return math.nan, math.nan
    p = k / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return max(0.0, centre - half), min(1.0, centre + half)


def check_window(rates: list[float], duration_s: float) -> None:
    """Raises UserError when `duration_s` at the lowest rate cannot give MIN_REQUESTS scored
    requests on average (the window is too short for the validity rules)."""
    if not (duration_s > 0 and math.isfinite(duration_s)):
        raise UserError(f"duration must be > 0 seconds, got {duration_s:g}")
    for rate in rates:
        if not (rate > 0 and math.isfinite(rate)):
            raise UserError(f"rates must be > 0 requests/s, got {rate:g}")
    low = min(rates)
    expected = low * duration_s * (1 - WARMUP_SHARE)
    if expected < MIN_REQUESTS:
        need = MIN_REQUESTS / (low * (1 - WARMUP_SHARE))
        raise UserError(
            f"duration {duration_s:g} s at rate {low:g}/s gives ~{expected:.0f} scored requests, "
            f"fewer than the {MIN_REQUESTS} a valid run needs: use --duration >= {need:.1f}s "
            "or higher rates"
        )
