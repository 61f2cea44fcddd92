"""Training-step model: hand-computed FLOPs and bytes of a tiny model, properties, bad input."""
import io
import json
from contextlib import redirect_stdout

import numpy as np
import pytest

from precsim.codesign.cli import main
from precsim.simulator.errors import InputError
from precsim.simulator.models import TransformerConfig
from precsim.simulator.profile_loader import load_profile
from precsim.simulator.training import get_recipe, model_flops_per_token, training_step

# d 64, 2 blocks, 4 heads of 16, MHA, non-gated FFN 256, vocab 100, untied
TINY = TransformerConfig("tiny", n_layers=2, d_model=64, n_heads=4, n_kv_heads=4, d_ff=256,
                         vocab_size=100, gated_ffn=False, activation="gelu",
                         norm="layernorm")
SEQ, MB = 16, 2
T = SEQ * MB


def step(**kw):
    args = dict(seq=SEQ, global_batch=T * 2, devices=1, micro_batch=MB)
    args.update(kw)
    recipe = args.pop("recipe", "bf16")
    return training_step(args.pop("profile", "h100-sxm"), args.pop("model", TINY), recipe,
                         **args)


def test_flops_per_phase_by_hand():
    # block GEMM weights: qkv 64x192, o 64x64, up 64x256, down 256x64 = 49152 per block
    gemm_w = 64 * 192 + 64 * 64 + 64 * 256 + 256 * 64
    assert gemm_w == 49152
    pairs = SEQ * (SEQ + 1) / 2                           # causal (query, key) pairs
    attn = 4.0 * MB * 4 * 16 * pairs                      # QK^T and PV
    head = 2.0 * T * 100 * 64
    forward = 2 * (2.0 * T * gemm_w + attn) + head        # two blocks, then the LM head
    backward = 2 * (2 * 2.0 * T * gemm_w + 2.5 * attn) + 2 * head   # dX and dW, FA bwd
    s = step()
    assert float(s.n_micro) == 2
    assert float(s.flops["forward"]) == pytest.approx(2 * forward, rel=1e-12)
    assert float(s.flops["backward"]) == pytest.approx(2 * backward, rel=1e-12)
    assert float(s.flops["recompute"]) == 0.0
    full = step(recompute="full")
    assert float(full.flops["recompute"]) == pytest.approx(
        2 * 2 * (2.0 * T * gemm_w + attn), rel=1e-12)
    assert float(full.hfu) > float(full.mfu)


def test_model_flops_convention():
    n = TINY.n_params_non_embedding + 100 * 64            # blocks + LM head
    assert model_flops_per_token(TINY, SEQ) == 6 * n + 12 * 2 * SEQ * 64


def test_memory_bytes_by_hand():
    p = TINY.n_params_total
    s = step(zero=0)
    mem = {k: float(v) for k, v in s.memory_bytes.items()}
    assert mem["weights"] == 2 * p and mem["gradients"] == 2 * p
    assert mem["optimizer"] == 12 * p
    # kept 16-bit words per token and block (none): 4 d + (q + 2 kv) + q + w_in + d_ff
    kept = 4 * 64 + 192 + 64 + 256 + 256
    assert mem["activations"] == pytest.approx(T * (2 * kept * 2 + kept * 2), rel=1e-12)
    assert mem["logits"] == T * 100 * 6
    z3 = step(zero=3, devices=2, global_batch=T * 2)
    block = 49152
    assert float(z3.memory_bytes["optimizer"]) == 6 * p
    assert float(z3.memory_bytes["weights"]) == 2 * (p / 2 + 2 * block)


def test_optimizer_bytes_in_main_memory():
    from precsim.simulator.kernels import elementwise_cost
    s = step(zero=0)
    p = TINY.n_params_total
    ref = elementwise_cost("h100-sxm", 14.0 * p, 14.0 * p, 12.0 * p)
    assert float(s.phases_s["optimizer"]) == pytest.approx(float(ref.time_s), rel=1e-12)


