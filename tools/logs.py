"""Parse the training logs that train_gpt_simple.py writes (logs/<uuid>.txt), and public ones.

A log is the full text of the training script, a line of 100 '=', a header (environment), another
line of 100 '=', then the val lines `step:S/N val_loss:L train_time:Ts step_avg:Ams` of one or more
trials. A val line may carry more `name:value` columns after `val_loss:` (e.g. `val_ema_loss:3.27832`);
each is a metric that the tools can score (`--metric NAME`). Val lines are only read after the first
100-'=' line (the script above it is never parsed); a file without such a line is parsed whole.
Trials start at `trial i/n seed S` lines and, in logs without them, wherever step 0 reappears or the
step goes backwards; a `trial i/n resumed from ...` line (a run continued from its checkpoint) keeps
the trial going. Lines that do not parse are skipped with a warning; a file that cannot be read or
holds no val line at all raises LogError naming the file.

A last line without a newline may have been cut mid-write, so it is read only where its own format
proves it whole: a val line that goes on to `train_time:T(s|ms) step_avg:Mms` (every value before
that is followed by more text, so none of them is cut). When more columns follow step_avg (some
public logs print `ema_beta:0.9` there), the last one of them is not read: it could be cut. A stop
line is whole when it ends as the script ends it ("going on with the next trial"). Any other last
line without a newline (a val line in the short `step:S/N val_loss:L` form, a cut val line, a
`trial i/n seed S`, `resumed from ... at step S` or summary line, whose last number could be cut)
is not read, with a warning naming the file and the line.

A run is complete when its last val line is at step == train_steps (the script always validates
there); one whose last val line is before it "stops early". The script's `trial i/n summary: steps S
final_val_loss V` line must agree: a warning when it says the trial ran to train_steps but the log
has no val line there, or when V is not the last val line's loss. In a resumed run the val lines
printed before the stop come again after the `resumed from ... at step S` line; printed again with
the same value they are dropped quietly, and in a log without trial lines they do not start a run.

read_runs() reads what a user passes: files and directories (walked for *.txt, *.log, *.out,
*.stdout), skips what is not a log with a message, reads a file given twice once, and counts a
run found twice (a copy, a console capture beside its log) once.

    python -m tools.logs LOG...               one line per trial: steps, final val loss, seed
    python -m tools.logs LOG --script [-o F]  the embedded training script (reproduces the run)
"""
import argparse
import hashlib
import json
import math
import os
import re
import sys
from dataclasses import dataclass, field

SEPARATOR = "=" * 100
MAX_BYTES = 1 << 29  # 512 MiB: far above any real log; refuse bigger files rather than exhaust memory
MAX_STEP_DIGITS = 9  # steps below 10**9; longer numbers make the line malformed
LOG_SUFFIXES = (".txt", ".log", ".out", ".stdout")  # what a directory walk reads
APPROACH_FILES = ("train_gpt_simple.py", "README.md", "results.json", ".png")  # in an approach directory by design
DEFAULT_METRIC = "val_loss"
METRIC_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,63}")
MIN_COMMON_FOR_SAME_RUN = 2  # val steps besides step 0 that two runs must share to be called one run

_NUM = r"[-+]?(?:nan|inf(?:inity)?|\d+(?:\.\d*)?(?:[eE][-+]?\d+)?|\.\d+(?:[eE][-+]?\d+)?)"
VAL_RE = re.compile(r"step:(\d+)/(\d+)\s+val_loss:(" + _NUM + r")(?![\w.])", re.IGNORECASE)
COLUMN_RE = re.compile(r"(?<![\w.:])([A-Za-z_][A-Za-z0-9_]{0,63}):(" + _NUM + r")(?![\w.:])", re.IGNORECASE)
TIME_RE = re.compile(r"\btrain_time:(" + _NUM + r")(ms|s)\b", re.IGNORECASE)
AVG_RE = re.compile(r"\bstep_avg:(" + _NUM + r")ms\b", re.IGNORECASE)
# the columns that end a val line in every format the script and the public logs print: what proves a last line
# without a newline whole up to there
TAIL_RE = re.compile(r"\btrain_time:" + _NUM + r"(?:ms|s)\s+step_avg:" + _NUM + r"ms(?=\s|$)", re.IGNORECASE)
STOP_END = "going on with the next trial"  # how the training script ends a stop line
TRIAL_RE = re.compile(r"^\s*trial (\d+)/(\d+) seed (\d+)\s*$")
STOP_RE = re.compile(r"^\s*trial (\d+)/(\d+) stopped:\s*(.*)$")  # a non-finite loss ("stopped by signal" is not)
SUMMARY_RE = re.compile(r"^\s*trial (\d+)/(\d+) summary: steps (\d{1,9}) final_val_loss (" + _NUM + r")(?=\s|$)",
                        re.IGNORECASE)
