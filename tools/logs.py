"""Parse the training logs that train_gpt_simple.py writes (logs/<uuid>.txt), and public ones.

A log is the full text of the training script, a line of 100 '=', a header (environment), another
line of 100 '=', then the val lines `step:S/N val_loss:L train_time:Ts step_avg:Ams` of one or more
trials. Val lines are only read after the first 100-'=' line (the script above it is never
parsed); a file without such a line is parsed whole. Trials start at `trial i/n seed S` lines and,
in logs without them, wherever step 0 reappears; a `trial i/n resumed from ...` line (a run
continued from its checkpoint) keeps the trial going. Lines that do not parse are skipped with a warning;
a file that cannot be read or holds no val line at all raises LogError naming the file.

    python -m tools.logs LOG...               one line per trial: steps, final val loss, seed
    python -m tools.logs LOG --script [-o F]  the embedded training script (reproduces the run)
"""
import argparse
import json
import math
import os
import re
import sys
from dataclasses import dataclass, field

SEPARATOR = "=" * 100
MAX_BYTES = 1 << 29  # 512 MiB: far above any real log; refuse bigger files rather than exhaust memory
MAX_STEP_DIGITS = 9  # steps below 10**9; longer numbers make the line malformed

_NUM = r"[-+]?(?:nan|inf(?:inity)?|\d+(?:\.\d*)?(?:[eE][-+]?\d+)?|\.\d+(?:[eE][-+]?\d+)?)"
VAL_RE = re.compile(r"step:(\d+)/(\d+)\s+val_loss:(" + _NUM + r")(?![\w.])", re.IGNORECASE)
TIME_RE = re.compile(r"\btrain_time:(" + _NUM + r")(ms|s)\b", re.IGNORECASE)
AVG_RE = re.compile(r"\bstep_avg:(" + _NUM + r")ms\b", re.IGNORECASE)
TRIAL_RE = re.compile(r"^\s*trial (\d+)/(\d+) seed (\d+)\s*$")
STOP_RE = re.compile(r"^\s*trial (\d+)/(\d+) stopped:\s*(.*)$")  # a non-finite loss ("stopped by signal" is not)
RESUME_RE = re.compile(r"^\s*trial (\d+)/(\d+) resumed from .* at step (\d{1,9})\s*$")
WORLD_RE = re.compile(r"\bworld_size[ :=]+(\d{1,6})\b")
DEVICE_RE = re.compile(r"\bdevice ([^|\n]+?)\s*(?:\||$)", re.MULTILINE)


class LogError(Exception):
    """A file that is not a usable training log; the message names the file."""


@dataclass
class ValPoint:
    step: int
    train_steps: int
    val_loss: float  # may be nan or inf
    train_time: float = None  # seconds
    step_avg: float = None  # milliseconds

    @property
    def finite(self):
        return math.isfinite(self.val_loss)


@dataclass
class Trial:
    source: str  # the log file's path
    index: int  # 1-based position in its file
    tag: str = None  # "i/n" from a `trial i/n seed S` line
    seed: int = None
    points: list = field(default_factory=list)
    stop_message: str = None  # text of a `trial i/n stopped: ...` line
    resumed_at: list = field(default_factory=list)  # steps of `trial i/n resumed from ... at step S` lines

    @property
    def name(self):
        return f"{os.path.basename(self.source)}#{self.index}"

    @property
    def train_steps(self):
        return self.points[-1].train_steps if self.points else None

    @property
    def final_step(self):
        return self.points[-1].step if self.points else None

    @property
    def final_val_loss(self):
        return self.points[-1].val_loss if self.points else None

    @property
    def stopped(self):
        """The run was stopped (a non-finite training loss) or printed a non-finite val loss."""
        return self.stop_message is not None or any(not p.finite for p in self.points)

    @property
    def complete(self):
        return bool(self.points) and self.final_step == self.train_steps and not self.stopped

    def losses(self):
        """{step: val_loss}."""
        return {p.step: p.val_loss for p in self.points}


@dataclass
class Log:
    path: str
    script: str = None  # the text before the first 100-'=' line; None when the file has no such line
    header: str = ""  # the text between the first two 100-'=' lines
    world_size: int = None
    device: str = None
    trials: list = field(default_factory=list)
    warnings: list = field(default_factory=list)


def _number(text):
    """float(text), mapping overflow to inf; text matched _NUM."""
    try:
        return float(text)
    except (ValueError, OverflowError):
        return None


