"""Training throughput of the law-validation harness and the sweep time it implies.

    python benchmarks/law_sweep.py [--grid default] [--threads 1] [--jobs N] [--steps 30]
                                   [--json]

For every model shape of the grid, times `--steps` optimiser steps (after 3 warm-up steps)
on `--threads` torch threads (the sweep trains each run on 1), at full precision and with
int4 fake quantization of weights, activations and KV, and reports tokens/s. The
predicted sweep time sums each run's D over the measured rate of its shape and precision
class and divides by `--jobs` parallel processes (default: usable cores), assuming they
do not slow each other (evaluation and PTQ passes not included). Wall-clock numbers
depend on the machine and on whatever else runs on it (`cpu_s_per_wall_s` well below
the thread count means another process held a core).
"""
from __future__ import annotations

import argparse
import json
import time

import pandas as pd
import torch
import torch.nn.functional as F

from precsim.validation.training.data import make_source
from precsim.validation.training.model import ModelShape, TinyLM, TrainPrecision
from precsim.validation.training.numformat import parse_format
from precsim.validation.training.sweep import default_jobs, load_grid
from precsim.validation.training.train import torch_threads

INT4 = TrainPrecision(*(parse_format("int4"),) * 3)


def tokens_per_s(shape: ModelShape, precision: TrainPrecision, batch_size: int,
                 steps: int) -> tuple[float, float]:
    """(training tokens/s, CPU s per wall s) over `steps` AdamW steps on random tokens."""
    torch.manual_seed(0)
    model = TinyLM(shape, precision)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
    tokens = torch.randint(0, shape.vocab_size, (batch_size, shape.seq_len + 1))

    def step() -> None:
        logits = model(tokens[:, :-1])
        loss = F.cross_entropy(logits.reshape(-1, shape.vocab_size), tokens[:, 1:].reshape(-1))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    for _ in range(3):
        step()
    wall, cpu = time.perf_counter(), time.process_time()
    for _ in range(steps):
        step()
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    return steps * batch_size * shape.seq_len / wall, cpu / wall


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--grid", default="default")
    parser.add_argument("--data", default="synthetic")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--jobs", type=int, default=None)
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    grid = load_grid(args.grid)
    source = make_source(args.data)
    configs = grid.configs(source)
    torch.set_flush_denormal(True)
    rows, rate = [], {}
    with torch_threads(args.threads) as threads:
        for d_model, n_layers, n_heads in sorted({(c.d_model, c.n_layers, c.n_heads)
                                                  for c in configs}):
            shape = ModelShape(d_model, n_layers, n_heads, source.vocab_size, grid.seq_len)
            for label, precision in (("full", TrainPrecision()), ("int4 w/a/kv", INT4)):
                tps, load = tokens_per_s(shape, precision, grid.batch_size, args.steps)
                rate[(d_model, n_layers, label)] = tps
                rows.append({"d_model": d_model, "n_layers": n_layers,
                             "N": shape.non_embedding_params, "precision": label,
                             "tokens_per_s": round(tps), "flop_per_s_6ND": 6 *
                             shape.non_embedding_params * tps, "cpu_s_per_wall_s": load})
    jobs = args.jobs or default_jobs()
    predicted = sum(c.trained_tokens / rate[(c.d_model, c.n_layers, "full" if
                    (c.w_format, c.a_format, c.kv_format) == ("none",) * 3 else "int4 w/a/kv")]
                    for c in configs) / jobs
    result = {"grid": grid.name, "runs": len(configs), "threads": threads, "jobs": jobs,
              "training_tokens": sum(c.trained_tokens for c in configs),
              "predicted_training_s": predicted, "shapes": rows}
    if args.json:
        print(json.dumps(result, indent=2))
        return
    print(pd.DataFrame(rows).to_string(index=False, float_format=lambda v: f"{v:.3g}"))
    print(f"\ngrid {grid.name!r}: {len(configs)} runs, {result['training_tokens']:,} training "
          f"tokens, predicted training time {predicted / 60:.1f} min with {jobs} job(s) of "
          f"{threads} thread(s) (evaluation and PTQ passes not included)")


if __name__ == "__main__":
    main()
