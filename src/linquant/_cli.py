"""Command line: ``linquant demo`` (also ``python -m linquant demo``)."""

from __future__ import annotations

import argparse
from collections.abc import Sequence


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="linquant", description="Fast, exact linear quantization of NumPy arrays."
    )
    commands = parser.add_subparsers(dest="command", required=True)
    demo = commands.add_parser(
        "demo", help="quantize the notebook's data and a generated array; print a table"
    )
    demo.add_argument("--size", type=int, default=1_000_000, help="generated array size")
    demo.add_argument("--repeat", type=int, default=5, help="timed runs per backend")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; return the exit status (argparse exits with 2 on usage errors)."""
    args = _parser().parse_args(argv)
    if args.command == "demo":
        from ._demo import run

        print(run(size=args.size, repeat=args.repeat))
    return 0
