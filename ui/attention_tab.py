"""The Attention tab: where the model looks (rollout, per-layer and per-head maps, side by side), redrawn live."""

from __future__ import annotations

import gradio as gr

from core import (
    HEAD_FUSIONS,
    Explanation,
    example_images,
    explain,
    features,
    patch_at_pixel,
    patch_attention,
    patch_grid_image,
    redraw,
)
from ui.components import ImagePath
from ui.gradio_common import (
    load_progress,
    output_folder,
    require_image,
    slider,
    teacher_note,
    user_errors,
)
from ui.shared.attention import (
    PATCH_BY_LABEL,
    PATCH_COL_LABEL,
    PATCH_HINT,
    PATCH_ROW_LABEL,
    PATCH_STALE,
    PATCH_TITLE,
    PATCH_TO_LABEL,
    comparison_target,
    describe_tokens,
    head_grid,
    head_ranges_line,
    layer_strip,
    model_sliders,
    patch_line,
    patch_ranges_line,
    save_features,
    value_range_line,
)
from ui.shared.texts import (
    ATTENTION_INTRO,
    COLORMAP_LABEL,
    COLORMAPS,
    COMPARE_BUTTON,
    EMPTY_MAP,
    EXPLAIN_BUTTON,
    EXPLAINER_INFO,
    EXTRACT_BUTTON,
    FEATURES_NOTE,
    FEATURES_TITLE,
    HEAD_FUSION_LABEL,
    HEAD_GRID_TITLE,
    LAYER_STRIP_TITLE,
    METHOD_CHOICES,
    METHOD_LABEL,
    METHOD_RIGHT_LABEL,
    MODEL_LABEL,
    MODEL_RIGHT_LABEL,
    NO_HEAD,
    OVERLAY_LABEL,
    PATCH_GRID_LABEL,
    PHOTO_LABEL,
    PREDICTIONS_LABEL,
    SIDE_BY_SIDE_NOTE,
    SIDE_BY_SIDE_TITLE,
    SIDES,
    TARGET_INFO,
    TARGET_LABEL,
    VIT_SEES_TITLE,
)
from ui.shared.widgets import DISCARD_RATIO, OPACITY, Slider, in_range

EXPLANATION_KEPT_S = 15 * 60


