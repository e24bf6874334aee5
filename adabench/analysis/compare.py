"""Compare two runs cell by cell (CI regression check). Accuracy: the paired tests of
`significance` on the samples both runs answered (McNemar exact, or sign-flip on fractional
scores), Benjamini–Hochberg over the cells; a bootstrap when the samples differ. Latency: the
paired ratios to `full` when both runs have them — a change counts only when the two ratio CIs
are apart by more than the A/A noise floor — else Mann–Whitney U on the raw repeats (and always
for `full` itself). FLOPs exactly. Marks in the asv manner: ``+`` worse, ``-`` better, ``~``
not significant, ``x`` not comparable. Pure Python/numpy statistics (no scipy).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from adabench.analysis.findings import signed
from adabench.analysis.significance import (
    benjamini_hochberg,
    bootstrap_ci,
    intervals_overlap,
    mcnemar_exact_p,
    min_attainable_p,
    paired_test,
    sign_flip_p,
    tarone_bh,
)
from adabench.errors import UserError, did_you_mean
from adabench.store import CELL_KEY, Run, devices

WORSE, BETTER, SAME, NA = "+", "-", "~", "x"


@dataclass
class Comparison:
    """What `compare_runs` found: one row per matched cell plus a pooled accuracy test."""

    cells: pd.DataFrame = field(metadata={"help": "one row per cell in both runs (marks, stats)"})
    pooled: dict = field(metadata={"help": "paired sign test over all matched samples"})
    only_base: list[str] = field(metadata={"help": "cells only in the baseline run"})
    only_new: list[str] = field(metadata={"help": "cells only in the new run"})
    settings: list[str] = field(
        default_factory=list, metadata={"help": "run settings that differ ('name: a → b')"}
    )

    @property
    def regressions(self) -> list[str]:
        """Labels of the cells with a significant regression (accuracy or latency)."""
        return list(self.cells.loc[self.cells["regressed"], "cell"])

    @property
    def regressed(self) -> bool:
        """True when any cell, or the pooled accuracy, regressed significantly."""
        return bool(self.regressions) or self.pooled.get("mark") == WORSE


def summary_rows(result: Comparison) -> list[dict[str, str]]:
    """Returns one display row per compared cell (+ a pooled accuracy row), values as text; a
    loyalty column when either run has loyalty to `full`."""
    rows = []
    loyal = any(not _isnan(r.get(f"loyalty_{side}", math.nan)) for r in
                result.cells.to_dict("records") for side in ("base", "new"))  # fmt: skip
    for r in result.cells.to_dict("records"):
        rows.append({
            "": r["mark"], "cell": r["cell"],
            "accuracy": f"{r['acc_mark']} {_f(r['acc_base'], 3)}→{_f(r['acc_new'], 3)} "
                        f"p={_f(r['acc_p'], 3)} q={_f(r['acc_q'], 3)}",
            "latency": latency_text(r),
            "GFLOPs": f"{r['flops_mark']} {_f(r['flops_base'] / 1e9, 3)}→{_f(r['flops_new'] / 1e9, 3)}",
            **({"loyalty": loyalty_text(r)} if loyal else {}),
        })  # fmt: skip
    rows.append({"": result.pooled["mark"], "cell": f"pooled ({result.pooled['n']} paired samples)",
                 "accuracy": pooled_text(result.pooled), "latency": "", "GFLOPs": "",
                 **({"loyalty": ""} if loyal else {})})  # fmt: skip
    return rows


def loyalty_text(r: dict, ci: bool = False) -> str:
    """Returns a cell's loyalty to `full` in both runs, "1.00→0.50" (with `ci`: "1.00 [1.00,
    1.00]→0.50 [0.00, 1.00]"); shown, not gated: the accuracy test already weighs answers."""

    def one(side: str) -> str:
        value, low, high = (
            r.get(f"loyalty{k}_{side}", math.nan) for k in ("", "_ci_low", "_ci_high")
        )
        if _isnan(value):
            return "–"
        return f"{value:.2f}" + ("" if _isnan(low) or not ci else f" [{low:.2f}, {high:.2f}]")

    return f"{one('base')}→{one('new')}"


