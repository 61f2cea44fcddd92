"""simulator.des.capacity: the sustainable rate by hand, the backlog growth, and `serve`'s
OVERLOADED verdict on the issue's example (llama-3-8b BF16 on a phone at 1 request/s)."""
import json

import numpy as np
import pandas as pd
import pytest

from precsim.codesign.cli import main
from precsim.simulator.des.capacity import Overload, backlog_growth, sustainable_rate


class FlatCosts:
    """0.1 s of prefill per prompt, 0.05 s per decode step, whatever the batch."""

    def prefill(self, n_seqs, prompt_tokens, prompt_lens=None):
        return 0.1 * n_seqs, 0.0

    def decode(self, batch, context_tokens):
        return 0.05, 0.0


def test_sustainable_rate_by_hand():
    # B = min(4, 1000 // 110) = 4: mu = 4 / (4 x 0.1 + 10 x 0.05) = 4 / 0.9
    mu, batch = sustainable_rate(FlatCosts(), 4, 8192, 1000, 100, 10)
    assert batch == 4 and mu == pytest.approx(4 / 0.9)
    # the KV cache holds 2 requests of 110 tokens: mu = 2 / (0.2 + 0.5)
    mu, batch = sustainable_rate(FlatCosts(), 4, 8192, 220, 100, 10)
    assert batch == 2 and mu == pytest.approx(2 / 0.7)
    assert sustainable_rate(FlatCosts(), 4, 8192, 100, 100, 10) == (0.0, 0)


def _requests(finish_after):
    arrival = np.arange(40, dtype=float)
    return pd.DataFrame({"arrival_s": arrival, "finish_s": arrival + finish_after,
                         "rejected": np.zeros(40, bool)})


def test_backlog_growth():
    assert backlog_growth(_requests(0.5)) == pytest.approx(0.0)       # one at a time
    # request i waits i s: at arrival t about t/2 requests are still in the system
    assert backlog_growth(_requests(np.arange(40.0))) == pytest.approx(0.5, abs=0.05)


def test_overloaded_when_arrivals_beat_the_rate_or_the_backlog_runs_away():
    assert Overload(1.0, 0.5, 8, 0.0).overloaded
    assert not Overload(1.0, 2.0, 8, 0.1).overloaded
    assert Overload(1.0, 2.0, 8, 0.6).overloaded


def test_serve_flags_the_issue_example(capsys):
    argv = ["serve", "--profile", "snapdragon-8-gen3", "--model", "llama-3-8b", "--quant",
            "BF16", "--qps", "1", "--requests", "50"]
    assert main([*argv, "--json"]) == 0            # an answer, flagged
    doc = json.loads(capsys.readouterr().out)
    assert doc["overloaded"] is True and doc["feasible"] is True
    # the analytic rate is what the run achieved once saturated
    assert doc["sustainable_rate_per_s"] == pytest.approx(doc["throughput_requests_per_s"],
                                                          rel=0.05)
    assert doc["backlog_growth_per_s"] > 0.5 * doc["arrival_rate_per_s"]
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert "OVERLOADED: arrivals 0.886/s (over the run) exceed the sustainable 0.174/s" in out
    assert "p99 (s)" in out                        # units in the latency table


def test_requests_arriving_at_once_are_not_overloaded(capsys):
    assert main(["serve", "--profile", "h100-sxm", "--model", "llama-3.2-1b", "--quant",
                 "BF16", "--qps", "5", "--requests", "1", "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["overloaded"] is False and doc["arrival_rate_per_s"] is None
