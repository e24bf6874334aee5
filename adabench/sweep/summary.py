"""The sweep's closing summary: one table per (contention, model) under a section heading, sized
for an 80-column terminal or CI log (whole names, short columns; more columns when the terminal
is wide), then the findings (adabench/analysis/findings.py)."""

from __future__ import annotations

import math
import sys
import textwrap

import pandas as pd

from adabench import console
from adabench.analysis import serving
from adabench.analysis.findings import find

RIGHT = {"budget", "acc", "FLOPs", "ms", "×full", "95% CI", "n", "acc CI", "p90 ms", "prefill",
         "decode", "loyal", "loyal CI"}  # fmt: skip
OPTIONAL = ["n", "loyal", "acc CI", "loyal CI", "p90 ms", "prefill", "decode"]
"""Columns shown only when the terminal is wide enough, dropped last first."""
LEGEND = ("×full: latency ÷ full's, paired per sample (median, 95% CI); vs A/A: "
          "≈full when the CI overlaps the group's A/A noise floor; loyal: share of samples "
          "answered as full answers them (95% CI).")  # fmt: skip


def print_summary(
    cells: pd.DataFrame,
    as_json: bool,
    random_weights: bool = False,
    samples: pd.DataFrame | None = None,
) -> None:
    """Prints the sweep summary on stdout: the cells as JSON (unchanged records), or the grouped
    tables followed by the findings. Accuracy findings need `samples` (paired per sample)."""
    if as_json:
        console.print_json(cells.to_dict(orient="records"))
        return
    width = console.width()
    if not serving.server_cells(cells).empty:
        _print_server_summary(cells, width)
        return
    lines = [
        "sweep summary" + (" · weights: random (latency/FLOPs only)" if random_weights else "")
    ]
    several = cells["suite"].nunique() > 1 if "suite" in cells.columns else False
    keys = ["contention", "model", "suite"] if several else ["contention", "model"]
    for key, group in cells.groupby(keys, sort=True):
        contention, model = key[0], key[1]
        suite = key[2] if several else None  # one table per suite: rows never mix suites
        title = _heading(group, model, contention, suite)
        lines += ["", *_wrap(title, width, "")]
        rows = [_row(c, random_weights) for c in _ordered(group).itertuples()]
        lines += console.fit_columns(rows, RIGHT, OPTIONAL, max_width=width)
    lines += ["", *_wrap(LEGEND, width, "")]
    findings = find(cells, samples if samples is not None else pd.DataFrame(), random_weights)
    lines += ["", "Findings"]
    if samples is None and not random_weights:
        lines += _wrap("(no per-sample scores given: accuracy findings skipped)", width, "  ")
    for text in findings.lines():
        lines += _wrap(text, width, "- ")
    sys.stdout.write("\n".join(lines) + "\n")
    sys.stdout.flush()


def _heading(group: pd.DataFrame, model: str, contention: float, suite: str | None = None) -> str:
    parts = [model, *([suite] if suite else []), f"contention {contention:g}"]
    slowdown = _first(group, "achieved_slowdown")
    decode = _first(group, "achieved_slowdown_decode")
    if contention > 0 and not math.isnan(slowdown):
        both = f", decode-shaped {decode:.2f}×" if not math.isnan(decode) else ""
        parts[-1] += f" (slowdown {slowdown:.2f}×{both})"
    aa = [_first(group, c) for c in ("aa_ratio", "aa_ratio_ci_low", "aa_ratio_ci_high")]
    if not math.isnan(aa[0]):
        parts.append(f"A/A {aa[0]:.2f}× [{aa[1]:.2f}, {aa[2]:.2f}]")
    aa_loyal = _first(group, "aa_loyalty")
    if not math.isnan(aa_loyal):
        parts.append(f"A/A loyalty {aa_loyal:.2f}")
    if "order" in group and group["order"].notna().any():
        parts.append(str(group["order"].dropna().iloc[0]))
    return "── " + " · ".join(parts)