def test_recomputation_trades_memory_for_time():
    runs = [step(model="llama-3.2-1b", seq=2048, global_batch=2048 * 4, micro_batch=2,
                 recompute=m) for m in ("none", "selective", "full")]
    times = [float(r.step_time_s) for r in runs]
    acts = [float(r.memory_bytes["activations"]) for r in runs]
    assert times[0] < times[1] < times[2]
    assert acts[0] > acts[1] > acts[2]
    assert float(runs[2].largest_micro_batch) > float(runs[0].largest_micro_batch)


def test_more_data_parallel_devices_lower_per_device_rate_only_through_communication():
    devices = np.array([8, 16, 32, 64, 128])
    s = training_step("h100-sxm", "llama-3-8b", "bf16", seq=4096, global_batch=4096 * 256,
                      devices=devices, zero=3, micro_batch=1)
    rate = np.asarray(s.tokens_per_s_per_device)
    comm = np.asarray(s.layout["communication_raw_s"]) / np.asarray(s.n_micro)
    for i in range(len(devices) - 1):
        if rate[i + 1] < rate[i]:
            assert comm[i + 1] > comm[i]
    # without communication (one node's worth of compute per device) the rate is flat
    compute = sum(np.asarray(s.phases_s[k]) for k in ("forward", "backward", "optimizer"))
    assert np.all(np.diff(compute * np.asarray(s.layout["dp"])) < 1e-6 * compute[0] * 256)


def test_native_format_never_slower_than_its_emulation():
    h100 = load_profile("h100-sxm")
    emulated = h100.with_overrides({
        "compute.int8": None,
        "fallbacks.int8": {"execute_as": "bf16", "convert_dtype": "fp32",
                           "convert_ops_per_element": {"value": 1, "assumed": "test"}},
        "fallbacks.ternary.execute_as": "bf16", "fallbacks.binary.execute_as": "bf16"},
        name="h100-no-int8")
    for recipe in ("fwdq:W8A8", "ternary-qat"):
        native = step(profile=h100, model="llama-3.2-1b", seq=1024, global_batch=1024 * 8,
                      micro_batch=4, recipe=recipe)
        emul = step(profile=emulated, model="llama-3.2-1b", seq=1024,
                    global_batch=1024 * 8, micro_batch=4, recipe=recipe)
        assert float(native.step_time_s) <= float(emul.step_time_s)


def test_fp8_faster_than_bf16_but_far_from_twice():
    kw = dict(model="llama-3-8b", seq=4096, global_batch=4096 * 8, devices=8, zero=3,
              micro_batch=1)
    ratio = float(step(recipe="fp8", **kw).tokens_per_s) / float(step(**kw).tokens_per_s)
    assert 1.05 < ratio < 1.6


def test_vectorised_devices_match_scalar_calls():
    kw = dict(model="llama-3.2-1b", seq=2048, zero=3, micro_batch=2)
    many = step(devices=np.array([8, 16]), global_batch=2048 * 32, **kw)
    for i, d in enumerate((8, 16)):
        one = step(devices=d, global_batch=2048 * 32, **kw)
        assert np.asarray(many.step_time_s)[i] == pytest.approx(float(one.step_time_s),
                                                                 rel=1e-12)


@pytest.mark.parametrize("kw, words", [
    (dict(profile="a100-sxm-80gb", recipe="fp8"),
     ["recipe fp8", "a100-sxm-80gb", "fp8_e4m3", "recipes it supports: bf16"]),
    (dict(tp=3, devices=3, global_batch=T * 3), ["--tp 3", "heads"]),
    (dict(pp=3, devices=3, global_batch=T * 3), ["--pp 3", "layers"]),
    (dict(devices=3, global_batch=SEQ * 4), ["not divisible", "data-parallel degree 3"]),
    (dict(global_batch=SEQ * 4 + 1), ["whole number of sequences"]),
    (dict(tp=16, devices=16), ["--tp 16", "node"]),
    (dict(recipe="fp9"), ["unknown training recipe", "fwdq:FORMAT"]),
    (dict(recompute="some"), ["--recompute", "selective"]),
])
def test_bad_input_names_the_problem(kw, words):
    with pytest.raises(InputError) as err:
        step(**kw)
    for w in words:
        assert w in str(err.value)


def test_recipe_table():
    assert get_recipe("bf16").forward == "W16A16"
    assert get_recipe("fwdq:W4A4-KV4").backward == "W16A16"
    assert get_recipe("native:W8A8").backward == "W8A8"
    with pytest.raises(InputError, match="quant"):
        get_recipe("fwdq:W3Z")


