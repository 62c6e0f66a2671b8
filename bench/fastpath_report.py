#!/usr/bin/python3
"""Reports bench/fastpath.sh's run: medians, ranges, ratios, targets, plots.

  bench/fastpath_report.py RESULTS.tsv OUTDIR
  bench/fastpath_report.py --sync SYNC_COST.tsv SYNC_BUSY.tsv SECS OUTDIR

RESULTS.tsv has one line per measurement: "CONTENDER ROUND FIGURE VALUE".
Prints, per figure, each contender's median [min-max] over the rounds and
the ratio of its median to kernel DNAT's (for latencies the difference in
µs), then the issue's targets for lbd with the fast path and by how much
each is missed. Writes OUTDIR/fastpath.json (every value, and the summary),
OUTDIR/fastpath.md (the table for docs/benchmarks.md) and the plots
OUTDIR/fastpath-throughput.png and OUTDIR/fastpath-latency.png.
Exits 1 when a contender measured nothing for a figure, or when the fast
path's contender forwarded nothing in the kernel (it would not be the
contender it claims to be).

With --sync it draws OUTDIR/fastpath-sync.png from bench/sync_cost.sh's rows
instead: sync bytes per new connection (slow and saturating rate) and per
second of one busy connection, lbd with and without the fast path next to
kernel DNAT's conntrackd.
"""
import collections
import json
import statistics
import sys

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402  (after the backend is chosen)

REF = "nft"
NAMES = collections.OrderedDict([
    ("fast", "lbd, fast path"),
    ("nfq", "lbd, NFQUEUE only"),
    ("nft", "kernel DNAT"),
    ("haproxy", "HAProxy mode tcp"),
    ("route", "plain routing"),
])
COLOURS = {"fast": "tab:red", "nfq": "tab:orange", "nft": "tab:blue",
           "haproxy": "tab:green", "route": "tab:gray"}
# figure: (label, unit, kind); kind "rate" is compared by ratio (higher is
# better), "latency" by difference in µs (lower is better).
FIGURES = collections.OrderedDict([
    ("bulk1_up", ("bulk, 1 stream, upload", "Gbit/s", "rate")),
    ("bulk1_down", ("bulk, 1 stream, download", "Gbit/s", "rate")),
    ("bulk4_up", ("bulk, 4 streams, upload", "Gbit/s", "rate")),
    ("bulk4_down", ("bulk, 4 streams, download", "Gbit/s", "rate")),
    ("cps", ("new connections/s (close, 32 conns)", "conn/s", "rate")),
    ("ka1_rps", ("keep-alive req/s, 1 conn", "req/s", "rate")),
    ("ka32_rps", ("keep-alive req/s, 32 conns", "req/s", "rate")),
    ("ka1_p50", ("keep-alive p50, 1 conn", "µs", "latency")),
    ("ka1_p99", ("keep-alive p99, 1 conn", "µs", "latency")),
    ("ka32_p50", ("keep-alive p50, 32 conns", "µs", "latency")),
    ("ka32_p99", ("keep-alive p99, 32 conns", "µs", "latency")),
])
RATE_TARGET = 0.9       # of kernel DNAT
P99_TARGET_US = 10.0    # above kernel DNAT's


def load(path):
    v = collections.defaultdict(list)
    for line in open(path):
        c, _r, fig, val = line.split()
        v[(c, fig)].append(float(val))
    return v


def cell(x):
    med = statistics.median(x)
    fmt = "%.2f" if med < 100 else "%.0f"
    return (fmt + " [" + fmt + "-" + fmt + "]") % (med, min(x), max(x))


def compare(fig, x, ref):
    """The median's ratio to the reference's, or its difference in µs."""
    kind = FIGURES[fig][2]
    m, r = statistics.median(x), statistics.median(ref)
    if kind == "latency":
        return "%+.0f µs" % (m - r)
    return "%.2f" % (m / r) if r else "-"


def summary(v, contenders):
    s = {}
    for fig in FIGURES:
        for c in contenders:
            x = v.get((c, fig))
            if x:
                s.setdefault(fig, {})[c] = {
                    "median": statistics.median(x), "min": min(x), "max": max(x), "values": x}
    return s


def print_table(v, contenders, rounds):
    print("fast path benchmark: median [min-max] of %d rounds; vs kernel DNAT: "
          "ratio of medians (latency: difference)" % rounds)
    for fig, (label, unit, _k) in FIGURES.items():
        print("  %s (%s)" % (label, unit))
        for c in contenders:
            x = v.get((c, fig))
            if not x:
                continue
            vs = compare(fig, x, v[(REF, fig)]) if v.get((REF, fig)) else "-"
            print("    %-20s %-26s %s" % (NAMES[c], cell(x), vs))