def read_text(path):
    try:
        size = os.path.getsize(path)
        if size > MAX_BYTES:
            raise LogError(f"{path}: {size} bytes; not a training log (limit {MAX_BYTES})")
        with open(path, "rb") as f:
            data = f.read(MAX_BYTES + 1)
    except LogError:
        raise
    except OSError as e:
        raise LogError(f"{path}: cannot read: {e.strerror or e}") from None
    if not data.strip():
        raise LogError(f"{path}: empty file")
    text = data.decode("utf-8", errors="replace")
    return text, data.count(b"\0") > 0


def parse_file(path):
    """Parse one log file into a Log; raises LogError if it is not a usable training log."""
    text, binary = read_text(path)
    return parse_text(text, path, binary=binary)


def parse_text(text, path="<text>", binary=False):
    lines = text.split("\n")
    unterminated = not text.endswith("\n")
    if lines and lines[-1] == "":
        lines.pop()
    seps = [i for i, line in enumerate(lines) if line.rstrip("\r \t") == SEPARATOR]
    log = Log(path=path)
    if seps:
        log.script = "\n".join(lines[:seps[0]]) + ("\n" if seps[0] else "")
        body_start = seps[0] + 1
        if len(seps) > 1:
            log.header = "\n".join(lines[seps[0] + 1:seps[1]])
        m = WORLD_RE.search(log.header)
        log.world_size = int(m.group(1)) if m else None
        m = DEVICE_RE.search(log.header)
        log.device = m.group(1).strip() if m else None
    else:
        body_start = 0

    current = None
    columns = None  # which optional columns the file's val lines carry, to spot a truncated last line

    def new_trial(tag=None, seed=None):
        nonlocal current
        if current is not None and not current.points:
            if current.tag or current.seed is not None:
                log.warnings.append(f"{path}: trial {current.tag or current.index} has no val line (truncated?); "
                                    "left out")
            log.trials.pop()
        current = Trial(source=path, index=len(log.trials) + 1, tag=tag, seed=seed)
        log.trials.append(current)

    for lineno in range(body_start, len(lines)):
        line = lines[lineno].rstrip("\r")
        where = f"{path}:{lineno + 1}"
        m = TRIAL_RE.match(line)
        if m:
            new_trial(tag=f"{m.group(1)}/{m.group(2)}", seed=int(m.group(3)) if len(m.group(3)) < 30 else None)
            continue
        m = STOP_RE.match(line)
        if m:
            tag = f"{m.group(1)}/{m.group(2)}"
            target = current if current is not None and current.tag in (tag, None) else next(
                (t for t in log.trials if t.tag == tag), current)
            if target is None:
                log.warnings.append(f"{where}: stop line before any trial; ignored")
            else:
                target.stop_message = m.group(3).strip()[:500]
            continue
        m = RESUME_RE.match(line)
        if m:  # a checkpointed run goes on in the same trial, in the same file
            tag = f"{m.group(1)}/{m.group(2)}"
            if current is not None and current.tag == tag:
                current.resumed_at.append(int(m.group(3)))
            else:
                log.warnings.append(f"{where}: resume of trial {tag}, which is not the trial in progress; ignored")
            continue
        m = VAL_RE.search(line)
        if not m:
            if "val_loss:" in line:
                log.warnings.append(f"{where}: malformed val line skipped")
            continue
        if len(m.group(1)) > MAX_STEP_DIGITS or len(m.group(2)) > MAX_STEP_DIGITS:
            log.warnings.append(f"{where}: step number too large; line skipped")
            continue
        step, train_steps, loss = int(m.group(1)), int(m.group(2)), _number(m.group(3))
        if loss is None or train_steps == 0 or step > train_steps:
            log.warnings.append(f"{where}: malformed val line (step {step}/{train_steps}) skipped")
            continue
        t = TIME_RE.search(line, m.end())
        a = AVG_RE.search(line, m.end())
        train_time = _number(t.group(1)) if t else None
        if train_time is not None and t.group(2).lower() == "ms":
            train_time /= 1000
        step_avg = _number(a.group(1)) if a else None
        cols = (t is not None, a is not None)
        if lineno == len(lines) - 1 and unterminated and columns is not None and cols != columns:
            log.warnings.append(f"{where}: last line is truncated; skipped")
            continue
        columns = cols
        if current is None or (step == 0 and current.points):
            new_trial()
        if current.points:
            prev = current.points[-1]
            if step == prev.step and train_steps == prev.train_steps and loss == prev.val_loss:
                continue  # the val of a resumed run's first step, printed again
            if step <= prev.step or train_steps != prev.train_steps:
                log.warnings.append(f"{where}: step {step}/{train_steps} after step {prev.step}/{prev.train_steps} "
                                    "in the same trial; skipped")
                continue
        current.points.append(ValPoint(step, train_steps, loss, train_time, step_avg))
    if current is not None and not current.points:
        new_trial()  # drops the empty last trial (with its warning)
        log.trials.pop()
    if not log.trials:
        what = "looks like a binary file" if binary else (
            "only the training script (no run output)" if log.script is not None and body_start >= len(lines)
            else "no val line `step:S/N val_loss:L`")
        raise LogError(f"{path}: not a training log: {what}")
    return log


