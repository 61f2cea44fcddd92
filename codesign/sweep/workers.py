"""Evaluating one chunk (runs on the workers): cost-model rows, and DES serving points."""
from __future__ import annotations

import functools
import json
from typing import Any

import numpy as np
import pandas as pd

from precsim.codesign.sweep.chunks import Chunk, Piece
from precsim.codesign.sweep.schema import ServingAxis
from precsim.simulator.cost import simulate
from precsim.simulator.des.serving import serve
from precsim.simulator.des.workload import poisson_workload
from precsim.simulator.errors import InputError
from precsim.simulator.profiles import HardwareProfile, profile_from_mapping

#: serving aggregates kept per row (`serving_` + name), from the DES summary
SERVING_METRICS = ("ttft_p50_s", "ttft_p99_s", "tpot_p50_s", "tpot_p99_s", "e2e_p50_s",
                   "e2e_p99_s", "queue_p99_s", "throughput_tokens_per_s",
                   "throughput_requests_per_s", "energy_per_token_j", "utilization",
                   "mean_decode_batch", "served", "rejected", "kv_capacity_tokens")


@functools.lru_cache(maxsize=32)
def _profile(doc_json: str) -> HardwareProfile:
    """The profile a task ships as JSON (profiles are data; workers re-validate once)."""
    doc = json.loads(doc_json)
    return profile_from_mapping(doc, source=f"sweep profile {doc.get('name')}")


def evaluate_chunk(chunk: Chunk) -> pd.DataFrame:
    """Rows of one chunk: config_id, labels, axes, then cost (and serving) metrics.

    One broadcast cost call per piece; serving points run one DES each.
    """
    frames = []
    for piece in chunk.pieces:
        n = len(piece)
        columns: dict[str, Any] = {"config_id": np.arange(piece.first_config_id,
                                                          piece.first_config_id + n)}
        for name, value in piece.group.labels:
            columns[name] = pd.array([value] * n, dtype="str")
        columns |= {"batch": piece.batch, "prompt_len": piece.prompt_len,
                    "gen_len": piece.gen_len}
        if piece.qps is not None:
            columns["qps"] = piece.qps.astype(np.float64)
        profile = _profile(piece.group.profile_doc)
        columns |= _cost_columns(profile, piece)
        if chunk.serving is not None:
            columns |= _serving_columns(profile, piece, chunk.serving)
        frames.append(pd.DataFrame(columns))
    return pd.concat(frames, ignore_index=True) if len(frames) > 1 else frames[0]


def _cost_columns(profile: HardwareProfile, piece: Piece) -> dict[str, np.ndarray]:
    """Every scalar total of `simulator.cost.simulate` (ttft_s, tpot_s, …, fits), per row,
    from one broadcast call over the piece's batch × prompt_len × gen_len rows (each row
    equals the scalar call: `simulate` sums every request's decode on its own nodes)."""
    totals = simulate(profile, piece.group.model, piece.group.quant, piece.batch,
                      piece.prompt_len, piece.gen_len).totals
    return {name: np.broadcast_to(value, piece.batch.shape).copy()
            for name, value in totals.items() if not isinstance(value, dict)}


def _serving_columns(profile: HardwareProfile, piece: Piece,
                     serving: ServingAxis) -> dict[str, np.ndarray]:
    """One DES run per row: Poisson(qps) arrivals, max batch = the row's batch.

    A point the DES refuses as input (the model does not fit the device) gets NaN
    metrics and the reason in `serving_error`; the chunk goes on.
    """
    out = {f"serving_{name}": np.full(len(piece), np.nan) for name in SERVING_METRICS}
    errors = [""] * len(piece)
    for row in range(len(piece)):
        workload = poisson_workload(float(piece.qps[row]), serving.requests, serving.seed,
                                    int(piece.prompt_len[row]), int(piece.gen_len[row]))
        try:
            summary = serve(profile, piece.group.model, piece.group.quant, workload,
                            max_batch=int(piece.batch[row]),
                            chunked_prefill_tokens=serving.chunked_prefill_tokens,
                            on_full=serving.on_full).summary
        except InputError as exc:
            errors[row] = str(exc)
            continue
        for name in SERVING_METRICS:
            out[f"serving_{name}"][row] = summary[name]
    out["serving_error"] = pd.array(errors, dtype="str")
    return out
