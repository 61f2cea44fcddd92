"""Board power model (simulator.power): hand-computed values, cap and throttling, idle
floor, energy = power x time, monotone in work, sustained envelopes, schema errors."""
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from precsim.simulator.cost import decode_step_cost, simulate
from precsim.simulator.errors import InputError
from precsim.simulator.hardware import as_hardware
from precsim.simulator.power import dynamic_split, power_and_energy, power_params
from precsim.simulator.profile_loader import list_profiles, load_profile
from precsim.simulator.profiles import profile_from_mapping

H100 = load_profile("h100-sxm")  # static 72 W, active 331 W, cap 700 W
PHONE = load_profile("snapdragon-8-gen3")  # 1 / 2.5 W; 10 W for 30 s, then 5 W
PROFILES = list_profiles()

times = st.floats(1e-6, 1e3)
energies = st.floats(0.0, 1e6)


def test_unthrottled_by_hand():
    r = power_and_energy(H100, 1.0, {"compute": 60.0, "memory_hbm": 40.0})
    assert r.average_power_w == pytest.approx(331 + 100)
    assert r.time_s == 1.0 and r.clock_fraction == 1.0 and not r.throttled
    assert r.split == pytest.approx({"idle": 72.0, "active": 259.0, "compute": 60.0,
                                     "memory_hbm": 40.0})
    assert r.static_j == pytest.approx(331.0) and r.dynamic_j == pytest.approx(100.0)


def test_throttled_by_hand():
    """700 J in 1 s: 331 + 700 = 1031 W > 700 W; s = ((700 - 72) / (1031 - 72))^(1/3)."""
    r = power_and_energy(H100, 1.0, 700.0)
    s = (628 / 959) ** (1 / 3)
    assert r.throttled and r.clock_fraction == pytest.approx(s)
    assert r.time_s == pytest.approx(1 / s)
    assert r.energy_j == pytest.approx(72 / s + 959 * s * s)
    assert r.average_power_w == pytest.approx(700.0)


def test_idle_floor_when_nothing_runs():
    r = power_and_energy(H100, 0.0, 0.0, wall_time_s=10.0)
    assert r.energy_j == pytest.approx(720.0) and r.average_power_w == pytest.approx(72.0)
    assert r.split["idle"] == pytest.approx(720.0) and r.split["active"] == 0.0
    assert power_and_energy(H100, 0.0, 0.0, devices=4).average_power_w == pytest.approx(288.0)


def test_idle_gaps_add_the_floor():
    busy = power_and_energy(H100, 2.0, 50.0)
    gapped = power_and_energy(H100, 2.0, 50.0, wall_time_s=5.0)
    assert gapped.energy_j == pytest.approx(busy.energy_j + 72.0 * 3.0)
    assert gapped.average_power_w == pytest.approx(gapped.energy_j / 5.0)


@settings(max_examples=200, deadline=None)
@given(t=times, e=energies, n=st.integers(1, 8), wall=st.floats(0.0, 2e3),
       k=st.integers(0, len(PROFILES) - 1))
def test_energy_is_average_power_times_time_and_below_cap(t, e, n, wall, k):
    p = PROFILES[k]
    r = power_and_energy(p, t, e, devices=n, wall_time_s=wall)
    span = max(wall, r.time_s)
    assert r.energy_j == pytest.approx(r.average_power_w * span, rel=1e-9)
    assert r.energy_j == pytest.approx(sum(r.split.values()), rel=1e-9)
    busy_w = (r.energy_j - n * p.power.static.value * (span - r.time_s)) / (n * r.time_s)
    assert busy_w <= p.power.tdp.value * (1 + 1e-9)  # per device, never above the cap
    assert r.average_power_w >= n * p.power.static.value * (1 - 1e-9)  # idle floor


@settings(max_examples=200, deadline=None)
@given(t=times, e=energies, extra=st.floats(0.0, 1e6), k=st.integers(0, len(PROFILES) - 1))
def test_energy_is_monotone_in_dynamic_work(t, e, extra, k):
    """More bytes or ops = more dynamic energy at the same busy time: never less energy,
    never less time."""
    lo, hi = (power_and_energy(PROFILES[k], t, x) for x in (e, e + extra))
    assert hi.energy_j >= lo.energy_j * (1 - 1e-12)
    assert hi.time_s >= lo.time_s * (1 - 1e-12)


@settings(max_examples=200, deadline=None)
@given(t=times, e=energies, k=st.integers(0, len(PROFILES) - 1))
def test_throttling_only_when_the_cap_binds(t, e, k):
    p = PROFILES[k]
    r = power_and_energy(p, t, e)
    cap = (p.power.sustained.value if p.power.sustained and t > p.power.burst.value
           else p.power.tdp.value)
    binds = p.power.active.value + e / t > cap
    assert bool(r.throttled) == binds
    if binds:
        assert r.average_power_w == pytest.approx(cap, rel=1e-9) and r.time_s > t
    else:
        assert r.time_s == t and r.clock_fraction == 1.0
        assert r.energy_j == pytest.approx(p.power.active.value * t + e, rel=1e-12)


