"""The Inside page: masked autoencoding, self-supervised features and token merging, each on the user's own photo."""

from __future__ import annotations

import math

import pandas as pd
import streamlit as st
from PIL import Image

from core import (
    DEFAULT_FEATURE_MODEL,
    DEFAULT_MAE,
    FeaturePCA,
    MaeReconstruction,
    MergePoint,
    MergeResult,
    agreement_curve,
    example_images,
    feature_pca,
    patch_similarity,
    reconstruct,
    token_merging,
)
from ui.shared.inside import (
    BACKGROUND_THRESHOLD,
    CLEAR_BUTTON,
    CLICK_MODE_INFO,
    CLICK_MODE_LABEL,
    CURVE_BUTTON,
    CURVE_COLUMNS,
    CURVE_RS,
    ERROR_TITLE,
    FEATURE_LAYER,
    FEATURE_MODELS,
    FEATURES_BUTTON,
    FEATURES_INTRO,
    FEATURES_TITLE,
    INSIDE_INTRO,
    INSIDE_TITLE,
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
    SUPERVISED_FEATURE_MODEL,
    agreement_line,
    curve_figure,
    curve_line,
    curve_rows,
    error_picture,
    explained_variance_line,
    feature_layer_value,
    mae_loss_line,
    merge_pictures,
    patch_at_fraction,
    similarity_line,
    similarity_picture,
    toggled,
    tokens_line,
    weights_note,
)
from ui.shared.status import run_line
from ui.shared.texts import EXPLAINER_INFO, MODEL_LABEL, NO_IMAGE
from ui.shared.widgets import EXPLAINER_CHOICES
from ui.streamlit_pages.common import (
    Photo,
    default_classifier,
    forget_when_changed,
    load_notice,
    model_box,
    photo_input,
    predictions_table,
    shown_errors,
    slider,
)
from ui.streamlit_pages.patch_grid import PATCH_SELECTION, patch_grid_chart

TILE_WIDTH = 120
PICTURE_WIDTH = 320  # a similarity map: big enough to see each patch, two side by side on a laptop

# ---- session-state keys -------------------------------------------------------------------------------------------
MAE_MODEL_KEY = "inside_mae_model"
MAE_RATIO_KEY = "inside_mae_ratio"
MAE_SEED_KEY = "inside_mae_seed"
MAE_ROW_KEY = "inside_mae_row"
MAE_COL_KEY = "inside_mae_col"
MAE_CHART_KEY = "inside_mae_chart"
MAE_CLICKED = "inside_mae_clicked"  # the patch numbers the user chose to hide (row by row from 0), sorted
MAE_RESULT = "inside_mae_result"
FEATURE_MODEL_KEYS = ("inside_features_model_left", "inside_features_model_right")
FEATURE_LAYER_KEY = "inside_features_layer"
FEATURE_THRESHOLD_KEY = "inside_features_threshold"
FEATURE_ROW_KEY = "inside_features_row"
FEATURE_COL_KEY = "inside_features_col"
FEATURE_CHART_KEY = "inside_features_chart"
FEATURE_RESULTS = "inside_features_results"  # (left, right) FeaturePCA, either None when that model failed
MERGE_MODEL_KEY = "inside_merge_model"
MERGE_R_KEY = "inside_merge_r"
MERGE_RESULT = "inside_merge_result"
CURVE_RESULT = "inside_merge_curve"  # (points, how many photos)

ADD_BUTTON = "Hide / show this patch"
SIMILARITY_HINT = (
    "Click a patch on the left model's colours (or type its row and column): each model's map shows which patches "
    "it finds alike, for the patch at the same place of the photo (their grids may differ). No model runs again."
)
CLICK_HINT = (
    f"{CLICK_MODE_INFO[:1].upper()}{CLICK_MODE_INFO[1:]}. Or type a patch's row and column and press {ADD_BUTTON}; "
    f"{CLEAR_BUTTON} goes back to the mask ratio."
)


# ---- shared bits: a clickable patch grid ---------------------------------------------------------------------------


