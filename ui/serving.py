"""How much the Gradio server takes on at once, on your own machine and on a Space.

app.py applies these limits and tools/deploy.py states them on the Space's page. Imports nothing heavy, so
deploying needs no torch.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class ServingLimits:
    """How much the Gradio server takes on at once, and how long it keeps visitors' files."""

    queue_size: int | None  # requests waiting in line; one more gets Gradio's "queue is full, try again later"
    max_file_size: int | None  # bytes per uploaded file; a larger one is refused in the browser, before it is sent
    keep_files_s: int | None = None  # uploads and results older than this leave Gradio's cache; None: at exit
    # Gradio keeps a copy of the page's settings for every session (each page load, each API client) until this
    # many newer ones push it out: about 1 MB each in this app, so its default of 10,000 lets a public app grow by
    # gigabytes. 200 recent sessions is more than a Space or a class has open at once.
    sessions_kept: int = 200

    def delete_cache(self) -> tuple[int, int] | None:
        """gr.Blocks' delete_cache: look hourly (or sooner, for a short keep) for files past their time."""
        return None if self.keep_files_s is None else (min(3600, self.keep_files_s), self.keep_files_s)


# On your own machine nothing is capped: the Train tab takes zips up to its own data cap (2 GB by default).
LOCAL_LIMITS = ServingLimits(queue_size=None, max_file_size=None)
# On a public Space, 200 MB a file: a photo is a few MB and a training zip of several hundred photos fits (the
# ants-vs-bees set is 46 MB), while a few visitors sending 2 GB zips (kept by Gradio, then unpacked) would fill
# the Space's disk. 20 in line: at a second or two per caption or map, the last one waits well under a minute;
# past that a visitor is better told to come back than left waiting. Files go after 6 hours: a Space runs for
# weeks, and every upload and result stays in Gradio's cache otherwise (examples are kept).
SPACE_LIMITS = ServingLimits(queue_size=20, max_file_size=200 * 1024 * 1024, keep_files_s=6 * 3600)


def serving_limits(on_space: bool) -> ServingLimits:
    return SPACE_LIMITS if on_space else LOCAL_LIMITS
