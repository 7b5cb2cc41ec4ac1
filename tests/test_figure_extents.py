"""Every committed figure, drawn from the committed CSVs, fits its canvas: checked from matplotlib's
own extents (a renderer's window extents), not by eye.

``build_all`` on ``results/`` draws every figure the report shows; each one is captured as it is
saved and measured: every visible text element (titles, labels, tick labels, legend entries,
annotations) lies inside the canvas, no two titles overlap, no title overlaps an axis label or a
tick label, and no two tick labels of one axis overlap. The figure functions are also drawn at their
smallest shapes (one scenario, one metric, a short run) from slices of the same CSVs.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from matplotlib.axis import Axis
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.text import Text
from matplotlib.transforms import Bbox

from geobench.report import artifacts, bandits_report, build_all, leaderboard, llm_artifacts, llm_report, toy_figure
from geobench.report import files as report_files
from geobench.results import read_run

RESULTS = Path(__file__).resolve().parents[1] / "results"
_TOLERANCE = 1.0  # pixels: antialiasing may put a glyph's edge a fraction past the canvas


def _drawn_texts(fig: Figure) -> dict[int, tuple[Text, Bbox]]:
    """Every text element the renderer actually draws (tick labels outside the view limits are not),
    with its window extent, in drawing order; found by wrapping ``Text.draw`` while the figure draws."""
    canvas = FigureCanvasAgg(fig)
    renderer = canvas.get_renderer()
    drawn: dict[int, tuple[Text, Bbox]] = {}
    original = Text.draw

    def draw(text: Text, renderer_) -> None:
        original(text, renderer_)
        if text.get_visible() and text.get_text().strip() and text.figure is fig:
            drawn[id(text)] = (text, text.get_window_extent(renderer_))

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(Text, "draw", draw)
        fig.draw(renderer)
    return drawn


def _titles(fig: Figure) -> list[Text]:
    titles = [fig._suptitle] if fig._suptitle is not None else []
    for ax in fig.axes:
        titles += [ax.title, ax._left_title, ax._right_title]
        legend = ax.get_legend()
        if legend is not None:
            titles.append(legend.get_title())
    return titles + [legend.get_title() for legend in fig.legends]


def _tick_labels(axis: Axis) -> list[Text]:
    return [t for tick in axis.get_major_ticks() + axis.get_minor_ticks() for t in (tick.label1, tick.label2)]


def _labels(fig: Figure) -> list[Text]:
    axes = [axis for ax in fig.axes for axis in (ax.xaxis, ax.yaxis)]
    return [t for axis in axes for t in (axis.label, axis.get_offset_text(), *_tick_labels(axis))]


def _overlap(a: Bbox, b: Bbox) -> bool:
    tol = _TOLERANCE
    return a.x0 < b.x1 - tol and b.x0 < a.x1 - tol and a.y0 < b.y1 - tol and b.y0 < a.y1 - tol


def defects(fig: Figure) -> list[str]:
    """What is cut or overlapping in ``fig``, one line each (empty: the figure is clean)."""
    drawn = _drawn_texts(fig)
    width, height = fig.bbox.width, fig.bbox.height
    found = []
    for text, box in drawn.values():
        if box.x0 < -_TOLERANCE or box.y0 < -_TOLERANCE or box.x1 > width + _TOLERANCE or box.y1 > height + _TOLERANCE:
            bounds = ", ".join(f"{v:.0f}" for v in box.extents)
            found.append(f"cut: {text.get_text()[:60]!r} spans ({bounds}) on a {width:.0f} x {height:.0f} canvas")
    titles = [drawn[id(t)] for t in _titles(fig) if t is not None and id(t) in drawn]
    labels = [drawn[id(t)] for t in _labels(fig) if id(t) in drawn]
    for i, (first, first_box) in enumerate(titles):
        for second, second_box in titles[i + 1 :]:
            if _overlap(first_box, second_box):
                found.append(f"titles overlap: {first.get_text()[:40]!r} and {second.get_text()[:40]!r}")
        for label, label_box in labels:
            if _overlap(first_box, label_box):
                found.append(f"title {first.get_text()[:40]!r} overlaps label {label.get_text()[:40]!r}")
    for ax in fig.axes:
        for axis in (ax.xaxis, ax.yaxis):
            ticks = [drawn[id(t)] for t in _tick_labels(axis) if id(t) in drawn]
            for i, (first, first_box) in enumerate(ticks):
                for second, second_box in ticks[i + 1 :]:
                    if _overlap(first_box, second_box):
                        found.append(f"tick labels overlap: {first.get_text()[:20]!r} and {second.get_text()[:20]!r}")
    return found


@pytest.fixture(scope="module")
def committed_figures(tmp_path_factory) -> dict[str, Figure]:
    """Every figure ``build_all`` draws from the committed results, by file stem."""
    drawn: dict[str, Figure] = {}
    original = report_files.save_figure

    def capture(fig: Figure, figures: Path, stem: str) -> list[Path]:
        drawn[stem] = fig
        return original(fig, figures, stem)

    patch = pytest.MonkeyPatch()
    for module in (artifacts, llm_artifacts, leaderboard):
        patch.setattr(module, "save_figure", capture)
    try:
        _, skipped = build_all(RESULTS, tmp_path_factory.mktemp("figures"))
    finally:
        patch.undo()
    assert not skipped, skipped
    return drawn


def test_every_committed_figure_is_drawn(committed_figures):
    committed = {p.stem for p in (RESULTS.parent / "figures").glob("*.png")}
    assert committed <= set(committed_figures), committed - set(committed_figures)


def test_no_figure_cuts_or_overlaps_its_text(committed_figures):
    found = {stem: defects(fig) for stem, fig in sorted(committed_figures.items())}
    found = {stem: lines for stem, lines in found.items() if lines}
    assert not found, "\n".join(f"{stem}: {line}" for stem, lines in found.items() for line in lines)


def test_the_check_sees_a_cut_title_and_an_overlap():
    fig = Figure(figsize=(3, 2))
    ax = fig.subplots()
    ax.set_title("panel")
    fig.suptitle("a caption far too long to fit a figure three inches wide, cut at both edges", fontsize=9)
    fig.subplots_adjust(top=0.95)
    lines = defects(fig)
    assert any(line.startswith("cut: 'a caption") for line in lines)
    assert any(line.startswith("titles overlap") for line in lines)
    clean = Figure(figsize=(4, 3))
    clean.subplots().set_title("panel")
    clean.subplots_adjust(top=0.85)
    assert defects(clean) == []


def _run(folder: str):
    frame, meta = read_run(RESULTS / folder)
    return frame, meta


def _small_figures() -> dict[str, Figure]:
    """The figure functions at their smallest shapes, from slices of the committed CSVs: one scenario,
    one metric, a short run."""
    bandits, _ = _run("bandits-paper")
    stats = bandits_report.summary(bandits_report.final_values(bandits))
    one = stats[(stats["scenario"] == "cauchy") & (stats["level"] == "medium")]
    llm, _ = _run("llm")
    short = llm[llm["step"] <= 10]
    toy, _ = _run("toy-saturation")
    caption = "a caption as long as the report's, naming the profile, seeds, steps and the CI (95% bootstrap)"
    return {
        "fig2a, one scenario": bandits_report.fig2a(one, 128, 0.15, caption),
        "fig2a, one scenario, no reference": bandits_report.fig2a(one, 128, None, caption),
        "fig2b": bandits_report.fig2b(stats, "cauchy", "medium", caption),
        "curve, one metric, short run": llm_report.curve_figure(short, ["heldout_accuracy"], ("opo",), caption),
        "curve, two metrics": llm_report.curve_figure(short, ["reward_mean", "heldout_accuracy"], ("opo",), caption),
        "toy, one reading": toy_figure.saturation_figure(toy[toy["coordinates"] == "exact"], 1e-12, caption),
    }


@pytest.mark.parametrize("name", list(_small_figures()))
def test_small_figures_fit_too(name):
    assert defects(_small_figures()[name]) == []


def test_a_short_run_s_held_out_panel_shows_its_start_point_with_markers():
    llm, _ = _run("llm")
    short = llm[llm["step"] <= 10]
    ax = llm_report.curve_figure(short, ["heldout_accuracy"], ("opo", "grpo"), "held-out").axes[0]
    lines = [line for line in ax.get_lines() if line.get_label() in ("OPO", "GRPO")]
    assert len(lines) == 2
    for line in lines:
        assert list(line.get_xdata()) == [0, 10]  # the start point (before training) and the evaluation at step 10
        assert line.get_marker() not in ("None", "", None)


def test_the_bandit_legend_names_the_dashed_line_only_when_it_is_drawn():
    bandits, _ = _run("bandits-paper")
    stats = bandits_report.summary(bandits_report.final_values(bandits))
    for reference, named in ((0.15, True), (None, False)):
        fig = bandits_report.fig2a(stats, 128, reference, "caption")
        texts = [t.get_text() for t in fig.legends[0].get_texts()]
        dashed = [line for ax in fig.axes for line in ax.get_lines() if line.get_linestyle() == "--"]
        assert ("reference policy" in texts) is named
        assert bool(dashed) is named
        assert "dashed" not in fig.legends[0].get_title().get_text()
