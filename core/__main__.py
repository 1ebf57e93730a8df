"""Command line for scripts: `python -m core classify IMG... [--model M] [--top-k K] [--json]`."""

from __future__ import annotations

import argparse
import json
import logging
import sys
from dataclasses import asdict

from .batch import classify_files
from .settings import DEFAULT_CLASSIFIER, PRECISIONS, configure


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m core", description="ViT Studio engine from the command line.")
    commands = parser.add_subparsers(dest="command", required=True)
    classify_cmd = commands.add_parser("classify", help="top-k labels for images (files or zips)")
    classify_cmd.add_argument("images", nargs="+", help="image files or zips of images")
    classify_cmd.add_argument("--model", default=DEFAULT_CLASSIFIER, help="hub id or local save_pretrained folder")
    classify_cmd.add_argument("--top-k", type=int, default=5)
    classify_cmd.add_argument("--batch-size", type=int, default=16)
    classify_cmd.add_argument("--json", action="store_true", help="print one JSON object per image")
    classify_cmd.add_argument("--device", default="auto")
    classify_cmd.add_argument("--precision", choices=PRECISIONS, default="auto")
    classify_cmd.add_argument("--trust-remote-code", action="store_true")
    args = parser.parse_args(argv)

    logging.basicConfig(level=logging.INFO, format="%(message)s", stream=sys.stderr)
    configure(device=args.device, precision=args.precision, trust_remote_code=args.trust_remote_code)
    try:
        results = classify_files(args.images, model=args.model, top_k=args.top_k, batch_size=args.batch_size)
    except ValueError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    for result in results:
        if args.json:
            print(json.dumps(asdict(result)))
        elif result.ok:
            labels = ", ".join(f"{p.label} {p.score:.3f}" for p in result.predictions)
            print(f"{result.name}: {labels}")
        else:
            print(f"{result.name}: error: {result.error}")
    return 0 if all(result.ok for result in results) else 1


if __name__ == "__main__":
    sys.exit(main())