def pooled_text(pooled: dict) -> str:
    """Returns the pooled row's accuracy text: mark, mean Δ, sign-test p."""
    return f"{pooled['mark']} Δ {signed(pooled['acc_delta'], 3)} p={_f(pooled['acc_p'], 3)}"


def latency_text(r: dict) -> str:
    """Returns a cell's latency verdict as text: the paired ratio to full (reduced cells) or the
    between-run ratio with its machine-speed normalisation (`full`, older runs)."""
    if str(r["lat_test"]).startswith("none: "):
        return (
            f"{r['lat_mark']} {_f(r['lat_base_ms'], 1)}→{_f(r['lat_new_ms'], 1)} ms, not "
            f"compared: {r['lat_test'][6:]}"
        )
    if r["lat_test"] == RATIO_TEST:
        return (f"{r['lat_mark']} ×full {_f(r['ratio_base'], 2)}→{_f(r['ratio_new'], 2)} "
                f"[{_f(r['ratio_new_ci_low'], 2)}, {_f(r['ratio_new_ci_high'], 2)}]")  # fmt: skip
    text = (f"{r['lat_mark']} {_f(r['lat_base_ms'], 1)}→{_f(r['lat_new_ms'], 1)} ms "
            f"×{_f(r['lat_ratio'], 2)}")  # fmt: skip
    if not math.isnan(r.get("machine_speed_ratio", math.nan)):
        text += (
            f" ÷ machine ×{_f(r['machine_speed_ratio'], 2)} = ×{_f(r['lat_ratio_normalised'], 2)}"
        )
    if not math.isnan(r.get("lat_ratio_ci_low", math.nan)):
        text += f" [{_f(r['lat_ratio_ci_low'], 2)}, {_f(r['lat_ratio_ci_high'], 2)}]"
    text += f" p={_f(r['lat_p'], 3)}"
    return text if r.get("lat_gated", True) else text + " (under contention: not gated)"


def verdict(result: Comparison) -> str:
    """Returns the one-line verdict: the regressed cells by name, and the pooled row's own
    finding when it adds one."""
    parts = []
    if result.regressions:
        parts.append(f"regression in {len(result.regressions)} cell(s): "
                     + ", ".join(result.regressions))  # fmt: skip
    if result.pooled.get("mark") == WORSE:
        drops = ", ".join(result.pooled.get("largest_drops") or []) or "none"
        parts.append(f"pooled accuracy dropped {signed(result.pooled['acc_delta'], 3)} over "
                     f"{result.pooled['n']} paired samples (largest cell drops: {drops})")  # fmt: skip
    return "; ".join(parts) if parts else "no significant regression"


def to_markdown(result: Comparison) -> str:
    """Returns a markdown block for a CI comment: verdict line plus the per-cell table."""
    head = verdict(result)
    if result.regressed:  # bold the first word of each finding
        head = head.replace("regression in", "**regression** in", 1).replace(
            "pooled accuracy dropped", "**pooled accuracy dropped**", 1
        )
    rows = summary_rows(result)
    cols = list(rows[0])
    lines = [f"adabench compare: {head}", "", "| mark | " + " | ".join(cols[1:]) + " |",
             "|" + "---|" * len(cols)]  # fmt: skip
    lines += [
        "| " + " | ".join(f"`{r[c]}`" if c == "" else r[c] for c in cols) + " |" for r in rows
    ]
    lines += ["", "Marks: `+` worse, `-` better, `~` not significant, `x` not comparable. "
              "Accuracy q: Benjamini–Hochberg over the cells whose test can reach alpha "
              "(Tarone's rule). Latency ×full: paired ratio to `full` [new run's 95 % CI]; a "
              "change counts when both runs' CIs and the A/A noise floor lie apart and it "
              "passes the threshold. `full`: per-sample ratio between the runs ÷ the runs' "
              "machine-speed probe ratio."]  # fmt: skip
    for line in result.settings:
        lines.append(f"\nwarning: the runs differ in {line}")
    return "\n".join(lines)