def _row(c, random_weights: bool) -> dict[str, str]:
    get = c._asdict().get
    low, high = get("latency_ratio_ci_low", math.nan), get("latency_ratio_ci_high", math.nan)
    return {
        "method": c.method,
        "budget": f"{c.budget:g}",
        "acc": "–" if random_weights else _num(c.accuracy, 3),
        "FLOPs": _num(c.flops_ratio, 2),
        "ms": _num(c.latency_ms_mean, 1),
        "×full": _num(c.latency_ratio, 2),
        "95% CI": "–" if _nan(low) else f"{low:.2f}–{high:.2f}",
        "vs A/A": _verdict(c.method, low, high, get("aa_ratio_ci_low"), get("aa_ratio_ci_high")),
        "n": str(c.n),
        "acc CI": "–" if random_weights else
        f"{_num(c.accuracy_ci_low, 2)}–{_num(c.accuracy_ci_high, 2)}",
        "loyal": _num(get("loyalty", math.nan), 2),
        "loyal CI": "–" if _nan(get("loyalty_ci_low", math.nan)) else
        f"{get('loyalty_ci_low'):.2f}–{get('loyalty_ci_high'):.2f}",
        "p90 ms": _num(c.latency_ms_p90, 1),
        "prefill": _num(get("prefill_ratio", math.nan), 2),
        "decode": _num(get("decode_ratio", math.nan), 2),
    }  # fmt: skip


def _verdict(method: str, low, high, aa_low, aa_high) -> str:
    """'≈full' | 'faster' | 'slower' against the A/A band (1.0 without an A/A arm); '' for full."""
    if method == "full" or _nan(low) or _nan(high):
        return ""
    if _nan(aa_low) or _nan(aa_high):
        aa_low = aa_high = 1.0
    if high < aa_low:
        return "faster"
    return "slower" if low > aa_high else "≈full"


def _ordered(group: pd.DataFrame) -> pd.DataFrame:
    return group.assign(_full=group["method"] != "full").sort_values(
        ["_full", "method", "budget"], kind="stable"
    )


def _wrap(text: str, width: int, bullet: str) -> list[str]:
    # never split a name at its hyphen ("adallava-l") nor cut a long token
    return textwrap.wrap(text, width=width, initial_indent=bullet,
                         subsequent_indent=" " * len(bullet), break_long_words=False,
                         break_on_hyphens=False) or [bullet]  # fmt: skip


def _first(group: pd.DataFrame, column: str) -> float:
    if column not in group:
        return math.nan
    values = group[column].dropna()
    return float(values.iloc[0]) if len(values) else math.nan


def _nan(value) -> bool:
    try:
        return value is None or math.isnan(float(value))
    except (TypeError, ValueError):
        return True


def _num(value, digits: int) -> str:
    return "–" if _nan(value) else f"{float(value):.{digits}f}"


SERVER_RIGHT = {"rate/s", "attain", "goodput/s", "p99 ms", "queue p99", "acc", "budget"}
SERVER_LEGEND = ("attain: share of scored requests whose end-to-end latency (queue wait "
                 "included) met the SLO; goodput: such requests per second; oracle: the best "
                 "fixed budget at that rate, chosen after measuring them all.")  # fmt: skip


def _print_server_summary(cells: pd.DataFrame, width: int) -> None:
    """Prints the server-scenario summary: one table per (model, suite, contention) with a row
    per (rate, policy), the oracle included, then the findings."""
    data = serving.server_cells(cells)
    slo = data["slo_ms"].iloc[0]
    lines = [f"server summary · SLO {slo:g} ms · batch 1, FIFO"]
    rows = serving.table_rows(cells)
    for key, group in pd.DataFrame(rows).groupby(["model", "contention"], sort=False):
        lines += ["", f"{key[0]} · contention {key[1]}"]
        shown = group.drop(columns=["model", "contention"]).to_dict(orient="records")
        lines += console.fit_columns(shown, SERVER_RIGHT, ["queue p99", "budget"], max_width=width)
    lines += ["", *_wrap(SERVER_LEGEND, width, ""), "", "Findings"]
    for text in serving.findings(cells) or ["(no budgeted method under the controller)"]:
        lines += _wrap(text, width, "- ")
    sys.stdout.write("\n".join(lines) + "\n")
    sys.stdout.flush()
