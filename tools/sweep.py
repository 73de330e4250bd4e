"""Sweep hyperparameters of an approach: one artifact per value, a journal, a launch plan; then one report.

    python -m tools.sweep SCRIPT --list
    python -m tools.sweep SCRIPT --set NAME=V1,V2,... [--set NAME=...] --out DIR [--seeds S1,S2,...]
                          [--gpus 8] [--per-run 1|2|4|8]
    python -m tools.sweep report DIR [--baseline LOG...] [--logs LOG...] [--ref VARIANT] [--metric NAME] [--z 3]
                          [--json] [--plot FILE.png]
    python -m tools.sweep mark DIR VARIANT SEED RC [--log PATH]     (the launch plan calls it after each run)

NAME is a literal of the script's Init & Optim Hyperparams section (the part between its `# ---` line and the
next): a module-level assignment (`train_steps`, `lookahead_scale`), or a keyword literal of a call there, named
`Callee.keyword` (`Muon.lr`, `AdamW.eps`), with `#k` when the same `Callee.keyword` appears k times
(`dict.lr#2`), or the keyword alone when it is the only one of its name (`mu`). `--list` prints them all. Several
--set give every combination. Each variant is DIR/<NN>_<name>=<value>/train_gpt_simple.py: the script with that
literal replaced, nothing else, checked by the static preflight checks. DIR/journal.jsonl gets one JSON line per
event (variants written or refused, runs finished or failed), appended, never rewritten. DIR/launch.sh runs
every (variant, seed) with torchrun, packing runs of --per-run GPUs onto the --gpus of one machine with
CUDA_VISIBLE_DEVICES; DIR/slurm.sbatch is a SLURM job array of the same runs, one per array task.

report: one table of the runs (steps to 3.28, final val loss per variant and seed), the seed noise sigma of the
baseline measured from logs (--baseline LOG..., else the reference variant's runs, else the public baseline's 10
runs in tools/reference/baseline_curve.csv), and each variant's difference from the reference variant (--ref, else
the variant with the script's own values, else the first) in final val loss: paired by seed over the seeds both
ran, else unpaired; beyond the noise when |difference| >= z * sigma * sqrt(2/k) (paired, k seeds) or
z * sigma * sqrt(1/n + 1/n_ref) (unpaired).

Exit status: 0 ok; 1 a variant failed its checks (sweep) or nothing to report; 2 bad input.
"""
import argparse
import ast
import datetime
import hashlib
import itertools
import json
import math
import os
import re
import shlex
import sys

SECTION = "# Init & Optim Hyperparams"
SEPARATOR = re.compile(r"^# -{20,}\s*$")
SCRIPT_NAME = "train_gpt_simple.py"
JOURNAL = "journal.jsonl"
GPU_COUNTS = (1, 2, 4, 8)
TARGET = 3.28
DEFAULT_SEEDS = "0,1,2"
DEFAULT_Z = 3.0


class SweepError(Exception):
    """Bad input: one line for the user."""


# --- the names of the section's literals -------------------------------------------------------------------------

def section_lines(code):
    """(first, last) 1-based line numbers of the Init & Optim Hyperparams section: from the separator above its
    header to the line before the next separator."""
    lines = code.splitlines()
    for i, line in enumerate(lines):
        if line.startswith(SECTION) and i > 0 and SEPARATOR.match(lines[i - 1]):
            end = next((j for j in range(i + 1, len(lines)) if SEPARATOR.match(lines[j])), len(lines))
            return i, end  # line i (1-based) is the separator, line end (1-based) the last of the section
    raise SweepError(f"no `{SECTION}` section (a `# ----` line, then a line starting with `{SECTION}`): is this a "
                     f"copy of the harness's {SCRIPT_NAME}?")


def _is_literal(node):
    try:
        ast.literal_eval(node)
    except (ValueError, TypeError, SyntaxError, MemoryError, RecursionError):
        return False
    return not isinstance(node, (ast.Dict, ast.Set, ast.List)) and node.lineno == node.end_lineno


def _callee(node):
    f = node.func
    return f.attr if isinstance(f, ast.Attribute) else f.id if isinstance(f, ast.Name) else None


class Literal:
    def __init__(self, name, node, line):
        self.name, self.node, self.line = name, node, line
        self.value = ast.literal_eval(node)

    def text(self, code_lines):
        return _segment(code_lines, self.node)


def _segment(code_lines, node):
    raw = code_lines[node.lineno - 1].encode()
    return raw[node.col_offset:node.end_col_offset].decode()


