"""The ``bench`` sub-command: how long a prediction takes, step by step."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from ..fileio import check_output_folder


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "bench", help="time a prediction step by step, the paper's stage 1, and a batch",
        description="Time reading, preprocessing, stage 1, stage 2, the measures, the whole "
                    "predict and a one-slice nudge on a phantom with the geometry of a "
                    "clinical head-and-neck CT (512 x 512 x 191, 0.98 mm pixels, 2.5 mm "
                    "slices) and on --real-ct, for the shipped models and for the paper "
                    "preset of stage 1 (random weights: timing does not depend on them); "
                    "then a batch of small phantoms, in this process or on local clusters of "
                    "N workers. Writes DIR/bench.json and prints a table.")
    parser.add_argument("--out", required=True, type=Path, metavar="DIR", help="output folder")
    parser.add_argument("--models", type=Path, metavar="DIR",
                        help="folder with section/ and muscle/ (default: the shipped models)")
    parser.add_argument("--real-ct", type=Path, metavar="PATH",
                        help="a real CT to time as well (any format predict reads)")
    parser.add_argument("--repeats", type=int, default=3,
                        help="runs per input for the shipped models; the median is reported "
                             "(default 3)")
    parser.add_argument("--paper-repeats", type=int, default=1,
                        help="runs per input for the paper configuration, many minutes each on "
                             "a CPU; 0 skips it (default 1)")
    parser.add_argument("--batch-cases", type=int, default=20,
                        help="small phantoms for the batch figure; 0 skips it (default 20)")
    parser.add_argument("--batch-workers", default="0", metavar="N,N",
                        help="time the batch on each of these worker counts, such as 1,2, and "
                             "report the gain of the last over the first (0: in this process, "
                             "no cluster; default 0)")
    parser.set_defaults(handler=run_bench_command)


def run_bench_command(args: argparse.Namespace) -> int:
    check_output_folder(args.out)
    from ..bench import BenchOptions, format_table, run_bench
    from ..bench_batch import parse_workers

    options = BenchOptions(args.out, args.models, args.real_ct, args.repeats,
                           args.paper_repeats, args.batch_cases,
                           parse_workers(args.batch_workers))
    result = run_bench(options, lambda message: print(message, file=sys.stderr, flush=True))
    print(format_table(result))
    print(f"Wrote {args.out / 'bench.json'}")
    return 0
