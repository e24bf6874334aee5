"""The one sample loop: every arm of a group measured on the same samples, paired in time.

`run_arms` serves `adabench eval` (one arm), the sweep (a group of cells sharing contention
level, model and suite, plus the hidden A/A `full` arm) and SLO cells (one arm whose method is
chosen per sample by a controller: the `choose`/`observe` hooks). The order of the steps comes
from `adabench.sweep.pairing.steps`; measurements are flushed in chunks (`on_chunk`) so an
interrupt loses at most one chunk; `assemble` turns the measurements into the sample and cell
rows with paired ratios to `full` (docs/measurement.md).
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable, Generator, Iterator
from contextlib import nullcontext
from dataclasses import dataclass, field

import numpy as np

from adabench.data import loyalty
from adabench.data.sample import Sample, SuiteSpec
from adabench.measure import busy as busy_mod
from adabench.measure.memory import PeakMemory
from adabench.measure.telemetry import NvmlSampler, Telemetry
from adabench.measure.timing import Timer
from adabench.models.execution import LlavaRunner
from adabench.models.loading import LoadedModel
from adabench.models.methods import Method
from adabench.sweep import pairing
from adabench.sweep.cell_config import CellConfig
from adabench.sweep.generate import PreparedSample, generate
from adabench.sweep.rows import cell_row, mean_with_ci, sample_content, wrapper_columns

REF = "ref"
"""Arm key of the hidden `full` partner when the `full` cell itself is not being measured."""
AA = "aa"
"""Arm key of the hidden second `full` arm: the A/A noise floor."""


@dataclass
class Arm:
    """One measured configuration of a group: a cell, or a hidden `full` arm (ref / aa)."""

    key: str = field(metadata={"help": "cell id, or REF / AA for hidden arms"})
    cell: CellConfig = field(metadata={"help": "coordinates (hidden arms: a `full` cell)"})
    method: Method | None = field(default=None, metadata={"help": "fixed method of the arm"})
    hidden: bool = field(default=False, metadata={"help": "measured but never written"})
    adallava: object = field(default=None, metadata={"help": "--no-weights: this arm's head"})
    choose: Callable[[int], Method] | None = field(
        default=None,
        metadata={"help": "SLO: sample index → method (every repeat; −1 = warm-up, no decision)"},
    )
    observe: Callable[[int, list[float]], dict] | None = field(
        default=None,
        metadata={"help": "SLO: (sample index, latencies ms of its repeats) → extra row fields"},
    )


@dataclass
class GroupData:
    """What every arm of a group shares: the model, the suite and its prepared samples."""

    loaded: LoadedModel
    spec: SuiteSpec
    samples: list[Sample]
    prepared: list[PreparedSample]
    max_new_tokens: int
    swap_heads: bool = False
    """--no-weights: each arm brings its own random AdaLLaVA head (set before each run)."""


@dataclass
class GroupResult:
    """Measurements of a group (one dict per timed generation) and how the rounds ended."""

    measurements: list[dict]
    rounds: int
    stop_reason: str
    telemetry: Telemetry
    busy: dict = field(default_factory=dict)
    """arm key → (decode GPU-busy fraction, note) from its last warm-up run (`_warm_up`)."""


def group_id(cell: CellConfig, order: str) -> str:
    """Returns the id of the group of `cell`: what its arms share, and the order they run in."""
    from adabench.store import cell_id

    keys = ("suite", "split", "limit", "model", "contention", "contention_kind", "seed")
    coords = {k: getattr(cell, k) for k in keys}
    return cell_id({**coords, "order": order, "repeats": cell.repeats, "group": True})


def full_partner(arms: list[Arm]) -> str | None:
    """Returns the key of the arm whose latency every ratio divides by (`full`), or None."""
    for arm in arms:
        if arm.cell.method == "full" and not arm.cell.method_args and arm.key != AA:
            return arm.key
    return None


def iter_arms(
    data: GroupData,
    arms: list[Arm],
    *,
    order: str,
    warmup: int,
    repeats: int,
    seed: int,
    gid: str,
    done: list[dict] | None = None,
    chunk: int = 10,
    target_ci: float | None = None,
    max_rounds: int = 1,
    max_time_s: float | None = None,
    timer: Timer | None = None,
    on_start: Callable[[], None] | None = None,
) -> Generator[tuple, None, GroupResult]:
    """Runs every arm on every sample; yields ("chunk", name, rows) for each finished chunk of
    samples, ("step", done, total) after each timed generation and, with `target_ci`,
    ("round", rounds done, worst CI half-width) after each round; returns the GroupResult.

    `done` holds measurements of an interrupted run (their steps are skipped, the pairing and
    order stay those of the first run). With `target_ci`, rounds (passes over the samples) are
    added until every arm's latency-ratio CI half-width is at most `target_ci`, or
    `max_rounds` / `max_time_s` stops it; `stop_reason` says which."""
    loaded = data.loaded
    runner, timer = LlavaRunner(loaded.model), timer or Timer(loaded.device)
    measured = {_key(m): m for m in (done or [])}
    busy = _warm_up(data, arms, runner, timer, warmup, seed, gid)
    if on_start is not None:
        on_start()
    sampler = telemetry_sampler(loaded)
    energy = sampler.read_energy_mj if isinstance(sampler, NvmlSampler) else None
    start, rounds, reason = time.perf_counter(), 0, "one round"
    with sampler as tel:
        for round_ in range(max_rounds if target_ci is not None else 1):
            yield from _run_round(data, arms, runner, timer, measured, order, repeats, seed,
                                  gid, round_, chunk, energy)  # fmt: skip
            rounds = round_ + 1
            if target_ci is None:
                break
            worst = worst_half_width(list(measured.values()), arms, seed)
            yield ("round", rounds, worst)
            if worst <= target_ci:
                reason = f"target CI ±{target_ci:g} reached (worst ±{worst:.3f})"
                break
            reason = f"max rounds {max_rounds} (worst ±{worst:.3f})"
            if max_time_s is not None and time.perf_counter() - start >= max_time_s:
                reason = f"max time {max_time_s:g} s (worst ±{worst:.3f})"
                break
    telemetry = tel if isinstance(tel, Telemetry) else Telemetry()
    return GroupResult(list(measured.values()), rounds, reason, telemetry, busy)


def run_arms(data: GroupData, arms: list[Arm], on_step=None, **kwargs) -> GroupResult:
    """`iter_arms` run to the end in this process; `on_step(done, total)` reports progress."""
    gen = iter_arms(data, arms, **kwargs)
    while True:
        try:
            item = next(gen)
        except StopIteration as stop:
            return stop.value
        if item[0] == "step" and on_step is not None:
            on_step(item[1], item[2])


def _key(m: dict) -> tuple:
    return (m["arm"], m["sample"], m["round"], m["repeat"])


def _warm_up(data, arms, runner, timer, warmup, seed, gid) -> dict:
    """Untimed generations: `warmup` per arm, interleaved, so every arm's kernels, caches and
    prepared state exist before its first timed run; with warmup ≥ 1 the longest prompt is
    among them (its GEMM shapes and KV size would otherwise meet their first allocation inside
    a timed run), and every arm is one budget's plan. Returns {arm key: (decode GPU-busy
    fraction, note)}: on CUDA the last warm-up run of each arm probes it (measure.busy)."""
    cuda = data.loaded.device.type == "cuda"
    busy = {arm.key: (math.nan, busy_mod.CPU_NOTE if not cuda else "") for arm in arms}
    indices = warmup_samples(data.prepared, warmup)
    for w, index in enumerate(indices):
        last = w == len(indices) - 1
        for a in pairing.arm_order(seed, gid, -1 - w, 0, 0, len(arms)):
            ps = data.prepared[index].to(data.loaded.device)
            _, g = _generate(data, arms[a], runner, timer, ps, -1, probe_busy=cuda and last)
            runner.evict_copies()
            if cuda and last:
                busy[arms[a].key] = busy_mod.busy_fraction(g.decode_held_ms, g.decode_ms)
    if cuda and not indices:
        busy = {key: (math.nan, busy_mod.busy_fraction([], [])[1]) for key in busy}
    return busy


def warmup_samples(prepared: list[PreparedSample], warmup: int) -> list[int]:
    """Returns the indices of the samples the warm-up runs: 0 … warmup−1 (cycling), the last
    replaced by the longest prompt when it is not among them."""
    n = len(prepared)
    if warmup < 1 or n == 0:
        return []
    indices = [w % n for w in range(warmup)]
    longest = max(range(n), key=lambda i: prepared[i].input_ids.shape[-1])
    if longest not in indices:
        indices[-1] = longest
    return indices


def telemetry_sampler(loaded: LoadedModel):
    """Returns the NVML sampler of the model's GPU (a null context on CPU)."""
    if loaded.device.type != "cuda":
        return nullcontext()
    return NvmlSampler(_nvml_index(loaded))


