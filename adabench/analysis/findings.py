"""Findings: short generated sentences that say what a run shows, each with its numbers, test
and n. Accuracy claims rest on paired tests over the samples every method answered
(`significance.paired_test`), held at a false-discovery rate by Benjamini–Hochberg; latency
claims rest on the paired ratio CIs and the group's A/A noise floor (docs/measurement.md).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from itertools import combinations

import numpy as np
import pandas as pd

from adabench.analysis.plans import distinct_plans
from adabench.analysis.significance import benjamini_hochberg, intervals_overlap, paired_test

FDR = 0.05
"""False-discovery rate held over all accuracy tests of a run."""
CONTROL = "downsample"
"""The image-downsampling control (VTC-Bench): every other method at a budget is compared with it."""
FULL_PLAN = 1.0 - 1e-9
"""A cell whose mean FLOPs ratio reaches this runs `full`'s plan: nothing to test against it."""


@dataclass
class Finding:
    """One generated sentence and the evidence behind it."""

    kind: str = field(metadata={"help": "accuracy | loyalty | latency | pareto | note"})
    text: str = field(metadata={"help": "the sentence, with its numbers"})
    p: float = field(default=math.nan, metadata={"help": "the test's p-value (NaN: no test)"})
    q: float = field(default=math.nan, metadata={"help": "Benjamini–Hochberg q-value"})
    n: int = field(default=0, metadata={"help": "paired samples behind the claim"})
    test: str = field(default="", metadata={"help": "the test's name"})
    significant: bool | None = field(default=None, metadata={"help": "q < FDR (None: no test)"})


@dataclass
class Findings:
    """What `find` returns: the sentences and the accuracy tests they were drawn from."""

    items: list[Finding]
    tests: pd.DataFrame = field(metadata={"help": "one row per paired accuracy test"})
    fdr: float = FDR

    def lines(self) -> list[str]:
        """Returns the sentences in order (accuracy, Pareto, loyalty, latency, notes)."""
        return [f.text for f in self.items]

    def to_records(self) -> list[dict]:
        """Returns the findings as JSON-ready dicts."""
        return [f.__dict__.copy() for f in self.items]


def find(cells: pd.DataFrame, samples: pd.DataFrame, random_weights: bool = False) -> Findings:
    """Returns the findings of a run's cells and samples (see the module docstring)."""
    cells = cells[_not_slo(cells)]
    items: list[Finding] = []
    tests = pd.DataFrame()
    if random_weights:
        items.append(Finding("note", "weights are random: no accuracy findings, only latency."))
    elif "score" in samples.columns and cells["accuracy"].notna().any():
        tests = accuracy_tests(cells, samples)
        items += _accuracy_findings(cells, tests, adaptive_methods(samples))
        items += _pareto_findings(cells)
    items += loyalty_findings(cells)
    items += latency_findings(cells)
    return Findings(items, tests)


def accuracy_tests(cells: pd.DataFrame, samples: pd.DataFrame, seed: int = 0) -> pd.DataFrame:
    """Returns one row per paired accuracy test, with BH q-values over all of them.

    Tests run at the lowest contention of each (suite, model): predictions do not depend on
    co-running load, so other levels would repeat the same test. Pairs: every cell that does not
    run `full`'s plan against `full`, and every two such cells at the same budget."""
    rows = []
    scores = _scores_by_cell(samples)
    for (suite, model), group in cells.groupby(["suite", "model"], sort=True):
        group = group[group["contention"] == group["contention"].min()]
        reduced = group[group["flops_ratio"] < FULL_PLAN]
        full = group[group["method"] == "full"]
        pairs = [(f, c) for f in full.itertuples() for c in reduced.itertuples()]
        for _, same in reduced.groupby("budget"):
            pairs += list(combinations(same.sort_values("method").itertuples(), 2))
        for a, b in pairs:
            merged = scores.get(a.cell_id, pd.Series()).rename("a").to_frame()
            merged = merged.join(scores.get(b.cell_id, pd.Series()).rename("b"), how="inner")
            t = paired_test(merged["a"].to_numpy(), merged["b"].to_numpy(), seed=seed)
            rows.append({"suite": suite, "model": model, "contention": a.contention,
                         "a": a.method, "a_budget": a.budget, "b": b.method,
                         "b_budget": b.budget, **t.__dict__})  # fmt: skip
    tests = pd.DataFrame(rows)
    if not tests.empty:
        tests["q"] = benjamini_hochberg(tests["p"])
    return tests


