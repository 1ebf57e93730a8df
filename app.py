"""Entry point: `python app.py` starts ViT Studio (Gradio, or --ui streamlit); `python app.py deploy` makes a Space."""

from __future__ import annotations

import argparse
import ctypes
import logging
import os
import subprocess
import sys
import threading
from pathlib import Path
from typing import Callable, Mapping

ROOT = Path(__file__).resolve().parent
STREAMLIT_APP = ROOT / "ui" / "streamlit_app.py"  # beside app.py in a checkout and once installed
log = logging.getLogger("vit_studio")


def on_space() -> bool:
    """Whether we run on a Hugging Face Space (the Space sets SPACE_ID to its owner/name)."""
    from core.settings import current_settings

    return current_settings().on_space


def is_shared(args: argparse.Namespace) -> bool:
    """Whether people other than this machine's user can reach the app: on a Space, through a --share link, or
    listening beyond the loopback address (a classroom server on 0.0.0.0). Then each visitor sees only the runs
    their own browser started, and only they can stop them. VIT_STUDIO_SHARED=1 says so too (an app behind a
    reverse proxy listens on loopback); the environment can only turn sharing on, never off."""
    from core.settings import current_settings

    return current_settings().shared or bool(getattr(args, "share", False)) or not is_loopback(args.host)


def is_loopback(host: str) -> bool:
    import ipaddress

    if host.strip().lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip().strip("[]")).is_loopback
    except ValueError:  # a host name: it may resolve to any interface
        return False


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    # Imported here, not at the top, so that `python app.py deploy` does not wait for torch.
    from core.settings import PRECISIONS, environment_settings

    # The environment's VIT_STUDIO_* settings are the defaults; a flag given wins. Remote code and server paths are
    # the exception: only their flags turn them on, so a variable left over from another run cannot.
    environment = environment_settings()
    space = environment.on_space
    parser = argparse.ArgumentParser(
        description="ViT Studio: see what Vision Transformers do. `python app.py deploy --help` puts it on a Space."
    )
    parser.add_argument("--ui", choices=("gradio", "streamlit"), default="gradio", help="which front end to start")
    parser.add_argument(
        "--host",
        default="0.0.0.0" if space else "127.0.0.1",
        help="address to listen on (0.0.0.0 to reach it from other machines)",
    )
    parser.add_argument("--port", type=int, default=int(os.environ.get("GRADIO_SERVER_PORT", 7860)))
    parser.add_argument("--share", action="store_true", help="also serve on a temporary public gradio.live link")
    parser.add_argument(
        "--precision",
        choices=PRECISIONS,
        default=environment.precision,
        help="auto = bf16 where the hardware is fast at it (AMX / AVX512-BF16 CPUs, CUDA), else fp32",
    )
    parser.add_argument("--device", default=environment.device, help="auto (cuda > mps > cpu), cpu, cuda, cuda:1, mps")
    parser.add_argument("--model", default=environment.default_model, help="default classifier: hub id or local folder")
    parser.add_argument(
        "--trust-remote-code", action="store_true", help="allow models whose repository ships its own Python code"
    )
    parser.add_argument(
        "--allow-server-paths",
        action="store_true",
        help="let the Train tab read a folder on this machine by its path (never on a public Space)",
    )
    parser.add_argument(
        "--runs-dir", default=str(environment.runs_dir), help="where training runs are kept (default: runs/)"
    )
    return parser.parse_args(argv)


# glibc gives each thread that allocates at once an arena of its own (up to 8 per core) and seldom hands their
# free pages back: under 20 clients the server's memory grew 50-80 MB a round of requests (bench load) with no
# Python object left behind. Two arenas held it flat, about 150 MB lower, at the same latency.
MALLOC_ARENAS = 2
_M_ARENA_MAX = -8  # mallopt's parameter number in glibc's malloc.h


