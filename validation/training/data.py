"""Token sources that need no download (numpy only, torch-free).

`MarkovSource`: a seeded sparse order-k Markov language over V symbols whose next-symbol
distribution is a mixture of sparse "skip-bigram" tables, one per look-back distance:
for j = 1..k a random table T_j gives every symbol `branching` successors with
Dirichlet(`concentration`) weights, and with a_j the symbol j positions back,
    P(x | a_1..a_k) = (1 − ε) · Σ_j λ_j · T_j(x | a_j) + ε / V,
λ = `order_weights` (sums to 1, k = len(λ)), ε > 0 a uniform floor that makes the chain
ergodic. Each table is learnable on its own (no conjunctions of symbols, which give
transformers long loss plateaus), but using a_2..a_k needs attention, so the KV cache
matters; frequent symbols are learned first, giving graded curves in N and D. The
entropy rate is exact: H = Σ_s π_s · (−Σ_x P(x|s) ln P(x|s)) nats/token, π the
stationary distribution of the state chain s → (s·V mod V^k) + x (power iteration to
machine precision). Windows start from a stationary state, so every target whose k
predecessors lie in the window has Bayes-optimal loss H: the held-out loss skips the
first k − 1 targets, and E of the law is then exactly H.

`StdlibText`: the bytes (vocabulary 256) of the `.py` files of this Python's standard
library (`sysconfig.get_paths()["stdlib"]`, site-packages excluded). About 1 file in 16
(chosen by a hash of its path) is held out for the evaluation loss.

Both give prefix-consistent training streams: a run with more tokens sees a superset of
the windows of a run with fewer tokens and the same seed.
"""
from __future__ import annotations

import hashlib
import json
import math
import sys
import sysconfig
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path

import numpy as np
import scipy.sparse as sp

from precsim.simulator.errors import InputError

DATA_SOURCES = ("synthetic", "stdlib")
_CHUNK_WINDOWS = 512          # windows generated per seeded chunk (prefix consistency)
_EVAL_STREAM = 0x5EED_E7A1    # rng stream of the held-out windows (independent of run seed)


def _row_entropy_nats(p: np.ndarray) -> np.ndarray:
    with np.errstate(divide="ignore", invalid="ignore"):
        return -np.where(p > 0, p * np.log(p), 0.0).sum(axis=-1)


def stationary_distribution(transition: np.ndarray, order: int, tol: float = 1e-15,
                            max_iter: int = 200_000) -> tuple[np.ndarray, float]:
    """π of the order-k chain with next-symbol table `transition[S, V]` (S = V^order),
    by power iteration on the sparse state matrix; returns (π, final L1 residual ‖πM − π‖₁)."""
    n_states, vocab = transition.shape
    if n_states != vocab ** order:
        raise ValueError(f"transition has {n_states} rows; expected V^k = {vocab ** order}")
    states = np.arange(n_states)
    nxt = (states[:, None] * vocab) % n_states + np.arange(vocab)[None, :]
    m_t = sp.csr_matrix((transition.ravel(), (nxt.ravel(), np.repeat(states, vocab))),
                        shape=(n_states, n_states))          # Mᵀ: π_next = Mᵀ π
    pi = np.full(n_states, 1.0 / n_states)
    residual = math.inf
    for _ in range(max_iter):
        new = m_t @ pi
        new /= new.sum()
        residual = float(np.abs(new - pi).sum())
        pi = new
        if residual < tol:
            break
    return pi, residual


def entropy_rate_nats(transition: np.ndarray, order: int) -> float:
    """H = Σ_s π_s H(P(·|s)) in nats per token."""
    pi, _ = stationary_distribution(transition, order)
    return float(pi @ _row_entropy_nats(transition))


