"""The Gradio front end: build_demo() arranges the tabs; every computation is a call into core/."""
from __future__ import annotations

import time

import gradio as gr

from core import classify, classify_files, explain, features
from core.attention import (
    HEAD_FUSIONS, comparison_target, describe_tokens, head_grid, layer_strip, patch_grid_image, save_features,
)
from core.batch import CSV_COLUMNS, batch_summary, results_table, write_csv
from core.examples import example_images
from core.models import CLASSIFIER_CHOICES, DEFAULT_CLASSIFIER, EXPLAINER_CHOICES, load_classifier, load_explainable
from ui.caption_tab import caption_tab
from ui.components import ImagePath
from ui.train_tab import FOLDER_NAMES_JS, connect_visitor, train_tab, visitor_boxes
from ui.zero_shot_tab import zero_shot_tab
from ui.gradio_common import (
    NO_FILES, announce_load, describe_run, output_folder, require_image, user_errors, write_cache_images_atomically,
)
from ui.texts import ATTENTION_INTRO, CLASSIFY_INTRO, COLORMAPS, METHOD_CHOICES, MODEL_INFO

CSS = """
#status {min-height: 1.5em; opacity: 0.8}
.hidden-box {display: none !important}
"""
JS = FOLDER_NAMES_JS


def build_demo(default_model: str = DEFAULT_CLASSIFIER, model_choices: tuple[str, ...] = CLASSIFIER_CHOICES,
               allow_server_paths: bool = False, delete_cache: tuple[int, int] | None = None) -> gr.Blocks:
    """The whole app; launch it with demo.launch(css=CSS, js=JS) or mount it in FastAPI.
    `allow_server_paths` lets the Train tab read a folder on the machine the app runs on (local use only);
    `delete_cache` is gr.Blocks' (every so many seconds, remove visitors' files older than so many)."""
    choices = list(dict.fromkeys([default_model, *model_choices]))
    write_cache_images_atomically()
    with gr.Blocks(title="ViT Studio", delete_cache=delete_cache) as demo:
        gr.Markdown("# ViT Studio\nSee what Vision Transformers do: classify a photo, see where the model looks, "
                    "caption it, and ask CLIP about it with your own labels.")
        visitor_id, browser_id = visitor_boxes()
        with gr.Tabs():
            with gr.Tab("Classify", id="classify"):
                classify_model = classify_tab(default_model, choices)
            with gr.Tab("Attention", id="attention"):
                attention_model = attention_tab(default_model, list(dict.fromkeys([default_model, *EXPLAINER_CHOICES])))
            with gr.Tab("Caption", id="caption"):
                caption_tab()
            with gr.Tab("Zero-shot", id="zero-shot"):
                zero_shot_tab()
            with gr.Tab("Train", id="train"):
                run_lists = train_tab((classify_model, attention_model), visitor_id,
                                      allow_server_paths=allow_server_paths)
        connect_visitor(demo, visitor_id, browser_id, run_lists)
    return demo


def classify_tab(default_model: str, choices: list[str]) -> gr.Dropdown:
    gr.Markdown(CLASSIFY_INTRO)
    with gr.Row():
        model = gr.Dropdown(
            choices, value=default_model, allow_custom_value=True, label="Model", info=MODEL_INFO, scale=3, min_width=300,
            elem_id="classify-model",
        )
        top_k = gr.Slider(1, 20, value=5, step=1, label="How many labels (top-k)", scale=1, min_width=200)
    with gr.Tabs():
        with gr.Tab("One image"):
            with gr.Row(equal_height=False):
                with gr.Column():
                    image = ImagePath(
                        type="filepath", image_mode=None, sources=["upload", "clipboard", "webcam"],
                        label="Photo (upload, paste or webcam)", height=360, elem_id="photo",
                    )
                    run = gr.Button("Classify", variant="primary")
                    gr.Examples([[str(path)] for path in example_images()], inputs=[image], label="Example photos")
                with gr.Column():
                    labels = gr.Label(label="Top labels", show_heading=True, elem_id="top-labels")
                    status = gr.Markdown(elem_id="status", label="run")
            run.click(classify_one, inputs=[image, model, top_k], outputs=[labels, status], api_name="classify")
        with gr.Tab("Many images"):
            files = gr.File(
                file_count="multiple", file_types=["image", ".zip"], label="Images or zips of images", elem_id="batch-files"
            )
            run_batch = gr.Button("Classify all", variant="primary")
            summary = gr.Markdown(label="summary")
            table = gr.Dataframe(
                headers=list(CSV_COLUMNS), label="Results", wrap=True, interactive=False,
                column_widths=["22%", "12%", "8%", "33%", "25%"],
            )
            csv_file = gr.File(label="Download CSV")
            run_batch.click(
                classify_many, inputs=[files, model, top_k], outputs=[table, csv_file, summary],
                api_name="classify_batch",
            )
    return model


