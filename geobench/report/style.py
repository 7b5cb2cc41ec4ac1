"""The figures' palette, one colour and marker per algorithm (the key is the registry name), and the
caption and margins every figure of the report gets.

Every figure is a ``matplotlib.figure.Figure`` saved to files (:func:`geobench.report.save_figure`);
nothing imports ``pyplot``, so no GUI backend is ever chosen and drawing needs no screen.
"""

from __future__ import annotations

import textwrap
import zlib

from matplotlib.figure import Figure
from matplotlib.legend import Legend

# Colour-blind-safe (Okabe-Ito and Tol) with OPO and ADPO in the strongest hues; the conceptual
# figures draw with the same two (GREEN for flows and roles, VERMILLION for anchors) and GREY.
VERMILLION, GREEN, GREY = "#D55E00", "#009E73", "0.55"
STYLES: dict[str, tuple[str, str]] = {
    "opo": (VERMILLION, "o"),
    "adpo": (GREEN, "s"),
    "adpo-listwise-raw": (GREEN, "s"),
    "adpo-listwise-rank": ("#66C2A5", "D"),
    "adpo-pairwise": ("#1B7837", "v"),
    "adpo-self-anchor": (GREEN, "s"),
    "adpo-self-anchor-ema": ("#66C2A5", "D"),
    "grpo": ("#0072B2", "^"),
    "gspo": ("#56B4E9", "<"),
    "dapo": ("#CC79A7", ">"),
    "ppo": ("#E69F00", "P"),
    "trpo": ("#AA3377", "X"),
    "dpo": ("#555555", "d"),
    "dpo-hard": ("#555555", "d"),
    "dpo-soft": ("#999999", "h"),
    "sft": ("#000000", "*"),
    "kd": ("#882255", "p"),
    "kd-gaussian": ("#BB5566", "H"),
}
_FALLBACK = ("#332288", "#88CCEE", "#44AA99", "#117733", "#999933", "#DDCC77", "#CC6677", "#882255")
LABELS = {
    "opo": "OPO",
    "adpo": "ADPO",
    "grpo": "GRPO",
    "gspo": "GSPO",
    "dapo": "DAPO",
    "ppo": "PPO",
    "trpo": "TRPO",
    "dpo": "DPO",
    "sft": "SFT",
    "kd": "KD",
}


def style(name: str) -> dict[str, str]:
    """Matplotlib keyword arguments (color, marker, label) for an algorithm."""
    color, marker = STYLES.get(name, (_FALLBACK[zlib.crc32(name.encode()) % len(_FALLBACK)], "o"))
    return {"color": color, "marker": marker, "label": label(name)}


def label(name: str) -> str:
    return LABELS.get(name, name)


# Characters of 9 pt DejaVu Sans per inch of line, on the safe side (its mean advance is ~0.55 em).
_CHARS_PER_INCH_9PT = 13
_CAPTION_GAP = 0.05  # inches above the caption


def add_caption(fig: Figure, text: str, fontsize: float = 9) -> None:
    """``text`` as the figure's title, wrapped to the figure's width so that it is never cut at its edges,
    and ``_CAPTION_GAP`` inches below the top whatever the figure's height (:func:`fit` reserves more above
    the panels than that: a caption at a fixed fraction of the height lands on the panel titles of a tall
    figure)."""
    wrapped = textwrap.fill(text, int(fig.get_figwidth() * _CHARS_PER_INCH_9PT * 9 / fontsize))
    fig.suptitle(wrapped, fontsize=fontsize, y=1 - _CAPTION_GAP / fig.get_figheight(), va="top")


def fit(fig: Figure, legend: Legend | None = None) -> None:
    """Margins from the drawn text's own extents (matplotlib's tight layout, which makes room for the
    caption too): no label, tick label or title past the canvas and none over another panel, whatever
    the figure's size. A figure ``legend`` on the right keeps a strip as wide as it measures."""
    right = 1.0 if legend is None else 1.0 - legend.get_window_extent().width / fig.bbox.width - 0.01
    fig.tight_layout(rect=(0, 0, right, 1), pad=0.5, h_pad=0.8, w_pad=0.8)
