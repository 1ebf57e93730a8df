"""Gradio components of our own.

Gradio writes a .pyi stub beside any module that subclasses a component; keeping them here keeps that stub
small, and .gitignore keeps it out of the repository.
"""

from __future__ import annotations

import gradio as gr


class ImagePath(gr.Image):
    """A gr.Image that hands the uploaded file to the engine unopened, so the engine's checks and messages apply
    (gr.Image itself opens the file first and fails on a bad one with a traceback-like message)."""

    is_template = True  # render with gr.Image's front-end code

    def preprocess(self, payload):
        if payload is not None and payload.path and not (payload.url or "").startswith("data:"):
            return payload.path
        return super().preprocess(payload)