def attention_tab(default_model: str, choices: list[str]) -> gr.Dropdown:
    gr.Markdown(ATTENTION_INTRO)
    with gr.Row():
        model = gr.Dropdown(choices, value=default_model, allow_custom_value=True, label="Model", scale=3,
                            min_width=300, info="Any ViT-family id or local folder; DINO backbones work too.",
                            elem_id="attention-model")
        method = gr.Radio(METHOD_CHOICES, value="rollout", label="Method", scale=2)
    with gr.Row():
        head_fusion = gr.Radio(list(HEAD_FUSIONS), value="mean", label="Head fusion", min_width=200)
        discard = gr.Slider(0, 0.99, value=0.9, step=0.01, label="Discard ratio (rollout)",
                            info="drop the weakest attention weights in each layer")
        layer = gr.Slider(0, 24, value=0, step=1, label="Layer (0 = all / last)",
                          info="rollout up to this layer; raw attention of this layer")
        head = gr.Slider(0, 16, value=0, step=1, label="Head (0 = all heads fused)", info="raw attention only")
    with gr.Row():
        target = gr.Dropdown([], value=None, allow_custom_value=True, label="Class to explain (gradient rollout)",
                             info="empty = the top label", scale=2)
        cmap = gr.Dropdown(COLORMAPS, value="jet", label="Colormap", scale=1)
        alpha = gr.Slider(0, 1, value=0.5, step=0.05, label="Opacity", scale=1)
    with gr.Row(equal_height=False):
        with gr.Column():
            image = ImagePath(type="filepath", image_mode=None, sources=["upload", "clipboard", "webcam"],
                              label="Photo", height=320, elem_id="attention-photo")
            run = gr.Button("Explain", variant="primary")
            gr.Examples([[str(path)] for path in example_images()], inputs=[image], label="Example photos")
        with gr.Column():
            overlay_image = gr.Image(label="Where the model looks", type="pil", format="png",
                                     buttons=["download"], elem_id="attention-overlay", height=320)
            labels = gr.Label(label="Predictions", num_top_classes=5, elem_id="attention-labels")
    with gr.Accordion("How ViT sees this image", open=True):
        with gr.Row(equal_height=False):
            grid_image = gr.Image(label="Patch grid", type="pil", height=224, scale=1)
            with gr.Column(scale=2):
                tokens = gr.Markdown(elem_id="attention-tokens", label="tokens")
                strip = gr.Gallery(label="Rollout, layer by layer", columns=6, height=220, elem_id="layer-strip")
        heads = gr.Gallery(label="Every head of the layer (CLS attention)", columns=6, height=260, elem_id="head-grid")
    with gr.Accordion("Side by side", open=False):
        gr.Markdown("The same photo through a second model, method or layer (the settings above are the left side).")
        with gr.Row():
            model_b = gr.Dropdown(choices, value=choices[min(1, len(choices) - 1)], allow_custom_value=True,
                                  label="Model (right)", scale=3, min_width=300, elem_id="model-b")
            method_b = gr.Radio(METHOD_CHOICES, value="rollout", label="Method (right)", scale=2, elem_id="method-b")
            layer_b = gr.Slider(0, 24, value=0, step=1, label="Layer (right, 0 = all / last)", scale=1)
        compare = gr.Button("Compare", variant="primary")
        with gr.Row(equal_height=False):
            with gr.Column():
                left_image = gr.Image(label="Left", type="pil", format="png", buttons=["download"], elem_id="left-overlay")
                left_labels = gr.Label(label="Left predictions", num_top_classes=3, elem_id="left-labels")
            with gr.Column():
                right_image = gr.Image(label="Right", type="pil", format="png", buttons=["download"], elem_id="right-overlay")
                right_labels = gr.Label(label="Right predictions", num_top_classes=3, elem_id="right-labels")
    with gr.Accordion("Features (the ViT as a feature extractor)", open=False):
        gr.Markdown("The CLS embedding and the patch embeddings after the chosen layer (0 above = the last), as .npy.")
        extract = gr.Button("Extract features")
        feature_files = gr.File(label="Features (.npy)", file_count="multiple")

    settings = [model, method, head_fusion, discard, layer, head, target, cmap, alpha]
    run.click(explain_one, inputs=[image, *settings],
              outputs=[overlay_image, labels, grid_image, tokens, strip, heads, target], api_name="explain")
    compare.click(explain_side_by_side, inputs=[image, *settings, model_b, method_b, layer_b],
                  outputs=[left_image, left_labels, right_image, right_labels], api_name="compare")
    # A class name belongs to the model it came from; a new model starts from its own top label.
    model.change(lambda _: gr.update(choices=[], value=None), inputs=[model], outputs=[target],
                 api_visibility="undocumented")
    extract.click(extract_features, inputs=[image, model, layer], outputs=[feature_files], api_name="features")
    return model


