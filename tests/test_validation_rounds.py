"""validation/rounds.py: interleaved rounds, drift correction, rejection, noise.

Fake timings only (no kernel is run): each job has a true time; a round's machine
state multiplies it and the reference kernels alike, as a busy neighbour would.
"""
import math

import pytest
from hypothesis import given, settings, strategies as st

from precsim.validation.bench import TINY, Timing
from precsim.validation.rounds import (CALIBRATION, HELD_OUT, Job, interleave, iqr_pct,
                                       plan_rounds, run_rounds)


def _job(key, group=CALIBRATION, bound="memory"):
    return Job(key, group, bound, build=lambda: (lambda: None), settings=TINY)


def _timing(t, samples=None):
    samples = tuple(samples or (t, t, t))
    return Timing(median_s=t, spread=0.0, iqr_rel=0.0, repeats=len(samples), calls=3,
                  best_s=t, samples=samples)


class Machine:
    """Round k runs at slow[k] (stream) / slow_gemm[k] (compute) of the true speed;
    counts the references measured so far to know the round."""

    def __init__(self, truth, slow, slow_gemm=None):
        self.truth, self.slow = truth, list(slow)
        self.slow_gemm = list(slow_gemm or slow)
        self.round = -1

    def reference(self):
        self.round += 1
        k = min(self.round, len(self.slow) - 1)
        return {"stream": 1e-3 * self.slow[k], "gemm": 2e-3 * self.slow_gemm[k]}

    def measure(self, job):
        k = min(self.round, len(self.slow) - 1)
        factor = self.slow[k] if job.bound == "memory" else self.slow_gemm[k]
        return _timing(self.truth[job.key] * factor), 2


def test_interleave_alternates_and_appends_the_rest():
    assert interleave([1, 2, 3], ["a"]) == [1, "a", 2, 3]
    assert interleave([], ["a", "b"]) == ["a", "b"]


def test_rounds_alternate_calibration_and_held_out_and_cover_every_job_per_pass():
    jobs = [_job(f"c{i}") for i in range(4)] + [_job(f"h{i}", HELD_OUT) for i in range(4)]
    rounds = plan_rounds(jobs, passes=2, slices=2)
    assert [[j.key for j in r] for r in rounds] == [["c0", "h0", "c2", "h2"],
                                                    ["c1", "h1", "c3", "h3"]] * 2
    for r in rounds:
        groups = [j.group for j in r]
        assert all(a != b for a, b in zip(groups, groups[1:]))
    once = Job("once", CALIBRATION, "memory", lambda: (lambda: None), TINY, passes=1)
    rounds = plan_rounds([once] + jobs, passes=2, slices=2)
    assert [sum(j.key == "once" for j in r) for r in rounds] == [1, 0, 0, 0]


def test_a_2x_slowed_round_is_corrected_without_retries():
    truth = {"mem": 4e-3, "cpu": 1e-3}
    jobs = [_job("mem", bound="memory"), _job("cpu", HELD_OUT, bound="compute")]
    machine = Machine(truth, [1.0, 1.0, 2.0])
    res = run_rounds(jobs, machine.reference, machine.measure, passes=3, slices=1,
                     max_retries=0)
    # median reference = the unslowed one, so the slow round's times are halved
    for key, t in truth.items():
        assert res.result(key)["best_s"] == pytest.approx(t)
        assert res.result(key)["spread"] == pytest.approx(0.0)
    assert res.rounds_rejected == 1 and res.rounds_drifting == 1
    assert res.drift_pct["stream"] == pytest.approx(100.0)


def test_a_2x_slowed_round_is_rejected_and_re_measured():
    truth = {"a": 3e-3, "b": 5e-3}
    jobs = [_job("a"), _job("b", HELD_OUT)]
    # rounds 0..2 as planned (round 1 slow), then the retry of slot 1 at full speed
    machine = Machine(truth, [1.0, 2.0, 1.0, 1.0])
    res = run_rounds(jobs, machine.reference, machine.measure, passes=3, slices=1)
    assert len(res.attempts) == 4 and res.attempts[3].slot == 1
    assert res.kept == (0, 3, 2)
    assert res.rounds_rejected == 1 and res.rounds_drifting == 0
    assert res.summary()["drift_pct"] == pytest.approx(0.0)
    for key, t in truth.items():
        assert res.result(key)["best_s"] == pytest.approx(t)


