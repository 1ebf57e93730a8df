"""Load: N clients x M requests through gradio_client against `python app.py` on 127.0.0.1, in rounds; errors,
latency and the server's memory after each round (a leak shows as memory that keeps growing)."""

from __future__ import annotations

import argparse
import io
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
import zipfile
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from .common import aligned, machine_description, progress, sample_photos, verdict

ROOT = Path(__file__).resolve().parents[1]
GROWTH_AIM_MB = 50.0
# Same architecture family as the app's default classifier, with random weights and no download.
MODEL_SHAPES = {
    "tiny": dict(
        image_size=32, patch_size=8, hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64
    ),
    "small": dict(hidden_size=384, num_hidden_layers=12, num_attention_heads=6, intermediate_size=1536),
    "base": dict(),
}
REFUSED = "There is no run called"


@dataclass(frozen=True)
class Answer:
    """One request as a client saw it."""

    kind: str
    seconds: float
    error: str | None  # None: answered as expected


@dataclass(frozen=True)
class Round:
    answers: tuple[Answer, ...]
    rss_before_mb: float
    rss_after_mb: float
    seconds: float

    @property
    def errors(self) -> list[Answer]:
        return [answer for answer in self.answers if answer.error]

    def latency_ms(self, quantile: float) -> float:
        times = sorted(answer.seconds for answer in self.answers if not answer.error) or [float("nan")]
        return 1000 * times[min(len(times) - 1, int(quantile * len(times)))]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--clients", type=int, default=20, help="clients at once (default 20)")
    parser.add_argument("--requests", type=int, default=10, help="requests per client per round (default 10)")
    parser.add_argument("--rounds", type=int, default=3, help="rounds (default 3)")
    parser.add_argument(
        "--model",
        choices=sorted(MODEL_SHAPES),
        default="small",
        help="random-weight ViT the app serves: tiny, small (ViT-S/16, default) or base (ViT-B/16)",
    )
    parser.add_argument(
        "--new-visitors",
        action="store_true",
        help="fresh clients (new sessions) every round, instead of the same clients all rounds",
    )
    parser.add_argument(
        "--round-timeout",
        type=float,
        default=900.0,
        metavar="S",
        help="a round still running after this many seconds is cut short (default 900)",
    )
    parser.add_argument("--quick", action="store_true", help="2 clients x 3 requests on the tiny model")


def run(args: argparse.Namespace) -> int:
    if args.quick:
        args.clients, args.requests, args.model = 2, 3, "tiny"
    if min(args.clients, args.requests, args.rounds) < 1:
        print("error: --clients, --requests and --rounds must be at least 1", file=sys.stderr)
        return 2
    with tempfile.TemporaryDirectory(prefix="vit-bench-load-") as folder:
        work = Path(folder)
        model_dir = build_model(work / "model", args.model)
        inputs = write_inputs(work / "inputs", model_dir)
        with running_app(model_dir, work) as (url, pid):
            warm_up(url, inputs)
            rounds, clients = [], None
            for number in range(1, args.rounds + 1):
                progress(f"round {number}: {args.clients} clients x {args.requests} requests ...")
                if clients is None or args.new_visitors:
                    clients = connect(url, args.clients)
                rounds.append(run_round(pid, inputs, clients, args.requests, args.round_timeout))
    print(format_report(rounds, args))
    return 0


# ---- the app and its inputs ----------------------------------------------------------------------------------


def build_model(folder: Path, shape: str) -> Path:
    from transformers import ViTConfig, ViTForImageClassification, ViTImageProcessor

    labels = {index: f"class_{index}" for index in range(10)}
    config = ViTConfig(
        num_labels=len(labels), id2label=labels, label2id={v: k for k, v in labels.items()}, **MODEL_SHAPES[shape]
    )
    ViTForImageClassification(config).save_pretrained(folder)
    ViTImageProcessor(size={"height": config.image_size, "width": config.image_size}).save_pretrained(folder)
    return folder


@dataclass(frozen=True)
class Inputs:
    model: Path
    photo: Path
    batch_zip: Path  # three photos and one damaged entry: three rows and one error row
    server_path: Path  # a server folder with a config.json, which the run endpoints must refuse