def _run_round(
    data, arms, runner, timer, measured, order, repeats, seed, gid, round_, chunk, energy=None
):
    """Yields ("step", done, total) per timed generation and ("chunk", name, rows) per chunk.
    `energy()` reads the GPU's energy counter (mJ) around each generation (None: not read)."""
    n = len(data.samples)
    total = n * repeats * len(arms)
    count = 0
    for first in range(0, n, chunk):
        indices = list(range(first, min(first + chunk, n)))
        rows: list[dict] = []
        on_device: dict[int, PreparedSample] = {}
        latencies: dict[tuple[int, int], list[float]] = {}
        for step in pairing.steps(order, len(arms), indices, round_, repeats, seed, gid):
            count += 1
            arm = arms[step.arm]
            if (arm.key, step.sample, round_, step.repeat) in measured:
                continue
            if step.sample not in on_device:  # host → device outside the timed region
                on_device = {step.sample: data.prepared[step.sample].to(data.loaded.device)}
            row = _measure(data, arm, runner, timer, on_device[step.sample], step, energy)
            lat = latencies.setdefault((step.arm, step.sample), [])
            lat.append(row["latency_ms"])
            if arm.observe is not None and len(lat) == repeats:
                row["extra"] = json.dumps(arm.observe(step.sample, lat))
            measured[_key(row)] = row
            rows.append(row)
            yield ("step", count, total)
        if rows:
            yield ("chunk", f"{round_}-{first}-{len(indices)}", rows)