def adaptive_methods(samples: pd.DataFrame) -> set[str]:
    """Methods that ran more than one distinct plan in some cell, and AdaLLaVA by name (so a
    scheduler that collapsed to one plan is still compared with every baseline)."""
    plans = distinct_plans(samples)
    varied = set(plans.loc[plans["plans"] > 1, "method"])
    return varied | {m for m in plans["method"] if str(m).startswith("adallava")}


def _accuracy_findings(
    cells: pd.DataFrame, tests: pd.DataFrame, adaptive: set[str]
) -> list[Finding]:
    if tests.empty:
        return [Finding("note", "no paired accuracy test: the run has no two cells to compare.")]
    ratios = cells.set_index(["suite", "model", "method", "budget", "contention"])
    items = []
    for (suite, model), group in tests.groupby(["suite", "model"], sort=True):
        where = _where(cells, suite, model)
        same = group[group["a"] != "full"]
        control = same["a"].eq(CONTROL) | same["b"].eq(CONTROL)
        for budget, pairs in same[~control].groupby("a_budget"):
            items += _pair_findings(pairs, budget, where, ratios, suite, model, adaptive)
        items += _control_findings(same[control], where, cells.set_index(KEY))
        items += _vs_full_findings(group[group["a"] == "full"], where)
    kept = sum(bool(f.significant) for f in items)
    items.append(Finding("note", f"accuracy: {len(tests)} paired tests (McNemar exact on 0/1 "
                         f"scores, sign-flip permutation on fractional ones); the false-discovery "
                         f"rate is held at {FDR:.0%} by Benjamini–Hochberg, so 'more accurate' "
                         f"means q < {FDR:g} ({kept} such claim(s) above)."))  # fmt: skip
    return items


def _pair_findings(pairs, budget, where, ratios, suite, model, adaptive) -> list[Finding]:
    """At one budget: the most accurate method against each other one, and every pair with an
    adaptive method in it; each pair oriented as (more accurate) vs (less accurate)."""
    contention = pairs["contention"].iloc[0]
    accuracy = {m: float(np.asarray(ratios["accuracy"].get((suite, model, m, budget, contention)),
                                    float).ravel()[0])
                for m in sorted(set(pairs["a"]) | set(pairs["b"]))}  # fmt: skip
    leader = sorted(accuracy, key=lambda m: -accuracy[m])[0]  # ties: the first name
    wanted = pairs["a"].isin([leader, *adaptive]) | pairs["b"].isin([leader, *adaptive])
    items = []
    for r in pairs[wanted].itertuples():
        first_wins = r.a == leader or (r.b != leader and accuracy[r.a] >= accuracy[r.b])
        best, other = (r.a, r.b) if first_wins else (r.b, r.a)
        sign = -1.0 if first_wins else 1.0  # orient the effect as best − other
        delta, (low, high) = sign * r.delta, sorted((sign * r.ci_low, sign * r.ci_high))
        lead, rest = f"{best}@{budget:g}", f"{other}@{budget:g}"
        evidence = _evidence(delta, low, high, r.p, r.q, r.n, r.test)  # Δ = lead − rest
        if r.q < FDR and delta > 0:
            speed = _speed(ratios, suite, model, (best, other), budget, contention)
            text = f"{lead} is {delta:.2f} more accurate than {rest} {where} ({evidence}){speed}."
        elif _ci_excludes_zero(low, high):
            text = (f"{where}, {lead} is ahead of {rest} in accuracy with a CI that excludes 0, "
                    f"but not significant after FDR control ({evidence}).")  # fmt: skip
        else:
            text = f"{where}, {lead} is not distinguishable from {rest} in accuracy ({evidence})."
        items.append(Finding("accuracy", text, r.p, r.q, r.n, r.test, bool(r.q < FDR)))
    return items


