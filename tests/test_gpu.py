"""core.gpu, the ZeroGPU hook: marked engine calls go through a lender once the app lends a GPU."""

from __future__ import annotations

import pickle

import pytest

from core import gpu


def pickling_lender(slots: list[str]):
    """What ZeroGPU's spaces.GPU does to a call, as far as this process can tell: run it elsewhere, its arguments
    and its result sent by pickle (so a lambda among them fails, as it would there)."""

    def lender(function):
        def on_gpu(*args, **kwargs):
            slots.append(function.__name__)
            sent_args, sent_kwargs = pickle.loads(pickle.dumps((args, kwargs)))
            return pickle.loads(pickle.dumps(function(*sent_args, **sent_kwargs)))

        return on_gpu

    return lender


@pytest.fixture
def lent_gpu():
    slots: list[str] = []
    gpu.lend_gpu(pickling_lender(slots))
    yield slots
    gpu.stop_lending()


def test_marked_calls_go_through_the_lender_once_with_their_models_loaded_here(monkeypatch):
    monkeypatch.setattr(gpu, "_entry_points", {})
    monkeypatch.setattr(gpu, "_lent", {})
    preloaded = []

    def preload(call, on_load):
        preloaded.append(call["model"])
        if on_load is not None:
            on_load(call["model"])

    @gpu.gpu_work(preload=preload)
    def caption_all(images, model="tiny", *, on_load=None, on_run=None):
        captions = [describe(image) for image in images]  # an entry point calling another, as batch calls do
        if on_run is not None:
            on_run(f"ran {model} on {len(images)} images")
        return captions

    @gpu.gpu_work(preload=preload)
    def describe(image, model="tiny"):
        return f"a photo of {image}"

    runs, loads, slots = [], [], []
    assert caption_all(["a cat"], on_run=runs.append) == ["a photo of a cat"]
    assert preloaded == [] and runs == ["ran tiny on 1 images"]  # nothing lent: plain calls
    assert [name.rsplit(".", 1)[-1] for name in gpu.lend_gpu(pickling_lender(slots))] == ["caption_all", "describe"]
    captions = caption_all(
        ["a cat", "a dog"], "small", on_load=lambda name: loads.append(name), on_run=lambda run: runs.append(run)
    )
    assert captions == ["a photo of a cat", "a photo of a dog"]
    assert slots == ["caption_all"]  # the inner calls ran in the outer call's slot, with no preload of their own
    assert preloaded == ["small"] and loads == ["small"]  # loaded here first, the callback called here
    assert runs[-1] == "ran small on 2 images"  # the report came back with the result
    gpu.stop_lending()
    assert describe("a cup") == "a photo of a cup" and slots == ["caption_all"]


def test_the_engine_marks_its_tensor_work_for_zero_gpu():
    import core  # noqa: F401 - importing the engine marks its entry points

    marked = set(gpu.entry_points())
    for name in (
        "core.classify.classify",
        "core.batch.classify_files",
        "core.batch.caption_files",
        "core.attention.explain",
        "core.attention.features",
        "core.caption.caption",
        "core.caption.caption_attention",
        "core.zero_shot.zero_shot",
        "core.zero_shot.template_scores",
        "core.zero_shot.zero_shot_map",
    ):
        assert name in marked, f"{name} is not marked with @gpu_work"


def test_a_lent_classify_loads_here_reports_here_and_gives_the_same_answer(
    lent_gpu, tiny_vit_dir, chelsea, empty_model_cache
):
    from core import classify
    from core.models import _cache

    loads, runs = [], []
    lent = classify(
        chelsea, model=str(tiny_vit_dir), on_load=lambda name: loads.append(name), on_run=lambda run: runs.append(run)
    )
    assert lent_gpu == ["classify"]
    assert loads == [str(tiny_vit_dir.resolve())] and len(_cache) == 1  # this process keeps the model
    assert runs[0].model == str(tiny_vit_dir.resolve()) and runs[0].device == "cpu" and runs[0].milliseconds >= 0
    gpu.stop_lending()
    assert classify(chelsea, model=str(tiny_vit_dir)) == lent


def test_a_lent_call_with_a_bad_model_fails_before_a_gpu_is_asked_for(lent_gpu, chelsea):
    from core import ModelLoadError, explain

    with pytest.raises(ModelLoadError, match="neither a model id on the Hub nor a model folder"):
        explain(chelsea, model="./no/such/folder")
    assert lent_gpu == []


def test_a_lent_caption_batch_loads_its_captioner_here(lent_gpu, tmp_path, photo_files, empty_model_cache):
    from tiny_captioners import save_tiny_vit_gpt2

    from core import caption_files
    from core.models import _cache

    tiny_vit_gpt2_dir = save_tiny_vit_gpt2(tmp_path)
    loads, runs = [], []
    rows = caption_files(
        list(photo_files.values()),
        model=str(tiny_vit_gpt2_dir),
        device="cpu",
        max_new_tokens=4,
        on_load=lambda name: loads.append(name),
        on_run=lambda run: runs.append(run),
    )
    assert lent_gpu == ["caption_files"] and all(row.ok for row in rows)
    assert loads == [str(tiny_vit_gpt2_dir.resolve())] and len(_cache) == 1 and runs[0].device == "cpu"