def test_sustained_envelope_after_burst():
    """5 W dynamic on the phone: 2.5 + 5 = 7.5 W fits the 10 W burst ceiling for 10 s but
    not the 5 W sustained limit over 100 s."""
    short, long = (power_and_energy(PHONE, t, 5.0 * t) for t in (10.0, 100.0))
    assert not short.throttled and short.average_power_w == pytest.approx(7.5)
    assert long.throttled and long.average_power_w == pytest.approx(5.0)
    # a short step inside a long run (a serving iteration) gets the sustained cap
    step = power_and_energy(PHONE, 0.01, 0.05, run_time_s=100.0)
    assert step.throttled and step.average_power_w == pytest.approx(5.0)


def test_vectorised_equals_scalar_calls():
    t, e = np.array([0.5, 1.0, 2.0]), np.array([10.0, 900.0, 0.0])
    arr = power_and_energy(H100, t, e, devices=2)
    for i in range(3):
        one = power_and_energy(H100, t[i], e[i], devices=2)
        assert arr.energy_j[i] == one.energy_j and arr.time_s[i] == one.time_s
    params = power_params(np.array(PROFILES, dtype=object))
    assert params.cap_w.shape == (len(PROFILES),)


def test_several_devices_count_every_device():
    one = power_and_energy(H100, 1.0, 100.0)
    two = power_and_energy(H100, 1.0, 200.0, devices=2)
    assert two.energy_j == pytest.approx(2 * one.energy_j)
    assert two.average_power_w == pytest.approx(2 * one.average_power_w)


def test_bad_input_names_the_value():
    with pytest.raises(InputError, match="busy time must be >= 0"):
        power_and_energy(H100, -1.0, 1.0)
    with pytest.raises(InputError, match="dynamic energy must be >= 0"):
        power_and_energy(H100, 1.0, -1.0)


def test_simulate_splits_energy_and_stays_under_the_cap():
    for p in PROFILES:
        t = simulate(p, "llama-3.2-1b", "W16A16", 8, 256, 64).totals
        assert t["average_power_w"] <= p.power.tdp.value * (1 + 1e-9)
        parts = t["energy_static_j"] + t["energy_compute_j"] + sum(
            t["energy_memory_j"].values())
        assert parts == pytest.approx(t["energy_j"], rel=1e-9)
        assert t["energy_per_request_j"] == pytest.approx(t["energy_j"] / 8)


def test_simulate_energy_grows_with_work():
    short = simulate(H100, "llama-3.2-1b", "W16A16", 4, 256, 32).totals
    long = simulate(H100, "llama-3.2-1b", "W16A16", 4, 256, 64).totals
    assert long["energy_j"] > short["energy_j"]
    assert long["energy_compute_j"] > short["energy_compute_j"]
    assert long["energy_memory_j"]["hbm"] > short["energy_memory_j"]["hbm"]


def _power_error(**power):
    doc = H100.raw()
    doc["power"] = {k: {"value": v, "assumed": "test"} for k, v in power.items()}
    with pytest.raises(InputError) as exc:
        profile_from_mapping(doc, "test.yaml")
    return str(exc.value)


def test_schema_orders_the_envelope():
    assert "need static <= active < tdp, got static 72.0 W, active 800.0 W" in _power_error(
        tdp="700 W", static="72 W", active="800 W")
    assert "sustained and burst go together" in _power_error(
        tdp="700 W", static="72 W", active="331 W", sustained="500 W")
    assert "need active < sustained <= tdp" in _power_error(
        tdp="700 W", static="72 W", active="331 W", sustained="300 W", burst="10 s")


def test_engine_tile_work_draws_the_vector_engines_power_by_hand():
    # the engine's per-expert tile time (overheads.expert_tile_rows) on its own: board
    # power = active 331 W + 66.9 T x 0.8 ops/s x 2.26 pJ = 331 + 120.9552 W, below the cap
    tiled = H100.with_overrides({"overheads.expert_tile_rows": {
        "fp8_e4m3": {"value": 100, "assumed": "test"}}})
    base, more = (decode_step_cost(p, "qwen3-235b-a22b", "FP8", 8, 600)
                  for p in (H100, tiled))
    t = more.time_s - base.time_s
    dyn = {k: v - dynamic_split(as_hardware(H100), base)[k]
           for k, v in dynamic_split(as_hardware(tiled), more).items()}
    r = power_and_energy(H100, t, dyn)
    assert r.average_power_w == pytest.approx(331.0 + 120.9552, rel=1e-9)
    assert r.energy_j == pytest.approx(r.average_power_w * r.time_s, rel=1e-12)
    assert not r.throttled
    assert dyn["memory_hbm"] == pytest.approx(0.0, abs=1e-9)