def literals(code):
    """{name: Literal} of the section's sweepable literals, and {ambiguous name: [names]} for the short forms that
    name more than one."""
    first, last = section_lines(code)
    try:
        tree = ast.parse(code)
    except SyntaxError as e:
        raise SweepError(f"the script does not parse: line {e.lineno}: {e.msg}") from None
    inside = lambda n: first <= n.lineno <= last
    found, calls = {}, []
    for stmt in tree.body:
        if not inside(stmt):
            continue
        if isinstance(stmt, (ast.Assign, ast.AnnAssign)):
            targets = stmt.targets if isinstance(stmt, ast.Assign) else [stmt.target]
            value = stmt.value
            for target in targets:
                if isinstance(target, ast.Name) and value is not None and _is_literal(value):
                    found[target.id] = Literal(target.id, value, value.lineno)
                elif isinstance(target, ast.Tuple) and isinstance(value, ast.Tuple) \
                        and len(target.elts) == len(value.elts):
                    for t, v in zip(target.elts, value.elts):
                        if isinstance(t, ast.Name) and _is_literal(v):
                            found[t.id] = Literal(t.id, v, v.lineno)
        for node in ast.walk(stmt):
            if isinstance(node, ast.Call) and _callee(node):
                calls += [(_callee(node), k) for k in node.keywords if k.arg and _is_literal(k.value)]
    calls.sort(key=lambda ck: (ck[1].value.lineno, ck[1].value.col_offset))
    by_full = {}
    for callee, kw in calls:
        by_full.setdefault(f"{callee}.{kw.arg}", []).append(kw)
    by_kw = {}
    for full, kws in by_full.items():
        for i, kw in enumerate(kws, 1):
            name = full if len(kws) == 1 else f"{full}#{i}"
            found[name] = Literal(name, kw.value, kw.value.lineno)
            by_kw.setdefault(kw.arg, []).append(name)
    ambiguous = {}
    for kw, names in by_kw.items():
        if kw in found:
            continue  # a module-level name of the same spelling wins
        if len(names) == 1:
            found[kw] = found[names[0]]
        else:
            ambiguous[kw] = names
    for full, kws in by_full.items():
        if len(kws) > 1:
            ambiguous[full] = [f"{full}#{i}" for i in range(1, len(kws) + 1)]
    return found, ambiguous


def lookup(found, ambiguous, name):
    if name in found:
        return found[name]
    if name in ambiguous:
        raise SweepError(f"{name} is ambiguous: it names {len(ambiguous[name])} literals: "
                         f"{', '.join(ambiguous[name])}; pick one (--list shows their lines)")
    raise SweepError(f"no literal {name!r} in the Init & Optim Hyperparams section; the names there: "
                     f"{', '.join(sorted(set(found) | set(ambiguous)))} (a constant inside an expression cannot be "
                     "swept: make it a module-level assignment in that section first)")


def _split_values(text):
    """'0.02,0.03,(0.8, 0.9)' -> ['0.02', '0.03', '(0.8, 0.9)']: commas inside brackets or quotes stay."""
    out, depth, cur, quote = [], 0, "", None
    for ch in text:
        if quote:
            quote = None if ch == quote else quote
        elif ch in "'\"":
            quote = ch
        elif ch in "([":
            depth += 1
        elif ch in ")]":
            depth -= 1
        if ch == "," and depth == 0 and not quote:
            out.append(cur.strip())
            cur = ""
        else:
            cur += ch
    out.append(cur.strip())
    return out


def _same_kind(old, new):
    if isinstance(old, bool) or isinstance(new, bool):
        return isinstance(old, bool) and isinstance(new, bool)
    if isinstance(old, (int, float)):  # a float for an int is fine (weight_decay=0 -> 0.01); train_steps is checked
        return isinstance(new, (int, float))
    if isinstance(old, tuple):
        return isinstance(new, tuple) and len(new) == len(old) and all(_same_kind(a, b) for a, b in zip(old, new))
    if old is None or new is None:
        return True
    return type(old) is type(new)


def _kind(value):
    if isinstance(value, bool):
        return "True or False"
    if isinstance(value, (int, float)):
        return "a number"
    if isinstance(value, tuple):
        return f"a tuple of {len(value)}"
    return "None" if value is None else f"a {type(value).__name__}"


def parse_set(item, found, ambiguous):
    """'Muon.lr=0.02,0.03' -> (Literal, ['0.02', '0.03'])."""
    name, sep, values = item.partition("=")
    name = name.strip()
    if not sep or not name or not values.strip():
        raise SweepError(f"--set {item!r}: expected NAME=V1,V2,... (python -m tools.sweep SCRIPT --list shows the names)")
    lit = lookup(found, ambiguous, name)
    texts = _split_values(values)
    for text in texts:
        try:
            new = ast.literal_eval(text)
        except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
            raise SweepError(f"--set {name}: {text!r} is not a Python literal (a number, True/False, None, a string or "
                             "a tuple of them)") from None
        if not _same_kind(lit.value, new):
            raise SweepError(f"--set {name}: {text!r} is {_kind(new)}, but {name} is {ast.unparse(lit.node)} "
                             f"({_kind(lit.value)})")
        if name == "train_steps" and not (type(new) is int and new >= 1):
            raise SweepError(f"--set train_steps: {text!r}: a whole number >= 1")
    if len(set(texts)) != len(texts):
        raise SweepError(f"--set {name}: a value is given twice")
    return lit, texts


