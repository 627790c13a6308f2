"""Geometry of the events-per-hour chart, drawn as SVG by the server (``templates/sources/_chart.html``).

No charting script runs in the browser: the bars are computed here, as
stacked rectangles (accepted, rejected, failed) in a fixed view box that
the page scales to its width.
"""

from __future__ import annotations

from dataclasses import dataclass

WIDTH, HEIGHT = 720, 200
LEFT, RIGHT, TOP, BOTTOM = 40, 8, 10, 28
#: Stacked from the bottom, in this order.
STACK = ("accepted", "failed", "rejected")


def nice_ceiling(value: int) -> int:
    """Return the smallest of 1, 2, 5, 10, 20, 50... that is at least ``value`` (axes end on round numbers)."""
    ceiling = 1
    while True:
        for step in (1, 2, 5):
            if step * ceiling >= value:
                return step * ceiling
        ceiling *= 10


@dataclass(frozen=True)
class Segment:
    """One coloured part of a bar."""

    bucket: str
    y: float
    height: float
    count: int


@dataclass(frozen=True)
class Bar:
    """One hour."""

    x: float
    width: float
    label: str
    show_label: bool
    total: int
    segments: tuple[Segment, ...]


def events_per_hour(series) -> dict:
    """Return what the template draws for ``activity.per_hour`` output: bars, axis ticks and totals."""
    plot_width, plot_height = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM
    top = nice_ceiling(max((hour.total for hour in series), default=0) or 1)
    slot = plot_width / max(len(series), 1)
    bars = []
    for index, hour in enumerate(series):
        y = TOP + plot_height
        segments = []
        for bucket in STACK:
            count = hour.counts[bucket]
            if count:
                height = plot_height * count / top
                y -= height
                segments.append(Segment(bucket, round(y, 2), round(height, 2), count))
        bars.append(
            Bar(
                x=round(LEFT + index * slot + slot * 0.15, 2),
                width=round(slot * 0.7, 2),
                label=hour.start.strftime("%H:00"),
                show_label=index % 4 == 0 or index == len(series) - 1,
                total=hour.total,
                segments=tuple(segments),
            )
        )
    totals = {bucket: sum(hour.counts[bucket] for hour in series) for bucket in STACK}
    ticks = [(value, round(TOP + plot_height - plot_height * value / top, 2)) for value in (0, top // 2, top)]
    return {
        "width": WIDTH,
        "height": HEIGHT,
        "left": LEFT,
        "right": WIDTH - RIGHT,
        "baseline": TOP + plot_height,
        "bars": bars,
        "ticks": ticks if top > 1 else [(0, ticks[0][1]), (1, ticks[2][1])],
        "totals": totals,
        "since": series[0].start if series else None,
    }
