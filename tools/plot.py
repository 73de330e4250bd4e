"""Plot val loss against step: one curve per approach, with the public baseline for comparison.

    python -m tools.plot A1.txt A2.txt -o curve.png
    python -m tools.plot A1.txt A2.txt --group B1.txt B2.txt --label muon --label adamw -o curve.png
    python -m tools.plot records/X/public_logs --metric val_ema_loss -o plots/

An approach is a group of logs (files or directories walked for logs): the positional LOGs are the
first group, and every --group LOG... adds one more (put the positional LOGs first: --group takes
every file after it). All runs of a group's logs are its runs (a run found twice counts once), drawn
as their mean with a +-1 std band over the val steps present in every run. --label names the groups
in order (one per group; default: the first file's name). --metric NAME plots another column of the
val lines (e.g. val_ema_loss; default val_loss). Single runs are drawn as faint lines. The top
panel shows the whole run (log scale), the bottom one the last 20% of the steps; both show the 3.28
target and the public baseline's val_loss mean +- std (tools/reference/baseline_curve.csv;
--no-reference leaves it out). A value that is not finite (a run that diverged) is not drawn: the
run's line, and the mean line where a run is not finite, break there, and a note on stderr names the
run and the steps. -o names the PNG; an existing directory gets DIR/curve.png, a name
without an extension gets .png, and the output says the path it wrote.

Exit status: 0 written, 2 bad input.
"""
import argparse
import math
import os
import sys

from tools.logs import DEFAULT_METRIC, LogError, read_runs
from tools.stats import TARGET, add_metric_argument, load_reference

COLORS = ["#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b", "#e377c2", "#17becf"]


def group_curve(trials, metric=DEFAULT_METRIC):
    """(steps, mean, std) of `metric` over the val steps present in every run; mean and std are nan at a step
    where a run's value is not finite, so the drawn line breaks there instead of bridging the gap."""
    maps = [t.losses(metric) for t in trials]
    common = set.intersection(*(set(m) for m in maps))
    steps, means, stds = [], [], []
    for s in sorted(common):
        vals = [m[s] for m in maps]
        if all(math.isfinite(v) for v in vals):
            mean = sum(vals) / len(vals)
            sd = math.sqrt(sum((v - mean) ** 2 for v in vals) / (len(vals) - 1)) if len(vals) > 1 else 0.0
        else:
            mean = sd = float("nan")
        steps.append(s)
        means.append(mean)
        stds.append(sd)
    return steps, means, stds


def run_series(trial, metric=DEFAULT_METRIC):
    """(steps, values) of one run, nan where its value is not finite (inf too): the line breaks there."""
    points = sorted(trial.losses(metric).items())
    return [s for s, _ in points], [v if math.isfinite(v) else float("nan") for _, v in points]


def _steps(steps):
    return ", ".join(map(str, steps[:6])) + (f" ... ({len(steps)} steps)" if len(steps) > 6 else "")


def gap_notes(groups, labels, metric=DEFAULT_METRIC):
    """One line per run with a value that is not finite, and per group whose mean has a gap: where the
    plot draws no point and breaks the line."""
    notes = []
    for label, group in zip(labels, groups):
        for t in group:
            bad = [s for s, v in sorted(t.losses(metric).items()) if not math.isfinite(v)]
            if bad:
                notes.append(f"{label}: {t.name}: {metric} is not finite at step {_steps(bad)}: no point there, "
                             "its line breaks")
        steps, means, _ = group_curve(group, metric)
        gaps = [s for s, m in zip(steps, means) if m != m]
        if gaps:
            notes.append(f"{label}: no mean at step {_steps(gaps)} (a run's {metric} is not finite there): "
                         "the mean line breaks")
    return notes


