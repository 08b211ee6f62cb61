"""Spending per month as bars of an SVG chart, drawn by the server (no script, no library).

`month_bars(months)` takes the spending answer's months (`{"month": "2026-11", "count",
"total"}`, oldest first, only months with purchases) and returns the last `MONTHS_SHOWN`
calendar months up to the latest one, empty months included, with each bar's geometry in
the chart's own units (`WIDTH` x `HEIGHT`); the page draws them and lists the same months
in a table, the chart's text alternative.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

MONTHS_SHOWN = 12
WIDTH = 600
HEIGHT = 220
TOP = 20  # room for the amount above the tallest bar
BOTTOM = 30  # room for the month under the axis
LEFT = 10
MAX_BAR_WIDTH = 60


@dataclass(frozen=True)
class Bar:
    month: str
    count: int
    total: Decimal
    x: float
    y: float
    width: float
    height: float

    @property
    def centre(self) -> float:
        return self.x + self.width / 2


def _month_index(month: str) -> int:
    year, number = month.split("-")
    return int(year) * 12 + int(number) - 1


def _month_name(index: int) -> str:
    return f"{index // 12:04d}-{index % 12 + 1:02d}"


def month_bars(months: list[dict], shown: int = MONTHS_SHOWN) -> list[Bar]:
    if not months:
        return []
    by_month = {m["month"]: m for m in months}
    last = _month_index(months[-1]["month"])
    first = max(last - shown + 1, _month_index(months[0]["month"]))
    span = range(first, last + 1)
    totals = [Decimal(str(by_month.get(_month_name(i), {}).get("total", 0))) for i in span]
    top = max(totals) or Decimal(1)
    slot = (WIDTH - LEFT) / len(span)
    usable = HEIGHT - TOP - BOTTOM
    bars = []
    for i, total in zip(span, totals, strict=True):
        name = _month_name(i)
        height = float(total / top) * usable
        width = min(slot * 0.7, MAX_BAR_WIDTH)
        bars.append(
            Bar(
                month=name,
                count=int(by_month.get(name, {}).get("count", 0)),
                total=total,
                x=LEFT + (i - first) * slot + (slot - width) / 2,
                y=TOP + usable - height,
                width=width,
                height=height,
            )
        )
    return bars