def limit_malloc_arenas(environ: Mapping[str, str] = os.environ) -> bool:
    """Cap glibc's malloc arenas for this process (before the server's threads start), unless the user chose a
    number in MALLOC_ARENA_MAX; whether the cap is in place. Elsewhere than glibc, nothing to do."""
    if "MALLOC_ARENA_MAX" in environ or not sys.platform.startswith("linux"):
        return False
    try:
        return ctypes.CDLL("libc.so.6").mallopt(_M_ARENA_MAX, MALLOC_ARENAS) == 1
    except (OSError, AttributeError):  # musl and other C libraries have no mallopt
        return False


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    if argv[:1] == ["deploy"]:
        from tools import deploy  # assembling a Space needs neither torch nor gradio

        return deploy.main(argv[1:])
    limit_malloc_arenas()
    try:
        args = parse_args(argv)
    except ValueError as error:  # a VIT_STUDIO_* variable that cannot be read: one line, not a traceback
        raise SystemExit(f"error: {error}") from None
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s", datefmt="%H:%M:%S")
    logging.getLogger("httpx").setLevel(logging.WARNING)  # gradio's own health checks are not news
    if args.allow_server_paths and on_space():
        raise SystemExit(
            "error: --allow-server-paths would let any visitor read this Space's files; it is "
            "for running the app on your own machine."
        )
    if args.ui == "streamlit":
        return run_streamlit(args)
    run_gradio(args)
    return 0


# ---- Gradio -------------------------------------------------------------------------------------------------


def run_gradio(args: argparse.Namespace) -> None:
    # spaces must be imported before anything touches CUDA (pick_device below asks torch about it).
    gpu_decorator = zero_gpu_decorator()
    from core import configure, preload_classifier
    from core.models import pick_device
    from training import shared_model_folders

    shared = is_shared(args)
    # On a shared app a model box loads by path only from the app's own folders; Hub ids stay open.
    model_folders = shared_model_folders(args.model, Path(args.runs_dir)) if shared else None
    try:
        configure(
            device=args.device,
            precision=args.precision,
            trust_remote_code=args.trust_remote_code,
            default_model=args.model,
            model_folders=model_folders,
            runs_dir=args.runs_dir,
            shared=shared,
            allow_server_paths=args.allow_server_paths,
        )
        pick_device()  # a bad --device fails here, with its message, not on the first click
    except ValueError as error:
        raise SystemExit(f"error: {error}") from None
    tidy_space_runs()
    # No usage statistics unless asked for (GRADIO_ANALYTICS_ENABLED=True), as with --ui streamlit: the app is
    # used in classrooms and offline, where a report to the internet is neither wanted nor reachable.
    os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
    space = on_space()
    if gpu_decorator is not None:
        from core.gpu import lend_gpu

        log.info("ZeroGPU: %s run on a GPU", ", ".join(lend_gpu(gpu_decorator)))

    from ui.gradio_app import CSS, JS, build_demo
    from ui.serving import serving_limits

    limits = serving_limits(space)
    demo = build_demo(
        default_model=args.model, allow_server_paths=args.allow_server_paths, delete_cache=limits.delete_cache()
    )
    # Load the default model while the page opens, so the first click does not wait for it.
    threading.Thread(target=preload_classifier, args=(args.model,), daemon=True).start()
    demo.queue(max_size=limits.queue_size, default_concurrency_limit=1).launch(
        server_name=args.host,
        server_port=args.port,
        share=args.share,
        css=CSS,
        js=JS,
        show_error=True,
        max_file_size=limits.max_file_size,
        state_session_capacity=limits.sessions_kept,
    )


def tidy_space_runs() -> None:
    """On a Space, remove visitors' runs that outlived the disk budget while the app was down."""
    from training import disk_budget, tidy_runs

    budget = disk_budget()
    if budget is not None:
        tidied = tidy_runs(budget)
        if tidied.removed or tidied.trimmed:
            log.info(
                "Runs folder: removed %d old runs, trimmed %d finished ones", len(tidied.removed), len(tidied.trimmed)
            )