RESUME_RE = re.compile(r"^\s*trial (\d+)/(\d+) resumed from .* at step (\d{1,9})"
                       r"(?: on world_size \d+ \(micro_batch_seqs \d+\))?\s*$")  # the world size: since 2026-12
WORLD_RE = re.compile(r"\bworld_size[ :=]+(\d{1,6})\b")
DEVICE_RE = re.compile(r"\bdevice(?:_name=| )([^|\n]+?)\s*(?:\||\bwith\b|$)", re.MULTILINE)
ON_DEVICE_RE = re.compile(r"\bon\s+(\S[^|\n]*?)\s+with\s+world_size\b")  # public: "... CUDA 12.8 on NVIDIA H100 NVL with world_size 1"
TORCH_RE = re.compile(r"\bPyTorch\s+(?:version\s+)?(\d[^\s|,]*)")
SHA_RE = re.compile(r"\bscript_sha256[ :=]+([0-9a-f]{64})\b")  # the line --extract (tools.public_claims) adds


def script_sha256(text):
    """The sha256 (hex) of a script embedded in a log, its trailing newlines reduced to one: for a script file
    that ends in one newline, what `sha256sum FILE` prints. None when there is no script."""
    if not text or not text.strip("\n"):
        return None
    return hashlib.sha256((text.rstrip("\n") + "\n").encode("utf-8")).hexdigest()


class LogError(Exception):
    """A file that is not a usable training log; the message names the file."""


@dataclass
class ValPoint:
    step: int
    train_steps: int
    val_loss: float  # may be nan or inf
    train_time: float = None  # seconds
    step_avg: float = None  # milliseconds
    extra: dict = field(default_factory=dict)  # more `name:value` columns of the line: {name: float}
    decimals: int = None  # decimals of val_loss as printed (None: not plain fixed point)

    @property
    def finite(self):
        return math.isfinite(self.val_loss)

    def value(self, metric=DEFAULT_METRIC):
        """The value of a column of this val line (None when the line has no such column)."""
        return self.val_loss if metric == DEFAULT_METRIC else self.extra.get(metric)


@dataclass
class Trial:
    source: str  # the log file's path
    index: int  # 1-based position in its file
    tag: str = None  # "i/n" from a `trial i/n seed S` line
    seed: int = None
    points: list = field(default_factory=list)
    stop_message: str = None  # text of a `trial i/n stopped: ...` line
    resumed_at: list = field(default_factory=list)  # steps of `trial i/n resumed from ... at step S` lines
    script: str = None  # the script embedded in its file (None or "" when the file has none)
    cut: str = None  # the kind of line ("val line", "stop line", ...) the file ends inside, cut after this trial's
    # last val line; None when the file is whole there
    label: str = None  # how its file is named in messages (default: the file's name)
    summary_step: int = None  # the step of its `trial i/n summary: steps S final_val_loss V ...` line
    script_sha256: str = None  # of its file's embedded script, or the script_sha256 line of an extract's header

    @property
    def name(self):
        return f"{self.label or os.path.basename(self.source)}#{self.index}"

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
    def first_nonfinite(self):
        """The first val point whose val loss is nan or inf, or None."""
        return next((p for p in self.points if not p.finite), None)

    @property
    def stopped(self):
        """The run was stopped (a non-finite training loss) or printed a non-finite val loss."""
        return self.stop_message is not None or self.first_nonfinite is not None

    @property
    def complete(self):
        return bool(self.points) and self.final_step == self.train_steps and not self.stopped

    @property
    def ends_early(self):
        """The log has no val line after a step before train_steps, and nothing says why."""
        return bool(self.points) and self.final_step < self.train_steps and not self.stopped

    def losses(self, metric=DEFAULT_METRIC):
        """{step: value of `metric`} over the val lines that carry it."""
        out = {}
        for p in self.points:
            v = p.value(metric)
            if v is not None:
                out[p.step] = v
        return out

    def columns(self):
        """The metrics its val lines carry, val_loss first."""
        names = [DEFAULT_METRIC]
        for p in self.points:
            names += [k for k in p.extra if k not in names]
        return names

    def status(self):
        """How the run ends, in words (for warnings and tables)."""
        if self.stop_message:
            return f"stopped after val step {self.final_step}: {self.stop_message}"
        bad = self.first_nonfinite
        if bad is not None:
            return f"val loss {bad.val_loss} at step {bad.step}"
        if self.ends_early:
            why = f"its file ends inside the next {self.cut}" if self.cut else "no val line after it in its log"
            if self.summary_step == self.train_steps:
                why += f", though its summary line says it ran to step {self.train_steps}"
            return f"stops early at step {self.final_step} of {self.train_steps} ({why})"
        return "complete"