def to_junit(result: Comparison) -> str:
    """Returns a JUnit XML report: one testcase per compared cell (a failure when it regressed),
    one skipped testcase per cell found in one run only, one for the pooled accuracy test."""
    from xml.sax.saxutils import quoteattr

    cases = []
    for r in result.cells.to_dict("records"):
        body = (f"<failure message={quoteattr('regression: ' + _row_text(r))}/>"
                if r["regressed"] else "")  # fmt: skip
        cases.append((r["cell"], f"{r['suite']}.{r['model']}", body))
    for label in result.only_base + result.only_new:
        cases.append((label, "only-one-run", '<skipped message="in one run only"/>'))
    pooled = result.pooled
    pooled_body = (f"<failure message={quoteattr(pooled_text(pooled))}/>"
                   if pooled.get("mark") == WORSE else "")  # fmt: skip
    cases.append(("pooled accuracy", "pooled", pooled_body))
    failures = sum(bool(body.startswith("<failure")) for _, _, body in cases)
    skipped = len(result.only_base) + len(result.only_new)
    lines = ['<?xml version="1.0" encoding="UTF-8"?>',
             f'<testsuite name="adabench compare" tests="{len(cases)}" failures="{failures}" '
             f'skipped="{skipped}">']  # fmt: skip
    for name, cls, body in cases:
        lines.append(
            f"  <testcase classname={quoteattr(cls)} name={quoteattr(name)}>{body}</testcase>"
        )
    lines.append("</testsuite>")
    return "\n".join(lines) + "\n"


def _row_text(r: dict) -> str:
    return (f"accuracy {r['acc_mark']} {_f(r['acc_base'], 3)}→{_f(r['acc_new'], 3)} "
            f"q={_f(r['acc_q'], 3)}; latency {latency_text(r)}; loyalty {loyalty_text(r, ci=True)}")  # fmt: skip


def to_json(result: Comparison) -> dict:
    """Returns a JSON-ready dict: regressed flag, regressed cells, pooled test and every cell."""
    return {"regressed": result.regressed, "verdict": verdict(result),
            "regressions": result.regressions, "pooled": result.pooled,
            "cells": result.cells.to_dict("records"), "only_base": result.only_base,
            "only_new": result.only_new, "settings_differ": result.settings}  # fmt: skip


def _f(value: float, digits: int) -> str:
    return "nan" if value is None or math.isnan(value) else f"{value:.{digits}f}"


def sign_test_p(n_worse: int, n_better: int) -> float:
    """Returns the exact two-sided sign-test p-value (= exact McNemar on binary scores)."""
    return mcnemar_exact_p(n_worse, n_better)


def mann_whitney_u(a, b) -> tuple[float, float]:
    """Returns (U of `a`, two-sided p) by the normal approximation with tie and continuity
    corrections. p = 1 when either sample is empty or all values tie."""
    a, b = np.asarray(a, float), np.asarray(b, float)
    n1, n2 = len(a), len(b)
    if n1 == 0 or n2 == 0:
        return math.nan, 1.0
    values = np.concatenate([a, b])
    ranks = _average_ranks(values)
    u = float(ranks[:n1].sum() - n1 * (n1 + 1) / 2)
    n = n1 + n2
    _, counts = np.unique(values, return_counts=True)
    tie = float((counts**3 - counts).sum()) / (n * (n - 1))
    sigma = math.sqrt(n1 * n2 / 12.0 * ((n + 1) - tie))
    if sigma == 0:
        return u, 1.0
    diff = u - n1 * n2 / 2.0
    z = (abs(diff) - 0.5) / sigma if abs(diff) >= 0.5 else 0.0
    return u, min(1.0, math.erfc(z / math.sqrt(2)))


def bootstrap_delta(base, new, n_boot: int = 2000, seed: int = 0) -> tuple[float, float]:
    """Returns (mean(new) − mean(base), two-sided bootstrap p that the difference is 0),
    resampling each run's scores independently."""
    base, new = np.asarray(base, float), np.asarray(new, float)
    if len(base) == 0 or len(new) == 0:
        return math.nan, math.nan
    rng = np.random.default_rng(seed)
    deltas = rng.choice(new, (n_boot, len(new))).mean(1) - rng.choice(
        base, (n_boot, len(base))
    ).mean(1)
    p = 2 * min(np.mean(deltas <= 0), np.mean(deltas >= 0))
    return float(new.mean() - base.mean()), float(min(1.0, p))


