"""The paper table: one row per (model, method, budget) of a run, in the layout of the AdaLLaVA
paper's Table 1 — FLOPs, prefill and end-to-end latency, one column per suite with its official
metric, and the loyalty to `full` — built from ``cells.parquet`` (and, for MME's score and the significance marks, from
``samples.parquet``). Pure: the renderers are in `adabench.analysis.table_render`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from adabench.analysis.findings import FDR
from adabench.analysis.significance import benjamini_hochberg, paired_test
from adabench.data.metrics import MME_PERCEPTION, mme_scores
from adabench.errors import UserError, did_you_mean
from adabench.store import Run, devices

ROW_KEYS = ("model", "method", "budget", "contention")
"""The cell coordinates a row may be keyed by (``--rows``)."""
DEFAULT_ROWS = ("model", "method", "budget")
METRICS = ("official", "accuracy")
"""``official``: each suite's paper metric (MME's perception score, the rest accuracy in %);
``accuracy``: every suite as accuracy in %."""
LATENCY_UNITS = ("ms", "ratio")
"""``ms``: mean end-to-end latency; ``ratio``: the paired latency ratio to `full` (×full)."""
SUITE_NAMES = {"vqav2": "VQAv2", "scienceqa": "SQA-I", "textvqa": "TextVQA", "pope": "POPE",
               "mme": "MME", "mmbench": "MMBench", "gqa": "GQA", "shapes": "Shapes"}  # fmt: skip
"""How the paper names each shipped suite (others keep their own name)."""
SCORE_SUITES = ("mme",)
"""Suites whose official metric is a score (MME perception, 0..2000), not a percentage."""
MARK = "†"
"""Marks a suite value that differs from the ``--vs`` row's at q < FDR (paired test, BH)."""


@dataclass(frozen=True)
class Column:
    """One column of the table: where its numbers come from and how they are shown."""

    key: str = field(metadata={"help": "the row dict's key"})
    header: str = field(metadata={"help": "the column header, unit included"})
    digits: int = field(default=1, metadata={"help": "decimals shown"})
    kind: str = field(default="cost", metadata={"help": "key | cost | metric"})
    has_ci: bool = field(default=False, metadata={"help": "rows hold <key>_ci_low/_ci_high"})


@dataclass
class Table:
    """What `build_table` returns: the columns, one dict per row (unrounded numbers, with
    ``<key>_ci_low``/``_ci_high`` and ``<key>_mark`` beside a column's value) and a caption."""

    columns: list[Column]
    rows: list[dict]
    caption: str
    ci: bool = False
    reference: str = ""
    run: str = ""

    def shown(self, row: dict, column: Column) -> float | str:
        """Returns a row's value in `column` as shown: rounded to the column's digits (a
        number), or the key's text."""
        value = row[column.key]
        if column.kind == "key":
            return f"{value:g}" if isinstance(value, float) else str(value)
        return round(float(value), column.digits) if not math.isnan(value) else math.nan

    def best(self, column: Column) -> set[int]:
        """Returns the indexes of the rows holding the best shown value of a metric column
        (the highest; ties all count); empty for other columns."""
        if column.kind != "metric":
            return set()
        values = [self.shown(r, column) for r in self.rows]
        finite = [v for v in values if not math.isnan(v)]
        if not finite:
            return set()
        top = max(finite)
        return {i for i, v in enumerate(values) if v == top}


def build_table(
    run: Run,
    rows: tuple[str, ...] = DEFAULT_ROWS,
    suites: list[str] | None = None,
    metric: str = "official",
    contention: float | None = None,
    vs: str | None = None,
    ci: bool = False,
    latency: str = "ms",
) -> Table:
    """Returns the run's paper table (see the module docstring).

    FLOPs (T, or G below 1 TFLOP), prefill (ms) and latency (ms, or ×full) of a row are the
    means over its suites' cells; with one suite they are that cell's numbers. `contention`
    picks one level (default: the lowest) unless ``contention`` is a row key. `vs` is
    ``METHOD`` or ``METHOD@BUDGET`` (default ``full`` where the run has it): each row's suite
    values are tested against that row of the same model (and contention)."""
    if metric not in METRICS:
        raise did_you_mean(metric, METRICS, "--metric")
    if latency not in LATENCY_UNITS:
        raise did_you_mean(latency, LATENCY_UNITS, "--latency")
    cells = _usable_cells(run)
    rows = _check_rows(rows)
    cells = _at_contention(cells, contention, "contention" in rows)
    suites = _check_suites(cells, suites, run)
    cells = cells[cells["suite"].isin(suites)]
    _check_keys_cover(cells, rows)
    scale, unit = (1e12, "T") if cells["flops"].max() >= 1e12 else (1e9, "G")
    columns = [Column(k, k.capitalize(), kind="key") for k in rows]
    columns += [Column("flops", f"FLOPs ({unit})", 2), Column("prefill_ms", "Prefill (ms)", 1)]
    columns.append(Column("latency_ms", "Latency (ms)", 1) if latency == "ms"
                   else Column("latency_ratio", "Latency (×full)", 2, has_ci=True))  # fmt: skip
    headers = {s: _suite_header(s, metric) for s in suites}
    columns += [Column(s, headers[s], 1, "metric", has_ci=True) for s in suites]
    loyal = "loyalty" in cells.columns and cells["loyalty"].notna().any()
    if loyal:
        columns.append(Column("loyalty", "Loyalty (%)", 1, "metric", has_ci=True))
    table_rows = [
        _row(
            dict(zip(rows, key if isinstance(key, tuple) else (key,), strict=True)),
            group,
            suites,
            metric,
            scale,
            run.samples,
        )  # fmt: skip
        for key, group in cells.groupby(list(rows), sort=True)
    ]
    reference = _mark_significance(table_rows, rows, suites, vs, cells, run.samples)
    return Table(
        columns,
        table_rows,
        caption(run, cells, reference, suites, latency),
        ci,
        reference,
        run.name,
    )


