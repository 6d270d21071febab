"""Usage charts drawn on the server as SVG geometry: no chart script, nothing inline-styled.

The template draws one <rect> per day from these numbers (SVG presentation attributes
and CSS classes only, which the console's Content-Security-Policy allows) and renders
the same figures as a table for screen readers and for anyone who prefers numbers.
"""

from __future__ import annotations

from dataclasses import dataclass

WIDTH = 600
HEIGHT = 160
AXIS_BOTTOM = 20
"""Room under the bars for the first and last dates."""
GAP_RATIO = 0.25


@dataclass(frozen=True)
class Bar:
    date: str
    total: int
    x: float
    y: float
    width: float
    height: float


@dataclass(frozen=True)
class Chart:
    days: int
    bars: list[Bar]
    peak: int
    total: int
    width: int = WIDTH
    height: int = HEIGHT
    baseline: int = HEIGHT - AXIS_BOTTOM


def daily_chart(history: list[tuple[str, int]]) -> Chart:
    """Bars for (date, deliveries) pairs given newest first; drawn oldest on the left."""
    days = list(reversed(history))
    peak = max((n for _, n in days), default=0)
    plot_h = HEIGHT - AXIS_BOTTOM - 4
    step = WIDTH / max(len(days), 1)
    bar_w = step * (1 - GAP_RATIO)
    bars = []
    for i, (date, n) in enumerate(days):
        h = 0.0 if peak == 0 else max(1.0, plot_h * n / peak) if n else 0.0
        bars.append(
            Bar(
                date=date,
                total=n,
                x=round(i * step + (step - bar_w) / 2, 2),
                y=round(HEIGHT - AXIS_BOTTOM - h, 2),
                width=round(bar_w, 2),
                height=round(h, 2),
            )
        )
    return Chart(days=len(days), bars=bars, peak=peak, total=sum(n for _, n in days))