def attention_tab(default_model: str, choices: list[str] | list[tuple[str, str]]) -> gr.Dropdown:
    gr.Markdown(ATTENTION_INTRO)
    with gr.Row():
        model = gr.Dropdown(
            choices,
            value=default_model,
            allow_custom_value=True,
            label=MODEL_LABEL,
            scale=3,
            min_width=300,
            info=EXPLAINER_INFO,
            elem_id="attention-model",
        )
        method = gr.Radio(METHOD_CHOICES, value="rollout", label=METHOD_LABEL, scale=2, elem_id="attention-method")
    # The layer and head sliders span the chosen model's layers and heads (read from its config).
    layer_spec, head_spec, layer_right_spec = model_sliders(default_model)
    with gr.Row():
        head_fusion = gr.Radio(list(HEAD_FUSIONS), value="mean", label=HEAD_FUSION_LABEL, min_width=200)
        discard = slider(DISCARD_RATIO)
        layer = slider(layer_spec)
        head = slider(head_spec)
    with gr.Row():
        target = gr.Dropdown([], value=None, allow_custom_value=True, label=TARGET_LABEL, info=TARGET_INFO, scale=2)
        cmap = gr.Dropdown(COLORMAPS, value="jet", label=COLORMAP_LABEL, scale=1)
        alpha = slider(OPACITY, scale=1)
    with gr.Row(equal_height=False):
        with gr.Column():
            image = ImagePath(
                type="filepath",
                image_mode=None,
                sources=["upload", "clipboard", "webcam"],
                label=PHOTO_LABEL,
                height=320,
                elem_id="attention-photo",
            )
            run = gr.Button(EXPLAIN_BUTTON, variant="primary")
            gr.Examples([[str(path)] for path in example_images()], inputs=[image], label="Example photos")
        with gr.Column():
            overlay_image = gr.Image(
                label=OVERLAY_LABEL,
                type="pil",
                format="png",
                buttons=["download"],
                elem_id="attention-overlay",
                height=320,
            )
            value_range = gr.Markdown(elem_id="attention-range", label="map values")
            teacher_note("attention-overlay")
            labels = gr.Label(label=PREDICTIONS_LABEL, num_top_classes=5, elem_id="attention-labels")
    # One token's own attention: click a patch on the overlay (or type its row and column).
    with gr.Accordion(PATCH_TITLE, open=True, elem_id="patch-view"):
        gr.Markdown(PATCH_HINT)
        with gr.Row():
            patch_row = gr.Number(
                label=PATCH_ROW_LABEL, precision=0, minimum=1, min_width=120, elem_id="patch-row", scale=1
            )
            patch_col = gr.Number(
                label=PATCH_COL_LABEL, precision=0, minimum=1, min_width=120, elem_id="patch-col", scale=1
            )
        with gr.Row(equal_height=False):
            # Shown once a patch is chosen: two empty boxes would only push the rest of the tab down.
            patch_to = gr.Image(
                label=PATCH_TO_LABEL,
                type="pil",
                format="png",
                height=300,
                interactive=False,
                visible=False,
                elem_id="patch-to",
            )
            patch_by = gr.Image(
                label=PATCH_BY_LABEL,
                type="pil",
                format="png",
                height=300,
                interactive=False,
                visible=False,
                elem_id="patch-by",
            )
        patch_text = gr.Markdown(elem_id="patch-line", label="the patch in numbers")
        teacher_note("patch-click")
    with gr.Accordion(VIT_SEES_TITLE, open=True):
        with gr.Row(equal_height=False):
            with gr.Column(scale=1):
                grid_image = gr.Image(label=PATCH_GRID_LABEL, type="pil", height=224, elem_id="patch-grid")
                teacher_note("patch-grid")
            with gr.Column(scale=2):
                tokens = gr.Markdown(elem_id="attention-tokens", label="tokens")
                strip = gr.Gallery(
                    label=LAYER_STRIP_TITLE, columns=6, height=220, fit_columns=False, elem_id="layer-strip"
                )
                teacher_note("layer-strip")
        # Whole tiles with their captions: no cropping to a square, no fixed height that hides the captions.
        heads = gr.Gallery(
            label=HEAD_GRID_TITLE,
            columns=6,
            height="auto",
            object_fit="contain",
            # A tile a column even for a 2-head model: stretched to the row's width, a tile grew taller than the
            # gallery showed and its caption (at the tile's foot) was cut off.
            fit_columns=False,
            allow_preview=True,
            elem_id="head-grid",
        )
        head_note = gr.Markdown(elem_id="head-ranges", label="head values")
        teacher_note("head-grid")
    with gr.Accordion(SIDE_BY_SIDE_TITLE, open=False):
        gr.Markdown(SIDE_BY_SIDE_NOTE)
        with gr.Row():
            model_b = gr.Dropdown(
                choices,
                value=_choice_value(choices[min(1, len(choices) - 1)]),
                allow_custom_value=True,
                label=MODEL_RIGHT_LABEL,
                scale=3,
                min_width=300,
                elem_id="model-b",
            )
            method_b = gr.Radio(METHOD_CHOICES, value="rollout", label=METHOD_RIGHT_LABEL, scale=2, elem_id="method-b")
            layer_b = slider(model_sliders(model_b.value)[2], scale=1)
        compare = gr.Button(COMPARE_BUTTON, variant="primary")
        with gr.Row(equal_height=False):
            with gr.Column():
                left_image = gr.Image(
                    label=SIDES[0], type="pil", format="png", buttons=["download"], elem_id="left-overlay"
                )
                left_labels = gr.Label(label=f"{SIDES[0]} predictions", num_top_classes=3, elem_id="left-labels")
            with gr.Column():
                right_image = gr.Image(
                    label=SIDES[1], type="pil", format="png", buttons=["download"], elem_id="right-overlay"
                )
                right_labels = gr.Label(label=f"{SIDES[1]} predictions", num_top_classes=3, elem_id="right-labels")
    with gr.Accordion(FEATURES_TITLE, open=False):
        gr.Markdown(FEATURES_NOTE)
        extract = gr.Button(EXTRACT_BUTTON)
        feature_files = gr.File(label="Features (.npy)", file_count="multiple")

    settings = [model, method, head_fusion, discard, layer, head, target, cmap, alpha]
    # The last explanation, with the attentions its forward pass kept: the map controls redraw from it at once.
    # It holds about 22 MB for a ViT-B, so a session keeps it for 15 minutes after its last change, not for as
    # long as Gradio keeps the session (ServingLimits.sessions_kept of them); after that the controls wait for Explain.
    explained = gr.State(None, time_to_live=EXPLANATION_KEPT_S)
    patch_settings = [head_fusion, layer, head, cmap, alpha]
    patch_views = [patch_to, patch_by, patch_text]
    explained_event = run.click(
        explain_one,
        inputs=[image, *settings],
        outputs=[overlay_image, labels, grid_image, tokens, strip, heads, target, value_range, head_note, explained],
        api_name="explain",
    )
    explained_event.success(
        fit_sliders, inputs=[model, layer, head], outputs=[layer, head], api_visibility="undocumented"
    )
    # A patch already chosen is shown again from the new explanation (the same photo and model: a new one cleared it).
    explained_event.success(
        show_patch,
        inputs=[explained, patch_row, patch_col, *patch_settings],
        outputs=patch_views,
        api_visibility="undocumented",
    )
    compare.click(
        explain_side_by_side,
        inputs=[image, *settings, model_b, method_b, layer_b],
        outputs=[left_image, left_labels, right_image, right_labels],
        api_name="compare",
    )
    # A class name belongs to the model it came from; a new model starts from its own top label.
    model.change(
        lambda _: gr.update(choices=[], value=None), inputs=[model], outputs=[target], api_visibility="undocumented"
    )
    model.change(fit_sliders, inputs=[model, layer, head], outputs=[layer, head], api_name="attention_ranges")
    # Moving a map control redraws from the kept attentions, no forward pass. Only the user's own moves count
    # (release, input): a slider refitted to a new model is not a request to redraw. A new model or photo makes
    # the kept attentions another's, so nothing redraws until Explain runs again.
    gr.on(
        [method.input, head_fusion.input, discard.release, layer.release, head.release, cmap.input, alpha.release],
        redraw_map,
        inputs=[explained, method, head_fusion, discard, layer, head, cmap, alpha],
        outputs=[overlay_image, strip, heads, value_range, head_note],
        api_name="redraw",
        trigger_mode="always_last",
    )
    # A click on the overlay (or on either patch map: all are the photo's size) picks the patch under it; the layer,
    # head and drawing controls redraw its view at once.
    gr.on(
        [overlay_image.select, patch_to.select, patch_by.select],
        click_patch,
        inputs=[explained, *patch_settings],
        outputs=[patch_row, patch_col, *patch_views],
        api_name="patch_click",
        api_visibility="undocumented",  # it needs the click's coordinates, which only the page sends
    )
    grid_image.select(
        click_grid_patch,
        inputs=[explained, *patch_settings],
        outputs=[patch_row, patch_col, *patch_views],
        api_name="patch_grid_click",
        api_visibility="undocumented",
    )
    gr.on(
        [
            patch_row.input,
            patch_col.input,
            head_fusion.input,
            layer.release,
            head.release,
            cmap.input,
            alpha.release,
        ],
        show_patch,
        inputs=[explained, patch_row, patch_col, *patch_settings],
        outputs=patch_views,
        api_name="patch",
        trigger_mode="always_last",
    )
    # A new model or photo makes every result on screen another's: cleared, with the kept explanation, so nothing
    # old is read as the new one's (issue 12, item 6).
    stale = [explained, overlay_image, labels, value_range, grid_image, tokens, strip, heads, head_note]
    gr.on(
        [model.change, image.change],
        clear_results,
        outputs=[*stale, patch_row, patch_col, *patch_views],
        api_visibility="undocumented",
        queue=False,
    )
    gr.on(
        [model.change, image.change],
        lambda: (None,) * 5,
        outputs=[left_image, left_labels, right_image, right_labels, feature_files],
        api_visibility="undocumented",
        queue=False,
    )
    model_b.change(fit_right_slider, inputs=[model_b, layer_b], outputs=[layer_b], api_visibility="undocumented")
    model_b.change(
        lambda: (None, None), outputs=[right_image, right_labels], api_visibility="undocumented", queue=False
    )
    extract.click(extract_features, inputs=[image, model, layer], outputs=[feature_files], api_name="features")
    return model


