"""One training at a time in a background thread, so a front end can start it, stop it and watch it."""

from __future__ import annotations

import shutil
import threading
import time
from dataclasses import dataclass, replace
from pathlib import Path

from .access import LOCAL_USER, Visitor, claim_run, private_run_name
from .captioning import CaptionTrainConfig, check_caption_config, train_captioner
from .checkpoints import CHECKPOINT, TRAINER_STATE
from .disk import disk_budget, room_for_new_run, tidy_runs, trim_finished_run
from .events import Finished, RunEvent, Step, Stopped, read_events
from .finetune import FinetuneConfig, check_config, finetune
from .runs import EVENTS_LOG, format_duration, last_started, new_run_dir

# An owner's page that has not looked at its run for this long is gone (closed or reloaded): then anyone may stop
# the run, so that a run nobody watches cannot hold the one training slot for hours.
OWNER_AWAY_S = 60.0


@dataclass(frozen=True)
class JobState:
    """What a watcher sees at one moment."""

    output_dir: Path
    events: tuple[RunEvent, ...]
    running: bool
    error: str | None  # the message of a ValueError that ended the run (bad data, a model that will not load)
    earlier: tuple[RunEvent, ...] = ()  # a resumed run's log before this start: the curve it had already drawn

    @property
    def run_events(self) -> tuple[RunEvent, ...]:
        """The run's whole story for a chart: its earlier log (when resumed), then this start's events."""
        return (*self.earlier, *self.events)

    @property
    def ended_well(self) -> bool:
        return bool(self.events) and isinstance(self.events[-1], (Finished, Stopped))


# What a job trains: a classifier (finetune) or a captioner (train_captioner), one at a time either way.
TrainConfig = FinetuneConfig | CaptionTrainConfig


def check_settings(config: TrainConfig) -> None:
    """The settings checks of whichever training the config is for."""
    if isinstance(config, CaptionTrainConfig):
        check_caption_config(config)
    else:
        check_config(config)


def resumes(config: TrainConfig) -> bool:
    return config.resume_from_checkpoint if isinstance(config, CaptionTrainConfig) else config.resume


def _train(config: TrainConfig, stop: threading.Event):
    return train_captioner(config, stop) if isinstance(config, CaptionTrainConfig) else finetune(config, stop)


class TrainingJob:
    """finetune() or train_captioner() in a daemon thread; its events collect here for any number of watchers (a
    browser tab closing does not stop the training)."""

    def __init__(self, config: TrainConfig, fresh_folder: bool = False, owner: str | None = None):
        self.config = config
        self.output_dir = Path(config.output_dir)
        self.owner = owner  # the visitor who alone may stop it while they watch (see run_owner); None: anyone
        self._owner_seen = time.monotonic()
        self._fresh_folder = fresh_folder  # made for this run: removed again if the run never starts
        self._stop = threading.Event()
        self._events: list[RunEvent] = []
        # Read before the thread starts, so that none of this start's events are among them.
        self._earlier = tuple(earlier_events(config))
        self._error: str | None = None
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._run, name=f"training {self.output_dir.name}", daemon=True)

    def _run(self) -> None:
        try:
            for event in _train(self.config, self._stop):
                with self._lock:
                    self._events.append(event)
        except ValueError as error:
            self._error = str(error)
        except Exception as error:  # noqa: BLE001 - a watcher must hear about any failure, not see a hang
            self._error = f"Training failed: {type(error).__name__}: {error}"
        if self._error and self._fresh_folder and not self._events:
            # Bad data or a model that will not load: no run happened, so no "interrupted" run is left listed.
            shutil.rmtree(self.output_dir, ignore_errors=True)
        elif self._events and isinstance(self._events[-1], Finished) and disk_budget() is not None:
            trim_finished_run(self.output_dir)  # on a Space, what only more training would need goes at once

    def start(self) -> "TrainingJob":
        self._thread.start()
        return self

    def watched_by(self, asking: Visitor) -> None:
        """A page showing this run calls this as it redraws: its owner's page is how we know the owner is there."""
        if asking.id is not None and asking.id == self.owner:
            self._owner_seen = time.monotonic()

    def stop(self, by: Visitor = LOCAL_USER) -> None:
        """End after the current step; the model is saved and the run can be resumed. A run with an owner
        stops only when its owner asks, or when the owner's page has been gone for OWNER_AWAY_S."""
        if self.owner is not None and by.id != self.owner and time.monotonic() - self._owner_seen < OWNER_AWAY_S:
            raise ValueError(
                "This run was started by another visitor, whose page is still open, so only they can "
                "stop it. A minute after their page closes, anyone can."
            )
        self._stop.set()

    def time_left(self) -> str:
        """'about 4 min 10 s left (step 30/120)', or what it is doing before its first step."""
        with self._lock:
            events = list(self._events)
        started = last_started(events)
        last_step = next((event for event in reversed(events) if isinstance(event, Step)), None)
        if started is None or last_step is None:
            return "it is still preparing its data and model"
        return f"about {format_duration(last_step.seconds_left)} left (step {last_step.step}/{started.total_steps})"

    @property
    def running(self) -> bool:
        return self._thread.is_alive()

    def state(self) -> JobState:
        with self._lock:
            events = tuple(self._events)
        return JobState(self.output_dir, events, self.running, self._error, earlier=self._earlier)

    def wait(self, timeout_s: float | None = None) -> JobState:
        self._thread.join(timeout_s)
        return self.state()


