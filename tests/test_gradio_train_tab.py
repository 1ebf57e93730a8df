"""The Gradio Train tab's own wiring, called as Gradio calls it (with each page's gr.Request and visitor id): runs
are named, not pathed, and on a shared app each visitor sees, stops and downloads only their own."""

from __future__ import annotations

import zipfile

import gradio as gr
import pytest

from training.events import Step, Stopped
from training.examples import write_shapes_zip
from training.jobs import current_job
from ui.shared.training import STOPPING

ALICE, BOB = "browser-of-alice-0001", "browser-of-bob-000002"  # ids a browser keeps: 16 characters or more
# base (filled in), mode, epochs, learning rate, batch, weight decay, warmup, image size, augment, seed, precision
FULL_RUN = ["full", 200, 5e-4, 4, 0.0, 0.1, 0, False, 0, "auto"]


def _start(train_tab, shapes_zip, tiny_vit_dir, run_name, visitor_id, request, settings=FULL_RUN):
    return train_tab.start_run(
        str(shapes_zip), None, "", "", str(tiny_vit_dir), *settings, run_name, visitor_id, request
    )


@pytest.mark.parametrize("shared_by", ["SPACE_ID", "VIT_STUDIO_SHARED"])
def test_on_a_shared_app_stop_belongs_to_the_visitor_who_started_the_run(
    shared_by, tiny_vit_dir, tmp_path, monkeypatch
):
    from ui import train_tab

    monkeypatch.delenv("SPACE_ID", raising=False)
    monkeypatch.setenv(shared_by, "someone/vit-studio" if shared_by == "SPACE_ID" else "1")
    monkeypatch.setenv("VIT_STUDIO_RUNS", str(tmp_path / "runs"))
    shapes_zip = write_shapes_zip(tmp_path, per_class=8)
    starter, other = gr.Request(session_hash="starter"), gr.Request(session_hash="other")
    stream = _start(train_tab, shapes_zip, tiny_vit_dir, "owned", "browser-of-the-starter", starter)
    run_name, *_ = next(stream)  # the run has started and the starter's page shows it
    # On a shared app the name gets a random tail: nobody else can guess the folder.
    assert run_name.startswith("owned-") and len(run_name) == len("owned-") + 10
    assert current_job().owner == "browser-of-the-starter"
    with pytest.raises(gr.Error, match="started by another visitor"):
        train_tab.stop_run("browser-of-someone-else", other)
    with pytest.raises(gr.Error, match="another visitor's"):
        next(train_tab.watch_current("browser-of-someone-else", other))
    # A reload of the starter's page is a new session but the same browser: still the owner.
    assert train_tab.stop_run("browser-of-the-starter", gr.Request(session_hash="reloaded")) == STOPPING
    for _ in stream:  # the starter's page follows the run to its end
        pass
    assert isinstance(current_job().state().events[-1], Stopped)


@pytest.fixture
def two_visitors_runs(tiny_vit_dir, tmp_path, monkeypatch):
    """A classroom server: visitor A trained a run; B has none; an example run sits in the runs folder."""
    from training.finetune import FinetuneConfig, finetune
    from ui import train_tab

    monkeypatch.setenv("VIT_STUDIO_SHARED", "1")
    monkeypatch.delenv("SPACE_ID", raising=False)
    runs = tmp_path / "runs"
    monkeypatch.setenv("VIT_STUDIO_RUNS", str(runs))
    shapes_zip = write_shapes_zip(tmp_path, per_class=8)
    head_run = ["head", 1, 1e-2, 16, 0.0, 0.0, 0, False, 0, "auto"]
    *_, last = _start(train_tab, shapes_zip, tiny_vit_dir, "alice", ALICE, gr.Request(session_hash="a"), head_run)
    example = runs / "example"
    for _ in finetune(
        FinetuneConfig(
            train_dir=shapes_zip,
            output_dir=example,
            model_name_or_path=str(tiny_vit_dir),
            mode="head",
            num_train_epochs=1,
        )
    ):
        pass
    return train_tab, last[0], runs


