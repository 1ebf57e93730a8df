"""Attacks through gradio_client on the real app: server paths as run names, another visitor's runs, a second
training, a runs folder outside the working and temp folders."""

from __future__ import annotations

import shutil
import tempfile
import time
import uuid
from pathlib import Path

import pytest
from gradio_client import Client, handle_file

from .conftest import ROOT, running_app

# mode, epochs, learning rate, batch, weight decay, warmup, image size, augment, seed, precision
HEAD_RUN = ["head", 2, 1e-2, 16, 0.0, 0.1, 0, False, 0, "auto"]
LONG_RUN = ["full", 500, 1e-3, 4, 0.0, 0.1, 0, False, 0, "auto"]
NO_SUCH_RUN = "There is no run called"
# /show_run and /resume take the runs list's value, and the cell views the class lists' values: Gradio itself
# refuses a value the visitor's list does not hold (tests/test_gradio_train_tab.py calls past that check).
NOT_LISTED = "There is no run called|is not in the list of choices"
LISTS_CHECKED = ("/show_run", "/resume", "/validation_cell", "/compare_base")


@pytest.fixture(scope="module")
def outside_runs_dir() -> Path:
    """A runs folder neither under the app's working folder nor under the temp folder: Gradio serves neither
    from there unless told (the confusion matrix failed to show from such a --runs-dir)."""
    folder = Path.home() / ".cache" / "vit-studio-test-runs" / uuid.uuid4().hex
    for forbidden in (ROOT.resolve(), Path(tempfile.gettempdir()).resolve()):
        assert not folder.resolve().is_relative_to(forbidden), f"{folder} is under {forbidden}: pick another place"
    folder.mkdir(parents=True)
    yield folder
    shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture(scope="module")
def space_url(tiny_vit_dir, outside_runs_dir, tmp_path_factory):
    """The app as a Space runs it (SPACE_ID set: shared, with the Space's limits), on this machine's loopback."""
    with running_app(
        ["--model", str(tiny_vit_dir), "--runs-dir", str(outside_runs_dir), "--host", "127.0.0.1"],
        tmp_path_factory.mktemp("space-app"),
        extra_env={"SPACE_ID": "tests/vit-studio"},
    ) as url:
        yield url


def test_a_server_folder_is_never_a_run(app_url, tmp_path):
    """The attack: /zip_run zipped any folder holding a config.json (e.g. ~/.docker) and handed it out."""
    secret = tmp_path / ".docker"
    secret.mkdir()
    (secret / "config.json").write_text('{"auths": {"registry.example": {"auth": "c2VjcmV0"}}}')
    (secret / "events.jsonl").write_text("")
    client = Client(app_url, verbose=False)
    for endpoint, extra in (
        ("/zip_run", ()),
        ("/use_run", ()),
        ("/show_run", ()),
        ("/resume", ()),
        ("/validation_cell", ("a", "a")),
        ("/compare_base", ("a", "a")),
        ("/push_to_hub", ("me/x", "hf_x", True)),
    ):
        for name in (str(secret), f"../{tmp_path.name}/.docker", "/etc"):
            with pytest.raises(Exception, match=NOT_LISTED if endpoint in LISTS_CHECKED else NO_SUCH_RUN):
                client.predict(name, *extra, api_name=endpoint)


@pytest.fixture(scope="module")
def alices_run(space_url, shapes_zip, tiny_vit_dir):
    """Visitor A trains a small run on the Space; its last streamed output."""
    alice = Client(space_url, verbose=False)
    job = alice.submit(handle_file(str(shapes_zip)), None, "", str(tiny_vit_dir), *HEAD_RUN, "alice", api_name="/train")
    list(job)
    return alice, job.outputs()[-1]


def test_the_confusion_matrix_is_served_from_a_runs_folder_anywhere(alices_run, outside_runs_dir):
    _, (run_name, progress, _, per_class, confusion, *_) = alices_run
    assert progress.startswith("Finished"), progress
    assert (outside_runs_dir / run_name / "confusion.png").is_file()
    assert confusion and Path(confusion).is_file()  # Gradio served it (it refused before)


def test_no_file_of_the_runs_folder_is_served_by_path(alices_run, space_url, outside_runs_dir):
    """Gradio serves any file under its allowed paths to anyone: the runs folder must never be one of them."""
    import urllib.error
    import urllib.request

    _, (run_name, *_) = alices_run
    for name in ("split.json", "confusion.png", "model.safetensors"):
        path = outside_runs_dir / run_name / name
        assert path.is_file()
        with pytest.raises(urllib.error.HTTPError) as refused:
            urllib.request.urlopen(f"{space_url}gradio_api/file={path}", timeout=10)
        assert refused.value.code in (403, 404)


