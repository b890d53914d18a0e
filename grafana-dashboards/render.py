#!/usr/bin/env python3
"""Draws a Grafana dashboard's panels from a real Prometheus into one PNG.

Grafana is not needed: every panel target's `expr` is run through
Prometheus' /api/v1/query_range over the last --minutes, and the series are
drawn where the dashboard's gridPos puts them, with its legends, units and
fixed colours.

    pip install matplotlib
    python3 grafana-dashboards/render.py --prometheus http://127.0.0.1:9090 \
        --minutes 15 --out grafana-dashboards/dashboard.png
"""

import argparse
import json
import math
import re
import sys
import time
import urllib.parse
import urllib.request
from datetime import datetime
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.dates as mdates  # noqa: E402
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.ticker import FuncFormatter  # noqa: E402

HERE = Path(__file__).resolve().parent

# Grafana's dark theme and its classic palette.
BACKGROUND = "#111217"
PANEL = "#181b1f"
TEXT = "#ccccdc"
GRID = "#2c3235"
PALETTE = ["#7EB26D", "#EAB839", "#6ED0E0", "#EF843C", "#E24D42", "#1F78C1",
           "#BA43A6", "#705DA0", "#508642", "#CCA300", "#447EBC", "#C15C17",
           "#890F02", "#0A437C", "#6D1F62", "#584477"]
NAMED = {"green": "#73BF69", "yellow": "#FADE2A", "blue": "#5794F2", "red": "#F2495C",
         "orange": "#FF9830", "purple": "#B877D9"}


def query_range(base, expr, start, end, step):
    params = urllib.parse.urlencode(
        {"query": expr, "start": start, "end": end, "step": step})
    with urllib.request.urlopen(f"{base}/api/v1/query_range?{params}", timeout=30) as r:
        body = json.load(r)
    if body.get("status") != "success":
        raise RuntimeError(f"{expr}: {body}")
    return body["data"]["result"]


def legend(fmt, metric):
    if not fmt:
        return "{" + ", ".join(f'{k}="{v}"' for k, v in sorted(metric.items())) + "}"
    return re.sub(r"\{\{\s*(\w+)\s*\}\}", lambda m: metric.get(m.group(1), ""), fmt)


def scaled(value, steps, suffixes):
    for factor, suffix in zip(steps, suffixes):
        if abs(value) >= factor:
            return f"{value / factor:.3g} {suffix}"
    return f"{value:.3g}"


def formatter(unit):
    def fmt(v, _pos=None):
        if v is None or math.isnan(v):
            return ""
        if unit == "bytes":
            return scaled(v, [2**30, 2**20, 2**10, 1], ["GiB", "MiB", "KiB", "B"])
        if unit == "s":
            if v == 0:
                return "0"
            return f"{v * 1000:.3g} ms" if abs(v) < 1 else f"{v:.3g} s"
        if unit == "percentunit":
            return f"{v * 100:.3g}%"
        if unit == "reqps":
            return f"{v:.3g} req/s"
        return scaled(v, [1e9, 1e6, 1e3, 1], ["G", "M", "k", ""])
    return FuncFormatter(fmt)


def panels_of(dashboard):
    for panel in dashboard["panels"]:
        yield panel
        yield from panel.get("panels", [])


def fixed_colours(panel):
    colours = {}
    for override in panel.get("fieldConfig", {}).get("overrides", []):
        matcher = override.get("matcher", {})
        if matcher.get("id") != "byName":
            continue
        for prop in override.get("properties", []):
            if prop.get("id") == "color":
                name = prop["value"].get("fixedColor")
                colours[matcher["options"]] = NAMED.get(name, name)
    return colours


# Layout, in inches: Grafana's 24 columns over the figure's width, and a
# fixed height per grid unit.
WIDTH = 20.0
UNIT = 0.42
MARGIN = 0.3
GAP = 0.12


class Box:
    """A panel's rectangle in figure fractions, from its gridPos."""

    def __init__(self, fig_height, pos):
        span = WIDTH - 2 * MARGIN
        self.fig_height = fig_height
        self.left = MARGIN + pos["x"] / 24 * span
        self.width = pos["w"] / 24 * span - GAP
        self.top = MARGIN + 0.45 + pos["y"] * UNIT
        self.height = pos["h"] * UNIT - GAP

    def rect(self, left, bottom, right, top):
        """Inches inside the box (from its left and bottom) to figure fractions."""
        x0 = (self.left + left) / WIDTH
        y0 = 1 - (self.top + self.height - bottom) / self.fig_height
        return [x0, y0, (self.width - left - right) / WIDTH,
                (self.height - bottom - top) / self.fig_height]


def draw_row(fig, box, panel):
    fig.text(box.rect(0, 0, 0, 0)[0], 1 - (box.top + box.height * 0.8) / box.fig_height,
             panel["title"], color=TEXT, fontsize=13, fontweight="bold")


