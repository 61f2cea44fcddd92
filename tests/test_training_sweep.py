"""Sweep runner: durable log, resume after a crash, determinism; grid and runs-CSV checks."""
import os
import signal
import subprocess
import sys
import time

import pandas as pd
import pytest

import precsim.validation.training.sweep as sweep
from precsim.simulator.errors import InputError
from precsim.validation.training.data import MarkovSource
from precsim.validation.training.runs import HEADER, RunLog, read_runs_csv
from precsim.validation.training.sweep import GridBlock, SweepGrid, load_grid, run_sweep
from precsim.validation.training.train import RunConfig, train_run

SOURCE = MarkovSource(vocab_size=8, order_weights=(0.6, 0.4), branching=2)
GRID = SweepGrid(name="unit", blocks=(
    GridBlock(models=((32, 1, 1),), tokens=(1024, 2048)),
    GridBlock(models=((32, 1, 1),), tokens=(1024,),
              precisions=(("int4", "none", "int4"), ("e2m1", "int8", "none")))),
    post_bits=(3, 4), seq_len=16, batch_size=8, eval_tokens=256)
TIMING = ["wall_time_s", "cpu_time_s"]


class Crash(RuntimeError):
    pass


def read(path):
    return read_runs_csv(path).drop(columns=TIMING)


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory):
    path = tmp_path_factory.mktemp("full") / "runs.csv"
    table = run_sweep(GRID, SOURCE, path, jobs=1, progress=False)
    return path, table


@pytest.mark.slow
def test_sweep_writes_every_run_with_its_ptq_rows(uninterrupted):
    path, table = uninterrupted
    assert table["run_id"].nunique() == 4
    # 16-bit and int4 weights: 2 PTQ rows each; int4 weights skip P_post=4 (>= P_w)
    counts = table.groupby("run_id", sort=False).size().tolist()
    assert counts == [3, 3, 2, 2]
    assert set(table["w_format"]) == {"none", "int4", "e2m1"}
    assert (table["D"] % (8 * 16) == 0).all()
    assert table["known_E"].iloc[0] == pytest.approx(SOURCE.entropy_rate_nats)


@pytest.mark.slow
def test_resume_after_a_crash_redoes_nothing_and_matches(uninterrupted, tmp_path, monkeypatch):
    path = tmp_path / "runs.csv"
    calls = []

    def crash_after_two(cfg, source):
        if len(calls) == 2:
            raise Crash("killed")
        calls.append(cfg.run_id)
        return train_run(cfg, source)

    monkeypatch.setattr("precsim.validation.training.train.train_run", crash_after_two)
    with pytest.raises(Crash):
        run_sweep(GRID, SOURCE, path, jobs=1, progress=False)
    assert read_runs_csv(path)["run_id"].nunique() == 2
    with open(path, "a") as handle:       # a torn write of the run in flight
        handle.write("deadbeef,synthetic,abc,1.0,1")

    resumed = []

    def record(cfg, source):
        resumed.append(cfg.run_id)
        return train_run(cfg, source)

    monkeypatch.setattr("precsim.validation.training.train.train_run", record)
    run_sweep(GRID, SOURCE, path, jobs=1, progress=False)
    assert len(resumed) == 2 and not set(resumed) & set(calls)
    pd.testing.assert_frame_equal(read(path), read(uninterrupted[0]))


KILLED_SWEEP = """
import sys
from tests.test_training_sweep import GRID, SOURCE
from precsim.validation.training.sweep import run_sweep
run_sweep(GRID, SOURCE, sys.argv[1], jobs=1, progress=False)
"""


@pytest.mark.slow
def test_sigkill_mid_sweep_then_restart_trains_only_the_rest(uninterrupted, tmp_path,
                                                              monkeypatch):
    path = tmp_path / "runs.csv"
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    proc = subprocess.Popen([sys.executable, "-c", KILLED_SWEEP, str(path)], cwd=root)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and proc.poll() is None:
        if path.exists() and path.read_text().count("\n") >= 4:   # header + >= 1 run
            break
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    survived = set(RunLog(path).load()["run_id"])
    assert survived
    trained = []

    def record(cfg, source):
        trained.append(cfg.run_id)
        return train_run(cfg, source)

    monkeypatch.setattr("precsim.validation.training.train.train_run", record)
    run_sweep(GRID, SOURCE, path, jobs=1, progress=False)
    all_ids = {c.run_id for c in GRID.configs(SOURCE)}
    assert set(trained) == all_ids - survived and len(trained) == len(set(trained))
    pd.testing.assert_frame_equal(read(path), read(uninterrupted[0]))