@dataclass(frozen=True)
class MarkovSource:
    """Sparse skip-bigram-mixture Markov language; `seed` fixes the language (not the run)."""

    vocab_size: int = 128
    order_weights: tuple[float, ...] = (0.6, 0.4)
    branching: int = 3
    concentration: float = 1.0
    smoothing: float = 0.02
    seed: int = 1234
    name: str = field(default="synthetic", init=False)

    def __post_init__(self) -> None:
        k = len(self.order_weights)
        if not 2 <= self.vocab_size <= 256 or k < 1 or self.vocab_size ** (k + 1) > 2 ** 24:
            raise InputError(f"synthetic language: vocab_size {self.vocab_size} (2..256) and "
                             f"order {k} (>= 1, table V^(k+1) <= 2^24 entries) out of range")
        if (min(self.order_weights) < 0 or not math.isclose(sum(self.order_weights), 1.0)
                or not 1 <= self.branching <= self.vocab_size or not 0 < self.smoothing < 1):
            raise InputError("synthetic language: order_weights must be >= 0 and sum to 1, "
                             "branching 1..vocab_size, smoothing in (0, 1)")

    @property
    def order(self) -> int:
        return len(self.order_weights)

    @cached_property
    def transition(self) -> np.ndarray:
        """P(x | s) for every context s: shape [V^k, V], rows sum to 1."""
        v, k = self.vocab_size, self.order
        states = np.arange(v ** k)
        mixed = np.zeros((v ** k, v))
        for j, weight in enumerate(self.order_weights, start=1):
            rng = np.random.default_rng([self.seed, j])
            successors = np.argsort(rng.random((v, v)), axis=1)[:, : self.branching]
            probs = rng.gamma(self.concentration, size=(v, self.branching))
            table = np.zeros((v, v))
            np.put_along_axis(table, successors, probs / probs.sum(axis=1, keepdims=True), 1)
            mixed += weight * table[(states // v ** (j - 1)) % v]   # the symbol j back
        return (1.0 - self.smoothing) * mixed + self.smoothing / v

    @cached_property
    def _stationary(self) -> tuple[np.ndarray, float]:
        return stationary_distribution(self.transition, self.order)

    @property
    def entropy_rate_nats(self) -> float:
        return float(self._stationary[0] @ _row_entropy_nats(self.transition))

    @property
    def eval_skip(self) -> int:
        """Targets at the start of a window whose context is incomplete."""
        return self.order - 1

    @property
    def known_entropy_nats(self) -> float | None:
        return self.entropy_rate_nats

    @cached_property
    def fingerprint(self) -> str:
        spec = json.dumps([self.vocab_size, list(self.order_weights), self.branching,
                           self.concentration, self.smoothing, self.seed])
        return hashlib.sha256(spec.encode()).hexdigest()[:12]

    def describe(self) -> str:
        weights = ", ".join(f"{w:g}" for w in self.order_weights)
        return (f"sparse order-{self.order} Markov language (mixture of skip-bigram tables, "
                f"weights {weights}), V={self.vocab_size}, {self.branching} successors per "
                f"symbol and distance (Dirichlet {self.concentration:g}), "
                f"uniform floor eps={self.smoothing:g}, language seed {self.seed}; "
                f"entropy rate {self.entropy_rate_nats:.6f} nats/token "
                f"(stationary residual {self._stationary[1]:.1e})")

    def _sample(self, n_windows: int, length: int, rng: np.random.Generator) -> np.ndarray:
        """`n_windows` stationary windows of `length` symbols (vectorised over windows)."""
        pi, _ = self._stationary
        v, k, n_states = self.vocab_size, self.order, self.vocab_size ** self.order
        cdf = np.cumsum(self.transition, axis=1)
        state = rng.choice(n_states, size=n_windows, p=pi)
        out = np.empty((n_windows, length), dtype=np.int64)
        for j in range(min(k, length)):      # the first k symbols spell the start state
            out[:, j] = (state // v ** (k - 1 - j)) % v
        u = rng.random((n_windows, max(length - k, 0)))
        for j in range(k, length):
            x = np.minimum((u[:, j - k, None] > cdf[state]).sum(axis=1), v - 1)
            out[:, j] = x
            state = (state * v) % n_states + x
        return out

    def epochs(self, n_tokens: int, length: int) -> float:
        """Passes over the training data: 0, every window is freshly sampled."""
        return 0.0

    def train_windows(self, n_windows: int, length: int, seed: int) -> np.ndarray:
        chunks = -(-n_windows // _CHUNK_WINDOWS)
        parts = [self._sample(_CHUNK_WINDOWS, length,
                              np.random.default_rng([self.seed, seed, length, c]))
                 for c in range(chunks)]
        return np.concatenate(parts)[:n_windows]

    def eval_windows(self, n_windows: int, length: int) -> np.ndarray:
        return self._sample(n_windows, length,
                            np.random.default_rng([self.seed, _EVAL_STREAM, length]))


def stdlib_python_files(root: str | Path | None = None) -> list[Path]:
    """The standard library's `.py` files, sorted; site-/dist-packages excluded."""
    root = Path(root or sysconfig.get_paths()["stdlib"])
    files = sorted(p for p in root.rglob("*.py")
                   if not {"site-packages", "dist-packages"} & set(p.relative_to(root).parts)
                   and p.is_file())
    if not files:
        raise InputError(f"{root}: no Python source files found for --data stdlib")
    return files


@dataclass(frozen=True)
class StdlibText:
    """Byte-level text of the standard library; at most `max_bytes` of training text."""

    root: str = ""
    max_bytes: int = 24_000_000
    heldout_every: int = 16
    name: str = field(default="stdlib", init=False)
    vocab_size: int = field(default=256, init=False)
    eval_skip: int = field(default=0, init=False)
    known_entropy_nats: None = field(default=None, init=False)

    @cached_property
    def _streams(self) -> tuple[np.ndarray, np.ndarray, int]:
        root = Path(self.root or sysconfig.get_paths()["stdlib"])
        train, held, n_files = [], [], 0
        files = stdlib_python_files(root)
        key = {p: hashlib.sha256(p.relative_to(root).as_posix().encode()).digest() for p in files}
        used = 0
        for path in sorted(files, key=key.__getitem__):     # deterministic, mixed order
            data = path.read_bytes()
            if key[path][0] % self.heldout_every == 0:
                held.append(data)
            elif used < self.max_bytes:
                train.append(data)
                used += len(data)
            n_files += 1
        as_array = lambda chunks: np.frombuffer(b"\n".join(chunks), dtype=np.uint8)  # noqa: E731
        return as_array(train), as_array(held), n_files

    @cached_property
    def fingerprint(self) -> str:
        train, held, _ = self._streams
        digest = hashlib.sha256(train.tobytes())
        digest.update(held.tobytes())
        return digest.hexdigest()[:12]

    def describe(self) -> str:
        train, held, n_files = self._streams
        return (f"byte-level text of the Python {sys.version_info.major}."
                f"{sys.version_info.minor} standard library ({n_files} .py files): "
                f"{train.size:,} training bytes, {held.size:,} held-out bytes "
                f"(1 file in {self.heldout_every} by path hash)")

    def train_windows(self, n_windows: int, length: int, seed: int) -> np.ndarray:
        """Non-overlapping windows of the training bytes in a seeded order; once all are
        used a new epoch re-shuffles them (repetition is counted in `epochs`)."""
        train, _, _ = self._streams
        available = (train.size - 1) // (length - 1)
        picks, epoch = [], 0
        while sum(map(len, picks)) < n_windows:
            picks.append(np.random.default_rng([seed, length, epoch]).permutation(available))
            epoch += 1
        starts = np.concatenate(picks)[:n_windows] * (length - 1)
        return train[starts[:, None] + np.arange(length)].astype(np.int64)

    def epochs(self, n_tokens: int, length: int) -> float:
        train, _, _ = self._streams
        return n_tokens / ((train.size - 1) // (length - 1) * (length - 1))

    def eval_windows(self, n_windows: int, length: int) -> np.ndarray:
        """Windows evenly spread over the held-out bytes."""
        _, held, _ = self._streams
        if held.size < length:
            raise InputError("stdlib: held-out text shorter than one window")
        starts = np.linspace(0, held.size - length, n_windows).astype(np.int64)
        return held[starts[:, None] + np.arange(length)].astype(np.int64)


def make_source(name: str):
    """The token source called `name` ('synthetic' or 'stdlib') with default settings."""
    if name == "synthetic":
        return MarkovSource()
    if name == "stdlib":
        return StdlibText()
    raise InputError(f"--data {name!r}: unknown data source; expected one of "
                     f"{', '.join(DATA_SOURCES)}")
