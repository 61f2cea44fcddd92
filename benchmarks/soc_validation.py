"""SoC validation: predicted phone/laptop prompt-processing and decode rates per compute
unit, against every published measurement in shared/reference/data.

    PRECSIM_REFERENCE_DATA=/work/shared/reference/data \
        PYTHONPATH=$PWD .venv/bin/python benchmarks/soc_validation.py

Cases: llama.cpp's llama-bench, batch 1: pp512 (512 / TTFT of a 512-token prompt) and
tg128 (1 / TPOT generating 128 tokens after a 1-token prompt), as
benchmarks/runtime_validation.py, for llama-3.2-1b and llama-2-7b in Q4_0, Q8_0,
W4A16-g128, W8A8 and FP16 on snapdragon-8-gen3 and apple-m2, on the default unit of the
format and on every other unit that takes it, under the `reference` runtime (the
hardware model alone); measured cases also under `llama-cpp`.

Measurements: every CSV under the data folder is searched for rows naming these chips
(Snapdragon 8 Gen 3, Galaxy S24, Apple M2 but not M2 Pro/Max/Ultra): none today. The
only measured rows are those the runtime branch cites (MEASURED: llama.cpp discussion
#4167, the M2 10-core-GPU row, LLaMA-2-7B on Metal, i.e. the gpu unit). A case without
a measurement is printed as unvalidated: no number is invented. Prints the table, the
median and worst |error| over measured cases, and writes docs/img/soc_pred_vs_meas.png.
"""
from __future__ import annotations

import re
import sys
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent))
from mlenergy_rows import DATA  # noqa: E402
from precsim.codesign.commands.simulate import run_request  # noqa: E402
from precsim.simulator.compute_units import place_units, select_unit  # noqa: E402
from precsim.simulator.errors import InputError  # noqa: E402
from precsim.simulator.profile_loader import load_profile  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
PLOT = ROOT / "docs" / "img" / "soc_pred_vs_meas.png"
PROFILES = ("snapdragon-8-gen3", "apple-m2")
MODELS = ("llama-3.2-1b", "llama-2-7b")
FORMATS = ("Q4_0", "Q8_0", "W4A16-g128", "W8A8", "FP16")
CHIPS = re.compile(r"snapdragon\s*8\s*gen\s*3|galaxy\s*s24|apple\s*m2(?!\s*(?:pro|max|ultra))",
                   re.IGNORECASE)
_4167 = ("ggml-org/llama.cpp discussion #4167 (llama-bench on Apple Silicon), M2 10-core "
         "GPU row, LLaMA-2-7B on Metal; as cited by benchmarks/runtime_validation.py")
#: (profile, model, format, unit, metric) -> (measured tokens/s, source). No phone row:
#: the reference data hold none (searched by `reference_rows`, printed on every run).
MEASURED: dict[tuple, tuple[float, str]] = {
    ("apple-m2", "llama-2-7b", fmt, "gpu", metric): (value, f"{_4167}: {fmt} {metric}")
    for fmt, pp, tg in (("FP16", 201.34, 6.72), ("Q8_0", 181.40, 12.21),
                        ("Q4_0", 179.57, 21.91))
    for metric, value in (("pp512", pp), ("tg128", tg))}
#: llama-bench's two runs: (prompt, generated tokens) and the rate read from the totals
RUNS = {"pp512": (512, 2, lambda t: 512.0 / t["ttft_s"]),
        "tg128": (1, 129, lambda t: 1.0 / t["tpot_s"])}


def rate(profile, model: str, fmt: str, metric: str, runtime=None) -> float:
    """Predicted llama-bench tokens/s of one case on a placed profile."""
    prompt, gen, read = RUNS[metric]
    _, _, sim = run_request(profile, model, fmt, 1, prompt, gen, runtime=runtime)
    return float(read(sim.totals))


def reference_rows(data: Path = DATA) -> pd.DataFrame:
    """Rows of any CSV under `data` with a cell naming one of the SoCs (CHIPS)."""
    found = []
    for path in sorted(data.glob("*.csv")):
        frame = pd.read_csv(path, dtype=str).fillna("")
        hit = frame.apply(lambda col: col.str.contains(CHIPS)).any(axis=1)
        found += [{"file": path.name, **row} for row in frame[hit].to_dict("records")]
    return pd.DataFrame(found)


def cases() -> pd.DataFrame:
    """Predicted pp512 / tg128 tokens/s per (profile, model, format, unit); measured
    cases also under the llama-cpp runtime."""
    rows = []
    for name in PROFILES:
        soc = load_profile(name)
        for model in MODELS:
            for fmt in FORMATS:
                default = select_unit(soc, fmt).unit
                for unit in soc.compute_units:
                    placed = place_units(soc, unit)
                    for metric in RUNS:
                        meas = MEASURED.get((name, model, fmt, unit, metric))
                        try:
                            pred = rate(placed, model, fmt, metric)
                        except InputError:
                            break  # the unit's runtimes do not take the format
                        row = {"profile": name, "model": model, "format": fmt,
                               "unit": unit + (" (default)" if unit == default else ""),
                               "metric": metric, "runtime": "reference",
                               "predicted_tok_s": pred,
                               "measured_tok_s": meas[0] if meas else np.nan,
                               "source": meas[1] if meas else "unvalidated"}
                        rows.append(row)
                        if meas:
                            rows.append({**row, "runtime": "llama-cpp", "predicted_tok_s":
                                         rate(placed, model, fmt, metric, "llama-cpp")})
    frame = pd.DataFrame(rows)
    frame["error"] = frame["predicted_tok_s"] / frame["measured_tok_s"] - 1.0
    return frame


def plot(frame: pd.DataFrame, path: Path = PLOT) -> Path:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5, 5))
    for (metric, runtime), sel in frame.groupby(["metric", "runtime"]):
        ax.loglog(sel["measured_tok_s"], sel["predicted_tok_s"],
                  "o" if metric == "pp512" else "s",
                  fillstyle="full" if runtime == "reference" else "none",
                  label=f"{metric}, runtime {runtime}")
    lim = [frame[["measured_tok_s", "predicted_tok_s"]].min().min() / 2,
           frame[["measured_tok_s", "predicted_tok_s"]].max().max() * 2]
    ax.plot(lim, lim, "k--", lw=0.8)
    ax.set_xlabel("measured tokens/s (llama.cpp #4167, M2 GPU)")
    ax.set_ylabel("predicted tokens/s")
    ax.set_title("apple-m2 gpu unit, llama-2-7b")
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
    shown = frame.drop(columns="source").assign(measured_tok_s=frame["measured_tok_s"].map(
        lambda v: "-" if np.isnan(v) else f"{v:.3g}"),
        error=frame["error"].map(lambda v: "-" if np.isnan(v) else f"{v:+.0%}"))
    print(shown.to_string(index=False, float_format=lambda v: f"{v:.4g}"))
    measured = frame.dropna(subset=["measured_tok_s"])
    print("\nsources:", *sorted(set(measured["source"])), sep="\n  ")
    for runtime, part in measured.groupby("runtime", sort=False):
        err = part["error"].abs()
        print(f"{runtime}: median |error| {err.median():.0%}, worst |error| {err.max():.0%} "
              f"over {len(part)} measured cases")
    print(f"unvalidated: {int(frame['measured_tok_s'].isna().sum())} cases (no measurement)")
    print(f"wrote {plot(measured)}")


if __name__ == "__main__":
    main()