def test_each_visitor_lists_only_their_runs_and_the_examples(two_visitors_runs):
    train_tab, alice_run, _ = two_visitors_runs
    alice_runs, _ = train_tab.refresh_lists(ALICE, gr.Request(session_hash="a"))
    bob_runs, bob_bases = train_tab.refresh_lists(BOB, gr.Request(session_hash="b"))
    assert sorted(name for _, name in alice_runs["choices"]) == sorted([alice_run, "example"])
    assert [name for _, name in bob_runs["choices"]] == ["example"]
    assert not any(alice_run in base for base in bob_bases["choices"])
    # Sizes show in the list: a run's folder is its model, checkpoint and unpacked data.
    assert all(label.endswith(("KB)", "MB)", "GB)")) for label, _ in alice_runs["choices"])


def test_another_visitors_run_is_refused_like_a_run_that_does_not_exist(two_visitors_runs):
    train_tab, alice_run, runs = two_visitors_runs
    bob = gr.Request(session_hash="b")
    for call in (
        lambda name: train_tab.zip_current(name, BOB, bob),
        lambda name: train_tab.use_run(name, BOB, bob),
        lambda name: train_tab.show_saved_run(name, BOB, bob),
        lambda name: train_tab.cell_overlays(name, "circle", "circle", BOB, bob),
        lambda name: train_tab.compare_attention(name, "circle", "circle", BOB, bob),
        lambda name: train_tab.push_current(name, "me/x", "hf_x", True, BOB, bob),
        lambda name: next(train_tab.resume_run(name, BOB, bob)),
    ):
        for name in (alice_run, str(runs / alice_run), "no-such-run"):
            with pytest.raises(gr.Error, match="There is no run called '.+' here: pick one from the list"):
                call(name)
    # Alice's own browser (any page of it) gets her run; everyone gets the example, but cannot resume it.
    assert zipfile.ZipFile(train_tab.zip_current(alice_run, ALICE, gr.Request(session_hash="a2"))).namelist()
    assert zipfile.ZipFile(train_tab.zip_current("example", BOB, bob)).namelist()
    with pytest.raises(gr.Error, match="example run"):
        next(train_tab.resume_run("example", BOB, bob))


def test_run_endpoints_take_names_not_server_paths(tiny_vit_dir, tmp_path, monkeypatch):
    """The attack: any folder holding a config.json (e.g. ~/.docker) was zipped and handed out by /zip_run."""
    from ui import train_tab

    monkeypatch.delenv("SPACE_ID", raising=False)
    monkeypatch.setenv("VIT_STUDIO_SHARED", "0")  # even on one's own machine
    runs = tmp_path / "runs"
    runs.mkdir()
    monkeypatch.setenv("VIT_STUDIO_RUNS", str(runs))
    secret = tmp_path / "home" / ".docker"
    secret.mkdir(parents=True)
    (secret / "config.json").write_text('{"auths": {"registry": {"auth": "c2VjcmV0"}}}')
    (secret / "events.jsonl").write_text("")
    (runs / "link").symlink_to(secret)  # a link inside the runs folder must not lead out of it either
    request = gr.Request(session_hash="local")
    for name in (str(secret), f"{runs}/../home/.docker", "../home/.docker", "link", "", "/", "."):
        with pytest.raises(gr.Error, match="There is no run called|Pick a run in the list first"):
            train_tab.zip_current(name, None, request)
        with pytest.raises(gr.Error, match="There is no run called|Pick a run in the list first"):
            train_tab.use_run(name, None, request)


