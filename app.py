"""Entry point: `python app.py` starts the ViT Studio Gradio app; `python app.py deploy` makes it a Space."""
from __future__ import annotations

import argparse
import logging
import os
import sys
import threading
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent


@dataclass(frozen=True)
class ServingLimits:
    """How much the Gradio server takes on at once."""

    queue_size: int | None  # requests waiting in line; one more gets Gradio's "queue is full, try again later"
    max_file_size: int | None  # bytes per uploaded file; a larger one is refused in the browser, before it is sent


# On your own machine nothing is capped: the Train tab takes zips up to its own data cap (2 GB by default).
LOCAL_LIMITS = ServingLimits(queue_size=None, max_file_size=None)
# On a public Space, 200 MB a file: a photo is a few MB and a training zip of several hundred photos fits (the
# ants-vs-bees set is 46 MB), while a few visitors sending 2 GB zips (kept by Gradio, then unpacked) would fill
# the Space's disk. 20 in line: at a second or two per caption or map, the last one waits well under a minute;
# past that a visitor is better told to come back than left waiting.
SPACE_LIMITS = ServingLimits(queue_size=20, max_file_size=200 * 1024 * 1024)

def on_space() -> bool:
    """Whether we run on a Hugging Face Space (the Space sets SPACE_ID to its owner/name)."""
    return bool(os.environ.get("SPACE_ID"))


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    # Imported here, not at the top, so that `python app.py deploy` does not wait for torch.
    from core.models import DEFAULT_CLASSIFIER, PRECISIONS

    space = on_space()
    parser = argparse.ArgumentParser(
        description="ViT Studio: see what Vision Transformers do. `python app.py deploy --help` puts it on a Space.")
    parser.add_argument("--host", default="0.0.0.0" if space else "127.0.0.1",
                        help="address to listen on (0.0.0.0 to reach it from other machines)")
    parser.add_argument("--port", type=int, default=int(os.environ.get("GRADIO_SERVER_PORT", 7860)))
    parser.add_argument("--share", action="store_true", help="also serve on a temporary public gradio.live link")
    parser.add_argument("--precision", choices=PRECISIONS, default="auto",
                        help="auto = bf16 where the hardware is fast at it (AMX / AVX512-BF16 CPUs, CUDA), else fp32")
    parser.add_argument("--device", default="auto", help="auto (cuda > mps > cpu), cpu, cuda, cuda:1, mps")
    parser.add_argument("--model", default=DEFAULT_CLASSIFIER, help="default classifier: hub id or local folder")
    parser.add_argument("--trust-remote-code", action="store_true",
                        help="allow models whose repository ships its own Python code")
    parser.add_argument("--allow-server-paths", action="store_true",
                        help="let the Train tab read a folder on this machine by its path (never on a public Space)")
    parser.add_argument("--runs-dir", default=os.environ.get("VIT_STUDIO_RUNS", "runs"),
                        help="where training runs are kept (default: runs/)")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    if argv[:1] == ["deploy"]:
        import deploy  # assembling a Space needs neither torch nor gradio

        return deploy.main(argv[1:])
    args = parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s", datefmt="%H:%M:%S")
    logging.getLogger("httpx").setLevel(logging.WARNING)  # gradio's own health checks are not news
    if args.allow_server_paths and on_space():
        raise SystemExit("error: --allow-server-paths would let any visitor read this Space's files; it is "
                         "for running the app on your own machine.")
    run_gradio(args)
    return 0


# ---- Gradio -------------------------------------------------------------------------------------------------


def run_gradio(args: argparse.Namespace) -> None:
    from core.models import configure, pick_device, preload_classifier

    try:
        configure(device=args.device, precision=args.precision, trust_remote_code=args.trust_remote_code)
        pick_device()  # a bad --device fails here, with its message, not on the first click
    except ValueError as error:
        raise SystemExit(f"error: {error}") from None
    os.environ["VIT_STUDIO_RUNS"] = args.runs_dir  # training.runs reads it, in this process and its threads
    space = on_space()
    if space:
        # Should a gr.Examples ever get a function to cache, run each example on first use, not all at start-up.
        os.environ.setdefault("GRADIO_CACHE_MODE", "lazy")

    from ui.gradio_app import CSS, JS, build_demo

    demo = build_demo(default_model=args.model, allow_server_paths=args.allow_server_paths)
    # Load the default model while the page opens, so the first click does not wait for it.
    threading.Thread(target=preload_classifier, args=(args.model,), daemon=True).start()
    limits = serving_limits(space)
    demo.queue(max_size=limits.queue_size, default_concurrency_limit=1).launch(
        server_name=args.host, server_port=args.port, share=args.share, css=CSS, js=JS, show_error=True,
        max_file_size=limits.max_file_size,
    )


def serving_limits(space: bool) -> ServingLimits:
    return SPACE_LIMITS if space else LOCAL_LIMITS


if __name__ == "__main__":
    sys.exit(main())
