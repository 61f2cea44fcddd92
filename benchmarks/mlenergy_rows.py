"""ML.ENERGY Benchmark v3 rows -> PrecSim inputs: the one row -> model / format / layout
/ serving-state mapping shared by benchmarks/parallel_validation.py and
benchmarks/energy_validation.py.

ML.ENERGY's "TP 1, EP n, DP 1" rows run vLLM's expert-parallel mode, where attention is
tensor-parallel over the same n GPUs (vLLM: EP size = TP x DP): they map to tp = ep = n.

A row is vLLM 0.11.1 kept full at max_num_seqs: `simulator.steady.steady_state` of B =
avg_batch_size concurrent requests (continuous batching with chunked prefill: every
step also prefills the prompts of the requests that replace the finished ones) of the
row's average output length and PROMPTS[task] prompt tokens, on the `vllm` runtime
(runtimes/vllm.yaml: the engine's own kernel properties).
"""
from __future__ import annotations

import os
from pathlib import Path

from precsim.simulator.parallel import ParallelLayout
from precsim.simulator.quant import parse_quant
from precsim.simulator.runtime import apply_runtime
from precsim.simulator.steady import steady_state

#: shared/reference/data beside the checkout (or $PRECSIM_REFERENCE_DATA).
DATA = Path(os.environ.get("PRECSIM_REFERENCE_DATA", Path(__file__).resolve().parents[2]
                           / "shared" / "reference" / "data"))
CONFIGS_CSV = DATA / "mlenergy_v3_llm_configs.csv"
#: Hugging Face repository -> built-in model (the -Instruct / -Thinking / -FP8 variants
#: share their base model's config.json shapes).
MODELS = {"Qwen/Qwen3-8B": "qwen3-8b", "Qwen/Qwen3-14B": "qwen3-14b",
          "Qwen/Qwen3-235B-A22B-Instruct-2507": "qwen3-235b-a22b",
          "Qwen/Qwen3-235B-A22B-Thinking-2507": "qwen3-235b-a22b",
          "Qwen/Qwen3-235B-A22B-Instruct-2507-FP8": "qwen3-235b-a22b",
          "Qwen/Qwen3-235B-A22B-Thinking-2507-FP8": "qwen3-235b-a22b",
          "meta-llama/Llama-3.1-405B-Instruct": "llama-3.1-405b",
          "meta-llama/Llama-3.1-405B-Instruct-FP8": "llama-3.1-405b",
          "openai/gpt-oss-20b": "gpt-oss-20b", "openai/gpt-oss-120b": "gpt-oss-120b"}
#: weight_precision -> PrecSim format (gpt-oss: MXFP4 experts, the rest bf16).
FORMATS = {"bfloat16": "BF16", "fp8": "FP8", "mxfp4": "BF16"}
PROFILES = {"H100": "h100-sxm"}
#: The rows' serving engine (vLLM 0.11.1): runtimes/vllm.yaml.
RUNTIME = "vllm"
#: Mean prompt tokens per request: ML.ENERGY v3 publishes output lengths only.
#: lm-arena-chat: fitted on the calibration rows' throughput (energy_validation.py
#: --fit: 974 tokens; LMArena conversations carry the earlier turns); gpqa: assumed, a
#: GPQA question with its instructions is a few hundred tokens.
PROMPTS = {"lm-arena-chat": 974, "gpqa": 256}


def expressible(row, models=MODELS) -> str | None:
    """None, or why PrecSim cannot simulate the row (`models`: HF id -> model)."""
    if row.model_id not in models:
        return "model not built in (or unmodelled: MLA, hybrid SSM, chunked attention)"
    if row.gpu_model not in PROFILES:
        return f"no {row.gpu_model} profile"
    if row.data_parallel > 1:
        return "data-parallel attention with expert parallelism not modelled"
    if row.weight_precision not in FORMATS:
        return f"precision {row.weight_precision} not mapped"
    return None


def layout_of(row) -> ParallelLayout:
    """The row's replica layout (EP rows: attention tensor-parallel over the EP group)."""
    tp = max(int(row.tensor_parallel), int(row.expert_parallel))
    return ParallelLayout(tp=tp, ep=int(row.expert_parallel), dp=int(row.data_parallel))


def quant_of(precision: str):
    """PrecSim format of a row's weight_precision (mxfp4: MXFP4 MLP/experts, BF16 rest)."""
    quant = parse_quant(FORMATS[precision])
    return quant.with_overrides({"mlp": "MXFP4"}) if precision == "mxfp4" else quant


def steady_of(profile, row, models=MODELS, prompts=PROMPTS, runtime=RUNTIME):
    """`steady_state` of a row (module docstring) on `profile` as `runtime` (a name or a
    RuntimeProfile) runs the row's format."""
    quant = quant_of(row["weight_precision"])
    engine = apply_runtime(runtime, profile, quant).profile
    return steady_state(engine, models[row["model_id"]], quant,
                        max(1, round(float(row["avg_batch_size"]))), prompts[row["task"]],
                        max(2.0, float(row["avg_output_len_tokens"])), layout_of(row))

