"""Sweeps: study validation, chunk planning, local pool == Dask cluster, retry, resume.

One 2-worker Dask LocalCluster (processes, one thread each) serves the whole module and
is closed at the end; the local pool runs with 2 spawned workers.
"""
import functools
import importlib.metadata
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

import precsim.codesign.sweep as sweep
from precsim.codesign.cli import main
from precsim.codesign.sweep import (DaskExecutor, LocalExecutor, SweepStudy, evaluate_chunk,
                                    load_sweep_study, parts_dir_for, plan_chunks, run_sweep,
                                    sweep_study_from_mapping)
from precsim.codesign.sweep import driver as sweep_driver
from precsim.simulator.cost import simulate
from precsim.simulator.des.serving import serve
from precsim.simulator.des.workload import poisson_workload
from precsim.simulator.errors import InputError
from precsim.simulator.profile_loader import load_profile

STUDY = {
    "name": "unit",
    "profiles": ["h100-sxm"],
    "overrides": {"memory.hbm.bandwidth.value": [None, "6.7 TB/s"]},
    "models": ["qwen2.5-0.5b", "llama-3-8b"],
    "quant": ["BF16", "W4A16-g128"],
    "batch": [1, 3, 16],
    "prompt_len": [128, 1024],
    "gen_len": [1, 64],
    "chunk_size": 10,
}
N_CONFIGS = 2 * 2 * 2 * 3 * 2 * 2
N_CHUNKS = -(-N_CONFIGS // 10)


def study(**changes) -> SweepStudy:
    return sweep_study_from_mapping({**STUDY, **changes}, source="unit.yaml")


@pytest.fixture(scope="module")
def cluster():
    executor = DaskExecutor(local_workers=2)
    yield executor
    executor.close()


@pytest.fixture(scope="module")
def reference(cluster) -> pd.DataFrame:
    return run_sweep(study(), cluster, progress=False).frame


def test_package_exposes_its_api_and_imports_dask_only_for_a_cluster():
    """codesign.sweep is a package (schema, chunks, workers, executors, driver); its public
    names live in one place and do not reuse the co-design study's names."""
    from precsim.codesign import study as codesign_study
    from precsim.codesign.sweep import chunks, executors, schema, workers

    assert {"SweepStudy", "ServingAxis", "load_sweep_study", "sweep_study_from_mapping",
            "plan_chunks", "evaluate_chunk", "LocalExecutor", "DaskExecutor",
            "make_executor", "run_sweep", "SweepResult", "ChunkFailure",
            "parts_dir_for"} <= set(sweep.__all__)
    assert all(hasattr(sweep, name) for name in sweep.__all__)
    assert not {n for n in sweep.__all__ if hasattr(codesign_study, n)}
    assert sweep.SweepStudy is schema.SweepStudy and sweep.plan_chunks is chunks.plan_chunks
    assert sweep.evaluate_chunk is workers.evaluate_chunk
    assert sweep.DaskExecutor is executors.DaskExecutor
    code = ("import sys, precsim.codesign.sweep, precsim.codesign.commands.sweep; "
            "print(sorted(m for m in sys.modules "
            "if m.split('.')[0] in ('dask', 'distributed')))")
    out = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True,
                         text=True, cwd=Path(__file__).parent.parent)
    assert out.stdout.strip() == "[]"


# -- evaluators injected into the workers (module level: they travel by reference) ------------

def evaluate_failing_batch_3(chunk):
    """Fails every time for a chunk holding a batch-3 configuration of llama-3-8b."""
    for piece in chunk.pieces:
        if dict(piece.group.labels)["model"] == "llama-3-8b" and 3 in piece.batch:
            raise RuntimeError("injected failure at batch 3")
    return evaluate_chunk(chunk)


def evaluate_flaky(chunk, marker_dir):
    """Fails the first attempt of every chunk (a marker file records it), then works."""
    marker = Path(marker_dir) / chunk.key
    if not marker.exists():
        marker.touch()
        raise RuntimeError("transient worker error")
    return evaluate_chunk(chunk)


# -- study validation --------------------------------------------------------------------------

