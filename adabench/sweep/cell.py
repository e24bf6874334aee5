"""One cell: (model, method, budget, suite, contention) → one cells.parquet row + sample rows.

`adabench eval` runs one cell; the sweep repeats it over the grid. Latency is the model's time
(vision tower, prefill, decode) at batch size 1 with greedy decoding; tokenization and image
preprocessing happen once per suite, outside the timed region. `--warmup W` runs W untimed
generations at the start of the cell; each sample is then timed `repeats` times.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from contextlib import nullcontext
from dataclasses import asdict, dataclass, field

import numpy as np

from adabench.data import metrics
from adabench.data.suites import Sample, SuiteSpec
from adabench.errors import UserError
from adabench.measure import flops as flops_mod
from adabench.measure.memory import PeakMemory
from adabench.measure.stats import bootstrap_ci, spread_warning, summarize
from adabench.measure.telemetry import NvmlSampler, Telemetry
from adabench.measure.timing import Timer
from adabench.models.execution import LlavaRunner
from adabench.models.loading import LoadedModel
from adabench.models.methods import build_method
from adabench.sweep.generate import PreparedSample, generate
from adabench.sweep.store import cell_id


@dataclass
class CellConfig:
    """Coordinates and measurement settings of one cell."""

    model: str = field(metadata={"help": "model alias, local folder or hub id"})
    method: str = field(default="full", metadata={"help": "method name or a+b combination"})
    budget: float = field(default=1.0, metadata={"help": "fraction of decoder compute, (0, 1]"})
    suite: str = field(default="shapes", metadata={"help": "suite name"})
    split: str = field(default="test", metadata={"help": "suite split"})
    limit: int | None = field(default=None, metadata={"help": "first N samples"})
    repeats: int = field(default=1, metadata={"help": "timed runs per sample"})
    warmup: int = field(default=1, metadata={"help": "untimed generations at cell start"})
    max_new_tokens: int | None = field(default=None, metadata={"help": "default: the suite's"})
    seed: int = field(default=0, metadata={"help": "seed for random plans and bootstrap"})
    method_args: dict = field(default_factory=dict, metadata={"help": "method arguments"})
    contention: float = field(default=0.0, metadata={"help": "co-running stress level [0, 1]"})
    contention_kind: str = field(default="compute", metadata={"help": "compute | memory | mixed"})
    slo_ms: float | None = field(
        default=None, metadata={"help": "latency target: run under the SLO controller"}
    )
    schedule: str = field(
        default="", metadata={"help": "contention schedule (SLO mode), e.g. 0:30s,1.0:30s"}
    )

    def __post_init__(self) -> None:
        if self.repeats < 1:
            raise UserError(f"repeats must be >= 1, got {self.repeats}")
        if self.warmup < 0:
            raise UserError(f"warmup must be >= 0, got {self.warmup}")
        if self.max_new_tokens is not None and self.max_new_tokens < 1:
            raise UserError(f"max-new-tokens must be >= 1, got {self.max_new_tokens}")

    def coords(self) -> dict:
        """Returns the coordinates that define the cell id (measurement settings excluded)."""
        keys = (
            "suite",
            "split",
            "limit",
            "model",
            "method",
            "method_args",
            "budget",
            "contention",
            "contention_kind",
            "seed",
        )
        return {k: asdict(self)[k] for k in keys}

    def cell_id(self) -> str:
        """Returns the deterministic id; SLO cells also hash the target, controller and schedule
        (the same id as `adabench.slo.cell.slo_cell_id` with the default controller settings)."""
        if self.slo_ms is None:
            return cell_id(self.coords())
        from adabench.slo.cell import slo_cell_id

        return slo_cell_id(self, self.slo_ms, schedule=self.schedule)


def prepare_samples(
    loaded: LoadedModel, spec: SuiteSpec, samples: list[Sample]
) -> list[PreparedSample]:
    """Returns processor outputs for `samples` on the model's device (once per suite and model)."""
    from adabench.data.hf_suites import prepare_image

    out = []
    for s in samples:
        image = prepare_image(
            spec, s.image, loaded.processor
        )  # LLaVA-1.5 pad-to-square where the suite asks
        enc = loaded.processor(images=image, text=spec.render_prompt(s), return_tensors="pt")
        out.append(
            PreparedSample(
                s.id,
                enc["input_ids"].to(loaded.device),
                enc["pixel_values"].to(loaded.device, loaded.dtype),
            )
        )
    return out