def markdown(v, contenders, rounds):
    head = "| figure | " + " | ".join(NAMES[c] for c in contenders) + " |"
    rows = [head, "|" + "---|" * (len(contenders) + 1)]
    for fig, (label, unit, _k) in FIGURES.items():
        cells = []
        for c in contenders:
            x = v.get((c, fig))
            if not x:
                cells.append("")
                continue
            vs = ""
            if c != REF and v.get((REF, fig)):
                vs = " (%s)" % compare(fig, x, v[(REF, fig)])
            cells.append(cell(x) + vs)
        rows.append("| %s, %s | %s |" % (label, unit, " | ".join(cells)))
    return "Median [min-max] of %d rounds; in parentheses the ratio of the median " \
           "to kernel DNAT's (latency: the difference).\n\n" % rounds + "\n".join(rows) + "\n"


def targets(v):
    """Lines on the issue's targets for lbd with the fast path."""
    out = []
    for fig, (label, _u, kind) in FIGURES.items():
        x, ref = v.get(("fast", fig)), v.get((REF, fig))
        if not x or not ref:
            continue
        m, r = statistics.median(x), statistics.median(ref)
        if kind == "rate":
            got = m / r if r else 0
            if got >= RATE_TARGET:
                out.append("  met     %-38s %.2fx kernel DNAT (target >= %.1fx)" % (label, got, RATE_TARGET))
            else:
                out.append("  MISSED  %-38s %.2fx kernel DNAT, %.0f%% short of %.1fx" %
                           (label, got, 100 * (RATE_TARGET - got) / RATE_TARGET, RATE_TARGET))
        elif fig.endswith("_p99"):
            d = m - r
            if d <= P99_TARGET_US:
                out.append("  met     %-38s %+.0f µs vs kernel DNAT (target <= +%.0f µs)" % (label, d, P99_TARGET_US))
            else:
                out.append("  MISSED  %-38s %+.0f µs vs kernel DNAT, %.0f µs over +%.0f µs" %
                           (label, d, d - P99_TARGET_US, P99_TARGET_US))
    return out


def bar_groups(ax, figs, contenders, get):
    """Grouped bars: one group per figure, one bar per contender; get(c, fig)
    gives (median, low, high) or None."""
    width = 0.8 / len(contenders)
    for i, c in enumerate(contenders):
        xs, ys, lo, hi = [], [], [], []
        for j, fig in enumerate(figs):
            g = get(c, fig)
            if g is None:
                continue
            xs.append(j - 0.4 + width * (i + 0.5))
            ys.append(g[0])
            lo.append(g[0] - g[1])
            hi.append(g[2] - g[0])
        ax.bar(xs, ys, width, yerr=[lo, hi], capsize=2, label=NAMES[c],
               color=COLOURS[c], edgecolor="black", linewidth=0.4)
    ax.set_xticks(range(len(figs)))
    ax.set_xticklabels([FIGURES[f][0].replace(", ", ",\n", 1) for f in figs], fontsize=8)
    ax.grid(axis="y", alpha=0.3)


def plot(v, contenders, rounds, outdir):
    rates = [f for f, d in FIGURES.items() if d[2] == "rate"]
    lats = [f for f, d in FIGURES.items() if d[2] == "latency"]

    def ratio(c, fig):
        x, ref = v.get((c, fig)), v.get((REF, fig))
        if not x or not ref or not statistics.median(ref):
            return None
        r = statistics.median(ref)
        return statistics.median(x) / r, min(x) / r, max(x) / r

    fig_, ax = plt.subplots(figsize=(12, 5))
    bar_groups(ax, rates, contenders, ratio)
    ax.axhline(1.0, color="tab:blue", linewidth=0.8)
    ax.axhline(RATE_TARGET, color="black", linestyle="--", linewidth=0.8,
               label="target: %.1f× kernel DNAT" % RATE_TARGET)
    ax.set_ylabel("÷ kernel DNAT's median (bars: median, whiskers: range)")
    ax.set_title("Throughput relative to kernel DNAT (%d rounds, contenders alternated)" % rounds)
    ax.legend(fontsize=8, ncol=3)
    fig_.tight_layout()
    fig_.savefig("%s/fastpath-throughput.png" % outdir, dpi=100)
    plt.close(fig_)

    def absolute(c, fig):
        x = v.get((c, fig))
        return (statistics.median(x), min(x), max(x)) if x and min(x) > 0 else None

    if not any(absolute(c, f) for c in contenders for f in lats):
        return
    fig_, ax = plt.subplots(figsize=(12, 5))
    bar_groups(ax, lats, contenders, absolute)
    ax.set_yscale("log")
    ax.set_ylabel("latency, µs (log scale; bars: median, whiskers: range)")
    ax.set_title("Keep-alive request latency through each contender (wrk, %d rounds)" % rounds)
    ax.legend(fontsize=8, ncol=3)
    fig_.tight_layout()
    fig_.savefig("%s/fastpath-latency.png" % outdir, dpi=100)
    plt.close(fig_)


