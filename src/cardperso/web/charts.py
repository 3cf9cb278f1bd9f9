"""Charts drawn on the server as inline SVG (no JavaScript, nothing fetched: the console's
Content-Security-Policy stays strict). Pure: numbers in, markup out; every text is escaped.

* :func:`histogram`: how many applications took 0, 1, 2 … working days from acceptance to
  notification, with the time target drawn as a line (bars past it in red);
* :func:`bars`: per service point (or batch), the applications late and at risk.

Each bar carries its numbers as ``data-`` attributes, so a test reads what is drawn.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from typing import Final
from xml.sax.saxutils import escape, quoteattr

from markupsafe import Markup

WIDTH: Final = 640
HEIGHT: Final = 240
_LEFT, _RIGHT, _TOP, _BOTTOM = 40, 16, 24, 40
OK, LATE, RISK, AXIS = "#1e50a0", "#b00020", "#e08a00", "#55606e"


def _svg(body: list[str], label: str, kind: str) -> Markup:
    head = (
        f'<svg xmlns="http://www.w3.org/2000/svg" class="chart {kind}" role="img" '
        f'width="{WIDTH}" height="{HEIGHT}" viewBox="0 0 {WIDTH} {HEIGHT}" '
        f"aria-label={quoteattr(label)}><title>{escape(label)}</title>"
    )
    return Markup(head + "".join(body) + "</svg>")  # noqa: S704 - every text above is escaped


def _axes(top: int) -> list[str]:
    y0 = HEIGHT - _BOTTOM
    return [
        f'<line x1="{_LEFT}" y1="{y0}" x2="{WIDTH - _RIGHT}" y2="{y0}" stroke="{AXIS}"/>',
        f'<line x1="{_LEFT}" y1="{_TOP}" x2="{_LEFT}" y2="{y0}" stroke="{AXIS}"/>',
        f'<text x="{_LEFT - 6}" y="{_TOP + 4}" text-anchor="end" font-size="11">{top}</text>',
        f'<text x="{_LEFT - 6}" y="{y0}" text-anchor="end" font-size="11">0</text>',
    ]


def histogram(values: Sequence[int], target: int, label: str) -> Markup:
    """Bars of the count per working day (0 … the longest, at least the target + 1), and a
    dashed line between the target's day and the next: bars right of it missed the target."""
    counts = Counter(values)
    last = max([target + 1, *values]) if values else target + 1
    days = list(range(0, last + 1))
    top = max(counts.values(), default=0) or 1
    plot_w = WIDTH - _LEFT - _RIGHT
    plot_h = HEIGHT - _TOP - _BOTTOM
    step = plot_w / len(days)
    body = _axes(top)
    y0 = HEIGHT - _BOTTOM
    for i, day in enumerate(days):
        n = counts.get(day, 0)
        h = plot_h * n / top
        x = _LEFT + i * step
        colour = LATE if day > target else OK
        body.append(
            f'<rect class="bar" data-day="{day}" data-count="{n}" x="{x + 1:.1f}" '
            f'y="{y0 - h:.1f}" width="{max(step - 2, 1):.1f}" height="{h:.1f}" fill="{colour}">'
            f"<title>{day} working days: {n}</title></rect>"
        )
        if len(days) <= 40 or day % 5 == 0:
            body.append(
                f'<text x="{x + step / 2:.1f}" y="{y0 + 14}" text-anchor="middle" '
                f'font-size="10">{day}</text>'
            )
    tx = _LEFT + (target + 1) * step
    body.append(
        f'<line class="target" data-target="{target}" x1="{tx:.1f}" y1="{_TOP - 8}" '
        f'x2="{tx:.1f}" y2="{y0}" stroke="{LATE}" stroke-width="2" stroke-dasharray="6 4"/>'
        f'<text x="{tx + 4:.1f}" y="{_TOP}" font-size="11" fill="{LATE}">'
        f"目标 target {target}</text>"
        f'<text x="{WIDTH / 2:.0f}" y="{HEIGHT - 6}" text-anchor="middle" font-size="11">'
        "工作日 working days from acceptance to notification</text>"
    )
    return _svg(body, label, "histogram")


def bars(groups: Sequence[tuple[str, int, int]], label: str) -> Markup:
    """Per group (key, late, at risk): two bars side by side, late in red, at risk in orange."""
    top = max([max(late, risk) for _k, late, risk in groups] or [0]) or 1
    plot_w = WIDTH - _LEFT - _RIGHT
    plot_h = HEIGHT - _TOP - _BOTTOM
    step = plot_w / max(len(groups), 1)
    width = max(min(step / 2 - 4, 60), 2)
    y0 = HEIGHT - _BOTTOM
    body = _axes(top)
    for i, (key, late, risk) in enumerate(groups):
        x = _LEFT + i * step + (step - 2 * width) / 2
        for j, (what, n, colour) in enumerate((("late", late, LATE), ("at_risk", risk, RISK))):
            h = plot_h * n / top
            body.append(
                f"<rect class={quoteattr('bar ' + what)} data-group={quoteattr(key)} "
                f'data-{what.replace("_", "-")}="{n}" x="{x + j * width:.1f}" '
                f'y="{y0 - h:.1f}" width="{width:.1f}" height="{h:.1f}" fill="{colour}">'
                f"<title>{escape(key)}: {n} {what.replace('_', ' ')}</title></rect>"
            )
        body.append(
            f'<text x="{x + width:.1f}" y="{y0 + 14}" text-anchor="middle" font-size="11">'
            f"{escape(key[:14])}</text>"
        )
    body.append(
        f'<rect x="{WIDTH - 190}" y="4" width="10" height="10" fill="{LATE}"/>'
        f'<text x="{WIDTH - 176}" y="13" font-size="11">逾期 late</text>'
        f'<rect x="{WIDTH - 110}" y="4" width="10" height="10" fill="{RISK}"/>'
        f'<text x="{WIDTH - 96}" y="13" font-size="11">临期 at risk</text>'
    )
    return _svg(body, label, "bars")
