"""Hostile inputs (issue 19), one group of tests per class of defect found by trying them:
outputs that destroy what they should not, hangs and unbounded reads, work without a
bound, internal errors on bad input, nonsense accepted, misleading messages. The
surfaces and what each refuses are tabled in docs/inputs.md.

Anything that could hang on a regression (FIFOs, /dev/zero, signals) runs in a
subprocess with a timeout.
"""
import json
import os
import signal
import stat
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import precsim.simulator.io as sio
from precsim.codesign.cli import main
from precsim.codesign.commands.simulate import run_request
from precsim.codesign.sweep.schema import MAX_SWEEP_CONFIGS, sweep_study_from_mapping
from precsim.simulator.des.workload import MAX_REQUESTS, poisson_workload, read_trace
from precsim.simulator.errors import InputError
from precsim.simulator.io import atomic_directory, atomic_write_text, read_text_bounded
from precsim.simulator.models import config_from_hf, load_hf_config
from precsim.simulator.profile_loader import load_profile
from precsim.simulator.quant import parse_quant
from precsim.simulator.units import UnitError, parse_flag_quantity, parse_quantity

REPO = Path(__file__).resolve().parents[1]
SIM = ["simulate", "--profile", "h100-sxm", "--model", "llama-3.2-1b", "--prompt", "64",
       "--gen", "8"]
CONFIG = {"hidden_size": 2048, "num_hidden_layers": 16, "num_attention_heads": 32,
          "num_key_value_heads": 8, "intermediate_size": 8192, "vocab_size": 128256}


