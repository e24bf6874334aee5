"""Run reports: ``report.md`` and a self-contained ``report.html`` (warnings, findings with their
tests, figures inlined as base64 PNG including the plan atlas, cell table with paired latency
ratios and the A/A noise floor — one per VLM wrapper when the run spans several —, environment
card from meta.json). Reads only the results folder."""

from __future__ import annotations

import base64
import html
import math
from pathlib import Path

import pandas as pd

from adabench.analysis.adherence import budget_adherence
from adabench.analysis.findings import AA_WIDTH, find
from adabench.analysis.table import Table, build_table
from adabench.analysis.table_render import to_html, to_latex
from adabench.analysis.table_render import to_markdown as table_markdown
from adabench.errors import UserError
from adabench.files import atomic_write_text
from adabench.measure.busy import LAUNCH_BOUND_BELOW
from adabench.models.wrappers import WRAPPERS
from adabench.store import CELL_KEY, Run, devices, load_run

CAPTIONS = {
    "pareto": "Accuracy vs cost per contention level; error bars are 95 % CIs, the grey band is "
    "the Pareto frontier, the dotted line the `full` model's accuracy.",
    "adherence": "Requested budget vs achieved FLOPs ratio (top) and the paired latency ratio to "
    "`full` with its 95 % CI (below, per contention level); the grey band is the run's A/A noise "
    "floor (a second `full` arm ÷ full), the dashed line y = x.",
    "plans": "Plan atlas: per adaptive method and budget, the share of each decoder block (or of "
    "its heads and MLP groups) that ran, over all samples and per question family, with the "
    "number of distinct plans; for token selection, the share of visual tokens kept. One colour "
    "for a whole column means the scheduler does not adapt to that content.",
    "latency_cdf": "Per-sample latency distribution (CDF) per series, one panel per contention "
    "level; the axis ends at the p99, samples beyond are counted under it.",
    "cost": "Median per-sample latency with its p10–p90 range vs FLOPs per sample: how FLOP "
    "savings turn into time.",
    "family_accuracy": "Accuracy vs budget per question family with at least 5 samples per "
    "cell (95 % normal CIs).",
    "slo": "Fraction of samples within the latency SLO vs budget.",
    "load": "Serving under load: SLO attainment and goodput vs offered rate per policy (queue wait included; oracle dashed: the best fixed budget per rate).",
}
SPREAD_WARN = 0.10  # latency std / mean above this means a noisy machine
UNKNOWN = "unknown"
"""A cell's wrapper or prompt source in a folder written before adabench recorded them."""
CELLS = "Cells"


def write_report(run_dir: Path) -> tuple[Path, ...]:
    """Writes RUN_DIR/report.md and RUN_DIR/report.html (making PNG plots first if there are
    none) and the paper table as RUN_DIR/table.tex (`adabench table`'s default), and returns
    the paths written (report.md, report.html, then table.tex where the run has table rows)."""
    run = load_run(run_dir)
    if run.cells.empty:
        raise UserError(f"{run.path} holds no finished cell yet: nothing to report.")
    figures = _figures(run)
    sections = _sections(run)
    table = paper_table(run)
    md_path, html_path = run.path / "report.md", run.path / "report.html"
    atomic_write_text(md_path, _markdown(run, sections, figures, table))
    atomic_write_text(html_path, _html(run, sections, figures, table))
    if table is None:
        return md_path, html_path
    tex_path = run.path / "table.tex"
    atomic_write_text(tex_path, to_latex(table))
    return md_path, html_path, tex_path


def paper_table(run: Run) -> Table | None:
    """Returns the run's paper table as `adabench table RUN --latency ratio --ci` builds it
    (with `--rows model,method,budget,contention` when the run has several contention levels);
    None where it has no table rows (SLO cells only)."""
    rows = ("model", "method", "budget")
    if run.cells["contention"].nunique() > 1:
        rows += ("contention",)
    try:
        return build_table(run, rows=rows, latency="ratio", ci=True)
    except UserError:
        return None