def run_cell(
    loaded: LoadedModel,
    spec: SuiteSpec,
    samples: list[Sample],
    prepared: list[PreparedSample],
    cfg: CellConfig,
    achieved_slowdown: float = math.nan,
    on_sample: Callable[[int, dict], None] | None = None,
) -> tuple[dict, list[dict]]:
    """Runs the cell and returns (cell row, sample rows) with the columns of DESIGN.md."""
    method = build_method(cfg.method, loaded, cfg.budget, cfg.method_args, cfg.seed)
    runner = LlavaRunner(loaded.model)
    timer = Timer(loaded.device)
    tok = loaded.processor.tokenizer
    max_new = cfg.max_new_tokens or int(spec.max_new_tokens)
    for i in range(cfg.warmup):
        generate(runner, method, prepared[i % len(prepared)], max_new, tok.eos_token_id, timer)
    rows: list[dict] = []
    sampler = (
        NvmlSampler(_nvml_index(loaded))
        if loaded.device.type == "cuda"
        else nullcontext(Telemetry())
    )
    with PeakMemory(loaded.device) as mem, sampler as tel:
        for i, (sample, ps) in enumerate(zip(samples, prepared)):
            runs = [
                generate(runner, method, ps, max_new, tok.eos_token_id, timer)
                for _ in range(cfg.repeats)
            ]
            rows.append(_sample_row(loaded, spec, sample, runs, method))
            if on_sample:
                on_sample(i, rows[-1])
    n_gen = len(rows) * cfg.repeats
    energy = tel.energy_j / n_gen if n_gen and not math.isnan(tel.energy_j) else math.nan
    for row in rows:
        row["energy_j"] = energy
    return _cell_row(cfg, rows, achieved_slowdown, mem.peak_mem_mb, energy), rows


def _nvml_index(loaded: LoadedModel) -> int:
    from adabench.measure.telemetry import nvml_index

    return nvml_index(loaded.device.index or 0)


def _sample_row(loaded: LoadedModel, spec: SuiteSpec, sample: Sample, runs: list, method) -> dict:
    first = runs[0]
    tok = loaded.processor.tokenizer
    text = tok.decode(first.token_ids, skip_special_tokens=True).strip()
    if getattr(loaded, "weights", "trained") == "random" or not sample.answers:
        score = (
            math.nan
        )  # random weights (latency-only run) or hidden answers (e.g. VQAv2 test-dev)
    else:
        score = metrics.score(spec.metric_for(sample.family), text, sample.answers)
    fl = _generation_flops(
        loaded, first.prompt_len, len(first.token_ids), first.plan, first.full_prompt_len
    )
    extra_flops = (
        loaded.adallava.overhead_flops()
        if loaded.adallava is not None and method.NAME.startswith("adallava")
        else 0
    )
    decode_steps = [ms for g in runs for ms in g.decode_ms]
    return {
        "sample_id": sample.id,
        "family": sample.family,
        "prediction": text,
        "answers": sample.answers,
        "score": score,
        "latency_ms": float(np.mean([g.latency_ms for g in runs])),
        "latency_ms_repeats": [g.latency_ms for g in runs],
        "prefill_ms": float(np.mean([g.prefill_ms for g in runs])),
        "decode_ms": float(np.mean([sum(g.decode_ms) for g in runs])),
        "decode_ms_per_token": float(np.mean(decode_steps)) if decode_steps else math.nan,
        "overhead_ms": float(np.mean([g.overhead_ms for g in runs])),
        "weights": getattr(loaded, "weights", "trained"),
        "new_tokens": len(first.token_ids),
        "flops": fl["flops"] + extra_flops,
        "llm_flops": fl["llm_flops"],
        "flops_ratio": fl["flops_ratio"],
        "plan": first.plan.describe(loaded.config.text_config.num_attention_heads),
        **{k: v for k, v in first.info.items() if isinstance(v, (int, float, str))},
    }