def _choice_value(choice: str | tuple[str, str]) -> str:
    """A dropdown choice's value: choices are plain names or (label, value) pairs."""
    return choice[1] if isinstance(choice, tuple) else choice


def fit_sliders(model, layer, head):
    """The layer and head sliders fitted to this model's layers and heads, their values kept in range."""
    layer_spec, head_spec, _ = model_sliders(model or "")
    return _fitted_update(layer_spec, layer), _fitted_update(head_spec, head)


def fit_right_slider(model, layer):
    return _fitted_update(model_sliders(model or "")[2], layer)


def _fitted_update(spec: Slider, value) -> dict:
    return gr.update(maximum=spec.maximum, value=in_range(value, spec))


def explain_one(
    image_path,
    model,
    method,
    head_fusion,
    discard,
    layer,
    head,
    target,
    cmap,
    alpha,
    progress=gr.Progress(track_tqdm=True),
):
    """The overlay, predictions, patch grid, token sentence, layer strip, head grid, and the class choices."""
    explanation = _explain(image_path, model, method, head_fusion, discard, layer, head, target, cmap, alpha, progress)
    if not explanation.heatmap.any():
        gr.Warning(EMPTY_MAP)
    class_choices = [p.label for p in explanation.predictions]
    return (
        explanation.overlay,
        _label_value(explanation),
        patch_grid_image(explanation.model_input, explanation.grid_size),
        describe_tokens(explanation),
        layer_strip(explanation, cmap=cmap),
        head_grid(explanation, cmap=cmap),
        gr.update(choices=class_choices, value=explanation.target if method == "grad_rollout" else target),
        value_range_line(explanation),
        head_ranges_line(explanation),
        explanation,
    )