CORRECTIONS = ("tarone-bh", "bh", "none")
"""How the cells' accuracy p-values are combined (`--correction`, docs/ci.md):
tarone-bh — Benjamini–Hochberg over the cells whose test can reach alpha (Tarone's rule);
bh — over every cell; none — each cell at alpha alone."""


def compare_runs(
    base: Run,
    new: Run,
    max_acc_drop: float = 0.01,
    threshold: float = 1.10,
    alpha: float = 0.01,
    correction: str = "tarone-bh",
    gate_contended: bool = False,
) -> Comparison:
    """Matches cells by (suite, model, method, budget, contention) and tests each pair.

    A cell regresses when accuracy drops by more than `max_acc_drop` with q < `alpha` (q from
    `correction` over the cells), or when its latency grows by more than `threshold`× with the
    change significant: the paired ratio to `full` for reduced cells; for `full` (and runs
    without ratio CIs) the per-sample latency ratio between the runs divided by the runs'
    machine-speed probe ratio, sign-flip p < `alpha` — gated at contention 0 only unless
    `gate_contended` (under stress it is reported, not gated). FLOPs are compared exactly and reported,
    not counted as a regression. Raises UserError when the runs share no cell.
    """
    key = match_key(base.cells, new.cells)
    keys = {_label(r): r for r in base.cells[key].to_dict("records")}
    new_keys = {_label(r): r for r in new.cells[key].to_dict("records")}
    common = [k for k in keys if k in new_keys]
    if not common:
        raise UserError(
            f"runs {base.path} and {new.path} share no cell (matched on {', '.join(key)})."
        )
    b_cells, n_cells = _by_label(base.cells, key), _by_label(new.cells, key)
    b_samples = _samples_by_label(base.samples, base.cells, key)
    n_samples = _samples_by_label(new.samples, new.cells, key)
    rows, paired = [], []
    for label in common:
        empty = pd.DataFrame(columns=["sample_id", "score"])
        bs, ns = b_samples.get(label, empty), n_samples.get(label, empty)
        bc, nc = b_cells.loc[label], n_cells.loc[label]
        acc = _accuracy(bc, nc, bs, ns, max_acc_drop, alpha)
        lat = _latency(bc, nc, bs, ns, threshold, alpha, gate_contended)
        flops = _flops(bc, nc)
        paired.append(acc.pop("_diffs"))
        row = {"cell": label, **keys[label], **acc, **lat, **flops, **_loyalty(bc, nc)}
        row["regressed"] = WORSE in (acc["acc_mark"], lat["lat_mark"])
        row["mark"] = _overall(acc["acc_mark"], lat["lat_mark"])
        rows.append(row)
    frame = _apply_fdr(pd.DataFrame(rows), max_acc_drop, alpha, correction)
    return Comparison(
        cells=frame,
        pooled=_pooled(paired, max_acc_drop, alpha, frame),
        only_base=[k for k in keys if k not in new_keys],
        only_new=[k for k in new_keys if k not in keys],
        settings=setting_differences(base.config, new.config)
        + plugin_differences(base.meta.get("plugins"), new.meta.get("plugins")),
    )


SETTINGS = ("limit", "repeats", "warmup", "max_new_tokens", "split", "dtype", "device",
            "order", "no_weights", "target_ci", "max_rounds", "seed", "method_args")  # fmt: skip
"""Run settings that change what a cell's numbers mean; `compare` warns when they differ."""


def setting_differences(base: dict, new: dict) -> list[str]:
    """Returns 'name: base → new' for each of SETTINGS that differs between two run configs."""
    out = []
    for name in SETTINGS:
        if name in base or name in new:
            a, b = base.get(name), new.get(name)
            if a != b:
                out.append(f"{name}: {a!r} → {b!r}")
    return out


PLUGIN_CODE_KEYS = ("version", "sha256")
"""The fields of a plugin record (meta.json) that identify its code."""


def changed_plugin_code(
    base: list[dict] | None, new: list[dict] | None
) -> list[tuple[str, str, object, object]]:
    """Returns (name, key, base value, new value) for each plugin in both record lists (matched
    by name) whose code differs, at the first differing key of PLUGIN_CODE_KEYS."""
    a = {r.get("name"): r for r in base or []}
    b = {r.get("name"): r for r in new or []}
    out = []
    for name in sorted(set(a) & set(b), key=str):
        for key in PLUGIN_CODE_KEYS:
            if a[name].get(key) != b[name].get(key):
                out.append((name, key, a[name].get(key), b[name].get(key)))
                break
    return out