def replace(code, edits):
    """`code` with each (Literal, new text) replaced in place; only those lines change."""
    lines = code.splitlines(keepends=True)
    for lit, text in sorted(edits, key=lambda e: (e[0].node.lineno, -e[0].node.col_offset)):
        n = lit.node
        raw = lines[n.lineno - 1].encode()
        lines[n.lineno - 1] = (raw[:n.col_offset] + text.encode() + raw[n.end_col_offset:]).decode()
    return "".join(lines)


def train_steps_literals(code, old):
    """Integer literals of the section's code equal to train_steps (`old`) besides train_steps itself: schedules
    written in absolute steps, which do not follow a new train_steps."""
    first, last = section_lines(code)
    tree = ast.parse(code)
    own = next((n.value for n in tree.body if isinstance(n, ast.Assign) and len(n.targets) == 1
                and isinstance(n.targets[0], ast.Name) and n.targets[0].id == "train_steps"), None)
    out = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Constant) and type(node.value) is int and node.value == old and node is not own \
                and first <= node.lineno <= last:
            out.append(f"line {node.lineno}: {code.splitlines()[node.lineno - 1].strip()[:90]}")
    return out


def static_problems(code):
    """The static preflight checks (tools.preflight.static) of a variant's code: [problem]."""
    from tools.preflight.static import check_hardcoded, check_imports, public_format_problem, script_val_lines
    try:
        tree = ast.parse(code)
    except SyntaxError as e:
        return [f"syntax error at line {e.lineno}: {e.msg}"]
    problems = [f"imports: {p}" for p in check_imports(tree)] + [f"hardcoded: {p}" for p in check_hardcoded(tree)]
    problems += [f"log_format: {p}" for p in script_val_lines(code)]
    public = public_format_problem(tree, SCRIPT_NAME)
    if public:
        problems.append(f"format: {public}")
    return problems


# --- the journal -------------------------------------------------------------------------------------------------

