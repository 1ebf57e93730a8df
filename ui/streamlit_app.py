"""The Streamlit front end (`streamlit run ui/streamlit_app.py`): one page per task, each a file in streamlit_pages/."""

from __future__ import annotations

import streamlit as st

from ui.shared.inside import INSIDE_TITLE
from ui.shared.notes import (
    NOTES_TOGGLE_INFO,
    NOTES_TOGGLE_LABEL,
    PRESENTATION_TOGGLE_INFO,
    PRESENTATION_TOGGLE_LABEL,
)
from ui.shared.texts import (
    APP_TITLE,
    ATTENTION_TITLE,
    CAPTION_TITLE,
    CLASSIFY_TITLE,
    OFFLINE_BANNER,
    TRAIN_TITLE,
    ZERO_SHOT_TITLE,
)
from ui.shared.walkthrough import WALKTHROUGH_TITLE
from ui.streamlit_pages.common import (
    PRESENTATION_KEY,
    TEACHER_NOTES_KEY,
    configure_engine_from_environment,
    default_classifier,
    hub_at_start,
    start_preloading,
)

PAGES = (
    ("streamlit_pages/classify.py", CLASSIFY_TITLE, ":material/label:"),
    ("streamlit_pages/attention.py", ATTENTION_TITLE, ":material/visibility:"),
    ("streamlit_pages/walkthrough.py", WALKTHROUGH_TITLE, ":material/stairs:"),
    ("streamlit_pages/caption.py", CAPTION_TITLE, ":material/subtitles:"),
    ("streamlit_pages/zero_shot.py", ZERO_SHOT_TITLE, ":material/join:"),
    ("streamlit_pages/inside.py", INSIDE_TITLE, ":material/biotech:"),
    ("streamlit_pages/train.py", TRAIN_TITLE, ":material/model_training:"),
)


def main() -> None:
    st.set_page_config(page_title=APP_TITLE, page_icon="🔍", layout="wide")  # an emoji icon: no font fetched
    configure_engine_from_environment()
    start_preloading(default_classifier())
    pages = [
        st.Page(path, title=title, icon=icon, default=index == 0) for index, (path, title, icon) in enumerate(PAGES)
    ]
    navigation = st.navigation(pages, position="top")
    page_toggles()
    if not hub_at_start():
        st.warning(OFFLINE_BANNER)
    navigation.run()


def page_toggles() -> None:
    """The sidebar's teacher notes and presentation toggles; every page reads them from session state."""
    st.sidebar.toggle(NOTES_TOGGLE_LABEL, value=True, key=TEACHER_NOTES_KEY, help=NOTES_TOGGLE_INFO)
    st.sidebar.toggle(PRESENTATION_TOGGLE_LABEL, value=False, key=PRESENTATION_KEY, help=PRESENTATION_TOGGLE_INFO)
    if st.session_state.get(PRESENTATION_KEY):
        # Zoom, not font sizes: every label, widget and chart grows together.
        st.html("<style>[data-testid='stMainBlockContainer'] {zoom: 1.35}</style>")


main()