def clickable_grid(
    picture: Image.Image,
    grid_size: tuple[int, int],
    chosen: set[tuple[int, int]] | None,
    *,
    keys: tuple[str, str, str],
) -> tuple[int | None, int | None, bool]:
    """The patch chart and row/column boxes under it; a new click on the chart fills the boxes (before they are
    drawn, as Streamlit asks). `chosen` are the patches outlined, None for the boxes' own. Returns the boxes'
    (row, col), from 1, or None where one is empty, and whether they come from a click on this run."""
    chart_key, row_key, col_key = keys
    rows, columns = grid_size
    state = st.session_state.get(chart_key)
    points = list(state.get("selection", {}).get(PATCH_SELECTION, [])) if state else []
    seen_key = f"{chart_key}_seen"
    clicked_now = bool(points) and points != st.session_state.get(seen_key)
    if clicked_now:
        st.session_state[seen_key] = points
        st.session_state[row_key] = int(points[0]["row"])
        st.session_state[col_key] = int(points[0]["col"])
    for key, count in ((row_key, rows), (col_key, columns)):
        value = st.session_state.get(key)
        if value is not None and not 1 <= value <= count:  # chosen on another grid: dropped, not kept out of range
            st.session_state[key] = None
    if chosen is None:
        chosen = {(st.session_state.get(row_key), st.session_state.get(col_key))}
    st.altair_chart(
        patch_grid_chart(picture, grid_size, chosen, outline="#ff2828"),  # as `outlined` draws
        on_select="rerun",
        selection_mode=PATCH_SELECTION,
        key=chart_key,
        theme=None,
        width="content",
    )
    row_column, col_column = st.columns(2)
    row = row_column.number_input("Row (from the top, 1 first)", 1, rows, value=None, step=1, key=row_key)
    col = col_column.number_input("Column (from the left, 1 first)", 1, columns, value=None, step=1, key=col_key)
    return (None if row is None else int(row)), (None if col is None else int(col)), clicked_now


def random_weights_warning(model: str) -> None:
    """The shared note, when the model's weights may be random (a local folder that is not a training run)."""
    note = weights_note(model)
    if note:
        st.warning(note)


# ---- 1. masked autoencoding ----------------------------------------------------------------------------------------


def reconstructed(
    photo: Photo, model: str, ratio: float, seed: int, hidden: tuple[int, ...] | None
) -> MaeReconstruction:
    with load_notice() as on_load, st.spinner("Hiding patches and painting them back ..."):
        return reconstruct(photo.data, model, mask_ratio=ratio, seed=seed, hidden=hidden, on_load=on_load)


