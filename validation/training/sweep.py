"""Sweeps: a grid of (model size, tokens D, training formats) × post-training widths,
trained in parallel single-threaded processes with progress, logged durably, resumable.

A grid is a union of factorial blocks (models × tokens × precisions), so a design can
cross N and D densely at full precision and add quantized training on a subset, as the
paper does. Each run is identified by `RunConfig.run_id` (a hash of everything that
determines its result, including the data source's fingerprint); on restart the sweep
skips the run_ids already complete in the log. Runs are seeded (`torch.manual_seed`,
seeded data order), so an interrupted-and-resumed sweep writes the same rows (up to the
timing columns) as an uninterrupted one with the same seeds.

Presets (`GRIDS`): "default" (~20 min on 2 CPU cores), "quick" (~75 s) and "tiny"
(seconds; for tests). A YAML file with the same fields defines a custom grid.
"""
from __future__ import annotations

import os
import sys
from collections.abc import Callable
from dataclasses import dataclass, fields
from pathlib import Path

import pandas as pd

from precsim.simulator.errors import InputError
from precsim.simulator.io import load_yaml_mapping
from precsim.validation.training.numformat import parse_format
from precsim.validation.training.runs import RunLog, read_runs_csv

Model = tuple[int, int, int]            # d_model, n_layers, n_heads
Precision = tuple[str, str, str]        # weight, activation, KV format


@dataclass(frozen=True)
class GridBlock:
    """A factorial block: every model × every token count × every training precision."""

    models: tuple[Model, ...]
    tokens: tuple[int, ...]
    precisions: tuple[Precision, ...] = (("none", "none", "none"),)


@dataclass(frozen=True)
class SweepGrid:
    """A union of blocks plus the settings shared by every run.

    `lr` is the peak rate at d_model <= 64; wider models get lr·64/d_model (Adam's
    optimal rate falls ~1/width). Measured on the synthetic language at 2M tokens: at
    d=64, 1e-2 beat 3e-3, 6e-3 and 2e-2; at d=128, 3e-3 beat 1e-2.
    """

    name: str
    blocks: tuple[GridBlock, ...]
    post_bits: tuple[int, ...] = (2, 3, 4, 5, 6, 8)
    seeds: tuple[int, ...] = (0,)
    seq_len: int = 64
    batch_size: int = 32
    lr: float = 1e-2
    eval_tokens: int = 32768
    group_size: int = 32

    def lr_for(self, d_model: int) -> float:
        return self.lr * min(1.0, 64 / d_model)

    def configs(self, source) -> list:
        """The grid's runs in a stable order (blocks, then seed, model, precision, D),
        duplicates across blocks removed."""
        from precsim.validation.training.train import RunConfig
        seen, out = set(), []
        for block in self.blocks:
            for seed in self.seeds:
                for d_model, n_layers, n_heads in block.models:
                    for w, a, kv in block.precisions:
                        for tokens in block.tokens:
                            cfg = RunConfig(
                                data=source.name, data_fingerprint=source.fingerprint,
                                d_model=d_model, n_layers=n_layers, n_heads=n_heads,
                                vocab_size=source.vocab_size, seq_len=self.seq_len,
                                tokens=tokens, w_format=w, a_format=a, kv_format=kv, seed=seed,
                                batch_size=self.batch_size, lr=self.lr_for(d_model),
                                post_bits=self.post_bits, group_size=self.group_size,
                                eval_tokens=self.eval_tokens)
                            if cfg.run_id not in seen:
                                seen.add(cfg.run_id)
                                out.append(cfg)
        return out


_FULL = ("none", "none", "none")
_TRAIN_PRECISIONS = (
    _FULL, ("int3", "none", "none"), ("int4", "none", "none"), ("int6", "none", "none"),
    ("int8", "none", "none"),
    ("none", "int4", "none"), ("none", "int6", "none"), ("none", "int8", "none"),
    ("none", "none", "int3"), ("none", "none", "int4"), ("none", "none", "int6"),
    ("int4", "int8", "int8"), ("e2m1", "none", "none"), ("e4m3", "none", "none"),
)
_M = 1 << 20   # D values are whole steps of 32 x 64 tokens

