"""Re-fit and re-simulate a saved `precsim validate` run without measuring again.

`validate --out DIR` writes the calibration tables it fitted (calibration_*.csv) and the
held-out measurements (kernels.csv). Changing the model or the fits and checking the
change against the held-out cases then needs no new measurement on a shared machine:

- `saved_tables(DIR)` reads the tables back (`calibrate.TABLES`; launches and
  attention rows are split out of calibration_matmuls.csv again);
- `refit(DIR)` fits the shipped host template to them with this checkout's fits
  (`calibrate.fit_tables`; the memory levels and CPU flags of this machine: re-fit runs
  measured here);
- `resimulate(DIR, profile)` prices the saved run's held-out cases (its plan, from
  the number of cases) on `profile` and compares them with the saved measurements
  (`compare`): the per-kernel table, per format and overall.

Calibration still only sees calibration cases; the held-out ones only judge the result.

    python -m precsim.validation.refit DIR [DIR ...] [--extra CSV]
"""
from __future__ import annotations

import argparse
import copy
import os
import sys
from collections.abc import Sequence
from pathlib import Path

import pandas as pd

from precsim.simulator.io import load_yaml_mapping
from precsim.simulator.profiles import HardwareProfile
from precsim.validation import compare
from precsim.validation.calibrate import Calibration, fit_tables, host_levels, template_path
from precsim.validation.plan import PLANS
from precsim.validation.simulate import simulate_cases


def saved_tables(folder: str | os.PathLike, extra: Sequence[str | os.PathLike] = ()
                 ) -> dict[str, pd.DataFrame]:
    """The calibration tables of a saved validate run (calibrate.TABLES); `extra`: CSV
    files of calibration matmul rows (calibration_matmuls.csv columns) timed after the
    run, e.g. a calibration job the run's plan did not have, appended to its own."""
    folder = Path(folder)

    def read(name: str) -> pd.DataFrame:
        return pd.read_csv(folder / f"calibration_{name}.csv")
    mixed = pd.concat([read("matmuls"), *(pd.read_csv(f) for f in extra)],
                      ignore_index=True)
    phase = mixed["phase"] if "phase" in mixed else pd.Series(float("nan"), mixed.index)
    is_matmul, is_attention = mixed["purpose"].notna(), phase.notna()
    return {"tiny_ops": read("tiny_ops"), "streams": read("streams"), "gemms": read("gemms"),
            "vector": read("vector"),
            "matmuls": mixed[is_matmul].reset_index(drop=True),
            "attention": mixed[is_attention].reset_index(drop=True),
            "launches": mixed[~is_matmul & ~is_attention].reset_index(drop=True)}


def refit(folder: str | os.PathLike, template: str | os.PathLike | None = None,
          flags: frozenset[str] | None = None, extra: Sequence[str | os.PathLike] = ()
          ) -> Calibration:
    """The host template fitted to the saved run's calibration tables (and `extra`
    calibration matmul rows: `saved_tables`)."""
    doc = load_yaml_mapping(template or template_path(), what="host profile template")
    doc["name"] = "host"
    return fit_tables(copy.deepcopy(doc), saved_tables(folder, extra), host_levels(doc, 0),
                      f"re-fitted from the tables of {Path(folder).name}", [], "cpu",
                      repeats=0, flags=flags)


def resimulate(folder: str | os.PathLike, profile: HardwareProfile
               ) -> tuple[pd.DataFrame, pd.DataFrame, dict]:
    """(per-case table, per-format stats, overall stats) of the saved run's held-out
    measurements against `profile` (kernels only in the stats, as `validate`)."""
    saved = pd.read_csv(Path(folder) / "kernels.csv")
    plan = next(p() for p in PLANS.values()
                if len(p().kernels) + len(p().model_cases) == len(saved))
    cases = [c for c in list(plan.kernels) + list(plan.model_cases)
             if c.name in set(saved["name"])]
    simulated = simulate_cases(cases, profile, plan.model)
    table = saved.drop(columns=["simulated_s", "simulated_bound", "pct_error",
                                "abs_pct_error", "spread_pct"], errors="ignore")
    table["simulated_s"] = table["name"].map(lambda n: simulated[n][0])
    table["simulated_bound"] = table["name"].map(lambda n: simulated[n][1])
    table = compare.add_errors(table)
    kernels = table[~table["kind"].str.startswith("transformer")]
    return table, compare.error_stats(kernels, "format"), compare.overall(kernels)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("folders", nargs="+", help="folders written by `precsim validate --out`")
    ap.add_argument("--cases", action="store_true", help="print every case's error too")
    ap.add_argument("--extra", action="append", default=[], metavar="CSV",
                    help="calibration matmul rows timed after the run (a job its plan "
                         "lacked; calibration_matmuls.csv columns), added to every folder's")
    args = ap.parse_args(argv)
    for folder in args.folders:
        table, by_format, overall = resimulate(folder, refit(folder, extra=args.extra).profile)
        print(f"{folder}: {overall['kernels']} held-out kernels, median |error| "
              f"{overall['median_abs_pct_error']:.1f}%, p90 "
              f"{overall['p90_abs_pct_error']:.1f}%")
        print(by_format[["format", "kernels", "median_abs_pct_error"]].to_string(
            index=False, float_format=lambda v: f"{v:.1f}"))
        if args.cases:
            print(table[["name", "measured_s", "simulated_s", "pct_error"]].to_string(
                index=False, float_format=lambda v: f"{v:.4g}"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