@dataclass
class Log:
    path: str
    script: str = None  # the text before the first 100-'=' line; None when the file has no such line
    header: str = ""  # the text between the first two 100-'=' lines
    world_size: int = None
    device: str = None
    torch: str = None  # the PyTorch version of the header
    script_sha256: str = None  # see script_sha256(); from an extract's header when the script is left out
    trials: list = field(default_factory=list)
    warnings: list = field(default_factory=list)


def _number(text):
    """float(text), mapping overflow to inf; text matched _NUM."""
    try:
        return float(text)
    except (ValueError, OverflowError):
        return None


def _decimals(text):
    m = re.fullmatch(r"[-+]?\d+\.(\d+)", text)
    return len(m.group(1)) if m else (0 if re.fullmatch(r"[-+]?\d+", text) else None)


_PREFIX_RE = re.compile(r"\s*s(?:t(?:e(?:p(?::\d*(?:/\d*(?:\s+(\S*))?)?)?)?)?)?")


def _val_prefix(line):
    """The line is the start of a val line `step:S/N val_loss:...`, cut before its value."""
    m = _PREFIX_RE.fullmatch(line)
    return m is not None and "val_loss:".startswith(m.group(1) or "")


def _last_line(line):
    """(kind, text to read or None, note) for a last line without a newline: the text is the part of the line its
    format proves whole (None: nothing), note says why not or which column is left out."""
    if TRIAL_RE.match(line):
        return "trial line", None, "its seed could be cut"
    if STOP_RE.match(line):
        if line.rstrip().endswith(STOP_END):
            return "stop line", line, None
        return "stop line", None, f"the script ends a stop line with {STOP_END!r}"
    if SUMMARY_RE.match(line):
        return "summary line", None, "its numbers could be cut"
    if RESUME_RE.match(line):
        return "resume line", None, "its step could be cut"
    m = VAL_RE.search(line)
    if m or re.search(r"(?<!\w)val_loss", line) or _val_prefix(line):
        tail = TAIL_RE.search(line, m.end()) if m else None
        if tail is None:
            return "val line", None, "a val line is known whole only when it goes on to train_time and step_avg"
        if line[tail.end():].strip() and not line[-1].isspace():  # columns after step_avg: the last may be cut
            k = max(line.rfind(" "), line.rfind("\t"))
            return "val line", line[:k], f"its last column {line[k + 1:][:40]!r} could be cut: not read"
        return "val line", line, None
    return "line", None, "it may be cut"


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


