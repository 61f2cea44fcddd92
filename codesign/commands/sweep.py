"""`precsim sweep STUDY.yaml --out results.parquet`: a what-if study, locally or on Dask."""
from __future__ import annotations

import argparse
import sys
import time

from precsim.codesign.commands.common import (MAX_DEGREE, MAX_RETRIES, add_json_arg,
                                              add_profile_dir_arg, int_arg, print_json)
from precsim.codesign.sweep.schema import MAX_SWEEP_CONFIGS
from precsim.codesign.sweep import (DaskExecutor, LocalExecutor, load_sweep_study,
                                    parts_dir_for, run_sweep)


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "sweep", help="run a what-if study (profiles x models x formats x workloads)",
        description="Evaluate every configuration of a study YAML in chunks on a local "
                    "process pool (default) or a Dask cluster, gather the rows into one "
                    "Parquet file. Finished chunks are kept in OUT.parts/; rerunning "
                    "the same command resumes.")
    parser.add_argument("study", metavar="STUDY.yaml", help="study file (see examples/sweep.yaml)")
    parser.add_argument("--out", required=True, metavar="RESULTS.parquet",
                        help="output Parquet file (written atomically)")
    where = parser.add_mutually_exclusive_group()
    where.add_argument("--scheduler", metavar="tcp://HOST:8786",
                       help="address of a running Dask scheduler")
    where.add_argument("--local-cluster", type=int_arg(MAX_DEGREE), metavar="N",
                       help="start a Dask LocalCluster of N single-threaded workers")
    where.add_argument("--workers", type=int_arg(MAX_DEGREE), metavar="N",
                       help="local process pool size (default: all available cores)")
    parser.add_argument("--chunk-size", type=int_arg(MAX_SWEEP_CONFIGS), metavar="N",
                        help="configurations per task (overrides the study's chunk_size; "
                             "changing it does not reuse earlier checkpoints)")
    parser.add_argument("--retries", type=int_arg(MAX_RETRIES, 0), default=1, metavar="N",
                        help="extra attempts of a failed chunk before it is reported "
                             "(default 1)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar on stderr")
    add_profile_dir_arg(parser)
    add_json_arg(parser)
    parser.set_defaults(func=cmd_sweep)


def _executor(args: argparse.Namespace):
    if args.scheduler:
        return DaskExecutor(args.scheduler)
    if args.local_cluster is not None:
        return DaskExecutor(local_workers=args.local_cluster)
    return LocalExecutor(args.workers)


def cmd_sweep(args: argparse.Namespace) -> int:
    study = load_sweep_study(args.study)
    if args.chunk_size is not None:
        study = study.model_copy(update={"chunk_size": args.chunk_size})
    start = time.perf_counter()
    executor = _executor(args)
    try:
        result = run_sweep(study, executor, out=args.out, retries=args.retries,
                           progress=not args.no_progress, profile_dirs=args.profile_dir)
    finally:
        executor.close()
    elapsed_s = time.perf_counter() - start
    summary = {
        "out": str(result.out) if result.out else None, "study": study.name,
        "configs": study.n_configs,
        "rows": len(result.frame), "chunks": result.chunks, "resumed_chunks": result.resumed,
        "computed_chunks": result.computed, "failed_chunks": len(result.failures),
        "executor": result.executor, "elapsed_s": elapsed_s,
        "complete": result.complete,
        # the verdict: an incomplete sweep is not an answer (exit 1, nothing written)
        "feasible": not result.failures,
        **({"reason": f"{len(result.failures)} chunk(s) failed; nothing written to "
                      f"{args.out}"} if result.failures else {}),
        "failures": [{"chunk": f.chunk, "error": f.error, "attempts": f.attempts,
                      "configs": f.configs} for f in result.failures]}
    if args.json:
        print_json(summary)
    else:
        where = result.out or f"nothing written to {args.out} (incomplete)"
        print(f"{summary['rows']:,} of {study.n_configs:,} configurations -> {where} "
              f"({result.chunks} chunks: {result.computed} computed, {result.resumed} "
              f"resumed, {len(result.failures)} failed) on {result.executor} "
              f"in {elapsed_s:.1f} s")
    for failure in result.failures:
        print(f"precsim: sweep: {failure}", file=sys.stderr)
    if result.failures:
        print(f"precsim: sweep incomplete: finished chunks are kept in "
              f"{parts_dir_for(args.out)}; rerun the same command to retry the failed ones",
              file=sys.stderr)
        return 1
    return 0
