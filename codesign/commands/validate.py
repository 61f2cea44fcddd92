"""`precsim calibrate` and `precsim validate`: measure this machine with PyTorch.

calibrate: microbenchmarks fill the `host` profile and write it as YAML with `measured:`
provenance. validate: calibrate (or load `--profile`), measure held-out kernels and the
small transformer, simulate them, and write CSV / PNG / Markdown into `--out`.
"""
from __future__ import annotations

import argparse

from precsim.codesign.commands.common import MAX_DEGREE, add_json_arg, int_arg, print_json
from precsim.codesign.progress import reporter
from precsim.simulator.errors import InputError


def register(subparsers: argparse._SubParsersAction) -> None:
    p_cal = subparsers.add_parser(
        "calibrate", help="measure this machine with PyTorch and write a host profile",
        description="Run memory-stream, GEMM, per-call-overhead, one-token matmul, "
                    "weight-only, element-wise, attention and dequantisation "
                    "microbenchmarks and write a hardware profile whose measured fields "
                    "say how and when they were measured (docs/validation.md).")
    p_cal.add_argument("--out", required=True, metavar="FILE.yaml",
                       help="profile file to write (atomically)")
    p_cal.add_argument("--quick", action="store_true",
                       help="fewer sizes and shorter timings (a few minutes on 2 cores; "
                            "longer on a busy machine)")
    p_cal.add_argument("--smoke", action="store_true", help=argparse.SUPPRESS)
    _add_common(p_cal)
    p_cal.set_defaults(func=cmd_calibrate)

    p_val = subparsers.add_parser(
        "validate", help="measure kernels with PyTorch and compare with the simulator",
        description="Calibrate the host profile (or load --profile), measure held-out "
                    "kernels and a small transformer with PyTorch, simulate the same "
                    "kernels, and write kernels.csv, by_format.csv, scatter.png and "
                    "summary.md into --out.")
    p_val.add_argument("--out", required=True, metavar="DIR",
                       help="output folder (replaced atomically)")
    p_val.add_argument("--quick", action="store_true",
                       help="the short plan (about 240 timed jobs in 16 rounds: 2-4 "
                            "minutes on the 2-core VM measuring one core, docs/validation.md)")
    p_val.add_argument("--profile", metavar="FILE",
                       help="use this host profile instead of calibrating first")
    p_val.add_argument("--smoke", action="store_true", help=argparse.SUPPRESS)
    _add_common(p_val)
    p_val.set_defaults(func=cmd_validate)


def _add_common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--device", default="auto", choices=("auto", "cpu", "cuda"),
                        help="where to measure (auto: cuda when a GPU is present)")
    parser.add_argument("--threads", type=int_arg(MAX_DEGREE), metavar="N",
                        help="CPU threads for PyTorch (default: its own choice, one per "
                             "core; validate uses 1 when other processes hold a core); the "
                             "profile then describes N threads")
    parser.add_argument("--no-progress", action="store_true",
                        help="no progress on stderr (default: a bar with count and ETA on "
                             "a terminal, one line per measurement round otherwise)")
    add_json_arg(parser)


def cmd_calibrate(args: argparse.Namespace) -> int:
    from precsim.validation.bench import FULL, QUICK, TINY
    from precsim.validation.calibrate import run_calibration, write_profile
    from precsim.validation.torchenv import TorchUnavailable, resolve_device, set_threads

    if not str(args.out).endswith((".yaml", ".yml")):
        raise InputError(f"--out {args.out}: expected a .yaml file name")
    try:
        device = resolve_device(args.device)
    except TorchUnavailable as exc:
        raise InputError(f"calibrate: {exc}") from None
    set_threads(args.threads)
    quick = args.quick or args.smoke
    settings = TINY if args.smoke else (QUICK if quick else FULL)
    with reporter(f"calibrate ({'quick' if quick else 'full'}, {device})", unit="case",
                  enabled=False if args.no_progress else None) as on_progress:
        cal = run_calibration(device, settings, quick=quick, on_progress=on_progress)
    path = write_profile(cal.profile_doc, args.out)
    summary = {"out": str(path), "device": device, **cal.summary()}
    if args.json:
        print_json(summary)
    else:
        from precsim.validation.report import calibration_text
        print(calibration_text(cal))
        print(f"wrote {path}")
    return 0


def cmd_validate(args: argparse.Namespace) -> int:
    from precsim.validation.run import run_validation

    with reporter("validate", unit="case",
                  enabled=False if args.no_progress else None) as on_progress:
        result = run_validation(out=args.out, quick=args.quick or args.smoke,
                                smoke=args.smoke, profile=args.profile, device=args.device,
                                threads=args.threads, on_progress=on_progress)
    if args.json:
        print_json(result)
    else:
        print(result["summary_text"])
        print(f"wrote {result['out']}")
    return 0