def explain_one(image_path, model, method, head_fusion, discard, layer, head, target, cmap, alpha,
                progress=gr.Progress(track_tqdm=True)):
    """The overlay, predictions, patch grid, token sentence, layer strip, head grid, and the class choices."""
    explanation = _explain(image_path, model, method, head_fusion, discard, layer, head, target, cmap, alpha, progress)
    if not explanation.heatmap.any():
        gr.Warning("The map is empty: the discard ratio removed every path from the patches to the CLS token. "
                   "Lower the discard ratio.")
    class_choices = [p.label for p in explanation.predictions]
    return (
        explanation.overlay,
        _label_value(explanation),
        patch_grid_image(explanation.model_input, explanation.grid_size),
        describe_tokens(explanation),
        layer_strip(explanation, cmap=cmap),
        head_grid(explanation, cmap=cmap),
        gr.update(choices=class_choices, value=explanation.target if method == "grad_rollout" else target),
    )


def explain_side_by_side(image_path, model, method, head_fusion, discard, layer, head, target, cmap, alpha,
                         model_b, method_b, layer_b, progress=gr.Progress(track_tqdm=True)):
    """The same photo explained twice: the main settings on the left, the right-hand ones on the right."""
    left = _explain(image_path, model, method, head_fusion, discard, layer, head, target, cmap, alpha, progress)
    right = _explain(image_path, model_b, method_b, head_fusion, discard, layer_b, head,
                     comparison_target(target, model, model_b), cmap, alpha, progress)
    return left.overlay, _label_value(left), right.overlay, _label_value(right)


def extract_features(image_path, model, layer, progress=gr.Progress(track_tqdm=True)):
    require_image(image_path)
    with user_errors():
        announce_load(model, progress, loader=load_explainable)
        extracted = features(image_path, model=model, layer=int(layer) or -1)
    return [str(path) for path in save_features(extracted, output_folder())]


def _explain(image_path, model, method, head_fusion, discard, layer, head, target, cmap, alpha, progress):
    require_image(image_path)
    with user_errors():
        announce_load(model, progress, loader=load_explainable)
        return explain(
            image_path, model=model, method=method, head_fusion=head_fusion, discard_ratio=float(discard),
            layer=int(layer) or None, head=int(head) or None, target=target or None,
            alpha=float(alpha), cmap=cmap,
        )


def _label_value(explanation) -> dict[str, float] | str:
    if not explanation.predictions:
        return "no classifier head (a backbone): maps only"
    return {p.label: p.score for p in explanation.predictions}


def classify_one(image_path: str | None, model: str, top_k: float, progress=gr.Progress(track_tqdm=True)):
    """Top labels as {label: score} for gr.Label, plus a line saying what ran."""
    require_image(image_path)
    with user_errors():
        announce_load(model, progress)
        started = time.perf_counter()
        predictions = classify(image_path, model=model, top_k=int(top_k))
        elapsed_ms = (time.perf_counter() - started) * 1000
    return {p.label: p.score for p in predictions}, _describe_run(model, elapsed_ms)


def classify_many(paths: list[str] | None, model: str, top_k: float, progress=gr.Progress(track_tqdm=True)):
    """A results table, a CSV file to download and a one-line summary."""
    if not paths:
        raise gr.Error(NO_FILES)
    with user_errors():
        announce_load(model, progress)
        results = classify_files(paths, model=model, top_k=int(top_k))
    csv_path = write_csv(results, output_folder() / "predictions.csv")
    return results_table(results), str(csv_path), batch_summary(results, "classified")


def _describe_run(model: str, elapsed_ms: float) -> str:
    loaded = load_classifier(model)
    return describe_run(loaded.name, loaded.device, loaded.dtype, elapsed_ms)