def run_warnings(run: Run) -> list[str]:
    """Returns human-readable warnings about the run: what is off and what to do about it."""
    cells, warnings = run.cells, list(run.meta.get("warnings") or [])
    if run.meta.get("weights") == "random":
        warnings.append(
            "weights are random: accuracy is meaningless, only latency and FLOPs count."
        )
    adh = budget_adherence(cells)
    for row in adh[~adh["within_budget"] & adh["flops_ratio"].notna()].itertuples():
        warnings.append(f"{row.method} at budget {row.budget:g} ran flops_ratio {row.flops_ratio:.3f} "
                        "(over budget): the method does not honour its budget.")  # fmt: skip
    spread = cells["latency_ms_std"] / cells["latency_ms_mean"]
    noisy = cells[spread > SPREAD_WARN]
    if len(noisy):
        warnings.append(f"latency spread over {SPREAD_WARN:.0%} in {len(noisy)} cell(s) (max "
                        f"{spread.max():.0%}): the machine may be busy; add --repeats or run on a quiet system.")  # fmt: skip
    if cells["latency_ratio"].isna().all():
        warnings.append(
            "no `full` cell in the run: latency ratios are unknown; add --methods full."
        )
    if {"aa_ratio", "aa_ratio_ci_low", "aa_ratio_ci_high"} <= set(cells.columns):
        aa = cells.groupby(["suite", "model", "contention"])[
            ["aa_ratio_ci_low", "aa_ratio_ci_high"]].first().dropna()  # fmt: skip
        off = aa[(aa["aa_ratio_ci_low"] > 1) | (aa["aa_ratio_ci_high"] < 1)
                 | (aa["aa_ratio_ci_high"] - aa["aa_ratio_ci_low"] > 2 * AA_WIDTH)]  # fmt: skip
        if len(off):
            warnings.append(f"the A/A noise floor is wider than ±{AA_WIDTH:.0%} or excludes 1.0 "
                            f"in {len(off)} group(s): latency ratios there are uncertain; add "
                            "--target-ci 0.02, --repeats, or run on a quiet system.")  # fmt: skip
    if (cells["n"] < 30).any():
        warnings.append(
            f"as few as {int(cells['n'].min())} samples per cell: accuracy CIs are wide; raise --limit."
        )
    if "gpu_busy_fraction" in cells.columns:
        bound = cells[cells["gpu_busy_fraction"] < LAUNCH_BOUND_BELOW]
        if len(bound):
            names = ", ".join(sorted({f"{r.method}@{r.budget:g}" for r in bound.itertuples()}))
            warnings.append(f"{len(bound)} cell(s) launch-bound (decode GPU-busy fraction < "
                            f"{LAUNCH_BOUND_BELOW:g}, lowest {bound['gpu_busy_fraction'].min():.2f}: "
                            f"{names}): the GPU waits for kernel launches, so ratios track kernel "
                            "counts more than FLOPs; try --cuda-graphs.")  # fmt: skip
    stressed = cells[(cells["contention"] > 0) & (cells["achieved_slowdown"] < 1.05)]
    if len(stressed):
        warnings.append("contention > 0 slowed the reference workload by < 5 %: the stress had "
                        "little effect; check `adabench contention calibrate`.")  # fmt: skip
    return warnings


def _sections(run: Run) -> dict[str, list[dict[str, str]]]:
    meta = run.meta
    summary = {k: meta.get(k) for k in ["adabench_version", "git_commit", "command", "start", "end",
                                        "seed", "weights"] if meta.get(k) is not None}  # fmt: skip
    summary.update(cells=len(run.cells), samples=len(run.samples))
    fingerprint = meta.get("fingerprint") or {}
    sections = {
        "Run": [{"key": k, "value": _text(v)} for k, v in summary.items()],
        "Environment": [{"key": k, "value": _text(v)} for k, v in _flatten(fingerprint).items()],
    }
    names = wrappers_in(run.cells)
    lines = [wrapper_line(run.cells, n) for n in names]
    sections["Run"].append({"key": "wrapper" if len(names) == 1 else "wrappers",
                            "value": "; ".join(lines)})  # fmt: skip
    by_device = len(devices(run.cells)) > 1
    if by_device:  # a distributed run over several device models: never mix their latencies
        sections["Devices"] = _device_rows(run.cells)
    if len(names) == 1:
        sections[CELLS] = _cell_rows(run.cells, by_device)
        return sections
    of_cell = cell_values(run.cells)
    for name in names:  # one table per wrapper, in WRAPPERS order
        sections[f"{CELLS} · {wrapper_label(name)}"] = _cell_rows(
            run.cells[of_cell == name], by_device
        )
    return sections


def cell_values(cells: pd.DataFrame, column: str = "wrapper") -> pd.Series:
    """Returns each cell's `column` ("wrapper" or "prompt_source") as text, UNKNOWN where the
    cell lacks it (a folder written before adabench recorded it)."""
    if column not in cells.columns:
        return pd.Series(UNKNOWN, index=cells.index, dtype=object)
    values = cells[column].astype(object).where(cells[column].notna(), UNKNOWN)
    return values.map(lambda v: str(v) or UNKNOWN)


def wrappers_in(cells: pd.DataFrame) -> list[str]:
    """Returns the wrappers of `cells` (adabench names) in WRAPPERS order, others (UNKNOWN)
    after."""
    present = set(cell_values(cells))
    return [w for w in WRAPPERS if w in present] + sorted(present - set(WRAPPERS))


