"""The Inside tab: masked autoencoding, self-supervised features and token merging, each on the visitor's photo."""

from __future__ import annotations

import gradio as gr

from core import (
    DEFAULT_FEATURE_MODEL,
    DEFAULT_MAE,
    FeaturePCA,
    MaeReconstruction,
    agreement_curve,
    attention_shape,
    example_images,
    feature_pca,
    patch_similarity,
    reconstruct,
    token_merging,
)
from ui.components import ImagePath
from ui.gradio_common import load_progress, require_image, slider, user_errors
from ui.shared.inside import (
    BACKGROUND_THRESHOLD,
    CLEAR_BUTTON,
    CLICK_MODE_INFO,
    CLICK_MODE_LABEL,
    CURVE_BUTTON,
    CURVE_COLUMNS,
    CURVE_INTRO,
    CURVE_RS,
    ERROR_TITLE,
    FEATURE_LAYER,
    FEATURE_MODELS,
    FEATURES_BUTTON,
    FEATURES_INTRO,
    FEATURES_TITLE,
    HIDDEN_LABEL,
    INSIDE_INTRO,
    MAE_BUTTON,
    MAE_INTRO,
    MAE_MODELS,
    MAE_PICTURE_TITLES,
    MAE_TITLE,
    MASK_RATIO,
    MERGE_R,
    MERGING_BUTTON,
    MERGING_INTRO,
    MERGING_TITLE,
    SEED,
    SIMILARITY_WAITING,
    SUPERVISED_FEATURE_MODEL,
    agreement_line,
    curve_figure,
    curve_line,
    curve_rows,
    enlarged,
    error_picture,
    explained_variance_line,
    feature_layer_value,
    mae_loss_line,
    merge_pictures,
    parse_patch_numbers,
    patch_at_fraction,
    patch_number_at,
    patch_numbers_text,
    predictions_scores,
    similarity_line,
    similarity_picture,
    toggled,
    tokens_line,
    weights_note,
)
from ui.shared.texts import MODEL_LABEL, PHOTO_LABEL
from ui.shared.widgets import fitted, in_range


def inside_tab(classifier: str, classifier_choices: list) -> None:
    """The three views, each with its own photo, model and results."""
    gr.Markdown(INSIDE_INTRO)
    with gr.Tabs(overflow_behavior="wrap"):  # on a phone all three show, not two and a "…" menu
        with gr.Tab(MAE_TITLE, id="inside-mae"):
            mae_view()
        with gr.Tab(FEATURES_TITLE, id="inside-features"):
            features_view()
        with gr.Tab(MERGING_TITLE, id="inside-merging"):
            merging_view(classifier, classifier_choices)


def photo_box(elem_id: str) -> ImagePath:
    """A photo input with the example photos under it, as the other tabs have."""
    image = ImagePath(
        type="filepath",
        image_mode=None,
        sources=["upload", "clipboard", "webcam"],
        label=PHOTO_LABEL,
        height=260,
        elem_id=elem_id,
    )
    gr.Examples(
        [[str(path)] for path in example_images()],
        inputs=[image],
        label="Example photos",
        elem_id=f"{elem_id}-examples",
    )
    return image


def note_update(*models: str) -> dict:
    """The weights warning for the first of the models that needs one; hidden when none does."""
    note = next((weights_note(model or "") for model in models if weights_note(model or "")), "")
    return gr.update(value=note, visible=bool(note))


def picture(label: str, elem_id: str, **options) -> gr.Image:
    return gr.Image(type="pil", format="png", label=label, buttons=["download"], elem_id=elem_id, **options)


# ---- 1. masked autoencoding ------------------------------------------------------------------------------------