def plugin_differences(base: list[dict] | None, new: list[dict] | None) -> list[str]:
    """Returns one line per plugin whose code differs between two runs' meta.json records
    (matched by name): only in one run, another version, or another file hash."""
    a = {r.get("name") for r in base or []}
    b = {r.get("name") for r in new or []}
    changed = {name: (key, old, now) for name, key, old, now in changed_plugin_code(base, new)}
    out = []
    for name in sorted(a | b, key=str):
        if name not in b:
            out.append(f"plugin {name}: only in the base run")
        elif name not in a:
            out.append(f"plugin {name}: only in the new run")
        elif name in changed:
            key, old, now = changed[name]
            out.append(
                f"plugin {name}: {key} {_short(old)} → {_short(now)} (different plugin code)"
            )
    return out


def _short(value) -> str:
    text = str(value or "none")
    return text[:12] if len(text) == 64 else text


def _apply_fdr(
    frame: pd.DataFrame, max_drop: float, alpha: float, correction: str = "tarone-bh"
) -> pd.DataFrame:
    """Adds q-values over the cells' accuracy tests (`correction`, one of CORRECTIONS) and
    marks accuracy by q < alpha."""
    if frame.empty:
        return frame
    if correction not in CORRECTIONS:
        raise did_you_mean(correction, list(CORRECTIONS), "correction")
    if correction == "tarone-bh":
        frame["acc_q"] = tarone_bh(frame["acc_p"], frame["acc_min_p"], alpha)
    elif correction == "bh":
        frame["acc_q"] = benjamini_hochberg(frame["acc_p"])
    else:
        frame["acc_q"] = frame["acc_p"]
    frame["acc_mark"] = [
        NA if m == NA else _mark(-d, max_drop, q, alpha)
        for m, d, q in zip(frame["acc_mark"], frame["acc_delta"], frame["acc_q"], strict=True)
    ]
    frame["regressed"] = (frame["acc_mark"] == WORSE) | (frame["lat_mark"] == WORSE)
    frame["mark"] = [_overall(a, b) for a, b in zip(frame["acc_mark"], frame["lat_mark"],
                                                    strict=True)]  # fmt: skip
    return frame


def _accuracy(bc, nc, bs, ns, max_drop: float, alpha: float) -> dict:
    out = {"acc_base": float(bc["accuracy"]), "acc_new": float(nc["accuracy"]),
           "acc_delta": math.nan, "acc_ci_low": math.nan, "acc_ci_high": math.nan,
           "acc_p": math.nan, "acc_min_p": math.nan, "acc_test": "none", "acc_mark": NA,
           "_diffs": np.array([])}  # fmt: skip
    if math.isnan(out["acc_base"]) or math.isnan(out["acc_new"]):
        return out
    b_ids, n_ids = set(bs["sample_id"]), set(ns["sample_id"])
    if b_ids and b_ids == n_ids and bs["sample_id"].is_unique and ns["sample_id"].is_unique:
        merged = bs[["sample_id", "score"]].merge(ns[["sample_id", "score"]], on="sample_id")
        test = paired_test(merged["score_x"].to_numpy(float), merged["score_y"].to_numpy(float))
        diffs = (merged["score_y"] - merged["score_x"]).to_numpy(float)
        delta, p = test.delta, test.p
        out.update(acc_test=test.test, acc_ci_low=test.ci_low, acc_ci_high=test.ci_high,
                   acc_min_p=min_attainable_p(test.a_better + test.b_better),
                   _diffs=diffs[~np.isnan(diffs)])  # fmt: skip
    elif len(bs) and len(ns):
        delta, p = bootstrap_delta(bs["score"].dropna(), ns["score"].dropna())
        out.update(acc_test="bootstrap", acc_min_p=0.0)
    else:
        return out
    out.update(acc_delta=delta, acc_p=p, acc_mark=_mark(-delta, max_drop, p, alpha))
    return out


