"""An objective's report card: ``results/battery/<name>/CARD.md``, its figures and ``verdicts.csv``,
from CSVs only.

At the top, one line per experiment answers "against the reference, where?" (the baseline of the
objective's feedback, ``experiments/references.toml``); then per experiment
(:mod:`geobench.battery.card_sections`) the objective's numbers with 95% bootstrap CIs over seeds
beside every baseline's and the starting level's, its paired differences, its rank, and the
experiment's own diagnostics. Every number is computed here from the run folders the battery
wrote or reused. The card's verdicts, one row per experiment, also go to ``verdicts.csv``
(columns: :data:`geobench.report.cards.VERDICT_COLUMNS`), which is what REPORT.md reads.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from pathlib import Path

import pandas as pd
from matplotlib.figure import Figure

from geobench.battery.card_sections import SECTIONS, Section
from geobench.battery.plan import BY_NAME, BatteryConfig, Plan
from geobench.objectives import REGISTRY, get_objective
from geobench.objectives.plugins import plugin_names
from geobench.report import save_figure
from geobench.report.cards import CARD, VERDICT_COLUMNS, VERDICTS, verdict_lines
from geobench.report.markdown import markdown_table
from geobench.report.taxonomy import geometry_frame
from geobench.results import atomic_write_text, read_run, write_csv

FIGURES = ("card_toy", "card_bandits", "card_llm")  # the stems a card's sections draw


def write_card(
    objective: str,
    config: BatteryConfig,
    plans: list[Plan],
    skipped: Mapping[str, str],
    ledger: pd.DataFrame,
    folder: Path,
    figures: bool = True,
    failed: Mapping[str, str] | None = None,
) -> Path:
    """Write ``folder/CARD.md`` (and, with ``figures``, its PNG/PDF figures; without, none is left
    there) and ``folder/verdicts.csv``; returns the card's path. ``failed``: the experiments whose run
    stopped on the objective's non-finite loss or a diverged run, with the error."""
    folder = Path(folder)
    draw = (lambda fig, stem: _figure(fig, folder, stem)) if figures else _no_figure
    if not figures:
        for stem in FIGURES:  # a card without figures keeps none an earlier card drew
            for suffix in (".png", ".pdf"):
                (folder / f"{stem}{suffix}").unlink(missing_ok=True)
    sections, rows, summary = [], [], []  # rows: (experiment, title, status, verdict)
    for step in plans:
        baselines, _ = read_run(step.baseline_out)
        if step.among_baselines:
            frame = baselines
        else:
            mine, _ = read_run(step.out)
            frame = pd.concat([baselines[baselines["variant"] != objective], mine], ignore_index=True)
        reference = config.reference(step.experiment.name, objective)
        section = Section(frame, objective, step, reference, draw)
        text, verdict, line = SECTIONS[step.experiment.name](section)
        sections.append(f"## {step.experiment.title}\n\n{text}")
        rows.append((step.experiment.name, step.experiment.title, "run", verdict))
        summary.append(f"- **{step.experiment.title}**: {line}.")
    for name, error in (failed or {}).items():
        sections.append(f"## {BY_NAME[name].title}\n\nFailed: {error}.\n")
        rows.append((name, BY_NAME[name].title, "failed", error))
        summary.append(f"- **{BY_NAME[name].title}**: failed ({error}).")
    for name, why in skipped.items():
        sections.append(f"## {BY_NAME[name].title}\n\nNot run: {why}.\n")
        rows.append((name, BY_NAME[name].title, "not run", why))
        summary.append(f"- **{BY_NAME[name].title}**: not run.")
    verdicts = pd.DataFrame([(objective, config.budget, *row) for row in rows], columns=VERDICT_COLUMNS)
    write_csv(verdicts, folder / VERDICTS)
    top = "## Against the reference, where?\n\n" + "\n".join(summary) + "\n"
    lines = f"## Verdicts\n\n{verdict_lines(verdicts)}\n"
    path = folder / CARD
    atomic_write_text(
        path, "\n".join([_title(objective), top, _header(objective, config, plans, ledger), lines, *sections])
    )
    return path


def _no_figure(fig: Figure, stem: str) -> str:
    return ""


def _title(objective: str) -> str:
    return f"# Report card: `{objective}`\n"


def _header(objective: str, config: BatteryConfig, plans: list[Plan], ledger: pd.DataFrame) -> str:
    entry = get_objective(objective)
    source = registered_by(objective)
    given = dict(config.hparams.get(objective, {}))
    hparams = ", ".join(f"{k}={v!r}" + (" (set)" if k in given else "") for k, v in entry.validate(given).items())
    compared = {v for p in plans for v in getattr(p.baseline_config, p.experiment.methods_field)}
    names = [objective] + sorted(compared & set(REGISTRY) - {objective})
    fields = {f.name: f.name.replace("_", " ") for f in dataclasses.fields(entry.geometry)}
    geometry = geometry_frame(names, fields)
    geometry.insert(1, "feedback", [REGISTRY[n].feedback for n in names])
    cells = ledger.groupby("role")[["cells", "computed", "reused"]].sum()
    references = {p.experiment.name: config.reference(p.experiment.name, objective) for p in plans}
    shown = ", ".join(f"{e} `{r}`" for e, r in references.items() if r) or "none"
    return (
        f"- Source: {entry.paper}\n- Registered by: {source}\n- Feedback: {entry.feedback}\n"
        f"- Hyperparameters: {hparams or 'none'}\n- Budget: `{config.budget}` (experiments/battery.toml)\n"
        f"- Reference baselines (experiments/references.toml): {shown}\n\n"
        "Every number below is computed from the run folders in the ledger; CIs are 95% percentile "
        "bootstraps over seeds, differences paired by seed. A difference is *resolved* when its CI excludes 0.\n\n"
        f"### Cells\n\n{markdown_table(ledger)}\n"
        f"Computed {int(ledger['computed'].sum())} cells, reused {int(ledger['reused'].sum())} "
        f"(baselines: {_role(cells, 'baselines')}; {objective}: {_role(cells, 'objective')}).\n\n"
        f"### Geometry (the taxonomy columns of OPO Table 2 and ADPO Tables 1 and 3)\n\n{markdown_table(geometry)}"
    )


def registered_by(objective: str) -> str:
    """Who registered ``objective``: 'built-in (geobench.objectives)' or its plugin, a file under the
    working folder shown as a relative path (cards are read on other machines)."""
    spec = plugin_names().get(objective, "built-in (geobench.objectives)")
    path = Path(spec)
    return str(path.relative_to(Path.cwd())) if path.is_absolute() and path.is_relative_to(Path.cwd()) else spec


def _role(cells: pd.DataFrame, role: str) -> str:
    if role not in cells.index:
        return "none"
    row = cells.loc[role]
    return f"{int(row['computed'])} computed, {int(row['reused'])} reused"


def _figure(fig: Figure, folder: Path, stem: str) -> str:
    save_figure(fig, folder, stem)
    return f"![{stem}]({stem}.png)\n\n"
