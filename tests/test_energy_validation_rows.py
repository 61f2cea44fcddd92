"""The ML.ENERGY row mapping shared by the parallel and energy benchmarks, and the
matched FP8/BF16 pairing of energy_validation.py (hand-built rows, no data file)."""
import sys
from pathlib import Path
from types import SimpleNamespace

import pandas as pd
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
from energy_validation import ALL_MODELS, matched_pairs, sign_by_bin  # noqa: E402
from mlenergy_rows import expressible, layout_of, quant_of  # noqa: E402


def _row(**kw):
    base = dict(model_id="Qwen/Qwen3-235B-A22B-Instruct-2507-FP8", gpu_model="H100",
                tensor_parallel=1, expert_parallel=8, data_parallel=1,
                weight_precision="fp8")
    return SimpleNamespace(**(base | kw))


def test_ep_row_runs_attention_tensor_parallel_over_the_ep_group():
    lay = layout_of(_row())
    assert (lay.tp, lay.ep, lay.dp) == (8, 8, 1)
    lay = layout_of(_row(tensor_parallel=2, expert_parallel=1))
    assert (lay.tp, lay.ep, lay.dp) == (2, 1, 1)


@pytest.mark.parametrize("kw, reason", [
    ({}, None),
    ({"gpu_model": "B200"}, "no B200 profile"),
    ({"data_parallel": 8}, "data-parallel attention with expert parallelism not modelled"),
    ({"weight_precision": "int4"}, "precision int4 not mapped"),
    ({"model_id": "nvidia/NVIDIA-Nemotron-Nano-9B-v2"}, "model not built in"),
])
def test_expressible_names_the_reason(kw, reason):
    got = expressible(_row(**kw))
    assert got == reason if reason is None else got.startswith(reason)


def test_gemma_is_expressible_only_with_the_energy_models():
    row = _row(model_id="google/gemma-3-27b-it", weight_precision="bfloat16")
    assert expressible(row) is not None
    assert expressible(row, ALL_MODELS) is None


def test_mxfp4_quantizes_the_experts_only():
    q = quant_of("mxfp4")
    assert q.for_group("mlp").weight_bits == 4
    assert q.for_group("attn").weight_bits == 16 == quant_of("bfloat16").weight_bits
    assert quant_of("fp8").weight_bits == 8


def test_matched_pairs_ratio_and_sign():
    rows = pd.DataFrame([
        {"model": "M-FP8", "precision": "fp8", "task": "t", "gpus": 8, "max_num_seqs": 8,
         "batch": 8, "power_meas_w": 500.0, "power_pred_w": 300.0, "jpt_meas": 3.0,
         "jpt_pred": 1.0},
        {"model": "M", "precision": "bfloat16", "task": "t", "gpus": 8, "max_num_seqs": 8,
         "batch": 8, "power_meas_w": 400.0, "power_pred_w": 400.0, "jpt_meas": 2.0,
         "jpt_pred": 2.0},
        {"model": "M", "precision": "bfloat16", "task": "t", "gpus": 4, "max_num_seqs": 8,
         "batch": 8, "power_meas_w": 1.0, "power_pred_w": 1.0, "jpt_meas": 1.0,
         "jpt_pred": 1.0}])
    out = matched_pairs(rows)
    assert len(out) == 1   # the 4-GPU BF16 row has no FP8 twin
    r = out.iloc[0]
    assert (r.power_meas, r.power_pred, r.jpt_meas, r.jpt_pred) == (1.25, 0.75, 1.5, 0.5)
    assert (r.sign_meas, r.sign_pred) == ("+", "-")
    assert not r.jpt_sign_right


def test_sign_by_bin_takes_medians_per_blog_bin():
    pairs = pd.DataFrame({"batch_fp8": [8, 16, 32, 128, 300],
                          "jpt_meas": [1.5, 1.1, 0.9, 0.8, 2.0],
                          "jpt_pred": [1.2, 0.9, 0.95, 0.7, 2.0]})
    pairs["jpt_sign_right"] = (pairs["jpt_meas"] > 1) == (pairs["jpt_pred"] > 1)
    out = sign_by_bin(pairs).set_index("batch")
    assert out.loc["8-16", "pairs"] == 2 and out.loc["8-16", "signs_right"] == "1/2"
    assert out.loc["8-16", "meas_median_change"] == pytest.approx(0.3)
    assert out.loc["8-16", "pred_median_change"] == pytest.approx(0.05)
    assert out.loc["17-64", "pred_median_change"] == pytest.approx(-0.05)
    assert out.loc["65-256", "signs_right"] == "1/1"   # batch 300 is in no bin
    assert out.loc["8-16", "blog_median_change"] == 0.30