def test_each_reference_corrects_its_own_bound():
    truth = {"mem": 1e-3, "cpu": 1e-3}
    jobs = [_job("mem", bound="memory"), _job("cpu", bound="compute")]
    machine = Machine(truth, slow=[1.0, 1.5, 1.0], slow_gemm=[1.0, 1.0, 1.0])
    raw = Machine(truth, slow=[1.0, 1.5, 1.0], slow_gemm=[1.0, 1.0, 1.0])
    res = run_rounds(jobs, machine.reference, machine.measure, passes=3, max_retries=0)
    assert res.result("mem")["best_s"] == pytest.approx(1e-3)
    assert res.result("cpu")["best_s"] == pytest.approx(1e-3)
    # the memory-bound job was slowed in round 1: without the stream reference's
    # correction its times would be 1, 1.5, 1 ms
    raw.reference()
    raw.round = 1
    assert raw.measure(jobs[0])[0].best_s == pytest.approx(1.5e-3)


@pytest.mark.parametrize("slow, rejected", [(1.19, 0), (1.21, 1), (0.79, 1), (0.81, 0)])
def test_rejection_threshold_is_relative_to_the_median_reference(slow, rejected):
    machine = Machine({"a": 1e-3}, [1.0, 1.0, 1.0, slow, 1.0])
    res = run_rounds([_job("a")], machine.reference, machine.measure, passes=4,
                     threshold=0.2, max_retries=1)
    assert res.rounds_rejected == rejected
    assert len(res.attempts) == 4 + rejected


def test_retries_are_bounded_when_a_round_never_settles():
    class Stuck(Machine):  # the second slot's rounds are always 3x slow
        def reference(self):
            self.round += 1
            self.slot_slow = 3.0 if self.round in (1, 3, 4) else 1.0
            return {"stream": 1e-3 * self.slot_slow, "gemm": 1e-3 * self.slot_slow}

        def measure(self, job):
            return _timing(self.truth[job.key] * self.slot_slow), 1

    jobs = [_job("a"), _job("b"), _job("c")]
    machine = Stuck({"a": 1e-3, "b": 2e-3, "c": 1e-3}, [1.0])
    res = run_rounds(jobs, machine.reference, machine.measure, passes=1, slices=3)
    assert [a.slot for a in res.attempts] == [0, 1, 2, 1]  # budget: half the rounds
    machine = Stuck({"a": 1e-3, "b": 2e-3, "c": 1e-3}, [1.0])
    res = run_rounds(jobs, machine.reference, machine.measure, passes=1, slices=3,
                     max_retries=2, retry_budget=10)
    assert [a.slot for a in res.attempts] == [0, 1, 2, 1, 1]  # two retries of slot 1
    assert res.rounds_drifting == 1 and res.rounds_rejected == 3
    assert res.result("b")["best_s"] == pytest.approx(2e-3)  # corrected all the same
    assert "rounds_drifting" in res.summary()


def test_noise_is_iqr_over_median_of_the_repeats_by_hand():
    assert iqr_pct([1, 2, 3, 4, 5]) == pytest.approx(100 * (4 - 2) / 3)
    assert iqr_pct([2.0]) == 0.0
    machine = Machine({"a": 1.0}, [1.0])
    res = run_rounds([_job("a")], machine.reference,
                     lambda job: (_timing(1.0, samples=(0.9, 1.0, 1.3)), 1), passes=1)
    # percentiles of (0.9, 1.0, 1.3): 0.95 and 1.15 around the median 1.0
    assert res.result("a")["noise_pct"] == pytest.approx(20.0)


def test_a_job_that_cannot_run_is_skipped_with_its_error_and_not_retried():
    calls = []

    def measure(job):
        calls.append(job.key)
        if job.key == "bad":
            raise RuntimeError("kernel missing here\nmore")
        return _timing(1e-3), 1

    res = run_rounds([_job("ok"), _job("bad", HELD_OUT)],
                     lambda: {"stream": 1.0, "gemm": 1.0}, measure, passes=2)
    assert calls.count("bad") == 1 and calls.count("ok") == 2
    bad = res.result("bad")
    assert bad["error"] == "RuntimeError: kernel missing here" and math.isnan(bad["best_s"])
    assert res.result("ok")["rounds"] == 2


