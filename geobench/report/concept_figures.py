"""ADPO Fig. 1 and OPO Figs. 1-2, drawn from the tables ``geobench.concepts`` computes (pure functions)."""

from __future__ import annotations

import math
import textwrap

import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from matplotlib.patches import FancyBboxPatch, Polygon

from geobench.concepts.tables import Tables, scalars
from geobench.report.style import GREEN, GREY, VERMILLION, style

SQRT3_2 = math.sqrt(3) / 2


def _caption(fig: Figure, caption: str) -> None:
    if caption:  # ~14 characters of 9 pt text per inch: wrapped to the figure, never cut at its edges
        fig.suptitle(textwrap.fill(caption, int(fig.get_figwidth() * 14)), fontsize=9)


def _barycentric(p1: np.ndarray, p2: np.ndarray, p3: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The simplex drawn as a triangle: P1 = 1 at the top, P2 = 1 bottom left, P3 = 1 bottom right."""
    return p3 + 0.5 * p1, SQRT3_2 * p1


def adpo_fig1(tables: Tables, caption: str = "") -> Figure:
    """(a) SFT's flow on the simplex, (b) SFT's NLL over (P1, P2), (c) ADPO's loss in d, (d) |grad| along the flow."""
    path, simplex, bowl, rays = tables["path"], tables["simplex"], tables["bowl"], tables["rays"]
    s = scalars(tables["summary"])
    fig = Figure(figsize=(11, 9.4))
    fig.subplots_adjust(left=0.07, right=0.97, bottom=0.06, top=0.88, wspace=0.28, hspace=0.32)
    (ax_a, ax_b), (ax_c, ax_d) = fig.subplots(2, 2)

    corners = np.array([[0.5, SQRT3_2], [0.0, 0.0], [1.0, 0.0]])
    ax_a.add_patch(Polygon(corners, closed=True, facecolor="0.9", edgecolor="0.5"))
    for (x, y), text, dy in zip(corners, ("P1 = 1 (target)", "P2 = 1", "P3 = 1"), (0.03, -0.06, -0.06), strict=True):
        ax_a.text(x, y + dy, text, ha="center", fontsize=9)
    x, y = _barycentric(path["p1"].to_numpy(), path["p2"].to_numpy(), path["p3"].to_numpy())
    ax_a.plot(x, y, color=GREEN, lw=2, label="SFT gradient flow (in logits)")
    ax_a.annotate("", (x[-1], y[-1]), (x[-8], y[-8]), arrowprops={"arrowstyle": "-|>", "color": GREEN, "lw": 2})
    ax_a.plot(x[0], y[0], "o", color=VERMILLION, ms=8, label="reference prior pi_ref")
    ax_a.set(xlim=(-0.08, 1.08), ylim=(-0.28, 0.98), aspect="equal", title="(a) SFT on the probability simplex")
    ax_a.axis("off")
    ax_a.legend(loc="lower center", fontsize=8, frameon=False, ncols=2)

    filled = ax_b.tricontourf(simplex["p1"], simplex["p2"], simplex["loss"], levels=20, cmap="viridis")
    fig.colorbar(filled, ax=ax_b, label="SFT loss = -log P1")
    ax_b.plot(path["p1"], path["p2"], color="white", lw=2)
    ax_b.plot(path["p1"].iloc[0], path["p2"].iloc[0], "o", color=VERMILLION, ms=8)
    ax_b.set(xlabel="P1", ylabel="P2", xlim=(0, 1), ylim=(0, 1), title="(b) SFT's loss over the simplex")

    n = int(round(math.sqrt(len(bowl))))
    d1, d2 = (bowl[c].to_numpy().reshape(n, n) for c in ("d1", "d2"))
    loss, quad = bowl["loss"].to_numpy().reshape(n, n), bowl["quadratic"].to_numpy().reshape(n, n)
    levels = np.linspace(loss.min(), np.quantile(loss, 0.9), 15)
    filled = ax_c.contourf(d1, d2, loss, levels=levels, cmap="Greens_r", extend="max")
    fig.colorbar(filled, ax=ax_c, label="ADPO loss")
    ax_c.contour(d1, d2, quad, levels=levels, colors="k", linewidths=0.6, linestyles="--")
    boundary = rays[["e1", "e2"]].to_numpy() * rays[["radius"]].to_numpy()
    ax_c.plot(
        *np.vstack([boundary, boundary[:1]]).T, color=VERMILLION, lw=1.2, label=f"quadratic within {s['quad_tol']:.0%}"
    )
    ax_c.plot(0, 0, "D", color=VERMILLION, ms=8, label="anchor (d = 0)")
    ax_c.plot(s["minimum_d1"], s["minimum_d2"], "*", color="k", ms=12, label="minimum d* = tau log q")
    ax_c.set(
        xlabel="d1 = log(pi1 / pi_ref1) - c",
        ylabel="d2 = log(pi2 / pi_ref2) - c   (c: d1 + d2 + d3 = 0)",
        aspect="equal",
        title=f"(c) ADPO's loss in anchored coordinates (tau = {s['tau']:g})",
    )
    ax_c.legend(loc="lower left", fontsize=7)

    before = path[path["gap"] >= s["corner_eps"]]
    ax_d.loglog(before["gap"], before["grad_norm"], color=GREEN, lw=2, label="|grad_z L_SFT| along the flow")
    ax_d.loglog(before["gap"], before["gap"], color=GREY, ls="--", label="1 - P1 (distance to the corner)")
    ax_d.invert_xaxis()
    ax_d.set(xlabel="1 - P1 (the flow runs right to left)", ylabel="gradient norm", title="(d) SFT's gradient")
    ax_d.grid(alpha=0.3, which="both")
    ax_d.legend(fontsize=8)
    _caption(fig, caption)
    return fig


def opo_fig1(tables: Tables, caption: str = "") -> Figure:
    """(a) loss and dissipation on a tangent plane, (b) v* per action vs (omega - 1) / mu, (c) convergence."""
    response, grid, descent = tables["response"], tables["landscape"], tables["descent"]
    s = scalars(tables["summary"])
    fig = Figure(figsize=(15, 4.8))
    fig.subplots_adjust(left=0.05, right=0.98, bottom=0.14, top=0.8, wspace=0.3)
    ax_a, ax_b, ax_c = fig.subplots(1, 3)

    filled = ax_a.tricontourf(grid["a"], grid["b"], grid["loss"], levels=20, cmap="Oranges_r")
    fig.colorbar(filled, ax=ax_a, label="OPO loss L(v)")
    ax_a.tricontour(grid["a"], grid["b"], grid["dissipation"], levels=8, colors="k", linewidths=0.6, linestyles="--")
    ax_a.plot(0, 0, "o", color="k", ms=7, label="anchor pi_k (v = 0): min of (mu/2)E[v^2] (dashed)")
    ax_a.plot(descent["a"], descent["b"], ".-", color=style("opo")["color"], ms=4, lw=1, label="descent iterates")
    ax_a.plot(s["v_norm"], 0, "*", color="k", ms=13, label="closed form (omega - 1)/mu")
    ax_a.set(xlabel="a: along v* (L2(pi_k) units)", ylabel="b: orthogonal, E[v] = 0", title="(a) work vs dissipation")
    ax_a.legend(fontsize=7, loc="upper left")

    x = np.arange(len(response))
    ax_b.bar(x, response["v_closed"], color="0.8", label="(omega - 1)/mu, closed form")
    ax_b.plot(x, response["v_eq10"], "o", color=style("opo")["color"], label="v* from the opo objective")
    ax_b.plot(x, response["v_log"], "^", color=GREY, label="log-ratio surrogate: e^Delta* - 1")
    ax_b.axhline(0, color="k", lw=0.8)
    ax_b.set_xticks(
        x, [f"y{a:.0f}\npi={p:.2f}\nA={r:g}" for a, p, r in response[["action", "pi_k", "advantage"]].values]
    )
    ax_b.set(ylabel="v = pi / pi_k - 1", title=f"(b) response, E_pi_k[v*] = {s['mean_v']:.1e}")
    ax_b.legend(fontsize=7)

    ax_c.semilogy(descent["iteration"], descent["distance"], "o", ms=3, color=style("opo")["color"], label="|v_m - v*|")
    ax_c.semilogy(descent["iteration"], descent["contraction"], color="k", lw=1, label="|1 - eta mu|^m |v*| (Eq. 20)")
    ax_c.set(xlabel="iteration m", ylabel="L2(pi_k) distance", title="(c) gradient descent in v-space")
    ax_c.set_ylim(bottom=1e-18)
    ax_c.grid(alpha=0.3, which="both")
    ax_c.legend(fontsize=8)
    _caption(fig, caption)
    return fig


_FILL = {"loop": "0.93", "work": "#CCEBDD", "dissipation": "#99D6BB"}
_ROLE = {"work": "external work (alpha)", "dissipation": "intrinsic dissipation (mu)"}


def opo_fig2(steps: pd.DataFrame, caption: str = "") -> Figure:
    """Algorithm 1 as a column of boxes, one per step, each naming the function that ran it; the
    work and dissipation steps inside a green "OPO decomposition" frame; a loop arrow back."""
    n = len(steps)
    fig = Figure(figsize=(8.5, 1.05 * n + 1.2))
    ax = fig.add_axes((0.0, 0.0, 1.0, 0.93 if caption else 1.0))
    ax.set(xlim=(0, 10), ylim=(-0.4, n + 0.1))
    ax.axis("off")
    height, left, width = 0.72, 1.4, 7.8
    tops = {}
    for i, row in enumerate(steps.itertuples()):
        y = n - 1 - i
        tops[row.Index] = y
        ax.add_patch(
            FancyBboxPatch(
                (left, y), width, height, boxstyle="round,pad=0.04", facecolor=_FILL[row.role], edgecolor="0.3"
            )
        )
        calls = f"{int(row.calls)} call{'s' if row.calls != 1 else ''}"
        ax.text(left + 0.15, y + 0.56, f"{row.line}: {row.name}", fontsize=10, weight="bold", va="center")
        ax.text(left + 0.15, y + 0.33, row.formula, fontsize=8, va="center")
        ax.text(left + 0.15, y + 0.11, f"{row.functions} ({calls})", fontsize=7, va="center", color="0.3")
        ax.text(left + width - 0.1, y + 0.56, _ROLE.get(row.role, ""), fontsize=8, ha="right", va="center", color=GREEN)
        if i:
            ax.annotate(
                "",
                (left + width / 2, y + height + 0.04),
                (left + width / 2, y + 1 - 0.04),
                arrowprops={"arrowstyle": "-|>", "color": "0.3"},
            )
    inner = steps[steps["role"] != "loop"]
    if len(inner):
        low, high = min(tops[i] for i in inner.index), max(tops[i] for i in inner.index)
        ax.add_patch(
            FancyBboxPatch(
                (left - 0.2, low - 0.1),
                width + 0.4,
                high - low + height + 0.2,
                boxstyle="round,pad=0.02",
                fill=False,
                edgecolor=GREEN,
                lw=2,
            )
        )
        ax.text(
            left - 0.3,
            (low + high + height) / 2,
            "OPO decomposition",
            rotation=90,
            color=GREEN,
            ha="right",
            va="center",
            fontsize=10,
            weight="bold",
        )
    first, last = tops[steps.index[0]], tops[steps.index[-1]]
    ax.annotate(
        "",
        (left, first + height / 2),
        (left, last + height / 2),
        arrowprops={"arrowstyle": "-|>", "color": "0.3", "connectionstyle": "bar,fraction=-0.08"},
    )
    ax.text(0.35, (first + last + height) / 2, "next iteration", rotation=90, ha="center", va="center", fontsize=9)
    _caption(fig, caption)
    return fig
