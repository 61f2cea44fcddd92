"""Deployment sizing by simulation: monotone in load, infeasible SLOs, format comparison."""
import math

import pytest

from precsim.simulator.des.sizing import SLO, compare_sizing, size_deployment, sizing_table
from precsim.simulator.errors import InputError

PROFILE, MODEL = "h100-sxm", "llama-3.2-1b"
KW = dict(n_requests=300, seed=3, prompt_tokens=256, output_tokens=32, max_batch=16)


def test_devices_are_monotone_in_qps():
    slo = SLO(ttft=0.05, tpot=0.01)
    devices = [size_deployment(PROFILE, MODEL, "W4A16-g128", qps, slo, **KW).devices
               for qps in (5, 40, 160, 640)]
    assert all(d is not None for d in devices)
    assert devices == sorted(devices)
    assert devices[0] == 1 and devices[-1] > devices[0]


def test_result_is_the_fewest_devices_meeting_the_slo():
    slo = SLO(ttft=0.05, tpot=0.01)
    result = size_deployment(PROFILE, MODEL, "W4A16-g128", 300.0, slo, **KW)
    trials = result.trials.set_index("devices")
    assert trials.loc[result.devices, "meets_slo"]
    if result.devices > 1:
        assert not trials.loc[result.devices - 1, "meets_slo"]
    assert result.summary["ttft_p99_s"] <= 0.05
    assert result.per_device_qps == pytest.approx(300.0 / result.devices)


def test_slo_below_a_lone_request_is_infeasible():
    result = size_deployment(PROFILE, MODEL, "W4A16-g128", 10.0,
                             SLO(ttft=1e-6, tpot=1.0), **KW)
    assert result.devices is None
    assert "not met even" in result.reason


def test_weights_that_do_not_fit_are_reported():
    result = size_deployment("rtx-4090", "llama-2-7b", "FP32", 1.0, SLO(ttft=1.0, tpot=1.0), **KW)
    assert result.devices is None and "do not fit" in result.reason


def test_compare_formats_side_by_side():
    slo = SLO(ttft=0.05, tpot=0.01)
    results, best = compare_sizing(PROFILE, MODEL, ["W4A16-g128", "BF16"], 200.0, slo, **KW)
    table = sizing_table(results)
    assert list(table["quant"]) == ["W4A16-g128", "BF16"]
    assert best.devices == min(r.devices for r in results)
    assert {"devices", "percentile", "ttft_p99_s", "tpot_p99_s",
            "energy_per_token_j"} <= set(table.columns)


@pytest.mark.parametrize("ttft,tpot", [(0, 1.0), (-1.0, 1.0), (1.0, math.nan)])
def test_bad_slo(ttft, tpot):
    with pytest.raises(InputError, match="SLO"):
        SLO.of(ttft=ttft, tpot=tpot)


def test_zero_qps_is_an_error():
    with pytest.raises(InputError, match="qps"):
        size_deployment(PROFILE, MODEL, "BF16", 0.0, SLO(ttft=1.0, tpot=1.0), **KW)
