"""Token sources: exact Markov entropy rate, deterministic windows, the stdlib text."""
import math

import numpy as np
import pytest

from precsim.simulator.errors import InputError
from precsim.validation.training.data import (MarkovSource, StdlibText, entropy_rate_nats, make_source,
                                      stationary_distribution, stdlib_python_files)


def h(p: float) -> float:
    return -(p * math.log(p) + (1 - p) * math.log(1 - p))


def test_two_state_chain_entropy_rate_by_hand():
    a, b = 0.1, 0.3
    P = np.array([[1 - a, a], [b, 1 - b]])
    pi, residual = stationary_distribution(P, order=1)
    np.testing.assert_allclose(pi, [b / (a + b), a / (a + b)], rtol=1e-12)
    assert residual < 1e-14
    expected = b / (a + b) * h(a) + a / (a + b) * h(b)
    assert entropy_rate_nats(P, 1) == pytest.approx(expected, rel=1e-12)


def test_order_two_chain_matches_dense_eigenvector():
    rng = np.random.default_rng(3)
    V = 3
    P = rng.dirichlet(np.ones(V), size=V * V)            # P(x | last two symbols)
    M = np.zeros((V * V, V * V))
    for s in range(V * V):
        for x in range(V):
            M[s, (s * V) % (V * V) + x] += P[s, x]
    w, vecs = np.linalg.eig(M.T)
    pi = np.real(vecs[:, np.argmin(np.abs(w - 1))])
    pi /= pi.sum()
    H = float(pi @ -(P * np.log(P)).sum(axis=1))
    assert entropy_rate_nats(P, 2) == pytest.approx(H, rel=1e-10)


def test_markov_source_table_and_empirical_loss():
    src = MarkovSource(vocab_size=8, order_weights=(0.5, 0.5), branching=2, seed=5)
    T = src.transition
    assert T.shape == (64, 8)
    np.testing.assert_allclose(T.sum(axis=1), 1.0)
    assert T.min() == pytest.approx(src.smoothing / 8)
    # Bayes-optimal NLL of sampled windows (targets past the first k-1) estimates H.
    w = src.eval_windows(4000, 33)
    state = w[:, 0] * 8 + w[:, 1]
    nll = []
    for j in range(2, 33):
        nll.append(-np.log(T[state, w[:, j]]))
        state = (state * 8) % 64 + w[:, j]
    nll = np.concatenate(nll)
    assert abs(nll.mean() - src.entropy_rate_nats) < 4 * nll.std() / math.sqrt(nll.size)
    assert src.eval_skip == 1
    assert src.known_entropy_nats == src.entropy_rate_nats


def test_markov_windows_are_seeded_and_prefix_consistent():
    src = MarkovSource(vocab_size=8, order_weights=(1.0,), branching=3)
    a = src.train_windows(1500, 17, seed=0)
    assert np.array_equal(a, src.train_windows(1500, 17, seed=0))
    assert np.array_equal(a[:700], src.train_windows(700, 17, seed=0))
    assert not np.array_equal(a, src.train_windows(1500, 17, seed=1))
    assert np.array_equal(src.eval_windows(10, 17), src.eval_windows(10, 17))
    assert a.min() >= 0 and a.max() < 8
    assert src.fingerprint != MarkovSource(vocab_size=8, order_weights=(1.0,), branching=3,
                                           seed=9).fingerprint


def test_bad_markov_settings_are_input_errors():
    with pytest.raises(InputError, match="order_weights"):
        MarkovSource(order_weights=(0.5, 0.2))
    with pytest.raises(InputError, match="vocab_size"):
        MarkovSource(vocab_size=1)


def test_stdlib_text_loader_finds_python_source():
    files = stdlib_python_files()
    assert len(files) > 100 and all(f.suffix == ".py" for f in files)
    assert not any("site-packages" in f.parts for f in files)
    src = StdlibText(max_bytes=2_000_000)
    train = src.train_windows(64, 129, seed=0)
    text = bytes(train.astype(np.uint8).ravel())
    assert b"def " in text or b"import " in text
    held = bytes(src.eval_windows(16, 129).astype(np.uint8).ravel())
    assert held and src.vocab_size == 256 and src.eval_skip == 0
    assert np.array_equal(train, src.train_windows(64, 129, seed=0))
    assert "standard library" in src.describe()


def test_unknown_source_is_an_input_error():
    assert make_source("synthetic").name == "synthetic"
    with pytest.raises(InputError, match="'wikipedia'.*synthetic, stdlib"):
        make_source("wikipedia")
