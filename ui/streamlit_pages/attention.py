"""The Attention page: where a ViT looks, layer by layer and head by head, and its features as .npy.

The maps are rollout, gradient rollout or raw attention; a second model, method or layer can be shown side by side.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any

import streamlit as st

from core import HEAD_FUSIONS, Explanation, explain, features, patch_attention, patch_grid_image, redraw
from ui.shared.attention import (
    PATCH_BY_LABEL,
    PATCH_COL_LABEL,
    PATCH_HINT,
    PATCH_ROW_LABEL,
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
    ATTENTION_TITLE,
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
    NO_IMAGE,
    OVERLAY_LABEL,
    PATCH_GRID_LABEL,
    PREDICTIONS_LABEL,
    SIDE_BY_SIDE_NOTE,
    SIDE_BY_SIDE_TITLE,
    SIDES,
    TARGET_INFO,
    TARGET_LABEL,
    VIT_SEES_TITLE,
)
from ui.shared.widgets import DISCARD_RATIO, EXPLAINER_CHOICES, OPACITY, Slider, in_range
from ui.streamlit_pages.common import (
    ATTENTION_MODEL_KEY,
    Photo,
    default_classifier,
    load_notice,
    model_box,
    photo_input,
    png_bytes,
    predictions_table,
    shown_errors,
    slider,
    teacher_note,
    work_folder,
)
from ui.streamlit_pages.patch_grid import PATCH_SELECTION, patch_grid_chart

EXPLAINED = "attention_result"
EXPLAINED_MODEL = "attention_result_model"  # the model box's text when it ran (Explanation.model is resolved)
EXPLAINED_PHOTO = "attention_result_photo"  # the photo it ran on: its name and a hash of its bytes
PATCH_CHART_KEY = "attention_patch_chart"
PATCH_ROW_KEY = "attention_patch_row"
PATCH_COL_KEY = "attention_patch_col"
PATCH_CLICK_SEEN = "attention_patch_click_seen"  # the chart's last click already copied into the row/column boxes
COMPARED = "attention_compared"
FEATURE_FILES = "attention_features"
METHOD_NAMES = {value: label for label, value in METHOD_CHOICES}
TILE_WIDTH = 120
STALE_RESULTS = "The model or the photo changed since the last Explain: press Explain to see where this model looks."


@dataclass(frozen=True)
class MapSettings:
    """The controls at the top of the page, as explain() takes them (0 on a slider means 'all' / 'the last')."""

    model: str
    method: str
    head_fusion: str
    discard_ratio: float
    layer: int
    head: int
    target: str | None
    cmap: str
    alpha: float


def explained(photo: Photo, settings: MapSettings) -> Explanation:
    with load_notice() as on_load, st.spinner("Explaining ..."):
        return explain(
            photo.data,
            model=settings.model,
            method=settings.method,
            head_fusion=settings.head_fusion,
            discard_ratio=settings.discard_ratio,
            layer=settings.layer or None,
            head=settings.head or None,
            target=settings.target or None,
            alpha=settings.alpha,
            cmap=settings.cmap,
            on_load=on_load,
        )


def redrawn(explanation: Explanation, settings: MapSettings) -> Explanation:
    """The kept explanation drawn with the controls as they are now, from the attentions its forward pass kept (no
    model runs), so moving a control redraws at once. Another model's explanation stays as it was drawn: its
    attentions are not the chosen model's. What cannot be redrawn (gradient rollout needs Explain's backward pass)
    is said, and the map stays."""
    if st.session_state.get(EXPLAINED_MODEL) != settings.model:
        return explanation
    try:
        return redraw(
            explanation,
            method=settings.method,
            head_fusion=settings.head_fusion,
            discard_ratio=settings.discard_ratio,
            layer=settings.layer or None,
            head=settings.head or None,
            alpha=settings.alpha,
            cmap=settings.cmap,
        )
    except ValueError as error:
        st.warning(str(error))
        return explanation


def is_stale(photo: Photo | None, settings: MapSettings) -> bool:
    """Whether the kept explanation is of another model or another photo than the ones chosen now."""
    if st.session_state.get(EXPLAINED_MODEL) != settings.model:
        return True
    return photo is None or st.session_state.get(EXPLAINED_PHOTO) != photo_id(photo)


def fitted_slider(spec: Slider, key: str, container: Any = st) -> Any:
    """A slider whose range follows the model (`spec` fitted to it): a value past a maximum that just shrank is
    brought within it first, as Streamlit refuses a value outside the range."""
    if key in st.session_state:
        kept = in_range(st.session_state[key], spec)
        if kept != st.session_state[key]:
            st.session_state[key] = kept
    return slider(spec, key, container)


def settings_controls() -> MapSettings:
    model_column, method_column = st.columns([3, 2])
    with model_column:
        model = model_box(
            MODEL_LABEL,
            EXPLAINER_CHOICES,
            ATTENTION_MODEL_KEY,
            default_classifier(),
            help=EXPLAINER_INFO,
            with_runs=True,
        )
    with method_column:
        method = st.radio(
            METHOD_LABEL, list(METHOD_NAMES), format_func=METHOD_NAMES.get, horizontal=True, key="attention_method"
        )
    layer_spec, head_spec, _ = model_sliders(model)  # the chosen model's layers and heads
    fusion_column, discard_column, layer_column, head_column = st.columns(4)
    head_fusion = fusion_column.radio(HEAD_FUSION_LABEL, HEAD_FUSIONS, horizontal=True, key="attention_fusion")
    discard = slider(DISCARD_RATIO, "attention_discard", discard_column)
    layer = fitted_slider(layer_spec, "attention_layer", layer_column)
    head = fitted_slider(head_spec, "attention_head", head_column)
    target_column, cmap_column, alpha_column = st.columns([2, 1, 1])
    with target_column:
        target = class_box(model)
    cmap = cmap_column.selectbox(COLORMAP_LABEL, COLORMAPS, key="attention_cmap")
    alpha = slider(OPACITY, "attention_alpha", alpha_column)
    return MapSettings(model, method, head_fusion, discard, layer, head, target, cmap, alpha)


def class_box(model: str) -> str | None:
    """The class for gradient rollout: the last explanation's labels, or any typed one; empty = the top label.
    A class name belongs to the model it came from, so each model gets its own box."""
    last: Explanation | None = st.session_state.get(EXPLAINED)
    same_model = last is not None and st.session_state.get(EXPLAINED_MODEL) == model
    labels = [p.label for p in last.predictions] if same_model else []
    return st.selectbox(
        TARGET_LABEL,
        labels,
        index=None,
        accept_new_options=True,
        placeholder=TARGET_INFO,
        key=f"attention_target:{model}",
    )


def show_explanation(explanation: Explanation, settings: MapSettings) -> None:
    cmap = settings.cmap
    overlay_column, labels_column = st.columns(2)
    with overlay_column:
        st.image(explanation.overlay, caption=OVERLAY_LABEL, width="stretch")
        st.caption(value_range_line(explanation))
        teacher_note("attention-overlay")
        st.download_button(
            "Download the overlay (PNG)",
            png_bytes(explanation.overlay),
            file_name="attention.png",
            mime="image/png",
            key="attention_download",
            on_click="ignore",
        )
    with labels_column:
        st.subheader(PREDICTIONS_LABEL)
        if explanation.predictions:
            predictions_table(explanation.predictions, key="attention_labels")
        else:
            st.info(NO_HEAD)
        if explanation.target:
            st.caption(f"Gradient rollout for: {explanation.target}")
    if not explanation.heatmap.any():
        st.warning(EMPTY_MAP)
    patch_view(explanation, settings)
    with st.expander(VIT_SEES_TITLE, expanded=True):
        grid_column, strip_column = st.columns([1, 2])
        with grid_column:
            st.image(
                patch_grid_image(explanation.model_input, explanation.grid_size),
                caption=PATCH_GRID_LABEL,
                width="content",
            )
            teacher_note("patch-grid")
        with strip_column:
            st.markdown(describe_tokens(explanation))
            st.markdown(f"**{LAYER_STRIP_TITLE}**")
            tiles = layer_strip(explanation, cmap=cmap)
            st.image([image for image, _ in tiles], caption=[text for _, text in tiles], width=TILE_WIDTH)
            teacher_note("layer-strip")
        st.markdown(f"**{HEAD_GRID_TITLE}**")
        tiles = head_grid(explanation, cmap=cmap)
        st.image([image for image, _ in tiles], caption=[text for _, text in tiles], width=TILE_WIDTH)
        st.caption(head_ranges_line(explanation))
        teacher_note("head-grid")


# ---- one patch: where it looks and what looks at it ---------------------------------------------------------------


def patch_view(explanation: Explanation, settings: MapSettings) -> None:
    """Click a patch on the map (a chart of the patch grid over the overlay; st.image has no clicks) or type its row
    and column: its row and column of the attention matrix, for the chosen layer and head, from the kept attentions."""
    with st.expander(PATCH_TITLE, expanded=True):
        st.caption(PATCH_HINT)
        rows, columns = explanation.grid_size
        _take_chart_click()
        _keep_in_grid(PATCH_ROW_KEY, rows)
        _keep_in_grid(PATCH_COL_KEY, columns)
        chosen = st.session_state.get(PATCH_ROW_KEY), st.session_state.get(PATCH_COL_KEY)
        st.altair_chart(
            patch_grid_chart(
                explanation.overlay,
                explanation.grid_size,
                {chosen},  # a half-typed patch (a None) matches no cell
                outline="black",
            ),
            on_select="rerun",
            selection_mode=PATCH_SELECTION,
            key=PATCH_CHART_KEY,
            theme=None,
            width="content",
        )
        row_column, col_column = st.columns(2)
        row = row_column.number_input(
            PATCH_ROW_LABEL, min_value=1, max_value=rows, value=None, step=1, key=PATCH_ROW_KEY
        )
        col = col_column.number_input(
            PATCH_COL_LABEL, min_value=1, max_value=columns, value=None, step=1, key=PATCH_COL_KEY
        )
        if row is None or col is None:
            return
        try:
            patch = patch_attention(
                explanation,
                int(row),
                int(col),
                layer=settings.layer or None,
                head=settings.head or None,
                head_fusion=settings.head_fusion,
                alpha=settings.alpha,
                cmap=settings.cmap,
            )
        except ValueError as error:
            st.warning(str(error))
            return
        to_column, by_column = st.columns(2)
        to_column.image(patch.attends_to_overlay, caption=PATCH_TO_LABEL, width="stretch")
        by_column.image(patch.attended_by_overlay, caption=PATCH_BY_LABEL, width="stretch")
        st.markdown(patch_line(patch))
        st.caption(patch_ranges_line(patch))
        teacher_note("patch-click")


def _take_chart_click() -> None:
    """A new click on the chart becomes the row and column boxes' values (set before the boxes are drawn, as
    Streamlit asks); the same click seen again on a later run changes nothing, so typed values stay."""
    state = st.session_state.get(PATCH_CHART_KEY)
    points = list(state.get("selection", {}).get(PATCH_SELECTION, [])) if state else []
    if not points or points == st.session_state.get(PATCH_CLICK_SEEN):
        return
    st.session_state[PATCH_CLICK_SEEN] = points
    st.session_state[PATCH_ROW_KEY] = int(points[0]["row"])
    st.session_state[PATCH_COL_KEY] = int(points[0]["col"])


def _keep_in_grid(key: str, count: int) -> None:
    """A row or column chosen for another grid (another model's explanation) is dropped, not kept out of range."""
    value = st.session_state.get(key)
    if value is not None and not 1 <= value <= count:
        st.session_state[key] = None


def photo_id(photo: Photo) -> str:
    return f"{photo.name}:{hashlib.sha256(photo.data).hexdigest()[:16]}"


def side_by_side(photo: Photo | None, left: MapSettings) -> None:
    with st.expander(SIDE_BY_SIDE_TITLE):
        st.markdown(SIDE_BY_SIDE_NOTE)
        model_column, method_column, layer_column = st.columns([3, 2, 1])
        with model_column:
            model = model_box(
                MODEL_RIGHT_LABEL,
                EXPLAINER_CHOICES,
                "attention_model_b",
                EXPLAINER_CHOICES[0] if EXPLAINER_CHOICES[0] != left.model else EXPLAINER_CHOICES[1],
            )
        method = method_column.radio(
            METHOD_RIGHT_LABEL, list(METHOD_NAMES), format_func=METHOD_NAMES.get, key="attention_method_b"
        )
        layer = fitted_slider(model_sliders(model)[2], "attention_layer_b", layer_column)
        if st.button(COMPARE_BUTTON, type="primary", key="attention_compare"):
            if photo is None:
                st.error(NO_IMAGE)
            else:
                right = MapSettings(
                    model,
                    method,
                    left.head_fusion,
                    left.discard_ratio,
                    layer,
                    left.head,
                    comparison_target(left.target, left.model, other_model=model),
                    left.cmap,
                    left.alpha,
                )
                pair = shown_errors(lambda: (explained(photo, left), explained(photo, right)))
                if pair is not None:
                    st.session_state[COMPARED] = pair
        pair = st.session_state.get(COMPARED)
        if pair is None:
            return
        for column, side, explanation in zip(st.columns(2), SIDES, pair):
            with column:
                st.image(
                    explanation.overlay,
                    width="stretch",
                    caption=f"{side}: {explanation.model}, {METHOD_NAMES[explanation.method]}",
                )
                if explanation.predictions:
                    predictions_table(explanation.predictions[:3], key=f"attention_{side.lower()}_labels")
                else:
                    st.info(NO_HEAD)


def feature_export(photo: Photo | None, settings: MapSettings) -> None:
    with st.expander(FEATURES_TITLE):
        st.markdown(FEATURES_NOTE)
        if st.button(EXTRACT_BUTTON, key="attention_extract"):
            if photo is None:
                st.error(NO_IMAGE)
            else:

                def extract() -> list:
                    with load_notice() as on_load:
                        extracted = features(
                            photo.data, model=settings.model, layer=settings.layer or -1, on_load=on_load
                        )
                    return save_features(extracted, work_folder())

                paths = shown_errors(extract)
                if paths is not None:
                    st.session_state[FEATURE_FILES] = paths
        for index, path in enumerate(st.session_state.get(FEATURE_FILES, [])):
            st.download_button(
                f"Download {path.name}",
                path.read_bytes(),
                file_name=path.name,
                mime="application/octet-stream",
                key=f"attention_npy_{index}",
                on_click="ignore",
            )


def render() -> None:
    st.header(ATTENTION_TITLE)
    st.markdown(ATTENTION_INTRO)
    settings = settings_controls()
    photo_column, result_column = st.columns([1, 2], gap="large")
    with photo_column:
        photo = photo_input("attention")
        if st.button(EXPLAIN_BUTTON, type="primary", key="attention_run"):
            if photo is None:
                st.error(NO_IMAGE)
            else:
                explanation = shown_errors(lambda: explained(photo, settings))
                if explanation is not None:
                    st.session_state[EXPLAINED] = explanation
                    st.session_state[EXPLAINED_MODEL] = settings.model
                    st.session_state[EXPLAINED_PHOTO] = photo_id(photo)
                    st.rerun()  # the class box above is already drawn; it offers this explanation's labels
    with result_column:
        explanation: Explanation | None = st.session_state.get(EXPLAINED)
        if explanation is None:
            st.caption("The map, the predictions and the layer-by-layer views appear here.")
        elif is_stale(photo, settings):
            # Another model's or photo's results would be read as this one's (issue 12, item 6): not shown.
            st.info(STALE_RESULTS)
        else:
            show_explanation(redrawn(explanation, settings), settings)
    side_by_side(photo, settings)
    feature_export(photo, settings)


if __name__ == "__main__":
    render()
