"""Server-side SVG charts (issue 7.2): no script, no CDN; the markup is built here and escaped here."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date

from markupsafe import Markup, escape

from gateway.domain.money import format_vnd


@dataclass(frozen=True)
class DayTotal:
    day: date
    amount: int
    count: int


def _nice_ceiling(value: int) -> int:
    """The smallest 1/2/5 × 10^k at or above ``value`` (a readable top of the axis)."""
    if value <= 0:
        return 1
    magnitude = 1
    while magnitude * 10 <= value:
        magnitude *= 10
    for step in (1, 2, 5, 10):
        if step * magnitude >= value:
            return step * magnitude
    return 10 * magnitude  # pragma: no cover - the loop always returns


def collections_chart(days: Sequence[DayTotal], *, title: str, empty_label: str) -> Markup:
    """A bar per day; each bar has a ``<title>`` (amount and count) that screen readers and hovers read."""
    width, height = 640, 220
    left, right, top, bottom = 8, 8, 24, 28
    plot_w, plot_h = width - left - right, height - top - bottom
    peak = _nice_ceiling(max((d.amount for d in days), default=0))
    slot = plot_w / max(len(days), 1)
    bar_w = max(slot * 0.7, 1.0)
    parts = [
        f'<svg class="chart" viewBox="0 0 {width} {height}" role="img" aria-labelledby="chart-title" '
        'xmlns="http://www.w3.org/2000/svg" preserveAspectRatio="xMidYMid meet">',
        f'<title id="chart-title">{escape(title)}</title>',
        f'<line x1="{left}" y1="{top + plot_h}" x2="{width - right}" y2="{top + plot_h}" stroke="#98a2b3"/>',
        f'<text x="{left}" y="{top - 8}" font-size="12" fill="#475467">{escape(format_vnd(peak))} ₫</text>',
        f'<line x1="{left}" y1="{top}" x2="{width - right}" y2="{top}" stroke="#e4e7ec" '
        'stroke-dasharray="4 4"/>',
    ]
    if not any(d.amount for d in days):
        parts.append(
            f'<text x="{width / 2:.0f}" y="{top + plot_h / 2:.0f}" font-size="14" text-anchor="middle" '
            f'fill="#667085">{escape(empty_label)}</text>'
        )
    for index, day in enumerate(days):
        x = left + index * slot + (slot - bar_w) / 2
        h = plot_h * day.amount / peak if peak else 0
        y = top + plot_h - h
        label = f"{day.day.strftime('%d/%m/%Y')}: {format_vnd(day.amount)} ₫ ({day.count})"
        parts.append(
            f'<rect x="{x:.1f}" y="{y:.1f}" width="{bar_w:.1f}" height="{h:.1f}" fill="#005baa">'
            f"<title>{escape(label)}</title></rect>"
        )
        if index % 5 == 0 or index == len(days) - 1:
            parts.append(
                f'<text x="{x + bar_w / 2:.1f}" y="{height - 8}" font-size="11" text-anchor="middle" '
                f'fill="#475467">{escape(day.day.strftime("%d/%m"))}</text>'
            )
    parts.append("</svg>")
    return Markup("".join(parts))  # noqa: S704 - every interpolated text above is escaped