def test_a_page_whose_state_gradio_dropped_is_still_its_visitor(two_visitors_runs):
    """Gradio keeps the state of the 200 latest sessions; a page pushed out must not lose its runs."""
    train_tab, alice_run, _ = two_visitors_runs
    visitor_id, kept, runs, _ = train_tab.welcome_visitor(ALICE, gr.Request(session_hash="alices-page"))
    assert visitor_id == kept == ALICE and any(name == alice_run for _, name in runs["choices"])
    # Later events of that page arrive without the page's state (None): the session still names Alice.
    assert zipfile.ZipFile(train_tab.zip_current(alice_run, None, gr.Request(session_hash="alices-page"))).namelist()
    with pytest.raises(gr.Error, match="There is no run called"):
        train_tab.zip_current(alice_run, None, gr.Request(session_hash="someone-elses-page"))
    new_id, *_ = train_tab.welcome_visitor(None, gr.Request(session_hash="first-visit"))
    assert len(new_id) >= 16 and new_id not in (ALICE, BOB)


# ---- folder uploads: Gradio keeps the files, the browser keeps their folders ---------------------------------


def test_folder_names_pair_only_when_every_name_matches(tmp_path):
    from ui.train_tab import pair_folder_names

    files = [tmp_path / "h1" / "a.jpg", tmp_path / "h2" / "b.jpg"]
    assert pair_folder_names('["pets/cat/a.jpg", "pets/dog/b.jpg"]', files) == [
        ("pets/cat/a.jpg", files[0]),
        ("pets/dog/b.jpg", files[1]),
    ]
    # A stale list (another folder), a short list, or no list: the bare files, never a wrong class.
    assert pair_folder_names('["pets/cat/x.jpg", "pets/dog/b.jpg"]', files) == files
    assert pair_folder_names('["pets/cat/a.jpg"]', files) == files
    assert pair_folder_names("", files) == files and pair_folder_names("not json", files) == files


def test_upload_whose_folder_names_were_lost_asks_for_a_zip(tmp_path):
    """gradio 6 keeps a directory upload as <cache>/<sha256>/<file name>: the class folders are gone."""
    from ui.train_tab import data_source

    files = [tmp_path / "gradio" / f"{index:064x}" / f"p{index}.jpg" for index in range(4)]
    with pytest.raises(gr.Error, match="Upload a .zip"):
        data_source(None, [str(path) for path in files], "", "")
    # With the browser's names the same files keep their classes.
    names = '["pets/cat/p0.jpg", "pets/cat/p1.jpg", "pets/dog/p2.jpg", "pets/dog/p3.jpg"]'
    assert [name for name, _ in data_source(None, [str(path) for path in files], names, "")][:2] == [
        "pets/cat/p0.jpg",
        "pets/cat/p1.jpg",
    ]


def test_pairs_whose_first_folders_are_upload_hashes_ask_for_a_zip(tmp_path):
    """The check reads a pair by its name, as training does: names that start in Gradio's hash folders lost
    their classes too, while one pair with a real folder means the classes are known."""
    from training import DataError
    from ui.train_tab import check_folder_names_survived

    files = [tmp_path / f"{index:064x}" / f"p{index}.jpg" for index in range(2)]
    hashed = [(f"{index:064x}/p{index}.jpg", file) for index, file in enumerate(files)]
    with pytest.raises(DataError, match="Upload a .zip"):
        check_folder_names_survived(hashed)
    with pytest.raises(DataError, match="Upload a .zip"):
        check_folder_names_survived([(f"\\{index:064x}\\p{index}.jpg", file) for index, file in enumerate(files)])
    check_folder_names_survived([*hashed, ("pets/cat/p2.jpg", tmp_path / "p2.jpg")])
    check_folder_names_survived([str(files[0]), ("pets/cat/p2.jpg", tmp_path / "p2.jpg")])
    check_folder_names_survived([("p0.jpg", files[0]), ("p1.jpg", files[1])])  # no folder: no hash to judge


