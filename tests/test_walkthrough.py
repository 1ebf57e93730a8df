"""The step-by-step walk-through: every number it shows is the model's own, checked against the model's modules."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from core import Walkthrough, classify, walkthrough
from core.classify import preprocess
from core.models import load_explainable
from ui.shared.walkthrough import STEP_TITLES, step_pictures, step_sentences

FP32 = dict(precision="fp32")


@pytest.fixture(scope="module")
def vit_walk(tiny_vit_dir, chelsea) -> Walkthrough:
    return walkthrough(chelsea, str(tiny_vit_dir), layer=1, head=2, **FP32)


@pytest.fixture(scope="module")
def deit_walk(tiny_deit_dir, chelsea) -> Walkthrough:
    return walkthrough(chelsea, str(tiny_deit_dir), **FP32)


def _model_and_pixels(folder: Path, image):
    from PIL import Image

    loaded = load_explainable(str(folder), precision="fp32")
    return loaded, preprocess(loaded, [Image.fromarray(image)])


def test_the_patches_are_the_model_input_cut_into_its_grid(vit_walk):
    patches = vit_walk.patches
    assert patches.model_input.size == (32, 32)
    assert patches.grid_size == (4, 4) and patches.patch_size == (8, 8)
    assert patches.num_patches == 16 and patches.values_per_patch == 8 * 8 * 3
    assert vit_walk.num_tokens == 17 and vit_walk.num_prefix_tokens == 1


def test_the_embedding_is_the_models_own_patch_projection(vit_walk, tiny_vit_dir, chelsea):
    loaded, pixels = _model_and_pixels(tiny_vit_dir, chelsea)
    with torch.inference_mode():
        expected = loaded.model.vit.embeddings.patch_embeddings(pixels)[0].numpy()
    assert vit_walk.embedding.patch_embeddings.shape == (16, 32)
    np.testing.assert_allclose(vit_walk.embedding.patch_embeddings, expected, rtol=1e-6, atol=1e-6)
    # The tokens entering layer 1 are the CLS token, then each patch's embedding, plus its position embedding.
    positions = vit_walk.position.position_embeddings
    cls_token = loaded.model.vit.embeddings.cls_token[0, 0].detach().numpy()
    np.testing.assert_allclose(vit_walk.layer.tokens_in[1:], expected + positions[1:], rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(vit_walk.layer.tokens_in[0], cls_token + positions[0], rtol=1e-5, atol=1e-5)


def test_position_similarity_is_the_cosine_of_the_models_position_embeddings(vit_walk, tiny_vit_dir, chelsea):
    loaded, _ = _model_and_pixels(tiny_vit_dir, chelsea)
    table = loaded.model.vit.embeddings.position_embeddings[0, 1:].detach().double().numpy()
    unit = table / np.linalg.norm(table, axis=1, keepdims=True)
    similarity = vit_walk.position.similarity
    assert similarity.shape == (4, 4, 4, 4)
    flat = similarity.reshape(16, 16)
    np.testing.assert_allclose(np.diag(flat), 1.0, atol=1e-5)
    np.testing.assert_allclose(flat, flat.T, atol=1e-6)
    np.testing.assert_allclose(flat, unit @ unit.T, atol=1e-5)
    assert flat.min() >= -1 and flat.max() <= 1 + 1e-6
    # Row 1, column 2 against row 3, column 0: the (1*4+2, 3*4+0) entry of the flat table.
    assert similarity[1, 2, 3, 0] == pytest.approx(flat[6, 12])


def test_the_layer_is_attention_plus_mlp_on_the_residual_stream(vit_walk):
    layer = vit_walk.layer
    assert (layer.layer, layer.head) == (1, 2)
    assert layer.attention.shape == (2, 17, 17)
    np.testing.assert_allclose(layer.attention.sum(axis=-1), 1.0, atol=1e-5)
    np.testing.assert_array_equal(layer.cls_attention, layer.attention[1, 0, 1:].reshape(4, 4))
    np.testing.assert_array_equal(layer.head_attention, layer.attention[1])
    np.testing.assert_allclose(
        layer.tokens_in + layer.attention_update + layer.mlp_update, layer.tokens_out, rtol=1e-5, atol=1e-5
    )
    assert layer.attention_norms.shape == layer.mlp_norms.shape == (17,)
    assert (layer.attention_norms > 0).all() and (layer.mlp_norms > 0).all()
    np.testing.assert_allclose(layer.attention_norms, np.linalg.norm(layer.attention_update, axis=1), rtol=1e-6)


def test_the_layers_attention_is_what_explain_sees(vit_walk, tiny_vit_dir, chelsea):
    from core import explain

    explanation = explain(chelsea, str(tiny_vit_dir), precision="fp32")
    np.testing.assert_allclose(vit_walk.layer.attention, explanation.attentions[0], rtol=1e-5, atol=1e-6)


def test_the_cls_token_is_layernormed_and_the_head_reads_it(vit_walk, tiny_vit_dir, chelsea):
    loaded, _ = _model_and_pixels(tiny_vit_dir, chelsea)
    with torch.inference_mode():
        normed = loaded.model.vit.layernorm(torch.from_numpy(vit_walk.cls.before_norm)).numpy()
        logits = loaded.model.classifier(torch.from_numpy(vit_walk.cls.vector)).numpy()
    np.testing.assert_allclose(vit_walk.cls.vector, normed, rtol=1e-5, atol=1e-5)
    assert not np.allclose(vit_walk.cls.before_norm, vit_walk.cls.vector)
    assert vit_walk.cls.distillation is None
    head = vit_walk.head
    np.testing.assert_allclose(head.logits, logits, rtol=1e-5, atol=1e-5)
    assert head.activation == "softmax" and head.heads_averaged == 1
    assert head.probabilities.sum() == pytest.approx(1.0, abs=1e-5)
    expected = np.exp(head.logits - head.logits.max())
    np.testing.assert_allclose(head.probabilities, expected / expected.sum(), rtol=1e-5)


def test_the_top_classes_are_classifys(vit_walk, tiny_vit_dir, chelsea, tiny_labels):
    expected = classify(chelsea, str(tiny_vit_dir), top_k=5, precision="fp32")
    assert [p.label for p in vit_walk.head.top] == [p.label for p in expected]
    for ours, theirs in zip(vit_walk.head.top, expected):
        assert ours.score == pytest.approx(theirs.score, abs=1e-5)
    assert vit_walk.head.labels == tiny_labels
    logits = vit_walk.head.top_logits
    assert list(logits) == sorted(logits, reverse=True)


def test_deit_distilled_has_two_prefix_tokens_and_averages_two_heads(deit_walk, tiny_deit_dir, chelsea):
    assert deit_walk.num_prefix_tokens == 2 and deit_walk.num_tokens == 18
    assert deit_walk.layer.layer == 2  # the last by default
    assert deit_walk.layer.attention.shape == (2, 18, 18)
    np.testing.assert_array_equal(deit_walk.layer.cls_attention, deit_walk.layer.attention[0, 0, 2:].reshape(4, 4))
    loaded, pixels = _model_and_pixels(tiny_deit_dir, chelsea)
    with torch.inference_mode():
        expected = loaded.model.deit.embeddings.patch_embeddings(pixels)[0].numpy()
        cls_logits = loaded.model.cls_classifier(torch.from_numpy(deit_walk.cls.vector)).numpy()
        distillation_logits = loaded.model.distillation_classifier(torch.from_numpy(deit_walk.cls.distillation)).numpy()
    np.testing.assert_allclose(deit_walk.embedding.patch_embeddings, expected, rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(deit_walk.head.logits, (cls_logits + distillation_logits) / 2, rtol=1e-5, atol=1e-5)
    assert deit_walk.head.heads_averaged == 2
    table = loaded.model.deit.embeddings.position_embeddings[0].detach().numpy()
    np.testing.assert_array_equal(deit_walk.position.position_embeddings, table)
    # A freshly built DeiT starts its position embeddings at zero: similar to nothing, never NaN.
    assert not np.isnan(deit_walk.position.similarity).any()
    top = classify(chelsea, str(tiny_deit_dir), top_k=5, precision="fp32")
    assert [p.label for p in deit_walk.head.top] == [p.label for p in top]


def test_the_default_precision_keeps_the_same_relations(tiny_vit_dir, chelsea):
    walk = walkthrough(chelsea, str(tiny_vit_dir))
    assert walk.run.model == str(Path(tiny_vit_dir).resolve())
    assert walk.run.milliseconds > 0
    assert walk.head.probabilities.sum() == pytest.approx(1.0, abs=1e-2)
    np.testing.assert_allclose(np.diag(walk.position.similarity.reshape(16, 16)), 1.0, atol=1e-2)


@pytest.fixture(scope="module")
def tiny_vit_resized_dir(tmp_path_factory, tiny_config) -> Path:
    """A 32x32 ViT whose processor resizes to 32x48: the forward pass interpolates the position embeddings."""
    from transformers import ViTConfig, ViTForImageClassification, ViTImageProcessor

    torch.manual_seed(5)
    folder = tmp_path_factory.mktemp("walk-vit-32-at-32x48")
    ViTForImageClassification(ViTConfig(**tiny_config())).save_pretrained(folder)
    ViTImageProcessor(size={"height": 32, "width": 48}).save_pretrained(folder)
    return folder


def test_resized_input_shows_the_interpolated_positions_it_added(tiny_vit_resized_dir, chelsea):
    walk = walkthrough(chelsea, str(tiny_vit_resized_dir), layer=1, **FP32)
    assert walk.grid_size == (4, 6)
    assert walk.position.position_embeddings.shape == (25, 32)
    assert walk.position.similarity.shape == (4, 6, 4, 6)
    np.testing.assert_allclose(
        walk.layer.tokens_in[1:],
        walk.embedding.patch_embeddings + walk.position.position_embeddings[1:],
        rtol=1e-5,
        atol=1e-5,
    )


@pytest.fixture(scope="module")
def tiny_beit_dir(tmp_path_factory, tiny_config) -> Path:
    """A tiny BEiT: relative position biases, no learned absolute position embeddings to show."""
    from conftest import save_tiny_model
    from transformers import BeitConfig, BeitForImageClassification

    torch.manual_seed(4)
    config = BeitConfig(**tiny_config(), use_absolute_position_embeddings=False, use_relative_position_bias=True)
    return save_tiny_model(BeitForImageClassification(config), tmp_path_factory.mktemp("tiny-beit"))


def test_a_model_laid_out_otherwise_is_a_clear_value_error(tiny_beit_dir, chelsea):
    with pytest.raises(ValueError, match="BeitConfig.*Pick a ViT or DeiT model"):
        walkthrough(chelsea, str(tiny_beit_dir), **FP32)


@pytest.mark.parametrize(
    ("options", "message"),
    [
        (dict(layer=3), "Layer 3 is out of range: this model has layers 1 to 2"),
        (dict(layer=0), "Layer 0 is out of range"),
        (dict(head=3), "Head 3 is out of range: this layer has heads 1 to 2"),
        (dict(top_k=0), "top_k must be"),
    ],
)
def test_out_of_range_choices_name_the_range(tiny_vit_dir, chelsea, options, message):
    with pytest.raises(ValueError, match=message):
        walkthrough(chelsea, str(tiny_vit_dir), **options, **FP32)


# ---- the pictures and sentences both front ends show ---------------------------------------------------------


def test_every_step_has_a_picture_and_a_sentence_with_this_photos_numbers(vit_walk):
    pictures = step_pictures(vit_walk)
    sentences = step_sentences(vit_walk)
    assert list(pictures) == list(sentences) == list(STEP_TITLES)
    for key, picture in pictures.items():
        assert picture.mode == "RGB" and min(picture.size) >= 100, key
    assert "4×4 grid of 8×8-pixel patches" in sentences["patches"]
    first = vit_walk.embedding.patch_embeddings[0]
    assert f"{first[0]:.2f}" in sentences["embedding"]
    assert f"{vit_walk.position.similarity[0, 0, 0, 1]:.2f}" in sentences["position"]
    assert f"{vit_walk.layer.cls_attention.max():.3f}" in sentences["attention"]
    assert f"{vit_walk.layer.mlp_norms[0]:.2f}" in sentences["mlp"]
    assert f"{vit_walk.cls.vector[0]:.2f}" in sentences["cls"]
    top = vit_walk.head.top[0]
    assert top.label in sentences["head"] and f"{vit_walk.head.top_logits[0]:.2f}" in sentences["head"]
    assert f"{top.score:.1%}" in sentences["head"]


def test_deit_sentences_name_the_distillation_token(deit_walk):
    sentences = step_sentences(deit_walk)
    assert "distillation" in sentences["patches"] and "distillation" in sentences["head"]


# ---- the Streamlit page, in process (streamlit.testing) ------------------------------------------------------


def test_the_streamlit_page_shows_every_step_with_the_engines_numbers(monkeypatch, tiny_vit_dir, tmp_path):
    from streamlit.testing.v1 import AppTest

    from core.examples import example_images

    monkeypatch.setenv("VIT_STUDIO_MODEL", str(tiny_vit_dir))
    monkeypatch.setenv("VIT_STUDIO_RUNS", str(tmp_path / "runs"))
    monkeypatch.setenv("VIT_STUDIO_CACHE", str(tmp_path / "cache"))
    app = str(Path(__file__).resolve().parents[1] / "ui" / "streamlit_app.py")
    at = AppTest.from_file(app, default_timeout=120)
    at.run()
    at.switch_page("streamlit_pages/walkthrough.py").run()
    assert not at.exception
    assert any("Pick a photo and press" in caption.value for caption in at.caption)
    at.button(key="walkthrough_run").click().run()
    assert not at.exception, at.exception
    # The page's default photo is the first example photo; the sliders start at the last layer and head 1.
    photo = example_images(tmp_path / "cache" / "examples")[0]
    expected = step_sentences(walkthrough(photo, str(tiny_vit_dir), layer=2, head=1))
    shown = [element.value for element in at.markdown]
    for key, sentence in expected.items():
        assert sentence in shown, key
    assert [element.value for element in at.subheader][-len(STEP_TITLES) :] == list(STEP_TITLES.values())
    assert len(at.image) >= len(STEP_TITLES)  # the photo preview, then one picture per step


def test_a_lent_gpu_runs_the_walkthrough_and_sends_it_back_whole(tiny_vit_dir, chelsea, vit_walk):
    """On a ZeroGPU Space the call runs in a worker process: its answer must survive the trip back (pickle)."""
    import pickle

    from core import gpu

    assert "core.walkthrough.walkthrough" in gpu.entry_points()
    lent_calls: list[str] = []

    def lender(function):
        def in_a_worker(*args, **kwargs):
            lent_calls.append(function.__name__)
            return pickle.loads(pickle.dumps(function(*args, **kwargs)))

        return in_a_worker

    gpu.lend_gpu(lender)
    try:
        walk = walkthrough(chelsea, str(tiny_vit_dir), layer=1, head=2, on_load=lambda name: None, **FP32)
    finally:
        gpu.stop_lending()
    assert lent_calls == ["walkthrough"]
    np.testing.assert_array_equal(walk.layer.attention, vit_walk.layer.attention)
    assert walk.patches.model_input.tobytes() == vit_walk.patches.model_input.tobytes()
    assert [p.label for p in walk.head.top] == [p.label for p in vit_walk.head.top]