def mae_view() -> None:
    gr.Markdown(MAE_INTRO)
    note = gr.Markdown(visible=bool(weights_note(DEFAULT_MAE)), value=weights_note(DEFAULT_MAE), elem_id="mae-note")
    with gr.Row(equal_height=False):
        with gr.Column(scale=1, min_width=280):
            model = gr.Dropdown(
                list(MAE_MODELS), value=DEFAULT_MAE, allow_custom_value=True, label=MODEL_LABEL, elem_id="mae-model"
            )
            with gr.Row():
                ratio = slider(MASK_RATIO)
                seed = gr.Number(SEED.default, precision=0, minimum=0, label=SEED.label, info=SEED.info)
            click_mode = gr.Checkbox(False, label=CLICK_MODE_LABEL, info=CLICK_MODE_INFO, elem_id="mae-click-mode")
            hidden = gr.Textbox("", label=HIDDEN_LABEL, elem_id="mae-hidden")
            with gr.Row():
                run = gr.Button(MAE_BUTTON, variant="primary", scale=2, min_width=160, elem_id="mae-run")
                clear = gr.Button(CLEAR_BUTTON, size="md", scale=1, min_width=120, elem_id="mae-clear")
        with gr.Column(scale=1, min_width=280):
            image = photo_box("mae-photo")
    kept = gr.State(None)
    with gr.Row(equal_height=False, elem_id="mae-pictures"):
        pictures = [
            picture(title, f"mae-{key}", min_width=150)  # two a row on a phone
            for title, key in zip(MAE_PICTURE_TITLES, ("original", "masked", "reconstruction", "pasted"))
        ]
    with gr.Row(equal_height=False):
        with gr.Column(scale=1, min_width=200):
            error = picture(ERROR_TITLE, "mae-error")
        with gr.Column(scale=2, min_width=260):
            loss = gr.Markdown(elem_id="mae-loss")
    outputs = [kept, *pictures, error, loss]
    inputs = [image, model, ratio, seed, hidden]
    run.click(run_mae, inputs=inputs, outputs=outputs, api_name="mae")
    pictures[1].select(
        click_mae,
        inputs=[kept, click_mode, *inputs],
        outputs=[hidden, *outputs],
        api_visibility="undocumented",  # it needs the click's coordinates, which only the page sends
    )
    clear.click(clear_clicks, inputs=[kept, *inputs[:4]], outputs=[hidden, *outputs], api_visibility="undocumented")
    model.change(note_update, inputs=[model], outputs=[note], api_visibility="undocumented", queue=False)
    gr.on(
        [model.change, image.change],
        lambda: (None, None, None, None, None, None, ""),
        outputs=outputs,
        api_visibility="undocumented",
        queue=False,
    )


def run_mae(image_path, model, ratio, seed, hidden_text, progress=gr.Progress(track_tqdm=True)):
    """The kept result, the four pictures, the error map and the loss line."""
    require_image(image_path)
    with user_errors():
        hidden = parse_patch_numbers(hidden_text)
        result = reconstruct(
            image_path,
            model=model,
            mask_ratio=float(ratio),
            seed=int(seed or 0),
            hidden=hidden,
            on_load=load_progress(progress),
        )
    return mae_outputs(result)


def mae_outputs(result: MaeReconstruction) -> tuple:
    return (
        result,
        enlarged(result.original),
        enlarged(result.masked),
        enlarged(result.reconstruction),
        enlarged(result.pasted),
        enlarged(error_picture(result)),
        mae_loss_line(result),
    )


def click_mae(
    kept: MaeReconstruction | None, click_mode, image_path, model, ratio, seed, hidden_text, evt: gr.SelectData
):
    """In "mask what I click" mode, the clicked patch joins the hidden set (or leaves it) and the model runs again."""
    if not click_mode or kept is None or not isinstance(evt.index, (list, tuple)) or len(evt.index) != 2:
        if kept is not None and not click_mode:
            gr.Info(f"Tick “{CLICK_MODE_LABEL}” to hide the patches you click.")
        return tuple(gr.skip() for _ in range(8))
    with user_errors():
        current = parse_patch_numbers(hidden_text) or ()
    number = patch_number_at(evt.index[0], evt.index[1], enlarged(kept.masked).size, kept.grid_size)
    text = patch_numbers_text(toggled(current, number))
    return (text, *run_mae(image_path, model, ratio, seed, text))


def clear_clicks(kept: MaeReconstruction | None, image_path, model, ratio, seed):
    """The clicks forgotten; the photo masked by the ratio again when there is a result on screen."""
    if kept is None or not image_path:
        return ("", *(gr.skip() for _ in range(7)))
    return ("", *run_mae(image_path, model, ratio, seed, ""))


# ---- 2. self-supervised features -------------------------------------------------------------------------------