def run_cli(argv):
    buf = io.StringIO()
    with redirect_stdout(buf):
        code = main(argv)
    return code, buf.getvalue()


def test_cli_json_and_vectorised_lists():
    code, out = run_cli(["train", "--profile", "h100-sxm", "--model", "llama-3.2-1b",
                         "--recipe", "bf16,fp8", "--seq", "2048", "--global-batch",
                         "65536", "--devices", "8,16", "--zero", "3", "--json"])
    assert code == 0
    doc = json.loads(out)
    assert doc["feasible"] is True
    assert [(r["recipe"], r["devices"]) for r in doc["results"]] == [
        ("bf16", 8), ("bf16", 16), ("fp8", 8), ("fp8", 16)]
    r = doc["results"][0]
    assert r["step_time_s"] == pytest.approx(sum(r["phases_s"].values()), rel=1e-12)
    assert r["tokens_per_s"] == pytest.approx(65536 / r["step_time_s"], rel=1e-12)


def test_cli_does_not_fit_exits_3_with_what_would():
    code, out = run_cli(["train", "--profile", "h100-sxm", "--model", "llama-3-8b",
                         "--seq", "4096", "--global-batch", "65536", "--devices", "1",
                         "--json"])
    assert code == 3
    doc = json.loads(out)
    assert doc["feasible"] is False
    assert "--zero 3" in doc["reason"] or "--devices" in doc["reason"]


def test_cli_bad_recipe_exits_2(capsys):
    assert main(["train", "--profile", "a100-sxm-80gb", "--model", "llama-3.2-1b",
                 "--recipe", "fp8", "--global-batch", "8192"]) == 2
    assert "recipe fp8" in capsys.readouterr().err


def test_recipe_for_law_bits_parses_and_ties_16_bits_to_bf16():
    from precsim.simulator.training import recipe_for_bits
    assert recipe_for_bits(16, 16, 16) == "bf16"
    assert recipe_for_bits(8, 8, 8) == "fwdq:W8A8-KV8"
    assert recipe_for_bits(1.58, 8, 8) == "fwdq:W1.58A8-KV8"
    assert recipe_for_bits(12, 12, 12) == "fwdq:W16A16-KV16"
    for bits in (3, 5, 6, 7):
        get_recipe(recipe_for_bits(bits, bits, bits))


def test_token_costs_are_the_step_per_token():
    from precsim.simulator.models import model_for_params
    from precsim.simulator.training import token_costs
    n = np.array([1e9, 3e9])
    kw = dict(seq=2048, global_batch=2048 * 64, devices=8, zero=3, recompute="selective")
    per = token_costs("h100-sxm", n, "bf16", **kw)
    s = training_step("h100-sxm", model_for_params(n), "bf16", **kw)
    np.testing.assert_allclose(per["device_s_per_token"],
                               np.asarray(s.step_time_s) * 8 / (2048 * 64), rtol=1e-12)
    assert np.all(np.diff(per["device_s_per_token"]) > 0)


def test_pipeline_bubble_is_p_minus_1_over_m_plus_p_minus_1():
    s = step(model="llama-3.2-1b", seq=1024, global_batch=1024 * 16, devices=4, pp=4,
             micro_batch=2)
    m, p = float(s.n_micro), 4.0
    assert m == 8
    work = sum(float(s.phases_s[k]) for k in ("forward", "backward", "recompute", "casts"))
    bubble = float(s.phases_s["bubble"])
    assert bubble / (work + bubble) == pytest.approx((p - 1) / (m + p - 1), rel=1e-12)


def test_tensor_parallel_all_reduces_per_block():
    from precsim.simulator.collectives import Topology, collective_time
    model = "llama-3.2-1b"                                # 16 blocks, d 2048
    s = step(model=model, seq=1024, global_batch=1024 * 4, devices=2, tp=2,
             micro_batch=2, zero=0)
    one = collective_time(Topology.of(load_profile("h100-sxm")), "all_reduce",
                          2 * 1024 * 2048 * 2.0, 2)
    assert float(s.phases_s["communication"]) == pytest.approx(
        4 * 16 * float(s.n_micro) * float(one), rel=1e-12)