def append_journal(directory, entry):
    entry = {"time": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"), **entry}
    fd = os.open(os.path.join(directory, JOURNAL), os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    with os.fdopen(fd, "a") as f:
        f.write(json.dumps(entry, ensure_ascii=False) + "\n")
        f.flush()
        os.fsync(f.fileno())


def read_journal(directory):
    path = os.path.join(directory, JOURNAL)
    try:
        with open(path) as f:
            lines = f.read().splitlines()
    except OSError as e:
        raise SweepError(f"{path}: {e.strerror or e}: not a sweep directory (python -m tools.sweep writes it)") from None
    out = []
    for i, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            entry = json.loads(line)
        except ValueError:
            raise SweepError(f"{path}:{i}: not a JSON line") from None
        if not isinstance(entry, dict):
            raise SweepError(f"{path}:{i}: not a JSON object")
        out.append(entry)
    return out


# --- writing a sweep ---------------------------------------------------------------------------------------------

def _slug(text):
    return re.sub(r"[^A-Za-z0-9._=+-]+", "_", text).strip("_")[:60]


def variant_name(i, combo):
    return f"{i:02d}_" + "__".join(_slug(f"{lit.name}={text}") for lit, text in combo)


def parse_seeds(text):
    seeds = []
    for part in text.split(","):
        part = part.strip()
        if not (part.isascii() and part.isdigit() and int(part) < 2 ** 63):
            raise SweepError(f"--seeds {text!r}: whole numbers from 0 to 2**63 - 1, comma-separated (each is one run: "
                             "SEED=s ... 1)")
        seeds.append(int(part))
    if len(set(seeds)) != len(seeds):
        raise SweepError(f"--seeds {text!r}: a seed is given twice")
    return seeds


def plan_jobs(variants, seeds, gpus, per_run):
    """[(variant, seed, CUDA_VISIBLE_DEVICES, slot)]: the runs, seed by seed, dealt round-robin over the slots."""
    if per_run not in GPU_COUNTS:
        raise SweepError(f"--per-run {per_run}: 1, 2, 4 or 8 GPUs per run (the script's world sizes)")
    if gpus < per_run or gpus % per_run:
        raise SweepError(f"--gpus {gpus} is not a multiple of --per-run {per_run}")
    slots = gpus // per_run
    jobs = [(v, s) for s in seeds for v in variants]
    return [(v, s, ",".join(str(g) for g in range(k % slots * per_run, (k % slots + 1) * per_run)), k % slots)
            for k, (v, s) in enumerate(jobs)]


RUN_FUNCTION = r'''run() {  # VARIANT SEED: one trial of DIR/VARIANT/train_gpt_simple.py with SEED=seed
  local out="$SWEEP/console/$1_seed$2.out" log rc
  SEED=$2 torchrun --standalone --nproc_per_node=$PER_RUN "$SWEEP/$1/train_gpt_simple.py" 1 > "$out" 2>&1
  rc=$?
  log=$(sed -n 's/^logging to //p' "$out" | head -n 1)
  if [ -n "$log" ] && [ -f "$log" ]; then cp "$log" "$SWEEP/$1/"; fi
  "${PYTHON:-python}" -m tools.sweep mark "$SWEEP" "$1" "$2" "$rc" --log "$log" --console "$out"
}'''


def launch_script(out, jobs, per_run, gpus):
    slots = sorted({j[3] for j in jobs})
    lines = ["#!/usr/bin/env bash",
             f"# Written by python -m tools.sweep: {len(jobs)} runs of {per_run} GPU(s) each, {len(slots)} at a time "
             f"on {gpus} GPUs.",
             "# Run it from the repo root (the script reads data/fineweb10B/ and writes logs/ there):",
             f"#   bash {shlex.quote(os.path.join(out, 'launch.sh'))}",
             "# Each run's log is copied into its variant's directory; its console output goes to console/;",
             "# tools.sweep mark appends how it ended to journal.jsonl. Then: python -m tools.sweep report "
             f"{shlex.quote(out)}",
             "set -u", f"SWEEP={shlex.quote(out)}", f"PER_RUN={per_run}", 'mkdir -p "$SWEEP/console"', RUN_FUNCTION]
    for slot in slots:
        mine = [j for j in jobs if j[3] == slot]
        devices = mine[0][2]
        lines.append(f"(export CUDA_VISIBLE_DEVICES={devices}; " + "; ".join(f"run {shlex.quote(v)} {s}" for v, s, _, _
                                                                            in mine) + ") &")
    lines.append("wait")
    return "\n".join(lines) + "\n"


def slurm_script(out, jobs, per_run):
    pairs = " ".join(shlex.quote(f"{v} {s}") for v, s, _, _ in jobs)
    return "\n".join([
        "#!/usr/bin/env bash",
        f"#SBATCH --job-name=sweep-{_slug(os.path.basename(os.path.normpath(out)))[:40]}",
        f"#SBATCH --array=0-{len(jobs) - 1}",
        "#SBATCH --nodes=1",
        "#SBATCH --ntasks=1",
        f"#SBATCH --gres=gpu:{per_run}",
        f"#SBATCH --output={os.path.join(out, 'console', 'slurm-%A_%a.out')}",
        f"# Written by python -m tools.sweep: one array task per run ({len(jobs)} runs of {per_run} GPU(s)).",
        f"# Submit from the repo root: sbatch {shlex.quote(os.path.join(out, 'slurm.sbatch'))}",
        "set -u", 'cd "${SLURM_SUBMIT_DIR:-.}"', f"SWEEP={shlex.quote(out)}", f"PER_RUN={per_run}",
        'mkdir -p "$SWEEP/console"', RUN_FUNCTION,
        f"JOBS=({pairs})", "run ${JOBS[$SLURM_ARRAY_TASK_ID]}", ""])


def write_sweep(args):
    try:
        with open(args.script, encoding="utf-8") as f:
            code = f.read()
    except (OSError, UnicodeDecodeError) as e:
        raise SweepError(f"{args.script}: {getattr(e, 'strerror', None) or e}") from None
    found, ambiguous = literals(code)
    if args.list:
        lines = code.splitlines()
        print(f"the literals of {args.script}'s Init & Optim Hyperparams section (--set NAME=V1,V2,...):")
        shown = {}
        for name, lit in found.items():
            shown.setdefault(id(lit), (lit, []))[1].append(name)
        for lit, names in sorted(shown.values(), key=lambda x: (x[0].line, x[0].node.col_offset)):
            print(f"  {' = '.join(names):<36} {lit.text(lines):<16} line {lit.line}: {lines[lit.line - 1].strip()[:70]}")
        for name, names in sorted(ambiguous.items()):
            print(f"  {name:<36} ambiguous: {', '.join(names)}")
        return 0
    if not args.set:
        raise SweepError("nothing to sweep: give --set NAME=V1,V2,... (--list shows the names)")
    if not args.out:
        raise SweepError("give --out DIR: where the variants, the journal and the launch plan go")
    sets = [parse_set(item, found, ambiguous) for item in args.set]
    nodes = [id(lit.node) for lit, _ in sets]
    if len(set(nodes)) != len(nodes):
        raise SweepError("two --set name the same literal")
    seeds = parse_seeds(args.seeds)
    lines = code.splitlines()
    original = {lit.name: lit.text(lines) for lit, _ in sets}
    combos = list(itertools.product(*[[(lit, t) for t in texts] for lit, texts in sets]))
    variants = [(variant_name(i, combo), combo) for i, combo in enumerate(combos, 1)]
    jobs = plan_jobs([v for v, _ in variants], seeds, args.gpus, args.per_run)
    out = args.out
    if os.path.exists(os.path.join(out, JOURNAL)):
        before = list(dict.fromkeys(e.get("variant") for e in read_journal(out) if e.get("event") == "variant"))
        if before != [v for v, _ in variants]:
            raise SweepError(f"{out} holds another sweep ({', '.join(map(str, before[:4]))}"
                             f"{' ...' if len(before) > 4 else ''}); give this one its own --out")
    try:
        os.makedirs(os.path.join(out, "console"), exist_ok=True)  # SLURM opens its --output files there
    except OSError as e:
        raise SweepError(f"cannot make {out}: {e.strerror or e}") from None
    sha = hashlib.sha256(code.encode()).hexdigest()
    for lit, texts in sets:
        if lit.name == "train_steps":
            fixed = train_steps_literals(code, lit.value)
            if fixed:
                print(f"warning: train_steps: {len(fixed)} literal(s) of the section equal train_steps "
                      f"{lit.value} and stay as they are in every variant (schedules in absolute steps do not follow "
                      f"train_steps; sweep them too, or write them as fractions of train_steps): " + "; ".join(fixed),
                      file=sys.stderr)
            else:
                print(f"note: train_steps: the section has no other literal {lit.value}: its schedules follow "
                      "train_steps, so replacing the literal is the whole change", file=sys.stderr)
    failed = 0
    print(f"{'variant':<44} {'status':<8} values")
    for name, combo in variants:
        values = {lit.name: text for lit, text in combo}
        new = replace(code, combo)
        entry = {"event": "variant", "variant": name, "values": values, "original": original, "seeds": seeds,
                 "script": args.script, "script_sha256": sha, "variant_sha256": hashlib.sha256(new.encode()).hexdigest()}
        problems = static_problems(new)
        directory = os.path.join(out, name)
        path = os.path.join(directory, SCRIPT_NAME)
        status = "written"
        if problems:
            status = "failed: static checks: " + "; ".join(problems)
        elif os.path.exists(path):
            with open(path, encoding="utf-8", errors="replace") as f:
                status = "exists" if f.read() == new else (f"failed: {path} exists with other content; not overwritten "
                                                           "(use another --out)")
        if status == "written":
            try:
                os.makedirs(directory, exist_ok=True)
                fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
                with os.fdopen(fd, "w", encoding="utf-8") as f:
                    f.write(new)
            except OSError as e:
                status = f"failed: cannot write {path}: {e.strerror or e}"
        append_journal(out, {**entry, "status": status})
        failed += status.startswith("failed")
        print(f"{name:<44} {status.split(':')[0]:<8} " + ", ".join(f"{k}={v}" for k, v in values.items())
              + (f"\n  {status}" if status.startswith("failed") else ""))
    if failed:
        print(f"error: {failed} of {len(variants)} variant(s) failed (kept in {os.path.join(out, JOURNAL)}); no launch "
              "plan written", file=sys.stderr)
        return 1
    with open(os.path.join(out, "launch.sh"), "w") as f:
        f.write(launch_script(out, jobs, args.per_run, args.gpus))
    with open(os.path.join(out, "slurm.sbatch"), "w") as f:
        f.write(slurm_script(out, jobs, args.per_run))
    print(f"\nlaunch plan: {len(jobs)} runs ({len(variants)} variants x {len(seeds)} seeds), {args.per_run} GPU(s) each, "
          f"{args.gpus // args.per_run} at a time on {args.gpus} GPUs:")
    for v, s, devices, _ in jobs[:args.gpus // args.per_run]:
        print(f"  SEED={s} CUDA_VISIBLE_DEVICES={devices} torchrun --standalone --nproc_per_node={args.per_run} "
              f"{os.path.join(out, v, SCRIPT_NAME)} 1")
    if len(jobs) > args.gpus // args.per_run:
        print(f"  ... and {len(jobs) - args.gpus // args.per_run} more, each slot in turn")
    print(f"one machine: bash {os.path.join(out, 'launch.sh')}    a SLURM cluster: sbatch "
          f"{os.path.join(out, 'slurm.sbatch')}    (from the repo root)")
    print(f"check one variant on a CPU first: python -m tools.preflight {os.path.join(out, variants[0][0], SCRIPT_NAME)}")
    return 0


def mark(args):
    entries = read_journal(args.dir)
    if not any(e.get("event") == "variant" and e.get("variant") == args.variant for e in entries):
        raise SweepError(f"{args.variant}: not a variant of {args.dir} (its journal has no such variant)")
    status = "finished" if args.rc == 0 else f"failed: exit status {args.rc}"
    append_journal(args.dir, {"event": "run", "variant": args.variant, "seed": args.seed, "rc": args.rc,
                              "log": args.log or None, "console": args.console, "status": status})
    print(f"{args.variant} seed {args.seed}: {status}")
    return 0


# --- the report --------------------------------------------------------------------------------------------------

def reached(trial, metric="val_loss"):
    """The first val step at which the run's `metric` is <= 3.28 (None: never)."""
    losses = trial.losses(metric)
    return next((s for s in sorted(losses) if losses[s] <= TARGET), None)


def last_value(trial, metric="val_loss"):
    """(step, value) of the run's last val line that carries `metric` ((None, None): none does)."""
    losses = trial.losses(metric)
    return (max(losses), losses[max(losses)]) if losses else (None, None)


def _variants(entries):
    """{variant: its last 'variant' entry with status written/exists}, in order of first appearance."""
    out = {}
    for e in entries:
        if e.get("event") == "variant" and str(e.get("status")) in ("written", "exists"):
            out[e["variant"]] = e
    return out


def collect(directory, variants, extra_logs):
    """{variant: [Trial]}: the logs in each variant's directory, and the --logs whose embedded script is the
    variant's. Returns (runs, messages)."""
    from tools import identity
    from tools.logs import read_runs
    scripts = {}
    for name in variants:
        try:
            with open(os.path.join(directory, name, SCRIPT_NAME), encoding="utf-8", errors="replace") as f:
                scripts[identity.normalize(f.read())] = name
        except OSError:
            pass
    out, messages = {name: [] for name in variants}, []
    paths = {name: [os.path.join(directory, name)] for name in variants}
    if extra_logs:
        runs = read_runs(extra_logs, allow_empty=True)
        messages += runs.skipped
        for log in runs.logs:
            owner = scripts.get(identity.normalize(log.script)) if log.script else None
            if owner:
                paths[owner].append(log.path)
    for name in variants:
        runs = read_runs(paths[name], allow_empty=True)
        messages += [f"{name}: {m}" for m in runs.messages()]
        out[name] = runs.trials
    return out, messages


def noise(baseline, runs_by_variant, ref, metric="val_loss"):
    """{sigma, n, step, mean, source}: the seed noise of `metric` at the final val step common to the runs."""
    from tools.logs import LogError
    from tools.logs import read_runs
    from tools.stats import analyze, check_pool, load_reference
    if baseline:
        runs = read_runs(baseline)
        check_pool(runs.trials, metric=metric)
        a = analyze(runs.trials, metric=metric)
        if a["n"] < 2:
            raise SweepError(f"--baseline: {a['n']} run: the seed noise needs at least 2")
        return {"sigma": a["final"].std, "n": a["n"], "step": a["final"].step, "mean": a["final"].mean,
                "source": f"--baseline {' '.join(baseline)}"}
    trials = runs_by_variant.get(ref) or []
    if len(trials) >= 2:
        try:
            a = analyze(trials, metric=metric)
            return {"sigma": a["final"].std, "n": a["n"], "step": a["final"].step, "mean": a["final"].mean,
                    "source": f"the reference variant {ref}"}
        except LogError:
            pass
    curve = load_reference()
    step = max(curve)
    mean, std, n = curve[step]
    return {"sigma": std, "n": n, "step": step, "mean": mean,
            "source": "the public baseline's runs (tools/reference/baseline_curve.csv)"
                      + ("" if metric == "val_loss" else f"; its std is of val_loss: it has no {metric}")}


def common_step(trials, metric="val_loss"):
    """The last val step at which every run in `trials` logged `metric` (None when there is none)."""
    steps = None
    for t in trials:
        steps = set(t.losses(metric)) if steps is None else steps & set(t.losses(metric))
    return max(steps) if steps else None


def summarize(runs, metric="val_loss"):
    """n, and the mean and std of the val loss at the last val step common to the runs (as tools.stats and
    tools.results take final_val_loss), with the claim: the earliest step that passes the bar over them."""
    from tools.logs import LogError
    from tools.stats import analyze
    row = {"n": len(runs), "mean": None, "std": None, "step": None, "claim": None}
    if runs:
        try:
            a = analyze(runs, metric=metric)
        except LogError:
            return row
        row.update(mean=a["final"].mean, std=a["final"].std, step=a["final"].step,
                   claim=a["claim"].step if a["claim"] else None)
    return row


def compare(runs, ref_runs, sigma, z, metric="val_loss"):
    """The difference in val loss from the reference at the last val step common to all runs of both (each run's
    final val loss when there is none): paired by seed over the seeds both ran, else unpaired."""
    step = common_step(runs + ref_runs, metric)
    value = (lambda t: t.losses(metric)[step]) if step is not None else (lambda t: last_value(t, metric)[1])
    where = f" at step {step}" if step is not None else " (each run's last value: no common val step)"
    mine = {t.seed: value(t) for t in runs if t.seed is not None and value(t) is not None}
    theirs = {t.seed: value(t) for t in ref_runs if t.seed is not None and value(t) is not None}
    common = sorted(set(mine) & set(theirs))
    if common:
        diffs = [mine[s] - theirs[s] for s in common]
        delta, k = sum(diffs) / len(diffs), len(diffs)
        se = sigma * math.sqrt(2 / k)
        how = f"paired over {k} seed(s){where}"
    else:
        a = [value(t) for t in runs if value(t) is not None]
        b = [value(t) for t in ref_runs if value(t) is not None]
        if not a or not b:
            return None
        delta = sum(a) / len(a) - sum(b) / len(b)
        se = sigma * math.sqrt(1 / len(a) + 1 / len(b))
        how = f"unpaired, {len(a)} vs {len(b)} runs{where}"
    zval = delta / se if se > 0 else math.copysign(math.inf, delta) if delta else 0.0
    beyond = math.isfinite(delta) and delta != 0 and abs(delta) >= z * se  # no difference is never beyond
    verdict = ("lower, beyond the noise" if beyond and delta < 0 else "higher, beyond the noise" if beyond
               else "within the noise")
    return {"step": step, "delta": delta, "se": se, "z": zval, "paired": bool(common), "seeds": common, "how": how,
            "beyond": beyond, "verdict": verdict}


def report(args):
    from tools.logs import LogError, fmt
    entries = read_journal(args.dir)
    variants = _variants(entries)
    if not variants:
        raise SweepError(f"{args.dir}: the journal lists no variant that was written")
    try:
        runs, messages = collect(args.dir, variants, args.logs)
    except LogError as e:
        raise SweepError(str(e)) from None
    with_runs = [v for v in variants if runs[v]]
    if not with_runs:
        print(f"no runs yet: no training log in the variants' directories under {args.dir} (bash "
              f"{os.path.join(args.dir, 'launch.sh')} copies them there; --logs LOG... finds them elsewhere)",
              file=sys.stderr)
        return 1
    every = [t for v in with_runs for t in runs[v]]
    if not any(t.losses(args.metric) for t in every):
        columns = sorted({c for t in every for c in t.columns()})
        raise SweepError(f"--metric {args.metric}: no run logs it; the columns these runs log: {', '.join(columns)}")
    if args.ref is not None and args.ref not in variants:
        raise SweepError(f"--ref {args.ref}: not a variant of {args.dir} ({', '.join(variants)})")
    ref = args.ref or next((v for v in variants if variants[v]["values"] == variants[v].get("original")), None) \
        or with_runs[0]
    try:
        sigma = noise(args.baseline, runs, ref, args.metric)
    except LogError as e:
        raise SweepError(f"--baseline: {e}") from None
    failed_runs = [e for e in entries if e.get("event") == "run" and str(e.get("status", "")).startswith("failed")]
    table = []
    for v, e in variants.items():
        s = summarize(runs[v], args.metric)
        cmp_ = (compare(runs[v], runs[ref], sigma["sigma"], args.z, args.metric) if v != ref and runs[v] and runs[ref]
                else None)
        table.append({"variant": v, "values": e["values"], "reference": v == ref, **s, "vs_ref": cmp_,
                      "runs": [{"seed": t.seed, "file": t.name, "steps_to_3_28": reached(t, args.metric),
                                "final_step": last_value(t, args.metric)[0], "train_steps": t.train_steps,
                                "final": last_value(t, args.metric)[1], "status": t.status()} for t in runs[v]]})
    if args.plot:
        plot(table, sigma, args.plot, args.metric)
    if args.json:
        from tools.logs import dumps
        print(dumps({"dir": args.dir, "metric": args.metric, "reference": ref, "noise": sigma, "z": args.z,
                     "variants": table,
                     "failed_runs": failed_runs, "messages": messages}))
        return 0
    for m in messages:
        print(f"note: {m}", file=sys.stderr)
    print(f"sweep {args.dir}: {len(variants)} variants, {sum(len(r) for r in runs.values())} runs; reference {ref}")
    print(f"metric: {args.metric}")
    print(f"noise: sigma {fmt(sigma['sigma'])} (seed std of the final {args.metric} at step {sigma['step']}, n = "
          f"{sigma['n']}, from {sigma['source']})")
    print(f"\n  {'variant':<40} {'seed':>10} {'steps to 3.28':>13} {'final':>10} {'at step':>8}  status")
    for row in table:
        for r in row["runs"]:
            print(f"  {row['variant']:<40} {str(r['seed']) if r['seed'] is not None else '-':>10} "
                  f"{r['steps_to_3_28'] if r['steps_to_3_28'] is not None else 'never':>13} "
                  f"{fmt(r['final']):>10} {r['final_step'] if r['final_step'] is not None else '-':>8}  {r['status']}")
        if not row["runs"]:
            print(f"  {row['variant']:<40} {'-':>10} {'-':>13} {'-':>10} {'-':>8}  no runs")
    print(f"\n  {'variant':<40} {'n':>3} {'mean':>8} {'std':>8} {'at step':>7} {'claim':>6}  vs {ref}")
    for row in table:
        c = row["vs_ref"]
        vs = ("reference" if row["reference"] else "-" if c is None else
              f"{c['delta']:+.5f} +- {c['se']:.5f} ({c['how']}, z {c['z']:+.1f}): {c['verdict']}")
        print(f"  {row['variant']:<40} {row['n']:>3} {fmt(row['mean']):>8} {fmt(row['std']):>8} "
              f"{row['step'] if row['step'] is not None else '-':>7} {row['claim'] if row['claim'] is not None else '-':>6}"
              f"  {vs}")
    print(f"\nbeyond the noise: |difference| >= {args.z:g} x sigma x sqrt(2/k) paired by seed (k seeds both ran), "
          f"else {args.z:g} x sigma x sqrt(1/n + 1/n_ref); claim: the earliest val step that passes bar 0.005 over "
          "the variant's runs (tools.stats)")
    for e in failed_runs:
        print(f"failed run: {e['variant']} seed {e.get('seed')}: {e['status']} (console: {e.get('console')})")
    if args.plot:
        print(f"wrote {args.plot}")
    return 0


def plot(table, sigma, path, metric="val_loss"):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, ax = plt.subplots(figsize=(max(6, 1.2 * len(table)), 4.5))
    ref = next((r for r in table if r["reference"]), None)
    if ref is not None and ref["mean"] is not None:
        ax.axhspan(ref["mean"] - sigma["sigma"], ref["mean"] + sigma["sigma"], color="0.85",
                   label=f"reference mean +- seed noise ({sigma['sigma']:.5f})")
    ax.axhline(TARGET, color="red", lw=0.8, ls="--", label="3.28")
    for i, row in enumerate(table):
        ys = [r["final"] for r in row["runs"] if r["final"] is not None and math.isfinite(r["final"])]
        ax.scatter([i] * len(ys), ys, s=14, color="C0", alpha=0.6)
        if row["mean"] is not None and math.isfinite(row["mean"]):
            ax.scatter([i], [row["mean"]], marker="_", s=400, color="C1" if row["reference"] else "C0")
    ax.set_xticks(range(len(table)))
    ax.set_xticklabels([", ".join(f"{k}={v}" for k, v in r["values"].items()) for r in table], rotation=30, ha="right",
                       fontsize=8)
    ax.set_ylabel(f"final {metric}")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


# --- the command line --------------------------------------------------------------------------------------------

def _positive(text):
    if not text.isascii() or not text.isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"{text!r}: a whole number >= 1")
    return int(text)


def _metric(text):
    from tools.logs import METRIC_RE
    if not METRIC_RE.fullmatch(text):
        raise argparse.ArgumentTypeError(f"{text!r}: a column name such as val_loss or val_ema_loss")
    return text


def _z(text):
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r}: a number such as 3") from None
    if not (math.isfinite(value) and value > 0):
        raise argparse.ArgumentTypeError(f"{text!r}: a number above 0")
    return value


def main(argv=None):
    argv = sys.argv[1:] if argv is None else list(argv)
    if argv and argv[0] == "report":
        ap = argparse.ArgumentParser(prog="python -m tools.sweep report", description="One table of a sweep's runs, "
                                     "the baseline's seed noise, and the differences beyond it.")
        ap.add_argument("dir", metavar="DIR")
        ap.add_argument("--baseline", nargs="+", metavar="LOG", help="logs of the baseline's seeds: the noise")
        ap.add_argument("--logs", nargs="+", metavar="LOG", help="more logs (e.g. logs/), each given to the variant "
                        "whose script it embeds")
        ap.add_argument("--ref", metavar="VARIANT", help="the variant the others are compared with")
        ap.add_argument("--metric", type=_metric, default="val_loss", metavar="NAME",
                        help="the val-line column to compare (default val_loss), e.g. val_ema_loss")
        ap.add_argument("--z", type=_z, default=DEFAULT_Z, help="how many standard errors count as beyond the noise "
                        f"(default {DEFAULT_Z:g})")
        ap.add_argument("--json", action="store_true")
        ap.add_argument("--plot", metavar="FILE.png")
        args, run = ap.parse_args(argv[1:]), report
    elif argv and argv[0] == "mark":
        ap = argparse.ArgumentParser(prog="python -m tools.sweep mark", description="Append how a run ended to the "
                                     "journal (the launch plan calls it).")
        ap.add_argument("dir", metavar="DIR")
        ap.add_argument("variant", metavar="VARIANT")
        ap.add_argument("seed", type=int, metavar="SEED")
        ap.add_argument("rc", type=int, metavar="RC")
        ap.add_argument("--log")
        ap.add_argument("--console")
        args, run = ap.parse_args(argv[1:]), mark
    else:
        ap = argparse.ArgumentParser(prog="python -m tools.sweep", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
        ap.add_argument("script", metavar="SCRIPT", help="an approach's train_gpt_simple.py")
        ap.add_argument("--list", action="store_true", help="list the names --set accepts")
        ap.add_argument("--set", action="append", metavar="NAME=V1,V2,...", help="a literal and its values (repeatable: "
                        "every combination)")
        ap.add_argument("--seeds", default=DEFAULT_SEEDS, metavar="S1,S2,...", help="one run per seed and variant "
                        f"(default {DEFAULT_SEEDS}); the same seeds for every variant pair the runs")
        ap.add_argument("--out", metavar="DIR", help="where the variants, journal.jsonl, launch.sh and slurm.sbatch go")
        ap.add_argument("--gpus", type=_positive, default=8, help="GPUs of the machine (default 8)")
        ap.add_argument("--per-run", type=_positive, default=8, help="GPUs per run: 1, 2, 4 or 8 (default 8)")
        args, run = ap.parse_args(argv), write_sweep
    try:
        return run(args)
    except SweepError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
