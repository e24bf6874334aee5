"""The paired, randomly interleaved measurement shared by the benchmarks (adaptive_overhead.py,
family_realization.py); not a benchmark itself.

`measure(loaded, label, arms, prepared, rounds, seed, warmup)`: in every round each prepared
sample runs every arm once, in an order shuffled per (round, sample) from a fixed seed, so
machine drift and co-running load hit all arms alike; warm-up runs every arm on the first
`warmup` samples first. An arm is (method, budget) or (method, budget, name); the arm named
"full" is the reference of every latency ratio. Returns one row per arm (the fields are listed
in adaptive_overhead.py's docstring).
"""

from __future__ import annotations

import json
import os
import random
import time
import traceback
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

from adabench.data.suites import get_spec
from adabench.measure.stats import bootstrap_ci
from adabench.measure.timing import Timer
from adabench.models import flops as flops_mod
from adabench.models.execution import LlavaRunner
from adabench.models.factory import build_method
from adabench.models.methods import Request
from adabench.sweep.generate import generate

PARTS = ("encoder", "scheduler", "plan")


def replay_cache_bytes(device: torch.device) -> int:
    """Returns the copy-cache limit of a replay arm (bytes): COPY_FREE_FRACTION of the free
    memory of `device` (CUDA: `torch.cuda.mem_get_info`; CPU: available RAM)."""
    from adabench.measure.memory import free_bytes
    from adabench.models.execution import COPY_FREE_FRACTION

    free = free_bytes(device)
    if free is None:
        free = os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    return int(COPY_FREE_FRACTION * free)


def run_each(
    names: list[str], rows_of: Callable[[str], list[dict]], print_rows: Callable[[list], None]
) -> tuple[list[dict], dict, dict]:
    """Returns (rows, failures, seconds) of `rows_of(name)` for every name: a name that raises is
    reported with its traceback's last lines and the others still run; each name's rows are
    printed as they come, and its wall time (s) kept."""
    rows, failures, seconds = [], {}, {}
    for name in names:
        start = time.perf_counter()
        try:
            got = rows_of(name)
        except Exception as exc:  # reported, the other names still run
            tail = traceback.format_exc().strip().splitlines()[-6:]
            failures[name] = {"error": f"{type(exc).__name__}: {exc}", "traceback": tail}
            print(f"{name}: FAILED\n  " + "\n  ".join(tail), flush=True)
            got = []
        seconds[name] = round(time.perf_counter() - start, 1)
        if got:
            print(f"{name}: {seconds[name]:.0f} s", flush=True)
            print_rows(got)
        rows += got
    return rows, failures, seconds


def report(result: dict, out: str) -> None:
    """Records the load average at the end in `result`, prints it and `result` as one JSON line,
    and writes `result` to `out` (indented; "" writes nothing)."""
    result["load_average_end"] = os.getloadavg()[0]
    print(f"load average at the end {result['load_average_end']:.2f}")
    print(json.dumps(result))
    if out:
        Path(out).parent.mkdir(parents=True, exist_ok=True)
        Path(out).write_text(json.dumps(result, indent=2))


REPLAYED = ("adallava-h@0.75",)  # arms that also run as a static replay of their plans


class Replay:
    """A static method that replays the plan an adaptive arm decided for each sample (and sends
    the same latency token): the cost of executing those plans with no decision and with their
    weights prepared before timing. adaptive − replay is the price of adaptivity."""

    NAME = "replay"

    def __init__(self, method, plans: dict) -> None:
        self.method, self.plans = method, plans

    def request(self, sample_id, input_ids, image_features) -> Request:
        token = self.method.request(sample_id, input_ids, image_features).extra_embeds
        return Request(plan=self.plans[sample_id], extra_embeds=token)


def arm_name(method: str, budget: float) -> str:
    return method if method == "full" else f"{method}@{budget:g}"


def decide_us(loaded, method, ps, n: int = 200) -> float:
    """Returns the mean µs of one decision (request + decide on a fixed hidden state)."""
    runner = LlavaRunner(loaded.model)
    feats = runner.image_features(ps.pixel_values)
    hidden = torch.randn(1, loaded.config.text_config.hidden_size, device=loaded.device).to(
        loaded.dtype
    )
    sync = torch.cuda.synchronize if loaded.device.type == "cuda" else (lambda: None)
    with torch.inference_mode():
        for _ in range(10):
            method.request(ps.sample_id, ps.input_ids, feats).decide(hidden)
        sync()
        start = time.perf_counter()
        for _ in range(n):
            method.request(ps.sample_id, ps.input_ids, feats).decide(hidden)
        sync()
    return (time.perf_counter() - start) / n * 1e6