def draw_panel(fig, box, panel, series, start, end):
    fig.add_artist(plt.Rectangle(box.rect(0, 0, 0, 0)[:2], box.width / WIDTH,
                                 box.height / box.fig_height, transform=fig.transFigure,
                                 facecolor=PANEL, edgecolor=GRID, linewidth=0.8, zorder=-1))
    columns = max(1, int((box.width - 0.4) / 2.9))
    legend_rows = math.ceil(len(series) / columns) if series else 0
    legend_height = 0.08 + legend_rows * 0.155
    ax = fig.add_axes(box.rect(0.8, legend_height + 0.3, 0.15, 0.38))
    fig.text(*box.rect(0.12, 0, 0, 0.08)[:1], 1 - (box.top + 0.22) / box.fig_height,
             panel["title"], color=TEXT, fontsize=10.5, fontweight="bold")
    ax.set_facecolor(PANEL)
    ax.tick_params(colors=TEXT, labelsize=8)
    for spine in ax.spines.values():
        spine.set_visible(False)
    ax.grid(color=GRID, linewidth=0.6)
    span = end - start
    ax.xaxis.set_major_locator(mdates.AutoDateLocator(minticks=4, maxticks=10))
    ax.xaxis.set_major_formatter(mdates.DateFormatter("%H:%M:%S" if span <= 900 else "%H:%M"))
    ax.set_xlim(datetime.fromtimestamp(start), datetime.fromtimestamp(end))
    defaults = panel.get("fieldConfig", {}).get("defaults", {})
    ax.yaxis.set_major_formatter(formatter(defaults.get("unit", "short")))
    bars = defaults.get("custom", {}).get("drawStyle") == "bars"
    colours = fixed_colours(panel)
    handles = []
    bottoms = {}
    for i, (name, points) in enumerate(series):
        colour = colours.get(name, PALETTE[i % len(PALETTE)])
        times = [datetime.fromtimestamp(t) for t, _ in points]
        values = [v for _, v in points]
        if bars:
            base = [bottoms.get(t, 0.0) for t, _ in points]
            clean = [0.0 if math.isnan(v) else v for v in values]
            width = span / 86400 / max(len(points), 1) * 0.8
            h = ax.bar(times, clean, width=width, bottom=base, color=colour, label=name)
            for (t, _), b, v in zip(points, base, clean):
                bottoms[t] = b + v
        else:
            (h,) = ax.plot(times, values, color=colour, linewidth=1.2, label=name)
            ax.fill_between(times, values, color=colour, alpha=0.08)
        handles.append(h)
    ax.set_ylim(bottom=0)
    if not series:
        ax.text(0.5, 0.5, "No data", color=TEXT, ha="center", va="center",
                transform=ax.transAxes)
    if handles:
        x, y = box.rect(0.12, 0, 0, 0)[:2]
        fig.legend(handles=handles, loc="lower left", ncol=columns, fontsize=8,
                   frameon=False, labelcolor=TEXT, handlelength=1.2, columnspacing=1.2,
                   bbox_to_anchor=(x, y + 0.05 / box.fig_height), borderaxespad=0,
                   borderpad=0, labelspacing=0.25)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--prometheus", default="http://127.0.0.1:9090")
    parser.add_argument("--dashboard", default=str(HERE / "shopd.json"))
    parser.add_argument("--minutes", type=float, default=15)
    parser.add_argument("--end", type=float, help="end time, Unix seconds (default: now)")
    parser.add_argument("--rate-interval", default="20s",
                        help="what $__rate_interval stands for (Grafana: 4 x scrape interval)")
    parser.add_argument("--out", default=str(HERE / "dashboard.png"))
    args = parser.parse_args()

    dashboard = json.loads(Path(args.dashboard).read_text())
    end = args.end or time.time()
    start = end - args.minutes * 60
    step = max(1.0, round(args.minutes * 60 / 240))
    variables = {"$__rate_interval": args.rate_interval, "$__interval": f"{int(step)}s",
                 "$__range": f"{int(args.minutes * 60)}s", "$instance": ".*"}

    panels = list(panels_of(dashboard))
    units = max(p["gridPos"]["y"] + p["gridPos"]["h"] for p in panels)
    height = units * UNIT + 2 * MARGIN + 0.45
    fig = plt.figure(figsize=(WIDTH, height), facecolor=BACKGROUND)
    fig.text(MARGIN / WIDTH, 1 - (MARGIN + 0.25) / height,
             f"{dashboard['title']}: {datetime.fromtimestamp(start):%Y-%m-%d %H:%M:%S}"
             f" to {datetime.fromtimestamp(end):%H:%M:%S}",
             color=TEXT, fontsize=15)
    empty = []
    for panel in panels:
        box = Box(height, panel["gridPos"])
        if panel.get("type") == "row":
            draw_row(fig, box, panel)
            continue
        series = []
        for target in panel.get("targets", []):
            expr = target["expr"]
            for name, value in variables.items():
                expr = expr.replace(name, value)
            for s in query_range(args.prometheus, expr, start, end, step):
                points = [(float(t), float(v)) for t, v in s["values"]]
                series.append((legend(target.get("legendFormat", ""), s["metric"]), points))
        if not series:
            empty.append(panel["title"])
        series.sort(key=lambda s: s[0])
        draw_panel(fig, box, panel, series, start, end)
    fig.savefig(args.out, dpi=80, facecolor=BACKGROUND)
    print(f"wrote {args.out}")
    if empty:
        print(f"panels without data: {', '.join(empty)}", file=sys.stderr)


if __name__ == "__main__":
    main()