def _columns(line, start):
    """{name: value} of the numeric `name:value` columns after position `start` (train_time and step_avg
    carry units and are read apart)."""
    out = {}
    for m in COLUMN_RE.finditer(line, start):
        name, value = m.group(1), _number(m.group(2))
        if value is not None and name not in out and name != DEFAULT_METRIC:
            out[name] = value
    return out


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
        m = DEVICE_RE.search(log.header) or ON_DEVICE_RE.search(log.header)
        log.device = m.group(1).strip() if m else None
        m = TORCH_RE.search(log.header)
        log.torch = m.group(1) if m else None
        m = SHA_RE.search(log.header)
        log.script_sha256 = script_sha256(log.script) or (m.group(1) if m else None)
    else:
        body_start = 0

    current = None
    resumed_from = None  # the step of the trial's last resume line, until a val line goes past what was printed

    def new_trial(tag=None, seed=None):
        nonlocal current, resumed_from
        if current is not None and not current.points:
            if current.tag:  # (a run without trial lines starts at its first val line: never empty)
                log.warnings.append(f"{path}: trial {current.tag or current.index} has no val line; left out")
            log.trials.pop()
        current = Trial(source=path, index=len(log.trials) + 1, tag=tag, seed=seed, script=log.script,
                        script_sha256=log.script_sha256)
        log.trials.append(current)
        resumed_from = None

    last = len(lines) - 1
    for lineno in range(body_start, len(lines)):
        line = lines[lineno].rstrip("\r")
        where = f"{path}:{lineno + 1}"
        if unterminated and lineno == last and line == lines[lineno] and line.strip():  # a CR still ends the line
            kind, line, why = _last_line(line)
            if line is None:
                shown = lines[lineno] if len(lines[lineno]) <= 160 else "..." + lines[lineno][-157:]
                log.warnings.append(f"{where}: the file ends inside this {kind} (no newline; {why}): not read: "
                                    f"{shown!r}")
                if current is not None and kind != "trial line":
                    current.cut = kind
                continue
            if why:
                log.warnings.append(f"{where}: the file ends inside this {kind} (no newline): {why}")
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
        m = SUMMARY_RE.match(line)
        if m:  # the script's own account of the trial's end: it must agree with the val lines read
            tag = f"{m.group(1)}/{m.group(2)}"
            target = current if current is not None and current.tag in (tag, None) else None
            if target is None or not target.points or target.stopped:
                continue
            target.summary_step, value, last_point = int(m.group(3)), _number(m.group(4)), target.points[-1]
            if target.summary_step == last_point.train_steps and last_point.step < last_point.train_steps:
                log.warnings.append(f"{where}: the summary says trial {tag} ran to step {target.summary_step}, but its "
                                    f"last val line is at step {last_point.step}: the log lacks its final val line")
            elif target.summary_step == last_point.step and value != last_point.val_loss:  # (a nan one: stopped)
                log.warnings.append(f"{where}: the summary says final_val_loss {m.group(4)}, but the val line at step "
                                    f"{last_point.step} says {last_point.val_loss}")
            continue
        m = RESUME_RE.match(line)
        if m:  # a checkpointed run goes on in the same trial, in the same file
            tag = f"{m.group(1)}/{m.group(2)}"
            if current is not None and current.tag in (tag, None):  # None: a capture without the trial lines
                current.resumed_at.append(int(m.group(3)))
                resumed_from = int(m.group(3))
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
        extra = _columns(line, m.end())
        again = resumed_from is not None and step >= resumed_from  # printed before the stop, printed again
        if current is None or (step == 0 and current.points):
            new_trial()
        elif current.tag is None and current.points and (
                (step < current.points[-1].step and not again) or train_steps != current.points[-1].train_steps):
            new_trial()  # no trial lines: the step going back (or another train_steps) starts the next run
        if current.points:
            prev = current.points[-1]
            if train_steps == prev.train_steps and step <= prev.step and (step == prev.step or again):
                before = next((p for p in current.points if p.step == step), None)
                if before is not None and loss == before.val_loss:
                    continue  # the val of a resumed run's first step(s), printed again
            if step <= prev.step or train_steps != prev.train_steps:
                log.warnings.append(f"{where}: step {step}/{train_steps} after step {prev.step}/{prev.train_steps} "
                                    "in the same trial; skipped")
                continue
        resumed_from = None
        current.points.append(ValPoint(step, train_steps, loss, train_time, step_avg, extra, _decimals(m.group(3))))
    if current is not None and not current.points:
        new_trial()  # drops the empty last trial (with its warning)
        log.trials.pop()
    if not log.trials:
        what = "looks like a binary file" if binary else (
            "only the training script (no run output)" if log.script is not None and body_start >= len(lines)
            else "no val line `step:S/N val_loss:L`")
        raise LogError(f"{path}: not a training log: {what}")
    return log