def write_study(tmp_path, doc, name="study.yaml") -> Path:
    path = tmp_path / name
    path.write_text(yaml.safe_dump(doc))
    return path


@pytest.mark.parametrize("edit, expected", [
    ({"modles": ["llama-3-8b"]}, "modles: unknown field (did you mean 'models'?)"),
    ({"batch": [0, 4]}, "batch[0]: Input should be greater than or equal to 1"),
    ({"batch": [4, 4]}, "batch: duplicate batch values 4"),
    ({"gen_len": []}, "gen_len: List should have at least 1 item"),
    ({"serving": {"qps": [1], "rqs": 3}}, "serving.rqs: unknown field"),
    ({"serving": {"qps": [-1]}}, "serving.qps[0]: Input should be greater than 0"),
    ({"serving": {"qps": ["2 ms"]}}, "serving.qps[0]: '2 ms' is a time quantity; expected rate"),
    ({"overrides": {"memory..value": ["1 TB/s"]}}, "expected a dotted field path"),
    ({"chunk_size": 0}, "chunk_size: Input should be greater than 0"),
])
def test_study_schema_errors_name_file_and_field(tmp_path, edit, expected):
    path = write_study(tmp_path, {**STUDY, **edit})
    with pytest.raises(InputError) as info:
        load_sweep_study(path)
    assert str(path) in str(info.value) and expected in str(info.value)


def test_serving_qps_take_the_rate_grammar():
    assert study(serving={"qps": ["1200/min", "2 req/s", 40]}).serving.qps == [20.0, 2.0, 40.0]


def test_missing_axis_is_reported(tmp_path):
    doc = {k: v for k, v in STUDY.items() if k != "quant"}
    with pytest.raises(InputError, match=r"study.yaml: quant: required field is missing"):
        load_sweep_study(write_study(tmp_path, doc))


@pytest.mark.parametrize("edit, expected", [
    ({"profiles": ["h100-sxm", "h100-sxx"]}, "unit.yaml: profiles[1]: unknown profile"),
    ({"models": ["llama-3-8b", "llama-9"]}, "unit.yaml: models[1]: unknown model"),
    ({"quant": ["W4A16-g128", "W3X"]}, "unit.yaml: quant[1]:"),
    ({"overrides": {"memory.gddr6.bandwidth.value": ["1 TB/s"]}},
     "unit.yaml: overrides (memory.gddr6.bandwidth.value='1 TB/s') on profile h100-sxm"),
    ({"overrides": {"memory.hbm.bandwidth.value": ["fast"]}},
     "unit.yaml: overrides (memory.hbm.bandwidth.value='fast')"),
])
def test_names_are_resolved_before_anything_runs(edit, expected):
    with pytest.raises(InputError) as info:
        plan_chunks(study(**edit))
    assert expected in str(info.value)


def test_profile_and_model_paths_are_relative_to_the_study(tmp_path):
    profile = load_profile("h100-sxm")
    (tmp_path / "mine.yaml").write_text(yaml.safe_dump({**profile.raw(), "name": "my-gpu"}))
    path = write_study(tmp_path, {**STUDY, "profiles": ["mine.yaml"], "overrides": {}})
    chunks = plan_chunks(load_sweep_study(path))
    assert {dict(p.group.labels)["profile"] for c in chunks for p in c.pieces} == {"my-gpu"}


def test_parameter_counts_become_parametric_models():
    chunks = plan_chunks(study(models=["7e9", 1.5e9], overrides={}))
    names = [dict(c.pieces[0].group.labels)["model"] for c in chunks]
    assert names[0] == "param-7e+09" and "param-1.5e+09" in names


# -- planning ------------------------------------------------------------------------------------

