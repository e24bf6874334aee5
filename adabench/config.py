"""Sweep configuration. Precedence: CLI flag > --config YAML > defaults (the embedded demo)."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

import yaml

from adabench.errors import UserError, check_range

DEMO_MODELS = ["tiny", "tiny-adallava-l", "tiny-adallava-h"]
DEMO_METHODS = ["full", "layer-drop", "early-exit", "adallava-l", "adallava-h"]
ORDERS = ("interleaved", "sequential")


@dataclass
class SweepConfig:
    """Everything that defines a sweep's grid and how each cell is measured."""

    models: list[str] = field(
        default_factory=lambda: list(DEMO_MODELS),
        metadata={"help": "model aliases, folders or hub ids"},
    )
    methods: list[str] = field(
        default_factory=lambda: list(DEMO_METHODS),
        metadata={"help": "methods (a+b for combinations)"},
    )
    suites: list[str] = field(default_factory=lambda: ["shapes"], metadata={"help": "suite names"})
    budgets: list[float] = field(
        default_factory=lambda: [0.5, 0.75, 1.0], metadata={"help": "budgets in (0, 1]"}
    )
    contention: list[float] = field(
        default_factory=lambda: [0.0, 0.5], metadata={"help": "stress levels in [0, 1]"}
    )
    contention_kind: str = field(
        default="compute", metadata={"help": "compute | memory | mixed | sm"}
    )
    split: str = field(default="test", metadata={"help": "suite split"})
    limit: int | None = field(default=100, metadata={"help": "samples per suite (None = all)"})
    repeats: int = field(default=1, metadata={"help": "timed runs per sample"})
    warmup: int = field(default=2, metadata={"help": "untimed generations at cell start"})
    max_new_tokens: int | None = field(default=None, metadata={"help": "default: the suite's"})
    device: str = field(default="auto", metadata={"help": "auto | cpu | cuda[:i]"})
    dtype: str = field(default="auto", metadata={"help": "auto | float32 | float16 | bfloat16"})
    seed: int = field(default=0, metadata={"help": "seed"})
    method_args: dict = field(
        default_factory=dict, metadata={"help": "method arguments {key: value}"}
    )
    slo_ms: list[float] = field(
        default_factory=list, metadata={"help": "latency targets (SLO mode)"}
    )
    contention_schedule: str | None = field(
        default=None, metadata={"help": "SLO mode: changing load, e.g. 0:30s,1.0:30s"}
    )
    threads: int | None = field(
        default=None,
        metadata={"help": "torch CPU threads for the measured model (None = torch's default)"},
    )
    no_weights: bool = field(
        default=False, metadata={"help": "random weights from the config (latency only)"}
    )
    order: str = field(
        default="interleaved",
        metadata={
            "help": "interleaved: sample by sample, every arm of a group once per pass in a "
            "seeded random order (paired in time) | sequential: one cell after another"
        },
    )
    aa: bool = field(
        default=True,
        metadata={"help": "measure a second, hidden `full` arm per group: the A/A noise floor"},
    )
    target_ci: float | None = field(
        default=None,
        metadata={
            "help": "add rounds until every arm's latency-ratio CI half-width <= this (e.g. 0.02)"
        },
    )
    max_rounds: int = field(
        default=5, metadata={"help": "rounds (passes over the samples) at most with target_ci"}
    )
    max_time_s: float | None = field(
        default=None, metadata={"help": "seconds per group at most for extra rounds (target_ci)"}
    )
    chunk: int = field(
        default=10,
        metadata={"help": "samples per atomically written chunk (an interrupt loses at most one)"},
    )

    def __post_init__(self) -> None:
        for name in ("models", "methods", "suites"):
            if not getattr(self, name):
                raise UserError(f"{name} must not be empty")
        self.budgets = [
            check_range(float(b), 0.0, 1.0, "budget", low_open=True) for b in self.budgets
        ]
        self.contention = [
            check_range(float(c), 0.0, 1.0, "contention level") for c in self.contention
        ]
        if self.repeats < 1:
            raise UserError(f"repeats must be >= 1, got {self.repeats}")
        if self.warmup < 0:
            raise UserError(f"warmup must be >= 0, got {self.warmup}")
        if self.limit is not None and self.limit < 1:
            raise UserError(f"limit must be >= 1, got {self.limit}")
        if self.max_new_tokens is not None and self.max_new_tokens < 1:
            raise UserError(f"max-new-tokens must be >= 1, got {self.max_new_tokens}")
        if self.threads is not None and self.threads < 1:
            raise UserError(f"threads must be >= 1, got {self.threads}")
        if self.order not in ORDERS:
            from adabench.errors import did_you_mean

            raise did_you_mean(str(self.order), ORDERS, "order")
        if self.target_ci is not None:
            check_range(float(self.target_ci), 0.0, 1.0, "target-ci", low_open=True)
        if self.max_rounds < 1:
            raise UserError(f"max-rounds must be >= 1, got {self.max_rounds}")
        if self.max_time_s is not None and self.max_time_s <= 0:
            raise UserError(f"max-time must be > 0 seconds, got {self.max_time_s}")
        if self.chunk < 1:
            raise UserError(f"chunk must be >= 1, got {self.chunk}")
        for s in self.slo_ms:
            if float(s) <= 0:
                raise UserError(f"slo-ms must be > 0, got {s}")

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_layers(cls, yaml_path: Path | None, overrides: dict) -> SweepConfig:
        """Returns the config: defaults, then the YAML file, then the CLI `overrides` (non-None)."""
        data: dict = {}
        if yaml_path is not None:
            if not Path(yaml_path).is_file():
                raise UserError(f"config file not found: {yaml_path}")
            data = yaml.safe_load(Path(yaml_path).read_text()) or {}
            if not isinstance(data, dict):
                raise UserError(f"{yaml_path}: a sweep config must be a mapping")
        known = {f.name for f in fields(cls)}
        unknown = set(data) - known
        if unknown:
            from adabench.errors import did_you_mean

            raise did_you_mean(sorted(unknown)[0], known, "config key")
        data.update({k: v for k, v in overrides.items() if v is not None})
        return cls(**data)


def parse_floats(text: str | None, what: str) -> list[float] | None:
    """Returns floats from "0.5,0.75" or a range "0.5:1.0:0.05" (inclusive); None stays None."""
    if text is None:
        return None
    try:
        if ":" in text:
            start, stop, step = (float(x) for x in text.split(":"))
            if step <= 0:
                raise UserError(f"{what}: step must be > 0 in {text!r}")
            n = int(round((stop - start) / step))
            return [round(start + i * step, 10) for i in range(n + 1)]
        return [float(x) for x in text.split(",") if x.strip()]
    except ValueError:
        raise UserError(
            f"{what} must be numbers like 0.5,1.0 or a range 0.5:1.0:0.05, got {text!r}"
        ) from None


def parse_names(text: str | None) -> list[str] | None:
    """Returns names from "a,b"; None stays None."""
    return None if text is None else [x.strip() for x in text.split(",") if x.strip()]