# ---------------------------------------------------------------------------------------------------------
# Reading what a user passes: files and folders, duplicates, files that are not logs


@dataclass
class Runs:
    """The runs read from the paths a user gave."""
    logs: list = field(default_factory=list)  # every file read as a log
    trials: list = field(default_factory=list)  # the runs, each counted once
    skipped: list = field(default_factory=list)  # messages: files not read (not a log, unreadable)
    notes: list = field(default_factory=list)  # messages: a file given twice, a run found twice

    @property
    def warnings(self):
        return [w for log in self.logs for w in log.warnings]

    def messages(self):
        """Everything a user should read before the numbers, in order."""
        return self.skipped + self.notes + self.warnings


def expand(paths):
    """(files, skipped): the files named, with directories walked (sorted, recursively, hidden entries and the
    files of an approach directory left out) for names ending in LOG_SUFFIXES; skipped holds one message per
    directory for the rest."""
    files, skipped = [], []
    for path in paths:
        if not os.path.isdir(path):
            files.append(path)
            continue
        other = []
        for root, dirs, names in os.walk(path):
            dirs[:] = sorted(d for d in dirs if not d.startswith("."))
            for name in sorted(names):
                if name.startswith(".") or name.endswith(APPROACH_FILES):  # passed over without a word
                    continue
                full = os.path.join(root, name)
                (files if name.lower().endswith(LOG_SUFFIXES) else other).append(full)
        if other:
            shown = ", ".join(os.path.relpath(f, path) for f in other[:5]) + (" ..." if len(other) > 5 else "")
            skipped.append(f"{path}: skipped {len(other)} file(s) not named like a log "
                           f"({'/'.join('*' + s for s in LOG_SUFFIXES)}): {shown}")
    return files, skipped


def _agree(a, b):
    """Two printed val losses are the same number: equal, or equal up to the coarser of two precisions."""
    if a.val_loss == b.val_loss:
        return True
    if a.decimals is None or b.decimals is None or a.decimals == b.decimals:
        return False
    lo, hi = sorted((a.decimals, b.decimals))
    return abs(a.val_loss - b.val_loss) <= 0.5 * 10 ** -lo + 0.5 * 10 ** -hi + 1e-12


def same_run(a, b):
    """The number of val steps (besides step 0) at which two runs agree, when they are one run; else 0.
    One run: the same train_steps, equal val losses at every common val step (besides step 0), and either
    at least MIN_COMMON_FOR_SAME_RUN such steps or one with the same train_time too (a capture of the last
    line alone). Two tagged trials of one file, or runs with different logged seeds, are never one run."""
    if a.train_steps != b.train_steps or (a.seed is not None and b.seed is not None and a.seed != b.seed) or (
            a.source == b.source and a.tag is not None and b.tag is not None):
        return 0
    pb = {p.step: p for p in b.points}
    common = [(p, pb[p.step]) for p in a.points if p.step in pb and p.step != 0]
    if not common or not all(_agree(x, y) for x, y in common):
        return 0
    timed = any(x.train_time is not None and y.train_time is not None and abs(x.train_time - y.train_time) <= 5e-4
                for x, y in common)
    return len(common) if len(common) >= MIN_COMMON_FOR_SAME_RUN or timed else 0


def dedupe(trials):
    """(runs, notes): a run found more than once (a copy of a log, a console capture beside it, ...) counted
    once. Runs whose val losses agree at every common val step are one run; the one with more val lines is
    kept (on a tie, the one with an embedded script, else the first), and takes the other's script when it
    has none."""
    kept, notes = [], []
    for t in trials:
        twin = next(((k, n) for k, n in ((k, same_run(k, t)) for k in kept) if n), None)
        if twin is None:
            kept.append(t)
            continue
        k, n = twin
        fuller = len(t.points) > len(k.points) or (len(t.points) == len(k.points) and t.script and not k.script)
        keep, drop = (t, k) if fuller else (k, t)
        if not keep.script and drop.script:
            keep.script = drop.script
        keep.script_sha256 = keep.script_sha256 or drop.script_sha256
        kept[kept.index(k)] = keep
        notes.append(f"{k.name} and {t.name} hold the same run (equal val loss at all {n} common val steps); "
                     f"counted once, kept {keep.name} ({len(keep.points)} val lines)")
    return kept, notes


