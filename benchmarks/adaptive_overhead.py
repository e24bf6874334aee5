"""What AdaLLaVA's adaptivity costs at run time, against static methods at the same budget
(reported, never asserted).

Swept: on `tiny-adallava-l`: full, layer-drop@0.5, adallava-l@0.5; on `tiny-adallava-h`: full,
head-prune@0.5, adallava-h@0.5, adallava-h@0.75, and "adallava-h@0.75 replay": a static arm
that replays the plan adallava-h@0.75 decided for each sample, with the same latency token and
every plan's weights prepared before timing, so adaptive − replay is the price of deciding and
replay − full what executing those plans saves. Shapes test (60 samples by default, 3 rounds).
On CUDA also the llava-1.5-7b config with random weights (no download; random AdaLLaVA heads
centred on the inputs so plans vary per input) with the same arms, fp16.

Design: paired and randomly interleaved. In every round each sample runs every arm of its model
once, in an order shuffled per (round, sample) from a fixed seed, so machine drift and
co-running load hit all arms alike. Warm-up runs every arm on a few samples first.

Numbers per arm:
  latency_ratio   median over samples of (arm latency ÷ full latency, each the mean over rounds)
                  with a 95 % bootstrap CI over samples
  flops_ratio     mean decoder-block FLOPs ratio (adabench.models.flops, as the sweep reports it)
  latency_ms      mean end-to-end latency (vision + prefill + decode)
  overhead_pct    mean `overhead_ms` (adabench.sweep.generate: the method's request, i.e. the
                  latency token, + scheduler + preparing the plan's weights) ÷ mean latency of
                  full, with the split encoder / scheduler / plan in ms
  decide_us       the decision alone, outside a request: method.request() + decide(hidden) on a
                  fixed hidden state, mean µs over 200 calls
  new_tokens      mean generated tokens (answers differ between arms; latency includes them)
  cache_bytes     bytes of copied weight halves the runner holds (LlavaRunner.cache_bytes)
`--paths` adds a micro-benchmark of ways to run one partial projection pair (q rows + o columns
of two non-adjacent heads, tiny-adallava-h shapes, a prefill of the suite's length plus two
decode steps): views joined by one cat per request (what adabench does), index_select gathers,
and per-run matmuls on views summed into the output (no copy, more kernels per step).
`--split-policies` times how split head/neuron sets execute on the width-1024 no-weights
llama of benchmarks/family_realization.py (fp32, CPU; a random centred AdaLLaVA-H head), for
adallava-h@0.75 and head-prune@0.75 against full, under three runner policies, paired and
interleaved per sample: "copy" (multi-run halves copied per request, nothing kept: CUDA's
policy before issue 34), "views" (per-run matmuls on views, nothing copied: CUDA's policy now)
and "cpu" (the CPU default: copies under 1 MiB, kept up to 1 GiB).
Prints a card, one table row per arm and one JSON line; `--out FILE` also writes the JSON.
The measurement itself (`measure`, `Replay`) lives in benchmarks/paired.py.

    python benchmarks/adaptive_overhead.py [--limit 60] [--rounds 3] [--threads N] [--paths]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import torch

from adabench.data.suites import get_spec, load_suite
from adabench.models.loading import load_model
from adabench.sweep.cell import prepare_samples

sys.path.insert(0, str(Path(__file__).resolve().parent))
from paired import PARTS, REPLAYED, Replay, arm_name, decide_us, measure, report  # noqa: E402

__all__ = ["PARTS", "REPLAYED", "Replay", "arm_name", "decide_us", "measure", "print_rows"]

TINY_ARMS = {
    "tiny-adallava-l": (("full", 1.0), ("layer-drop", 0.5), ("adallava-l", 0.5)),
    "tiny-adallava-h": (
        ("full", 1.0),
        ("head-prune", 0.5),
        ("adallava-h", 0.5),
        ("adallava-h", 0.75),
    ),
}


def print_rows(rows: list[dict]) -> None:
    print(
        f"{'model':>16} {'arm':>22} {'FLOPs':>6} {'latency ratio [95% CI]':>24} {'ms':>7}"
        f" {'overhead %':>10} {'enc/sched/plan ms':>20} {'decide µs':>9} {'tokens':>6}"
    )
    for r in rows:
        split = "/".join(f"{r[f'overhead_{p}_ms']:.3f}" for p in PARTS)
        print(
            f"{r['model']:>16} {r['arm']:>22} {r['flops_ratio']:6.3f}"
            f" {r['latency_ratio']:7.3f} [{r['ci_low']:.3f}, {r['ci_high']:.3f}]"
            f" {r['latency_ms']:7.2f} {r['overhead_pct']:10.2f} {split:>20} {r['decide_us']:9.0f}"
            f" {r['new_tokens']:6.2f}"
        )


def tiny_rows(limit: int, rounds: int, seed: int, warmup: int) -> list[dict]:
    spec = get_spec("shapes")
    samples = load_suite("shapes", limit=limit)
    rows = []
    for model, arms in TINY_ARMS.items():
        loaded = load_model(model, device="cpu")
        prepared = prepare_samples(loaded, spec, samples)
        rows += measure(loaded, model, arms, prepared, rounds, seed, warmup)
    return rows


def no_weights_rows(
    name: str, device: str, limit: int, rounds: int, seed: int, warmup: int
) -> list[dict]:
    """`name` (e.g. llava-1.5-7b) with random weights on `device` in fp16 (CPU: fp32), with a
    random AdaLLaVA-L head and then a random -H head, each centred on the inputs."""
    from adabench.models.no_weights import (
        build_no_weights,
        build_random_head,
        center_random_scheduler_,
    )

    spec = get_spec("shapes")
    samples = load_suite("shapes", limit=limit)
    dtype = "float16" if device.startswith("cuda") else "float32"
    loaded = build_no_weights(name, device=device, dtype=dtype, seed=seed)
    prepared = [ps.to(loaded.device) for ps in prepare_samples(loaded, spec, samples)]
    rows = []
    for variant, arms in (
        ("L", (("full", 1.0), ("layer-drop", 0.5), ("adallava-l", 0.5))),
        (
            "H",
            (("full", 1.0), ("head-prune", 0.5), ("adallava-h", 0.5), ("adallava-h", 0.75)),
        ),
    ):
        loaded.adallava = build_random_head(
            loaded.config, variant, loaded.device, loaded.dtype, seed + 1
        )
        center_random_scheduler_(loaded, prepared)
        label = f"{name}-nw-{variant}"
        rows += measure(loaded, label, arms, prepared, rounds, seed, warmup)
    return rows


def paths_us(seq_len: int = 18, n: int = 2000) -> dict[str, float]:
    """Returns µs per request for one partial q + o pair (heads 0 and 2 of 4, head_dim 32,
    hidden 128): a prefill of `seq_len` tokens and two decode steps, three ways."""
    import torch.nn.functional as F

    wq, wo = torch.randn(128, 128), torch.randn(128, 128)
    runs = ((0, 32), (64, 96))
    idx = torch.tensor([*range(0, 32), *range(64, 96)])
    inputs = [torch.randn(1, seq_len, 128), torch.randn(1, 1, 128), torch.randn(1, 1, 128)]

    def cat():
        q = torch.cat([wq[a:b] for a, b in runs])
        o = torch.cat([wo[:, a:b] for a, b in runs], dim=1)
        for x in inputs:
            F.linear(F.linear(x, q), o)

    def gather():
        q, o = wq.index_select(0, idx), wo.index_select(1, idx)
        for x in inputs:
            F.linear(F.linear(x, q), o)

    def per_run():
        for x in inputs:
            parts = [F.linear(x, wq[a:b]) for a, b in runs]
            a_ = torch.cat(parts, -1)
            out = F.linear(a_[..., :32], wo[:, 0:32])
            out = out + F.linear(a_[..., 32:], wo[:, 64:96])

    out = {}
    with torch.inference_mode():
        for name, fn in (("views+cat", cat), ("index_select", gather), ("per-run", per_run)):
            for _ in range(100):
                fn()
            start = time.perf_counter()
            for _ in range(n):
                fn()
            out[name] = (time.perf_counter() - start) / n * 1e6
    return out


SPLIT_POLICIES = {"copy": (1 << 62, 0), "views": (0, 0), "cpu": (None, None)}
"""policy → (runs_from_bytes, cache_limit_bytes) of its LlavaRunner (None: the CPU default)."""


def split_policy_rows(limit: int, seed: int, max_new: int = 3) -> list[dict]:
    """Returns one row per (arm, policy): median latency ms, median plan overhead ms and the
    largest copied bytes, over `limit` samples (first sample: warm-up)."""
    import random

    import numpy as np
    from family_realization import llava_config

    from adabench.measure.timing import Timer
    from adabench.models.execution import LlavaRunner
    from adabench.models.factory import build_method
    from adabench.models.no_weights import (
        build_no_weights,
        build_random_head,
        center_random_scheduler_,
    )
    from adabench.sweep.generate import generate

    spec, samples = get_spec("shapes"), load_suite("shapes", limit=limit + 1)
    loaded = build_no_weights(llava_config("llama"), device="cpu", dtype="float32", seed=seed)
    prepared = prepare_samples(loaded, spec, samples)
    loaded.adallava = build_random_head(loaded.config, "H", loaded.device, loaded.dtype, seed + 1)
    center_random_scheduler_(loaded, prepared)
    runners = {}
    for name, (runs_from, cap) in SPLIT_POLICIES.items():
        runners[name] = LlavaRunner(loaded.model)
        runners[name].runs_from_bytes, runners[name].cache_limit_bytes = runs_from, cap
    arms = {a: build_method(a.split("@")[0], loaded, float(a.split("@")[1]))
            for a in ("full@1.0", "head-prune@0.75", "adallava-h@0.75")}  # fmt: skip
    timer, eos = Timer("cpu"), loaded.processor.tokenizer.eos_token_id
    lat = {(a, p): [] for a in arms for p in runners}
    plan_ms = {(a, p): [] for a in arms for p in runners}
    copied = {(a, p): 0 for a in arms for p in runners}
    rng = random.Random(seed)
    for i, ps in enumerate(prepared):
        order = [(a, p) for a in arms for p in runners]
        rng.shuffle(order)
        for a, p in order:
            g = generate(runners[p], arms[a], ps, max_new, eos, timer)
            copied[a, p] = max(copied[a, p], runners[p].cache_bytes)
            runners[p].evict_copies()
            if i > 0:  # sample 0 warms every (arm, policy) up
                lat[a, p].append(g.latency_ms)
                plan_ms[a, p].append(g.overhead_parts_ms["plan"])
    rows = []
    for (a, p), values in lat.items():
        full = np.array(lat["full@1.0", p])
        rows.append({"arm": a, "policy": p, "latency_ms_median": float(np.median(values)),
                     "latency_ratio": float(np.median(np.array(values) / full)),
                     "plan_ms_median": float(np.median(plan_ms[a, p])),
                     "copied_bytes_max": int(copied[a, p]), "n": len(values)})  # fmt: skip
    return rows


def main() -> list[dict]:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--limit", type=int, default=60)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: torch's)")
    ap.add_argument("--gpu-limit", type=int, default=20, help="samples of the 7B rows")
    ap.add_argument("--no-weights", default="llava-1.5-7b", help="model of the CUDA rows")
    ap.add_argument("--skip-tiny", action="store_true", help="only the CUDA rows")
    ap.add_argument("--paths", action="store_true", help="add the partial-projection study")
    ap.add_argument(
        "--split-policies", action="store_true", help="only the width-1024 split-set policies"
    )
    ap.add_argument("--out", default="")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    load = os.getloadavg()[0]
    print(
        f"card: torch {torch.__version__}, {torch.get_num_threads()} threads, "
        f"{os.cpu_count()} CPUs, load average {load:.2f}; shapes test {args.limit} samples x "
        f"{args.rounds} rounds, paired, interleaved (seed {args.seed})"
    )
    if args.split_policies:
        rows = split_policy_rows(args.limit, args.seed)
        for r in rows:
            print(json.dumps(r))
        report({"load_average_start": load, "split_policies": rows}, args.out)
        return rows
    rows = [] if args.skip_tiny else tiny_rows(args.limit, args.rounds, args.seed, args.warmup)
    if torch.cuda.is_available():
        rows += no_weights_rows(
            args.no_weights, "cuda", args.gpu_limit, args.rounds, args.seed, args.warmup
        )
    print_rows(rows)
    result = {"load_average_start": load, "rows": rows}
    if args.paths:
        result["paths_us"] = paths_us()
        print("partial q+o per request, µs:", json.dumps(result["paths_us"]))
    report(result, args.out)
    return rows


if __name__ == "__main__":
    main()