def wrapper_label(name: str) -> str:
    """Returns a wrapper's display name ("LLaVA-NeXT"), "wrapper not recorded" for UNKNOWN."""
    if name in WRAPPERS:
        return WRAPPERS[name].label
    return "wrapper not recorded" if name == UNKNOWN else name


def wrapper_line(cells: pd.DataFrame, name: str) -> str:
    """Returns one wrapper's summary for the Run section, e.g. "LLaVA-NeXT (llava-next):
    4 cells, prompt chat-template"."""
    mine = cell_values(cells) == name
    sources = sorted(set(cell_values(cells[mine], "prompt_source")))
    head = wrapper_label(name) + (f" ({name})" if name in WRAPPERS else "")
    n = int(mine.sum())
    return f"{head}: {n} cell{'' if n == 1 else 's'}, prompt {'/'.join(sources)}"


def _device_rows(cells: pd.DataFrame) -> list[dict[str, str]]:
    rows = []
    for name, group in cells.groupby("device_name"):
        hosts = sorted(
            str(h) for h in group.get("hostname", pd.Series(dtype=str)).dropna().unique()
        )
        rows.append({"device": str(name), "hosts": ", ".join(hosts), "cells": str(len(group)),
                     "models": ", ".join(sorted(group["model"].unique()))})  # fmt: skip
    return rows


def _cell_rows(cells: pd.DataFrame, by_device: bool = False) -> list[dict[str, str]]:
    adh = budget_adherence(cells).set_index(["suite", "model", "method", "budget", "contention"])
    rows = []
    if by_device:
        cells = cells.sort_values(["device_name", *CELL_KEY], kind="stable")
    for c in cells.itertuples():
        realization = adh.loc[(c.suite, c.model, c.method, c.budget, c.contention), "realization"]
        realization = realization.iloc[0] if isinstance(realization, pd.Series) else realization
        rows.append({
            "suite": c.suite, "model": c.model, "method": c.method, "budget": f"{c.budget:g}",
            "contention": f"{c.contention:g}", "n": str(c.n),
            "accuracy [95% CI]": f"{_num(c.accuracy, 3)} [{_num(c.accuracy_ci_low, 3)}, {_num(c.accuracy_ci_high, 3)}]",
            "GFLOPs": _num(c.flops / 1e9, 3), "FLOPs ratio": _num(c.flops_ratio, 3),
            "latency ms (mean ± std)": f"{_num(c.latency_ms_mean, 1)} ± {_num(c.latency_ms_std, 1)}",
            "p90 ms": _num(c.latency_ms_p90, 1),
            "latency ratio [95% CI]": _ratio(c, "latency_ratio"),
            "A/A [95% CI]": _ratio(c, "aa_ratio"),
            "realization": _num(realization, 2), "slowdown": _num(c.achieved_slowdown, 2),
            "decode slowdown": _num(getattr(c, "achieved_slowdown_decode", math.nan), 2),
        })  # fmt: skip
        if by_device:
            rows[-1] = {"device": str(c.device_name), **rows[-1]}
    return rows


def _ratio(cell, column: str) -> str:
    """'0.70 [0.69, 0.71]', '0.70' for runs without CIs, '–' when unknown."""
    get = cell._asdict().get
    value = _num(get(column), 3)
    low, high = _num(get(f"{column}_ci_low"), 3), _num(get(f"{column}_ci_high"), 3)
    return value if "–" in (value, low) else f"{value} [{low}, {high}]"


def findings_lines(run: Run) -> list[str]:
    """Returns the run's findings (adabench/analysis/findings.py), one sentence each."""
    random = run.meta.get("weights") == "random"
    return find(run.cells, run.samples, random_weights=random).lines()


def _figures(run: Run) -> list[Path]:
    pngs = list((run.path / "plots").glob("*.png"))
    if not pngs:
        from adabench.plots import make_plots

        pngs = make_plots(run.path, formats=["png"])
    return sorted(pngs, key=lambda p: (_figure_rank(p), p.name))


def _prefix(path: Path) -> str | None:
    matches = [p for p in CAPTIONS if path.stem.startswith(p)]
    return max(matches, key=len) if matches else None


def _figure_rank(path: Path) -> int:
    prefix = _prefix(path)
    return list(CAPTIONS).index(prefix) if prefix else len(CAPTIONS)


def _caption(path: Path) -> str:
    prefix = _prefix(path)
    return CAPTIONS[prefix] if prefix else path.stem


