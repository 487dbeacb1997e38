"""The ``c3sarcopenia`` command: one sub-command per job, errors as one line and exit 2.

The sub-command modules import nothing heavy (torch, SimpleITK, matplotlib...) at the top,
so that --help, argument checks and refusals of missing files answer at once."""

from __future__ import annotations

import argparse
import sys

from .. import __version__
from ..errors import Cancelled, InputError
from ..fileio import os_error_line


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="c3sarcopenia",
        description="Skeletal muscle at C3 on head-and-neck CT, and the L3 skeletal muscle "
                    "index estimated from it (Naser et al. 2022).")
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    # each module adds its own sub-commands
    from . import annotate, bench, cohort, core, levels, review, train, worker

    for module in (core, train, cohort, levels, review, annotate, bench, worker):
        module.register(subparsers)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.handler(args) or 0)
    except InputError as error:
        print(f"c3sarcopenia: error: {error}", file=sys.stderr)
        return 2
    except (Cancelled, KeyboardInterrupt):
        print("c3sarcopenia: cancelled; nothing was written for the unfinished step.",
              file=sys.stderr)
        return 130
    except OSError as error:  # a full disk, a folder that vanished, a permission: no traceback
        print(f"c3sarcopenia: error: {os_error_line(error)}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
