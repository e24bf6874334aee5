"""`plan-file`: replays per-sample plans from a JSONL (or parquet) file, so an external scheduler's decisions
are benchmarked without writing code (docs/methods.md, "Plans from a file").

One JSON object per line, keyed by the sample id of the suite (`adabench suites show`):
  {"sample_id": "shapes-test-0", "blocks": [0, 1, 2, 5]}                 kept decoder blocks
  {"sample_id": "...", "layers": [null, {"heads": [0, 1], "mlp_groups": [0]}, {}, ...],
   "mlp_group_count": 4}                                                  heads/MLP groups per block
  {"sample_id": "...", "visual_tokens": [0, 3, 4, 9]}                     kept visual tokens
`blocks` and `layers` exclude each other; `visual_tokens` joins either (or runs every block).
In `layers`, null skips a block and {} (or missing keys) runs all of it. Blank lines and lines
starting with # are ignored. A .parquet file holds the same fields as columns (`layers` as
JSON text), one row per sample. Every problem is a UserError naming the file and line; a sample
with no line in the file is one naming the sample. The runner refuses a plan above the budget.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import torch

from adabench.errors import UserError
from adabench.models.methods import Method, Request, plan_problem, register
from adabench.models.plan import FULL_LAYER, LayerPlan, Plan


@dataclass(frozen=True)
class FilePlan:
    """The plan of one sample read from the file, and the line it came from."""

    plan: Plan
    visual_tokens: tuple[int, ...] | None
    line: int


@register
class PlanFile(Method):
    NAME = "plan-file"
    VARIES = "whatever the file says (per sample)"
    MIN_BUDGET_TEXT = "any (a plan above the budget is refused when it runs)"
    DESCRIPTION = (
        "replays per-sample plans from a JSONL file (arg path): kept blocks, heads/MLP groups "
        "per block, or kept visual tokens"
    )
    ARGS = {"path": "JSONL file, one {sample_id, blocks | layers, visual_tokens} per line"}

    def __init__(self, model, budget: float, args: dict | None = None, seed: int = 0) -> None:
        super().__init__(model, budget, args, seed)
        if "path" not in self.args:
            raise UserError("method 'plan-file' needs its file: --method-arg path=plans.jsonl")
        self.path = Path(str(self.args["path"]))
        self.plans = read_plan_file(self.path, model.config.text_config)
        self._indices: dict[tuple, torch.Tensor] = {}

    @classmethod
    def min_budget(cls, model) -> float:
        """Returns 0.0: the file decides; each plan is checked against the budget when it runs."""
        return 0.0

    def request(self, sample_id, input_ids, image_features) -> Request:
        """Returns the file's plan for `sample_id`; kept visual tokens replace the image's."""
        entry = self.plans.get(str(sample_id))
        if entry is None:
            some = ", ".join(repr(k) for k in list(self.plans)[:3])
            raise UserError(
                f"plan-file {self.path}: no plan for sample {sample_id!r} (the file has "
                f"{len(self.plans)} plans, e.g. {some}); add a line for it"
            )
        if entry.visual_tokens is None:
            return Request(plan=entry.plan)
        n_visual = image_features.shape[1]
        if entry.visual_tokens[-1] >= n_visual:
            raise UserError(
                f"plan-file {self.path}:{entry.line}: visual token {entry.visual_tokens[-1]} "
                f"out of range: sample {sample_id!r} has {n_visual} visual tokens"
            )
        key = (entry.line, image_features.device)
        if key not in self._indices:
            self._indices[key] = torch.tensor(entry.visual_tokens, device=image_features.device)
        kept = image_features.index_select(1, self._indices[key])
        removed = n_visual - len(entry.visual_tokens)
        return Request(
            plan=entry.plan.with_tokens(visual_tokens_removed=removed),
            image_features=kept,
            info={"kept_visual_tokens": len(entry.visual_tokens)},
        )


def read_plan_file(path: Path, text_config) -> dict[str, FilePlan]:
    """Returns sample id → FilePlan from the JSONL (or parquet) file `path`, each plan checked
    against a decoder of `text_config`; any problem is a UserError naming the file and line
    (parquet: row, counted from 1)."""
    if not path.is_file():
        raise UserError(f"plan-file: no file {path} (give --method-arg path=FILE.jsonl)")
    out: dict[str, FilePlan] = {}
    n = int(text_config.num_hidden_layers)
    rows = _parquet_rows(path) if path.suffix == ".parquet" else _jsonl_rows(path)
    for number, where, entry in rows:
        sample_id, plan, visual = _parse_line(entry, n, where)
        problem = plan_problem(plan, text_config)
        if problem is not None:
            raise UserError(f"{where}: invalid plan: {problem}")
        if sample_id in out:
            raise UserError(
                f"{where}: sample {sample_id!r} already has a plan on line {out[sample_id].line}"
            )
        out[sample_id] = FilePlan(plan, visual, number)
    if not out:
        raise UserError(f"plan-file {path}: no plans (one JSON object per line)")
    return out


def _jsonl_rows(path: Path):
    """Yields (line number, "plan-file PATH:LINE", parsed object) per non-blank, non-# line."""
    for number, raw in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        text = raw.strip()
        if not text or text.startswith("#"):
            continue
        where = f"plan-file {path}:{number}"
        try:
            yield number, where, json.loads(text)
        except json.JSONDecodeError as exc:
            raise UserError(f"{where}: invalid JSON ({exc.msg} at column {exc.colno})") from None


