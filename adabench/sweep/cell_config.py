"""The coordinates and measurement settings of one cell, and its deterministic id."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

from adabench.config import check_run_settings
from adabench.errors import check_range
from adabench.slo.controller import DEFAULT_ALPHA, DEFAULT_K_DEV, DEFAULT_MARGIN
from adabench.store import cell_id


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
    cuda_graphs: bool = field(
        default=False, metadata={"help": "decode steps as CUDA graphs (a measurement setting)"}
    )
    contention: float = field(default=0.0, metadata={"help": "co-running stress level [0, 1]"})
    contention_kind: str = field(default="compute", metadata={"help": "compute | memory | mixed"})
    slo_ms: float | None = field(
        default=None, metadata={"help": "latency target: run under the SLO controller"}
    )
    schedule: str = field(
        default="", metadata={"help": "contention schedule (SLO mode), e.g. 0:30s,1.0:30s"}
    )
    rate_per_s: float | None = field(
        default=None, metadata={"help": "server scenario: offered rate, requests/s"}
    )
    policy: str = field(
        default="", metadata={"help": "server scenario: static (the cell's budget) | controller"}
    )
    duration_s: float = field(
        default=0.0, metadata={"help": "server scenario: arrival window, seconds"}
    )
    arrivals: str = field(
        default="", metadata={"help": "server scenario: replayed trace file ('' = Poisson)"}
    )

    def __post_init__(self) -> None:
        check_range(self.budget, 0.0, 1.0, "budget", low_open=True)
        check_run_settings(self.repeats, self.warmup, self.limit, self.max_new_tokens)

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
        if self.rate_per_s is not None:
            return cell_id(
                {
                    **self.coords(),
                    "scenario": "server",
                    "rate_per_s": float(self.rate_per_s),
                    "policy": self.policy,
                    "slo_ms": float(self.slo_ms or 0.0),
                    "duration_s": float(self.duration_s),
                    "arrivals": self.arrivals,
                }
            )
        if self.slo_ms is None:
            return cell_id(self.coords())
        return slo_cell_id(self, self.slo_ms, schedule=self.schedule)


def slo_cell_id(
    cfg: CellConfig,
    slo_ms: float,
    margin: float = DEFAULT_MARGIN,
    alpha: float = DEFAULT_ALPHA,
    schedule: str = "",
    k_dev: float = DEFAULT_K_DEV,
) -> str:
    """Returns the id of an SLO cell: the cell's coordinates plus target, controller and schedule."""
    return cell_id(
        {
            **cfg.coords(),
            "slo_ms": float(slo_ms),
            "slo_margin": float(margin),
            "slo_alpha": float(alpha),
            "slo_k_dev": float(k_dev),
            "contention_schedule": schedule,
        }
    )