def earlier_events(config: TrainConfig) -> list[RunEvent]:
    """What a resumed run's log already holds (its earlier steps and evaluations); nothing for a new run, or for a
    resume without a checkpoint, which finetune() starts afresh with a new log."""
    folder = Path(config.output_dir)
    resuming = resumes(config) and (folder / CHECKPOINT / TRAINER_STATE).is_file()
    return read_events(folder / EVENTS_LOG) if resuming and (folder / EVENTS_LOG).is_file() else []


_current: TrainingJob | None = None
_jobs_lock = threading.Lock()


def start_training(config: TrainConfig, visitor: Visitor = LOCAL_USER) -> TrainingJob:
    """Start a run in the background (a resume: its folder exists). Settings are checked here, at once; data and
    model problems arrive as the job's error a moment later. Only one run trains at a time: the machine has one
    set of cores."""
    global _current
    check_settings(config)
    with _jobs_lock:
        check_idle(visitor)
        if resumes(config) and not Path(config.output_dir).is_dir():
            # On a Space a run can be removed for its age between the Resume click and here (see start_new_run).
            raise ValueError(
                f"The run '{Path(config.output_dir).name}' has just been removed (a Space keeps runs for "
                "a few hours); start a new run."
            )
        _current = TrainingJob(config, owner=run_owner(visitor)).start()
        return _current


def check_idle(asking: Visitor = LOCAL_USER) -> None:
    """Refuse a second run while one trains, saying at once whose it is and when it should end."""
    job = _current
    if job is None or not job.running:
        return
    if asking.shared and job.owner != asking.id:
        raise ValueError(
            f"Another visitor's run is training now, and {job.time_left()}. One run trains at a time "
            "on this app: try again when it has ended."
        )
    raise ValueError(
        f"A training is already running ({job.output_dir.name}), and {job.time_left()}. Stop it or "
        "wait for it to finish, then start this one."
    )


def run_owner(asking: Visitor) -> str | None:
    """Who may stop a run this visitor starts: they alone on a shared app (a Space, a --share link, a classroom
    server), so one visitor cannot end another's training; anyone on an app only its own machine reaches."""
    return asking.id if asking.shared else None


def stop_current(visitor: Visitor = LOCAL_USER) -> bool:
    """Ask the run in progress to end after its current step: True when one was asked, False when nothing trains.
    A ValueError says why not when the run belongs to another visitor."""
    job = _current
    if job is None or not job.running:
        return False
    job.stop(by=visitor)
    return True


def current_job() -> TrainingJob | None:
    """The run in progress, or the last one started (so a reloaded page can show how it ended)."""
    return _current


def watch(job: TrainingJob, every_s: float = 0.5):
    """JobState snapshots while the job runs, one every `every_s` seconds, and a last one when it ends."""
    while job.running:
        yield job.state()
        time.sleep(every_s)
    yield job.state()


def start_new_run(config: TrainConfig, run_name: str | None = None, visitor: Visitor = LOCAL_USER) -> TrainingJob:
    """Start `config` in a fresh run folder under the runs root (named `run_name`, or a timestamp), owned by the
    visitor on a shared app. The settings, the one-run-at-a-time rule and (on a Space) the disk budget are checked
    first, so a refused run leaves no empty folder behind."""
    global _current
    check_settings(config)
    with _jobs_lock:  # two visitors pressing Start at once: one trains, the other is told, no stray folder
        check_idle(visitor)
        budget = disk_budget()
        if budget is not None:
            tidy_runs(budget)
            # A captioned zip is unpacked under core.zips's own limits, which a Space's budget is well above.
            if isinstance(config, FinetuneConfig):
                room = room_for_new_run(budget)  # the run's unpacked data may take what is left of the quota
                config = replace(config, max_data_bytes=min(config.max_data_bytes or room, room))
        folder = new_run_dir(private_run_name(run_name, visitor))
        try:
            claim_run(folder, visitor)
        except OSError as error:
            shutil.rmtree(folder, ignore_errors=True)
            raise ValueError(f"Could not start the run: its folder cannot be written ({error.strerror}).") from None
        _current = TrainingJob(replace(config, output_dir=folder), fresh_folder=True, owner=run_owner(visitor)).start()
        return _current


def is_training(run_dir: str | Path) -> bool:
    """Whether the run in this folder is the one training now."""
    job = _current
    return job is not None and job.running and job.output_dir.resolve() == Path(run_dir).resolve()