def write_inputs(folder: Path, model_dir: Path) -> Inputs:
    folder.mkdir(parents=True)
    photos = sample_photos(3)
    photo = folder / "photo.jpg"
    photos[0].save(photo, quality=90)
    batch_zip = folder / "batch.zip"
    with zipfile.ZipFile(batch_zip, "w") as archive:
        for index, image in enumerate(photos):
            buffer = io.BytesIO()
            image.save(buffer, format="JPEG", quality=90)
            archive.writestr(f"photos/{index}.jpg", buffer.getvalue())
        archive.writestr("photos/damaged.jpg", b"\xff\xd8 not really a jpeg")
    secret = folder / "secret"
    secret.mkdir()
    (secret / "config.json").write_text('{"auths": {}}')
    return Inputs(model_dir, photo, batch_zip, secret)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class running_app:
    """`python app.py` serving the model on a free loopback port, offline; (url, pid) while in the with block."""

    def __init__(self, model_dir: Path, work: Path, timeout_s: float = 300):
        self.model_dir, self.work, self.timeout_s = model_dir, work, timeout_s

    def __enter__(self) -> tuple[str, int]:
        port = _free_port()
        env = {
            **os.environ,
            "HF_HUB_OFFLINE": "1",
            "VIT_STUDIO_CACHE": str(self.work / "cache"),
            "PYTHONUNBUFFERED": "1",
        }
        self.log = (self.work / "app.log").open("w")
        self.process = subprocess.Popen(
            [
                sys.executable,
                str(ROOT / "app.py"),
                "--model",
                str(self.model_dir),
                "--port",
                str(port),
                "--host",
                "127.0.0.1",
                "--runs-dir",
                str(self.work / "runs"),
            ],
            cwd=ROOT,
            env=env,
            stdout=self.log,
            stderr=subprocess.STDOUT,
        )
        url = f"http://127.0.0.1:{port}/"
        deadline = time.monotonic() + self.timeout_s
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"app.py exited: {(self.work / 'app.log').read_text()[-2000:]}")
            try:
                with urllib.request.urlopen(url, timeout=2):
                    return url, self.process.pid
            except OSError:
                time.sleep(0.5)
        self.__exit__()
        raise RuntimeError(f"app.py did not answer within {self.timeout_s:.0f} s")

    def __exit__(self, *exc) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.process.kill()
        self.log.close()