def _generate(
    data: GroupData, arm: Arm, runner, timer, ps: PreparedSample, sample: int, probe_busy=False
):
    """Returns (method, Generation) of one run of `arm`; sample −1 is a warm-up run."""
    method = arm.method if arm.choose is None else arm.choose(sample)
    if data.swap_heads:
        data.loaded.adallava = arm.adallava
    eos = data.loaded.processor.tokenizer.eos_token_id
    graphs = arm.cell.cuda_graphs
    g = generate(runner, method, ps, data.max_new_tokens, eos, timer, graphs, probe_busy)
    return method, g


def _measure(data: GroupData, arm: Arm, runner, timer, ps: PreparedSample, step, energy=None):
    """Runs one timed generation; returns its measurement row (times in ms, `energy_mj`: the
    energy counter's change across this generation alone, NaN when not read)."""
    before = energy() if energy is not None else math.nan
    with PeakMemory(data.loaded.device) as mem:
        method, g = _generate(data, arm, runner, timer, ps, step.sample)
    # generate() ends synchronised, so the GPU's work for this run is in the counter
    used_mj = energy() - before if energy is not None else math.nan
    cache_bytes = int(runner.cache_bytes)
    runner.evict_copies()  # outside the block: the next one's peak never frees these copies
    row = {
        "arm": arm.key,
        "sample": step.sample,
        "round": step.round_,
        "repeat": step.repeat,
        "latency_ms": g.latency_ms,
        "prefill_ms": g.prefill_ms,
        "decode_ms": float(sum(g.decode_ms)),
        "decode_ms_per_token": float(np.mean(g.decode_ms)) if g.decode_ms else math.nan,
        "overhead_ms": g.overhead_ms,
        **{f"overhead_{k}_ms": float(v) for k, v in g.overhead_parts_ms.items()},
        "peak_mem_mb": mem.peak_mem_mb,
        "cache_bytes": cache_bytes,
        "energy_mj": used_mj,
        "t_s": time.time(),
        "content": None,
        "extra": None,
    }
    if step.round_ == 0 and step.repeat == 0:
        sample = data.samples[step.sample]
        from adabench.models.vision_flops import sample_vision_flops

        vision = sample_vision_flops(data.loaded.config, ps.pixel_values.shape, ps.visual)
        content = sample_content(data.loaded, data.spec, sample, g, method, vision)
        image_token = data.loaded.model.config.image_token_id
        content["visual_tokens"] = int((ps.input_ids == image_token).sum())  # before selection
        content["text_tokens"] = int(ps.input_ids.shape[1]) - content["visual_tokens"]
        if "image_px" in sample.meta:
            content["image_px"] = sample.meta["image_px"]
        if g.kept_visual is not None:  # FastV: the visual tokens the blocks after K kept
            content["visual_kept"] = int(g.kept_visual)
        row["content"] = json.dumps(content)
    return row