def _markdown(run: Run, sections: dict, figures: list[Path], table: Table | None) -> str:
    lines = [f"# adabench report: {run.name}", ""]
    warnings = run_warnings(run)
    lines += ["## Warnings", ""] + ([f"- {w}" for w in warnings] or ["None."]) + [""]
    lines += ["## Findings", ""] + [f"- {f}" for f in findings_lines(run)] + [""]
    for title in [t for t in ("Run", "Environment", "Devices") if t in sections]:
        lines += [f"## {title}", "", *_md_table(sections[title]), ""]
    if table is not None:
        lines += ["## Paper table", "", table_markdown(table), "LaTeX: `table.tex`.", ""]
    lines += ["## Figures", ""]
    for path in figures:
        rel = path.relative_to(run.path) if path.is_relative_to(run.path) else path
        lines += [f"![{path.stem}]({rel.as_posix()})", "", f"*{_caption(path)}*", ""]
    for title in [t for t in sections if t.startswith(CELLS)]:
        lines += [f"## {title}", "", *_md_table(sections[title]), ""]
    return "\n".join(lines)


def _html(run: Run, sections: dict, figures: list[Path], table: Table | None) -> str:
    esc = html.escape
    parts = [f"<h1>adabench report: {esc(run.name)}</h1>", "<h2>Warnings</h2>"]
    warnings = run_warnings(run)
    parts.append(
        "<ul>" + "".join(f"<li>{esc(w)}</li>" for w in warnings) + "</ul>"
        if warnings
        else "<p>None.</p>"
    )
    parts += ["<h2>Findings</h2>",
              "<ul>" + "".join(f"<li>{esc(f)}</li>" for f in findings_lines(run)) + "</ul>"]  # fmt: skip
    for title in [t for t in ("Run", "Environment", "Devices") if t in sections]:
        parts += [f"<h2>{title}</h2>", _html_table(sections[title])]
    if table is not None:
        parts += ["<h2>Paper table</h2>", to_html(table), "<p>LaTeX: <code>table.tex</code>.</p>"]
    parts.append("<h2>Figures</h2>")
    for path in figures:
        data = base64.b64encode(path.read_bytes()).decode("ascii")
        parts.append(f'<figure><img alt="{esc(path.stem)}" src="data:image/png;base64,{data}">'
                     f"<figcaption>{esc(_caption(path))}</figcaption></figure>")  # fmt: skip
    for title in [t for t in sections if t.startswith(CELLS)]:
        parts += [f"<h2>{esc(title)}</h2>", _html_table(sections[title])]
    body = "\n".join(parts)
    return (f"<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
            f"<title>adabench report: {esc(run.name)}</title><style>{_CSS}</style></head>"
            f"<body>\n{body}\n</body></html>\n")  # fmt: skip


def _md_table(rows: list[dict[str, str]]) -> list[str]:
    if not rows:
        return ["(none)"]
    cols = list(rows[0])
    cell = lambda v: str(v).replace("|", "\\|")  # noqa: E731
    return [
        "| " + " | ".join(cols) + " |",
        "|" + "|".join("---" for _ in cols) + "|",
        *("| " + " | ".join(cell(r[c]) for c in cols) + " |" for r in rows),
    ]


def _html_table(rows: list[dict[str, str]]) -> str:
    if not rows:
        return "<p>(none)</p>"
    cols = list(rows[0])
    head = "".join(f"<th>{html.escape(c)}</th>" for c in cols)
    body = "".join(
        "<tr>" + "".join(f"<td>{html.escape(str(r[c]))}</td>" for c in cols) + "</tr>" for r in rows
    )
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _flatten(obj: dict, prefix: str = "") -> dict:
    flat = {}
    for k, v in obj.items():
        if isinstance(v, dict):
            flat.update(_flatten(v, f"{prefix}{k}."))
        else:
            flat[f"{prefix}{k}"] = v
    return flat


def _num(value, digits: int) -> str:
    try:
        value = float(value)
    except (TypeError, ValueError):
        return "–"
    return "–" if math.isnan(value) else f"{value:.{digits}f}"


def _text(value) -> str:
    if value is None:
        return "–"
    if isinstance(value, (list, tuple)):
        return ", ".join(_text(v) for v in value)
    return str(value)


_CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,sans-serif;max-width:1100px;margin:2em auto;
padding:0 1em;color:#222}h1{font-size:1.5em}h2{font-size:1.2em;border-bottom:1px solid #ddd}
table{border-collapse:collapse;font-size:.85em;margin:.5em 0}th,td{border:1px solid #ddd;
padding:.25em .5em;text-align:left}th{background:#f4f4f4}tbody tr:nth-child(even){background:#fafafa}
figure{display:inline-block;margin:.5em 1em .5em 0;vertical-align:top;max-width:520px}
figure img{width:100%;height:auto}figcaption{font-size:.85em;color:#555}
table.paper td{text-align:right}table.paper caption{caption-side:bottom;font-size:.85em;color:#555;
text-align:left;padding-top:.3em}
"""
