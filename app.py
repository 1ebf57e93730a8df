"""Entry point: `python app.py` starts the ViT Studio Gradio app."""
from __future__ import annotations

import argparse
import logging
import os
import threading

from core.models import DEFAULT_CLASSIFIER, PRECISIONS, configure, pick_device, preload_classifier


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    on_space = bool(os.environ.get("SPACE_ID"))
    parser = argparse.ArgumentParser(description="ViT Studio: see what Vision Transformers do.")
    parser.add_argument("--host", default="0.0.0.0" if on_space else "127.0.0.1",
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


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s", datefmt="%H:%M:%S")
    logging.getLogger("httpx").setLevel(logging.WARNING)  # gradio's own health checks are not news
    try:
        configure(device=args.device, precision=args.precision, trust_remote_code=args.trust_remote_code)
        pick_device()  # a bad --device fails here, with its message, not on the first click
    except ValueError as error:
        raise SystemExit(f"error: {error}") from None

    if args.allow_server_paths and os.environ.get("SPACE_ID"):
        raise SystemExit("error: --allow-server-paths would let any visitor read this Space's files; it is "
                         "for running the app on your own machine.")
    os.environ["VIT_STUDIO_RUNS"] = args.runs_dir  # training.runs reads it, in this process and its threads

    from ui.gradio_app import CSS, JS, build_demo

    demo = build_demo(default_model=args.model, allow_server_paths=args.allow_server_paths)
    # Load the default model while the page opens, so the first click does not wait for it.
    threading.Thread(target=preload_classifier, args=(args.model,), daemon=True).start()
    demo.queue(default_concurrency_limit=1).launch(
        server_name=args.host, server_port=args.port, share=args.share, css=CSS, js=JS, show_error=True,
    )


if __name__ == "__main__":
    main()