def _nvml_index(loaded: LoadedModel) -> int:
    from adabench.measure.telemetry import nvml_index

    return nvml_index(loaded.device.index or 0)


# ---- from measurements to rows ---------------------------------------------------------------


def _by_arm(measurements: list[dict]) -> dict[str, dict[int, list[dict]]]:
    out: dict[str, dict[int, list[dict]]] = {}
    for m in measurements:
        out.setdefault(m["arm"], {}).setdefault(int(m["sample"]), []).append(m)
    for per_sample in out.values():
        for ms in per_sample.values():
            ms.sort(key=lambda m: (m["round"], m["repeat"]))
    return out


class _Pairs:
    """A group's measurements indexed once: each arm's passes per sample (in pass order) and
    the `full` partner's pass at the same (sample, round, repeat)."""

    def __init__(self, measurements: list[dict], ref_key: str | None) -> None:
        self.by_arm = _by_arm(measurements)
        partner = self.by_arm.get(ref_key, {}) if ref_key is not None else {}
        self.ref = {
            (m["sample"], m["round"], m["repeat"]): m for ms in partner.values() for m in ms
        }

    def samples(self, arm_key: str) -> list[tuple[int, list[dict]]]:
        """Returns (sample index, its passes) of `arm_key`, in sample order."""
        per_sample = self.by_arm.get(arm_key, {})
        return [(s, per_sample[s]) for s in sorted(per_sample)]

    def partner(self, ms: list[dict], column: str) -> list[float]:
        """Returns the partner's `column` for each pass in `ms` (NaN where it did not run)."""
        keys = [(m["sample"], m["round"], m["repeat"]) for m in ms]
        return [float(self.ref[k][column]) if k in self.ref else math.nan for k in keys]

    def ratios(self, arm_key: str) -> dict[str, list[float]]:
        """Returns per-sample paired ratios for latency, prefill and decode per token."""
        out: dict[str, list[float]] = {name: [] for name in RATIO_COLUMNS}
        for _, ms in self.samples(arm_key):
            for name, col in RATIO_COLUMNS.items():
                values = [float(m[col]) for m in ms]
                out[name].append(pairing.per_sample_ratio(values, self.partner(ms, col)))
        return out


RATIO_COLUMNS = {"latency": "latency_ms", "prefill": "prefill_ms", "decode": "decode_ms_per_token"}
"""Paired ratio name → the measured column it divides."""


def arm_ratios(
    measurements: list[dict], arm_key: str, ref_key: str | None
) -> dict[str, list[float]]:
    """Returns per-sample paired ratios of `arm_key` to `ref_key` for latency, prefill and
    decode per token: {"latency": [...], "prefill": [...], "decode": [...]} (sample order)."""
    return _Pairs(measurements, ref_key).ratios(arm_key)


def worst_half_width(measurements: list[dict], arms: list[Arm], seed: int) -> float:
    """Returns the widest latency-ratio CI half-width over the arms (the A/A arm included)."""
    ref_key = full_partner(arms)
    if ref_key is None:
        return 0.0
    pairs = _Pairs(measurements, ref_key)
    widths = []
    for arm in arms:
        if arm.key == ref_key:
            continue
        _, lo, hi = pairing.ratio_summary(pairs.ratios(arm.key)["latency"], seed)
        widths.append(pairing.half_width(lo, hi))
    return max(widths, default=0.0)


def ratio_columns(ratios: dict[str, list[float]], seed: int) -> dict:
    """Returns the cell's paired-ratio columns from per-sample `ratios` (`_Pairs.ratios`):
    latency_ratio, prefill_ratio, decode_ratio and their `_ci_low` / `_ci_high` (NaN without
    a `full` partner)."""
    cols = {}
    for name in RATIO_COLUMNS:
        value, lo, hi = pairing.ratio_summary(ratios[name], seed)
        cols.update({f"{name}_ratio": value, f"{name}_ratio_ci_low": lo,
                     f"{name}_ratio_ci_high": hi})  # fmt: skip
    return cols


OVERHEAD_PARTS = ("overhead_encoder_ms", "overhead_scheduler_ms", "overhead_plan_ms")