def test_progress_reports_each_round_with_a_growing_count():
    seen = []
    machine = Machine({"a": 1e-3, "b": 1e-3}, [1.0, 2.0, 1.0])
    run_rounds([_job("a"), _job("b", HELD_OUT)], machine.reference, machine.measure,
               passes=2, on_progress=lambda stage, done, total: seen.append(
                   (stage, done, total)))
    assert seen[0] == ("round 1 (2 cases)", 0, 4)
    assert [d for _, d, _ in seen] == sorted(d for _, d, _ in seen)
    assert seen[-1][0] == "measured" and seen[-1][1] == seen[-1][2]


@settings(max_examples=40, deadline=None)
@given(st.lists(st.floats(0.5, 3.0), min_size=3, max_size=7))
def test_uniform_slowdowns_are_removed_whatever_the_rounds(slow):
    """Property: when the job slows exactly as its reference, every kept round gives the
    same corrected time: the job's time at the median reference."""
    machine = Machine({"a": 2e-3}, slow + [1.0] * 8)
    res = run_rounds([_job("a")], machine.reference, machine.measure, passes=len(slow))
    r = res.result("a")
    assert r["spread"] == pytest.approx(0.0, abs=1e-9)
    assert r["best_s"] == pytest.approx(2e-3 * res.median["stream"] / 1e-3)


def test_busy_benchmark_load_process_starts_and_is_always_stopped(monkeypatch):
    import sys
    from pathlib import Path
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
    import validate_busy

    proc = validate_busy.start_load()
    try:
        assert proc.poll() is None  # running
    finally:
        validate_busy.stop_load(proc)
    assert proc.poll() is not None
    validate_busy.stop_load(proc)  # stopping twice is harmless

    started = []
    real_start = validate_busy.start_load

    def interrupted(out):
        raise KeyboardInterrupt
    monkeypatch.setattr(validate_busy, "start_load",
                        lambda: started.append(real_start()) or started[-1])
    monkeypatch.setattr(validate_busy, "run_validate", interrupted)
    with pytest.raises(KeyboardInterrupt):
        validate_busy.measure("loaded", Path("unused"))
    assert len(started) == 1 and started[0].poll() is not None  # stopped on Ctrl-C too


def test_one_thread_timing_counts_cpu_time_not_time_slept():
    """The one-thread path's clock is the thread's CPU time: time spent off the CPU
    (here sleeping, on a busy machine descheduled) is not counted."""
    import time

    from precsim.validation.bench import time_callable

    def nap():
        time.sleep(0.003)
    assert time_callable(nap, TINY).best_s >= 0.003
    assert time_callable(nap, TINY, cpu_time=True).best_s < 0.001


def test_validate_reports_progress_per_round_off_a_terminal(tmp_path, capsys, monkeypatch):
    """The CLI passes codesign.progress's reporter: one stderr line per round when not a
    terminal; --no-progress silences it. Measurement is faked (no kernel runs)."""
    import json

    from precsim.codesign.cli import main
    from precsim.validation import run as run_module

    def fake_validation(**kwargs):
        for done in (0, 5, 10):
            kwargs["on_progress"](f"round {done // 5 + 1} (5 cases)", done, 10)
        return {"out": kwargs["out"], "summary_text": "ok"}
    monkeypatch.setattr(run_module, "run_validation", fake_validation)
    assert main(["validate", "--smoke", "--out", str(tmp_path / "o")]) == 0
    err = capsys.readouterr().err.splitlines()
    assert len(err) == 3
    for line, (done, k) in zip(err, ((0, 1), (5, 2), (10, 3))):
        assert line.startswith("validate: ") and f"{done}/10" in line
        assert f"round {k} (5 cases)" in line
    assert main(["validate", "--smoke", "--no-progress", "--out", str(tmp_path / "o"),
                 "--json"]) == 0
    captured = capsys.readouterr()
    assert captured.err == "" and json.loads(captured.out)["summary_text"] == "ok"


def test_case_bounds_pick_the_reference_by_what_bounds_the_case():
    from precsim.simulator.profile_loader import load_profile_file
    from precsim.validation.calibrate import template_path
    from precsim.validation.kernels import matmul_case
    from precsim.validation.measure import ModelCase
    from precsim.validation.simulate import case_bounds

    cases = [matmul_case("fp32", 1, 3072, 1024), matmul_case("fp32", 1024, 1024, 1024),
             ModelCase("decode", "bf16", 1, 256), ModelCase("prefill", "bf16", 1, 64)]
    bounds = case_bounds(cases, load_profile_file(template_path()))
    assert list(bounds.values()) == ["memory", "compute", "memory", "compute"]