KEY = ["suite", "model", "method", "budget", "contention"]


def _control_findings(tests: pd.DataFrame, where: str, cells: pd.DataFrame) -> list[Finding]:
    """Every method against the downsample control at the same budget (VTC-Bench's question:
    is it more accurate than lowering the resolution?), with both cells' loyalty to `full`."""
    items = []
    for r in tests.sort_values(["a_budget", "a", "b"]).itertuples():
        first = r.a != CONTROL
        method = r.a if first else r.b
        sign = -1.0 if first else 1.0  # a test's delta is b − a: orient it as method − downsample
        delta, (low, high) = sign * r.delta, sorted((sign * r.ci_low, sign * r.ci_high))
        evidence = _evidence(delta, low, high, r.p, r.q, r.n, r.test)
        verdict = "is more accurate than" if r.q < FDR and delta > 0 else (
            "is less accurate than" if r.q < FDR else "is not more accurate than")  # fmt: skip
        loyal = _loyalty_pair(
            cells, (r.suite, r.model), (method, CONTROL), r.a_budget, r.contention
        )
        text = (f"{where}, {method}@{r.a_budget:g} {verdict} the {CONTROL} control "
                f"{CONTROL}@{r.a_budget:g} ({evidence}){loyal}.")  # fmt: skip
        items.append(Finding("accuracy", text, r.p, r.q, r.n, r.test, bool(r.q < FDR)))
    return items


def _loyalty_pair(cells: pd.DataFrame, where: tuple, methods: tuple, budget, contention) -> str:
    values = []
    for method in methods:
        key = (*where, method, budget, contention)
        if "loyalty" not in cells.columns or key not in cells.index:
            return ""
        values.append(cells.loc[[key]].iloc[0])
    if any(math.isnan(v["loyalty"]) for v in values):
        return ""
    return "; loyalty to full " + " vs ".join(_loyalty_text(v) for v in values)


def _loyalty_text(c) -> str:
    text = f"{c['loyalty']:.2f}"
    if not math.isnan(c["loyalty_ci_low"]):
        text += f" [{c['loyalty_ci_low']:.2f}, {c['loyalty_ci_high']:.2f}]"
    return text


def loyalty_findings(cells: pd.DataFrame) -> list[Finding]:
    """Per (suite, model), at the lowest contention: each cell's loyalty to `full` (the share of
    samples where it gives full's answer, EffiVLM-Bench) with its CI, lowest first, and the A/A
    arm's loyalty as the noise floor (a second `full` arm: 1 unless generation is
    non-deterministic)."""
    if "loyalty" not in cells.columns or cells["loyalty"].isna().all():
        return []
    items = []
    for (suite, model), group in cells.groupby(["suite", "model"], sort=True):
        group = group[
            (group["contention"] == group["contention"].min()) & (group["method"] != "full")
        ]
        group = group[group["loyalty"].notna()].sort_values(["loyalty", "method", "budget"])
        if group.empty:
            continue
        parts = "; ".join(f"{c.method}@{c.budget:g} {_loyalty_text(c._asdict())}"
                          for c in group.itertuples())  # fmt: skip
        text = f"{_where(cells, suite, model)}, loyalty to full (same answer as full): {parts}"
        floor = group["aa_loyalty"].dropna() if "aa_loyalty" in group.columns else pd.Series()
        if len(floor):
            row = group.loc[floor.index[0]]
            aa = {k: row[f"aa_{k}"] for k in ("loyalty", "loyalty_ci_low", "loyalty_ci_high")}
            text += f"; A/A floor {_loyalty_text(aa)}"
        items.append(Finding("loyalty", text + ".", n=int(group["n"].max())))
    return items


