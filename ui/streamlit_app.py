"""The Streamlit front end (`streamlit run ui/streamlit_app.py`): one page per task, each a file in streamlit_pages/."""

from __future__ import annotations

import streamlit as st

from ui.shared.texts import APP_TITLE, ATTENTION_TITLE, CAPTION_TITLE, CLASSIFY_TITLE, TRAIN_TITLE, ZERO_SHOT_TITLE
from ui.streamlit_pages.common import configure_engine_from_environment, default_classifier, start_preloading

PAGES = (
    ("streamlit_pages/classify.py", CLASSIFY_TITLE, ":material/label:"),
    ("streamlit_pages/attention.py", ATTENTION_TITLE, ":material/visibility:"),
    ("streamlit_pages/caption.py", CAPTION_TITLE, ":material/subtitles:"),
    ("streamlit_pages/zero_shot.py", ZERO_SHOT_TITLE, ":material/join:"),
    ("streamlit_pages/train.py", TRAIN_TITLE, ":material/model_training:"),
)


def main() -> None:
    st.set_page_config(page_title=APP_TITLE, page_icon="🔍", layout="wide")  # an emoji icon: no font fetched
    configure_engine_from_environment()
    start_preloading(default_classifier())
    pages = [
        st.Page(path, title=title, icon=icon, default=index == 0) for index, (path, title, icon) in enumerate(PAGES)
    ]
    st.navigation(pages, position="top").run()


main()