@pytest.mark.slow
def test_parallel_jobs_write_the_same_csv(uninterrupted, tmp_path):
    path = tmp_path / "runs.csv"
    table = run_sweep(GRID, SOURCE, path, jobs=2, progress=False)
    pd.testing.assert_frame_equal(read(path), read(uninterrupted[0]))
    assert list(table["run_id"]) == list(uninterrupted[1]["run_id"])


@pytest.mark.slow
def test_incomplete_run_is_dropped_on_reopen(uninterrupted, tmp_path):
    lines = uninterrupted[0].read_text().splitlines(keepends=True)
    path = tmp_path / "runs.csv"
    path.write_text("".join(lines[:3]))   # header, then 2 of the first run's 3 rows
    log = RunLog(path)
    assert log.load().empty
    assert path.read_text() == HEADER


@pytest.mark.slow
def test_training_is_deterministic():
    cfg = RunConfig("synthetic", SOURCE.fingerprint, 32, 1, 1, SOURCE.vocab_size, 16, 512,
                    w_format="int3", kv_format="int4", post_bits=(3,), batch_size=8,
                    eval_tokens=128, seed=7)
    a, b = train_run(cfg, SOURCE), train_run(cfg, SOURCE)
    assert [r["loss"] for r in a] == [r["loss"] for r in b]
    other = train_run(RunConfig(**{**cfg.__dict__, "seed": 8}), SOURCE)
    assert other[0]["loss"] != a[0]["loss"]
    assert a[0]["run_id"] != other[0]["run_id"]


def test_foreign_file_and_second_sweep_are_refused(tmp_path):
    path = tmp_path / "runs.csv"
    path.write_text("a,b\n1,2\n")
    with pytest.raises(InputError, match="not a runs log"):
        RunLog(path).load()
    log = RunLog(tmp_path / "other.csv")
    with log.locked(), pytest.raises(InputError, match="another sweep"):
        with RunLog(tmp_path / "other.csv").locked():
            pass


def test_presets_and_yaml_grid(tmp_path):
    assert set(sweep.GRIDS) == {"default", "quick", "tiny"}
    for grid in sweep.GRIDS.values():
        assert grid.configs(SOURCE)
    path = tmp_path / "g.yaml"
    path.write_text("models: [[32, 1, 1]]\ntokens: [1024]\nprecisions: [[int4, none, fp8]]\n"
                    "post_bits: [2, 3]\nseeds: [0, 1]\n")
    grid = load_grid(str(path))
    assert grid.blocks[0].precisions == (("int4", "none", "e4m3"),)
    assert len(grid.configs(SOURCE)) == 2


@pytest.mark.parametrize("text, match", [
    ("models: [[30, 1, 1]]\ntokens: [1024]\n", "multiple of group_size"),
    ("models: [[32, 1, 3]]\ntokens: [1024]\n", "divisible by n_heads"),
    ("models: [[32, 1, 1]]\ntokens: [-5]\n", "'tokens'"),
    ("models: [[32, 1, 1]]\ntokens: [1024]\nprecisions: [[int1, none, none]]\n", "int1"),
    ("models: [[32, 1, 1]]\ntokens: [1024]\npost_bits: [9]\n", "post_bits"),
    ("models: [[32, 1, 1]]\ntokens: [1024]\nepochs: 3\n", "unknown field"),
])
def test_bad_grid_files_name_the_field(tmp_path, text, match):
    path = tmp_path / "g.yaml"
    path.write_text(text)
    with pytest.raises(InputError, match=match):
        load_grid(str(path))
    with pytest.raises(InputError, match="not a preset"):
        load_grid("huge")


@pytest.mark.parametrize("text, match", [
    ("N,D,P_w,loss\n1,2,16,3\n", "missing column.*P_a"),
    ("N,D,P_w,P_a,loss\n100,200,16,16,2.5\n100,abc,16,16,2.4\n", "line 3, column 'D'"),
    ("N,D,P_w,P_a,loss\n100,200,16,16,2.5\n100,200,16,0,2.4\n", "line 3, column 'P_a'"),
    ("N,D,P_w,P_a,loss\n100,200,16,16,\n", "line 2, column 'loss'"),
    ("N,D,P_w,P_a,loss\n", "no runs"),
    ("N,D,P_w,P_a,loss\n1,2,16,16,2.5\n1,2,16,16,2.5,9,9\n", "malformed CSV.*line 3"),
])
def test_malformed_runs_csv_names_line_and_column(tmp_path, text, match):
    path = tmp_path / "runs.csv"
    path.write_text(text)
    with pytest.raises(InputError, match=match):
        read_runs_csv(path)