def _labels(paths):
    """{path: the shortest tail of it (file name, then parent/name, ...) that no other path shares}."""
    parts = {p: os.path.normpath(p).split(os.sep) for p in paths}
    out = {}
    for p, mine in parts.items():
        for k in range(1, len(mine) + 1):
            if all(other[-k:] != mine[-k:] for q, other in parts.items() if q != p):
                break
        out[p] = "/".join(mine[-k:])
    return out


def read_runs(paths, strict_files=False, allow_empty=False):
    """Read the runs in `paths` (files and directories). A file that is not a log is skipped with a message
    (with strict_files, a file named explicitly raises LogError instead); a file given twice is read once; a
    run found twice counts once. Raises LogError when no run is left (unless allow_empty)."""
    if not paths:
        raise LogError("no log files given")
    files, skipped = expand(paths)
    out = Runs(skipped=skipped)
    seen = {}
    trials = []
    for path in files:
        key = os.path.realpath(path)
        if key in seen:
            out.notes.append(f"{path}: the same file as {seen[key]}; read once")
            continue
        seen[key] = path
        try:
            log = parse_file(path)
        except LogError as e:
            if strict_files and path in paths:
                raise
            out.skipped.append(f"skipped {e}")
            continue
        out.logs.append(log)
        trials += log.trials
    labels = _labels([log.path for log in out.logs])
    for log in out.logs:
        for t in log.trials:
            t.label = labels[log.path]
    if not trials and not allow_empty:
        why = "; ".join(m[len("skipped "):] if m.startswith("skipped ") else m for m in out.skipped[:5]) or "no file"
        raise LogError(f"no training log among {', '.join(paths[:5])}{' ...' if len(paths) > 5 else ''}: {why}")
    out.trials, dup_notes = dedupe(trials)
    out.notes += dup_notes
    return out


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
            "ends_early": t.ends_early, "status": t.status(), "stop_message": t.stop_message,
            "resumed_at": t.resumed_at, "num_val_points": len(t.points), "columns": t.columns()}


def main(argv=None):
    ap = argparse.ArgumentParser(prog="python -m tools.logs", description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter,
                                 epilog="Exit status: 0 ok, 2 a file is not a usable log.")
    ap.add_argument("logs", nargs="+", metavar="LOG", help="log files or directories (walked for logs)")
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
        runs = read_runs(args.logs)
    except LogError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except OSError as e:
        print(f"error: {args.output}: {e.strerror or e}", file=sys.stderr)
        return 2
    for w in runs.messages():
        print(f"warning: {w}", file=sys.stderr)
    if args.json:
        print(dumps([{"path": log.path, "world_size": log.world_size, "device": log.device, "torch": log.torch,
                      "script_sha256": log.script_sha256, "header": log.header, "has_script": bool(log.script),
                      "trials": [trial_summary(t) for t in log.trials], "warnings": log.warnings}
                     for log in runs.logs]))
        return 0
    for log in runs.logs:
        env = ", ".join(x for x in (f"world_size {log.world_size}" if log.world_size else "",
                                    f"device {log.device}" if log.device else "") if x)
        print(f"{log.path}: {len(log.trials)} trial(s)" + (f"; {env}" if env else ""))
        print(f"  {'run':<16} {'seed':>16} {'steps':>11} {'final val':>10}  status")
        for t in log.trials:
            status = "stopped: " + t.stop_message if t.stop_message else t.status()
            if t.resumed_at:
                status += f" (resumed at step {', '.join(map(str, t.resumed_at))})"
            if len(t.columns()) > 1:
                status += f"; columns {', '.join(t.columns())}"
            print(f"  {'#' + str(t.index) + (' (' + t.tag + ')' if t.tag else ''):<16} "
                  f"{'-' if t.seed is None else t.seed:>16} {f'{t.final_step}/{t.train_steps}':>11} "
                  f"{fmt(t.final_val_loss):>10}  {status}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
