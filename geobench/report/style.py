"""The figures' palette, and one colour and marker per algorithm (the key is the registry name).

Every figure is a ``matplotlib.figure.Figure`` saved to files (:func:`geobench.report.save_figure`);
nothing imports ``pyplot``, so no GUI backend is ever chosen and drawing needs no screen.
"""

from __future__ import annotations

import zlib

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
