"""Saving figures: always interactive HTML, PNG as well where kaleido can reach a Chrome."""

from __future__ import annotations

import logging
import os
from pathlib import Path

import plotly.graph_objects as go

__all__ = ["save_figure"]

log = logging.getLogger(__name__)


def save_figure(
    fig: go.Figure, path: str | Path, *, scale: float = 2.0, include_plotlyjs: bool | str = "cdn"
) -> list[Path]:
    """Write ``path.html`` and, when PNG export works, ``path.png``; returns the files written.

    ``path`` is taken without a suffix (a ``.html`` / ``.png`` suffix is dropped). ``include_plotlyjs``
    is passed to plotly: "cdn" keeps the HTML small, True embeds plotly.js for offline viewing.
    When PNG export fails (no kaleido, no Chrome) one line is logged saying how to get PNGs.
    ``XSTEER_PNG=0`` in the environment skips PNGs (each one starts a headless Chrome, seconds apiece).
    """
    path = Path(path)
    if path.suffix in (".html", ".png"):
        path = path.with_suffix("")
    path.parent.mkdir(parents=True, exist_ok=True)
    html = path.with_name(path.name + ".html")
    fig.write_html(html, include_plotlyjs=include_plotlyjs)
    written = [html]
    png = path.with_name(path.name + ".png")
    if os.environ.get("XSTEER_PNG", "1") == "0":
        return written
    try:
        fig.write_image(png, scale=scale)
    except Exception as err:  # kaleido missing, Chrome missing or failing: HTML is still there
        log.warning(
            "PNG export skipped for %s (%s: %s); install Chrome for kaleido with "
            "`bash scripts/install_chromium.sh` (or `plotly_get_chrome`) and `pip install kaleido`.",
            png, type(err).__name__, str(err).splitlines()[0] if str(err) else "",
        )
    else:
        written.append(png)
    return written
