"""One colour and marker per algorithm, used by every figure (the key is the registry name)."""

from __future__ import annotations

import zlib

import matplotlib

matplotlib.use("Agg")  # figures are files; never open a window (CI and SSH have no screen)

# Colour-blind-safe (Okabe-Ito and Tol) with OPO and ADPO in the strongest hues.
STYLES: dict[str, tuple[str, str]] = {
    "opo": ("#D55E00", "o"),
    "adpo": ("#009E73", "s"),
    "adpo-listwise-raw": ("#009E73", "s"),
    "adpo-listwise-rank": ("#66C2A5", "D"),
    "adpo-pairwise": ("#1B7837", "v"),
    "adpo-self-anchor": ("#009E73", "s"),
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
