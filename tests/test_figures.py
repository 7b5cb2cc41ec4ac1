"""`make figures` end to end: every artifact drawn from small real runs, none skipped."""

import dataclasses
import io
import json

import pandas as pd
import pytest
from matplotlib.figure import Figure

from geobench import toy
from geobench.bandits import BanditConfig
from geobench.bandits import run as run_bandits
from geobench.config import experiment_file, load_config
from geobench.distill.sweep import run as run_distill
from geobench.llm import run as run_llm
from geobench.report import BUILDERS, build_all, save_figure
from tests.conftest import tiny_llm_config


def test_every_artifact_builds_from_small_real_runs(tmp_path, tiny_distill, tiny_model):
    results, figures = tmp_path / "results", tmp_path / "figures"
    toy_config = load_config(toy.ToyConfig, experiment_file("opo_fig3"), "quick", {"grid_points": 101})
    toy.run(toy_config, results / "toy-saturation", show_progress=False)
    bandits = dataclasses.replace(
        load_config(BanditConfig, experiment_file("adpo_fig2"), "quick"),
        seeds=2,
        steps=4,
        eval_every=2,
        eval_contexts=128,
        hidden=(16,),
        scaling=True,
        scaling_hidden=(8, 16, 32),
    )
    run_bandits(bandits, results / "bandits", show_progress=False)
    methods = ("adpo-listwise-raw", "adpo-listwise-rank", "adpo-pairwise")
    ablation = dataclasses.replace(bandits, methods=methods, scaling=False, anchors=dict.fromkeys(methods, "old"))
    run_bandits(ablation, results / "bandits-onpolicy-anchor", show_progress=False)
    run_distill(tiny_distill, results / "mujoco", show_progress=False)
    run_llm(tiny_llm_config(tiny_model, steps=3), results / "llm", show_progress=False)
    for folder, form in (("llm-opo-escort-no-ref", {"escort_ref": False}), ("llm-opo-code", {"drive": "code"})):
        run_llm(
            tiny_llm_config(tiny_model, steps=3, algos=("opo",), hparams={"opo": form}),
            results / folder,
            show_progress=False,
        )
    run_llm(
        tiny_llm_config(tiny_model, steps=3, algos=("grpo", "opo"), seeds=2),
        results / "llm-stress",
        show_progress=False,
    )
    run_llm(
        tiny_llm_config(tiny_model, steps=3, algos=("grpo",), levels=(1, 2), eval_levels=(3,)),
        results / "llm-opo-v5-ood",
        show_progress=False,
    )

    _leaderboard(results, toy_config)

    written, skipped = build_all(results, figures)
    assert skipped == {}, skipped
    names = {p.name for p in written}
    for stem in ("opo_fig3", "adpo_fig2a", "adpo_fig2b", "adpo_table2"):
        assert {f"{stem}.png", f"{stem}.pdf"} <= names
    assert {"adpo_fig2a.md", "adpo_fig2b.md", "adpo_fig2_anchor_ablation.md", "adpo_table2.md"} <= names
    table2 = (figures / "adpo_table2.md").read_text()
    assert "| Hopper-v5 (" in table2 and "The paper's claims beside ours" in table2
    assert "TRPO achieves the highest WinMass" in (figures / "adpo_fig2a.md").read_text()
    for stem in ("opo_fig4", "opo_fig5", "opo_fig6", "opo_fig7", "adpo_fig3"):
        assert {f"{stem}.png", f"{stem}.pdf"} <= names
    assert {"opo_table1.md", "adpo_table4.md", "llm_claims.md", "llm_regime.md", "llm_pairwise.md"} <= names
    assert {"opo_forms.md", "llm_stress.md", "llm_stress.png"} <= names
    assert "| OPO |" in (figures / "opo_table1.md").read_text()
    forms = (figures / "opo_forms.md").read_text()
    assert all(name in forms for name in ("Eq. 7 as printed", "App. A.3", "authors' code"))
    assert "GRPO collapses" in (figures / "llm_stress.md").read_text()
    assert {"adpo_fig1.png", "opo_fig1.png", "opo_fig2.png"} <= names
    assert "(44/100)" in (figures / "opo_v5_ood.md").read_text()
    assert {"leaderboard_heatmap.png", "leaderboard_heatmap.pdf"} <= names
    assert len(BUILDERS) == 13


def _leaderboard(results, toy_config) -> None:
    """A leaderboard of the toy run alone, in the layout `geobench leaderboard` writes."""
    from geobench.battery.finals import finals, identities
    from geobench.battery.leaderboard import objectives_table
    from geobench.report.leaderboard import FAILURE_COLUMNS

    frame = pd.read_csv(results / "toy-saturation" / "saturation.csv")
    folder = results / "leaderboard"
    folder.mkdir()
    finals("toy-saturation", frame, toy_config).to_csv(folder / "finals.csv", index=False)
    identities("toy-saturation", frame).to_csv(folder / "identities.csv", index=False)
    objectives_table(toy_config.objectives).to_csv(folder / "objectives.csv", index=False)
    cells = {"objective": ["grpo"], "experiment": ["toy-saturation"], "role": ["baselines"], "computed": [12]}
    pd.DataFrame({**cells, "reused": [0]}).to_csv(folder / "cells.csv", index=False)
    pd.DataFrame(columns=list(FAILURE_COLUMNS)).to_csv(folder / "failures.csv", index=False)
    meta = {"budget": "quick", "objectives": list(toy_config.objectives), "experiments": ["toy-saturation"]}
    meta |= {"references": {"toy-saturation": {"sampled": "grpo", "pairwise": "dpo", "listwise": "grpo"}}}
    (folder / "leaderboard.json").write_text(json.dumps(meta | {"titles": {}, "threads": 1, "workers": 1}))


def _line_figure(slope: float) -> Figure:
    fig = Figure(figsize=(3, 2))
    fig.subplots().plot([0, 1], [0, slope])
    return fig


def test_save_figure_writes_what_savefig_writes(tmp_path):
    fig = _line_figure(1.0)
    png, pdf = save_figure(fig, tmp_path / "new", "line")  # the folder is made
    for path, options in ((png, {"dpi": 150}), (pdf, {"metadata": {"CreationDate": None}})):
        direct = io.BytesIO()
        fig.savefig(direct, format=path.suffix[1:], **options)
        assert path.read_bytes() == direct.getvalue()
    assert sorted(p.name for p in (tmp_path / "new").iterdir()) == ["line.pdf", "line.png"]


def test_a_figure_that_fails_to_draw_leaves_the_previous_one_whole(tmp_path):
    before = [p.read_bytes() for p in save_figure(_line_figure(1.0), tmp_path, "line")]
    broken = _line_figure(2.0)
    broken.axes[0].lines[0].draw = lambda renderer: (_ for _ in ()).throw(KeyboardInterrupt)  # killed mid-draw
    with pytest.raises(KeyboardInterrupt):
        save_figure(broken, tmp_path, "line")
    assert [(tmp_path / n).read_bytes() for n in ("line.png", "line.pdf")] == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["line.pdf", "line.png"]  # no temp file left
