"""zero_shot() and zero_shot_map() on tiny random CLIPs: an open_clip model registered from a JSON config and loaded
from a checkpoint file, the same kind of model in a 'local-dir:' folder, and a transformers CLIPModel folder; each
checked against its library's own recipe or an independent implementation written here."""

from __future__ import annotations

import json
import math

import numpy as np
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

    return zero_shot(images, labels, model=TINY_CLIP, pretrained=checkpoint, precision="fp32", device="cpu", **kwargs)


def reference(image, labels, checkpoint, templates) -> dict[str, float]:
    """open_clip's README recipe, independent of the engine: its own loader, tokenizer and ensemble."""
    import open_clip
    from PIL import Image

    model, _, preprocess = open_clip.create_model_and_transforms(TINY_CLIP, pretrained=checkpoint)
    model.eval()
    tokenizer = open_clip.get_tokenizer(TINY_CLIP)
    with torch.no_grad():
        per_template = torch.stack(
            [
                model.encode_text(tokenizer([template.format(label) for label in labels]), normalize=True)
                for template in templates
            ]
        )
        text = per_template.mean(dim=0)
        text = text / text.norm(dim=-1, keepdim=True)
        image_features = model.encode_image(preprocess(Image.fromarray(image)).unsqueeze(0), normalize=True)
        probabilities = (model.logit_scale.exp() * image_features @ text.T).softmax(dim=-1)[0]
    return dict(zip(labels, probabilities.tolist()))


@pytest.mark.parametrize(
    "templates, reference_templates",
    [
        (None, ["a photo of a {}."]),
        ("a blurry photo of {}.", ["a blurry photo of {}."]),
        (
            ["a photo of a {}.", "a drawing of a {}.", "itap of {}"],
            ["a photo of a {}.", "a drawing of a {}.", "itap of {}"],
        ),
    ],
)
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
    bf16 = zero_shot(chelsea, LABELS, model=TINY_CLIP, pretrained=tiny_clip_checkpoint, precision="bf16", device="cpu")
    assert math.isclose(sum(p.score for p in bf16), 1.0, abs_tol=1e-5)
    for prediction in bf16:
        assert prediction.score == pytest.approx(fp32[prediction.label], abs=0.05)


