"""The standard figures of a law (PNG bytes; the caller writes them): `law_figures`.

- loss_vs_data_ptq.png: loss vs training tokens D at fixed N for several post-training
  precisions, with the critical data size D_crit (Eq. 13) of each marked;
- loss_vs_train_precision.png: loss vs training precision (w = a = kv) at fixed N for
  several D/N, and at fixed compute (N, D compute-optimal for each precision);
- iso_loss.png: iso-loss contours over (training precision, N) at a fixed compute budget
  C = (6/16)·N·D·P, with the N*(P) ridge and the compute-optimal point;
- optimal_precision.png: compute-optimal precision vs budget, and the optimal precision
  at fixed N vs the data budget D.

Figures are drawn on `matplotlib.figure.Figure` with the Agg canvas (no pyplot state).
"""
from __future__ import annotations

import io

import numpy as np
from matplotlib.figure import Figure

from precsim.lawcore.base import Law
from precsim.lawcore.inputs import HIGH_PRECISION_BITS, positive_finite
from precsim.lawcore.optimal import (COST_BITS_DIVISOR, FLOPS_PER_PARAM_TOKEN, compute_optimal,
                             optimal_precision_fixed_n)

POST_BITS = (8, 6, 5, 4, 3)
DATA_RATIOS = (20, 200, 2000)
BUDGETS_FLOPS = (1e19, 1e21, 1e23)
FIXED_N = (1e8, 1e9, 1e10)


def _png(fig: Figure) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110, bbox_inches="tight")
    return buf.getvalue()


def _loss_vs_data(law: Law, N: float) -> bytes:
    fig = Figure(figsize=(6.4, 4.4))
    ax = fig.add_subplot()
    D = np.geomspace(N, N * 1e5, 300)
    ax.plot(D, law.predict(N, D), color="black", label="no PTQ")
    if law.models_ptq:
        colors = ("tab:blue", "tab:green", "tab:orange", "tab:red", "tab:purple")
        for bits, color in zip(POST_BITS, colors):
            ax.plot(D, law.predict(N, D, P_post=bits), color=color, label=f"PTQ to {bits} bits")
            d_crit = float(law.critical_data_size(N, bits))
            if D[0] <= d_crit <= D[-1]:
                ax.plot([d_crit], [law.predict(N, d_crit, P_post=bits)], "o", color=color)
        ax.set_title(f"{law.name}: loss vs tokens at N = {N:.3g} (dots: D_crit)")
    else:
        ax.set_title(f"{law.name}: loss vs tokens at N = {N:.3g}")
    ax.set_xscale("log")
    ax.set_xlabel("training tokens D")
    ax.set_ylabel("loss")
    ax.legend(fontsize=8)
    return _png(fig)


def _precision_grid(law: Law, points: int = 200) -> np.ndarray:
    return np.linspace(law.min_training_bits() + 0.15, HIGH_PRECISION_BITS, points)


def _loss_vs_train_precision(law: Law, N: float) -> bytes:
    fig = Figure(figsize=(11, 4.2), layout="constrained")
    left, right = fig.subplots(1, 2)
    P = _precision_grid(law)
    for ratio in DATA_RATIOS:
        left.plot(P, law.predict(N, ratio * N, P, P, P), label=f"D/N = {ratio}")
    left.set_title(f"fixed N = {N:.3g}")
    for budget in BUDGETS_FLOPS:
        fixed = compute_optimal(np.full(P.shape, budget), law, precision=P)
        best = compute_optimal(budget, law)
        line, = right.plot(P, fixed.loss, label=f"C = {budget:.0e} FLOPs")
        right.plot([best.precision], [best.loss], "o", color=line.get_color())
    right.set_title("fixed compute, N and D optimal per precision (dots: optimum)")
    for ax in (left, right):
        ax.set_xlabel("training precision P = P_w = P_a = P_kv (bits)")
        ax.set_ylabel("loss")
        ax.legend(fontsize=8)
    fig.suptitle(f"{law.name}: loss vs training precision")
    return _png(fig)