RATIO_TEST = "paired ratio CIs + A/A"
RATIO_COLUMNS = ["latency_ratio", "latency_ratio_ci_low", "latency_ratio_ci_high"]


ABSOLUTE_TEST = "per-sample ratio ÷ machine speed, sign-flip"
UNPAIRED_TEST = "Mann–Whitney U ÷ machine speed"


def _latency(bc, nc, bs, ns, threshold: float, alpha: float, gate_contended: bool = False) -> dict:
    b_mean, n_mean = float(bc["latency_ms_mean"]), float(nc["latency_ms_mean"])
    speed = machine_speed_ratio(bc, nc)
    ratio = n_mean / b_mean if b_mean > 0 else math.nan
    out = {"lat_base_ms": b_mean, "lat_new_ms": n_mean, "lat_ratio": ratio,
           "machine_speed_ratio": speed, "lat_ratio_normalised": math.nan,
           "lat_ratio_ci_low": math.nan, "lat_ratio_ci_high": math.nan, "lat_p": math.nan,
           "lat_test": "none", "lat_mark": NA, "lat_gated": True}  # fmt: skip
    if bc["method"] != "full" and _has_ratio_ci(bc) and _has_ratio_ci(nc):
        return {**out, **_ratio_change(bc, nc, threshold)}
    unsteady = [why for why in (probe_unsteady(bc), probe_unsteady(nc)) if why]
    if unsteady:  # the machine's speed moved within the group: no honest absolute comparison
        return {**out, "lat_test": "none: " + "; ".join(unsteady), "lat_mark": NA}
    out.update(_absolute_change(bs, ns, ratio, speed, threshold, alpha))
    if float(bc.get("contention", 0) or 0) > 0 and not gate_contended and out["lat_mark"] != NA:
        # under stress, absolute latency measures how hard the stress bit this time more than
        # the code (docs/ci.md): reported, not gated; the paired ratios and c0 gate the code
        out.update(lat_mark=SAME, lat_gated=False)
    return out


def machine_speed_ratio(bc, nc) -> float:
    """Returns new ÷ base machine-probe time (unitless, > 1: the new run's machine was slower),
    or NaN when either run has no probe (made before v0.4)."""
    b, n = bc.get("machine_probe_ms", math.nan), nc.get("machine_probe_ms", math.nan)
    if _isnan(b) or _isnan(n) or float(b) <= 0:
        return math.nan
    return float(n) / float(b)


PROBE_STEADY = 1.5
"""A group whose slowest machine-probe block took more than this × its fastest ran on a machine
whose speed moved under it (another program's burst): its absolute latency is not compared."""


def probe_unsteady(cell) -> str | None:
    """Returns why a cell's machine was not steady (its probe blocks' max ÷ min above
    PROBE_STEADY), or None (steady, or no probe recorded)."""
    blocks = cell.get("machine_probe_blocks_ms")
    if blocks is None or isinstance(blocks, float) or len(blocks) < 2:
        return None
    low, high = float(np.min(blocks)), float(np.max(blocks))
    if low > 0 and high / low > PROBE_STEADY:
        return f"machine not steady (probe {low:.2f}–{high:.2f} ms)"
    return None


def _absolute_change(bs, ns, ratio: float, speed: float, threshold: float, alpha: float) -> dict:
    """The latency change of a cell between runs, normalised by machine speed: the geometric
    mean over shared samples of new ÷ base latency, divided by the probe ratio (1 when a run has
    no probe), with a paired-bootstrap CI and the sign-flip test on the log ratios; runs without
    shared samples fall back to Mann–Whitney U on the raw repeats (new repeats ÷ probe ratio)."""
    scale = 1.0 if math.isnan(speed) else speed
    per_b, per_n = _per_sample_ms(bs), _per_sample_ms(ns)
    shared = per_b.index.intersection(per_n.index)
    if len(shared) >= 2:
        logs = np.log(per_n[shared].to_numpy(float) / per_b[shared].to_numpy(float))
        logs = logs[np.isfinite(logs)] - math.log(scale)
    else:
        logs = np.array([])
    if len(logs) >= 2:
        low, high = bootstrap_ci(logs)
        p, change = sign_flip_p(logs), math.exp(float(logs.mean()))
        return {"lat_test": ABSOLUTE_TEST, "lat_p": p, "lat_ratio_normalised": change,
                "lat_ratio_ci_low": math.exp(low), "lat_ratio_ci_high": math.exp(high),
                "lat_mark": _mark(math.log(change), math.log(threshold), p, alpha)}  # fmt: skip
    base_ms, new_ms = _repeats(bs), _repeats(ns) / scale
    if not (len(base_ms) and len(new_ms)) or math.isnan(ratio):
        return {}
    _, p = mann_whitney_u(new_ms, base_ms)
    change = ratio / scale
    return {"lat_test": UNPAIRED_TEST, "lat_p": p, "lat_ratio_normalised": change,
            "lat_mark": _mark(math.log(change), math.log(threshold), p, alpha)}  # fmt: skip