def _env() -> dict:
    """The environment of a child Python that imports this checkout as `precsim`."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH")]))
    return env


def _python(code: str, timeout: float = 60, **kwargs) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True,
                          text=True, timeout=timeout, env=_env(), **kwargs)


def _exit(capsys, argv) -> tuple[int, str]:
    """(exit code, stderr) of `precsim argv`, parser errors (SystemExit) included."""
    try:
        code = main(argv)
    except SystemExit as exc:
        code = exc.code
    return code, capsys.readouterr().err


# ---- 1. outputs never destroy what they should not -------------------------------------

def test_fifo_and_symlink_to_fifo_are_refused_as_outputs_and_left_in_place(tmp_path, capsys):
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    link = tmp_path / "link.csv"
    link.symlink_to(fifo)
    for target in (fifo, link):
        code, err = _exit(capsys, [*SIM, "--csv", str(target)])
        assert code == 2 and "FIFO" in err and "Traceback" not in err
        assert stat.S_ISFIFO(os.stat(target).st_mode)  # still the pipe: not replaced
    assert sorted(p.name for p in tmp_path.iterdir()) == ["link.csv", "pipe"]  # no temp


def test_device_node_is_refused_not_replaced(capsys):
    before = os.stat("/dev/null")
    code, err = _exit(capsys, [*SIM, "--csv", "/dev/null"])
    assert code == 2 and "/dev/null: is a character device" in err
    after = os.stat("/dev/null")
    assert stat.S_ISCHR(after.st_mode) and after.st_rdev == before.st_rdev


def test_sweep_refuses_a_fifo_output_before_any_work(tmp_path):
    from precsim.codesign.sweep import run_sweep
    fifo = tmp_path / "results.parquet"
    os.mkfifo(fifo)
    study = {"profiles": ["h100-sxm"], "models": ["llama-3.2-1b"], "quant": ["W4A16"],
             "batch": [1], "prompt_len": [64], "gen_len": [4]}
    with pytest.raises(InputError, match="is a FIFO"):
        run_sweep(sweep_study_from_mapping(study), executor=object(), out=fifo, progress=False)
    assert stat.S_ISFIFO(os.stat(fifo).st_mode)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["results.parquet"]


def test_symlink_to_a_regular_file_writes_the_file_and_keeps_the_link(tmp_path):
    real = tmp_path / "real.csv"
    real.write_text("old")
    link = tmp_path / "link.csv"
    link.symlink_to(real)
    atomic_write_text(link, "new")
    assert link.is_symlink() and real.read_text() == "new"


def test_only_a_folder_precsim_wrote_is_replaced(tmp_path):
    mine = tmp_path / "results"
    mine.mkdir()
    (mine / "thesis.tex").write_text("years of work")
    with pytest.raises(InputError, match="not written by PrecSim"):
        with atomic_directory(mine):
            raise AssertionError("the body must not run")
    assert (mine / "thesis.tex").read_text() == "years of work"
    out = tmp_path / "report"
    with atomic_directory(out) as tmp:  # new folder: marked
        (tmp / "a.txt").write_text("1")
    with atomic_directory(out) as tmp:  # marked folder: replaced
        (tmp / "b.txt").write_text("2")
    assert sorted(p.name for p in out.iterdir()) == [sio.OUTPUT_MARKER, "b.txt"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["report", "results"]


def test_an_interrupt_held_during_the_swap_leaves_the_new_folder_and_no_old_copy(
        tmp_path, monkeypatch):
    import contextlib
    out = tmp_path / "report"
    with atomic_directory(out) as tmp:
        (tmp / "old.md").write_text("old")

    @contextlib.contextmanager
    def delivered_after():  # the held Ctrl-C arrives as the swap ends
        yield
        raise KeyboardInterrupt
    monkeypatch.setattr(sio, "_signals_deferred", delivered_after)
    with pytest.raises(KeyboardInterrupt):
        with atomic_directory(out) as tmp:
            (tmp / "new.md").write_text("new")
    assert sorted(p.name for p in out.iterdir()) == [sio.OUTPUT_MARKER, "new.md"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["report"]


def test_sigterm_during_a_report_leaves_the_old_folder_and_no_temp_files(tmp_path):
    out = tmp_path / "report"
    out.mkdir()
    (out / sio.OUTPUT_MARKER).write_text("")
    (out / "old.md").write_text("old")
    child = subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(f"""
            import sys, time
            from precsim.codesign.cli import interrupt_handlers
            from precsim.simulator.io import atomic_directory
            with interrupt_handlers():
                with atomic_directory({str(out)!r}) as tmp:
                    (tmp / "half.md").write_text("half")
                    print("writing", flush=True)
                    time.sleep(60)
            """)], stdout=subprocess.PIPE, text=True, env=_env())
    try:
        assert child.stdout.readline().strip() == "writing"
        child.send_signal(signal.SIGTERM)
        assert child.wait(timeout=30) == 143
    finally:
        child.kill()
    assert sorted(p.name for p in out.iterdir()) == [sio.OUTPUT_MARKER, "old.md"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["report"]


def test_second_interrupt_ends_the_run_at_once_without_a_traceback():
    child = subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent("""
            import time
            from precsim.codesign.cli import interrupt_handlers
            with interrupt_handlers():
                try:
                    print("ready", flush=True)
                    time.sleep(60)
                except KeyboardInterrupt:
                    print("first", flush=True)
                    time.sleep(60)  # a cleanup that hangs (a pool that does not stop)
            """)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=_env())
    try:
        assert child.stdout.readline().strip() == "ready"
        child.send_signal(signal.SIGINT)
        assert child.stdout.readline().strip() == "first"
        start = time.monotonic()
        child.send_signal(signal.SIGINT)
        assert child.wait(timeout=30) == 130
        assert time.monotonic() - start < 30
    finally:
        child.kill()
    assert "Traceback" not in child.stderr.read()


# ---- 2. no hangs, no unbounded reads ------------------------------------------------------

def test_fifos_and_devices_as_inputs_are_refused_without_reading(tmp_path):
    """Every file input surface, in one child process that must finish in 60 s."""
    fifo = tmp_path / "pipe.json"
    os.mkfifo(fifo)
    result = _python(f"""
        from precsim.codesign.cli import main
        fifo = {str(fifo)!r}
        cases = [
            ["simulate", "--profile", "h100-sxm", "--model", fifo],
            ["simulate", "--profile", "h100-sxm", "--model", "/dev/zero"],
            ["simulate", "--profile", fifo, "--model", "llama-3-8b"],
            ["simulate", "--profile", "h100-sxm", "--model", "llama-3-8b", "--runtime", fifo],
            ["law", "predict", "--law", fifo, "--N", "1e9", "--D", "1e10"],
            ["law", "predict", "--law", "/dev/zero", "--N", "1e9", "--D", "1e10"],
            ["law", "fit", fifo],
            ["law", "fit", "/dev/zero"],
            ["serve", "--profile", "h100-sxm", "--model", "llama-3-8b", "--quant", "W4A16",
             "--trace", fifo],
            ["plan", "--study", fifo],
            ["sweep", "/dev/zero", "--out", fifo + ".parquet"],
        ]
        print([main(argv) for argv in cases])
        """)
    assert result.stdout.strip() == str([2] * 11), result.stderr
    assert result.stderr.count("precsim: error:") == 11 and "Traceback" not in result.stderr
    assert result.stderr.count("FIFO") == 7 and result.stderr.count("character device") == 4


def test_oversized_and_deep_json_are_refused(tmp_path):
    big = tmp_path / "config.json"
    big.write_text(json.dumps({**CONFIG, "pad": "x" * sio.MAX_JSON_BYTES}))
    with pytest.raises(InputError, match=f"larger than {sio.MAX_JSON_BYTES} bytes"):
        load_hf_config(big)
    deep = tmp_path / "deep.json"
    deep.write_text("[" * 100_000 + "]" * 100_000)
    with pytest.raises(InputError, match="nested deeper than 64"):
        load_hf_config(deep)
    shallow_but_over = tmp_path / "over.json"
    shallow_but_over.write_text("[" * 70 + "]" * 70)
    with pytest.raises(InputError, match="nested deeper than 64"):
        sio.load_json_bounded(shallow_but_over, "test JSON")
    with pytest.raises(InputError, match="x.json: JSON constant NaN not allowed"):
        sio.parse_json_text('{"hidden_size": NaN}', "x.json")
    with pytest.raises(InputError, match="x.json: invalid JSON value"):
        sio.parse_json_text('{"hidden_size": ' + "9" * 5000 + "}", "x.json")


# ---- 3. work has a bound, stated up front --------------------------------------------------

@pytest.mark.parametrize("argv, flag", [
    ([*SIM, "--batch", "99999999999999999999999999"], "--batch"),
    ([*SIM, "--tp", "1e3"], "--tp"),
    (["serve", "--profile", "h100-sxm", "--model", "llama-3-8b", "--quant", "W4A16",
      "--qps", "10", "--requests", "1000000"], "--requests"),
    (["plan", "--batch", "99999999999999999999999999"], "--batch"),
    (["law", "fit", "runs.csv", "--bootstrap", "10000000"], "--bootstrap"),
    (["sweep", "s.yaml", "--out", "o.parquet", "--chunk-size", "-1"], "--chunk-size"),
    (["train", "--profile", "h100-sxm", "--model", "llama-3-8b", "--global-batch", "inf"],
     "--global-batch"),
])
def test_counts_have_bounds_named_in_the_message(capsys, argv, flag):
    code, err = _exit(capsys, argv)
    assert code == 2 and f"argument {flag}: expected" in err and "Traceback" not in err


def test_negative_law_seed_is_an_input_error_in_the_api():
    from precsim.lawcore import LawInputError, get_law
    with pytest.raises(LawInputError, match="seed must be a whole number >= 0; got -1"):
        get_law("chinchilla").clone(seed=-1)


def test_serving_requests_and_lengths_are_bounded_in_the_api_too():
    with pytest.raises(InputError, match=f"from 1 to {MAX_REQUESTS:,}"):
        poisson_workload(10.0, MAX_REQUESTS + 1)
    with pytest.raises(InputError, match="prompt tokens: token counts must be from 1 to"):
        poisson_workload(10.0, 10, prompt_tokens="1:99999999999999999999999999")
    with pytest.raises(InputError, match="seed: expected a whole number >= 0"):
        poisson_workload(10.0, 10, seed=-1)


def test_sweep_expansion_is_counted_before_anything_is_built():
    axis = list(range(1, 101))
    doc = {"profiles": ["h100-sxm"], "models": ["llama-3-8b"], "quant": ["W4A16"],
           "batch": axis, "prompt_len": axis, "gen_len": axis,
           "overrides": {"memory.hbm.bandwidth.value": [f"{i} TB/s" for i in range(1, 6)]}}
    with pytest.raises(InputError) as info:
        sweep_study_from_mapping(doc, source="big.yaml")
    message = str(info.value)
    assert "big.yaml: the study expands to 5,000,000 configurations" in message
    assert f"at most {MAX_SWEEP_CONFIGS:,}" in message and "100 batch" in message


def test_law_fit_refuses_more_runs_than_its_bound(tmp_path, capsys):
    from precsim.codesign.commands.law import MAX_FIT_ROWS
    runs = tmp_path / "runs.csv"
    n = MAX_FIT_ROWS + 1
    runs.write_text("N,D,loss\n" + "1e8,2e9,3.1\n" * n)
    code, err = _exit(capsys, ["law", "fit", str(runs)])
    assert code == 2 and f"runs.csv: {n:,} runs; a fit takes at most {MAX_FIT_ROWS:,}" in err


# ---- 4. bad input is exit 2 (or 3), never an internal error -------------------------------

@pytest.mark.parametrize("argv, expected", [
    (["serve", "--profile", "h100-sxm", "--model", "llama-3-8b", "--quant", "W4A16",
      "--qps", "10", "--seed", "-1"], "--seed: expected a whole number from 0"),
    (["law", "fit", "runs.csv", "--seed", "-4"], "--seed: expected a whole number from 0"),
    (["sweep", str(REPO / "examples" / "sweep.yaml"), "--out", "o.parquet", "--scheduler",
      "not an address"], "--scheduler 'not an address': expected an address"),
    (["sweep", str(REPO / "examples" / "sweep.yaml"), "--out", "o.parquet", "--scheduler",
      "tcp://127.0.0.1:99999"], "a port from 1 to 65535"),
])
def test_bad_values_exit_2_with_a_message(capsys, tmp_path, monkeypatch, argv, expected):
    monkeypatch.chdir(tmp_path)
    code, err = _exit(capsys, argv)
    assert code == 2 and expected in err and "internal error" not in err


def test_more_robustness_draws_than_stored_is_refused_not_silently_capped():
    from precsim import lawcore
    from precsim.codesign.robustness import ensemble
    with pytest.raises(InputError, match="--draws 101: only 100 bootstrap refits"):
        ensemble(lawcore.get_law("kumar2024"), 101)


def test_unreadable_file_is_exit_2(tmp_path, capsys, monkeypatch):
    config = tmp_path / "config.json"
    config.write_text(json.dumps(CONFIG))
    config.chmod(0)
    if os.geteuid() == 0:  # root reads any file (CI runs as root): refuse it as the OS would
        real_open = os.open

        def refusing_open(path, *args, **kwargs):
            if os.fspath(path) == os.fspath(config):
                raise PermissionError(13, "Permission denied", os.fspath(path))
            return real_open(path, *args, **kwargs)
        monkeypatch.setattr(sio.os, "open", refusing_open)
    code, err = _exit(capsys, ["simulate", "--profile", "h100-sxm", "--model", str(config)])
    assert code == 2 and "config.json: cannot read model config" in err


def test_a_kv_cache_too_small_for_any_request_is_infeasible_not_a_crash(capsys):
    code = main(["serve", "--profile", "h100-sxm", "--model", "llama-3.2-1b", "--quant",
                 "W4A16", "--qps", "5", "--requests", "20", "--kv-capacity-tokens", "10"])
    captured = capsys.readouterr()
    assert code == 3 and "served 0 of 20" in captured.out and "no request was served" in captured.out
    assert "internal error" not in captured.err


# ---- 5. nonsense is refused at the boundary -----------------------------------------------

@pytest.mark.parametrize("value, expected", [
    ("inf TB/s", "cannot read 'inf TB/s'"), (".nan", "bare number nan"),
    ("1e-300 TB/s", "outside the physical range of a bandwidth quantity"),
    ("1e400 TB/s", "not a finite bandwidth"),
])
def test_profile_quantities_must_be_finite_and_physical(tmp_path, value, expected):
    text = (REPO / "hw_profiles" / "h100-sxm.yaml").read_text()
    hostile = tmp_path / "hostile.yaml"
    hostile.write_text(text.replace("{value: 10 TB/s, assumed", f"{{value: {value}, assumed"))
    with pytest.raises(InputError) as info:
        load_profile(str(hostile))
    assert "hostile.yaml" in str(info.value) and "memory[l2].bandwidth.value" in str(info.value)
    assert expected in str(info.value)


def test_a_rate_that_rounds_latencies_to_zero_is_refused(capsys):
    code, err = _exit(capsys, ["serve", "--profile", "h100-sxm", "--model", "llama-3-8b",
                               "--quant", "W4A16", "--qps", "1e-300"])
    assert code == 2 and "qps: 1e-300 requests/s spreads 1,000 requests" in err
    study = {"profiles": ["h100-sxm"], "models": ["llama-3-8b"], "quant": ["W4A16"],
             "batch": [8], "prompt_len": [64], "gen_len": [8],
             "serving": {"qps": ["1e-300/s", 5]}}
    with pytest.raises(InputError, match="s.yaml: serving.qps: 1e-300 requests/s spreads"):
        sweep_study_from_mapping(study, source="s.yaml")


@pytest.mark.parametrize("field, value, expected", [
    ("tie_word_embeddings", "false", "true or false"),
    ("attention_bias", 0, "true or false"),
    ("num_hidden_layers", "16", "a whole number"),
    ("hidden_size", 2048.0, "a whole number"),
    ("vocab_size", 10**30, "a whole number from 0 to 16,777,216"),
    ("hidden_act", 7, "a string"),
])
def test_config_json_types_are_strict(field, value, expected):
    with pytest.raises(InputError) as info:
        config_from_hf({**CONFIG, field: value}, "m", "cfg/config.json")
    assert str(info.value).startswith(f"cfg/config.json: field {field} is ")
    assert expected in str(info.value)


@pytest.mark.parametrize("spec, expected", [
    ("W4A16@attn=W8A8@mlp=W4A4", "more than one '@'"),
    ("W4A16@attn=W8A8,attn=W4A16", "group 'attn' is overridden twice (W8A8 and W4A16)"),
])
def test_override_grammar_is_strict(spec, expected):
    with pytest.raises(InputError, match=expected.replace("(", r"\(").replace(")", r"\)")):
        parse_quant(spec)


def test_repeated_override_flag_names_both(capsys):
    code, err = _exit(capsys, [*SIM, "--override", "attn=W8A8", "--override", "attn=W4A16"])
    assert code == 2 and "'attn=W4A16': group 'attn' is already overridden (W8A8)" in err
    code, err = _exit(capsys, [*SIM, "--quant", "W4A16@attn=W8A8", "--override", "attn=W4A4"])
    assert code == 2 and "already overridden (W8A8 in --quant)" in err


def test_whatif_refuses_repeated_fields_values_and_too_many_variants(capsys):
    base = ["whatif", "--profile", "h100-sxm"]
    code, err = _exit(capsys, [*base, "--vary", "memory.hbm.bandwidth=0.5x,0.5x"])
    assert code == 2 and "'0.5x' is given twice" in err
    code, err = _exit(capsys, [*base, "--vary", "memory.hbm.bandwidth=2x", "--vary",
                               "memory.hbm.bandwidth.value=3x"])
    assert code == 2 and "'memory.hbm.bandwidth' is varied twice" in err
    many = ",".join(f"{i}x" for i in range(1, 31))
    code, err = _exit(capsys, [*base, "--vary", f"memory.hbm.bandwidth={many}",
                               "--vary", f"memory.l2.bandwidth={many}"])
    assert code == 2 and "30 x 30 = 900 variants; at most 256" in err


@given(st.text(max_size=30), st.sampled_from(["bandwidth", "time", "bytes", "rate", "count"]))
def test_quantity_parsers_raise_only_unit_errors(text, dimension):
    for parser in (parse_quantity, parse_flag_quantity):
        try:
            value = parser(text, dimension)
        except UnitError:
            continue
        assert np.isfinite(value)


_PIECE = st.sampled_from(["W", "A", "KV", "4", "8", "16", "1.58", "fp8", "-g", "128", "@",
                          "=", ",", "attn", "mlp", "lm_head", "-asym", "-pack", "NVFP4", " "])


@given(st.one_of(st.text(max_size=24), st.lists(_PIECE, max_size=12).map("".join)))
def test_quant_grammar_raises_only_input_errors(spec):
    try:
        parse_quant(spec)
    except InputError:
        pass


_VARY_PIECE = st.sampled_from(["memory.hbm.bandwidth", "compute.int4", "=", ",", "x", "0.5",
                               "2", "TB/s", "native", "emulated", "as-is", "..", ".value",
                               "-1", "inf", "nan", "1e-300", " "])


@given(st.lists(_VARY_PIECE, max_size=8).map("".join))
def test_vary_grammar_raises_only_input_errors(spec):
    from precsim.codesign.variants import parse_vary
    try:
        parse_vary(spec, load_profile("h100-sxm"))
    except InputError:
        pass


# ---- 6. messages point at the right thing ---------------------------------------------------

def test_byte_order_mark_is_not_part_of_the_first_column(tmp_path):
    trace = tmp_path / "trace.csv"
    trace.write_bytes(b"\xef\xbb\xbfarrival_s,prompt_tokens,output_tokens\n0,16,4\n0.5,16,4\n")
    assert len(read_trace(trace)) == 2
    assert read_text_bounded(trace, "trace").startswith("arrival_s")


def test_law_fit_on_a_bom_csv_reads_the_header(tmp_path, capsys):
    runs = tmp_path / "runs.csv"
    runs.write_bytes(b"\xef\xbb\xbfN,D,loss\n1e8,2e9,3.1\n")
    code, err = _exit(capsys, ["law", "fit", str(runs)])
    assert code == 2 and "missing column" not in err
    assert err.startswith(f"precsim: error: {runs}: ")  # the file is named


def test_array_inputs_name_the_bad_value_not_the_array():
    batch = np.array([1, 2, 0, 4, -1])
    with pytest.raises(InputError) as info:
        run_request("h100-sxm", "llama-3.2-1b", "W16A16", batch, 64, 8)
    assert str(info.value) == ("--batch must be at least 1 and at most 1,000,000, got 0 "
                               "(and 1 more)")


def test_moe_imbalance_message_names_the_flag_value_not_an_internal_name(capsys):
    code, err = _exit(capsys, ["simulate", "--profile", "h100-sxm", "--model", "mixtral-8x7b",
                               "--moe-imbalance", "1e308"])
    assert code == 2 and "moe_imbalance must be at least 1" in err and "m must be" not in err
