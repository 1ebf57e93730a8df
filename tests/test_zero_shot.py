"""zero_shot() on a tiny random open_clip model registered from a JSON config and loaded from a checkpoint file."""
from __future__ import annotations

import json
import math

import pytest
import torch

TINY_CLIP = "vit-studio-tiny-clip"
LABELS = ["a cat", "a dog", "a rocket", "a cup of coffee"]


@pytest.fixture(scope="session")
def tiny_clip_checkpoint(tmp_path_factory) -> str:
    """Register a tiny ViT CLIP config with open_clip and save a random instance's weights to a .pt file."""
    import open_clip

    folder = tmp_path_factory.mktemp("tiny-clip")
    config = {
        "embed_dim": 32,
        # head_width 16 gives 2 heads; open_clip's default of 64 would give width // 64 = 0 heads.
        "vision_cfg": {"image_size": 32, "patch_size": 8, "width": 32, "layers": 2, "head_width": 16},
        "text_cfg": {"context_length": 77, "vocab_size": 49408, "width": 32, "heads": 2, "layers": 2},
    }
    (folder / f"{TINY_CLIP}.json").write_text(json.dumps(config))
    open_clip.add_model_config(folder / f"{TINY_CLIP}.json")
    torch.manual_seed(0)
    model = open_clip.create_model(TINY_CLIP, pretrained=None)
    path = folder / "tiny-clip.pt"
    torch.save(model.state_dict(), path)
    return str(path)


@pytest.fixture
def fresh_cache():
    import importlib

    # The package exports the zero_shot() function under the module's own name, so fetch the module itself.
    zs = importlib.import_module("core.zero_shot")
    zs.clear_cache()
    yield zs
    zs.clear_cache()


def run(images, labels, checkpoint, **kwargs):
    from core.zero_shot import zero_shot

    return zero_shot(images, labels, model=TINY_CLIP, pretrained=checkpoint, precision="fp32", device="cpu",
                     **kwargs)


def reference(image, labels, checkpoint, templates) -> dict[str, float]:
    """open_clip's README recipe, independent of the engine: its own loader, tokenizer and ensemble."""
    import open_clip
    from PIL import Image

    model, _, preprocess = open_clip.create_model_and_transforms(TINY_CLIP, pretrained=checkpoint)
    model.eval()
    tokenizer = open_clip.get_tokenizer(TINY_CLIP)
    with torch.no_grad():
        per_template = torch.stack([
            model.encode_text(tokenizer([template.format(label) for label in labels]), normalize=True)
            for template in templates
        ])
        text = per_template.mean(dim=0)
        text = text / text.norm(dim=-1, keepdim=True)
        image_features = model.encode_image(preprocess(Image.fromarray(image)).unsqueeze(0), normalize=True)
        probabilities = (model.logit_scale.exp() * image_features @ text.T).softmax(dim=-1)[0]
    return dict(zip(labels, probabilities.tolist()))


@pytest.mark.parametrize("templates, reference_templates", [
    (None, ["a photo of a {}."]),
    ("a blurry photo of {}.", ["a blurry photo of {}."]),
    (["a photo of a {}.", "a drawing of a {}.", "itap of {}"],
     ["a photo of a {}.", "a drawing of a {}.", "itap of {}"]),
])
def test_matches_open_clip_recipe(fresh_cache, tiny_clip_checkpoint, chelsea, templates, reference_templates):
    predictions = run(chelsea, LABELS, tiny_clip_checkpoint, templates=templates)
    expected = reference(chelsea, LABELS, tiny_clip_checkpoint, reference_templates)
    assert sorted(p.label for p in predictions) == sorted(LABELS)
    for prediction in predictions:
        assert prediction.score == pytest.approx(expected[prediction.label], abs=1e-5)


