#!/usr/bin/env python3
"""Plot the C10K table: microseconds per select() call against N, one line per backend.

Usage:
    python3 scripts/plot_c10k.py CSV OUT.svg [--column NAME] [--linear-y]
    python3 scripts/plot_c10k.py target/c10k.csv target/c10k.svg    # e.g.

CSV is what `cargo bench --bench c10k` writes (it prints the path; by default
`target/c10k.csv`). OUT.svg is the only file written, and there is no default for it: keep it
under target/ unless you mean to replace a tracked plot (docs/c10k.svg). The SVG is written by
hand: Python's standard library only.

--column picks the y value (default `cpu_us_per_select`: the server's CPU time per loop
iteration, i.e. one select() plus echoing what it returned); any numeric column of the CSV
works, e.g. `wall_us_per_select`, `cpu_us_per_msg`, `syscalls_per_msg`. Both axes are
logarithmic unless --linear-y is given. A backend that refused a registration (select(2) at
fd 1024) gets a dashed marker at the number of connections it reached.
"""

import argparse
import csv
import math
import sys
from xml.sax.saxutils import escape

COLORS = {
    "SelectSelector": "#d62728",
    "PollSelector": "#ff7f0e",
    "EpollSelector": "#1f77b4",
    "DefaultSelector": "#2ca02c",
}
DASHES = {"DefaultSelector": "6 3"}  # epoll twice: tell the two lines apart where they overlap
FALLBACK_COLORS = ["#9467bd", "#8c564b", "#e377c2", "#7f7f7f"]

LABELS = {
    "cpu_us_per_select": "server CPU µs per select() (one loop iteration)",
    "wall_us_per_select": "wall-clock µs per select() (one loop iteration)",
    "cpu_us_per_msg": "server CPU µs per message",
    "syscalls_per_msg": "system calls per message",
    "msgs_per_sec": "messages per second",
}

W, H = 760, 480
LEFT, RIGHT, TOP, BOTTOM = 78, 190, 58, 62


def read(path, column):
    series, caps, active = {}, {}, None
    with open(path, newline="") as f:
        reader = csv.DictReader(f)
        if column not in (reader.fieldnames or []):
            sys.exit(f"plot_c10k: no column {column!r} in {path}; columns: {reader.fieldnames}")
        for row in reader:
            backend, n = row["backend"], int(row["n"])
            series.setdefault(backend, [])
            if row.get("capped_at"):
                caps[backend] = int(row["capped_at"])
                continue
            if row.get(column):
                series[backend].append((n, float(row[column])))
                if n >= 10:
                    active = row.get("active") or active
    for points in series.values():
        points.sort()
    return series, caps, active