def _vs_full_findings(vs_full: pd.DataFrame, where: str) -> list[Finding]:
    """Per method: the lowest budget whose accuracy is not distinguishable from `full`'s."""
    items = []
    for method, tests in vs_full.groupby("b", sort=True):
        tests = tests.sort_values("b_budget")
        held = tests[~((tests["q"] < FDR) & (tests["delta"] < 0))]
        r = held.iloc[0] if len(held) else tests.iloc[-1]
        evidence = _evidence(r.delta, r.ci_low, r.ci_high, r.p, r.q, r.n, r.test)
        if len(held) and _ci_excludes_zero(r.ci_low, r.ci_high):
            text = (f"{where}, {method}@{r.b_budget:g} differs from full in accuracy with a CI "
                    f"that excludes 0, but not significantly after FDR control ({evidence}); "
                    "its lowest budget without a significant loss.")  # fmt: skip
        elif len(held):
            text = (f"{where}, {method}@{r.b_budget:g} is not distinguishable from full in "
                    f"accuracy ({evidence}); its lowest such budget.")  # fmt: skip
        else:
            text = (f"{where}, {method} loses accuracy against full at every budget below 1 "
                    f"(at {r.b_budget:g}: {evidence}).")  # fmt: skip
        items.append(Finding("accuracy", text, r.p, r.q, int(r.n), r.test, bool(r.q < FDR)))
    return items


def _pareto_findings(cells: pd.DataFrame) -> list[Finding]:
    """Per (suite, model): the frontier's members (accuracy vs FLOPs) and the methods that are
    dominated at every budget. FLOPs, not latency: they do not depend on the machine."""
    items = []
    for (_, model), group in cells.groupby(["suite", "model"], sort=True):
        group = group[group["contention"] == group["contention"].min()].sort_values("flops")
        dominated = dominated_mask(group["flops"].to_numpy(), group["accuracy"].to_numpy())
        names = []
        for _, tied in group[~dominated].groupby(["flops", "accuracy"], sort=False):
            first = tied.sort_values("method").iloc[0]
            others = f" (tied with {len(tied) - 1} other cell(s))" if len(tied) > 1 else ""
            names.append(f"{first['method']}@{first['budget']:g}{others}")
        text = f"on {model}, the Pareto frontier (accuracy vs FLOPs, point estimates) is "
        text += ", ".join(names)
        always = group.assign(d=dominated).groupby("method")["d"].all()
        if always.any():
            text += f"; dominated at every budget: {', '.join(always[always].index)}"
        items.append(Finding("pareto", text + "."))
    return items


def dominated_mask(cost, accuracy) -> np.ndarray:
    """Returns True where another point has cost ≤ and accuracy ≥, one of them strictly (equal
    points do not dominate each other; NaN points count as dominated)."""
    cost, accuracy = np.asarray(cost, float), np.asarray(accuracy, float)
    bad = np.isnan(cost) | np.isnan(accuracy)
    le = (cost[None, :] <= cost[:, None]) & (accuracy[None, :] >= accuracy[:, None])
    strict = (cost[None, :] < cost[:, None]) | (accuracy[None, :] > accuracy[:, None])
    return bad | (le & strict & ~bad[None, :]).any(axis=1)