def test_named_template_set_matches_open_clip_ensemble(fresh_cache, tiny_clip_checkpoint, chelsea):
    from open_clip.zero_shot_metadata import SIMPLE_IMAGENET_TEMPLATES

    predictions = run(chelsea, LABELS, tiny_clip_checkpoint, templates="simple")
    expected = reference(chelsea, LABELS, tiny_clip_checkpoint, [t("{}") for t in SIMPLE_IMAGENET_TEMPLATES])
    for prediction in predictions:
        assert prediction.score == pytest.approx(expected[prediction.label], abs=1e-5)


def test_ensemble_differs_from_single_template(fresh_cache, tiny_clip_checkpoint, chelsea):
    # Guards the comparisons above: if templates were ignored, the two would agree and the tests prove little.
    single = {p.label: p.score for p in run(chelsea, LABELS, tiny_clip_checkpoint)}
    openai = {p.label: p.score for p in run(chelsea, LABELS, tiny_clip_checkpoint, templates="openai")}
    assert any(abs(single[label] - openai[label]) > 1e-4 for label in LABELS)


def test_scores_sum_to_one_best_first(fresh_cache, tiny_clip_checkpoint, chelsea):
    predictions = run(chelsea, LABELS, tiny_clip_checkpoint)
    scores = [p.score for p in predictions]
    assert math.isclose(sum(scores), 1.0, abs_tol=1e-5)
    assert scores == sorted(scores, reverse=True)
    assert all(0.0 <= score <= 1.0 for score in scores)


def test_list_in_list_out(fresh_cache, tiny_clip_checkpoint, photos):
    images = [photos["chelsea"], photos["coffee"], photos["camera"]]
    results = run(images, LABELS, tiny_clip_checkpoint)
    assert isinstance(results, list) and len(results) == 3
    assert all(len(result) == len(LABELS) for result in results)
    # Each image of the batch scores as it does alone (batching changes nothing).
    alone = run(photos["coffee"], LABELS, tiny_clip_checkpoint)
    for got, want in zip(results[1], alone):
        assert got.label == want.label and got.score == pytest.approx(want.score, abs=1e-5)


def test_bf16_close_to_fp32(fresh_cache, tiny_clip_checkpoint, chelsea):
    from core.zero_shot import zero_shot

    fp32 = {p.label: p.score for p in run(chelsea, LABELS, tiny_clip_checkpoint)}
    bf16 = zero_shot(chelsea, LABELS, model=TINY_CLIP, pretrained=tiny_clip_checkpoint, precision="bf16",
                     device="cpu")
    assert math.isclose(sum(p.score for p in bf16), 1.0, abs_tol=1e-5)
    for prediction in bf16:
        assert prediction.score == pytest.approx(fp32[prediction.label], abs=0.05)


@pytest.mark.parametrize("text", [
    "a cat, a dog,a rocket ,, a cup of coffee",
    "a cat\na dog\n\n  a rocket\r\na cup of coffee\n",
])
def test_labels_from_text(fresh_cache, tiny_clip_checkpoint, chelsea, text):
    from core.zero_shot import parse_labels

    assert parse_labels(text) == LABELS
    from_text = run(chelsea, text, tiny_clip_checkpoint)
    from_list = run(chelsea, LABELS, tiny_clip_checkpoint)
    assert [(p.label, p.score) for p in from_text] == [(p.label, p.score) for p in from_list]


def test_text_embeddings_cached(fresh_cache, tiny_clip_checkpoint, photos, monkeypatch):
    zs = fresh_cache
    calls = []
    original = zs.encode_texts
    monkeypatch.setattr(zs, "encode_texts", lambda *args: calls.append(args[1]) or original(*args))

    run(photos["chelsea"], LABELS, tiny_clip_checkpoint)
    assert zs.text_cache_info()[:2] == (0, 1) and len(calls) == 1
    run(photos["coffee"], LABELS, tiny_clip_checkpoint)  # same labels: only the image is encoded
    assert zs.text_cache_info()[:2] == (1, 1) and len(calls) == 1
    run(photos["coffee"], LABELS[:3], tiny_clip_checkpoint)  # other labels: a miss
    assert zs.text_cache_info()[:2] == (1, 2) and len(calls) == 2
    run(photos["coffee"], LABELS, tiny_clip_checkpoint, templates="a sketch of {}")  # other templates: a miss
    assert zs.text_cache_info()[:2] == (1, 3) and len(calls) == 3