def features_view() -> None:
    gr.Markdown(FEATURES_INTRO)
    note = gr.Markdown(visible=False, elem_id="features-note")
    with gr.Row(equal_height=False):
        with gr.Column(scale=1, min_width=280):
            with gr.Row():
                model_a = gr.Dropdown(
                    list(FEATURE_MODELS),
                    value=DEFAULT_FEATURE_MODEL,
                    allow_custom_value=True,
                    label="Model (left)",
                    min_width=200,
                    elem_id="features-model-a",
                )
                model_b = gr.Dropdown(
                    list(FEATURE_MODELS),
                    value=SUPERVISED_FEATURE_MODEL,
                    allow_custom_value=True,
                    label="Model (right, e.g. trained with labels)",
                    min_width=200,
                    elem_id="features-model-b",
                )
            with gr.Row():
                layer = slider(feature_layer_spec(DEFAULT_FEATURE_MODEL, SUPERVISED_FEATURE_MODEL))
                threshold = slider(BACKGROUND_THRESHOLD)
            run = gr.Button(FEATURES_BUTTON, variant="primary", elem_id="features-run")
        with gr.Column(scale=1, min_width=280):
            image = photo_box("features-photo")
    kept_a, kept_b = gr.State(None), gr.State(None)
    sides = []
    with gr.Row(equal_height=False):
        for side in ("a", "b"):
            with gr.Column(min_width=280):
                with gr.Row():
                    colours = picture("PCA colours", f"features-{side}-picture", min_width=140)
                    blended = picture("Over the photo", f"features-{side}-overlay", min_width=140)
                line = gr.Markdown(elem_id=f"features-{side}-line")
                similar = picture("Patches alike (click a picture above)", f"features-{side}-similarity")
                sides.append((colours, blended, line, similar))
    with gr.Row():
        row = gr.Number(None, precision=0, minimum=1, label="Patch row (left model's grid)", min_width=120)
        col = gr.Number(None, precision=0, minimum=1, label="Patch column", min_width=120)
    similarity_text = gr.Markdown(SIMILARITY_WAITING, elem_id="features-similarity-line")
    (pic_a, over_a, line_a, sim_a), (pic_b, over_b, line_b, sim_b) = sides
    outputs = [kept_a, kept_b, pic_a, over_a, line_a, pic_b, over_b, line_b, sim_a, sim_b, similarity_text]
    run.click(run_features, inputs=[image, model_a, model_b, layer, threshold], outputs=outputs, api_name="feature_pca")
    similarity_outputs = [sim_a, sim_b, similarity_text]
    for handler, shown in ((click_left, pic_a), (click_left, over_a), (click_right, pic_b), (click_right, over_b)):
        shown.select(
            handler,
            inputs=[kept_a, kept_b],
            outputs=[row, col, *similarity_outputs],
            api_visibility="undocumented",  # it needs the click's coordinates, which only the page sends
        )
    gr.on(
        [row.submit, col.submit],
        show_similarity,
        inputs=[kept_a, kept_b, row, col],
        outputs=similarity_outputs,
        api_name="feature_similarity",
    )
    gr.on(
        [model_a.change, model_b.change],
        fit_features,
        inputs=[model_a, model_b, layer],
        outputs=[layer, note],
        api_visibility="undocumented",
        queue=False,
    )
    gr.on(
        [model_a.change, model_b.change, image.change],
        lambda: (None, None, None, None, "", None, None, "", None, None, SIMILARITY_WAITING),
        outputs=outputs,
        api_visibility="undocumented",
        queue=False,
    )


def feature_layer_spec(*models: str):
    """The layer slider bounded by the shallower model's layers, when both configs are on this machine."""
    shapes = [attention_shape(model or "") for model in models]
    known = [shape.num_layers for shape in shapes if shape is not None]
    return fitted(FEATURE_LAYER, min(known) if len(known) == len(models) else None)


def fit_features(model_a, model_b, layer):
    spec = feature_layer_spec(model_a, model_b)
    return gr.update(maximum=spec.maximum, value=in_range(layer, spec)), note_update(model_a, model_b)


def run_features(image_path, model_a, model_b, layer, threshold, progress=gr.Progress(track_tqdm=True)):
    """Both models' PCA pictures and lines, kept for clicks; the similarity maps emptied."""
    require_image(image_path)
    results = []
    with user_errors():
        for model in (model_a, model_b):
            results.append(
                feature_pca(
                    image_path,
                    model=model,
                    layer=feature_layer_value(layer),
                    background_threshold=float(threshold),
                    on_load=load_progress(progress),
                )
            )
    first, second = results
    return (
        first,
        second,
        enlarged(first.picture),
        enlarged(first.overlay),
        explained_variance_line(first),
        enlarged(second.picture),
        enlarged(second.overlay),
        explained_variance_line(second),
        None,
        None,
        SIMILARITY_WAITING,
    )


def click_left(kept_a: FeaturePCA | None, kept_b: FeaturePCA | None, evt: gr.SelectData):
    """A click on the left model's pictures: that patch, and both similarity maps (no forward pass)."""
    return clicked_similarity(kept_a, kept_b, kept_a, evt)


def click_right(kept_a: FeaturePCA | None, kept_b: FeaturePCA | None, evt: gr.SelectData):
    """A click on the right model's pictures: the same place on the left grid, and both similarity maps."""
    return clicked_similarity(kept_a, kept_b, kept_b, evt)


def clicked_similarity(kept_a, kept_b, clicked: FeaturePCA | None, evt: gr.SelectData):
    if kept_a is None or kept_b is None or clicked is None:
        gr.Warning("Press “Show the features” first: a click picks a patch of that run.")
        return tuple(gr.skip() for _ in range(5))
    if not isinstance(evt.index, (list, tuple)) or len(evt.index) != 2:
        return tuple(gr.skip() for _ in range(5))
    width, height = enlarged(clicked.picture).size  # both of a side's pictures are its model's input size, enlarged
    row, col = patch_at_fraction(evt.index[0] / width, evt.index[1] / height, kept_a.grid_size)
    return (row + 1, col + 1, *show_similarity(kept_a, kept_b, row + 1, col + 1))


