"""Server-rendered SVG bar charts for the statistics page: no script, readable by screen readers (a title and
a description on the ``<svg role="img">``), always shown next to a table with the same numbers."""

from __future__ import annotations

from collections.abc import Sequence
from html import escape

from markupsafe import Markup

BAR_HEIGHT = 28
GAP = 10
LABEL_WIDTH = 160
CHART_WIDTH = 560
VALUE_WIDTH = 70


def bar_chart(chart_id: str, title: str, rows: Sequence[tuple[str, int]]) -> Markup:
    """Horizontal bars, one per (label, value); values are also written next to each bar."""
    top = max((value for _label, value in rows), default=0) or 1
    height = max(1, len(rows)) * (BAR_HEIGHT + GAP) + GAP
    description = "; ".join(f"{label}: {value}" for label, value in rows) or "no scans"
    parts = [
        f'<svg class="chart" role="img" aria-labelledby="{chart_id}-t {chart_id}-d" '
        f'viewBox="0 0 {LABEL_WIDTH + CHART_WIDTH + VALUE_WIDTH} {height}" xmlns="http://www.w3.org/2000/svg">',
        f'<title id="{chart_id}-t">{escape(title)}</title>',
        f'<desc id="{chart_id}-d">{escape(description)}</desc>',
    ]
    for index, (label, value) in enumerate(rows):
        y = GAP + index * (BAR_HEIGHT + GAP)
        width = round(CHART_WIDTH * value / top)
        parts.append(
            f'<text x="{LABEL_WIDTH - 8}" y="{y + BAR_HEIGHT * 0.7:.0f}" text-anchor="end" '
            f'font-size="18" fill="#111">{escape(label)}</text>'
            f'<rect x="{LABEL_WIDTH}" y="{y}" width="{max(width, 1)}" height="{BAR_HEIGHT}" fill="#0b4f9c"/>'
            f'<text x="{LABEL_WIDTH + max(width, 1) + 8}" y="{y + BAR_HEIGHT * 0.7:.0f}" font-size="18" '
            f'fill="#111">{value}</text>'
        )
    parts.append("</svg>")
    return Markup("".join(parts))  # noqa: S704 - every interpolated text is escaped above