def _parquet_rows(path: Path):
    """Yields (row number, "plan-file PATH row N", row as a dict) of a parquet file: columns
    sample_id, blocks / visual_tokens (lists), layers (JSON text), mlp_group_count; nulls
    are left out."""
    import pandas as pd

    try:
        frame = pd.read_parquet(path)
    except Exception as exc:  # pyarrow's errors for a file that is not parquet
        raise UserError(f"plan-file {path}: not a readable parquet file ({exc})") from None
    for number, record in enumerate(frame.to_dict("records"), start=1):
        entry = {}
        for key, value in record.items():
            if hasattr(value, "tolist"):
                value = value.tolist()
            if value is None or (isinstance(value, float) and value != value):
                continue
            if key == "layers" and isinstance(value, str):
                value = json.loads(value)
            if key == "mlp_group_count" and isinstance(value, float) and value.is_integer():
                value = int(value)
            entry[key] = value
        yield number, f"plan-file {path} row {number}", entry


KEYS = {"sample_id", "blocks", "layers", "mlp_group_count", "visual_tokens"}


def _parse_line(entry, n: int, where: str) -> tuple[str, Plan, tuple[int, ...] | None]:
    """Returns (sample id, plan, kept visual tokens or None) of one parsed line."""
    if not isinstance(entry, dict):
        raise UserError(f"{where}: each line must be a JSON object, got {type(entry).__name__}")
    unknown = set(entry) - KEYS
    if unknown:
        raise UserError(f"{where}: unknown key(s) {sorted(unknown)}; allowed: {sorted(KEYS)}")
    sample_id = entry.get("sample_id")
    if not isinstance(sample_id, (str, int)) or isinstance(sample_id, bool):
        raise UserError(f'{where}: needs a "sample_id" (text)')
    if "blocks" in entry and "layers" in entry:
        raise UserError(f'{where}: give "blocks" or "layers", not both')
    if not {"blocks", "layers", "visual_tokens"} & set(entry):
        raise UserError(f'{where}: needs "blocks", "layers" or "visual_tokens"')
    if "blocks" in entry:
        blocks = _indices(entry["blocks"], n, "blocks", where)
        plan = Plan.from_kept_blocks(n, blocks)
    elif "layers" in entry:
        plan = _layers(entry["layers"], entry.get("mlp_group_count", 1), n, where)
    else:
        plan = Plan.full(n)
    visual = None
    if "visual_tokens" in entry:
        visual = tuple(_indices(entry["visual_tokens"], None, "visual_tokens", where))
        if not visual:
            raise UserError(f'{where}: "visual_tokens" must keep at least one token')
    return str(sample_id), plan, visual


def _indices(value, top: int | None, what: str, where: str) -> list[int]:
    """Returns `value` as sorted distinct indices in [0, top) (top None: any ≥ 0)."""
    ok = isinstance(value, list) and all(
        isinstance(x, int) and not isinstance(x, bool) and x >= 0 and (top is None or x < top)
        for x in value
    )
    if not ok:
        span = f"[0, {top})" if top is not None else ">= 0"
        raise UserError(
            f'{where}: "{what}" must be a list of whole numbers in {span}, got {value!r}'
        )
    if len(set(value)) != len(value):
        raise UserError(f'{where}: "{what}" lists an index twice: {value!r}')
    return sorted(value)


def _layers(value, groups, n: int, where: str) -> Plan:
    """Returns the plan of a "layers" list: null skips a block, {heads, mlp_groups} keeps part."""
    if not isinstance(value, list) or len(value) != n:
        got = len(value) if isinstance(value, list) else type(value).__name__
        raise UserError(f'{where}: "layers" must list all {n} blocks, got {got}')
    if not isinstance(groups, int) or isinstance(groups, bool) or groups < 1:
        raise UserError(f'{where}: "mlp_group_count" must be a whole number >= 1, got {groups!r}')
    layers: list[LayerPlan | None] = []
    for i, item in enumerate(value):
        if item is None:
            layers.append(None)
            continue
        if not isinstance(item, dict) or set(item) - {"heads", "mlp_groups"}:
            raise UserError(
                f'{where}: block {i} must be null or {{"heads": [...], "mlp_groups": [...]}}'
            )
        heads, mlp = item.get("heads"), item.get("mlp_groups")
        heads = None if heads is None else tuple(_indices(heads, None, f"layers[{i}].heads", where))
        mlp = None if mlp is None else tuple(_indices(mlp, None, f"layers[{i}].mlp_groups", where))
        layers.append(FULL_LAYER if heads is None and mlp is None else LayerPlan(heads, mlp))
    return Plan(layers=tuple(layers), mlp_group_count=groups)