def mae_view() -> None:
    st.markdown(MAE_INTRO)
    controls, photo_column = st.columns([1, 1], gap="large")
    with controls:
        model = model_box(
            MODEL_LABEL,
            MAE_MODELS,
            MAE_MODEL_KEY,
            DEFAULT_MAE,
            help="A ViTMAEForPreTraining model: a Hub id or a folder.",
        )
        random_weights_warning(model)
        ratio_column, seed_column = st.columns(2)
        ratio = slider(MASK_RATIO, MAE_RATIO_KEY, ratio_column)
        seed = slider(SEED, MAE_SEED_KEY, seed_column)
    with photo_column:
        photo = photo_input("inside_mae")
    forget_when_changed([MAE_RESULT, MAE_CLICKED], model, photo, marker="inside_mae_made_from")

    def run(hidden: tuple[int, ...]) -> bool:
        """Reconstruct and keep the result; False (with the message shown) when the photo or the model is wrong."""
        if photo is None:
            st.error(NO_IMAGE)
            return False
        made = shown_errors(lambda: reconstructed(photo, model, float(ratio), int(seed), hidden or None))
        if made is not None:
            st.session_state[MAE_RESULT] = made
        return made is not None

    clicked: tuple[int, ...] = st.session_state.get(MAE_CLICKED, ())
    with controls:
        if st.button(MAE_BUTTON, type="primary", key="inside_mae_run"):
            run(clicked)
    result: MaeReconstruction | None = st.session_state.get(MAE_RESULT)
    if result is None:
        st.caption("The photo, what the encoder saw, what the decoder painted and the error appear here.")
        return
    pictures = (result.original, result.masked, result.reconstruction, result.pasted)
    for column, picture, title in zip(st.columns(4), pictures, MAE_PICTURE_TITLES):
        column.image(picture, caption=title, width="stretch")
    error_column, line_column = st.columns([1, 3])
    error_column.image(error_picture(result), caption=ERROR_TITLE, width="stretch")
    with line_column:
        st.markdown(mae_loss_line(result))
        st.caption(run_line(result.run))
    with st.expander(CLICK_MODE_LABEL, expanded=bool(clicked)):
        st.caption(CLICK_HINT)
        columns = result.grid_size[1]
        chosen = {(number // columns + 1, number % columns + 1) for number in clicked}
        row, col, clicked_now = clickable_grid(
            result.masked, result.grid_size, chosen, keys=(MAE_CHART_KEY, MAE_ROW_KEY, MAE_COL_KEY)
        )
        add_column, clear_column = st.columns(2)
        pressed = add_column.button(ADD_BUTTON, key="inside_mae_add", disabled=row is None or col is None)
        if (pressed or clicked_now) and row is not None and col is not None:  # a click on the picture acts at once
            clicked = toggled(clicked, (row - 1) * columns + (col - 1))
            st.session_state[MAE_CLICKED] = clicked
            if run(clicked):
                st.rerun()  # the pictures above are the last mask's: draw them again with this one
        if clear_column.button(CLEAR_BUTTON, key="inside_mae_clear", disabled=not clicked):
            st.session_state[MAE_CLICKED] = ()
            if run(()):
                st.rerun()
        if clicked:
            st.caption("Hidden by hand: " + ", ".join(f"row {n // columns + 1} col {n % columns + 1}" for n in clicked))


# ---- 2. self-supervised features -----------------------------------------------------------------------------------


def features_of(photo: Photo, model: str, layer: int, threshold: float) -> FeaturePCA:
    with load_notice() as on_load, st.spinner(f"Features of {model} ..."):
        return feature_pca(photo.data, model, layer=layer, background_threshold=threshold, on_load=on_load)


def features_view() -> None:
    st.markdown(FEATURES_INTRO)
    controls, photo_column = st.columns([1, 1], gap="large")
    with controls:
        models = []
        for column, key, default, label in zip(
            st.columns(2),
            FEATURE_MODEL_KEYS,
            (DEFAULT_FEATURE_MODEL, SUPERVISED_FEATURE_MODEL),
            ("Left model", "Right model"),
        ):
            with column:
                models.append(model_box(label, FEATURE_MODELS, key, default, help="Any ViT-family model."))
                random_weights_warning(models[-1])
        layer_column, threshold_column = st.columns(2)
        layer = slider(FEATURE_LAYER, FEATURE_LAYER_KEY, layer_column)
        threshold = slider(BACKGROUND_THRESHOLD, FEATURE_THRESHOLD_KEY, threshold_column)
    with photo_column:
        photo = photo_input("inside_features")
    forget_when_changed([FEATURE_RESULTS], models, photo, marker="inside_features_made_from")
    with controls:
        if st.button(FEATURES_BUTTON, type="primary", key="inside_features_run"):
            if photo is None:
                st.error(NO_IMAGE)
            else:
                engine_layer = feature_layer_value(layer)
                pair = tuple(
                    shown_errors(lambda model=model: features_of(photo, model, engine_layer, float(threshold)))
                    for model in models
                )
                st.session_state[FEATURE_RESULTS] = pair if any(pair) else None
    pair: tuple[FeaturePCA | None, ...] | None = st.session_state.get(FEATURE_RESULTS)
    if pair is None:
        st.caption("Each model's features as colours, and the object they find, appear here.")
        return
    for column, result in zip(st.columns(2), pair):
        if result is None:
            continue
        with column:
            picture_column, overlay_column = st.columns(2)
            picture_column.image(result.picture, caption="Features as colours", width="stretch")
            overlay_column.image(result.overlay, caption="Over the photo", width="stretch")
            st.markdown(explained_variance_line(result))
            st.caption(run_line(result.run))
    similarity_view([result for result in pair if result is not None])


def similarity_view(results: list[FeaturePCA]) -> None:
    """Pick a patch on the first model's picture: every model's similarity map for the patch at the same place of
    the photo (their grids may differ), from the features already kept: no forward pass."""
    first = results[0]
    with st.expander("Which patches look alike", expanded=True):
        st.caption(SIMILARITY_HINT)
        row, col, _ = clickable_grid(
            first.picture, first.grid_size, None, keys=(FEATURE_CHART_KEY, FEATURE_ROW_KEY, FEATURE_COL_KEY)
        )
        if row is None or col is None:
            return
        fraction = ((col - 0.5) / first.grid_size[1], (row - 0.5) / first.grid_size[0])  # the patch's centre
        picks = []
        for column, result in zip(st.columns(len(results)), results):
            there = patch_at_fraction(*fraction, result.grid_size)
            similarity = patch_similarity(result.features, *there)
            column.image(similarity_picture(result, similarity, *there), caption=result.model, width=PICTURE_WIDTH)
            picks.append((result.model, there, result.grid_size))
        st.markdown(similarity_line(picks))


# ---- 3. token merging --------------------------------------------------------------------------------------------


def merged(photo: Photo, model: str, r: int) -> MergeResult:
    with load_notice() as on_load, st.spinner("Merging tokens ..."):
        result = token_merging(photo.data, model, r=r, on_load=on_load)
    assert isinstance(result, MergeResult)  # one photo in, one result out
    return result


def measured_curve(model: str) -> tuple[list[MergePoint], int]:
    photos = example_images()
    with load_notice() as on_load, st.spinner(f"Measuring r = {', '.join(map(str, CURVE_RS))} ..."):
        return agreement_curve(photos, model, rs=CURVE_RS, on_load=on_load), len(photos)


def merging_view() -> None:
    st.markdown(MERGING_INTRO)
    controls, photo_column = st.columns([1, 1], gap="large")
    with controls:
        model = model_box(
            MODEL_LABEL, EXPLAINER_CHOICES, MERGE_MODEL_KEY, default_classifier(), help=EXPLAINER_INFO, with_runs=True
        )
        random_weights_warning(model)
        r = slider(MERGE_R, MERGE_R_KEY)
    with photo_column:
        photo = photo_input("inside_merge")
    forget_when_changed([MERGE_RESULT], model, photo, marker="inside_merge_made_from")
    forget_when_changed([CURVE_RESULT], model, marker="inside_curve_made_from")  # the curve is over the examples
    with controls:
        if st.button(MERGING_BUTTON, type="primary", key="inside_merge_run"):
            if photo is None:
                st.error(NO_IMAGE)
            else:
                result = shown_errors(lambda: merged(photo, model, int(r)))
                if result is not None:
                    st.session_state[MERGE_RESULT] = result
    result: MergeResult | None = st.session_state.get(MERGE_RESULT)
    if result is None:
        st.caption("Which patches merged at each layer, and the merged and full model's labels, appear here.")
    else:
        show_merge(result)
    st.subheader("Speed against agreement")
    st.caption(
        "Every r from 0 to 16 on the example photos: how often the merged model keeps the full model's top label."
    )
    if st.button(CURVE_BUTTON, key="inside_curve_run"):
        curve = shown_errors(lambda: measured_curve(model))
        if curve is not None:
            st.session_state[CURVE_RESULT] = curve
    if CURVE_RESULT in st.session_state:
        points, photos = st.session_state[CURVE_RESULT]
        st.markdown(curve_line(points, photos))
        figure_column, table_column = st.columns([3, 2])
        figure_column.pyplot(curve_figure(points), clear_figure=False)
        table_column.dataframe(
            pd.DataFrame(curve_rows(points), columns=list(CURVE_COLUMNS)), hide_index=True, key="inside_curve_table"
        )


def show_merge(result: MergeResult) -> None:
    st.markdown(tokens_line(result))
    every = max(1, math.ceil(len(result.source_maps) / 12))  # a 12-layer strip at most: a 24-layer model every 2nd
    tiles = merge_pictures(result, every=every)
    st.image([picture for picture, _ in tiles], caption=[caption for _, caption in tiles], width=TILE_WIDTH)
    st.markdown(agreement_line(result))
    merged_column, full_column = st.columns(2)
    with merged_column:
        st.markdown(f"**Merged (r = {result.r})**")
        predictions_table(result.predictions, key="inside_merge_merged")
    with full_column:
        st.markdown("**Full model**")
        predictions_table(result.full_predictions, key="inside_merge_full")
    st.caption(run_line(result.run))


# ---- the page --------------------------------------------------------------------------------------------------------


def render() -> None:
    st.header(INSIDE_TITLE)
    st.markdown(INSIDE_INTRO)
    mae_tab, features_tab, merging_tab = st.tabs([MAE_TITLE, FEATURES_TITLE, MERGING_TITLE])
    with mae_tab:
        mae_view()
    with features_tab:
        features_view()
    with merging_tab:
        merging_view()


if __name__ == "__main__":
    render()
