"""precsim.simulate(..., tp, pp, ep) routes through the CLI's run_request."""
import numpy as np
import pytest

import precsim
from precsim.codesign.commands.simulate import run_request
from precsim.simulator.parallel import ParallelLayout
from precsim.simulator.profile_loader import load_profile


def test_api_layout_equals_the_cli_path():
    h100 = load_profile("h100-sxm")
    api = precsim.simulate(h100, "llama-3-70b", "BF16", batch=4, tp=4).totals
    _, _, cli = run_request(h100, "llama-3-70b", "BF16", 4, 512, 128,
                            layout=ParallelLayout(tp=4))
    assert api["devices_per_replica"] == 4
    for key in ("ttft_s", "tpot_s", "energy_j", "memory_bytes"):
        assert api[key] == pytest.approx(cli.totals[key], rel=1e-12)


def test_api_tp_array_splits_memory_and_default_is_one_device():
    split = precsim.simulate("h100-sxm", "llama-3-70b", "BF16", batch=8,
                             tp=np.array([1, 2, 4, 8])).totals
    weights = np.asarray(split["weight_bytes"])
    assert weights[0] / weights[1] == pytest.approx(2.0, rel=0.01)  # vocab padding only
    assert list(np.asarray(split["fits"])) == [False, True, True, True]
    single = precsim.simulate("h100-sxm", "llama-3-8b", "BF16").totals
    assert "devices" not in single


def test_api_bad_degree_names_the_flag():
    with pytest.raises(precsim.InputError, match="--tp 3"):
        precsim.simulate("h100-sxm", "llama-3-8b", "BF16", tp=3)
