"""Fit the low-bit QAT law (lawcore.lowbit) to the Spectra suite and check it against the
measurements kept aside.

    PYTHONPATH=$PWD python benchmarks/fit_lowbit_law.py [--bootstrap 100] [--seed 0]
                                                         [--plot docs/img/lowbit_law.png]

Fits A, α, E, γ_w, n_w, σ_w with lawcore's fitter (Huber on log residuals, L-BFGS-B from a
grid, seeded bootstrap) to the 21 Spectra FloatLM/TriLM/BiLM rows of
lawcore/data/lowbit_qat.csv (loss = ln LAMBADA perplexity, 300B tokens); prints the
constants with bootstrap intervals (the refits go to lawcore/data/lowbit_qat_bootstrap.csv),
predicted vs measured per row with the median and
worst |error|, the effective-parameter factor N_eff/N at 1.58 and 1 bits by size with its
bootstrap band, and, kept aside (not fitted), what Spectra's validation-loss fits
(Eq. 1: TriLM 185/N^0.26 + 1.76, FloatLM 159/N^0.26 + 1.67; "TriLM 3.9B matches FloatLM
1.1B") and QuEST's Table 2 imply, next to Kumar et al.'s factor. Writes the figure.
"""
from __future__ import annotations

import argparse
import io
from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from precsim.lawcore import get_law
from precsim.lawcore.lowbit import BOOTSTRAP_FILE, fit_lowbit, spectra_runs
from precsim.simulator.io import atomic_write_bytes, atomic_write_text

SIZES = np.array([99e6, 390e6, 1.1e9, 3.9e9, 15.6e9, 70e9])
# Kept aside. Spectra arXiv 2407.12327 Eq. (1) (reference/data/lowbit_laws.md §4):
# L_tri(N) = L_float(N·eff) with A, α, ε per suite gives eff = (A_f/(A_t + Δε·N^α))^(1/α).
SPECTRA_EQ1 = {"A_t": 185.0, "A_f": 159.0, "alpha": 0.26, "eps_t": 1.76, "eps_f": 1.67}
SPECTRA_MATCH = (3.9e9, 1.1e9)  # "TriLM 3.9B matches the validation loss of FloatLM 1.1B"
# QuEST Table 2 eff(P) for W = A = P bits (QuEST method) — weights AND activations.
QUEST_EFF = {1: 0.02, 2: 0.16, 3: 0.43, 4: 0.70}


def spectra_eq1_eff(N: np.ndarray) -> np.ndarray:
    c = SPECTRA_EQ1
    return (c["A_f"] / (c["A_t"] + (c["eps_t"] - c["eps_f"]) * N ** c["alpha"])) \
        ** (1 / c["alpha"])