@settings(max_examples=60, deadline=None)
@given(st.lists(times, min_size=2, max_size=2), st.lists(energies, min_size=4, max_size=4),
       st.sampled_from(["h100-sxm", "snapdragon-8-gen3", "a100-sxm-80gb"]))
def test_both_phases_in_one_call_equal_one_call_each(t, e, name):
    """power_per_phase (simulate's prefill and decode along a phase axis) is each phase's
    own power_and_energy, bit for bit (values and types), throttled or not."""
    from precsim.simulator.power import power_per_phase
    hw = as_hardware(load_profile(name))
    dyn = ({"compute": e[0], "memory_hbm": e[1]}, {"compute": e[2], "memory_hbm": e[3]})
    for got, want in zip(power_per_phase((hw, hw), t, dyn),
                         (power_and_energy(hw, t[i], dyn[i]) for i in range(2))):
        for field in ("time_s", "energy_j", "average_power_w", "clock_fraction",
                      "throttled"):
            a, b = getattr(got, field), getattr(want, field)
            assert type(a) is type(b) and (a == b or (np.isnan(a) and np.isnan(b))), field
        assert list(got.split) == list(want.split)
        assert all(got.split[k] == want.split[k] for k in got.split)


def test_phases_of_different_shapes_are_priced_apart():
    """A vectorised request's prefill (no decode-step axis) and decode keep their shapes."""
    from precsim.simulator.power import power_per_phase
    hw = as_hardware(H100)
    t = (np.array([[0.5], [1.0]]), np.array([[0.5, 2.0], [1.0, 3.0]]))
    dyn = ({"compute": 400.0 * t[0]}, {"compute": 100.0 * t[1]})
    pre, dec = power_per_phase((hw, hw), t, dyn)
    assert np.shape(pre.time_s) == (2, 1) and np.shape(dec.time_s) == (2, 2)
    assert np.array_equal(dec.energy_j, power_and_energy(hw, t[1], dyn[1]).energy_j)


@settings(max_examples=80, deadline=None)
@given(st.one_of(st.just(0.0), times), energies, energies, st.integers(1, 8),
       st.one_of(st.none(), times), st.one_of(st.none(), times),
       st.sampled_from(["h100-sxm", "snapdragon-8-gen3", "a100-sxm-80gb"]),
       st.sampled_from([float, np.float64]))
def test_numbers_price_as_arrays(t, e0, e1, devices, wall, run, name, kind):
    """Numbers (Python floats, numpy scalars; scalar simulate's power) are priced on
    Python floats: bit for bit each element of the same inputs as arrays, throttled
    (h100 at high energy, the phone past its burst) or not, with a wall or run time."""
    hw = as_hardware(load_profile(name))
    got = power_and_energy(hw, kind(t), {"compute": kind(e0), "memory_hbm": kind(e1)},
                           devices, wall_time_s=wall, run_time_s=run)
    arrays = power_and_energy(hw, np.array([t, 1.0]), {"compute": np.array([e0, 0.0]),
                                                       "memory_hbm": np.array([e1, 0.0])},
                              np.array([devices, 1]),
                              wall_time_s=None if wall is None else np.array([wall, 1.0]),
                              run_time_s=None if run is None else np.array([run, 1.0]))
    for field in ("time_s", "energy_j", "average_power_w", "clock_fraction", "throttled"):
        a, b = getattr(got, field), getattr(arrays, field)[0]
        assert np.ndim(a) == 0 and (a == b or (np.isnan(a) and np.isnan(b))), field
    assert list(got.split) == list(arrays.split)
    assert all(got.split[k] == arrays.split[k][0] for k in got.split)


def test_add_all_of_numbers_adds_as_numpy_does():
    """roofline.add_all of Python numbers (the power split's static share) gives what the
    numpy sum gives: the same double as a numpy scalar (ints alone: numpy's integer)."""
    from precsim.simulator.roofline import add_all
    for values in ([0.1, 0.2, 0.3], [1, 2.5, 1e-17], [3, 4]):
        got, expected = add_all(values), sum(np.asarray(v) for v in values)
        assert got == expected and type(got) is type(expected)


@given(st.one_of(st.floats(allow_nan=True, allow_infinity=True), st.sampled_from([-0.0, 0.0])))
def test_clip_negative_of_a_double_is_np_maximum(x):
    """`dynamic_split`'s clip of a numpy double picks what np.maximum(x, 0.0) gives: the
    same value, sign of zero and type (NaN kept); arrays go through np.maximum."""
    from precsim.simulator.power import _clip_negative
    got, want = _clip_negative(np.float64(x)), np.maximum(np.float64(x), 0.0)
    assert type(got) is type(want) is np.float64
    assert np.array_equal(got, want, equal_nan=True) and np.signbit(got) == np.signbit(want)
    arr = np.array([x, -x, 0.0])
    assert np.array_equal(_clip_negative(arr), np.maximum(arr, 0.0), equal_nan=True)