def test_model_loaded_once(fresh_cache, tiny_clip_checkpoint, chelsea, monkeypatch, caplog):
    zs = fresh_cache
    loads = []
    original = zs._create
    monkeypatch.setattr(zs, "_create", lambda *args: loads.append(args[0]) or original(*args))
    with caplog.at_level("INFO", logger="vit_studio"):
        run(chelsea, LABELS, tiny_clip_checkpoint)
        run(chelsea, ["x", "y"], tiny_clip_checkpoint)
    assert loads == [TINY_CLIP]
    assert any(TINY_CLIP in record.getMessage() for record in caplog.records)


def test_template_scores(fresh_cache, tiny_clip_checkpoint, chelsea):
    from core.zero_shot import template_scores

    templates = ["a photo of a {}.", "a drawing of a {}."]
    scores = template_scores(chelsea, LABELS, model=TINY_CLIP, pretrained=tiny_clip_checkpoint,
                             templates=templates, precision="fp32", device="cpu")
    assert list(scores) == templates
    for template, predictions in scores.items():
        expected = reference(chelsea, LABELS, tiny_clip_checkpoint, [template])
        for prediction in predictions:
            assert prediction.score == pytest.approx(expected[prediction.label], abs=1e-5)


@pytest.mark.parametrize("labels, templates, message", [
    ([], None, "No labels given"),
    (" , \n ", None, "No labels given"),
    (["only one"], None, "zero-shot needs at least two labels to choose between"),
    ("cat, dog, cat, bird, dog", None, "Duplicate labels: 'cat', 'dog'"),
    ([f"label {i}" for i in range(1001)], None, "at most 1000"),
    (LABELS, "a photo of a cat", "has no '{}'"),
    (LABELS, ["a photo of a {}.", "no slot here"], "'no slot here' has no '{}'"),
    (LABELS, [], "No templates given"),
])
def test_bad_inputs(fresh_cache, tiny_clip_checkpoint, chelsea, labels, templates, message):
    with pytest.raises(ValueError, match=message.replace("{}", r"\{\}").replace("(", r"\(")):
        run(chelsea, labels, tiny_clip_checkpoint, templates=templates)


def test_unknown_model(fresh_cache, chelsea):
    from core.zero_shot import zero_shot

    with pytest.raises(ValueError, match=r"Unknown open_clip model 'ViT-Q-99'.*ViT-B-32"):
        zero_shot(chelsea, LABELS, model="ViT-Q-99")


def test_unknown_tag_or_missing_file(fresh_cache, chelsea, tmp_path):
    from core.zero_shot import zero_shot

    with pytest.raises(ValueError, match="neither a pretrained tag of ViT-B-32.*laion2b_s34b_b79k"):
        zero_shot(chelsea, LABELS, model="ViT-B-32", pretrained=str(tmp_path / "missing.pt"))


def test_tag_not_fetchable_offline(fresh_cache, chelsea, tmp_path, monkeypatch):
    """The default tag's weights live on the HF Hub; offline, with an empty cache, the error says so."""
    import huggingface_hub.constants as hub_constants

    from core.models import ModelLoadError
    from core.zero_shot import zero_shot

    # An empty cache, so weights someone downloaded on this machine cannot make the load succeed; offline
    # mode (set in conftest), so the attempt never reaches the network.
    assert hub_constants.HF_HUB_OFFLINE
    monkeypatch.setattr(hub_constants, "HF_HUB_CACHE", str(tmp_path))
    with pytest.raises(ModelLoadError, match="Could not fetch the 'laion2b_s34b_b79k' weights for ViT-B-32.*"
                                             "local checkpoint file") as raised:
        zero_shot(chelsea, LABELS, model="ViT-B-32", pretrained="laion2b_s34b_b79k", device="cpu")
    assert isinstance(raised.value, ValueError)
    assert raised.value.args[0].count(". ") == 0  # one sentence