@pytest.fixture
def own_machine(tmp_path, monkeypatch):
    """The app on one's own machine (not shared), its runs in a fresh folder; the Train tab module and a page."""
    from ui import train_tab

    monkeypatch.delenv("SPACE_ID", raising=False)
    monkeypatch.setenv("VIT_STUDIO_SHARED", "0")
    monkeypatch.setenv("VIT_STUDIO_RUNS", str(tmp_path / "runs"))
    return train_tab, write_shapes_zip(tmp_path, per_class=8), gr.Request(session_hash="local")


def test_a_run_that_ends_joins_both_lists_and_a_new_page_shows_it(own_machine, tiny_vit_dir, tmp_path):
    train_tab, shapes_zip, page = own_machine
    head_run = ["head", 1, 1e-2, 16, 0.0, 0.0, 0, False, 0, "auto"]
    *_, last = _start(train_tab, shapes_zip, tiny_vit_dir, "ended", None, page, head_run)
    run_name, *_, runs, bases = last
    run_path = str(tmp_path / "runs" / "ended")
    assert run_name == "ended" and any(name == "ended" for _, name in runs["choices"])
    assert run_path in bases["choices"], "the finished run is not offered under Start from"
    # A page opened afterwards lists it at once, without Refresh.
    _, _, new_runs, new_bases = train_tab.welcome_visitor(None, gr.Request(session_hash="new-page"))
    assert any(name == "ended" for _, name in new_runs["choices"]) and run_path in new_bases["choices"]


def _train_losses_at(figure) -> list[int]:
    """The steps of a curves figure's train-loss line."""
    return [int(step) for step in figure.axes[0].lines[0].get_xdata()]


def test_resume_streams_the_earlier_curve_and_goes_on(own_machine, tiny_vit_dir):
    train_tab, shapes_zip, page = own_machine
    stream = _start(train_tab, shapes_zip, tiny_vit_dir, "resumed", None, page)
    for _ in stream:
        if any(isinstance(event, Step) and event.step >= 2 for event in current_job().state().events):
            train_tab.stop_run(None, page)
    stopped_at = current_job().state().events[-1].step
    resumed = train_tab.resume_run("resumed", None, page)
    first_figure = next(resumed)[2]
    # The chart shows the run so far before the resumed run has taken a step.
    assert first_figure is not None and _train_losses_at(first_figure) == list(range(1, stopped_at + 1))
    train_tab.stop_run(None, page)
    *_, last = resumed
    steps = _train_losses_at(last[2])  # the earlier steps, then any the resumed run took before it stopped
    assert steps == list(range(1, steps[-1] + 1)) and steps[-1] >= stopped_at


def test_the_counts_chart_has_its_key(own_machine):
    from ui.gradio_app import build_demo
    from ui.shared import train_widgets

    train_tab, shapes_zip, _ = own_machine
    demo = build_demo()
    blocks = {block.elem_id: block for block in demo.blocks.values() if getattr(block, "elem_id", None)}
    assert blocks["train-counts-chart"].color_map == train_widgets.SPLIT_COLORS
    assert blocks["train-counts-key"].value == train_widgets.COUNTS_KEY
    _, _, frame, _, _ = train_tab.check_source(str(shapes_zip), None, "", "")
    assert set(frame[train_widgets.SPLIT_KEY]) == set(train_widgets.SPLIT_COLORS)


def test_the_single_template_box_locks_while_an_ensemble_is_chosen():
    from ui import zero_shot_tab
    from ui.gradio_app import build_demo

    assert zero_shot_tab._template_box("openai")["interactive"] is False
    assert zero_shot_tab._template_box("simple")["interactive"] is False
    assert zero_shot_tab._template_box("single")["interactive"] is True
    demo = build_demo()
    ids = {block.elem_id: block_id for block_id, block in demo.blocks.items() if getattr(block, "elem_id", None)}
    wired = [
        dependency
        for dependency in demo.config["dependencies"]
        if [ids["clip-template-mode"], "change"] in [list(target) for target in dependency["targets"]]
    ]
    assert [dependency["outputs"] for dependency in wired] == [[ids["clip-template"]]]
