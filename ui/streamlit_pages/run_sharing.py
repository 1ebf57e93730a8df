"""Sharing a finished run from the Streamlit Train page, classifier or captioner: a zip to download, a Hub push."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import streamlit as st

from training import push_to_hub, zip_run
from ui.shared import train_widgets as widgets
from ui.shared.texts import pushed
from ui.shared.training import saved_model_dir
from ui.streamlit_pages.common import shown_errors, work_folder


def zip_download(run_dir: Path, container: Any, key: str) -> None:
    """The run as a zip, made when the button is pressed, not on every rerun of the page; nothing before a save."""
    if (run_dir / "config.json").is_file():
        container.download_button(
            "Download the run (.zip)",
            lambda: zip_run(run_dir, work_folder()).read_bytes(),
            file_name=f"{run_dir.name}.zip",
            mime="application/zip",
            key=key,
            on_click="ignore",
        )


def push_section(run_dir: Path, key_prefix: str, repo_placeholder: str) -> None:
    """Repository, token (used for this upload only) and privacy, then the push and the model's address."""
    with st.expander(widgets.PUSH_SECTION):
        repo_column, token_column, private_column = st.columns([2, 2, 1], vertical_alignment="bottom")
        repo_id = repo_column.text_input(widgets.REPO_LABEL, placeholder=repo_placeholder, key=f"{key_prefix}_repo")
        token = token_column.text_input(
            widgets.TOKEN_LABEL, type="password", key=f"{key_prefix}_token", help=widgets.TOKEN_INFO
        )
        private = private_column.checkbox(widgets.PRIVATE_LABEL, True, key=f"{key_prefix}_private")
        if st.button(widgets.PUSH_BUTTON, key=f"{key_prefix}_push"):
            url = shown_errors(lambda: push_to_hub(saved_model_dir(run_dir), repo_id, token, private=private))
            if url is not None:
                st.success(pushed(url))
