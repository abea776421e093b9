"""``python -m libremap bench``: the backends side by side on the same heap
image, with the kernel's floor measured in the same run (see
``libremap.bench`` and BENCHMARKS.md)."""

from __future__ import annotations

import argparse
import sys

HELP = "measure every backend on the same heap image, with the floor (BENCHMARKS.md)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from ..bench import add_arguments as add

    add(parser)


def run(args: argparse.Namespace) -> int:
    from ..bench import UsageError, main, resolve

    try:
        opts = resolve(args)
    except UsageError as e:
        print(f"bench: {e}", file=sys.stderr)
        return 2
    return main(opts)