def test_text_tower_without_the_padding_gives_the_padded_embeddings(fresh_cache, tiny_clip_checkpoint):
    """The fast text path (prompts cut after the longest one's end) against open_clip's own encode_text on the
    77-token padded prompts: prompts of different lengths, and one long enough to be truncated."""
    zs = fresh_cache
    loaded = zs.load_clip(TINY_CLIP, tiny_clip_checkpoint, device="cpu", precision="fp32")
    assert loaded.encode_text.func is zs._encode_unpadded_text
    # "!" followed by another sign is token 0, the padding's own id, inside the prompt.
    prompts = ["a cat", "a photo of a cup of coffee on a table.", "x", "a photo of a !$ sign", " ".join(["word"] * 120)]
    assert zs.prompt_length(loaded.tokenizer(prompts[3:4])) == 9
    for batch in (prompts[:4], prompts):  # cut at 12 tokens, then not cut at all
        tokens = loaded.tokenizer(batch)
        with torch.no_grad():
            fast = loaded.encode_text(tokens)
            padded = loaded.model.encode_text(tokens)
        assert fast.shape == padded.shape
        torch.testing.assert_close(fast, padded, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("text_change", [{"no_causal_mask": True}, {"pool_type": "last"}])
def test_padding_stays_where_it_matters(fresh_cache, tmp_path, text_change):
    """A text tower that looks at later tokens, or pools the last position, keeps open_clip's own padded path."""
    import open_clip

    name = "vit-studio-tiny-clip-" + "-".join(text_change)
    config = {
        "embed_dim": 32,
        "vision_cfg": {"image_size": 32, "patch_size": 8, "width": 32, "layers": 1, "head_width": 16},
        "text_cfg": {"context_length": 77, "vocab_size": 49408, "width": 32, "heads": 2, "layers": 1, **text_change},
    }
    (tmp_path / f"{name}.json").write_text(json.dumps(config))
    open_clip.add_model_config(tmp_path / f"{name}.json")
    loaded = fresh_cache.load_clip(name, None, device="cpu", precision="fp32")
    assert loaded.encode_text == loaded.model.encode_text


@pytest.mark.parametrize(
    "text",
    [
        "a cat, a dog,a rocket ,, a cup of coffee",
        "a cat\na dog\n\n  a rocket\r\na cup of coffee\n",
    ],
)
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
    scores = template_scores(
        chelsea,
        LABELS,
        model=TINY_CLIP,
        pretrained=tiny_clip_checkpoint,
        templates=templates,
        precision="fp32",
        device="cpu",
    )
    assert list(scores) == templates
    for template, predictions in scores.items():
        expected = reference(chelsea, LABELS, tiny_clip_checkpoint, [template])
        for prediction in predictions:
            assert prediction.score == pytest.approx(expected[prediction.label], abs=1e-5)


@pytest.mark.parametrize(
    "labels, templates, message",
    [
        ([], None, "No labels given"),
        (" , \n ", None, "No labels given"),
        (["only one"], None, "zero-shot needs at least two labels to choose between"),
        ("cat, dog, cat, bird, dog", None, "Duplicate labels: 'cat', 'dog'"),
        ([f"label {i}" for i in range(1001)], None, "at most 1000"),
        (LABELS, "a photo of a cat", "has no '{}'"),
        (LABELS, ["a photo of a {}.", "no slot here"], "'no slot here' has no '{}'"),
        (LABELS, [], "No templates given"),
    ],
)
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
    with pytest.raises(
        ModelLoadError, match="Could not fetch the 'laion2b_s34b_b79k' weights for ViT-B-32.*local checkpoint file"
    ) as raised:
        zero_shot(chelsea, LABELS, model="ViT-B-32", pretrained="laion2b_s34b_b79k", device="cpu")
    assert isinstance(raised.value, ValueError)
    assert raised.value.args[0].count(". ") == 0  # one sentence


# ---- the transformers backend -----------------------------------------------------------------------------


def hf_reference(folder, image, labels, templates) -> dict[str, float]:
    """transformers' own recipe: processor -> get_*_features -> normalise -> ensemble -> logit_scale.exp() * cos
    -> softmax."""
    from PIL import Image
    from transformers import CLIPModel, CLIPProcessor

    model = CLIPModel.from_pretrained(folder).eval()
    processor = CLIPProcessor.from_pretrained(folder)
    with torch.no_grad():
        per_template = []
        for template in templates:
            tokens = processor(text=[template.format(label) for label in labels], padding=True, return_tensors="pt")
            text = model.get_text_features(**tokens).pooler_output
            per_template.append(text / text.norm(dim=-1, keepdim=True))
        text = torch.stack(per_template).mean(dim=0)
        text = text / text.norm(dim=-1, keepdim=True)
        pixels = processor(images=Image.fromarray(image), return_tensors="pt")["pixel_values"]
        image_features = model.get_image_features(pixel_values=pixels).pooler_output
        image_features = image_features / image_features.norm(dim=-1, keepdim=True)
        probabilities = (model.logit_scale.exp() * image_features @ text.T).softmax(dim=-1)[0]
    return dict(zip(labels, probabilities.tolist()))


@pytest.mark.parametrize("templates", [["a photo of a {}."], ["a photo of a {}.", "a drawing of a {}.", "itap of {}"]])
def test_hf_clip_matches_transformers_recipe(fresh_cache, tiny_hf_clip_dir, chelsea, templates):
    from core.zero_shot import zero_shot

    predictions = zero_shot(
        chelsea, LABELS, model=str(tiny_hf_clip_dir), templates=templates, precision="fp32", device="cpu"
    )
    expected = hf_reference(tiny_hf_clip_dir, chelsea, LABELS, templates)
    assert sorted(p.label for p in predictions) == sorted(LABELS)
    for prediction in predictions:
        assert prediction.score == pytest.approx(expected[prediction.label], abs=1e-5)


def test_hf_clip_matches_pipeline(fresh_cache, tiny_hf_clip_dir, chelsea):
    from PIL import Image
    from transformers import pipeline

    from core.zero_shot import zero_shot

    classifier = pipeline("zero-shot-image-classification", model=str(tiny_hf_clip_dir), device="cpu")
    expected = classifier(Image.fromarray(chelsea), candidate_labels=LABELS, hypothesis_template="a photo of a {}.")
    predictions = zero_shot(chelsea, LABELS, model=str(tiny_hf_clip_dir), precision="fp32", device="cpu")
    assert [p.label for p in predictions] == [row["label"] for row in expected]
    for prediction, row in zip(predictions, expected):
        assert prediction.score == pytest.approx(row["score"], abs=1e-5)


def test_hf_clip_ignores_pretrained_and_shares_the_text_cache(fresh_cache, tiny_hf_clip_dir, photos):
    from core.zero_shot import zero_shot

    zs = fresh_cache
    folder = str(tiny_hf_clip_dir)
    # The default open_clip tag must not be taken for a checkpoint of a transformers model.
    default = zero_shot(photos["chelsea"], LABELS, model=folder, precision="fp32", device="cpu")
    none = zero_shot(photos["chelsea"], LABELS, model=folder, pretrained=None, precision="fp32", device="cpu")
    assert [(p.label, p.score) for p in default] == [(p.label, p.score) for p in none]
    assert zs.text_cache_info()[:2] == (1, 1)
    # The label map's eager-attention copy of the model reuses the same text embeddings.
    zs.zero_shot_map(photos["coffee"], LABELS[0], LABELS, model=folder, precision="fp32", device="cpu")
    assert zs.text_cache_info()[:2] == (2, 1)


def test_not_a_clip_model(fresh_cache, tiny_vit_dir, chelsea):
    from core.zero_shot import zero_shot

    with pytest.raises(ValueError, match=r"is not a CLIP model \(it is a ViTForImageClassification\)"):
        zero_shot(chelsea, LABELS, model=str(tiny_vit_dir), device="cpu")


def test_hub_clip_not_fetchable_offline(fresh_cache, chelsea, tmp_path, monkeypatch):
    import huggingface_hub.constants as hub_constants

    from core.models import ModelLoadError
    from core.zero_shot import zero_shot

    assert hub_constants.HF_HUB_OFFLINE
    monkeypatch.setattr(hub_constants, "HF_HUB_CACHE", str(tmp_path))  # so a copy on this machine cannot load
    with pytest.raises(
        ModelLoadError, match="Could not fetch CLIP model 'openai/clip-vit-base-patch32' from the Hugging Face Hub"
    ) as raised:
        zero_shot(chelsea, LABELS, model="openai/clip-vit-base-patch32", device="cpu")
    assert isinstance(raised.value, ValueError)
    assert raised.value.args[0].count(". ") == 0  # one sentence


# ---- which backend, open_clip local folders, and the UI's helpers -------------------------------------------


def test_backend_from_the_name(tiny_hf_clip_dir, tiny_open_clip_dir, tmp_path):
    from core.zero_shot import resolve_model

    assert resolve_model("ViT-B-32") == ("open_clip", "ViT-B-32")
    assert resolve_model("ViT-B/32")[0] == "open_clip"
    assert resolve_model("hf-hub:timm/ViT-B-16-SigLIP") == ("open_clip", "hf-hub:timm/ViT-B-16-SigLIP")
    assert resolve_model(f"local-dir:{tiny_open_clip_dir}") == ("open_clip", f"local-dir:{tiny_open_clip_dir}")
    # A bare open_clip folder is taken as 'local-dir:', which is what its owner meant.
    assert resolve_model(str(tiny_open_clip_dir)) == ("open_clip", f"local-dir:{tiny_open_clip_dir}")
    assert resolve_model("openai/clip-vit-base-patch32") == ("transformers", "openai/clip-vit-base-patch32")
    assert resolve_model(str(tiny_hf_clip_dir)) == ("transformers", str(tiny_hf_clip_dir))
    assert resolve_model("ViT-B-32")[0] == "open_clip"
    with pytest.raises(ValueError, match="is neither a model id on the Hub nor a model folder.*config.json"):
        resolve_model(str(tmp_path))
    with pytest.raises(
        ValueError, match="'local-dir:/nowhere/clip' is neither a model id on the Hub nor a model folder"
    ):
        resolve_model("local-dir:/nowhere/clip")
    with pytest.raises(ValueError, match="has no open_clip_config.json"):
        resolve_model(f"local-dir:{tiny_hf_clip_dir}")
    with pytest.raises(ValueError, match="'/nowhere/clip' is neither a model id on the Hub nor a model folder"):
        resolve_model("/nowhere/clip")


def test_pretrained_tags_and_choices(tiny_hf_clip_dir, tiny_open_clip_dir):
    import open_clip

    from core.zero_shot import pretrained_tags, resolve_model, takes_pretrained
    from ui.shared.widgets import ZERO_SHOT_CHOICES

    assert takes_pretrained("ViT-B-32") and takes_pretrained("ViT-B/32")
    assert not any(
        takes_pretrained(name)
        for name in (
            "openai/clip-vit-base-patch32",
            str(tiny_hf_clip_dir),
            str(tiny_open_clip_dir),
            f"local-dir:{tiny_open_clip_dir}",
            "hf-hub:timm/ViT-B-16-SigLIP",
            "ViT-Q-99",
            "",
        )
    )

    assert "laion2b_s34b_b79k" in pretrained_tags("ViT-B-32") and "openai" in pretrained_tags("ViT-B-32")
    assert pretrained_tags("openai/clip-vit-base-patch32") == [] and pretrained_tags(str(tiny_hf_clip_dir)) == []
    assert pretrained_tags("hf-hub:timm/ViT-B-16-SigLIP") == [] and pretrained_tags("ViT-Q-99") == []
    for model, tag in ZERO_SHOT_CHOICES:
        if tag is None:
            assert resolve_model(model)[0] == "transformers"
        else:
            assert (model, tag) in open_clip.list_pretrained() and resolve_model(model)[0] == "open_clip"


def test_local_dir_matches_open_clip_recipe(fresh_cache, tiny_open_clip_dir, chelsea):
    """The fixture folder loads without add_model_config (as an app subprocess would) and scores as
    open_clip's own local-dir loader does; pretrained is ignored for it."""
    import open_clip
    from PIL import Image

    from core.zero_shot import zero_shot

    name = f"local-dir:{tiny_open_clip_dir}"
    model, _, preprocess = open_clip.create_model_and_transforms(name)
    tokenizer = open_clip.get_tokenizer(name)
    with torch.no_grad():
        text = model.encode_text(tokenizer([f"a photo of a {label}." for label in LABELS]), normalize=True)
        image = model.encode_image(preprocess(Image.fromarray(chelsea)).unsqueeze(0), normalize=True)
        expected = dict(zip(LABELS, (model.logit_scale.exp() * image @ text.T).softmax(dim=-1)[0].tolist()))
    for model_name in (name, str(tiny_open_clip_dir)):
        predictions = zero_shot(chelsea, LABELS, model=model_name, precision="fp32", device="cpu")
        for prediction in predictions:
            assert prediction.score == pytest.approx(expected[prediction.label], abs=1e-5)


# ---- label maps -------------------------------------------------------------------------------------------


def open_clip_manual_map(folder, image, labels, target, templates, first_block=0):
    """Chefer et al.'s CLIP relevance with open_clip's weights but none of the engine's code and no hooks: the
    image tower's forward written out, attention probabilities computed here, the recursion done in torch."""
    import open_clip
    import torch.nn.functional as F
    from PIL import Image

    name = f"local-dir:{folder}"
    model, _, preprocess = open_clip.create_model_and_transforms(name)
    tokenizer = open_clip.get_tokenizer(name)
    with torch.no_grad():
        text = torch.stack(
            [
                F.normalize(model.encode_text(tokenizer([t.format(label) for label in labels])), dim=-1)
                for t in templates
            ]
        ).mean(dim=0)
        text = F.normalize(text, dim=-1)
    visual = model.visual
    pixels = preprocess(Image.fromarray(image)).unsqueeze(0)
    x = visual.conv1(pixels).flatten(2).transpose(1, 2)
    x = torch.cat([visual.class_embedding.expand(1, 1, -1), x], dim=1) + visual.positional_embedding
    x = visual.ln_pre(x)
    probabilities = []
    for block in visual.transformer.resblocks:
        heads = block.attn.num_heads
        q, k, v = F.linear(block.ln_1(x), block.attn.in_proj_weight, block.attn.in_proj_bias).chunk(3, dim=-1)
        q, k, v = (t.reshape(1, t.shape[1], heads, -1).transpose(1, 2) for t in (q, k, v))
        attention = (q @ k.transpose(-1, -2) / q.shape[-1] ** 0.5).softmax(dim=-1)
        probabilities.append(attention)
        x = x + block.attn.out_proj((attention @ v).transpose(1, 2).reshape(1, x.shape[1], -1))
        x = x + block.mlp(block.ln_2(x))
    features = visual.ln_post(x[:, 0]) @ visual.proj
    with torch.no_grad():  # the forward written out must be open_clip's forward, or the comparison proves nothing
        assert torch.allclose(features, model.encode_image(pixels), atol=1e-5)
    logits = model.logit_scale.exp() * F.normalize(features, dim=-1) @ text.T
    gradients = torch.autograd.grad(logits[0, labels.index(target)], probabilities)
    relevance = torch.eye(x.shape[1])
    for attention, gradient in list(zip(probabilities, gradients))[first_block:]:
        relevance = relevance + (gradient * attention).clamp(min=0)[0].mean(dim=0) @ relevance
    heatmap = relevance[0, 1:].reshape(visual.grid_size)
    return (heatmap / heatmap.max()).detach().numpy(), logits.softmax(dim=-1)[0].detach()


def hf_manual_map(folder, image, labels, target, templates):
    """The same relevance through transformers' own calls (eager attention, output_attentions) and torch."""
    import torch.nn.functional as F
    from PIL import Image
    from transformers import CLIPModel, CLIPProcessor

    model = CLIPModel.from_pretrained(folder, attn_implementation="eager").eval()
    processor = CLIPProcessor.from_pretrained(folder)
    with torch.no_grad():
        text = torch.stack(
            [
                F.normalize(
                    model.get_text_features(
                        **processor(text=[t.format(label) for label in labels], padding=True, return_tensors="pt")
                    ).pooler_output,
                    dim=-1,
                )
                for t in templates
            ]
        ).mean(dim=0)
        text = F.normalize(text, dim=-1)
    pixels = processor(images=Image.fromarray(image), return_tensors="pt")["pixel_values"]
    outputs = model.vision_model(pixel_values=pixels, output_attentions=True)
    features = model.visual_projection(outputs.pooler_output)
    logits = model.logit_scale.exp() * F.normalize(features, dim=-1) @ text.T
    gradients = torch.autograd.grad(logits[0, labels.index(target)], outputs.attentions)
    relevance = torch.eye(outputs.attentions[0].shape[-1])
    for attention, gradient in zip(outputs.attentions, gradients):
        relevance = relevance + (gradient * attention).clamp(min=0)[0].mean(dim=0) @ relevance
    heatmap = relevance[0, 1:].reshape(4, 4)
    return (heatmap / heatmap.max()).detach().numpy(), logits.softmax(dim=-1)[0].detach()


@pytest.fixture(params=["open_clip", "transformers"])
def clip_backend(request, tiny_open_clip_dir, tiny_hf_clip_dir):
    """(engine model name, the matching independent map) for each backend."""
    if request.param == "open_clip":
        return f"local-dir:{tiny_open_clip_dir}", partial_map(open_clip_manual_map, tiny_open_clip_dir)
    return str(tiny_hf_clip_dir), partial_map(hf_manual_map, tiny_hf_clip_dir)


def partial_map(manual, folder):
    return lambda *args, **kwargs: manual(folder, *args, **kwargs)


@pytest.mark.parametrize("templates", [["a photo of a {}."], ["a photo of a {}.", "a drawing of a {}."]])
def test_map_matches_independent_implementation(fresh_cache, clip_backend, chelsea, templates):
    from core.zero_shot import zero_shot, zero_shot_map

    model, manual = clip_backend
    for target in ("a cat", "a rocket"):
        label_map = zero_shot_map(
            chelsea, target, LABELS, model=model, templates=templates, precision="fp32", device="cpu"
        )
        expected, expected_probabilities = manual(chelsea, LABELS, target, templates)
        assert label_map.label == target and label_map.grid_size == (4, 4) and label_map.heatmap.shape == (4, 4)
        assert label_map.heatmap.max() == pytest.approx(1.0) and label_map.heatmap.min() >= 0
        np.testing.assert_allclose(label_map.heatmap, expected, atol=1e-5)
        # The predictions are every label ranked, with zero_shot's numbers.
        scores = {p.label: p.score for p in label_map.predictions}
        assert [p.label for p in label_map.predictions] == [
            p.label
            for p in zero_shot(chelsea, LABELS, model=model, templates=templates, precision="fp32", device="cpu")
        ]
        for index, label in enumerate(LABELS):
            assert scores[label] == pytest.approx(float(expected_probabilities[index]), abs=1e-5)
        assert label_map.overlay.size == (chelsea.shape[1], chelsea.shape[0])


def test_labels_get_their_own_maps(fresh_cache, clip_backend, chelsea):
    from core.zero_shot import zero_shot_map

    model, _ = clip_backend
    maps = [
        zero_shot_map(chelsea, label, LABELS, model=model, precision="fp32", device="cpu").heatmap for label in LABELS
    ]
    assert all(np.abs(a - b).max() > 1e-3 for index, a in enumerate(maps) for b in maps[index + 1 :])


def test_map_from_a_later_block(fresh_cache, tiny_open_clip_dir, chelsea):
    """from_layer=2 is the notebook's start_layer: the recursion starts at that block."""
    from core.zero_shot import zero_shot_map

    model = f"local-dir:{tiny_open_clip_dir}"
    label_map = zero_shot_map(chelsea, "a cat", LABELS, model=model, precision="fp32", device="cpu", from_layer=2)
    expected, _ = open_clip_manual_map(
        tiny_open_clip_dir, chelsea, LABELS, "a cat", ["a photo of a {}."], first_block=1
    )
    np.testing.assert_allclose(label_map.heatmap, expected, atol=1e-5)
    with pytest.raises(ValueError, match="from_layer 3 is out of range: this image tower has blocks 1 to 2"):
        zero_shot_map(chelsea, "a cat", LABELS, model=model, precision="fp32", device="cpu", from_layer=3)


def test_map_leaves_no_hooks_behind(fresh_cache, tiny_open_clip_dir, chelsea):
    """The model is shared through the cache: after a map, plain zero-shot calls run it untouched."""
    from core.zero_shot import load_clip, zero_shot_map

    model = f"local-dir:{tiny_open_clip_dir}"
    zero_shot_map(chelsea, "a cat", LABELS, model=model, precision="fp32", device="cpu")
    loaded = load_clip(model, precision="fp32", device="cpu")
    for block in loaded.model.visual.transformer.resblocks:
        assert not block.attn._forward_hooks and not block.attn._forward_pre_hooks


def test_map_bf16_close_to_fp32(fresh_cache, tiny_open_clip_dir, chelsea):
    from core.zero_shot import zero_shot_map

    model = f"local-dir:{tiny_open_clip_dir}"
    fp32 = zero_shot_map(chelsea, "a cat", LABELS, model=model, precision="fp32", device="cpu").heatmap
    bf16 = zero_shot_map(chelsea, "a cat", LABELS, model=model, precision="bf16", device="cpu").heatmap
    assert np.corrcoef(fp32.ravel(), bf16.ravel())[0, 1] > 0.99


@pytest.mark.parametrize(
    "label, message",
    [
        ("a horse", r"'a horse' is not one of the labels \('a cat', 'a dog', 'a rocket', 'a cup of coffee'\)"),
        ("  ", "No label chosen to map"),
    ],
)
def test_map_needs_one_of_the_labels(fresh_cache, tiny_open_clip_dir, chelsea, label, message):
    from core.zero_shot import zero_shot_map

    with pytest.raises(ValueError, match=message):
        zero_shot_map(chelsea, label, LABELS, model=f"local-dir:{tiny_open_clip_dir}", device="cpu")


def test_map_of_a_convolutional_clip(fresh_cache, tmp_path, chelsea):
    from tiny_clips import TINY_RESNET_CLIP_CFG, save_tiny_open_clip

    from core.attention import NoAttentionError
    from core.zero_shot import zero_shot, zero_shot_map

    folder = save_tiny_open_clip(tmp_path / "tiny-rn-clip", TINY_RESNET_CLIP_CFG)
    model = f"local-dir:{folder}"
    assert len(zero_shot(chelsea, LABELS, model=model, precision="fp32", device="cpu")) == len(LABELS)
    with pytest.raises(NoAttentionError, match=r"has a convolutional image tower \(ModifiedResNet\).*ViT-B-32"):
        zero_shot_map(chelsea, "a cat", LABELS, model=model, precision="fp32", device="cpu")


def test_map_while_another_thread_scores(fresh_cache, tiny_open_clip_dir, photos):
    """Gradio runs handlers in threads on one cached model: zero_shot() calls in another thread during a map
    must neither reach its hooks nor be changed by them."""
    import threading

    from core.zero_shot import zero_shot, zero_shot_map

    model = f"local-dir:{tiny_open_clip_dir}"
    alone = zero_shot_map(photos["chelsea"], "a cat", LABELS, model=model, precision="fp32", device="cpu").heatmap
    expected = [
        (p.label, p.score) for p in zero_shot(photos["coffee"], LABELS, model=model, precision="fp32", device="cpu")
    ]
    stop, other_results, other_errors = threading.Event(), [], []

    def score_until_stopped():
        try:
            while not stop.is_set():
                predictions = zero_shot(photos["coffee"], LABELS, model=model, precision="fp32", device="cpu")
                other_results.append([(p.label, p.score) for p in predictions])
        except Exception as error:  # noqa: BLE001 - reported by the assertion below, not lost in the thread
            other_errors.append(error)

    worker = threading.Thread(target=score_until_stopped)
    worker.start()
    try:
        maps = [
            zero_shot_map(photos["chelsea"], "a cat", LABELS, model=model, precision="fp32", device="cpu").heatmap
            for _ in range(20)
        ]
    finally:
        stop.set()
        worker.join()
    assert not other_errors and other_results and all(result == expected for result in other_results)
    for heatmap in maps:
        np.testing.assert_allclose(heatmap, alone, atol=1e-6)


def test_zero_shot_and_its_map_report_what_they_ran_on(fresh_cache, tiny_open_clip_dir, tiny_hf_clip_dir, chelsea):
    from core.zero_shot import template_scores, zero_shot, zero_shot_map

    model = f"local-dir:{tiny_open_clip_dir}"
    loads, runs = [], []
    zero_shot(chelsea, LABELS, model=model, precision="fp32", device="cpu", on_load=loads.append, on_run=runs.append)
    template_scores(
        chelsea, LABELS, model=model, precision="fp32", device="cpu", on_load=loads.append, on_run=runs.append
    )
    label_map = zero_shot_map(
        chelsea, "a cat", LABELS, model=model, precision="fp32", device="cpu", on_load=loads.append
    )
    assert loads == [f"local-dir:{tiny_open_clip_dir.resolve()}"]  # one open_clip model serves all three
    assert [run.model for run in runs] == loads * 2 and label_map.run.model == label_map.model == loads[0]
    assert all(
        (run.device, run.dtype) == ("cpu", "float32") and run.milliseconds >= 0 for run in [*runs, label_map.run]
    )

    # transformers CLIP: maps need eager attention, another cache entry, so a second announced load
    zero_shot(
        chelsea,
        LABELS,
        model=str(tiny_hf_clip_dir),
        precision="bf16",
        device="cpu",
        on_load=loads.append,
        on_run=runs.append,
    )
    hf_map = zero_shot_map(
        chelsea, "a cat", LABELS, model=str(tiny_hf_clip_dir), precision="bf16", device="cpu", on_load=loads.append
    )
    assert loads[1:] == [str(tiny_hf_clip_dir.resolve())] * 2
    assert runs[-1].dtype == hf_map.run.dtype == "bfloat16"
