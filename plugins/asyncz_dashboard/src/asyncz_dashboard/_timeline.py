"""The timeline picture: the next 24 h of runs, one row per task, as SVG drawn on the server.

:func:`layout` turns run times into coordinates; the template (``timeline.html``) draws
them, so every label goes through Jinja's escaping. Colours and sizes are SVG presentation
attributes and classes of the shipped CSS, never inline ``style`` (the CSP forbids it).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

__all__ = ["Timeline", "layout"]

LABEL_WIDTH = 220
PLOT_WIDTH = 960
ROW_HEIGHT = 26
TOP = 34


@dataclass
class Row:
    task_id: str
    store: str | None
    y: float
    #: x of each run (runs closer than a pixel are drawn once).
    xs: list[float]
    count: int
    more: bool


@dataclass
class Timeline:
    start: datetime
    end: datetime
    width: int
    height: int
    label_width: int
    plot_width: int
    row_height: int
    top: int
    hours: list[tuple[float, str]] = field(default_factory=list)
    rows: list[Row] = field(default_factory=list)


def layout(
    start: datetime, end: datetime, tasks: list[tuple[Any, list[datetime], bool]]
) -> Timeline:
    span = (end - start).total_seconds()
    picture = Timeline(
        start=start,
        end=end,
        width=LABEL_WIDTH + PLOT_WIDTH + 60,
        height=TOP + ROW_HEIGHT * max(len(tasks), 1) + 10,
        label_width=LABEL_WIDTH,
        plot_width=PLOT_WIDTH,
        row_height=ROW_HEIGHT,
        top=TOP,
    )

    def x_of(moment: datetime) -> float:
        return LABEL_WIDTH + PLOT_WIDTH * (moment - start).total_seconds() / span

    hour = start.replace(minute=0, second=0, microsecond=0) + timedelta(hours=1)
    step = timedelta(hours=3) if span > 12 * 3600 else timedelta(hours=1)
    while hour < end:
        picture.hours.append((round(x_of(hour), 1), hour.strftime("%H:%M")))
        hour += step
    for index, (info, run_times, more) in enumerate(tasks):
        xs: list[float] = []
        for moment in run_times:
            x = round(x_of(moment), 1)
            if not xs or x - xs[-1] >= 1.0:
                xs.append(x)
        y = TOP + index * ROW_HEIGHT
        picture.rows.append(Row(info.id, info.store, y, xs, len(run_times), more))
    return picture