def latency_findings(cells: pd.DataFrame) -> list[Finding]:
    """Latency claims from the paired ratio CIs against each group's A/A band: the noise floor,
    cells that run full's plan, and reduced cells that are not faster than full's noise."""
    if "latency_ratio" not in cells.columns or cells["latency_ratio"].isna().all():
        return [Finding("note", "no `full` cell: latency ratios are unknown, no latency claims.")]
    if not set(RATIO_CI) <= set(cells.columns):
        return [Finding("note", "latency ratios are point estimates (the run predates paired "
                        "measurement: no CIs, no A/A arm), so no latency claim is made.")]  # fmt: skip
    cells = cells.assign(**{c: cells.get(c, math.nan) for c in AA_CI})
    items = [_noise_floor(cells)]
    others = cells[(cells["method"] != "full") & cells["latency_ratio_ci_low"].notna()]
    verdict = others.apply(_against_floor, axis=1)
    at_full_plan = others["flops_ratio"] >= FULL_PLAN
    off = others[at_full_plan & (verdict != "noise")]
    if at_full_plan.any() and off.empty:
        items.append(Finding("latency", f"no method running full's plan is faster or slower than "
                             f"full beyond the A/A noise floor ({int(at_full_plan.sum())} "
                             f"cell(s) at budget 1)."))  # fmt: skip
    if len(off):
        listed = "; ".join(f"{_cell(c)}: {_band(c)}" for c in off.itertuples())
        items.append(Finding("latency", f"running full's plan, yet off full beyond the A/A band "
                             f"(timing noise or a harness cost): {listed}."))  # fmt: skip
    reduced = others[~at_full_plan]
    for word in ("noise", "slower"):
        hit = reduced[verdict[~at_full_plan] == word]
        if len(hit):
            how = "not distinguishable from full's latency" if word == "noise" else (
                "slower than full")  # fmt: skip
            listed = "; ".join(f"{_cell(c)} at FLOPs ratio {c.flops_ratio:.2f}: {_band(c)}"
                               for c in hit.itertuples())  # fmt: skip
            items.append(Finding("latency", f"{how}: {listed}."))
    faster = others[~at_full_plan & (verdict == "faster")]
    if len(faster):
        items.append(Finding("latency", f"{len(faster)} of {int((~at_full_plan).sum())} reduced "
                             f"cell(s) are faster than full beyond the A/A band "
                             f"({faster['latency_ratio'].min():.2f}–"
                             f"{faster['latency_ratio'].max():.2f}× of full)."))  # fmt: skip
    return items


RATIO_CI = ["latency_ratio_ci_low", "latency_ratio_ci_high"]
AA_CI = ["aa_ratio", "aa_ratio_ci_low", "aa_ratio_ci_high"]
AA_WIDTH = 0.05
"""An A/A band wider than ±5 % (or one that excludes 1.0) makes a run's latency claims weak."""
AA_OFFSET = 0.01
"""How far an A/A CI may miss 1.0 before it counts as off: identical arms give a 95 % CI that
misses 1.0 by chance in 1 group of 20, by a hair; a miss beyond 1 % is a real bias."""


def aa_is_weak(ci_low: float, ci_high: float) -> bool:
    """Returns True when an A/A ratio CI is wider than ±AA_WIDTH or misses 1.0 by more than
    AA_OFFSET (docs/measurement.md, "The A/A noise floor")."""
    off = ci_low > 1 + AA_OFFSET or ci_high < 1 - AA_OFFSET
    return off or (ci_high - ci_low) / 2 > AA_WIDTH


def _noise_floor(cells: pd.DataFrame) -> Finding:
    aa = cells.groupby(["suite", "model", "contention"], sort=True)[AA_CI].first().dropna()
    if aa.empty:
        return Finding("note", "no A/A arm (run with --aa and a `full` method): ratios are "
                       "judged against 1.0 alone.")  # fmt: skip
    wide = aa[[aa_is_weak(lo, hi) for lo, hi in zip(aa["aa_ratio_ci_low"], aa["aa_ratio_ci_high"])]]
    text = (f"the A/A noise floor (a second full arm ÷ full) is {aa['aa_ratio'].min():.2f}–"
            f"{aa['aa_ratio'].max():.2f}× over {len(aa)} group(s)")  # fmt: skip
    if wide.empty:
        return Finding("latency", text + f"; every band holds 1.0 within ±{AA_WIDTH:.0%}.")
    names = "; ".join(f"{m} at contention {c:g}: {r.aa_ratio:.2f}× [{r.aa_ratio_ci_low:.2f}, "
                      f"{r.aa_ratio_ci_high:.2f}]" for (_, m, c), r in wide.iterrows())  # fmt: skip
    return Finding("latency", text + f"; wider than ±{AA_WIDTH:.0%} or off 1.0 in {names}: "
                   "add --target-ci 0.02 or run on a quiet machine.")  # fmt: skip


