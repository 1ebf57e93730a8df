"""The Streamlit front end (`streamlit run ui/streamlit_app.py`): one page per task, each a file in streamlit_pages/."""

from __future__ import annotations

import streamlit as st

from ui.streamlit_pages.common import configure_engine_from_environment, default_classifier, start_preloading

PAGES = (
    ("streamlit_pages/classify.py", "Classify", ":material/label:"),
    ("streamlit_pages/attention.py", "Attention", ":material/visibility:"),
    ("streamlit_pages/caption.py", "Caption", ":material/subtitles:"),
    ("streamlit_pages/zero_shot.py", "Zero-shot", ":material/join:"),
    ("streamlit_pages/train.py", "Train", ":material/model_training:"),
)


def main() -> None:
    st.set_page_config(page_title="ViT Studio", page_icon="🔍", layout="wide")  # an emoji icon: no font fetched
    configure_engine_from_environment()
    start_preloading(default_classifier())
    pages = [
        st.Page(path, title=title, icon=icon, default=index == 0) for index, (path, title, icon) in enumerate(PAGES)
    ]
    st.navigation(pages, position="top").run()


main()