def sample_rows(
    data: GroupData, pairs: _Pairs, arm_key: str, latency_ratios: list[float]
) -> list[dict]:
    """Returns one row per sample of `arm_key`: the first pass's answer and plan, every pass's
    raw times, the paired `full` latencies of the same passes and the per-sample ratio
    (`latency_ratios`, from `pairs.ratios`, in sample order)."""
    rows = []
    for (s, ms), ratio in zip(pairs.samples(arm_key), latency_ratios, strict=True):
        content = next((json.loads(m["content"]) for m in ms if m.get("content")), {})
        extra = next((json.loads(m["extra"]) for m in ms if m.get("extra")), {})
        lat = [float(m["latency_ms"]) for m in ms]
        per_token = [float(m["decode_ms_per_token"]) for m in ms]
        finite_tokens = [x for x in per_token if math.isfinite(x)]
        row = {
            **content,
            "sample_id": data.samples[s].id,
            "latency_ms": float(np.mean(lat)),
            "latency_ms_repeats": lat,
            "full_latency_ms_repeats": pairs.partner(ms, "latency_ms"),
            "latency_ratio": ratio,
            "prefill_ms": float(np.mean([m["prefill_ms"] for m in ms])),
            "prefill_ms_repeats": [float(m["prefill_ms"]) for m in ms],
            "decode_ms": float(np.mean([m["decode_ms"] for m in ms])),
            "decode_ms_per_token": float(np.mean(finite_tokens)) if finite_tokens else math.nan,
            "overhead_ms": float(np.mean([m["overhead_ms"] for m in ms])),
            **{k: float(np.mean([m[k] for m in ms])) for k in OVERHEAD_PARTS},
            "peak_mem_mb": float(np.nanmax([m["peak_mem_mb"] for m in ms])),
            "cache_bytes": int(max(m.get("cache_bytes", 0) or 0 for m in ms)),
            "energy_j": _mean_energy_j(ms),
            "passes": len(ms),
            **extra,
        }
        rows.append(row)
    return rows


def _first_content(ms: list[dict]) -> dict:
    return next((json.loads(m["content"]) for m in ms if m.get("content")), {})


def loyalties(data: GroupData, pairs: _Pairs, arm_key: str, ref_key: str | None) -> list[float]:
    """Returns per-sample loyalty of `arm_key` to the `full` partner `ref_key` (sample order,
    as `sample_rows`): adabench.data.loyalty.agreement of the two first-pass replies under the
    sample's metric; 1.0 for the partner itself, NaN where it has no reply (no `full` arm)."""
    ref = {s: _first_content(ms) for s, ms in pairs.samples(ref_key)} if ref_key else {}
    out = []
    for s, ms in pairs.samples(arm_key):
        mine, theirs = _first_content(ms), ref.get(s)
        if arm_key == ref_key:
            out.append(1.0)
        elif not theirs or "prediction" not in mine or "prediction" not in theirs:
            out.append(math.nan)
        else:
            metric = data.spec.metric_for(data.samples[s].family)
            out.append(loyalty.agreement(metric, mine["prediction"], theirs["prediction"],
                                         mine.get("score", math.nan),
                                         theirs.get("score", math.nan)))  # fmt: skip
    return out


def _mean_energy_j(measurements: list[dict]) -> float:
    """Returns the mean energy of one generation over `measurements` (J): their summed counter
    deltas ÷ their count, so the counter's refresh granularity averages out; NaN when none was
    read (CPU, no NVML, no counter)."""
    used = [m.get("energy_mj", math.nan) for m in measurements]
    used = [float(x) for x in used if x is not None and math.isfinite(float(x))]
    return float(np.sum(used)) / len(used) / 1000 if used else math.nan


