"""The report's runtime comparison: each deployment's optimum (model, serving format,
workload batch and lengths) served on its chip under every runtime of the study
(`runtimes:`, default just `reference`), through the same `run_request` as
`precsim simulate --runtime`. A runtime that cannot run the format or the device gives
a row with the reason instead of numbers."""
from __future__ import annotations

import pandas as pd

from precsim.simulator.errors import InputError

COLUMNS = ("deploy_profile", "runtime", "serve_format", "prefill_s", "tpot_s",
           "decode_tokens_per_s", "energy_per_token_j", "reason")


def runtime_comparison(results) -> pd.DataFrame:
    """One row per (deployment with an optimum, runtime): prefill time (TTFT), decode
    time per token (TPOT), decode tokens/s and J per generated token; `reason` where the
    runtime refuses or the model does not fit."""
    from precsim.codesign.commands.simulate import run_request
    from precsim.simulator.models import model_for_params

    rows = []
    for name, r in results.plans.items():
        if r.optimum is None or r.problem.deploy_profile is None:
            continue
        model = model_for_params(r.optimum.N, **r.problem.model_options)
        w = r.problem.workload
        for rt in results.resolved.runtimes:
            row = dict.fromkeys(COLUMNS) | {"deploy_profile": name, "runtime": rt.name,
                                            "serve_format": str(r.optimum.serve_format),
                                            "reason": ""}
            try:
                _, _, sim = run_request(r.problem.deploy_profile, model,
                                        r.optimum.serve_format, w.batch, w.prompt_len,
                                        w.output_len, runtime=rt)
            except InputError as exc:
                rows.append(row | {"reason": str(exc)})
                continue
            t = sim.totals
            if not t["fits"]:
                rows.append(row | {"reason": "does not fit"})
                continue
            rows.append(row | {"prefill_s": float(t["ttft_s"]), "tpot_s": float(t["tpot_s"]),
                               "decode_tokens_per_s": float(t["decode_tokens_per_s"]),
                               "energy_per_token_j": float(t["energy_per_token_j"])})
    return pd.DataFrame(rows, columns=list(COLUMNS))