def _generation_flops(
    loaded: LoadedModel, prompt_len: int, new_tokens: int, plan, full_len: int
) -> dict:
    """Returns `flops.generation_flops`, memoised per model on (lengths, plan): plans and lengths
    repeat across samples, and the analytic count is pure Python (harness overhead)."""
    memo = loaded.__dict__.setdefault("_flops_memo", {})
    key = (prompt_len, new_tokens, plan, full_len)
    if key not in memo:
        memo[key] = flops_mod.generation_flops(
            loaded.config, prompt_len, new_tokens, plan, full_prompt_len=full_len
        )
    return memo[key]


def _noise_warning(rows: list[dict]) -> str:
    """Returns a timing-noise warning from the spread of *repeats of the same sample* (samples
    differ in length, so the spread across samples is not noise); "" with one repeat."""
    normalized = [
        x / np.mean(r) for r in (row["latency_ms_repeats"] for row in rows) if len(r) > 1 for x in r
    ]
    return (spread_warning(normalized) or "") if normalized else ""


def _cell_row(
    cfg: CellConfig, rows: list[dict], slowdown: float, peak_mem_mb: float, energy: float
) -> dict:
    scores = [r["score"] for r in rows if not math.isnan(r["score"])]
    raw = [x for r in rows for x in r["latency_ms_repeats"]]
    lat = summarize(raw)
    lo, hi = bootstrap_ci(scores, seed=cfg.seed) if len(scores) > 1 else (math.nan, math.nan)
    per_token = [r["decode_ms_per_token"] for r in rows if not math.isnan(r["decode_ms_per_token"])]
    return {
        "cell_id": cfg.cell_id(),
        "suite": cfg.suite,
        "model": cfg.model,
        "method": cfg.method,
        "budget": cfg.budget,
        "contention": cfg.contention,
        "contention_kind": cfg.contention_kind,
        "achieved_slowdown": slowdown,
        "n": len(rows),
        "accuracy": float(np.mean(scores)) if scores else math.nan,
        "accuracy_ci_low": lo,
        "accuracy_ci_high": hi,
        "flops": float(np.mean([r["flops"] for r in rows])),
        "llm_flops": float(np.mean([r["llm_flops"] for r in rows])),
        "flops_ratio": float(np.mean([r["flops_ratio"] for r in rows])),
        "flops_ratio_max": float(np.max([r["flops_ratio"] for r in rows])),
        "latency_ms_mean": lat["mean"],
        "latency_ms_std": lat["std"],
        "latency_ms_p50": lat["p50"],
        "latency_ms_p90": lat["p90"],
        "latency_ms_p99": lat["p99"],
        "latency_ms_cv": lat["cv"],
        "prefill_ms_mean": float(np.mean([r["prefill_ms"] for r in rows])),
        "decode_ms_per_token_mean": float(np.mean(per_token)) if per_token else math.nan,
        "overhead_ms_mean": float(np.mean([r["overhead_ms"] for r in rows])),
        "latency_ratio": math.nan,
        "peak_mem_mb": peak_mem_mb,
        "energy_j_mean": energy,
        "slo_ms": math.nan,
        "slo_attainment": math.nan,
        "split": cfg.split,
        "repeats": cfg.repeats,
        "distinct_plans": len({r["plan"] for r in rows}),
        "weights": rows[0].get("weights", "trained") if rows else "trained",
        "spread_warning": _noise_warning(rows),
    }