def iso_loss_grid(law: Law, compute_flops: float, points: int = 200) -> dict:
    """Loss over (training precision P = P_w = P_a = P_kv, N) at a fixed budget
    C = (6/16)·N·D·P, i.e. D = 16C/(6NP); N spans the optimum's N /30 to x30.

    Returns P (points,), N (points,), loss (N x P), the ridge N*(P) and the optimum.
    """
    best = compute_optimal(compute_flops, law)
    P = _precision_grid(law, points)
    N = np.geomspace(best.N / 30, best.N * 30, points)
    PP, NN = np.meshgrid(P, N)
    DD = COST_BITS_DIVISOR * compute_flops / (FLOPS_PER_PARAM_TOKEN * NN * PP)
    ridge = compute_optimal(np.full(P.shape, compute_flops), law, precision=P)
    return {"P": P, "N": N, "loss": law.predict(NN, DD, PP, PP, PP), "ridge_N": ridge.N,
            "optimum": best}


def _iso_loss(law: Law, compute_flops: float) -> bytes:
    fig = Figure(figsize=(6.4, 4.8))
    ax = fig.add_subplot()
    grid = iso_loss_grid(law, compute_flops)
    best, P, loss = grid["optimum"], grid["P"], grid["loss"]
    PP, NN = np.meshgrid(P, grid["N"])
    levels = np.quantile(loss, np.linspace(0.02, 0.9, 12))
    contours = ax.contour(PP, NN, loss, levels=np.unique(levels), cmap="viridis")
    ax.clabel(contours, fontsize=7, fmt="%.3f")
    ax.plot(P, grid["ridge_N"], "--", color="grey", label="N*(P)")
    ax.plot([best.precision], [best.N], "r*", markersize=12,
            label=f"optimum: {best.precision:.2f} bits, N = {best.N:.3g}")
    ax.set_yscale("log")
    ax.set_xlabel("training precision (bits)")
    ax.set_ylabel("parameters N")
    ax.set_title(f"{law.name}: iso-loss at C = {compute_flops:.2e} FLOPs (D = 16C/(6NP))")
    ax.legend(fontsize=8)
    return _png(fig)


def _optimal_precision(law: Law) -> bytes:
    fig = Figure(figsize=(11, 4.2), layout="constrained")
    left, right = fig.subplots(1, 2)
    budgets = np.geomspace(1e18, 1e26, 40)
    left.plot(budgets, compute_optimal(budgets, law).precision)
    left.set_ylim(0.0, HIGH_PRECISION_BITS)
    left.set_xscale("log")
    left.set_xlabel("training compute C = (6/16)·N·D·P (FLOPs)")
    left.set_ylabel("compute-optimal precision (bits)")
    left.set_title("N, D and P jointly optimal")
    for n in FIXED_N:
        D = np.geomspace(n, n * 1e4, 40)
        right.plot(D, optimal_precision_fixed_n(n, D, law).precision, label=f"N = {n:.0e}")
    right.set_xscale("log")
    right.set_xlabel("D: tokens the budget buys at 16 bits (D/N from 1 to 1e4)")
    right.set_ylabel("optimal training precision (bits)")
    right.set_title("N fixed, compute of D tokens at 16 bits")
    right.legend(fontsize=8)
    fig.suptitle(f"{law.name}: compute-optimal training precision")
    return _png(fig)


def law_figures(law: Law, N: float = 1e8, compute_flops: float = 1e21) -> dict[str, bytes]:
    """{file name: PNG bytes} of the figures that apply to `law` (the precision figures
    need a law that models quantized training)."""
    N = float(positive_finite("N", N, " of parameters"))
    compute_flops = float(positive_finite("compute_flops", compute_flops, " of FLOPs"))
    figures = {"loss_vs_data_ptq.png": _loss_vs_data(law, N)}
    if law.models_training_precision:
        figures["loss_vs_train_precision.png"] = _loss_vs_train_precision(law, N)
        figures["iso_loss.png"] = _iso_loss(law, compute_flops)
        figures["optimal_precision.png"] = _optimal_precision(law)
    return figures