def _per_sample_ms(samples: pd.DataFrame) -> pd.Series:
    """Returns sample_id → the sample's median latency over its repeats and rounds, in ms."""
    if samples.empty or "sample_id" not in samples.columns:
        return pd.Series(dtype=float)
    if "latency_ms_repeats" in samples.columns:
        values = [np.median(r) if r is not None and len(r) else math.nan
                  for r in samples["latency_ms_repeats"]]  # fmt: skip
        frame = pd.DataFrame({"sample_id": samples["sample_id"], "ms": values})
    elif "latency_ms" in samples.columns:
        frame = pd.DataFrame({"sample_id": samples["sample_id"], "ms": samples["latency_ms"]})
    else:
        return pd.Series(dtype=float)
    return frame.dropna().groupby("sample_id")["ms"].median()


def _has_ratio_ci(cell) -> bool:
    return all(c in cell.index and not _isnan(cell[c]) for c in RATIO_COLUMNS)


def _ratio_change(bc, nc, threshold: float) -> dict:
    """A change of the paired ratio to `full` counts only when the two runs' CIs are apart and
    the gap exceeds either run's A/A noise floor (its half-width, on the log scale)."""
    rb, rn = float(bc["latency_ratio"]), float(nc["latency_ratio"])
    apart = not intervals_overlap(bc["latency_ratio_ci_low"], bc["latency_ratio_ci_high"],
                                  nc["latency_ratio_ci_low"], nc["latency_ratio_ci_high"])  # fmt: skip
    gap = abs(math.log(rn / rb))
    change = rn / rb
    if not apart or gap <= max(_aa_half_width(bc), _aa_half_width(nc)):
        mark = SAME
    elif change > threshold:
        mark = WORSE
    elif change < 1 / threshold:
        mark = BETTER
    else:
        mark = SAME
    return {"lat_test": RATIO_TEST, "lat_mark": mark, "ratio_base": rb, "ratio_new": rn,
            "ratio_new_ci_low": float(nc["latency_ratio_ci_low"]),
            "ratio_new_ci_high": float(nc["latency_ratio_ci_high"])}  # fmt: skip


def _aa_half_width(cell) -> float:
    """Half the A/A band's width on the log scale; 0 when the run has no A/A arm."""
    low, high = cell.get("aa_ratio_ci_low", math.nan), cell.get("aa_ratio_ci_high", math.nan)
    if _isnan(low) or _isnan(high) or low <= 0:
        return 0.0
    return math.log(float(high) / float(low)) / 2


def _isnan(value) -> bool:
    try:
        return value is None or math.isnan(float(value))
    except (TypeError, ValueError):
        return True


LOYALTY_COLUMNS = ("loyalty", "loyalty_ci_low", "loyalty_ci_high")


def _loyalty(bc, nc) -> dict:
    """Returns loyalty to `full` and its CI in both runs (`loyalty_base`, `loyalty_ci_low_new`,
    ...), NaN where a run has none (no `full` arm, or a run made before loyalty existed)."""
    out = {}
    for side, cell in (("base", bc), ("new", nc)):
        for col in LOYALTY_COLUMNS:
            value = cell.get(col, math.nan)
            out[f"{col}_{side}"] = math.nan if value is None else float(value)
    return out


