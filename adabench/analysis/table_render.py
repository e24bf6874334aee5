"""Renders a paper `Table` (adabench/analysis/table.py) as LaTeX (booktabs, plain numbers),
Markdown, HTML, CSV or JSON. Every format shows the same rounded numbers (`Table.shown`);
JSON adds the unrounded ones."""

from __future__ import annotations

import csv
import html
import io
import math
import re

from adabench.analysis.schema import RESULTS_SCHEMA_VERSION
from adabench.analysis.table import Column, Table

FORMATS = ("latex", "csv", "markdown", "json")
_LATEX_SPECIAL = {"\\": r"\textbackslash{}", "&": r"\&", "%": r"\%", "$": r"\$", "#": r"\#",
                  "_": r"\_", "{": r"\{", "}": r"\}", "~": r"\textasciitilde{}",
                  "^": r"\textasciicircum{}", "×": r"$\times$", "†": r"\textsuperscript{\dag}",
                  "–": "--", "—": "---", "±": r"$\pm$", "·": r"$\cdot$", "<": "$<$",
                  ">": "$>$", "|": r"\textbar{}"}  # fmt: skip
_LATEX_RE = re.compile("|".join(re.escape(k) for k in _LATEX_SPECIAL))


def latex_escape(text: str) -> str:
    """Returns `text` with LaTeX's special characters escaped (and ×, †, –, ± as LaTeX)."""
    return _LATEX_RE.sub(lambda m: _LATEX_SPECIAL[m.group(0)], str(text))


def number_text(value: float | str, column: Column) -> str:
    """Returns a shown value as plain text: the number with the column's digits, '–' for NaN."""
    if isinstance(value, str):
        return value
    return "–" if math.isnan(value) else f"{value:.{column.digits}f}"


def _ci_text(table: Table, row: dict, column: Column) -> str:
    """'[low, high]' for a suite or ratio column when the table shows CIs, else ''."""
    if not table.ci or not column.has_ci:
        return ""
    low, high = row.get(f"{column.key}_ci_low"), row.get(f"{column.key}_ci_high")
    if low is None or math.isnan(low) or math.isnan(high):
        return ""
    return f"[{low:.{column.digits}f}, {high:.{column.digits}f}]"


def _cells(table: Table, i: int, row: dict):
    """Yields (column, value text, CI text, bold, mark) for each column of row `i`."""
    for column in table.columns:
        text = number_text(table.shown(row, column), column)
        bold = i in table.best(column)
        yield column, text, _ci_text(table, row, column), bold, row.get(f"{column.key}_mark", "")


def to_latex(table: Table, label: str | None = None) -> str:
    """Returns a LaTeX ``table`` environment (needs ``\\usepackage{booktabs}``), labelled
    `label` (default ``tab:<run name>``)."""
    label = label or "tab:" + (re.sub(r"[^A-Za-z0-9:.-]", "-", table.run) or "adabench")
    keys = [c for c in table.columns if c.kind == "key"]
    spec = "l" * len(keys) + "r" * (len(table.columns) - len(keys))
    lines = [r"\begin{table}[t]", r"\centering", r"\small",
             rf"\caption{{{latex_escape(table.caption)}}}", rf"\label{{{label}}}",
             rf"\begin{{tabular}}{{{spec}}}", r"\toprule",
             " & ".join(latex_escape(c.header) for c in table.columns) + r" \\", r"\midrule"]  # fmt: skip
    previous = None
    for i, row in enumerate(table.rows):
        group = row.get(keys[0].key) if keys else None
        if previous is not None and group != previous:
            lines.append(r"\midrule")
        previous = group
        cells = []
        for _, text, ci, bold, mark in _cells(table, i, row):
            text = latex_escape(text)
            cells.append((rf"\textbf{{{text}}}" if bold else text) + latex_escape(mark)
                         + (rf" {{\scriptsize {latex_escape(ci)}}}" if ci else ""))  # fmt: skip
        lines.append(" & ".join(cells) + r" \\")
    lines += [r"\bottomrule", r"\end{tabular}", r"\end{table}"]
    return "\n".join(lines) + "\n"