def show_similarity(kept_a: FeaturePCA | None, kept_b: FeaturePCA | None, row, col):
    """Patch similarity for the patch at (row, col) of the left model's grid (1-based) in both models; the right
    model's patch is the one at the same place on its own grid."""
    if kept_a is None or kept_b is None:
        raise gr.Error("Press “Show the features” first: the similarity maps use the features of that run.")
    if row is None or col is None:
        return tuple(gr.skip() for _ in range(3))
    rows, columns = kept_a.grid_size
    if not (1 <= int(row) <= rows and 1 <= int(col) <= columns):
        raise gr.Error(
            f"Patch row {row}, column {col} is off the left model's grid: rows 1 to {rows}, columns 1 to {columns}."
        )
    fx, fy = (int(col) - 0.5) / columns, (int(row) - 0.5) / rows
    pictures, picks = [], []
    with user_errors():
        for kept in (kept_a, kept_b):
            r, c = patch_at_fraction(fx, fy, kept.grid_size)
            similarity = patch_similarity(kept.features, r, c)
            pictures.append(enlarged(similarity_picture(kept, similarity, r, c)))
            picks.append((kept.model, (r, c), kept.grid_size))
    return (*pictures, similarity_line(picks))


# ---- 3. token merging ------------------------------------------------------------------------------------------


def merging_view(classifier: str, choices: list) -> None:
    gr.Markdown(MERGING_INTRO)
    note = gr.Markdown(value=weights_note(classifier), visible=bool(weights_note(classifier)), elem_id="merging-note")
    with gr.Row(equal_height=False):
        with gr.Column(scale=1, min_width=280):
            model = gr.Dropdown(
                choices, value=classifier, allow_custom_value=True, label=MODEL_LABEL, elem_id="merging-model"
            )
            r = slider(MERGE_R)
            run = gr.Button(MERGING_BUTTON, variant="primary", elem_id="merging-run")
        with gr.Column(scale=1, min_width=280):
            image = photo_box("merging-photo")
    tokens = gr.Markdown(elem_id="merging-tokens")
    strip = gr.Gallery(
        label="Which patches each token holds, after each layer",
        columns=6,
        height="auto",
        object_fit="contain",
        allow_preview=True,
        elem_id="merging-strip",
    )
    agreement = gr.Markdown(elem_id="merging-agreement")
    with gr.Row():
        merged = gr.Label(label="Merged model's top 5", elem_id="merging-merged", min_width=200)
        full = gr.Label(label="Full model's top 5", elem_id="merging-full", min_width=200)
    gr.Markdown(CURVE_INTRO)
    curve_run = gr.Button(CURVE_BUTTON, elem_id="merging-curve-run")
    curve_line_box = gr.Markdown(elem_id="merging-curve-line")
    with gr.Row(equal_height=False):
        plot = gr.Plot(show_label=False, elem_id="merging-curve-plot", min_width=300)  # its axes say what it is
        table = gr.Dataframe(
            headers=list(CURVE_COLUMNS),
            label="Measured",
            interactive=False,
            elem_id="merging-curve-table",
            min_width=260,
        )
    single = [strip, tokens, merged, full, agreement]
    curve = [plot, table, curve_line_box]
    run.click(run_merging, inputs=[image, model, r], outputs=single, api_name="token_merging")
    curve_run.click(run_curve, inputs=[model], outputs=curve, api_name="merging_curve")
    model.change(note_update, inputs=[model], outputs=[note], api_visibility="undocumented", queue=False)
    model.change(
        lambda: (None, "", None, None, "", None, None, ""),
        outputs=single + curve,
        api_visibility="undocumented",
        queue=False,
    )
    image.change(lambda: (None, "", None, None, ""), outputs=single, api_visibility="undocumented", queue=False)


def run_merging(image_path, model, r, progress=gr.Progress(track_tqdm=True)):
    """The per-layer merge pictures, the tokens line, both top-5s and whether they agree."""
    require_image(image_path)
    with user_errors():
        result = token_merging(image_path, model=model, r=int(r), on_load=load_progress(progress))
    return (
        merge_pictures(result),
        tokens_line(result),
        predictions_scores(result.predictions),
        predictions_scores(result.full_predictions),
        agreement_line(result),
    )


def run_curve(model, progress=gr.Progress(track_tqdm=True)):
    """Top-1 agreement and measured speed for each r over the example photos: figure, table and a sentence."""
    photos = [str(path) for path in example_images()]
    with user_errors():
        points = agreement_curve(photos, model=model, rs=CURVE_RS, on_load=load_progress(progress))
    return curve_figure(points), curve_rows(points), curve_line(points, len(photos))
