"""Command line for the benchmarks: `python -m bench NAME [--quick] [--images N]`.

NAME is one of classify, explain, caption, zero-shot, train, caption-train, load, classroom, prune."""

from __future__ import annotations

import argparse
import sys

from . import caption, caption_train, classify, classroom, explain, load, prune, train, zero_shot

# One module per benchmark; each provides add_arguments(parser) and run(args) -> exit code.
BENCHMARKS = {
    "classify": classify,
    "explain": explain,
    "caption": caption,
    "zero-shot": zero_shot,
    "train": train,
    "caption-train": caption_train,
    "load": load,
    "classroom": classroom,
    "prune": prune,
}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description="ViT Studio benchmarks.")
    commands = parser.add_subparsers(dest="command", required=True)
    for name, module in BENCHMARKS.items():
        module.add_arguments(commands.add_parser(name, help=module.__doc__))
    args = parser.parse_args(argv)
    return BENCHMARKS[args.command].run(args)


if __name__ == "__main__":
    sys.exit(main())