def to_markdown(table: Table) -> str:
    """Returns a Markdown table (best values in bold) with the caption below it."""
    esc = lambda s: str(s).replace("|", "\\|")  # noqa: E731
    lines = ["| " + " | ".join(esc(c.header) for c in table.columns) + " |",
             "|" + "|".join(":--" if c.kind == "key" else "--:" for c in table.columns) + "|"]  # fmt: skip
    for i, row in enumerate(table.rows):
        cells = []
        for _, text, ci, bold, mark in _cells(table, i, row):
            cells.append(esc((f"**{text}**" if bold else text) + mark + (f" {ci}" if ci else "")))
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + f"\n\n*{table.caption}*\n"


def to_html(table: Table) -> str:
    """Returns an HTML ``<table>`` with the caption (escaped; best values in ``<b>``)."""
    head = "".join(f"<th>{html.escape(c.header)}</th>" for c in table.columns)
    body = []
    for i, row in enumerate(table.rows):
        cells = []
        for _, text, ci, bold, mark in _cells(table, i, row):
            text = html.escape(text)
            cells.append(f"<td>{f'<b>{text}</b>' if bold else text}{html.escape(mark)}"
                         f"{' <small>' + html.escape(ci) + '</small>' if ci else ''}</td>")  # fmt: skip
        body.append("<tr>" + "".join(cells) + "</tr>")
    return (f'<table class="paper"><caption>{html.escape(table.caption)}</caption><thead><tr>'
            f"{head}</tr></thead><tbody>{''.join(body)}</tbody></table>")  # fmt: skip


def to_csv(table: Table) -> str:
    """Returns CSV: the shown numbers (NaN as an empty field), a ``<suite> sig`` column per
    suite with the mark, and the CI bounds when the table shows CIs."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    header = []
    for c in table.columns:
        header.append(c.header)
        if c.kind == "metric":
            header.append(f"{c.header} sig")
        if table.ci and c.has_ci:
            header += [f"{c.header} CI low", f"{c.header} CI high"]
    writer.writerow(header)
    for row in table.rows:
        fields = []
        for c in table.columns:
            text = number_text(table.shown(row, c), c)
            fields.append("" if text == "–" else text)
            if c.kind == "metric":
                fields.append(row.get(f"{c.key}_mark", ""))
            if table.ci and c.has_ci:
                fields += [_bound(row.get(f"{c.key}_ci_{end}"), c) for end in ("low", "high")]
        writer.writerow(fields)
    return out.getvalue()


def _bound(value, column: Column) -> str:
    return "" if value is None or math.isnan(value) else f"{value:.{column.digits}f}"


def to_json(table: Table) -> dict:
    """Returns {schema_version, run, caption, reference, columns, rows}: each row has the shown values under the
    headers and the unrounded numbers (CIs, q-values, cell ids) under ``raw``."""
    rows = []
    for row in table.rows:
        shown = {c.header: table.shown(row, c) for c in table.columns}
        raw = {k: v for k, v in row.items()}
        rows.append({"shown": shown, "raw": raw})
    return {"schema_version": RESULTS_SCHEMA_VERSION, "run": table.run,
            "caption": table.caption, "reference": table.reference,
            "columns": [c.__dict__ for c in table.columns], "rows": rows}  # fmt: skip


def render(table: Table, fmt: str, label: str | None = None) -> str:
    """Returns the table in `fmt` (one of FORMATS) as text; JSON is indented."""
    if fmt == "latex":
        return to_latex(table, label)
    if fmt == "csv":
        return to_csv(table)
    if fmt == "markdown":
        return to_markdown(table)
    import json

    from adabench.console import jsonable

    return json.dumps(jsonable(to_json(table)), indent=2, ensure_ascii=False) + "\n"


def latex_document(table: Table) -> str:
    """Returns a minimal standalone LaTeX document holding the table (for a compile check)."""
    return ("\\documentclass{article}\n\\usepackage[T1]{fontenc}\n\\usepackage{booktabs}\n"
            "\\begin{document}\n" + to_latex(table) + "\\end{document}\n")  # fmt: skip
