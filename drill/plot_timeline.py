#!/usr/bin/python3
"""Draws a drill's timeline: every stream's progress across a failover.

  drill/plot_timeline.py DRILL.json OUT.png [--event N] [--before S] [--after S]
                         [--note TEXT]

DRILL.json is what `lbdrill live --json` or `lbdrill replay --json` wrote
(with their timeline: on by default in live, --timeline in replay). The
picture has one panel per kind of stream (echo streams, downloads, replayed
connections): each line is one stream's progress (bytes or packets since
the failover began), so a stall is a flat segment. A last panel shows each
stream's silence across the failover as a bar. Vertical lines mark the
failover command, and each moment the drill's watches saw (kill, vip,
role, ...), with their offsets in the legend.
"""
import argparse
import json
import sys

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402  (after the backend is chosen)

KINDS = {
    "echo": ("echo streams", "KiB received", 1024.0),
    "bulk": ("downloads", "MiB received", 1048576.0),
    "conn": ("replayed connections", "packets forwarded\nby the pair", 1.0),
}
MARK_STYLE = {
    "kill": ("black", "-"),
    "vip": ("tab:blue", "--"),
    "role": ("tab:red", "--"),
}


def value_at(ts, vs, t):
    """Progress at time t: the last point at or before t (0 before any)."""
    v = 0
    for ti, vi in zip(ts, vs):
        if ti > t:
            break
        v = vi
    return v


def moments(d, ev_i):
    """(label, t_s, colour, style) of the event's command and its marks."""
    ev = d["events"][ev_i]
    t0 = ev["at_s"]
    first = "failover" if "failover_record" in d else "failover command"
    out = [(first, t0, "grey", ":")]
    nxt = min([e["at_s"] for e in d["events"] if e["at_s"] > t0] + [float("inf")])
    seen = set()
    for m in d.get("marks", []):
        if t0 <= m["t_s"] < nxt and m["name"] not in seen:
            seen.add(m["name"])
            colour, style = MARK_STYLE.get(m["name"], ("tab:green", "-."))
            out.append((m["name"], m["t_s"], colour, style))
    return out


def zero_time(moms):
    """The picture's time zero: the kill if a watch saw it, else the command."""
    for label, t, _, _ in moms:
        if label == "kill":
            return t
    return moms[0][1]


def title_of(d, ev_i):
    ev = d["events"][ev_i]
    if "failover_record" in d:  # lbdrill replay
        return ("lbdrill replay: failover before record #%d; survived %d, new %d, "
                "unsynced %d, LOST %d, MISMATCH %d; longest silence %.1f ms"
                % (d["failover_record"], d["survived"], d["new"], d["unsynced"], d["LOST"],
                   d["MISMATCH"], ev.get("longest_stall_ms") or 0))
    parts = []
    if d.get("conns"):
        parts.append("%d echo: longest stall %s ms" % (d["conns"], ev.get("longest_stall_ms")))
    dl = d.get("downloads") or {}
    if dl.get("n"):
        parts.append("%d downloads: longest stall %s ms" % (dl["n"], ev.get("longest_stall_bulk_ms")))
    if ev.get("lbd_delay_ms") is not None:
        parts.append("lbd's added delay %.1f ms" % ev["lbd_delay_ms"])
    if "title" in d:
        parts.insert(0, d["title"])
    return "; ".join(parts)


def draw_progress(ax, streams, kind, tz, t_from, t_to):
    name, unit, scale = KINDS.get(kind, (kind, "progress", 1.0))
    for s in streams:
        base = value_at(s["t"], s["v"], tz + t_from)
        ts = [t - tz for t in s["t"] if t_from <= t - tz <= t_to]
        vs = [(v - base) / scale for t, v in zip(s["t"], s["v"]) if t_from <= t - tz <= t_to]
        ax.plot(ts, vs, linewidth=0.6, alpha=0.6, drawstyle="steps-post")
    ax.set_ylabel("%s\n(%d, %s)" % (unit, len(streams), name))


def draw_stalls(ax, streams, ev_i, tz, t_from, t_to):
    colours = {"echo": "tab:orange", "bulk": "tab:purple", "conn": "tab:olive"}
    for y, s in enumerate(streams):
        st = s["event_stalls"][ev_i] if ev_i < len(s.get("event_stalls", [])) else None
        if not st or st["ms"] <= 0:
            continue
        ax.broken_barh([(st["from_s"] - tz, st["ms"] / 1000.0)], (y - 0.4, 0.8),
                       color=colours.get(s["kind"], "grey"))
    for kind in sorted({s["kind"] for s in streams}):
        ax.broken_barh([], (0, 0), color=colours.get(kind, "grey"), label=KINDS[kind][0])
    ax.legend(loc="upper right", fontsize=8)
    ax.set_ylabel("stream\n(silence across\nthe failover)")
    ax.set_ylim(-1, max(len(streams), 1))
    ax.set_xlim(t_from, t_to)


def plot(d, out, ev_i, before, after):
    if not d.get("events"):
        sys.exit("plot_timeline: no failover in the JSON")
    streams = (d.get("timeline") or {}).get("streams")
    if not streams:
        sys.exit("plot_timeline: no timeline in the JSON (lbdrill live --timeline-ms > 0)")
    moms = moments(d, ev_i)
    tz = zero_time(moms)
    kinds = [k for k in ("echo", "bulk", "conn") if any(s["kind"] == k for s in streams)]
    fig, axes = plt.subplots(len(kinds) + 1, 1, sharex=True,
                             figsize=(11, 2.6 * (len(kinds) + 1)), squeeze=False)
    axes = [a[0] for a in axes]
    for ax, kind in zip(axes, kinds):
        draw_progress(ax, [s for s in streams if s["kind"] == kind], kind, tz, -before, after)
    ordered = sorted(streams, key=lambda s: (s["kind"], s["i"]))
    draw_stalls(axes[-1], ordered, ev_i, tz, -before, after)
    for ax in axes:
        for label, t, colour, style in moms:
            ax.axvline(t - tz, color=colour, linestyle=style, linewidth=1.2,
                       label="%s (%+.1f ms)" % (label, (t - tz) * 1000))
        ax.grid(alpha=0.3)
    axes[0].legend(loc="upper left", fontsize=8)
    axes[-1].set_xlabel("seconds from the %s" % ("kill" if any(m[0] == "kill" for m in moms)
                                                  else moms[0][0]))
    title = title_of(d, ev_i)
    if d.get("note"):
        title += "\n" + d["note"]
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    fig.savefig(out, dpi=90)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("json")
    ap.add_argument("png")
    ap.add_argument("--event", type=int, default=0, help="which failover (0: the first)")
    ap.add_argument("--before", type=float, default=None, help="seconds before (default: auto)")
    ap.add_argument("--after", type=float, default=None, help="seconds after (default: auto)")
    ap.add_argument("--note", default=None, help="a line added under the title (e.g. lbd's own figures)")
    a = ap.parse_args()
    with open(a.json) as f:
        d = json.load(f)
    if a.event < 0 or a.event >= len(d.get("events", [])):
        sys.exit("plot_timeline: no failover #%d in the JSON" % a.event)
    ev = d["events"][a.event]
    longest = max(ev.get("longest_stall_ms") or 0, ev.get("longest_stall_bulk_ms") or 0) / 1000.0
    after = a.after if a.after is not None else max(1.0, longest + 0.6)
    before = a.before if a.before is not None else max(0.3, after / 4)
    if a.note:
        d["note"] = a.note
    plot(d, a.png, a.event, before, after)
    print(a.png)


if __name__ == "__main__":
    main()