@settings(max_examples=25)
@given(chunk_size=st.integers(1, 40), n_batch=st.integers(1, 4), n_gen=st.integers(1, 3))
def test_chunks_partition_the_product_in_order(chunk_size, n_batch, n_gen):
    s = study(chunk_size=chunk_size, batch=list(range(1, n_batch + 1)),
              gen_len=list(range(1, n_gen + 1)))
    chunks = plan_chunks(s)
    assert all(0 < c.n_configs <= chunk_size for c in chunks)
    assert all(c.n_configs == chunk_size for c in chunks[:-1])
    ids = np.concatenate([np.arange(p.first_config_id, p.first_config_id + len(p))
                          for c in chunks for p in c.pieces])
    assert np.array_equal(ids, np.arange(s.n_configs))
    # gen_len, the innermost axis, runs fastest
    piece = chunks[0].pieces[0]
    expected = np.tile(np.arange(1, n_gen + 1), len(piece))[: len(piece)]
    assert np.array_equal(piece.gen_len, expected)
    assert len({c.key for c in chunks}) == len(chunks)


def test_chunk_keys_are_stable_and_follow_the_profile_content():
    keys = [c.key for c in plan_chunks(study())]
    assert keys == [c.key for c in plan_chunks(study())]
    faster = study(overrides={"memory.hbm.bandwidth.value": ["3.36 TB/s", "6.7 TB/s"]})
    changed = [c.key for c in plan_chunks(faster)]
    # configs 0-47 get another profile document: chunks 0-4 (0-49) change, 5-9 do not
    assert set(keys[:5]).isdisjoint(changed) and keys[5:] == changed[5:]


# -- evaluation ------------------------------------------------------------------------------

@pytest.mark.slow
def test_rows_equal_the_scalar_cost_model(reference):
    assert len(reference) == N_CONFIGS
    assert reference["config_id"].tolist() == list(range(N_CONFIGS))
    profile = load_profile("h100-sxm").with_overrides({"memory.hbm.bandwidth.value": "6.7 TB/s"})
    rows = reference[(reference["override:memory.hbm.bandwidth.value"] == "6.7 TB/s")]
    assert reference["override:memory.hbm.bandwidth.value"].isna().sum() == N_CONFIGS // 2
    for row in rows.sample(6, random_state=0).itertuples():
        totals = simulate(profile, row.model, row.quant, row.batch, row.prompt_len,
                          row.gen_len).totals
        for name in ("ttft_s", "tpot_s", "energy_per_token_j", "memory_bytes", "fits",
                     "decode_tokens_per_s", "prefill_tokens_per_s"):
            # a vectorised phase sums its stacked ops in another order than a scalar
            # call (op_eval.price_passes): equal to ~1e-15 relative, not bit for bit
            got, want = getattr(row, name), totals[name]
            assert got == pytest.approx(want, rel=1e-12, nan_ok=True), name


@pytest.mark.slow
def test_what_if_bandwidth_only_speeds_up_decode(reference):
    key = ["model", "quant", "batch", "prompt_len", "gen_len"]
    col = "override:memory.hbm.bandwidth.value"
    base = reference[reference[col].isna()].set_index(key)
    fast = reference[reference[col] == "6.7 TB/s"].set_index(key)
    both = base["tpot_s"].notna()
    assert (fast["tpot_s"][both] <= base["tpot_s"][both]).all()
    assert (fast["tpot_s"][both] < base["tpot_s"][both]).any()
    assert (fast["memory_bytes"] == base["memory_bytes"]).all()


@pytest.mark.slow
def test_local_pool_equals_dask_cluster_exactly(tmp_path, reference):
    with LocalExecutor(2) as pool:
        local = run_sweep(study(), pool, out=tmp_path / "r.parquet", progress=False)
    assert local.complete and local.computed == N_CHUNKS and local.resumed == 0
    pd.testing.assert_frame_equal(local.frame, reference, check_exact=True)
    on_disk = pd.read_parquet(tmp_path / "r.parquet")
    pd.testing.assert_frame_equal(on_disk, reference, check_exact=True)
    assert on_disk.attrs["precsim_sweep"]["study"]["name"] == "unit"
    assert not parts_dir_for(tmp_path / "r.parquet").exists()


@pytest.mark.slow
def test_chunking_does_not_change_results(cluster, reference):
    other = run_sweep(study(chunk_size=7), cluster, progress=False).frame
    pd.testing.assert_frame_equal(other, reference, check_exact=True)


