"""Grid expansion: SweepConfig → ordered cells (model outer, then contention level, suite, method, budget)."""

from __future__ import annotations

from dataclasses import dataclass

from adabench.config import SweepConfig
from adabench.sweep.cell import CellConfig


@dataclass(frozen=True)
class Skipped:
    """A (model, method) pair that does not fit, with the reason."""

    model: str
    method: str
    reason: str


def needs_adallava(method: str) -> str | None:
    """Returns "L"/"H" when `method` (or a part of a+b) needs an AdaLLaVA checkpoint of that variant."""
    for part in method.split("+"):
        if part == "adallava-l":
            return "L"
        if part == "adallava-h":
            return "H"
    return None


def model_variant(model: str) -> str | None:
    """Returns the AdaLLaVA variant of a model from its config files (no weights loaded), else None."""
    import json
    from pathlib import Path

    from adabench.models.catalog import resolve

    try:
        path = Path(resolve(model))
    except Exception:
        return None
    cfg = path / "adallava_config.json"
    return json.loads(cfg.read_text())["variant"] if cfg.exists() else None


def expand(
    cfg: SweepConfig, variants: dict[str, str | None] | None = None
) -> tuple[list[CellConfig], list[Skipped]]:
    """Returns (cells in execution order, skipped pairs). `full` runs once per contention level.

    Model is the outer loop: the sweep loads each model once and runs every contention level on
    it (a 7B with real weights is read from disk once, and never while a stress runs)."""
    if variants is None:
        variants = {} if cfg.no_weights else {m: model_variant(m) for m in cfg.models}
    cells, skipped = [], []
    unreachable = set()
    if cfg.skip_unreachable:
        from adabench.sweep.reachability import unreachable_cells

        for u in unreachable_cells(cfg):
            unreachable.add((u.model, u.suite, u.method, u.budget))
            skipped.append(Skipped(u.model, f"{u.method}@{u.budget:g} on {u.suite}", u.reason))
    levels = cfg.contention
    if cfg.contention_schedule:
        from adabench.slo.schedule import max_level, parse_schedule

        levels = [max_level(parse_schedule(cfg.contention_schedule))]
    for model in cfg.models:
        for level in levels:
            for suite in cfg.suites:
                for method in cfg.methods:
                    need = needs_adallava(method)
                    if need and not cfg.no_weights and variants.get(model) != need:
                        if level == levels[0] and suite == cfg.suites[0]:
                            skipped.append(
                                Skipped(model, method, f"needs an AdaLLaVA-{need} checkpoint")
                            )
                        continue
                    if cfg.scenario == "server":
                        budgets = [1.0] if method == "full" else cfg.budgets
                        cells += server_cells(cfg, model, method, suite, level, budgets)
                        continue
                    if cfg.slo_ms:  # SLO mode: one cell per target, the controller picks budgets
                        cells += [
                            _cell(cfg, model, method, suite, level, 1.0, float(t))
                            for t in cfg.slo_ms
                        ]
                        continue
                    budgets = [1.0] if method == "full" else cfg.budgets
                    cells += [_cell(cfg, model, method, suite, level, b) for b in budgets
                              if (model, suite, method, b) not in unreachable]  # fmt: skip
    if cfg.scenario == "server":  # one arrival sequence per rate, shared by its policies
        order = {m: i for i, m in enumerate(cfg.models)}, {s: i for i, s in enumerate(cfg.suites)}
        cells.sort(key=lambda c: (order[0][c.model], c.contention, order[1][c.suite], c.rate_per_s))
    return cells, skipped


def server_rates(cfg: SweepConfig) -> list[float]:
    """Returns the offered rates (requests/s) of a server sweep: `cfg.rates`, or for a trace its
    mean rate (requests ÷ the span of its timestamps)."""
    if not cfg.arrivals:
        return list(cfg.rates)
    from adabench.slo.server import read_trace, trace_window_s

    times = read_trace(cfg.arrivals)
    return [len(times) / trace_window_s(times)]


def server_cells(cfg: SweepConfig, model: str, method: str, suite: str, level: float,
                 budgets: list[float]) -> list[CellConfig]:  # fmt: skip
    """Returns the server-scenario cells of one (level, model, suite, method): a static cell per
    budget and, for a method with a budget, one run by the queue-aware SLO controller — at
    every rate."""
    policies = [("static", b) for b in budgets]
    if method != "full":
        policies.append(("controller", 1.0))
    out = []
    for rate in server_rates(cfg):
        for policy, budget in policies:
            cell = _cell(cfg, model, method, suite, level, budget, float(cfg.slo_ms[0]))
            cell.schedule = ""
            cell.rate_per_s = float(rate)
            cell.policy = policy
            cell.duration_s = float(cfg.duration_s)
            cell.arrivals = str(cfg.arrivals or "")
            out.append(cell)
    return out


def _cell(
    cfg: SweepConfig,
    model: str,
    method: str,
    suite: str,
    level: float,
    budget: float,
    slo_ms: float | None = None,
) -> CellConfig:
    """Returns one cell of the grid; measurement settings come from `cfg`."""
    return CellConfig(
        model=model,
        method=method,
        budget=budget,
        suite=suite,
        split=cfg.split,
        limit=cfg.limit,
        repeats=cfg.repeats,
        warmup=cfg.warmup,
        max_new_tokens=cfg.max_new_tokens,
        cuda_graphs=cfg.cuda_graphs,
        seed=cfg.seed,
        method_args=dict(cfg.method_args),
        contention=level,
        contention_kind=cfg.contention_kind,
        slo_ms=slo_ms,
        schedule=(cfg.contention_schedule or "") if slo_ms is not None else "",
    )