GRIDS: dict[str, SweepGrid] = {
    # 98 runs: N 25K-0.8M, D 0.5M-4M (D/N 0.6-170), 13 training formats at three sizes.
    # Measured on 2 shared CPU cores with 2 jobs: 20 min (1201 s) for the sweep, 11 s more
    # for the fits and the report; benchmarks/law_sweep.py predicts 17 min of training.
    "default": SweepGrid(
        name="default",
        blocks=(
            # Chinchilla part and PTQ of 16-bit-trained models: N x D crossed.
            GridBlock(models=((32, 2, 1), (64, 1, 2), (64, 2, 2), (96, 3, 3), (128, 4, 4)),
                      tokens=(_M // 2, _M, 2 * _M, 4 * _M)),
            # Quantized training (weights, activations, KV; integer and float) at three sizes.
            GridBlock(models=((32, 2, 1), (64, 1, 2), (64, 2, 2)), tokens=(_M, 2 * _M),
                      precisions=_TRAIN_PRECISIONS),
        ),
        post_bits=(2, 3, 4, 6, 8)),
    # 14 runs, ~75 s on 2 cores (fits included): 3 sizes x 3 token counts, 5 training formats.
    "quick": SweepGrid(
        name="quick",
        blocks=(GridBlock(models=((32, 2, 1), (64, 1, 2), (64, 2, 2)),
                          tokens=(_M // 2, _M, 2 * _M)),
                GridBlock(models=((64, 1, 2),), tokens=(_M,),
                          precisions=(("int3", "none", "none"), ("int4", "none", "none"),
                                      ("int6", "none", "none"), ("none", "int4", "none"),
                                      ("none", "none", "int4")))),
        post_bits=(2, 3, 4, 6), eval_tokens=8192),
    # seconds: for the tests.
    "tiny": SweepGrid(
        name="tiny",
        blocks=(GridBlock(models=((32, 1, 1), (32, 2, 1)), tokens=(8192, 16384)),
                GridBlock(models=((32, 1, 1),), tokens=(8192,),
                          precisions=(("int4", "none", "none"), ("int3", "int8", "int4")))),
        post_bits=(3, 4), seq_len=32, batch_size=8, eval_tokens=1024),
}


def _ints(doc: dict, key: str, path: Path, default=None, minimum: int = 1) -> tuple[int, ...]:
    value = doc.get(key, default)
    if value is None:
        raise InputError(f"{path}: field {key!r} is required")
    items = value if isinstance(value, list) else [value]
    out = []
    for item in items:
        if isinstance(item, bool) or not isinstance(item, (int, float)) or item != int(item) \
                or item < minimum:
            raise InputError(f"{path}: field {key!r}: {item!r} is not an integer >= {minimum}")
        out.append(int(item))
    if not out:
        raise InputError(f"{path}: field {key!r} is empty")
    return tuple(out)


def _block(doc: dict, path: Path, where: str) -> GridBlock:
    models = doc.get("models")
    if not isinstance(models, list) or not models:
        raise InputError(f"{path}: {where}models must be a non-empty list of "
                         "[d_model, n_layers, n_heads]")
    parsed_models = []
    for m in models:
        if not (isinstance(m, list) and len(m) == 3 and all(
                isinstance(v, int) and not isinstance(v, bool) and v > 0 for v in m)):
            raise InputError(f"{path}: {where}models: {m!r} is not [d_model, n_layers, n_heads] "
                             "(positive integers)")
        if m[0] % m[2]:
            raise InputError(f"{path}: {where}models: d_model {m[0]} is not divisible by "
                             f"n_heads {m[2]}")
        parsed_models.append(tuple(m))
    precisions = doc.get("precisions", [list(_FULL)])
    if not isinstance(precisions, list) or not precisions:
        raise InputError(f"{path}: {where}precisions must be a non-empty list of [w, a, kv]")
    parsed_prec = []
    for p in precisions:
        if not (isinstance(p, list) and len(p) == 3):
            raise InputError(f"{path}: {where}precisions: {p!r} is not [w, a, kv] "
                             "(e.g. [int4, none, none])")
        parsed_prec.append(tuple(parse_format(v, f"{path}: {where}precision").name for v in p))
    return GridBlock(tuple(parsed_models), _ints(doc, "tokens", path), tuple(parsed_prec))


def load_grid(spec: str) -> SweepGrid:
    """A preset name from GRIDS or a YAML file: `blocks:` (list of {models, tokens,
    precisions}) or those three fields at top level, plus optional post_bits, seeds,
    seq_len, batch_size, lr, eval_tokens, group_size."""
    if spec in GRIDS:
        return GRIDS[spec]
    path = Path(spec)
    if not path.suffix.lower() in (".yaml", ".yml") and not path.exists():
        raise InputError(f"--grid {spec!r}: not a preset ({', '.join(GRIDS)}) nor a YAML file")
    doc = load_yaml_mapping(path, "grid file")
    known = {f.name for f in fields(SweepGrid)} - {"name"} | {"models", "tokens", "precisions"}
    unknown = sorted(set(doc) - known)
    if unknown:
        raise InputError(f"{path}: unknown field(s) {', '.join(unknown)}; known: "
                         f"{', '.join(sorted(known))}")
    if "blocks" in doc:
        if not isinstance(doc["blocks"], list) or not doc["blocks"]:
            raise InputError(f"{path}: blocks must be a non-empty list")
        blocks = tuple(_block(b if isinstance(b, dict) else {}, path, f"blocks[{i}].")
                       for i, b in enumerate(doc["blocks"]))
    else:
        blocks = (_block(doc, path, ""),)
    base = SweepGrid(name=path.stem, blocks=blocks)
    post = _ints(doc, "post_bits", path, list(base.post_bits), minimum=2)
    if max(post) > 8:
        raise InputError(f"{path}: post_bits must be 2..8; got {max(post)}")
    lr = doc.get("lr", base.lr)
    if isinstance(lr, bool) or not isinstance(lr, (int, float)) or not 0 < lr < 1:
        raise InputError(f"{path}: lr {lr!r} must be a number in (0, 1)")
    grid = SweepGrid(
        name=path.stem, blocks=blocks, post_bits=post,
        seeds=_ints(doc, "seeds", path, list(base.seeds), minimum=0),
        seq_len=_ints(doc, "seq_len", path, base.seq_len, minimum=4)[0],
        batch_size=_ints(doc, "batch_size", path, base.batch_size)[0], lr=float(lr),
        eval_tokens=_ints(doc, "eval_tokens", path, base.eval_tokens)[0],
        group_size=_ints(doc, "group_size", path, base.group_size)[0])
    for block in blocks:
        for d_model, _, _ in block.models:
            if d_model % grid.group_size:
                raise InputError(f"{path}: d_model {d_model} is not a multiple of group_size "
                                 f"{grid.group_size} (PTQ groups along the input width)")
    return grid


def default_jobs() -> int:
    """CPU cores this process may use (its affinity mask)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:
        return os.cpu_count() or 1


_WORKER_SOURCE = None


def _init_worker(source) -> None:
    global _WORKER_SOURCE
    _WORKER_SOURCE = source
    import torch
    torch.set_num_threads(1)


def _train_in_worker(cfg) -> list[dict]:
    from precsim.validation.training.train import train_run
    return train_run(cfg, _WORKER_SOURCE)


def _describe(cfg) -> str:
    return (f"d={cfg.d_model} L={cfg.n_layers} D={cfg.trained_tokens:,} "
            f"{cfg.w_format}/{cfg.a_format}/{cfg.kv_format}")


def run_sweep(grid: SweepGrid, source, log_path: str | os.PathLike, *,
              jobs: int | None = None,
              progress: bool | None | Callable[[str, int, int], None] = True
              ) -> pd.DataFrame:
    """Run every config of `grid` not yet in the log at `log_path`; return the grid's rows
    (in grid order).

    Each run trains single-threaded (bit-identical results whatever `jobs` is); `jobs`
    runs (default: one per usable core) train at once in spawned worker processes, and
    each finished run is appended to the log durably as soon as it completes, so a crash
    loses only the runs in flight. Measured on 2 cores: the quick grid trained 1.7x faster
    on 2 one-thread processes than on 1; torch's 2 intra-op threads gave 1.6x in one
    process (benchmarks/law_sweep.py) but ran up to 20x slower whenever another program
    held a core, while separate processes only share the cores.
    Once every run is done the log is rewritten (atomically) in grid order, so a finished
    sweep's CSV does not depend on `jobs` or on interruptions.
    progress: True/False show/hide the tqdm bar (stderr); None shows it on a terminal only;
    a callable `on_progress(run, done, total)` is called instead (codesign.progress).
    """
    from tqdm import tqdm

    from precsim.validation.training import train
    jobs = jobs or default_jobs()
    if jobs < 1:
        raise InputError(f"jobs must be >= 1; got {jobs}")
    configs = grid.configs(source)
    order = {c.run_id: i for i, c in enumerate(configs)}
    log = RunLog(log_path)
    with log.locked():
        finished = set(log.load()["run_id"])
        todo = [c for c in configs if c.run_id not in finished]
        bar = _CallbackBar(progress, len(configs), len(configs) - len(todo)) \
            if callable(progress) else \
            tqdm(total=len(configs), initial=len(configs) - len(todo), unit="run",
                 desc=f"law sweep ({grid.name}, {source.name})", file=sys.stderr,
                 disable=None if progress is None else not progress, dynamic_ncols=True)
        with bar:
            if jobs == 1 or len(todo) <= 1:
                with train.torch_threads(1):
                    for cfg in todo:
                        bar.set_postfix_str(_describe(cfg))
                        log.append(train.train_run(cfg, source))
                        bar.update(1)
            else:
                _parallel(todo, source, log, bar, min(jobs, len(todo)))
        log.sort(order)
    table = read_runs_csv(log.path)
    position = table["run_id"].map(order)
    return table.assign(_pos=position).dropna(subset=["_pos"]).sort_values(
        "_pos", kind="stable").drop(columns="_pos")


class _CallbackBar:
    """The part of tqdm's interface run_sweep uses, reporting to `on_progress(stage, done,
    total)` (the codesign.progress callback; validation does not import codesign)."""

    def __init__(self, on_progress: Callable[[str, int, int], None], total: int,
                 initial: int) -> None:
        self.on_progress, self.total, self.n, self.postfix = on_progress, total, initial, ""
        on_progress("", initial, total)

    def set_postfix_str(self, text: str) -> None:
        self.postfix = text

    def update(self, n: int) -> None:
        self.n += n
        self.on_progress(self.postfix, self.n, self.total)

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        return None


def _parallel(todo: list, source, log: RunLog, bar, jobs: int) -> None:
    """Train `todo` on `jobs` spawned single-threaded workers, logging runs as they finish."""
    import multiprocessing
    from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait

    pool = ProcessPoolExecutor(max_workers=jobs, mp_context=multiprocessing.get_context("spawn"),
                               initializer=_init_worker, initargs=(source,))
    try:
        pending = {pool.submit(_train_in_worker, cfg): cfg for cfg in todo}
        while pending:
            done, _ = wait(pending, return_when=FIRST_COMPLETED)
            for future in done:
                cfg = pending.pop(future)
                log.append(future.result())
                bar.set_postfix_str(_describe(cfg))
                bar.update(1)
    finally:
        pool.shutdown(wait=True, cancel_futures=True)