def plot(groups, labels, output, reference=True, title=None, metric=DEFAULT_METRIC):
    """groups: [[Trial]]; writes a PNG to output."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    curves = [group_curve(g, metric) for g in groups]
    max_step = max(t.final_step for g in groups for t in g)
    ref = load_reference() if reference else {}
    ref_steps = [s for s in sorted(ref) if s <= max_step]
    if len(ref_steps) < 2:  # runs far shorter than the baseline's: nothing to compare
        ref_steps = []

    fig, (top, zoom) = plt.subplots(2, 1, figsize=(10, 9), gridspec_kw={"height_ratios": [1, 1]})
    lo = 0.8 * max_step
    zoom_vals = []
    for ax, zoomed in ((top, False), (zoom, True)):
        if ref_steps:
            rs = np.array(ref_steps, dtype=float)
            rm = np.array([ref[s][0] for s in ref_steps])
            rd = np.array([ref[s][1] for s in ref_steps])
            ax.fill_between(rs, rm - rd, rm + rd, color="0.6", alpha=0.35, lw=0)
            ax.plot(rs, rm, color="0.35", lw=1.2, ls="--", marker="." if zoomed else None,
                    label="public baseline (Muon, val_loss, mean +- std of 10 runs)")
            if zoomed:
                zoom_vals += [v for s, v in zip(rs, rm) if s >= lo]
        for i, (group, (steps, mean, sd), label) in enumerate(zip(groups, curves, labels)):
            c = COLORS[i % len(COLORS)]
            s, m, d = np.array(steps, dtype=float), np.array(mean), np.array(sd)
            for t in group:  # the single runs, faint (a stopped run shows where it ends); nan breaks the line
                xs, ys = run_series(t, metric)
                if xs:
                    ax.plot(xs, ys, color=c, lw=0.8, alpha=0.45, marker="." if zoomed else None, ms=3)
                    if zoomed:
                        zoom_vals += [v for st, v in zip(xs, ys) if st >= lo]
            if zoomed:
                zoom_vals += [v for st, v, e in zip(steps, mean, sd) if st >= lo for v in (v - e, v + e)]
            ax.fill_between(s, m - d, m + d, color=c, alpha=0.25, lw=0)
            ax.plot(s, m, color=c, lw=1.8, marker="." if zoomed else None,
                    label=f"{label} (n={len(group)}, mean +- std)")
        ax.axhline(TARGET, color="black", lw=0.9, ls=":", label="target 3.28")
        ax.grid(True, alpha=0.3)
        ax.set_ylabel(metric.replace("_", " "))
    top.set_yscale("log")
    top.set_xlim(0, max_step * 1.01)
    finite = [v for g in groups for t in g for v in t.losses(metric).values() if math.isfinite(v)] + [TARGET]
    y0, y1 = min(finite) * 0.98, max(finite) * 1.05
    top.set_ylim(y0, y1)
    ticks = [t for t in (2, 2.5, 3, 3.28, 3.5, 4, 4.5, 5, 6, 7, 8, 10, 12, 15, 20, 30) if y0 <= t <= y1]
    top.yaxis.set_major_locator(matplotlib.ticker.FixedLocator(ticks))
    top.yaxis.set_major_formatter(matplotlib.ticker.FormatStrFormatter("%g"))
    top.yaxis.set_minor_locator(matplotlib.ticker.NullLocator())
    top.set_title(title or f"{metric.replace('_', ' ')} vs step")
    top.legend(loc="upper right", fontsize=9)
    zoom.set_xlim(lo, max_step * 1.005)
    zoom_vals = [v for v in zoom_vals if math.isfinite(v)] or [TARGET]
    if min(zoom_vals) - TARGET < 0.05:  # show the target when the curves come near it
        zoom_vals.append(TARGET)
    data_lo, data_hi = min(zoom_vals), max(zoom_vals)
    pad = max(1e-3, 0.08 * (data_hi - data_lo))
    zoom.set_ylim(data_lo - pad, data_hi + pad)
    zoom.set_xlabel("step")
    zoom.set_title(f"last 20% of steps ({lo:g}-{max_step}); faint lines: single runs")
    fig.tight_layout()
    fig.savefig(output, dpi=110, format=os.path.splitext(output)[1][1:].lower())
    plt.close(fig)


def output_path(output):
    """The file a PNG for `output` goes to: DIR/curve.png for a directory, NAME.png for a name without an
    extension; else the name itself."""
    if os.path.isdir(output) or output.endswith(("/", os.sep)):
        return os.path.join(output, "curve.png")
    return output if os.path.splitext(output)[1] else output + ".png"


def main(argv=None):
    ap = argparse.ArgumentParser(prog="python -m tools.plot", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("logs", nargs="*", metavar="LOG", help="the logs of the first approach (files or directories)")
    ap.add_argument("--group", nargs="+", action="append", default=[], metavar="LOG",
                    help="the logs of one more approach (repeatable)")
    ap.add_argument("--label", action="append", default=[], metavar="NAME",
                    help="a group's name, in order (repeatable)")
    ap.add_argument("-o", "--output", required=True, metavar="PNG",
                    help="the PNG to write (a directory: DIR/curve.png)")
    ap.add_argument("--title")
    ap.add_argument("--no-reference", action="store_true", help="leave out the public baseline curve")
    add_metric_argument(ap)
    args = ap.parse_args(argv)
    file_groups = ([args.logs] if args.logs else []) + args.group
    if not file_groups:
        ap.error("give at least one LOG")
    if args.label and len(args.label) != len(file_groups):
        print(f"error: {len(args.label)} --label for {len(file_groups)} group(s); give one per group or none",
              file=sys.stderr)
        return 2
    try:
        groups = []
        for files in file_groups:
            runs = read_runs(files)
            for message in runs.skipped + runs.notes:
                print(f"note: {message}", file=sys.stderr)
            groups.append(runs.trials)
    except LogError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    labels = args.label or [os.path.splitext(os.path.basename(os.path.normpath(f[0])))[0] +
                            (f" +{len(f) - 1}" if len(f) > 1 else "") for f in file_groups]
    bad = [label for label, g in zip(labels, groups) if not any(m == m for m in group_curve(g, args.metric)[1])]
    if bad:
        print(f"error: group {', '.join(bad)}: no val step with a finite {args.metric} in every run "
              f"(the columns these runs log: {', '.join(sorted({c for g in groups for t in g for c in t.columns()}))})",
              file=sys.stderr)
        return 2
    for note in gap_notes(groups, labels, args.metric):
        print(f"note: {note}", file=sys.stderr)
    output = output_path(args.output)
    try:
        plot(groups, labels, output, reference=not args.no_reference, title=args.title, metric=args.metric)
    except (OSError, ValueError) as e:
        print(f"error: {output}: {e}", file=sys.stderr)
        return 2
    print(f"wrote {output}: " + "; ".join(f"{lab}: {len(g)} runs" for lab, g in zip(labels, groups))
          + ("" if args.metric == DEFAULT_METRIC else f" ({args.metric})"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
