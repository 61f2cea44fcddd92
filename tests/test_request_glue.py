"""The request around the passes (issue 19, ninth round): a scalar request's totals, the
runtime check kept per (runtime, profile) pair, the model's stated approximations."""
import numpy as np
import pytest

import precsim
from precsim.simulator.errors import InputError
from precsim.simulator.runtime import apply_runtime


def _leaves(totals: dict):
    for key, value in totals.items():
        if key in ("runtime", "approximations"):  # stated by the API, not computed
            continue
        if isinstance(value, dict):
            for name, v in value.items():
                yield f"{key}.{name}", v
        else:
            yield key, value


@pytest.mark.parametrize(("profile", "model", "quant", "gen"), [
    ("a100-sxm-80gb", "llama-2-7b", "W16A16", 128),   # midpoint decode rule
    ("h100-sxm", "mixtral-8x7b", "W4A16-g128", 1),     # no decode step: NaN totals
    ("snapdragon-8-gen3", "llama-3.2-1b", "W4A16-g128", 40),  # a SoC, exact steps
])
def test_scalar_totals_are_numpy_scalars_equal_to_the_array_request(profile, model, quant,
                                                                    gen):
    """A scalar request's totals (numbers: power on Python floats, then numpy doubles up
    front, no final conversion) are numpy doubles / booleans: the type of their element of
    the same request with a one-element batch array (the array path, converted at the end;
    its formulas' array arithmetic may round apart in the last bit) and the value and type
    of the request with a 0-d batch."""
    one = precsim.simulate(profile, model, quant, batch=4, prompt=300, gen=gen).totals
    arr = precsim.simulate(profile, model, quant, batch=np.array([4]), prompt=300,
                           gen=gen).totals
    zero_d = precsim.simulate(profile, model, quant, batch=np.array(4), prompt=300,
                              gen=gen).totals
    for (key, v), (_, a), (_, z) in zip(_leaves(one), _leaves(arr), _leaves(zero_d)):
        a = np.asarray(a).reshape(-1)[0]  # batch-free totals are numbers there too
        assert type(v) in (np.float64, np.bool_), key
        assert type(v) is type(a) is type(z), key
        assert v == z or (np.isnan(v) and np.isnan(z)), key
        assert np.allclose(v, a, rtol=1e-12, atol=0.0, equal_nan=True), key
    assert np.isnan(one["tpot_s"]) == (gen == 1)


def test_a_reference_execution_is_kept_and_a_refused_runtime_raises_each_time():
    """apply_runtime keeps the device-kind check and a reference runtime's execution per
    (runtime, profile) object pair; an error is never kept."""
    a100 = precsim.load_profile("a100-sxm-80gb")
    first = apply_runtime(None, a100, "W16A16")
    assert apply_runtime("reference", a100, "W4A16-g128") is first
    assert first.profile is a100 and first.flash and first.fused_dequant
    assert first.approximations == ()
    edited = a100.with_overrides({}, name="a100-copy")
    assert apply_runtime(None, edited, "W16A16").profile is edited
    host = precsim.load_profile("host")
    for _ in range(2):
        with pytest.raises(InputError, match="runtime vllm runs on gpu; profile host is a cpu"):
            apply_runtime("vllm", host, "W16A16")
    assert apply_runtime("vllm", a100, "W16A16").runtime.name == "vllm"


def test_stated_approximations_are_a_new_list_per_request():
    """The model's notes (its own, the MoE routing's) are kept per model object; each
    request's totals get a list of their own."""
    first = precsim.simulate("h100-sxm", "mixtral-8x7b", "W4A16-g128", batch=2)
    notes = first.totals["approximations"]
    assert any(n.startswith("MoE: uniform top-k routing") for n in notes)
    notes.clear()
    again = precsim.simulate("h100-sxm", "mixtral-8x7b", "W4A16-g128", batch=2)
    assert again.totals["approximations"] and again.totals["approximations"] is not notes
    dense = precsim.simulate("a100-sxm-80gb", "llama-2-7b", batch=2).totals
    assert not any(n.startswith("MoE:") for n in dense.get("approximations", []))
