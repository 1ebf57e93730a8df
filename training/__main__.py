"""`python -m training`: fine-tune from the command line with the transformers example flags; runs unchanged
under `accelerate launch` on several devices or machines."""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys

from .events import Evaluated, Finished, Saved, Started, Step, Stopped
from .finetune import DEFAULT_BASE, MODES, SCRATCH_PRESETS, TRAINING_PRECISIONS, FinetuneConfig, finetune


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m training", description=__doc__.splitlines()[0])
    parser.add_argument(
        "--train_dir",
        required=True,
        help="an ImageFolder (class sub-folders, optional train/ and val/) or a .zip of one",
    )
    parser.add_argument("--validation_dir", help="a separate validation ImageFolder")
    parser.add_argument("--model_name_or_path", default=DEFAULT_BASE, help="base model: hub id or local folder")
    parser.add_argument(
        "--config_name",
        help="train from scratch from this config instead: "
        f"{', '.join(SCRATCH_PRESETS)}, a folder with config.json, or a hub id",
    )
    parser.add_argument("--output_dir", required=True)
    parser.add_argument(
        "--mode", choices=MODES, default="full", help="full fine-tune, or the head on a frozen backbone"
    )
    parser.add_argument("--num_train_epochs", type=int, default=3)
    parser.add_argument("--learning_rate", type=float, default=5e-5)
    parser.add_argument("--per_device_train_batch_size", type=int, default=16)
    parser.add_argument("--per_device_eval_batch_size", type=int, default=32)
    parser.add_argument("--weight_decay", type=float, default=0.0)
    parser.add_argument("--warmup_ratio", type=float, default=0.0)
    parser.add_argument("--image_size", type=int, help="train at this size (default: the model's own)")
    parser.add_argument(
        "--train_val_split", type=float, default=0.15, help="validation share when the data has no val/ folder"
    )
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--precision", choices=TRAINING_PRECISIONS, default="auto")
    parser.add_argument(
        "--no_augmentation",
        action="store_true",
        help="no random crops and flips (for data where they change the label)",
    )
    # The example scripts take a checkpoint path here; this script keeps one checkpoint, in output_dir, so a
    # path (if given) must be that one.
    parser.add_argument(
        "--resume_from_checkpoint",
        nargs="?",
        const=True,
        default=False,
        metavar="PATH",
        help="continue from output_dir/checkpoint",
    )
    parser.add_argument("--dataloader_num_workers", type=int, default=0)
    parser.add_argument("--logging_steps", type=int, default=10, help="print the loss every N steps")
    # Accepted for compatibility with the transformers example scripts: this script always trains and then
    # evaluates after every epoch.
    parser.add_argument("--do_train", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--do_eval", action="store_true", help=argparse.SUPPRESS)
    return parser.parse_args(argv)


def check_resume_path(args: argparse.Namespace) -> None:
    if isinstance(args.resume_from_checkpoint, str):
        expected = os.path.abspath(os.path.join(args.output_dir, "checkpoint"))
        given = os.path.abspath(args.resume_from_checkpoint)
        if given not in (expected, os.path.abspath(args.output_dir)):
            raise ValueError(
                f"--resume_from_checkpoint {args.resume_from_checkpoint}: this script resumes from "
                f"the checkpoint in --output_dir ({expected}); pass the flag alone."
            )


def config_from(args: argparse.Namespace) -> FinetuneConfig:
    return FinetuneConfig(
        train_dir=args.train_dir,
        validation_dir=args.validation_dir,
        output_dir=args.output_dir,
        model_name_or_path=None if args.config_name else args.model_name_or_path,
        config_name=args.config_name,
        mode=args.mode,
        num_train_epochs=args.num_train_epochs,
        learning_rate=args.learning_rate,
        per_device_train_batch_size=args.per_device_train_batch_size,
        per_device_eval_batch_size=args.per_device_eval_batch_size,
        weight_decay=args.weight_decay,
        warmup_ratio=args.warmup_ratio,
        image_size=args.image_size,
        augment=not args.no_augmentation,
        seed=args.seed,
        precision=args.precision,
        val_fraction=args.train_val_split,
        resume=bool(args.resume_from_checkpoint),
        dataloader_num_workers=args.dataloader_num_workers,
    )


def describe(event, logging_steps: int) -> str | None:
    """One line per event worth printing (every logging_steps-th step)."""
    if isinstance(event, Started):
        resumed = f", resuming at step {event.start_step}" if event.start_step else ""
        return (
            f"Training {event.mode} on {event.train_size} images ({event.val_size} for validation), "
            f"{len(event.classes)} classes, {event.total_steps} steps, {event.device}, {event.precision}{resumed}"
        )
    if isinstance(event, Step) and (event.step % logging_steps == 0):
        return (
            f"epoch {event.epoch} step {event.step}: loss {event.loss:.4f}, lr {event.lr:.2e}, "
            f"{event.images_per_s:.1f} images/s, {event.seconds_left:.0f} s left"
        )
    if isinstance(event, Evaluated):
        return f"epoch {event.epoch}: eval_loss {event.eval_loss:.4f}, eval_accuracy {event.eval_accuracy:.4f}"
    if isinstance(event, Saved):
        return f"saved to {event.path}"
    if isinstance(event, Stopped):
        return f"stopped at step {event.step}; resume with --resume_from_checkpoint"
    if isinstance(event, Finished):
        return json.dumps(event.metrics, indent=2)
    return None


class WarningLines(logging.Handler):
    """The engine's warnings (a random state a resume could not restore, ...) as `warning: ...` lines on the
    stderr of the moment, as errors are printed."""

    def emit(self, record: logging.LogRecord) -> None:
        print(f"warning: {record.getMessage()}", file=sys.stderr, flush=True)


def print_engine_warnings() -> None:
    engine = logging.getLogger("vit_studio")
    if not any(isinstance(handler, WarningLines) for handler in engine.handlers):
        engine.addHandler(WarningLines(logging.WARNING))


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    print_engine_warnings()
    main_process = os.environ.get("RANK", "0") == "0"
    try:
        check_resume_path(args)
        for event in finetune(config_from(args)):
            line = describe(event, max(args.logging_steps, 1))
            if line and main_process:
                print(line, flush=True)
    except ValueError as error:  # bad data or settings: the message says what to do
        print(f"error: {error}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