def click_patch(explanation: Explanation | None, head_fusion, layer, head, cmap, alpha, evt: gr.SelectData):
    """The patch under a click on the overlay or a patch map (evt.index is [x, y] in the picture's pixels; all three
    are the photo's size), and its view."""
    size = explanation.overlay.size if explanation is not None else None
    return _clicked(explanation, size, evt, head_fusion, layer, head, cmap, alpha)


def click_grid_patch(explanation: Explanation | None, head_fusion, layer, head, cmap, alpha, evt: gr.SelectData):
    """The patch under a click on the patch-grid picture (the model's input, enlarged), and its view."""
    size = patch_grid_image(explanation.model_input, explanation.grid_size).size if explanation is not None else None
    return _clicked(explanation, size, evt, head_fusion, layer, head, cmap, alpha)


def _clicked(explanation, image_size, evt: gr.SelectData, head_fusion, layer, head, cmap, alpha):
    if explanation is None or image_size is None:
        gr.Warning(PATCH_STALE)
        return tuple(gr.skip() for _ in range(5))
    if not isinstance(evt.index, (list, tuple)) or len(evt.index) != 2:
        return tuple(gr.skip() for _ in range(5))
    x, y = evt.index
    with user_errors():
        row, col = patch_at_pixel(x, y, image_size=image_size, grid_size=explanation.grid_size)
    return (row, col, *show_patch(explanation, row, col, head_fusion, layer, head, cmap, alpha))


