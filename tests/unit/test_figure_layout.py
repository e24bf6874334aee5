"""Every figure of a run with several models and contention levels, at each --style: no two
drawn texts overlap, legends sit outside every axes, spreads never go below zero, CDFs count
what they clip, every (model, method) series has its own style, PDFs embed TrueType fonts."""

from __future__ import annotations

import importlib.util
import itertools
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
from matplotlib.text import Text  # noqa: E402

from adabench import plots, store  # noqa: E402

_spec = importlib.util.spec_from_file_location(
    "make_run", Path(__file__).parents[1] / "fixtures" / "make_run.py"
)
make_run = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(make_run)
METHODS = ("full", "adallava-l", "layer-drop", "early-exit", "prumerge")


@pytest.fixture(autouse=True)
def _close_figures():
    yield
    plt.close("all")


TINY_RUN = Path(__file__).parents[1] / "fixtures" / "tiny_run"  # a real sweep, 2 models


@pytest.fixture(scope="module", params=[("tiny",), ("tiny", "tiny-adallava-l")], ids=len)
def run(request, tmp_path_factory) -> store.Run:
    out = tmp_path_factory.mktemp("fig")
    return store.load_run(
        make_run.make_run(out, paired=True, models=request.param, methods=METHODS)
    )


@pytest.mark.parametrize("style", list(plots.STYLES))
def test_slo_figures_have_no_overlapping_text(style, tmp_path):
    run = store.load_run(make_run.make_run(tmp_path, slo_ms=45.0, models=("tiny", "tiny-2")))
    stems = []
    for stem, fig in _figures(run, style):
        assert _overlaps(fig) == [], stem
        stems.append(stem)
    assert "slo_shapes" in stems


@pytest.mark.parametrize("style", list(plots.STYLES))
def test_a_real_runs_figures_have_no_overlapping_text(style):
    run = store.load_run(TINY_RUN)
    stems = []
    for stem, fig in _figures(run, style):
        assert _overlaps(fig) == [], stem
        stems.append(stem)
    assert {"pareto_flops_shapes", "latency_cdf_shapes", "cost_shapes"} <= set(stems)


def _drawn_texts(fig) -> list[Text]:
    """The Text artists that the last draw actually painted (ticks outside the view are not)."""
    drawn, original = [], Text.draw

    def record(self, renderer):
        if self.get_visible() and self.get_text().strip():
            drawn.append(self)
        return original(self, renderer)

    Text.draw = record
    try:
        fig.canvas.draw()
    finally:
        Text.draw = original
    return drawn


def _overlaps(fig) -> list[tuple[str, str]]:
    renderer = fig.canvas.get_renderer()
    boxes = [(t.get_text(), t.get_window_extent(renderer)) for t in _drawn_texts(fig)]
    bad = []
    for (a, box_a), (b, box_b) in itertools.combinations(boxes, 2):
        x0, x1 = max(box_a.x0, box_b.x0), min(box_a.x1, box_b.x1)
        y0, y1 = max(box_a.y0, box_b.y0), min(box_a.y1, box_b.y1)
        if x1 - x0 > 1 and y1 - y0 > 1:  # more than a pixel each way
            bad.append((a, b))
    return bad


def _figures(run, style):
    with plt.rc_context({**plots.RC, **plots.STYLES[style]["rc"]}):
        for stem, fig in plots.figures(run, "shapes", "flops", style):
            yield stem, fig
            plt.close(fig)


@pytest.mark.parametrize("style", list(plots.STYLES))
def test_no_text_overlaps_and_legends_sit_outside_the_data(run, style):
    stems = []
    for stem, fig in _figures(run, style):
        stems.append(stem)
        assert _overlaps(fig) == [], stem
        renderer = fig.canvas.get_renderer()
        for legend in fig.legends:
            box = legend.get_window_extent(renderer)
            for ax in fig.axes:
                inside = ax.get_window_extent(renderer)
                assert not box.overlaps(inside), f"{stem}: the legend covers a panel"
        if style == "paper":
            width = fig.get_size_inches()[0]
            assert width == pytest.approx(3.3) or width == pytest.approx(7.0), stem
    assert {"pareto_flops_shapes", "adherence_shapes", "plans_shapes", "latency_cdf_shapes",
            "cost_shapes", "family_accuracy_shapes"} <= set(stems)  # fmt: skip


def test_paper_style_fonts_are_8_to_9_pt(run):
    for stem, fig in _figures(run, "paper"):
        sizes = {round(t.get_fontsize(), 1) for t in _drawn_texts(fig)}
        assert sizes <= {8.0, 9.0} | ({5.0} if stem.startswith("plans") else set()), stem


def test_every_series_has_its_own_style(run):
    cells = run.cells.assign(series=run.cells["model"] + " " + run.cells["method"])
    styles = plots.series_styles(cells)
    assert len(styles) == cells["series"].nunique()
    assert len(set(styles.values())) == len(styles)
    # the CDF draws colour and line style only: those must tell the series apart too
    assert len({(c, dash) for c, _, dash in styles.values()}) == len(styles)


def test_cost_spread_is_percentiles_never_below_zero(run):
    fig = dict(_figures_list(run))["cost_shapes"]
    for ax in fig.axes:
        assert ax.get_ylim()[0] >= 0
        for collection in ax.collections:  # error bar segments
            for segment in collection.get_segments():
                assert np.min(segment[:, 1]) >= 0
    percentiles = plots.cell_percentiles(run.samples)
    cid = run.cells["cell_id"].iloc[0]
    values = run.samples.loc[run.samples["cell_id"] == cid, "latency_ms"]
    assert percentiles[cid] == pytest.approx(np.percentile(values, [10, 50, 90]))


def _figures_list(run):
    with plt.rc_context(plots.RC):
        return list(plots.figures(run, "shapes"))


def test_cdf_clips_at_p99_and_counts_the_outliers(tmp_path):
    run_dir = make_run.make_run(tmp_path, models=("tiny",), methods=("full", "early-exit"))
    samples = store.load_run(run_dir).samples
    samples.loc[samples.index[0], "latency_ms"] = 470.0  # one far outlier
    run = store.Run(run_dir, {}, {}, store.load_run(run_dir).cells, samples)
    fig = dict(_figures_list(run))["latency_cdf_shapes"]
    first = fig.axes[0]
    assert first.get_xlim()[1] < 470.0 / 2
    assert "past the p99 not shown" in fig.axes[-1].get_xlabel()


def test_family_panels_need_enough_samples(tmp_path):
    few = store.load_run(make_run.make_run(tmp_path / "few", n_samples=8))  # 2 per family
    assert "family_accuracy_shapes" not in dict(_figures_list(few))
    many = store.load_run(make_run.make_run(tmp_path / "many", n_samples=20))  # 5 per family
    assert "family_accuracy_shapes" in dict(_figures_list(many))


def test_pdf_embeds_truetype_fonts(run, tmp_path):
    written = plots.make_plots(run.path, out=tmp_path, formats=["pdf"], style="paper")
    data = written[0].read_bytes()
    assert b"/FontFile2" in data and b"/Type3" not in data
