"""Serving workloads: seeded Poisson arrivals and trace CSV parsing with row-named errors."""
import numpy as np
import pytest

from precsim.simulator.des.workload import poisson_workload, read_trace
from precsim.simulator.errors import InputError


def test_poisson_is_seeded_and_uses_common_random_numbers():
    a = poisson_workload(4.0, 500, seed=7, prompt_tokens="100:200", output_tokens=16)
    b = poisson_workload(4.0, 500, seed=7, prompt_tokens="100:200", output_tokens=16)
    slow = poisson_workload(2.0, 500, seed=7, prompt_tokens="100:200", output_tokens=16)
    other = poisson_workload(4.0, 500, seed=8, prompt_tokens="100:200", output_tokens=16)
    assert np.array_equal(a.arrival_s, b.arrival_s)
    assert np.array_equal(a.prompt_tokens, b.prompt_tokens)
    assert np.allclose(slow.arrival_s, 2.0 * a.arrival_s)
    assert np.array_equal(slow.prompt_tokens, a.prompt_tokens)
    assert not np.array_equal(other.arrival_s, a.arrival_s)
    assert a.prompt_tokens.min() >= 100 and a.prompt_tokens.max() <= 200
    assert np.all(a.output_tokens == 16)
    assert np.all(np.diff(a.arrival_s) >= 0)
    # mean gap of a rate-4 process over 500 arrivals: 0.25 s within a few percent
    assert a.arrival_s[-1] / 500 == pytest.approx(0.25, rel=0.15)


@pytest.mark.parametrize("rate", [0, -1.0, float("nan"), float("inf")])
def test_zero_negative_or_infinite_rates_are_errors(rate):
    with pytest.raises(InputError, match="qps"):
        poisson_workload(rate, 10)


@pytest.mark.parametrize("spec", ["0", "10:5", "abc", "-3"])
def test_bad_length_specs(spec):
    with pytest.raises(InputError, match="prompt tokens"):
        poisson_workload(1.0, 10, prompt_tokens=spec)


def _trace(tmp_path, text):
    path = tmp_path / "trace.csv"
    path.write_text(text)
    return path


def test_trace_round_trip_with_aliases_and_blank_lines(tmp_path):
    path = _trace(tmp_path, "arrival_time,input_tokens,output_tokens\n0.0,10,5\n\n"
                            "0.5,20,1\n0.5,30,2\n")
    w = read_trace(path)
    assert list(w.arrival_s) == [0.0, 0.5, 0.5]
    assert list(w.prompt_tokens) == [10, 20, 30]
    assert list(w.output_tokens) == [5, 1, 2]
    assert w.max_context_tokens == 32


@pytest.mark.parametrize("body,match", [
    ("arrival_s,prompt_tokens,output_tokens\n0,10,5\n1,-4,5\n", r"row 2 \(line 3\).*prompt_tokens.*>= 1"),
    ("arrival_s,prompt_tokens,output_tokens\n0,10,5\n1,10,0\n", r"row 2 .*output_tokens"),
    ("arrival_s,prompt_tokens,output_tokens\n2,10,5\n1,10,5\n", r"row 2 .*goes backwards"),
    ("arrival_s,prompt_tokens,output_tokens\n0,10,5\n1,10\n", r"row 2 .*missing value.*output_tokens"),
    ("arrival_s,prompt_tokens,output_tokens\n0,ten,5\n", r"row 1 .*'ten'"),
    ("arrival_s,prompt_tokens,output_tokens\n0,10.5,5\n", r"row 1 .*whole number"),
    ("arrival_s,prompt_tokens,output_tokens\n-1,10,5\n", r"row 1 .*>= 0"),
    ("arrival_s,prompt_tokens,output_tokens\nnan,10,5\n", r"row 1 .*finite"),
    ("arrival_s,prompt_tokens\n0,10\n", r"missing column 'output_tokens'"),
    ("arrival_s,prompt_tokens,output_tokens\n", r"no request rows"),
    ("", r"empty trace"),
])
def test_malformed_traces_name_the_row(tmp_path, body, match):
    with pytest.raises(InputError, match=match):
        read_trace(_trace(tmp_path, body))


def test_missing_trace_file(tmp_path):
    with pytest.raises(InputError, match="not found"):
        read_trace(tmp_path / "nope.csv")
