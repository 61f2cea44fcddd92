"""SoC validation: predicted phone/laptop prompt-processing and decode rates per compute
unit, against every published measurement in shared/reference/data.

    PRECSIM_REFERENCE_DATA=/work/shared/reference/data \
        PYTHONPATH=$PWD .venv/bin/python benchmarks/soc_validation.py

Cases: llama.cpp's usual benchmark, batch 1, pp512 (prompt tokens/s: 512 tokens of
prefill) and tg128 (decode tokens/s over 128 generated tokens), for llama-3.2-1b and
llama-2-7b in Q4_0, W4A16-g128, W8A8 and BF16 on snapdragon-8-gen3 and apple-m2, on
the default unit of the format and on every other unit that takes it.

Measurements: every CSV under the data folder is searched for rows naming these chips
(Snapdragon 8 Gen 3, Galaxy S24, Apple M2 but not M2 Pro/Max/Ultra); MEASURED holds the
rows that express a case (source cited). A case without one is printed as unvalidated:
no number is invented. Prints the table and the median and worst |error| over measured
cases, and writes docs/img/soc_pred_vs_meas.png when there is a measured point.
"""
from __future__ import annotations

import re
import sys
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent))
from mlenergy_rows import DATA  # noqa: E402
from precsim.simulator.compute_units import place_units, select_unit  # noqa: E402
from precsim.simulator.cost import simulate  # noqa: E402
from precsim.simulator.errors import InputError  # noqa: E402
from precsim.simulator.profile_loader import load_profile  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
PLOT = ROOT / "docs" / "img" / "soc_pred_vs_meas.png"
PROFILES = ("snapdragon-8-gen3", "apple-m2")
MODELS = ("llama-3.2-1b", "llama-2-7b")
FORMATS = ("Q4_0", "W4A16-g128", "W8A8", "BF16")
PROMPT, GEN = 512, 128
CHIPS = re.compile(r"snapdragon\s*8\s*gen\s*3|galaxy\s*s24|apple\s*m2(?!\s*(?:pro|max|ultra))",
                   re.IGNORECASE)
#: (profile, model, format, unit, metric) -> (measured tokens/s, source). Empty: the
#: reference data hold no phone or M2 prompt-processing / decode row (searched by
#: `reference_rows`, printed on every run).
MEASURED: dict[tuple, tuple[float, str]] = {}


def reference_rows(data: Path = DATA) -> pd.DataFrame:
    """Rows of any CSV under `data` with a cell naming one of the SoCs (CHIPS)."""
    found = []
    for path in sorted(data.glob("*.csv")):
        frame = pd.read_csv(path, dtype=str).fillna("")
        hit = frame.apply(lambda col: col.str.contains(CHIPS)).any(axis=1)
        found += [{"file": path.name, **row} for row in frame[hit].to_dict("records")]
    return pd.DataFrame(found)


def cases() -> pd.DataFrame:
    """Predicted pp512 / tg128 tokens/s per (profile, model, format, unit)."""
    rows = []
    for name in PROFILES:
        soc = load_profile(name)
        for model in MODELS:
            for fmt in FORMATS:
                default = select_unit(soc, fmt).unit
                for unit in soc.compute_units:
                    try:
                        t = simulate(place_units(soc, unit), model, fmt, 1, PROMPT,
                                     GEN).totals
                    except InputError:
                        continue  # the unit's runtimes do not take the format
                    for metric, key in (("pp512", "prefill_tokens_per_s"),
                                        ("tg128", "decode_tokens_per_s")):
                        meas = MEASURED.get((name, model, fmt, unit, metric))
                        rows.append({"profile": name, "model": model, "format": fmt,
                                     "unit": unit + (" (default)" if unit == default else ""),
                                     "metric": metric, "predicted_tok_s": float(t[key]),
                                     "measured_tok_s": meas[0] if meas else np.nan,
                                     "source": meas[1] if meas else "unvalidated"})
    frame = pd.DataFrame(rows)
    frame["error"] = frame["predicted_tok_s"] / frame["measured_tok_s"] - 1.0
    return frame


def plot(frame: pd.DataFrame, path: Path = PLOT) -> Path:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5, 5))
    for metric, marker in (("pp512", "o"), ("tg128", "s")):
        sel = frame[frame["metric"] == metric]
        ax.loglog(sel["measured_tok_s"], sel["predicted_tok_s"], marker, label=metric)
    lim = [frame[["measured_tok_s", "predicted_tok_s"]].min().min() / 2,
           frame[["measured_tok_s", "predicted_tok_s"]].max().max() * 2]
    ax.plot(lim, lim, "k--", lw=0.8)
    ax.set_xlabel("measured tokens/s")
    ax.set_ylabel("predicted tokens/s")
    ax.legend()
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    return path


def main() -> None:
    found = reference_rows()
    print(f"reference rows naming Snapdragon 8 Gen 3 / Galaxy S24 / Apple M2 in {DATA}: "
          f"{len(found)}")
    if len(found):
        print(found.to_string(index=False))
    frame = cases()
    shown = frame.assign(measured_tok_s=frame["measured_tok_s"].map(
        lambda v: "-" if np.isnan(v) else f"{v:.3g}"),
        error=frame["error"].map(lambda v: "-" if np.isnan(v) else f"{v:+.0%}"))
    print(shown.to_string(index=False, float_format=lambda v: f"{v:.4g}"))
    measured = frame.dropna(subset=["measured_tok_s"])
    if measured.empty:
        print(f"\nmedian |error|: n/a, worst |error|: n/a (0 measured of {len(frame)} "
              "cases: every case is unvalidated); no plot written")
        return
    err = measured["error"].abs()
    print(f"\nmedian |error| {err.median():.0%}, worst |error| {err.max():.0%} over "
          f"{len(measured)} measured of {len(frame)} cases")
    print(f"wrote {plot(measured)}")


if __name__ == "__main__":
    main()
