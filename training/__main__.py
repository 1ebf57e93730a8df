"""`python -m training`: fine-tune from the command line with the transformers example flags; runs unchanged
under `accelerate launch` on several devices or machines. `python -m training caption ...` trains a captioner."""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from pathlib import Path

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


def parse_caption_args(argv: list[str]) -> argparse.Namespace:
    """`python -m training caption ...`: the flags of transformers' image-captioning example script."""
    from .caption_model import SCRATCH_CAPTIONER
    from .captioning import CAPTION_MODES, CaptionTrainConfig

    defaults = CaptionTrainConfig.__dataclass_fields__
    parser = argparse.ArgumentParser(
        prog="python -m training caption", description="Train an image captioner on image + caption pairs."
    )
    parser.add_argument(
        "--train_file",
        required=True,
        help="a CSV or JSON Lines file of image paths and captions, a folder with metadata.jsonl or captions.csv, "
        "or a .zip of one",
    )
    parser.add_argument("--validation_file", help="separate validation pairs (default: 10%% of the images held out)")
    parser.add_argument("--image_column", help="the image path column (default: image, image_path, file_name, ...)")
    parser.add_argument("--caption_column", help="the caption column (default: caption, text, captions)")
    parser.add_argument("--model_name_or_path", help="a captioner to continue training: hub id or folder")
    parser.add_argument("--encoder_model_name_or_path", help="with --decoder_model_name_or_path: a new captioner")
    parser.add_argument("--decoder_model_name_or_path", help="the text decoder, e.g. gpt2")
    parser.add_argument(
        "--config_name",
        default=SCRATCH_CAPTIONER,
        help=f"train from scratch when no model is given: {SCRATCH_CAPTIONER} (tokenizer trained on the captions)",
    )
    parser.add_argument("--output_dir", required=True)
    parser.add_argument("--mode", choices=CAPTION_MODES, default="full", help="train everything, or the decoder")
    for name, kind in (
        ("num_train_epochs", int),
        ("learning_rate", float),
        ("per_device_train_batch_size", int),
        ("per_device_eval_batch_size", int),
        ("warmup_ratio", float),
        ("weight_decay", float),
        ("max_target_length", int),
        ("label_smoothing", float),
        ("num_beams", int),
        ("max_new_tokens", int),
        ("seed", int),
        ("logging_steps", int),
        ("val_fraction", float),
    ):
        parser.add_argument(f"--{name}", type=kind, default=defaults[name].default)
    parser.add_argument("--precision", choices=TRAINING_PRECISIONS, default="auto")
    parser.add_argument(
        "--resume_from_checkpoint",
        nargs="?",
        const=True,
        default=False,
        metavar="PATH",
        help="continue from output_dir/checkpoint",
    )
    parser.add_argument(
        "--push_to_hub", action="store_true", help="after training, upload the captioner and a model card with ROUGE"
    )
    parser.add_argument(
        "--hub_model_id", help="the repository to push to, as user/name (default: user/output_dir's name)"
    )
    parser.add_argument("--hub_token", help="a write token (default: the HF_TOKEN environment variable)")
    parser.add_argument("--hub_private_repo", action="store_true", help="create the repository private")
    # Accepted for compatibility with the example script: this one always trains, evaluates with generated
    # captions after every epoch and writes predictions.jsonl for the validation images.
    for flag in ("--do_train", "--do_eval", "--do_predict", "--predict_with_generate"):
        parser.add_argument(flag, action="store_true", help=argparse.SUPPRESS)
    return parser.parse_args(argv)


