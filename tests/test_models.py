"""Model shapes: built-ins against their published parameter counts, HF import, family."""
import json

import numpy as np
import pytest

from precsim.simulator.errors import InputError
from precsim.simulator.models import (TransformerConfig, get_model, list_models, load_hf_config,
                              model_for_params)


@pytest.mark.parametrize("name, total", [
    ("llama-2-7b", 6_738_415_616),     # the HF model card's parameter count
    ("llama-3-8b", 8_030_261_248),
    ("llama-3.2-1b", 1_235_814_400),
    ("mistral-7b", 7_241_732_096),
    ("qwen2.5-0.5b", 494_032_768),
])
def test_builtin_parameter_counts(name, total):
    assert get_model(name).n_params_total == total


def test_builtin_shapes():
    llama = get_model("Llama-2-7B")
    assert (llama.n_layers, llama.d_model, llama.n_heads, llama.n_kv_heads, llama.d_ff) == \
        (32, 4096, 32, 32, 11008)
    assert llama.n_params_non_embedding == 32 * (4 * 4096**2 + 3 * 4096 * 11008)
    assert llama.kv_elements_per_token() * 2 == 524288  # 0.5 MiB of bf16 KV per token
    l3 = get_model("llama-3-8b")
    assert l3.kv_dim == 1024 and l3.vocab_size == 128256
    small = get_model("llama-3.2-1b")
    assert small.hd == 64 and small.tied_embeddings
    assert get_model("mistral-7b").sliding_window == 4096
    assert get_model("llama-3-8b").sliding_window is None
    bitnet = get_model("bitnet-b1.58-2b4t")
    assert bitnet.activation == "relu2" and bitnet.sub_norms and bitnet.gated_ffn
    assert (bitnet.d_model, bitnet.n_layers, bitnet.n_kv_heads) == (2560, 30, 5)
    assert {"llama-2-7b", "llama-3-8b", "llama-3.2-1b", "mistral-7b",
                                  "qwen2.5-0.5b", "bitnet-b1.58-2b4t"} <= set(list_models())


def test_hf_config_round_trip(tmp_path):
    cfg = {"model_type": "llama", "hidden_size": 512, "intermediate_size": 1376,
           "num_attention_heads": 8, "num_hidden_layers": 4, "num_key_value_heads": 2,
           "vocab_size": 1000, "hidden_act": "silu", "tie_word_embeddings": True}
    path = tmp_path / "tiny" / "config.json"
    path.parent.mkdir()
    path.write_text(json.dumps(cfg))
    model = load_hf_config(path.parent)
    assert model.name == "tiny" and model.n_kv_heads == 2 and model.tied_embeddings
    assert get_model(str(path)).d_ff == 1376
    gpt2 = {"model_type": "gpt2", "n_embd": 768, "n_layer": 12, "n_head": 12,
            "vocab_size": 50257, "activation_function": "gelu_new"}
    (tmp_path / "gpt2.json").write_text(json.dumps(gpt2))
    g = load_hf_config(tmp_path / "gpt2.json")
    assert not g.gated_ffn and g.d_ff == 3072 and g.norm == "layernorm"
    assert g.n_params_non_embedding == 12 * (4 * 768**2 + 2 * 768 * 3072)


@pytest.mark.parametrize("patch, match", [
    ({"num_attention_heads": 7}, "does not divide d_model"),
    ({"num_key_value_heads": 3}, "n_kv_heads=3 does not divide"),
    ({"hidden_size": 0}, "must be a positive integer"),
    ({"hidden_act": "swish9"}, "not supported"),
    ({"num_hidden_layers": None}, "missing num_hidden_layers"),
])
def test_hf_config_errors(tmp_path, patch, match):
    cfg = {"hidden_size": 512, "intermediate_size": 1376, "num_attention_heads": 8,
           "num_hidden_layers": 4, "vocab_size": 1000}
    cfg.update(patch)
    path = tmp_path / "config.json"
    path.write_text(json.dumps(cfg))
    with pytest.raises(InputError, match=match):
        load_hf_config(path)


def test_bad_json_and_missing_file(tmp_path):
    (tmp_path / "config.json").write_text("{not json")
    with pytest.raises(InputError, match="not valid JSON"):
        load_hf_config(tmp_path)
    with pytest.raises(InputError, match="not found"):
        load_hf_config(tmp_path / "nope.json")


def test_unknown_model_suggests():
    with pytest.raises(InputError, match="did you mean llama-2-7b"):
        get_model("llama2-7b")


def test_parametric_family_exact_and_vectorised():
    n = np.geomspace(1e7, 1e11, 9)
    model = model_for_params(n)
    assert np.allclose(model.n_params_non_embedding, n, rtol=1e-12)
    assert np.allclose(model.d_model / model.n_layers, 128.0)
    # Llama-2-7B (MHA): 6.476e9 non-embedding parameters, d = 4096, 32 layers
    seven = model_for_params(6.476e9, gqa_ratio=1.0)
    assert abs(seven.d_model - 4096) / 4096 < 0.01 and abs(seven.n_layers - 32) < 0.5
    real = model_for_params(6.476e9, gqa_ratio=1.0, round_shape=True)
    assert real.is_discrete and real.d_model == 4096 and real.n_layers == 32
    mha = model_for_params(n, gqa_ratio=1.0)
    assert np.allclose(mha.n_params_non_embedding, n)


def test_parametric_family_uses_gqa_by_default():
    # n_heads/4 KV heads (Llama-3-8B 32/8): c = 2 + 2/4 + 3*8/3 = 10.5, d = (N*128/c)^(1/3)
    model = model_for_params(1e9)
    assert model.n_kv_heads == pytest.approx(model.n_heads / 4)
    assert model.d_model == pytest.approx((1e9 * 128 / 10.5) ** (1 / 3))
    real = model_for_params(8e9, round_shape=True)
    assert real.n_heads % 4 == 0 and real.n_kv_heads * 4 == real.n_heads


def test_parametric_family_errors():
    with pytest.raises(InputError, match="positive"):
        model_for_params(np.array([1e9, -1.0]))
    with pytest.raises(InputError, match="scalar"):
        model_for_params(np.array([1e9, 2e9]), round_shape=True)


def test_block_repeat_counts_stored_weights_once():
    base = get_model("llama-3.2-1b")
    shared = TransformerConfig(**{**base.__dict__, "block_repeat": 2, "name": "shared"})
    assert shared.n_params_total == base.n_params_total
    assert shared.kv_elements_per_token() == 2 * base.kv_elements_per_token()
    with pytest.raises(InputError, match="block_repeat"):
        TransformerConfig(**{**base.__dict__, "block_repeat": 0})
