"""The ``worker`` sub-command: the inference process the Slicer module talks to."""

from __future__ import annotations

import argparse


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "worker", help="serve find-C3 and segment-muscle requests (JSON lines on stdin)",
        description="Keep the models loaded and answer requests, one JSON line each on stdin, "
                    "with progress and result lines on stdout (see C3SarcopeniaLib/worker.py). "
                    "The Slicer module starts it as 'PythonSlicer -m C3SarcopeniaLib worker'; "
                    "it ends when stdin closes.")
    parser.set_defaults(handler=run_worker)


def run_worker(args: argparse.Namespace) -> int:
    from ..worker import main

    return main()