def caption_config_from(args: argparse.Namespace):
    from .captioning import CaptionTrainConfig

    return CaptionTrainConfig(
        train_file=args.train_file,
        output_dir=args.output_dir,
        validation_file=args.validation_file,
        image_column=args.image_column,
        caption_column=args.caption_column,
        model_name_or_path=args.model_name_or_path,
        encoder_model_name_or_path=args.encoder_model_name_or_path,
        decoder_model_name_or_path=args.decoder_model_name_or_path,
        config_name=args.config_name,
        mode=args.mode,
        num_train_epochs=args.num_train_epochs,
        learning_rate=args.learning_rate,
        per_device_train_batch_size=args.per_device_train_batch_size,
        per_device_eval_batch_size=args.per_device_eval_batch_size,
        warmup_ratio=args.warmup_ratio,
        weight_decay=args.weight_decay,
        max_target_length=args.max_target_length,
        label_smoothing=args.label_smoothing,
        num_beams=args.num_beams,
        max_new_tokens=args.max_new_tokens,
        seed=args.seed,
        logging_steps=args.logging_steps,
        resume_from_checkpoint=bool(args.resume_from_checkpoint),
        precision=args.precision,
        val_fraction=args.val_fraction,
    )


def describe_caption(event, logging_steps: int) -> str | None:
    """One line per captioner event worth printing."""
    from .events import CaptionEvaluated

    if isinstance(event, Started):
        resumed = f", resuming at step {event.start_step}" if event.start_step else ""
        return (
            f"Training a captioner ({event.mode}) on {event.train_size} images ({event.val_size} for validation), "
            f"{event.total_steps} steps, {event.device}, {event.precision}{resumed}"
        )
    if isinstance(event, CaptionEvaluated):
        return (
            f"epoch {event.epoch}: eval_loss {event.eval_loss:.4f}, rouge1 {event.rouge1:.2f}, rouge2 "
            f"{event.rouge2:.2f}, rougeL {event.rougeL:.2f}, bleu {event.bleu:.2f}"
        )
    return describe(event, logging_steps)


def caption_main(argv: list[str]) -> int:
    from .captioning import train_captioner

    args = parse_caption_args(argv)
    print_engine_warnings()
    main_process = os.environ.get("RANK", "0") == "0"
    try:
        check_resume_path(args)
        hub = hub_destination(args) if args.push_to_hub else None  # refused before training, not after it
        finished = False
        for event in train_captioner(caption_config_from(args)):
            finished = isinstance(event, Finished)
            line = describe_caption(event, max(args.logging_steps, 1))
            if line and main_process:
                print(line, flush=True)
        if hub is not None and finished and main_process:
            from .review import push_to_hub

            repo_id, token = hub
            print(
                f"Pushed to {push_to_hub(args.output_dir, repo_id, token, private=args.hub_private_repo)}", flush=True
            )
    except ValueError as error:  # bad data or settings: the message says what to do
        print(f"error: {error}", file=sys.stderr)
        return 2
    return 0


def hub_destination(args: argparse.Namespace) -> tuple[str, str]:
    """(repository, token) for --push_to_hub, checked before any training: the token from --hub_token or HF_TOKEN,
    the repository from --hub_model_id (a bare name goes under the token's user, as the example script does)."""
    from .review import check_repo_name

    token = (args.hub_token or os.environ.get("HF_TOKEN") or "").strip()
    if not token:
        raise ValueError(
            "--push_to_hub needs a Hugging Face write token: give --hub_token or set HF_TOKEN "
            "(huggingface.co/settings/tokens)."
        )
    repo_id = (args.hub_model_id or Path(args.output_dir).name).strip()
    if "/" not in repo_id:
        from huggingface_hub import HfApi

        try:
            user = HfApi(token=token).whoami()["name"]
        except Exception as error:  # noqa: BLE001 - offline, or a token the Hub refuses: one sentence
            raise ValueError(
                f"Could not ask the Hub whose token this is ({type(error).__name__}): give --hub_model_id as user/name."
            ) from error
        repo_id = f"{user}/{repo_id}"
    check_repo_name(repo_id)
    return repo_id, token


def main(argv: list[str] | None = None) -> int:
    arguments = sys.argv[1:] if argv is None else argv
    if arguments and arguments[0] == "caption":
        return caption_main(arguments[1:])
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