def _against_floor(c: pd.Series) -> str:
    """'faster' | 'slower' | 'noise': the cell's ratio CI against its group's A/A band (1.0
    when the group has no A/A arm)."""
    low, high = c["aa_ratio_ci_low"], c["aa_ratio_ci_high"]
    if math.isnan(low) or math.isnan(high):
        low = high = 1.0
    if intervals_overlap(c["latency_ratio_ci_low"], c["latency_ratio_ci_high"], low, high):
        return "noise"
    return "faster" if c["latency_ratio_ci_high"] < low else "slower"


def _cell(c) -> str:
    return f"{c.method}@{c.budget:g} on {c.model} at contention {c.contention:g}"


def _band(c) -> str:
    text = f"{c.latency_ratio:.2f}× [{c.latency_ratio_ci_low:.2f}, {c.latency_ratio_ci_high:.2f}]"
    if not math.isnan(c.aa_ratio_ci_low):
        text += f" vs A/A [{c.aa_ratio_ci_low:.2f}, {c.aa_ratio_ci_high:.2f}]"
    return text


def _evidence(delta, low, high, p, q, n, test) -> str:
    """Returns 'Δ = … [low, high], test p, q, n'; Δ is always the sentence's subject − object."""
    return (f"Δ = {signed(delta)} [{signed(low)}, {signed(high)}], {test} {format_p(p)}, "
            f"q {format_p(q)[2:]}, n = {int(n)}")  # fmt: skip


def signed(value: float, digits: int = 2) -> str:
    """Returns `value` with its sign and `digits` decimals; never '-0.00' (a zero is '+0.00')."""
    if value is None or math.isnan(value):
        return "nan"
    return f"{round(float(value), digits) + 0.0:+.{digits}f}"


def _ci_excludes_zero(low: float, high: float) -> bool:
    """True when a CI of a difference lies wholly on one side of 0 (and is not [0, 0])."""
    return (low > 0 or high < 0) and not (math.isnan(low) or math.isnan(high))


def format_p(p: float) -> str:
    """Returns 'p < 0.001', 'p = 0.03', 'p = 0.8' or 'p = nan' (two significant digits)."""
    if p is None or math.isnan(p):
        return "p = nan"
    if p < 0.001:
        return "p < 0.001"
    return f"p = {float(f'{p:.2g}'):g}"


def _speed(ratios: pd.DataFrame, suite, model, methods, budget, contention) -> str:
    values = []
    for method in methods:
        key = (suite, model, method, budget, contention)
        value = ratios["latency_ratio"].get(key, math.nan) if key in ratios.index else math.nan
        values.append(float(np.asarray(value, float).ravel()[0]))
    if any(math.isnan(v) for v in values):
        return ""
    return (
        f", at {values[0]:.2f}× vs {values[1]:.2f}× of full's latency (contention {contention:g})"
    )


def _where(cells: pd.DataFrame, suite: str, model: str) -> str:
    return f"on {model}" if cells["suite"].nunique() == 1 else f"on {model} ({suite})"


def _scores_by_cell(samples: pd.DataFrame) -> dict[str, pd.Series]:
    """cell_id → per-sample score (mean over rounds when a sample was scored more than once)."""
    frame = samples[["cell_id", "sample_id", "score"]]
    return {cid: g.groupby("sample_id")["score"].mean() for cid, g in frame.groupby("cell_id")}


def _not_slo(cells: pd.DataFrame) -> pd.Series:
    if "slo_ms" not in cells.columns:
        return pd.Series(True, index=cells.index)
    return cells["slo_ms"].isna()