def _usable_cells(run: Run) -> pd.DataFrame:
    cells = run.cells
    if cells.empty:
        raise UserError(f"{run.path} holds no finished cell yet: nothing to tabulate.")
    if "slo_ms" in cells.columns:  # SLO cells pick their budget per sample: not a table row
        cells = cells[cells["slo_ms"].isna()]
    if cells.empty:
        raise UserError(f"{run.path} holds only SLO cells: no (model, method, budget) rows.")
    return cells


def _check_rows(rows) -> tuple[str, ...]:
    rows = tuple(r.strip() for r in rows if r.strip())
    for name in rows:
        if name not in ROW_KEYS:
            raise did_you_mean(name, ROW_KEYS, "--rows key")
    if len(set(rows)) != len(rows) or not rows:
        raise UserError(f"--rows needs distinct keys from {', '.join(ROW_KEYS)}, got {rows}.")
    return rows


def _at_contention(cells: pd.DataFrame, level: float | None, keyed: bool) -> pd.DataFrame:
    levels = sorted(cells["contention"].unique())
    if level is None:
        return cells if keyed else cells[cells["contention"] == levels[0]]
    hit = cells[np.isclose(cells["contention"], level)]
    if hit.empty:
        raise UserError(f"no cell at --contention {level:g}; the run has contention "
                        f"{', '.join(f'{c:g}' for c in levels)}.")  # fmt: skip
    return hit


def _check_suites(cells: pd.DataFrame, wanted: list[str] | None, run: Run) -> list[str]:
    ordered = [s for s in (run.config.get("suites") or []) if s in set(cells["suite"])]
    present = ordered + sorted(set(cells["suite"]) - set(ordered))
    if not wanted:
        return present
    for name in wanted:
        if name not in present:
            raise did_you_mean(name, present, "--columns suite")
    return list(dict.fromkeys(wanted))


def _check_keys_cover(cells: pd.DataFrame, rows: tuple[str, ...]) -> None:
    """A coordinate that varies in the table but is not a row key would merge cells."""
    for key in ROW_KEYS:
        values = sorted(cells[key].unique())
        if key not in rows and len(values) > 1:
            shown = ", ".join(f"{v:g}" if isinstance(v, float) else str(v) for v in values)
            raise UserError(f"{key} varies in this run ({shown}): add it to --rows "
                            f"(now {','.join(rows)}) or pick one level.")  # fmt: skip


def _suite_header(suite: str, metric: str) -> str:
    name = SUITE_NAMES.get(suite, suite)
    if metric == "official" and suite in SCORE_SUITES:
        return name
    return f"{name} (%)"


def _row(keys: dict, group: pd.DataFrame, suites, metric, scale, samples) -> dict:
    """One row: cost columns averaged over the group's suites, one value per suite."""
    by_suite = group.groupby("suite")
    row = {
        **keys,
        "cell_ids": {s: list(g["cell_id"]) for s, g in by_suite},
        "flops": float(by_suite["flops"].mean().mean()) / scale,
        "prefill_ms": float(by_suite["prefill_ms_mean"].mean().mean()),
        "latency_ms": float(by_suite["latency_ms_mean"].mean().mean()),
        "n": int(group["n"].min()),
    }
    ratios = by_suite["latency_ratio"].mean().to_numpy(float)
    row["latency_ratio"] = float(np.exp(np.mean(np.log(ratios)))) if len(ratios) else math.nan
    lows = [group.get(c, pd.Series(math.nan, index=group.index)) for c in
            ("latency_ratio_ci_low", "latency_ratio_ci_high")]  # fmt: skip
    one = len(group) == 1  # a CI of a mean over suites is not the mean of their CIs
    row["latency_ratio_ci_low"] = float(lows[0].iloc[0]) if one else math.nan
    row["latency_ratio_ci_high"] = float(lows[1].iloc[0]) if one else math.nan
    for suite in suites:
        row.update(_suite_value(suite, group[group["suite"] == suite], metric, samples))
    row.update(_loyalty_value(group, one))
    return row