def test_a_visitor_sees_and_downloads_only_their_own_runs(alices_run, space_url):
    import zipfile

    alice, (run_name, *_, runs, _start_from) = alices_run
    assert run_name.startswith("alice-")  # a random tail: nobody can guess the folder
    assert [name for _, name in runs["choices"]] == [run_name]
    assert f"{run_name}/model.safetensors" in zipfile.ZipFile(alice.predict(run_name, api_name="/zip_run")).namelist()
    bob = Client(space_url, verbose=False)
    for endpoint, extra in (
        ("/zip_run", ()),
        ("/use_run", ()),
        ("/show_run", ()),
        ("/resume", ()),
        ("/validation_cell", ("circle", "circle")),
        ("/compare_base", ("circle", "circle")),
    ):
        with pytest.raises(Exception, match=NOT_LISTED if endpoint in LISTS_CHECKED else NO_SUCH_RUN):
            bob.predict(run_name, *extra, api_name=endpoint)


def test_a_second_training_is_told_at_once_and_cannot_stop_the_first(alices_run, space_url, shapes_zip, tiny_vit_dir):
    alice, _ = alices_run
    long_run = alice.submit(
        handle_file(str(shapes_zip)), None, "", str(tiny_vit_dir), *LONG_RUN, "long", api_name="/train"
    )
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and not any("step" in str(output[1]) for output in long_run.outputs()):
            time.sleep(0.5)
        bob = Client(space_url, verbose=False)
        asked = time.monotonic()
        with pytest.raises(Exception, match=r"Another visitor's run is training now, and about .* left"):
            bob.predict(handle_file(str(shapes_zip)), None, "", str(tiny_vit_dir), *HEAD_RUN, "bob", api_name="/train")
        assert time.monotonic() - asked < 20, "the second visitor waited for the first run instead of being told"
        with pytest.raises(Exception, match="started by another visitor"):
            bob.predict(api_name="/stop_training")
        with pytest.raises(Exception, match="another visitor's"):
            bob.predict(api_name="/watch_training")
    finally:
        alice.predict(api_name="/stop_training")
        list(long_run)
    assert long_run.outputs()[-1][1].startswith("Stopped")


def test_after_a_restart_the_run_shows_with_its_confusion_matrix(
    alices_run, outside_runs_dir, tiny_vit_dir, tmp_path_factory
):
    _, (run_name, *_) = alices_run
    # The same runs folder, served again by the app on one's own machine (where every run is listed).
    with running_app(
        ["--model", str(tiny_vit_dir), "--runs-dir", str(outside_runs_dir)], tmp_path_factory.mktemp("restarted")
    ) as url:
        shown_name, progress, _, _, confusion, *_ = Client(url, verbose=False).predict(run_name, api_name="/show_run")
    assert shown_name == run_name and progress.startswith("Finished")
    assert confusion and Path(confusion).is_file()


def _listed_runs(page) -> list[str]:
    """The labels in the Train tab's list of runs, as the page shows them."""
    page.locator("#train-runs input").click()
    labels = page.locator("#train-runs [role=option]").all_inner_texts()
    page.keyboard.press("Escape")
    return labels


def test_in_a_browser_a_reload_keeps_your_runs_and_another_browser_never_lists_them(space_url, browser, tiny_vit_dir):
    from .conftest import open_page

    context, page = open_page(browser, 1280, 1000)
    page.goto(space_url)
    page.get_by_role("tab", name="Train").click()
    page.locator("#train-example").get_by_text("shapes.zip").first.click()
    page.locator("#train-base input").fill(str(tiny_vit_dir))
    page.keyboard.press("Enter")
    page.locator("#train-run-name input, #train-run-name textarea").first.fill("in-the-browser")
    page.locator("#train-start").click()
    page.get_by_text("Finished").first.wait_for(timeout=120_000)
    assert [label for label in _listed_runs(page) if label.startswith("in-the-browser-")]
    page.reload()  # the same browser: its id is kept in local storage, so the run is still listed
    page.get_by_role("tab", name="Train").click()
    page.wait_for_timeout(1500)
    assert [label for label in _listed_runs(page) if label.startswith("in-the-browser-")]
    assert not page.errors, page.errors
    context.close()
    context, stranger = open_page(browser, 1280, 1000)  # another browser
    stranger.goto(space_url)
    stranger.get_by_role("tab", name="Train").click()
    stranger.wait_for_timeout(1500)
    assert not [label for label in _listed_runs(stranger) if label.startswith(("in-the-browser-", "alice-"))]
    context.close()


# ---- hostile inputs through the real app: images, zips, training settings, checkpoints -------------------------


def test_a_decompression_bomb_photo_is_refused_before_decoding(app_url, tiny_vit_dir, tmp_path):
    from test_images import forged_png_header

    bomb = forged_png_header(tmp_path / "bomb.png", 30_000, 30_000)  # 900 megapixels claimed by a tiny file
    with pytest.raises(Exception, match=r"bomb\.png' is 900 megapixels; the limit is 50 megapixels"):
        Client(app_url, verbose=False).predict(handle_file(str(bomb)), str(tiny_vit_dir), 3, api_name="/classify")


