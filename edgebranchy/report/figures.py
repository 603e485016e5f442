"""What every plot of the report is made with: the colours, the Plot / Skipped records, matplotlib (lazily,
headless) and the PNG bytes of a figure."""
from __future__ import annotations

import io
import math
import textwrap
from dataclasses import dataclass
from typing import Any

from edgebranchy.errors import EdgeBranchyError

BASELINE_COLOR = "#4C72B0"
BRANCHY_COLOR = "#DD8452"
RUN_COLORS = ["#55A868", "#C44E52", "#8172B3", "#937860", "#DA8BC3", "#8C8C8C", "#CCB974", "#64B5CD"]
DPI = 110
#: the widest figure the HTML page shows at full size (its 1400 px column less padding): wider ones are scaled
#: down, and their text with them
PAGE_IN = 12.4
#: the smallest font on any figure (points; 8 pt = 12 px at DPI, shown unscaled up to PAGE_IN)
MIN_FONT = 8


@dataclass(frozen=True)
class Plot:
    """One rendered plot: file name, heading, caption, alt text and PNG bytes."""

    filename: str
    title: str
    caption: str
    alt: str
    png: bytes


@dataclass(frozen=True)
class Skipped:
    """A plot that was not drawn, and why."""

    filename: str
    title: str
    reason: str


def pyplot() -> Any:
    """matplotlib.pyplot on the headless Agg backend (EdgeBranchyError without matplotlib)."""
    try:
        import matplotlib
    except ImportError:
        raise EdgeBranchyError(
            "the report needs matplotlib: pip install 'edgebranchy[report]'") from None
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    return plt


def png(fig: Any) -> bytes:
    """The figure as PNG bytes (no timestamp in them); the figure is closed."""
    plt = pyplot()
    buf = io.BytesIO()
    try:
        fig.savefig(buf, format="png", dpi=DPI, metadata={"Software": None})
    finally:
        plt.close(fig)
    return buf.getvalue()


def wrap(text: str, width: int = 56) -> str:
    """`text` broken into lines of at most `width` characters (a label that fits)."""
    return "\n".join(textwrap.wrap(text, width, break_on_hyphens=False)) or text


def page_width(inches: float) -> float:
    """A figure width no wider than the page shows unscaled."""
    return min(PAGE_IN, inches)


def legend_below(ax: Any, n_items: int, **kw) -> Any:
    """The axes' legend under its x axis, in columns, where it can cover nothing it explains (tight_layout
    makes room for it)."""
    return ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.22 if ax.get_xlabel() else -0.14),
                     ncol=1 if n_items <= 3 else 2,
                     fontsize=MIN_FONT, frameon=False, **kw)


def grid(plt: Any, n: int, width: float = 4.1, height: float = 3.8) -> tuple[Any, list]:
    """A figure with `n` axes, three to a row (the unused ones hidden), no wider than the page."""
    cols = min(n, 3)
    rows = math.ceil(n / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(page_width(width * cols), height * rows), squeeze=False)
    flat = list(axes.ravel())
    for ax in flat[n:]:
        ax.set_visible(False)
    return fig, flat[:n]