def _loyalty_value(group: pd.DataFrame, one: bool) -> dict:
    """{loyalty, _ci_low, _ci_high, _mark}: the share of samples (%) where the row's cells give
    `full`'s answer, the mean over suites (a CI only for one suite); NaN in runs without it."""
    get = lambda c: group.get(c, pd.Series(math.nan, index=group.index))  # noqa: E731
    value = float(get("loyalty").mean()) * 100
    low, high = (float(get(c).iloc[0]) * 100 if one else math.nan
                 for c in ("loyalty_ci_low", "loyalty_ci_high"))  # fmt: skip
    return {"loyalty": value, "loyalty_ci_low": low, "loyalty_ci_high": high, "loyalty_mark": ""}


def _suite_value(suite: str, cells: pd.DataFrame, metric: str, samples: pd.DataFrame) -> dict:
    """{suite: value, suite_ci_low, suite_ci_high}: accuracy in % (with its CI), or MME's
    perception score (no CI) computed from the cell's samples."""
    nan = {suite: math.nan, f"{suite}_ci_low": math.nan, f"{suite}_ci_high": math.nan}
    if cells.empty:
        return nan
    if metric == "official" and suite in SCORE_SUITES:
        return {**nan, suite: mme_perception(samples[samples["cell_id"].isin(cells["cell_id"])])}
    return {suite: float(cells["accuracy"].mean()) * 100,
            f"{suite}_ci_low": float(cells["accuracy_ci_low"].mean()) * 100,
            f"{suite}_ci_high": float(cells["accuracy_ci_high"].mean()) * 100}  # fmt: skip


def mme_perception(samples: pd.DataFrame) -> float:
    """Returns MME's perception score (0..2000, lmms-eval's `mme_scores`) of one cell's samples:
    the image is the sample id before ``#``, the category its family; NaN without families or
    where no sample is in a perception category."""
    if samples.empty or "family" not in samples.columns:
        return math.nan
    once = samples.drop_duplicates("sample_id")
    records = [{"image_id": str(r.sample_id).split("#")[0], "category": r.family,
                "prediction": str(r.prediction), "label": str(list(r.answers)[0])}
               for r in once.itertuples() if r.family in MME_PERCEPTION]  # fmt: skip
    return float(mme_scores(records)["perception"]) if records else math.nan


def _mark_significance(rows, keys, suites, vs, cells, samples) -> str:
    """Adds ``<suite>_mark`` (MARK or "") and ``<suite>_q`` to every row; returns the reference
    row's description ("" when there is none)."""
    for row in rows:
        row.update({f"{s}_mark": "" for s in suites})
        row.update({f"{s}_q": math.nan for s in suites})
    if "method" not in keys:
        if vs:
            raise UserError("--vs needs `method` among --rows (it names a method's row).")
        return ""
    methods = sorted({r["method"] for r in rows})
    if vs is None:
        if "full" not in methods:
            return ""
        vs = "full"
    method, _, budget_text = vs.partition("@")
    if method not in methods:
        raise did_you_mean(method, methods, "--vs method (a row of this table)")
    budget = _budget(budget_text, rows, method) if "budget" in keys else None
    scores = {cid: g.droplevel(0) for cid, g in
              samples.groupby(["cell_id", "sample_id"])["score"].mean().groupby(level=0)}  # fmt: skip
    tests = []
    for row in rows:
        ref = _reference_row(row, rows, keys, method, budget)
        if ref is None or ref is row:
            continue
        for suite in suites:
            a, b = _paired_scores(scores, ref["cell_ids"].get(suite), row["cell_ids"].get(suite))
            if len(a):
                tests.append((row, suite, paired_test(a, b).p))
    q = benjamini_hochberg([p for _, _, p in tests]) if tests else []
    for (row, suite, _), value in zip(tests, q, strict=True):
        row[f"{suite}_q"] = float(value)
        row[f"{suite}_mark"] = MARK if value < FDR else ""
    return method if budget is None else f"{method}@{budget:g}"


def _budget(text: str, rows: list[dict], method: str) -> float:
    budgets = sorted({r["budget"] for r in rows if r["method"] == method})
    if not text:
        return budgets[-1]
    try:
        value = float(text)
    except ValueError:
        raise UserError(f"--vs {method}@{text}: the budget must be a number.") from None
    if not any(math.isclose(value, b) for b in budgets):
        raise UserError(f"--vs {method}@{value:g} is not a row of this table; {method} has "
                        f"budgets {', '.join(f'{b:g}' for b in budgets)}.")  # fmt: skip
    return value


