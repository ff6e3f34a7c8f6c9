"""Server-side charts as inline SVG (no JavaScript, no CDN; every text escaped)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from markupsafe import Markup, escape

SYNCED_COLOUR = "#28a745"
FAILED_COLOUR = "#dc3545"


@dataclass(frozen=True)
class Point:
    """One bucket of the chart: its label (axis), a longer title (tooltip), and the two counts."""

    label: str
    title: str
    synced: int
    failed: int


def _nice_max(value: int) -> int:
    """A round upper bound for the y axis (1, 2, 5 × 10^n)."""
    if value <= 0:
        return 1
    scale = 1
    while True:
        for step in (1, 2, 5):
            if step * scale >= value:
                return step * scale
        scale *= 10


def bar_chart(points: Sequence[Point], *, title: str, label_every: int = 1, width: int = 720,
              height: int = 150, test_id: str | None = None) -> Markup:
    """Synced (green) and failed (red) bars side by side per bucket, with a y-axis maximum and labels."""
    left, right, top, bottom = 34, 6, 18, 20
    plot_w, plot_h = width - left - right, height - top - bottom
    peak = _nice_max(max([max(p.synced, p.failed) for p in points] or [0]))
    n = max(len(points), 1)
    slot = plot_w / n
    bar = max(slot / 2 - 0.5, 0.5)
    total_synced = sum(p.synced for p in points)
    total_failed = sum(p.failed for p in points)
    summary = f"{title}: {total_synced} synced, {total_failed} failed"
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" class="sync-chart" viewBox="0 0 {width} {height}" '
        f'width="100%" preserveAspectRatio="xMinYMin meet" role="img" aria-label="{escape(summary)}"'
        + (f' data-testid="{escape(test_id)}"' if test_id else "") + ">",
        f"<title>{escape(summary)}</title>",
        f'<text x="{left}" y="12" font-size="11" fill="#333">{escape(title)}</text>',
        f'<text x="{width - right}" y="12" font-size="10" text-anchor="end">'
        f'<tspan fill="{SYNCED_COLOUR}">■ synced {total_synced}</tspan>'
        f'<tspan fill="{FAILED_COLOUR}" dx="8">■ failed {total_failed}</tspan></text>',
        f'<line x1="{left}" y1="{top + plot_h}" x2="{left + plot_w}" y2="{top + plot_h}" stroke="#999" '
        'stroke-width="0.5"/>',
        f'<line x1="{left}" y1="{top}" x2="{left + plot_w}" y2="{top}" stroke="#ddd" stroke-width="0.5"/>',
        f'<text x="{left - 4}" y="{top + 4}" font-size="9" text-anchor="end" fill="#666">{peak}</text>',
        f'<text x="{left - 4}" y="{top + plot_h}" font-size="9" text-anchor="end" fill="#666">0</text>',
    ]
    for i, p in enumerate(points):
        x = left + i * slot
        for j, (value, colour, what) in enumerate(((p.synced, SYNCED_COLOUR, "synced"),
                                                   (p.failed, FAILED_COLOUR, "failed"))):
            if value <= 0:
                continue
            h = max(plot_h * value / peak, 1.0)
            parts.append(
                f'<rect x="{x + j * bar + 0.5:.1f}" y="{top + plot_h - h:.1f}" width="{bar:.1f}" '
                f'height="{h:.1f}" fill="{colour}" class="bar-{what}">'
                f"<title>{escape(p.title)}: {value} {what}</title></rect>"
            )
        if label_every and i % label_every == 0:
            parts.append(f'<text x="{x + slot / 2:.1f}" y="{height - 6}" font-size="9" text-anchor="middle" '
                         f'fill="#666">{escape(p.label)}</text>')
    parts.append("</svg>")
    return Markup("".join(parts))  # noqa: S704 - every interpolated text above is escaped
