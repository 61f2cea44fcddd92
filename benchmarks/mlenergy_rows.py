"""ML.ENERGY Benchmark v3 rows -> PrecSim inputs: the one row -> model / format / layout
mapping shared by benchmarks/parallel_validation.py and benchmarks/energy_validation.py.

ML.ENERGY's "TP 1, EP n, DP 1" rows run vLLM's expert-parallel mode, where attention is
tensor-parallel over the same n GPUs (vLLM: EP size = TP x DP): they map to tp = ep = n.
"""
from __future__ import annotations

import os
from pathlib import Path

from precsim.simulator.parallel import ParallelLayout
from precsim.simulator.quant import parse_quant

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