def measure(
    loaded,
    label: str,
    arms,
    prepared,
    rounds: int,
    seed: int,
    warmup: int,
    max_new_tokens: int | None = None,
    replayed: tuple[str, ...] = REPLAYED,
    decide_calls: int = 200,
) -> list[dict]:
    """Runs the paired, interleaved measurement of `arms` on `prepared`; returns one row per arm.

    `max_new_tokens` defaults to the shapes suite's; `replayed` names the arms that also run as a
    `Replay` ("<arm> replay"); `decide_calls` 0 skips `decide_us` (NaN)."""
    runner = LlavaRunner(loaded.model)
    timer = Timer(loaded.device)
    eos = loaded.processor.tokenizer.eos_token_id
    max_new = int(max_new_tokens or get_spec("shapes").max_new_tokens)
    methods = {}
    for arm in arms:
        m, b = arm[0], arm[1]
        methods[arm[2] if len(arm) > 2 else arm_name(m, b)] = build_method(m, loaded, b)
    runners = dict.fromkeys(methods, runner)
    for method in methods.values():
        for ps in prepared[:warmup]:
            generate(runner, method, ps, max_new, eos, timer)
    for a in [a for a in replayed if a in methods]:
        plans = {
            ps.sample_id: generate(runner, methods[a], ps, 1, eos, timer).plan for ps in prepared
        }
        methods[f"{a} replay"] = Replay(methods[a], plans)
        runners[f"{a} replay"] = LlavaRunner(loaded.model)
        # every plan prepared once and kept, as far as memory allows (was 1 TB: out of memory
        # on an 80 GB GPU); LlavaRunner.copy_limit_bytes caps it by free device memory too
        runners[f"{a} replay"].cache_limit_bytes = replay_cache_bytes(loaded.device)
        for ps in prepared:
            generate(runners[f"{a} replay"], methods[f"{a} replay"], ps, 1, eos, timer)
    lat = {a: np.zeros((rounds, len(prepared))) for a in methods}
    over = {a: np.zeros((rounds, len(prepared))) for a in methods}
    first = {a: np.zeros((rounds, len(prepared))) for a in methods}  # vision + prefill
    parts = {a: {p: np.zeros((rounds, len(prepared))) for p in PARTS} for a in methods}
    fl = {a: np.zeros(len(prepared)) for a in methods}
    new_tokens = {a: np.zeros((rounds, len(prepared))) for a in methods}
    memo: dict = {}
    rng = random.Random(seed)
    for r in range(rounds):
        for i, ps in enumerate(prepared):
            order = list(methods)
            rng.shuffle(order)
            for a in order:
                g = generate(runners[a], methods[a], ps, max_new, eos, timer)
                lat[a][r, i], over[a][r, i] = g.latency_ms, g.overhead_ms
                first[a][r, i] = g.prefill_ms
                new_tokens[a][r, i] = len(g.token_ids)
                for p, v in getattr(g, "overhead_parts_ms", {}).items():
                    parts[a][p][r, i] = v
                key = (g.prompt_len, len(g.token_ids), g.plan, g.full_prompt_len)
                if key not in memo:
                    memo[key] = flops_mod.generation_flops(
                        loaded.config, *key[:3], full_prompt_len=key[3]
                    )["flops_ratio"]
                fl[a][i] = memo[key]
    full_per_sample = lat["full"].mean(0)
    full_mean = float(lat["full"].mean())
    rows = []
    for a, method in methods.items():
        ratios = lat[a].mean(0) / full_per_sample
        low, high = bootstrap_ci(ratios, np.median, seed=seed)
        is_ada = method.NAME.startswith("adallava") and decide_calls > 0
        rows.append(
            {
                "model": label,
                "arm": a,
                "latency_ratio": float(np.median(ratios)),
                "ci_low": low,
                "ci_high": high,
                "flops_ratio": float(fl[a].mean()),
                "latency_ms": float(lat[a].mean()),
                "prefill_ms": float(first[a].mean()),
                "overhead_ms": float(over[a].mean()),
                "overhead_pct": 100 * float(over[a].mean()) / full_mean,
                **{f"overhead_{p}_ms": float(parts[a][p].mean()) for p in PARTS},
                "new_tokens": float(new_tokens[a].mean()),
                "decide_us": (
                    decide_us(loaded, method, prepared[0], decide_calls) if is_ada else float("nan")
                ),
                "cache_bytes": int(getattr(runners[a], "cache_bytes", 0)),
            }
        )
    return rows