def _reference_row(row, rows, keys, method, budget) -> dict | None:
    """The row of `method` (at `budget`) that shares `row`'s other keys (model, contention)."""
    for other in rows:
        if other["method"] != method:
            continue
        if budget is not None and not math.isclose(other["budget"], budget):
            continue
        if all(other[k] == row[k] for k in keys if k not in ("method", "budget")):
            return other
    return None


def _paired_scores(scores: dict, ref_ids, row_ids) -> tuple[np.ndarray, np.ndarray]:
    """Per-sample scores of two cells on the samples both answered (aligned arrays; empty when
    either cell has no samples). `scores` is {cell_id: score by sample_id}."""
    a = scores.get(ref_ids[0]) if ref_ids else None
    b = scores.get(row_ids[0]) if row_ids else None
    if a is None or b is None:
        return np.array([]), np.array([])
    both = a.to_frame("a").join(b.rename("b"), how="inner")
    return both["a"].to_numpy(float), both["b"].to_numpy(float)


def caption(
    run: Run, cells: pd.DataFrame, reference: str, suites: list[str], latency: str = "ms"
) -> str:
    """Returns the table's caption: device, dtype, samples per cell, contention and what the
    marks mean — plain text (each renderer escapes it)."""
    device = ", ".join(devices(cells)) or _device_from_meta(run.meta)
    dtype = str(run.config.get("dtype") or "unknown")
    if dtype == "auto":
        dtype = "auto (float32 on CPU, float16 on GPU)"
    n_low, n_high = int(cells["n"].min()), int(cells["n"].max())
    samples = f"{n_low}" if n_low == n_high else f"{n_low}–{n_high}"
    levels = sorted(cells["contention"].unique())
    kinds = sorted(str(k) for k in cells.get("contention_kind", pd.Series()).dropna().unique())
    load = ", ".join(f"{c:g}" for c in levels)
    slowdown = cells.loc[cells["contention"] > 0, "achieved_slowdown"].dropna()
    if kinds and len(slowdown):
        low, high = f"{slowdown.min():.2f}", f"{slowdown.max():.2f}"
        spread = low if low == high else f"{low}–{high}"
        load += f" ({'/'.join(kinds)} stress, reference slowdown {spread}×)"
    text = (f"{run.name}: device {device}, dtype {dtype}, {samples} samples per cell, "
            f"contention {load}.")  # fmt: skip
    if run.meta.get("weights") == "random":
        text += " Weights are random: accuracy is meaningless, only FLOPs and latency count."
    text += _wrappers_text(cells)
    if latency == "ratio":
        text += (" Latency ×full: geometric mean of per-sample latency ratios to full on the "
                 "same samples (95 % bootstrap CI).")  # fmt: skip
    if len(suites) > 1:
        text += " FLOPs and latencies are means over the suites."
    if "loyalty" in cells.columns and cells["loyalty"].notna().any():
        text += (" Loyalty: % of samples where the method gives full's answer (same answer "
                 "after the suite's normalisation; fractional metrics: score agreement).")  # fmt: skip
    if reference:
        text += (f" {MARK}: differs from {reference} at q < {FDR:g} (paired McNemar or "
                 "sign-flip test, Benjamini–Hochberg).")  # fmt: skip
    text += " Best value per suite in bold."
    return text


def _wrappers_text(cells: pd.DataFrame) -> str:
    """Returns " Wrapper(s): llava-next (models; chat-template prompt)." from the cells'
    `wrapper` and `prompt_source` columns; "" for a folder that does not record them."""
    if "wrapper" not in cells.columns or cells["wrapper"].isna().all():
        return ""
    sources = cells.get("prompt_source", pd.Series(index=cells.index, dtype=object))
    parts = []
    for name, group in cells.groupby(cells["wrapper"].fillna("unknown"), sort=True):
        models = ", ".join(sorted(group["model"].astype(str).unique()))
        prompt = "/".join(sorted(sources[group.index].fillna("unknown").astype(str).unique()))
        parts.append(f"{name} ({models}; {prompt} prompt)")
    return f" Wrapper{'s' if len(parts) > 1 else ''}: {', '.join(parts)}."


def _device_from_meta(meta: dict) -> str:
    fingerprint = meta.get("fingerprint") or {}
    gpus = fingerprint.get("gpus") or []
    if gpus and isinstance(gpus[0], dict) and gpus[0].get("name"):
        return str(gpus[0]["name"])
    cpu = fingerprint.get("cpu")
    return str(cpu.get("model") if isinstance(cpu, dict) else cpu or "unknown")