def assemble(
    data: GroupData,
    arms: list[Arm],
    result: GroupResult,
    *,
    order: str,
    seed: int,
    slowdown: tuple[float, float] = (math.nan, math.nan),
    extra_columns: dict | None = None,
) -> Iterator[tuple[Arm, dict, list[dict]]]:
    """Yields (arm, cell row, sample rows) for every visible arm of the group, with the paired
    ratio columns, loyalty to `full` (per sample and per cell), the group's A/A floors
    (`aa_ratio*`, `aa_loyalty*`: the second `full` arm's) and how the group was measured."""
    ref_key = full_partner(arms)
    pairs = _Pairs(result.measurements, ref_key)
    aa = {"aa_ratio": math.nan, "aa_ratio_ci_low": math.nan, "aa_ratio_ci_high": math.nan,
          "aa_loyalty": math.nan, "aa_loyalty_ci_low": math.nan, "aa_loyalty_ci_high": math.nan}  # fmt: skip
    if ref_key is not None and any(a.key == AA for a in arms):
        latency = pairing.ratio_summary(pairs.ratios(AA)["latency"], seed)
        aa.update(zip(("aa_ratio", "aa_ratio_ci_low", "aa_ratio_ci_high"), latency, strict=True))
        aa.update(_loyalty_summary(loyalties(data, pairs, AA, ref_key), seed, "aa_loyalty"))
    tel = result.telemetry
    for arm in arms:
        if arm.hidden:
            continue
        ratios = pairs.ratios(arm.key)
        rows = sample_rows(data, pairs, arm.key, ratios["latency"])
        if not rows:
            continue
        for r, value in zip(rows, loyalties(data, pairs, arm.key, ref_key), strict=True):
            r["loyalty"] = value
        energy = _mean_energy_j([m for _, ms in pairs.samples(arm.key) for m in ms])
        peak = float(np.nanmax([r["peak_mem_mb"] for r in rows]))
        row = cell_row(arm.cell, rows, slowdown[0], peak, energy)
        row.update(wrapper_columns(data.loaded, rows))
        row.update(ratio_columns(ratios, seed))
        row["cache_bytes"] = max(r["cache_bytes"] for r in rows)  # weight slices (shared runner)
        row.update(aa)
        row.update(
            {
                "order": order,
                "paired_in_time": order == "interleaved" and ref_key is not None,
                "rounds": result.rounds,
                "rounds_stop": result.stop_reason,
                "achieved_slowdown_end": slowdown[1],
                "throttled": bool(tel.throttled),
                "throttle_reasons": str(tel.throttle_reasons or ""),
                "sm_clock_mhz": float(tel.sm_clock_mhz),
                **busy_columns(result.busy.get(arm.key)),
                "cuda_graphs": bool(arm.cell.cuda_graphs),
                **(extra_columns or {}),
            }
        )
        yield arm, row, rows


def busy_columns(busy: tuple[float, str] | None) -> dict:
    """Returns a cell's GPU-busy columns from (fraction, note): `gpu_busy_fraction` (decode
    steps' held GPU time ÷ their normal time, NaN unknown), `gpu_busy_note` (why NaN, else
    '') and `launch_bound` (fraction < measure.busy.LAUNCH_BOUND_BELOW)."""
    fraction, note = busy if busy is not None else (math.nan, "not probed")
    return {
        "gpu_busy_fraction": float(fraction),
        "gpu_busy_note": note,
        "launch_bound": busy_mod.launch_bound(fraction),
    }


def _loyalty_summary(values: list[float], seed: int, name: str) -> dict:
    """Returns {name, name_ci_low, name_ci_high}: the mean loyalty and its bootstrap CI."""
    return dict(zip((name, f"{name}_ci_low", f"{name}_ci_high"), mean_with_ci(values, seed)))


def run_single(
    loaded: LoadedModel,
    spec: SuiteSpec,
    samples: list[Sample],
    prepared: list[PreparedSample],
    cfg: CellConfig,
    achieved_slowdown: float = math.nan,
    on_step: Callable[[int, int], None] | None = None,
) -> tuple[dict, list[dict]]:
    """Runs one cell as a group of one arm (`adabench eval`); returns (cell row, sample rows)."""
    from adabench.models.factory import build_method

    method = build_method(cfg.method, loaded, cfg.budget, cfg.method_args, cfg.seed)
    data = GroupData(
        loaded, spec, samples, prepared, cfg.max_new_tokens or int(spec.max_new_tokens)
    )
    arms = [Arm(cfg.cell_id(), cfg, method)]
    gid = group_id(cfg, "sequential")
    result = run_arms(data, arms, on_step, order="sequential", warmup=cfg.warmup,
                      repeats=cfg.repeats, seed=cfg.seed, gid=gid)  # fmt: skip
    cells = assemble(data, arms, result, order="sequential", seed=cfg.seed,
                     slowdown=(achieved_slowdown, math.nan))  # fmt: skip
    _, row, rows = next(iter(cells))
    return row, rows