@pytest.mark.slow
def test_serving_points_run_the_des_and_report_what_does_not_fit(cluster):
    s = study(models=["qwen2.5-0.5b"], quant=["BF16"], batch=[4], prompt_len=[256],
              gen_len=[16], overrides={"memory.hbm.capacity.value": [None, "0.5 GB"]},
              serving={"qps": [2, 40], "requests": 20, "seed": 3}, chunk_size=None)
    assert s.configs_per_chunk == sweep.SERVING_CHUNK
    frame = run_sweep(s, cluster, progress=False).frame
    assert frame["qps"].tolist() == [2.0, 40.0, 2.0, 40.0]
    fits, small = frame.iloc[:2], frame.iloc[2:]
    assert (fits["serving_error"] == "").all() and (fits["serving_served"] == 20).all()
    assert fits["serving_ttft_p99_s"].iloc[1] >= fits["serving_ttft_p99_s"].iloc[0]
    assert small["serving_error"].str.contains("does not fit").all()
    assert small["serving_ttft_p99_s"].isna().all() and not small["fits"].any()
    workload = poisson_workload(40.0, 20, 3, 256, 16)
    want = serve(load_profile("h100-sxm"), "qwen2.5-0.5b", "BF16", workload, max_batch=4)
    for name in sweep.SERVING_METRICS:
        assert fits[f"serving_{name}"].iloc[1] == want.summary[name], name


def test_serving_needs_real_model_shapes():
    with pytest.raises(InputError, match=r"unit.yaml: models\[0\]: serving points need"):
        plan_chunks(study(models=[7e9], serving={"qps": [1]}))


# -- retry, failure reporting, resume ------------------------------------------------------------

@pytest.mark.slow
def test_transient_failures_are_retried(cluster, tmp_path, reference):
    flaky = functools.partial(evaluate_flaky, marker_dir=str(tmp_path))
    result = run_sweep(study(), cluster, progress=False, evaluate=flaky)
    assert result.complete and len(list(tmp_path.iterdir())) == N_CHUNKS
    pd.testing.assert_frame_equal(result.frame, reference, check_exact=True)


@pytest.mark.slow
def test_persistent_failure_is_reported_and_the_rest_completes(cluster, tmp_path, reference):
    out = tmp_path / "r.parquet"
    result = run_sweep(study(), cluster, out=out, progress=False,
                       evaluate=evaluate_failing_batch_3)
    assert result.failures and not result.complete
    for failure in result.failures:
        assert failure.attempts == 2 and "injected failure at batch 3" in failure.error
        assert any(c["model"] == "llama-3-8b" and 3 in c["batch"] for c in failure.configs)
        assert "RuntimeError" in str(failure) and "h100-sxm" in str(failure)
    failed_ids = {i for f in result.failures for c in f.configs
                  for i in range(c["config_id"][0], c["config_id"][1] + 1)}
    done = reference[~reference["config_id"].isin(failed_ids)].reset_index(drop=True)
    pd.testing.assert_frame_equal(result.frame, done, check_exact=True)
    assert len(list(parts_dir_for(out).glob("*.parquet"))) == N_CHUNKS - len(result.failures)

    # rerun: only the failed chunks are computed
    again = run_sweep(study(), cluster, out=out, progress=False)
    assert again.complete and again.computed == len(result.failures)
    assert again.resumed == N_CHUNKS - len(result.failures)
    pd.testing.assert_frame_equal(pd.read_parquet(out), reference, check_exact=True)


@pytest.mark.slow
def test_interrupted_sweep_keeps_finished_chunks_and_resumes(cluster, tmp_path, reference,
                                                              monkeypatch):
    out = tmp_path / "r.parquet"
    (tmp_path / "r.parquet").write_bytes(b"the user's earlier file")
    real_write = sweep_driver._write_part
    written = []

    def write_then_interrupt(parts, chunk, frame):
        if len(written) == 3:
            raise KeyboardInterrupt
        real_write(parts, chunk, frame)
        written.append(chunk.key)

    monkeypatch.setattr(sweep_driver, "_write_part", write_then_interrupt)
    with pytest.raises(KeyboardInterrupt):
        run_sweep(study(), cluster, out=out, progress=False)
    assert out.read_bytes() == b"the user's earlier file"
    assert sorted(p.stem for p in parts_dir_for(out).iterdir()) == sorted(written)

    monkeypatch.setattr(sweep_driver, "_write_part", real_write)
    resumed = run_sweep(study(), cluster, out=out, progress=False)
    assert resumed.resumed == 3 and resumed.computed == N_CHUNKS - 3
    pd.testing.assert_frame_equal(resumed.frame, reference, check_exact=True)