def rss_mb(pid: int) -> float:
    """The process's resident memory, from /proc (Linux); NaN elsewhere."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return float("nan")


# ---- the requests ---------------------------------------------------------------------------------------------


def requests_for(client, inputs: Inputs) -> list[tuple[str, Callable[[], object], Callable[[object], str | None]]]:
    """(kind, call, check) in the order a client cycles through them; check says what is wrong with an answer."""
    from gradio_client import handle_file

    def classify():
        return client.predict(handle_file(str(inputs.photo)), str(inputs.model), 5, api_name="/classify")

    def explain():
        return client.predict(
            handle_file(str(inputs.photo)),
            str(inputs.model),
            "rollout",
            "mean",
            0.9,
            0,
            0,
            None,
            "jet",
            0.5,
            api_name="/explain",
        )

    def batch():
        return client.predict([handle_file(str(inputs.batch_zip))], str(inputs.model), 3, api_name="/classify_batch")

    def steal():
        return client.predict(str(inputs.server_path), api_name="/zip_run")

    return [
        ("classify", classify, lambda answer: None if answer[0].get("label") else f"no label: {answer!r:.200}"),
        ("explain", explain, lambda answer: None if answer[0] else "no map"),
        ("batch", batch, _check_batch),
        ("zip another folder", steal, lambda answer: f"handed out {answer!r:.200}"),
    ]


def _check_batch(answer) -> str | None:
    rows = answer[0]["data"]
    errors = [row for row in rows if row[-1]]
    return None if len(rows) == 4 and len(errors) == 1 else f"expected 3 rows and 1 error row, got {rows!r:.300}"


def connect(url: str, count: int) -> list:
    """`count` gradio_client clients: each a visitor with a session of its own on the server."""
    from gradio_client import Client

    with ThreadPoolExecutor(count) as pool:
        return list(pool.map(lambda _: Client(url, verbose=False), range(count)))


def one_client(client, inputs: Inputs, count: int, deadline: float) -> list[Answer]:
    calls = requests_for(client, inputs)
    answers = []
    for index in range(count):
        kind, call, check = calls[index % len(calls)]
        if time.monotonic() > deadline:
            answers.append(Answer(kind, 0.0, "not sent: the round ran out of time"))
            continue
        start = time.perf_counter()
        try:
            error = check(call())
        except Exception as failure:  # noqa: BLE001 - every failure is a result to report
            refused_as_hoped = kind == "zip another folder" and REFUSED in str(failure)
            error = None if refused_as_hoped else f"{type(failure).__name__}: {str(failure)[:200]}"
        answers.append(Answer(kind, time.perf_counter() - start, error))
    return answers


def warm_up(url: str, inputs: Inputs) -> None:
    """One of each request first: the model loads, so round 1 measures serving, not loading."""
    one_client(connect(url, 1)[0], inputs, 4, time.monotonic() + 300)


def run_round(pid: int, inputs: Inputs, clients: list, requests: int, timeout_s: float) -> Round:
    before = rss_mb(pid)
    deadline = time.monotonic() + timeout_s
    start = time.perf_counter()
    with ThreadPoolExecutor(len(clients)) as pool:
        futures = [pool.submit(one_client, client, inputs, requests, deadline) for client in clients]
        answers = [answer for future in futures for answer in future.result()]
    return Round(tuple(answers), before, rss_mb(pid), time.perf_counter() - start)


# ---- report ---------------------------------------------------------------------------------------------------


def format_report(rounds: list[Round], args: argparse.Namespace) -> str:
    rows = [["round", "answered", "errors", "p50 ms", "p95 ms", "seconds", "server RSS MB before -> after"]]
    for number, result in enumerate(rounds, 1):
        rows.append(
            [
                str(number),
                f"{len(result.answers) - len(result.errors)}/{len(result.answers)}",
                str(len(result.errors)),
                f"{result.latency_ms(0.5):.0f}",
                f"{result.latency_ms(0.95):.0f}",
                f"{result.seconds:.1f}",
                f"{result.rss_before_mb:.0f} -> {result.rss_after_mb:.0f}",
            ]
        )
    visitors = "new clients every round" if args.new_visitors else "the same clients every round"
    lines = [
        f"python -m bench load: {args.clients} clients x {args.requests} requests x {len(rounds)} rounds through "
        f"gradio_client against python app.py on 127.0.0.1 ({args.model} ViT, random weights; {visitors})",
        machine_description(),
        "requests cycle through classify, explain (rollout), a batch zip with a damaged entry, and /zip_run "
        "of a server folder (answered when refused)",
        "",
    ]
    lines += aligned(rows[:4] + rows[-1:] if len(rows) > 5 else rows)
    errors = [answer for result in rounds for answer in result.errors]
    for kind in sorted({answer.kind for answer in errors}):
        first = next(answer for answer in errors if answer.kind == kind)
        lines.append(f"  {kind}: {sum(answer.kind == kind for answer in errors)} errors, e.g. {first.error}")
    if len(rounds) >= 3:
        growth = rounds[-1].rss_after_mb - rounds[0].rss_after_mb
        lines.append("server RSS MB after each round: " + ", ".join(f"{result.rss_after_mb:.0f}" for result in rounds))
        lines.append(
            f"memory: after round {len(rounds)} the server holds {growth:+.0f} MB against round 1 "
            f"({verdict(abs(growth) <= GROWTH_AIM_MB, f'aim: within {GROWTH_AIM_MB:.0f} MB')})"
        )
    answered = [answer for result in rounds for answer in result.answers if not answer.error]
    for kind in dict.fromkeys(answer.kind for answer in answered):
        times = sorted(answer.seconds for answer in answered if answer.kind == kind)
        lines.append(
            f"  {kind}: median {1000 * statistics.median(times):.0f} ms, "
            f"p95 {1000 * times[min(len(times) - 1, int(0.95 * len(times)))]:.0f} ms"
        )
    return "\n".join(lines)
