"""The Gradio Train tab's own wiring, called as Gradio calls it (with each page's gr.Request): on a Space, Stop
belongs to the page that started the run."""
from __future__ import annotations

import gradio as gr
import pytest

from training.events import Stopped
from training.examples import write_shapes_zip
from training.jobs import STOPPING, current_job


def test_on_a_space_stop_belongs_to_the_page_that_started_the_run(tiny_vit_dir, tmp_path, monkeypatch):
    from ui import train_tab

    monkeypatch.setenv("SPACE_ID", "someone/vit-studio")
    monkeypatch.setenv("VIT_STUDIO_RUNS", str(tmp_path / "runs"))
    shapes_zip = write_shapes_zip(tmp_path, per_class=8)
    starter, visitor = gr.Request(session_hash="starter"), gr.Request(session_hash="visitor")
    stream = train_tab.start_run(str(shapes_zip), None, "", "", str(tiny_vit_dir), "full", 200, 5e-4, 4, 0.0, 0.1, 0,
                                 False, 0, "auto", "owned", starter)
    run_dir, *_ = next(stream)  # the run has started and the starter's page shows it
    assert run_dir.endswith("owned") and current_job().owner == "starter"
    with pytest.raises(gr.Error, match="started in another page"):
        train_tab.stop_run(visitor)
    assert train_tab.stop_run(starter) == STOPPING
    for _ in stream:  # the starter's page follows the run to its end
        pass
    assert isinstance(current_job().state().events[-1], Stopped)
