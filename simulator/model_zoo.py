"""Built-in models: each repository's published config.json values on the Hugging Face hub.

Name -> (source, the config.json keys PrecSim reads). `simulator.models.get_model`
maps them through `config_from_hf`, exactly as a downloaded config.json would be.
"""
from __future__ import annotations

_HF = "huggingface.co/{}/blob/main/config.json"
BUILTIN_CONFIGS: dict[str, tuple[str, dict]] = {
    "llama-2-7b": ("huggingface.co/meta-llama/Llama-2-7b-hf/blob/main/config.json", {
        "model_type": "llama", "hidden_act": "silu", "hidden_size": 4096,
        "intermediate_size": 11008, "max_position_embeddings": 4096,
        "num_attention_heads": 32, "num_hidden_layers": 32, "num_key_value_heads": 32,
        "tie_word_embeddings": False, "vocab_size": 32000}),
    "llama-3-8b": ("huggingface.co/meta-llama/Meta-Llama-3-8B/blob/main/config.json", {
        "model_type": "llama", "hidden_act": "silu", "hidden_size": 4096,
        "intermediate_size": 14336, "max_position_embeddings": 8192,
        "num_attention_heads": 32, "num_hidden_layers": 32, "num_key_value_heads": 8,
        "tie_word_embeddings": False, "vocab_size": 128256}),
    "llama-3.2-1b": ("huggingface.co/meta-llama/Llama-3.2-1B/blob/main/config.json", {
        "model_type": "llama", "hidden_act": "silu", "hidden_size": 2048, "head_dim": 64,
        "intermediate_size": 8192, "max_position_embeddings": 131072,
        "num_attention_heads": 32, "num_hidden_layers": 16, "num_key_value_heads": 8,
        "tie_word_embeddings": True, "vocab_size": 128256}),
    "mistral-7b": ("huggingface.co/mistralai/Mistral-7B-v0.1/blob/main/config.json", {
        "model_type": "mistral", "hidden_act": "silu", "hidden_size": 4096,
        "intermediate_size": 14336, "max_position_embeddings": 32768,
        "num_attention_heads": 32, "num_hidden_layers": 32, "num_key_value_heads": 8,
        "sliding_window": 4096, "tie_word_embeddings": False, "vocab_size": 32000}),
    "qwen2.5-0.5b": ("huggingface.co/Qwen/Qwen2.5-0.5B/blob/main/config.json", {
        "model_type": "qwen2", "hidden_act": "silu", "hidden_size": 896,
        "intermediate_size": 4864, "max_position_embeddings": 32768,
        "num_attention_heads": 14, "num_hidden_layers": 24, "num_key_value_heads": 2,
        "tie_word_embeddings": True, "vocab_size": 151936}),
    "bitnet-b1.58-2b4t": ("huggingface.co/microsoft/bitnet-b1.58-2B-4T/blob/main/config.json", {
        "model_type": "bitnet", "hidden_act": "relu2", "hidden_size": 2560,
        "intermediate_size": 6912, "max_position_embeddings": 4096,
        "num_attention_heads": 20, "num_hidden_layers": 30, "num_key_value_heads": 5,
        "tie_word_embeddings": True, "vocab_size": 128256}),
    # ---- larger dense models and mixtures of experts (issue 17) ----
    "llama-3-70b": (_HF.format("meta-llama/Meta-Llama-3-70B"), {
        "model_type": "llama", "hidden_act": "silu", "hidden_size": 8192,
        "intermediate_size": 28672, "max_position_embeddings": 8192,
        "num_attention_heads": 64, "num_hidden_layers": 80, "num_key_value_heads": 8,
        "tie_word_embeddings": False, "vocab_size": 128256}),
    "llama-3.1-405b": (_HF.format("meta-llama/Llama-3.1-405B"), {
        "model_type": "llama", "hidden_act": "silu", "hidden_size": 16384,
        "intermediate_size": 53248, "max_position_embeddings": 131072,
        "num_attention_heads": 128, "num_hidden_layers": 126, "num_key_value_heads": 8,
        "tie_word_embeddings": False, "vocab_size": 128256}),
    "mixtral-8x7b": (_HF.format("mistralai/Mixtral-8x7B-v0.1"), {
        "model_type": "mixtral", "hidden_act": "silu", "hidden_size": 4096,
        "intermediate_size": 14336, "max_position_embeddings": 32768,
        "num_attention_heads": 32, "num_hidden_layers": 32, "num_key_value_heads": 8,
        "num_local_experts": 8, "num_experts_per_tok": 2, "sliding_window": None,
        "tie_word_embeddings": False, "vocab_size": 32000}),
    "qwen3-8b": (_HF.format("Qwen/Qwen3-8B"), {
        "model_type": "qwen3", "hidden_act": "silu", "hidden_size": 4096, "head_dim": 128,
        "intermediate_size": 12288, "max_position_embeddings": 40960,
        "num_attention_heads": 32, "num_hidden_layers": 36, "num_key_value_heads": 8,
        "attention_bias": False, "use_sliding_window": False, "sliding_window": None,
        "tie_word_embeddings": False, "vocab_size": 151936}),
    "qwen3-14b": (_HF.format("Qwen/Qwen3-14B"), {
        "model_type": "qwen3", "hidden_act": "silu", "hidden_size": 5120, "head_dim": 128,
        "intermediate_size": 17408, "max_position_embeddings": 40960,
        "num_attention_heads": 40, "num_hidden_layers": 40, "num_key_value_heads": 8,
        "attention_bias": False, "use_sliding_window": False, "sliding_window": None,
        "tie_word_embeddings": False, "vocab_size": 151936}),
    "qwen3-32b": (_HF.format("Qwen/Qwen3-32B"), {
        "model_type": "qwen3", "hidden_act": "silu", "hidden_size": 5120, "head_dim": 128,
        "intermediate_size": 25600, "max_position_embeddings": 40960,
        "num_attention_heads": 64, "num_hidden_layers": 64, "num_key_value_heads": 8,
        "attention_bias": False, "use_sliding_window": False, "sliding_window": None,
        "tie_word_embeddings": False, "vocab_size": 151936}),
    "qwen3-30b-a3b": (_HF.format("Qwen/Qwen3-30B-A3B"), {
        "model_type": "qwen3_moe", "hidden_act": "silu", "hidden_size": 2048,
        "head_dim": 128, "intermediate_size": 6144, "moe_intermediate_size": 768,
        "num_experts": 128, "num_experts_per_tok": 8, "decoder_sparse_step": 1,
        "mlp_only_layers": [], "max_position_embeddings": 40960,
        "num_attention_heads": 32, "num_hidden_layers": 48, "num_key_value_heads": 4,
        "attention_bias": False, "use_sliding_window": False, "sliding_window": None,
        "tie_word_embeddings": False, "vocab_size": 151936}),
    "qwen3-235b-a22b": (_HF.format("Qwen/Qwen3-235B-A22B"), {
        "model_type": "qwen3_moe", "hidden_act": "silu", "hidden_size": 4096,
        "head_dim": 128, "intermediate_size": 12288, "moe_intermediate_size": 1536,
        "num_experts": 128, "num_experts_per_tok": 8, "decoder_sparse_step": 1,
        "mlp_only_layers": [], "max_position_embeddings": 40960,
        "num_attention_heads": 64, "num_hidden_layers": 94, "num_key_value_heads": 4,
        "attention_bias": False, "use_sliding_window": False, "sliding_window": None,
        "tie_word_embeddings": False, "vocab_size": 151936}),
    # gpt-oss: experts stored in MXFP4 (quantization_config, modules_to_not_convert:
    # self_attn, router, embed_tokens, lm_head): run as --quant BF16 --override mlp=MXFP4.
    "gpt-oss-20b": (_HF.format("openai/gpt-oss-20b"), {
        "model_type": "gpt_oss", "hidden_act": "silu", "hidden_size": 2880, "head_dim": 64,
        "intermediate_size": 2880, "num_local_experts": 32, "num_experts_per_tok": 4,
        "max_position_embeddings": 131072, "num_attention_heads": 64,
        "num_hidden_layers": 24, "num_key_value_heads": 8, "attention_bias": True,
        "sliding_window": 128,
        "layer_types": ["sliding_attention", "full_attention"] * 12,
        "tie_word_embeddings": False, "vocab_size": 201088}),
    "gpt-oss-120b": (_HF.format("openai/gpt-oss-120b"), {
        "model_type": "gpt_oss", "hidden_act": "silu", "hidden_size": 2880, "head_dim": 64,
        "intermediate_size": 2880, "num_local_experts": 128, "num_experts_per_tok": 4,
        "max_position_embeddings": 131072, "num_attention_heads": 64,
        "num_hidden_layers": 36, "num_key_value_heads": 8, "attention_bias": True,
        "sliding_window": 128,
        "layer_types": ["sliding_attention", "full_attention"] * 18,
        "tie_word_embeddings": False, "vocab_size": 201088}),
}