def load(paths):
    """Parse several files: (logs, trials of all of them in order). Raises LogError on the first bad file."""
    if not paths:
        raise LogError("no log files given")
    logs = [parse_file(p) for p in paths]
    return logs, [t for log in logs for t in log.trials]


def fmt(x, digits=5):
    """A number for tables: fixed point, 'nan'/'inf' for non-finite, '-' for None."""
    if x is None:
        return "-"
    if isinstance(x, float) and not math.isfinite(x):
        return str(x)
    if isinstance(x, float) and abs(x) >= 1e9:
        return f"{x:.{digits}g}"
    return f"{x:.{digits}f}" if isinstance(x, float) else str(x)


def json_safe(obj):
    """obj with every non-finite float replaced by None (JSON has no NaN)."""
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, dict):
        return {str(k): json_safe(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [json_safe(v) for v in obj]
    return obj


def dumps(obj):
    return json.dumps(json_safe(obj), indent=2, allow_nan=False, ensure_ascii=False)


def trial_summary(t):
    return {"run": t.name, "file": t.source, "trial": t.tag, "seed": t.seed, "train_steps": t.train_steps,
            "final_step": t.final_step, "final_val_loss": t.final_val_loss, "stopped": t.stopped,
            "stop_message": t.stop_message, "resumed_at": t.resumed_at, "num_val_points": len(t.points)}


def main(argv=None):
    ap = argparse.ArgumentParser(prog="python -m tools.logs", description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter,
                                 epilog="Exit status: 0 ok, 2 a file is not a usable log.")
    ap.add_argument("logs", nargs="+", metavar="LOG")
    ap.add_argument("--script", action="store_true", help="print the training script embedded in the (one) LOG")
    ap.add_argument("-o", "--output", metavar="FILE", help="with --script: write the script to FILE")
    ap.add_argument("--json", action="store_true", help="machine-readable output")
    args = ap.parse_args(argv)
    try:
        if args.script:
            if len(args.logs) != 1:
                print("--script takes exactly one LOG", file=sys.stderr)
                return 2
            log = parse_file(args.logs[0])
            if not log.script:
                print(f"{args.logs[0]}: holds no embedded script (no line of 100 '=')", file=sys.stderr)
                return 2
            if args.output:
                with open(args.output, "w") as f:
                    f.write(log.script)
                print(f"wrote {args.output} ({len(log.script.splitlines())} lines) from {args.logs[0]}",
                      file=sys.stderr)
            else:
                sys.stdout.write(log.script)
            return 0
        logs, _ = load(args.logs)
    except LogError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except OSError as e:
        print(f"error: {args.output}: {e.strerror or e}", file=sys.stderr)
        return 2
    for log in logs:
        for w in log.warnings:
            print(f"warning: {w}", file=sys.stderr)
    if args.json:
        print(dumps([{"path": log.path, "world_size": log.world_size, "device": log.device,
                      "header": log.header, "has_script": log.script is not None,
                      "trials": [trial_summary(t) for t in log.trials], "warnings": log.warnings}
                     for log in logs]))
        return 0
    for log in logs:
        env = ", ".join(x for x in (f"world_size {log.world_size}" if log.world_size else "",
                                    f"device {log.device}" if log.device else "") if x)
        print(f"{log.path}: {len(log.trials)} trial(s)" + (f"; {env}" if env else ""))
        print(f"  {'run':<16} {'seed':>16} {'steps':>11} {'final val':>10}  status")
        for t in log.trials:
            status = "stopped: " + t.stop_message if t.stop_message else (
                "non-finite val loss" if t.stopped else "complete" if t.complete else "incomplete")
            if t.resumed_at:
                status += f" (resumed at step {', '.join(map(str, t.resumed_at))})"
            print(f"  {'#' + str(t.index) + (' (' + t.tag + ')' if t.tag else ''):<16} "
                  f"{'-' if t.seed is None else t.seed:>16} {f'{t.final_step}/{t.train_steps}':>11} "
                  f"{fmt(t.final_val_loss):>10}  {status}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