def test_output_path_is_checked_before_work_starts(tmp_path):
    with pytest.raises(InputError, match="is a directory"):
        run_sweep(study(), executor=object(), out=tmp_path, progress=False)


@pytest.mark.slow
def test_corrupt_checkpoint_is_recomputed(cluster, tmp_path, reference):
    out = tmp_path / "r.parquet"
    chunks = plan_chunks(study())
    parts = parts_dir_for(out)
    parts.mkdir()
    (parts / f"{chunks[0].key}.parquet").write_bytes(b"not parquet")
    result = run_sweep(study(), cluster, out=out, progress=False)
    assert result.resumed == 0 and result.computed == N_CHUNKS
    pd.testing.assert_frame_equal(result.frame, reference, check_exact=True)


@pytest.mark.slow
def test_workers_of_another_precsim_version_are_refused(cluster, monkeypatch):
    monkeypatch.setattr(importlib.metadata, "version", lambda name: "9.9")  # driver side only
    with pytest.raises(InputError, match=r"dask workers must run precsim 9.9 .*found tcp://"):
        DaskExecutor(client=cluster.client)
    assert cluster.client.status == "running"  # a client passed in is left open


# -- CLI -------------------------------------------------------------------------------------

@pytest.mark.slow
def test_cli_sweep_json_and_bad_input(tmp_path, capsys, reference):
    path = write_study(tmp_path, {**STUDY, "chunk_size": 48})
    out = tmp_path / "cli.parquet"
    code = main(["sweep", str(path), "--out", str(out), "--workers", "1", "--json",
                 "--no-progress"])
    report = json.loads(capsys.readouterr().out)
    assert code == 0 and report["complete"] and report["rows"] == N_CONFIGS
    assert report["chunks"] == 2 and report["failed_chunks"] == 0
    pd.testing.assert_frame_equal(pd.read_parquet(out), reference, check_exact=True)

    bad = write_study(tmp_path, {**STUDY, "batch": ["many"]}, "bad.yaml")
    assert main(["sweep", str(bad), "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("precsim: error: ") and "bad.yaml: batch[0]:" in err
    assert "Traceback" not in err


@pytest.mark.slow
def test_cli_on_a_scheduler_reports_failed_chunks(cluster, tmp_path, capsys, monkeypatch):
    import precsim.codesign.commands.sweep as command
    monkeypatch.setattr(command, "run_sweep",
                        functools.partial(run_sweep, evaluate=evaluate_failing_batch_3))
    out = tmp_path / "r.parquet"
    code = main(["sweep", str(write_study(tmp_path, STUDY)), "--out", str(out), "--scheduler",
                 cluster.client.scheduler.address, "--no-progress"])
    captured = capsys.readouterr()
    assert code == 1 and "dask cluster tcp://" in captured.out
    assert "injected failure at batch 3" in captured.err and "model=llama-3-8b" in captured.err
    assert "rerun the same command" in captured.err and parts_dir_for(out).is_dir()
    assert not out.exists()  # an incomplete sweep never writes (or replaces) the output


def test_cli_json_of_a_failed_sweep_says_it_is_no_answer(cluster, tmp_path, capsys,
                                                          monkeypatch):
    import precsim.codesign.commands.sweep as command
    monkeypatch.setattr(command, "run_sweep",
                        functools.partial(run_sweep, evaluate=evaluate_failing_batch_3))
    out = tmp_path / "r.parquet"
    code = main(["sweep", str(write_study(tmp_path, STUDY)), "--out", str(out), "--scheduler",
                 cluster.client.scheduler.address, "--no-progress", "--json"])
    report = json.loads(capsys.readouterr().out)
    assert code == 1 and report["feasible"] is False and report["failed_chunks"] >= 1
    assert "chunk(s) failed" in report["reason"] and not out.exists()
