"""The Classify page: one photo's top labels with a status line, or many images and zips to a table and a CSV."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import streamlit as st

from core import FileResult, Prediction, RunInfo, classify, classify_files
from ui.shared.batch import CSV_COLUMNS, DONE_CLASSIFIED, PREDICTIONS_CSV, batch_summary, results_table, write_csv
from ui.shared.status import last_run_line
from ui.shared.texts import (
    CLASSIFY_ALL_BUTTON,
    CLASSIFY_BUTTON,
    CLASSIFY_INTRO,
    CLASSIFY_TITLE,
    FILES_LABEL,
    MANY_IMAGES_TAB,
    MODEL_INFO,
    MODEL_LABEL,
    NO_FILES,
    NO_IMAGE,
    ONE_IMAGE_TAB,
    TOP_LABELS_TITLE,
)
from ui.shared.widgets import CLASSIFIER_CHOICES, TOP_K
from ui.streamlit_pages.common import (
    CLASSIFY_MODEL_KEY,
    Photo,
    csv_download,
    default_classifier,
    forget_when_changed,
    load_notice,
    model_box,
    photo_input,
    predictions_table,
    saved_uploads,
    shown_errors,
    slider,
    teacher_note,
    work_folder,
)

ONE_RESULT = "classify_result"
MANY_RESULT = "classify_batch_result"


@dataclass(frozen=True)
class Classified:
    predictions: list[Prediction]
    status: str  # which model ran where, how long


@dataclass(frozen=True)
class ClassifiedFiles:
    results: list[FileResult]
    csv_path: Path  # the CSV written for download


def classify_photo(photo: Photo, model: str, top_k: int) -> Classified:
    runs: list[RunInfo] = []
    with load_notice() as on_load:
        predictions = classify(photo.data, model=model, top_k=top_k, on_load=on_load, on_run=runs.append)
    return Classified(predictions, last_run_line(runs))


def classify_uploads(files: list, model: str, top_k: int) -> ClassifiedFiles:
    paths = [path for _, path in saved_uploads(files)]
    with load_notice() as on_load, st.spinner(f"Classifying {len(paths)} file(s) ..."):
        results = classify_files(paths, model=model, top_k=top_k, on_load=on_load)
    return ClassifiedFiles(results, write_csv(results, work_folder() / PREDICTIONS_CSV))


def one_image(model: str, top_k: int) -> None:
    photo_column, result_column = st.columns(2, gap="large")
    with photo_column:
        photo = photo_input("classify")
        forget_when_changed([ONE_RESULT], model, photo, marker="classify_made_from")
        if st.button(CLASSIFY_BUTTON, type="primary", key="classify_run"):
            if photo is None:
                st.error(NO_IMAGE)
            else:
                result = shown_errors(lambda: classify_photo(photo, model, top_k))
                if result is not None:
                    st.session_state[ONE_RESULT] = result
    with result_column:
        shown: Classified | None = st.session_state.get(ONE_RESULT)
        if shown is None:
            st.caption("The top labels appear here.")
            return
        st.subheader(TOP_LABELS_TITLE)
        predictions_table(shown.predictions, key="classify_labels")
        st.caption(shown.status)
        teacher_note("classify-labels")


def many_images(model: str, top_k: int) -> None:
    files = st.file_uploader(FILES_LABEL, accept_multiple_files=True, key="classify_files")
    forget_when_changed([MANY_RESULT], model, files, marker="classify_batch_made_from")
    if st.button(CLASSIFY_ALL_BUTTON, type="primary", key="classify_batch_run"):
        st.session_state.pop(MANY_RESULT, None)  # the last table must not stand under this click's error
        if not files:
            st.error(NO_FILES)
        else:
            result = shown_errors(lambda: classify_uploads(files, model, top_k))
            if result is not None:
                st.session_state[MANY_RESULT] = result
    shown: ClassifiedFiles | None = st.session_state.get(MANY_RESULT)
    if shown is None:
        return
    st.markdown(batch_summary(shown.results, DONE_CLASSIFIED))
    st.dataframe(
        pd.DataFrame(results_table(shown.results), columns=list(CSV_COLUMNS)),
        hide_index=True,
        key="classify_table",
        width="stretch",
    )
    csv_download("Download the CSV", shown.csv_path, key="classify_csv")


def render() -> None:
    st.header(CLASSIFY_TITLE)
    st.markdown(CLASSIFY_INTRO)
    model_column, top_k_column = st.columns([3, 1])
    with model_column:
        model = model_box(
            MODEL_LABEL, CLASSIFIER_CHOICES, CLASSIFY_MODEL_KEY, default_classifier(), help=MODEL_INFO, with_runs=True
        )
    with top_k_column:
        top_k = slider(TOP_K, key="classify_top_k")
    one_tab, many_tab = st.tabs([ONE_IMAGE_TAB, MANY_IMAGES_TAB])
    with one_tab:
        one_image(model, top_k)
    with many_tab:
        many_images(model, top_k)


if __name__ == "__main__":
    render()