def on_zero_gpu() -> bool:
    """Whether this is a ZeroGPU Space (it sets SPACES_ZERO_GPU), without importing torch: spaces must come first."""
    return os.environ.get("SPACES_ZERO_GPU", "").strip().lower() in ("1", "t", "true")


def zero_gpu_decorator() -> Callable | None:
    """spaces.GPU on a ZeroGPU Space with the spaces package installed; None anywhere else."""
    if not on_zero_gpu():
        return None
    try:
        import spaces
    except ImportError:
        log.warning(
            "This is a ZeroGPU Space but the spaces package is missing, so everything runs on the CPU: "
            "add `spaces` to requirements.txt."
        )
        return None
    return spaces.GPU


# ---- Streamlit ----------------------------------------------------------------------------------------------


def run_streamlit(args: argparse.Namespace) -> int:
    """Run the Streamlit front end as a child process until it ends; Ctrl-C stops both without a traceback."""
    if args.share:
        raise SystemExit(
            "error: --share is a Gradio feature; with --ui streamlit, use --host 0.0.0.0 to reach "
            "the app from other machines."
        )
    if not STREAMLIT_APP.is_file():
        raise SystemExit(
            f"error: {STREAMLIT_APP.relative_to(ROOT)} is missing, so there is no Streamlit front end "
            "to start; run without --ui for the Gradio one."
        )
    process = subprocess.Popen(streamlit_command(args), env=streamlit_env(args, os.environ))
    try:
        return process.wait()
    except KeyboardInterrupt:
        # The terminal sent Ctrl-C to streamlit as well (same process group): let it close its server first.
        try:
            return process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.terminate()
            return process.wait()


def streamlit_command(args: argparse.Namespace, environ: Mapping[str, str] = os.environ) -> list[str]:
    # This interpreter's streamlit (not whichever is first on PATH); headless: print the URL like the Gradio app
    # does, and never stop to ask for an e-mail address on the first run; the viewer toolbar: visitors get no
    # "Deploy" button meant for the app's developer; no usage statistics unless asked for
    # (STREAMLIT_BROWSER_GATHER_USAGE_STATS=true): the page fetches their settings from the internet, which
    # fails offline with errors in the browser's console.
    command = [
        sys.executable,
        "-m",
        "streamlit",
        "run",
        str(STREAMLIT_APP),
        "--server.port",
        str(args.port),
        "--server.address",
        args.host,
        "--server.headless",
        "true",
        "--client.toolbarMode",
        "viewer",
    ]
    if "STREAMLIT_BROWSER_GATHER_USAGE_STATS" not in environ:
        command += ["--browser.gatherUsageStats", "false"]
    return command


def streamlit_env(args: argparse.Namespace, environ: Mapping[str, str]) -> dict[str, str]:
    """The environment the Streamlit app reads its settings from: the flags, as VIT_STUDIO_* variables."""
    env = dict(environ)
    env.update(
        VIT_STUDIO_MODEL=args.model,
        VIT_STUDIO_RUNS=args.runs_dir,
        VIT_STUDIO_DEVICE=args.device,
        VIT_STUDIO_PRECISION=args.precision,
        VIT_STUDIO_SHARED="1" if is_shared(args) else "0",
    )
    env.setdefault("MALLOC_ARENA_MAX", str(MALLOC_ARENAS))  # a fresh process reads it at start (see MALLOC_ARENAS)
    # Only the flags turn these on: an exported variable left over from another run must not.
    for name, enabled in (
        ("VIT_STUDIO_ALLOW_SERVER_PATHS", args.allow_server_paths),
        ("VIT_STUDIO_TRUST_REMOTE_CODE", args.trust_remote_code),
    ):
        if enabled:
            env[name] = "1"
        else:
            env.pop(name, None)
    return env


if __name__ == "__main__":
    sys.exit(main())
