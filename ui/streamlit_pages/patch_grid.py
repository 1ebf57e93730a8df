"""A picture with its patch grid as clickable cells, for the Streamlit pages that let a user pick patches."""

from __future__ import annotations

import base64

import altair as alt
import pandas as pd
from PIL import Image

from ui.streamlit_pages.common import png_bytes

PATCH_SELECTION = "patch"  # the chart's point selection: st.altair_chart(selection_mode=PATCH_SELECTION)
CHART_WIDTH = 340  # fits a 390-px phone


def patch_grid_chart(
    picture: Image.Image, grid_size: tuple[int, int], chosen: set[tuple[int, int]], *, outline: str
) -> alt.LayerChart:
    """The picture with its patch grid as clickable cells (a point selection on row and column, both from 1); the
    chosen patches outlined in `outline`. No axes and no padding, so the chart's pixels are the picture's."""
    rows, columns = grid_size
    height = max(1, round(CHART_WIDTH * picture.height / picture.width))
    thumbnail = picture.convert("RGB").resize((CHART_WIDTH * 2, height * 2))  # sharp on a high-density screen
    url = "data:image/png;base64," + base64.b64encode(png_bytes(thumbnail)).decode("ascii")
    cells = pd.DataFrame(
        [
            {"row": row, "col": col, "x": col - 1, "x2": col, "y": row - 1, "y2": row, "chosen": (row, col) in chosen}
            for row in range(1, rows + 1)
            for col in range(1, columns + 1)
        ]
    )
    x_scale = alt.Scale(domain=[0, columns], nice=False, zero=False)
    y_scale = alt.Scale(domain=[0, rows], nice=False, zero=False, reverse=True)
    background = (
        alt.Chart(pd.DataFrame([{"x": 0, "y": 0, "url": url}]))
        .mark_image(width=CHART_WIDTH, height=height, align="left", baseline="top", aspect=False)
        .encode(x=alt.X("x:Q", scale=x_scale, axis=None), y=alt.Y("y:Q", scale=y_scale, axis=None), url="url:N")
    )
    selection = alt.selection_point(name=PATCH_SELECTION, fields=["row", "col"], on="click")
    grid = (
        alt.Chart(cells)
        .mark_rect(fill="white", fillOpacity=0.001, cursor="pointer")
        .encode(
            x=alt.X("x:Q", scale=x_scale, axis=None),
            x2="x2:Q",
            y=alt.Y("y:Q", scale=y_scale, axis=None),
            y2="y2:Q",
            stroke=alt.condition("datum.chosen", alt.value(outline), alt.value("white")),
            strokeWidth=alt.condition("datum.chosen", alt.value(3), alt.value(0.5)),
            tooltip=[alt.Tooltip("row:O", title="row"), alt.Tooltip("col:O", title="column")],
        )
        .add_params(selection)
    )
    return (
        alt.layer(background, grid)
        .properties(width=CHART_WIDTH, height=height, padding=0, autosize=alt.AutoSizeParams(type="none"))
        .configure_view(strokeWidth=0)
    )