SYNC_NAMES = collections.OrderedDict([
    ("lbd", ("lbd, fast path", "tab:red")),
    ("lbd-nfq", ("lbd, NFQUEUE only", "tab:orange")),
    ("conntrackd", ("kernel DNAT + conntrackd FTFW", "tab:blue")),
])


def plot_sync(cost_path, busy_path, secs, outdir):
    """sync_cost.sh's rows: "C PHASE conns bytes packets records" and
    "C busy bytes packets gbps" (the busy window is secs + 1 long)."""
    per_conn = {}
    for line in open(cost_path):
        c, phase, n, b = line.split()[:4]
        if int(n):
            per_conn[(c, phase)] = int(b) / int(n)
    busy = {}
    for line in open(busy_path):
        c, _b, b, _p, g = line.split()
        busy[c] = (int(b) / (secs + 1), float(g))
    names = [c for c in SYNC_NAMES if any(k[0] == c for k in per_conn) or c in busy]
    fig_, (a1, a2) = plt.subplots(1, 2, figsize=(12, 4.5))
    width = 0.8 / max(len(names), 1)
    for i, c in enumerate(names):
        label, colour = SYNC_NAMES[c]
        xs = [j - 0.4 + width * (i + 0.5) for j in range(2)]
        ys = [per_conn.get((c, p), 0) for p in ("slow", "saturating")]
        a1.bar(xs, ys, width, label=label, color=colour, edgecolor="black", linewidth=0.4)
        if c in busy:
            a2.bar([i], [max(busy[c][0], 1)], 0.6, color=colour, edgecolor="black", linewidth=0.4)
            a2.annotate("%.2f Gbit/s" % busy[c][1], (i, max(busy[c][0], 1)),
                        ha="center", va="bottom", fontsize=8)
    a1.set_xticks(range(2))
    a1.set_xticklabels(["slow (sequential curl)", "saturating (wrk, 32 clients)"])
    a1.set_ylabel("sync bytes per new connection (wire)")
    a1.set_title("Per new connection")
    a1.legend(fontsize=8)
    a1.grid(axis="y", alpha=0.3)
    a2.set_xticks(range(len(names)))
    a2.set_xticklabels([SYNC_NAMES[c][0].replace(" + ", "\n+ ") for c in names], fontsize=8)
    a2.set_yscale("log")
    a2.set_ylabel("sync bytes/s (log scale)")
    a2.set_title("One busy connection (iperf3, its throughput on top)")
    a2.grid(axis="y", alpha=0.3)
    fig_.tight_layout()
    fig_.savefig("%s/fastpath-sync.png" % outdir, dpi=100)
    plt.close(fig_)
    print("plot %s/fastpath-sync.png" % outdir)
    return 0


def main():
    if len(sys.argv) == 6 and sys.argv[1] == "--sync":
        return plot_sync(sys.argv[2], sys.argv[3], float(sys.argv[4]), sys.argv[5])
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    v = load(sys.argv[1])
    outdir = sys.argv[2]
    contenders = [c for c in NAMES if any(k[0] == c for k in v)]
    rounds = max((len(x) for x in v.values()), default=0)
    print_table(v, contenders, rounds)
    bad = ["%s: %s measured nothing" % (NAMES[c], FIGURES[f][0])
           for c in contenders for f in FIGURES
           if f in ("cps", "ka1_rps", "ka32_rps") or f.startswith("bulk")
           for x in [v.get((c, f), [0])] if min(x) <= 0]
    errs = sum(sum(x) for k, x in v.items() if k[1].endswith("_errors") and min(x) >= 0)
    print("  wrk socket errors, all runs: %d" % errs)
    if "fast" in contenders:
        fwd, slow = v.get(("fast", "fp_forwarded"), [0]), v.get(("fast", "nfqueue_packets"), [0])
        print("  lbd, fast path: packets forwarded by the program per round %s, "
              "crossing NFQUEUE %s" % ([int(x) for x in fwd], [int(x) for x in slow]))
        if min(fwd) <= 0:
            bad.append("lbd, fast path: the program forwarded nothing")
    if REF in contenders and "fast" in contenders:
        print("targets for lbd with the fast path:")
        for line in targets(v):
            print(line)
    doc = {"rounds": rounds, "reference": REF, "names": NAMES,
           "figures": {f: {"label": d[0], "unit": d[1], "kind": d[2]} for f, d in FIGURES.items()},
           "results": summary(v, contenders),
           "targets": targets(v) if REF in contenders and "fast" in contenders else []}
    with open("%s/fastpath.json" % outdir, "w") as f:
        json.dump(doc, f, indent=1)
    with open("%s/fastpath.md" % outdir, "w") as f:
        f.write(markdown(v, contenders, rounds))
    if REF in contenders:
        plot(v, contenders, rounds, outdir)
        print("data %s/fastpath.json, table %s/fastpath.md, plots %s/fastpath-*.png" %
              (outdir, outdir, outdir))
    for b in bad:
        print("not ok - %s" % b)
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