def _flops(bc, nc) -> dict:
    b, n = float(bc["flops"]), float(nc["flops"])
    if math.isnan(b) or math.isnan(n):
        mark = NA
    elif math.isclose(b, n, rel_tol=1e-9):
        mark = SAME
    else:
        mark = WORSE if n > b else BETTER
    return {"flops_base": b, "flops_new": n, "flops_mark": mark}


def _pooled(paired: list[np.ndarray], max_drop: float, alpha: float, cells: pd.DataFrame) -> dict:
    """The sign test over every matched sample of every cell: an addition to the cell verdicts
    (it can catch a drop spread thin over cells), never a replacement — `largest_drops` names
    the cells that moved it most."""
    diffs = np.concatenate(paired) if paired else np.array([])
    if not len(diffs):
        return {"n": 0, "acc_delta": math.nan, "acc_p": math.nan, "mark": NA, "largest_drops": []}
    p = sign_test_p(int((diffs < 0).sum()), int((diffs > 0).sum()))
    delta = float(diffs.mean())
    drops = cells[cells["acc_delta"] < 0].sort_values("acc_delta") if len(cells) else cells
    return {
        "n": len(diffs),
        "acc_delta": delta,
        "acc_p": p,
        "mark": _mark(-delta, max_drop, p, alpha),
        "largest_drops": [f"{r.cell} ({r.acc_delta:+.3f})" for r in drops.head(3).itertuples()],
    }


def _mark(worsening: float, threshold: float, p: float, alpha: float) -> str:
    """`worsening` > 0 means worse; significant and past the threshold either way gives +/-."""
    if math.isnan(worsening) or math.isnan(p):
        return NA
    if p < alpha and worsening > threshold:
        return WORSE
    if p < alpha and worsening < -threshold:
        return BETTER
    return SAME


def _overall(*marks: str) -> str:
    for mark in (WORSE, BETTER, SAME):
        if mark in marks:
            return mark
    return NA


def _repeats(samples: pd.DataFrame) -> np.ndarray:
    if "latency_ms_repeats" in samples.columns and len(samples):
        values = [
            float(v) for reps in samples["latency_ms_repeats"] if reps is not None for v in reps
        ]
        if values:
            return np.array(values)
    if "latency_ms" in samples.columns:
        return samples["latency_ms"].dropna().to_numpy(float)
    return np.array([])


def _average_ranks(values: np.ndarray) -> np.ndarray:
    order = np.argsort(values, kind="mergesort")
    sorted_vals = values[order]
    ranks = np.empty(len(values))
    start = 0
    for end in range(1, len(values) + 1):
        if end == len(values) or sorted_vals[end] != sorted_vals[start]:
            ranks[order[start:end]] = (start + end + 1) / 2.0  # mean of 1-based ranks start+1..end
            start = end
    return ranks


def match_key(base: pd.DataFrame, new: pd.DataFrame) -> list[str]:
    """Returns the columns cells are matched on: CELL_KEY, plus ``device_name`` when either run
    spans several device models (a distributed run), so a cell is compared on the same device."""
    several = len(devices(base)) > 1 or len(devices(new)) > 1
    if several and "device_name" in base.columns and "device_name" in new.columns:
        return [*CELL_KEY, "device_name"]
    return list(CELL_KEY)


def _label(row: dict) -> str:
    label = (
        f"{row['suite']}/{row['model']}/{row['method']}@{row['budget']:g}/c{row['contention']:g}"
    )
    return f"{label}/{row['device_name']}" if "device_name" in row else label


def _by_label(cells: pd.DataFrame, key: list[str] = CELL_KEY) -> pd.DataFrame:
    frame = cells.copy()
    frame.index = [_label(r) for r in frame[key].to_dict("records")]
    return frame[~frame.index.duplicated(keep="last")]


def _samples_by_label(
    samples: pd.DataFrame, cells: pd.DataFrame | None = None, key: list[str] = CELL_KEY
) -> dict[str, pd.DataFrame]:
    if samples.empty:
        return {}
    if "device_name" in key and "device_name" not in samples.columns and cells is not None:
        samples = samples.merge(cells[["cell_id", "device_name"]], on="cell_id", how="left")
    labels = pd.Series([_label(r) for r in samples[key].to_dict("records")], index=samples.index)
    return {label: group for label, group in samples.groupby(labels)}