def eff(law, bits: float, N: np.ndarray) -> np.ndarray:
    """N_eff/N at `bits` weights relative to the 16-bit model of the same size."""
    return np.asarray(law.training_factor(bits, 16, 16, N=N)) / \
        np.asarray(law.training_factor(16, 16, 16, N=N))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bootstrap", type=int, default=100)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--plot", default="docs/img/lowbit_law.png")
    args = parser.parse_args()

    runs = spectra_runs()
    law = fit_lowbit(runs, n_bootstrap=args.bootstrap, seed=args.seed)
    c = law.constants_
    print(f"fit: {law.fit_message_}; RMSE {law.rmse_:.4f} nats, R² {law.r2_:.4f}")
    print(f"{'constant':<10}{'value':>12}   {100 * law.ci_level_:g}% bootstrap interval")
    for name in law.fitted_constants_:
        lo, hi = law.ci_[name]
        print(f"{name:<10}{c[name]:>12.6g}   [{lo:.4g}, {hi:.4g}]")

    predicted = np.asarray(law.predict(runs.N, runs.D, runs.P_w, runs.P_a, runs.P_kv))
    err = predicted / runs.loss - 1
    print("\nper row: suite, N, ln LAMBADA ppl measured vs predicted")
    for (_, r), p, e in zip(runs.iterrows(), predicted, err):
        print(f"  {r.suite:<16}{r.N:>10.3g}{r.loss:>9.4f}{p:>9.4f}{e:>+9.2%}")
    print(f"median |error| {np.median(np.abs(err)):.2%}, worst {np.max(np.abs(err)):.2%}")

    free = law.fitted_constants_
    samples = pd.DataFrame(law.bootstrap_samples_, columns=free)
    written = atomic_write_text(BOOTSTRAP_FILE, samples.to_csv(index=False, float_format="%.6g"))
    print(f"wrote {written} ({len(samples)} bootstrap refits; the plan's robustness ensemble)")
    draws = []
    for row in law.bootstrap_samples_:
        draws.append(law.clone(**dict(zip(free, row))))
    kumar = get_law("kumar2024")
    print("\nN_eff/N of weight-only QAT vs the 16-bit model of the same size")
    print(f"{'N':>10}{'1.58b fit':>11}{'[band]':>17}{'1b fit':>9}{'Spectra Eq1':>13}"
          f"{'kumar 1.58b':>13}")
    bands = {}
    for bits in (1.58, 1.0):
        samples = np.array([eff(d, bits, SIZES) for d in draws])
        bands[bits] = np.percentile(samples, [2.5, 97.5], axis=0)
    k158 = eff(kumar, 1.58, SIZES)
    for i, n in enumerate(SIZES):
        print(f"{n:>10.3g}{eff(law, 1.58, SIZES)[i]:>11.3f}  [{bands[1.58][0][i]:.3f}, "
              f"{bands[1.58][1][i]:.3f}]{eff(law, 1.0, SIZES)[i]:>9.3f}"
              f"{spectra_eq1_eff(SIZES)[i]:>13.3f}{k158[i]:>13.3f}")
    big, small = SPECTRA_MATCH
    print(f"kept aside: 'TriLM 3.9B matches FloatLM 1.1B' → eff {small / big:.3f}; "
          f"fit gives {eff(law, 1.58, np.array([big]))[0]:.3f}")
    print("kept aside: QuEST Table 2 eff (W = A bits): "
          + ", ".join(f"{b}b {v}" for b, v in QUEST_EFF.items())
          + f"; fit (weights only) at 1.58b, 50M: {eff(law, 1.58, np.array([50e6]))[0]:.3f}")

    fig = Figure(figsize=(10, 4))
    FigureCanvasAgg(fig)
    ax1, ax2 = fig.subplots(1, 2)
    for suite, marker in (("Spectra FloatLM", "o"), ("Spectra TriLM", "s"),
                          ("Spectra BiLM", "^")):
        m = (runs.suite == suite).to_numpy()
        ax1.scatter(runs.loss[m], predicted[m], marker=marker, label=suite)
    lim = [runs.loss.min() * 0.95, runs.loss.max() * 1.05]
    ax1.plot(lim, lim, "k--", lw=0.8)
    ax1.set(xlabel="measured ln LAMBADA ppl", ylabel="predicted",
            title="low-bit law: predicted vs measured")
    ax1.legend(fontsize=8)
    grid = np.geomspace(5e7, 1e11, 60)
    for bits, color in ((1.58, "C1"), (1.0, "C2")):
        samples = np.array([eff(d, bits, grid) for d in draws])
        lo, hi = np.percentile(samples, [2.5, 97.5], axis=0)
        ax2.fill_between(grid, lo, hi, color=color, alpha=0.2)
        ax2.plot(grid, eff(law, bits, grid), color=color, label=f"low-bit law, {bits:g} bits")
    ax2.plot(grid, eff(kumar, 1.58, grid), "k:", label="Kumar et al., 1.58 bits")
    ax2.plot(grid, spectra_eq1_eff(grid), "C1--", label="Spectra Eq. 1 (val. loss, aside)")
    ax2.scatter([big], [small / big], color="C1", marker="x", label="TriLM 3.9B ≈ FloatLM 1.1B")
    ax2.axvspan(99e6, 3.9e9, color="0.9", zorder=0, label="fitted sizes")
    ax2.set(xscale="log", ylim=(0, 1.05), xlabel="parameters N", ylabel="N_eff / N",
            title="weight-only QAT vs 16-bit (95% bootstrap band)")
    ax2.legend(fontsize=7)
    fig.tight_layout()
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=110)
    print(f"wrote {atomic_write_bytes(Path(args.plot), buffer.getvalue())}")


if __name__ == "__main__":
    main()