def show_patch(explanation: Explanation | None, row, col, head_fusion, layer, head, cmap, alpha):
    """Where the patch at (row, col) looks and what looks at it, in the chosen layer and head, from the kept
    attentions (no forward pass); nothing changes until a patch is chosen and an explanation is kept."""
    if row is None or col is None:
        return tuple(gr.skip() for _ in range(3))
    if explanation is None:
        gr.Warning(PATCH_STALE)
        return tuple(gr.skip() for _ in range(3))
    with user_errors():
        patch = patch_attention(
            explanation,
            int(row),
            int(col),
            layer=int(layer) or None,
            head=int(head) or None,
            head_fusion=head_fusion,
            alpha=float(alpha),
            cmap=cmap,
        )
    return (
        gr.update(value=patch.attends_to_overlay, visible=True),
        gr.update(value=patch.attended_by_overlay, visible=True),
        f"{patch_line(patch)}\n\n{patch_ranges_line(patch)}",
    )


def clear_results():
    """Every result of the Attention tab emptied, the kept explanation and the chosen patch with them."""
    hidden_picture = gr.update(value=None, visible=False)
    return (None, None, None, "", None, "", None, None, "", None, None, hidden_picture, hidden_picture, "")


def redraw_map(explanation: Explanation | None, method, head_fusion, discard, layer, head, cmap, alpha):
    """The overlay, layer strip, head grid and value lines drawn again from the last explanation's attentions with
    the controls as they are now; nothing to redraw (no change) before the first Explain."""
    if explanation is None:
        return tuple(gr.skip() for _ in range(5))
    with user_errors():
        redrawn = redraw(
            explanation,
            method=method,
            head_fusion=head_fusion,
            discard_ratio=float(discard),
            layer=int(layer) or None,
            head=int(head) or None,
            alpha=float(alpha),
            cmap=cmap,
        )
    if not redrawn.heatmap.any():
        gr.Warning(EMPTY_MAP)
    return (
        redrawn.overlay,
        layer_strip(redrawn, cmap=cmap),
        head_grid(redrawn, cmap=cmap),
        value_range_line(redrawn),
        head_ranges_line(redrawn),
    )


def explain_side_by_side(
    image_path,
    model,
    method,
    head_fusion,
    discard,
    layer,
    head,
    target,
    cmap,
    alpha,
    model_b,
    method_b,
    layer_b,
    progress=gr.Progress(track_tqdm=True),
):
    """The same photo explained twice: the main settings on the left, the right-hand ones on the right."""
    left = _explain(image_path, model, method, head_fusion, discard, layer, head, target, cmap, alpha, progress)
    right = _explain(
        image_path,
        model_b,
        method_b,
        head_fusion,
        discard,
        layer_b,
        head,
        comparison_target(target, model, other_model=model_b),
        cmap,
        alpha,
        progress,
    )
    return left.overlay, _label_value(left), right.overlay, _label_value(right)


def extract_features(image_path, model, layer, progress=gr.Progress(track_tqdm=True)):
    require_image(image_path)
    with user_errors():
        extracted = features(image_path, model=model, layer=int(layer) or -1, on_load=load_progress(progress))
    return [str(path) for path in save_features(extracted, output_folder())]


def _explain(
    image_path, model, method, head_fusion, discard, layer, head, target, cmap, alpha, progress
) -> Explanation:
    require_image(image_path)
    with user_errors():
        return explain(
            image_path,
            model=model,
            method=method,
            head_fusion=head_fusion,
            discard_ratio=float(discard),
            layer=int(layer) or None,
            head=int(head) or None,
            target=target or None,
            alpha=float(alpha),
            cmap=cmap,
            on_load=load_progress(progress),
        )


def _label_value(explanation: Explanation) -> dict[str, float] | str:
    if not explanation.predictions:
        return NO_HEAD
    return {p.label: p.score for p in explanation.predictions}