def fmt(v):
    if v >= 1000:
        return f"{v:,.0f}"
    if v >= 1:
        return f"{v:g}"
    return f"{v:.2g}"


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("csv")
    ap.add_argument("out")
    ap.add_argument("--column", default="cpu_us_per_select")
    ap.add_argument("--linear-y", action="store_true")
    args = ap.parse_args()

    series, caps, active = read(args.csv, args.column)
    values = [y for pts in series.values() for _, y in pts]
    ns = [n for pts in series.values() for n, _ in pts] + list(caps.values())
    if not values:
        sys.exit(f"plot_c10k: no values in column {args.column!r}")
    log_y = not args.linear_y
    if log_y and min(values) <= 0:
        sys.exit("plot_c10k: values <= 0 cannot go on a log axis; use --linear-y")

    x_lo, x_hi = 10 ** math.floor(math.log10(min(ns))), 10 ** math.ceil(math.log10(max(ns)))
    if x_lo == x_hi:
        x_hi *= 10
    if log_y:
        y_lo = 10 ** math.floor(math.log10(min(values)))
        y_hi = 10 ** math.ceil(math.log10(max(values)))
        if y_lo == y_hi:
            y_hi *= 10
    else:
        y_lo, y_hi = 0.0, max(values) * 1.1

    pw, ph = W - LEFT - RIGHT, H - TOP - BOTTOM

    def px(n):
        t = (math.log10(n) - math.log10(x_lo)) / (math.log10(x_hi) - math.log10(x_lo))
        return LEFT + pw * t

    def py(v):
        if log_y:
            t = (math.log10(v) - math.log10(y_lo)) / (math.log10(y_hi) - math.log10(y_lo))
        else:
            t = (v - y_lo) / (y_hi - y_lo)
        return TOP + ph * (1 - t)

    out = []
    add = out.append
    add(f'<svg xmlns="http://www.w3.org/2000/svg" width="{W}" height="{H}" '
        f'viewBox="0 0 {W} {H}" font-family="Helvetica, Arial, sans-serif" font-size="12">')
    add(f'<rect width="{W}" height="{H}" fill="white"/>')
    title = "C10K: select vs poll vs epoll"
    sub = LABELS.get(args.column, args.column)
    if active:
        sub += f", {active} active connections, N − {active} idle"
    add(f'<text x="{LEFT}" y="24" font-size="16" font-weight="bold">{escape(title)}</text>')
    add(f'<text x="{LEFT}" y="42" fill="#444">{escape(sub)}</text>')

    # Grid and ticks. x: decades with 2..9 minor lines.
    decade = x_lo
    while decade <= x_hi:
        x = px(decade)
        add(f'<line x1="{x:.1f}" y1="{TOP}" x2="{x:.1f}" y2="{TOP + ph}" stroke="#ccc"/>')
        add(f'<text x="{x:.1f}" y="{TOP + ph + 18}" text-anchor="middle">{fmt(decade)}</text>')
        for k in range(2, 10):
            if decade * k < x_hi:
                xm = px(decade * k)
                add(f'<line x1="{xm:.1f}" y1="{TOP}" x2="{xm:.1f}" y2="{TOP + ph}" stroke="#eee"/>')
        decade *= 10
    if log_y:
        ticks, minor = [], []
        v = y_lo
        while v <= y_hi * 1.0001:
            ticks.append(v)
            minor += [v * k for k in range(2, 10) if v * k < y_hi]
            v *= 10
    else:
        step = 10 ** math.floor(math.log10(y_hi / 5))
        for m in (1, 2, 5, 10):
            if y_hi / (step * m) <= 8:
                step *= m
                break
        ticks = [i * step for i in range(int(y_hi / step) + 1)]
        minor = []
    for v in minor:
        y = py(v)
        add(f'<line x1="{LEFT}" y1="{y:.1f}" x2="{LEFT + pw}" y2="{y:.1f}" stroke="#eee"/>')
    for v in ticks:
        y = py(v)
        add(f'<line x1="{LEFT}" y1="{y:.1f}" x2="{LEFT + pw}" y2="{y:.1f}" stroke="#ccc"/>')
        add(f'<text x="{LEFT - 8}" y="{y + 4:.1f}" text-anchor="end">{fmt(v)}</text>')
    add(f'<rect x="{LEFT}" y="{TOP}" width="{pw}" height="{ph}" fill="none" stroke="#333"/>')
    add(f'<text x="{LEFT + pw / 2:.1f}" y="{H - 18}" text-anchor="middle">'
        f'N, registered connections (log scale)</text>')
    ylab = ("µs" if "us" in args.column else args.column) + (" (log scale)" if log_y else "")
    add(f'<text transform="translate(20,{TOP + ph / 2:.1f}) rotate(-90)" text-anchor="middle">'
        f'{escape(ylab)}</text>')

    # Lines, points and value labels at the last point.
    legend_y = TOP + 10
    def order(item):
        return list(COLORS).index(item[0]) if item[0] in COLORS else len(COLORS)

    for i, (backend, points) in enumerate(sorted(series.items(), key=order)):
        color = COLORS.get(backend, FALLBACK_COLORS[i % len(FALLBACK_COLORS)])
        dash = DASHES.get(backend)
        dash_attr = f' stroke-dasharray="{dash}"' if dash else ""
        if len(points) > 1:
            path = " ".join(
                f"{'L' if j else 'M'}{px(n):.1f},{py(v):.1f}" for j, (n, v) in enumerate(points)
            )
            add(f'<path d="{path}" fill="none" stroke="{color}" stroke-width="2.2"{dash_attr}/>')
        for n, v in points:
            add(f'<circle cx="{px(n):.1f}" cy="{py(v):.1f}" r="4" fill="{color}">'
                f'<title>{escape(backend)} N={n}: {v:g}</title></circle>')
        if backend in caps:
            cap = caps[backend]
            x = px(cap)
            add(f'<line x1="{x:.1f}" y1="{TOP}" x2="{x:.1f}" y2="{TOP + ph}" stroke="{color}" '
                f'stroke-width="1.5" stroke-dasharray="4 4"/>')
            add(f'<text x="{x - 5:.1f}" y="{TOP + 16}" fill="{color}" font-size="11" '
                f'text-anchor="end">{escape(backend)} refuses fd 1024 (FD_SETSIZE):</text>')
            add(f'<text x="{x - 5:.1f}" y="{TOP + 30}" fill="{color}" font-size="11" '
                f'text-anchor="end">stopped at {cap:,} connections</text>')
        # Legend, right of the plot.
        lx = LEFT + pw + 18
        add(f'<line x1="{lx}" y1="{legend_y}" x2="{lx + 26}" y2="{legend_y}" stroke="{color}" '
            f'stroke-width="2.2"{dash_attr}/>')
        add(f'<circle cx="{lx + 13}" cy="{legend_y}" r="4" fill="{color}"/>')
        add(f'<text x="{lx + 34}" y="{legend_y + 4}">{escape(backend)}</text>')
        if points:
            n, v = points[-1]
            add(f'<text x="{lx + 34}" y="{legend_y + 19}" fill="#555" font-size="11">'
                f'{fmt(round(v, 1))} at N={n:,}</text>')
        legend_y += 40
    add("</svg>")
    with open(args.out, "w") as f:
        f.write("\n".join(out) + "\n")
    print(f"plot_c10k: wrote {args.out}")


if __name__ == "__main__":
    main()