def test_hostile_zips_give_error_rows_and_the_rest_is_classified(app_url, tiny_vit_dir, tmp_path, photos):
    """A 1 GiB entry, the same entry declared as 1,000 bytes, and a name flagged UTF-8 that is not."""
    from test_hostile_zips import add_entries, break_utf8_name, png_bytes, understate_size, write_zeros_entry

    photo = png_bytes(photos["chelsea"])
    huge = add_entries(write_zeros_entry(tmp_path / "huge.zip", "ants/big.bmp", 1024**3), {"ants/a.png": photo})
    lying = understate_size(huge, tmp_path / "lying.zip", "ants/big.bmp", 1000)
    named = add_entries(
        tmp_path / "named.zip", {"bees/é.png": photo, "bees/b.png": photo, "ants/c.png": photo, "ants/d.png": photo}
    )
    (tmp_path / "badname.zip").write_bytes(break_utf8_name(named.read_bytes(), "bees/é.png", b"bees/\xff\xfe.png"))
    client = Client(app_url, verbose=False)
    table, _, summary = client.predict(
        [handle_file(str(path)) for path in (huge, lying, tmp_path / "badname.zip")],
        str(tiny_vit_dir),
        2,
        api_name="/classify_batch",
    )
    rows = {row[0]: row for row in table["data"]}
    assert "unpacks to more than" in rows["huge.zip/ants/big.bmp"][4]
    assert rows["lying.zip/ants/big.bmp"][4]  # the header lied: the entry fails, without inflating
    assert rows["huge.zip/ants/a.png"][1] and rows["lying.zip/ants/a.png"][1]
    assert rows["badname.zip/bees/\ufffd\ufffd.png"][1] and rows["badname.zip/bees/b.png"][1]
    assert "**6** images classified" in summary and "**2** could not be read" in summary
    summary, counts, *_ = client.predict(handle_file(str(tmp_path / "badname.zip")), None, "", api_name="/check_data")
    assert summary.startswith("2 classes") and [row[0] for row in counts["data"]] == ["ants", "bees"]


def test_training_settings_past_the_bounds_are_one_sentence(app_url, shapes_zip, tiny_vit_dir, app_runs_dir):
    before = sorted(app_runs_dir.iterdir())
    with pytest.raises(Exception, match=r"The image size is 30000 pixels a side; at most 4096 can be trained"):
        Client(app_url, verbose=False).predict(
            handle_file(str(shapes_zip)),
            None,
            "",
            str(tiny_vit_dir),
            "full",
            1,
            1e-3,
            4,
            0.0,
            0.1,
            30000,
            False,
            0,
            "auto",
            "huge",
            api_name="/train",
        )
    assert sorted(app_runs_dir.iterdir()) == before


def test_a_damaged_checkpoint_is_named_when_resumed(app_url, shapes_zip, tiny_vit_dir, app_runs_dir):
    client = Client(app_url, verbose=False)
    job = client.submit(
        handle_file(str(shapes_zip)), None, "", str(tiny_vit_dir), *LONG_RUN, "to-damage", api_name="/train"
    )
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and not any("step" in str(output[1]) for output in job.outputs()):
        time.sleep(0.5)
    client.predict(api_name="/stop_training")
    list(job)
    assert job.outputs()[-1][1].startswith("Stopped"), job.outputs()[-1][1]
    (app_runs_dir / "to-damage" / "checkpoint" / "trainer_state.json").write_text('{"step": "many"')
    with pytest.raises(
        Exception,
        match=r"This checkpoint is damaged: to-damage/checkpoint/trainer_state\.json; "
        r"start a new run or pick another",
    ):
        client.predict("to-damage", api_name="/resume")


def test_on_a_shared_app_a_model_box_loads_only_the_apps_own_folders(
    space_url, tiny_vit_dir, photo_path, shapes_zip, tmp_path
):
    """A server folder holding a model is not a model box's to load (nor to train from, then download)."""
    private = shutil.copytree(tiny_vit_dir, tmp_path / "private-model")
    client = Client(space_url, verbose=False)
    assert client.predict(handle_file(str(photo_path)), str(tiny_vit_dir), 3, api_name="/classify")
    with pytest.raises(Exception, match="neither a model id on the Hub nor a model folder the app can read"):
        client.predict(handle_file(str(photo_path)), str(private), 3, api_name="/classify")
    with pytest.raises(Exception, match="neither a model id on the Hub nor a model folder the app can read"):
        client.predict(handle_file(str(shapes_zip)), None, "", str(private), *HEAD_RUN, "steal", api_name="/train")
