"""Grid expansion: SweepConfig → ordered cells (contention outer, then model, suite, method, budget)."""

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
    """Returns (cells in execution order, skipped pairs). `full` runs once per contention level."""
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
    for level in levels:
        for model in cfg.models:
            for suite in cfg.suites:
                for method in cfg.methods:
                    need = needs_adallava(method)
                    if need and not cfg.no_weights and variants.get(model) != need:
                        if level == levels[0] and suite == cfg.suites[0]:
                            skipped.append(
                                Skipped(model, method, f"needs an AdaLLaVA-{need} checkpoint")
                            )
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
    return cells, skipped


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
        seed=cfg.seed,
        method_args=dict(cfg.method_args),
        contention=level,
        contention_kind=cfg.contention_kind,
        slo_ms=slo_ms,
        schedule=(cfg.contention_schedule or "") if slo_ms is not None else "",
    )
