"""Run identity: which script wrote a run, and how two scripts differ.

Every log embeds the full text of the script that wrote it (the text above its first line of 100
'='). Two runs are of the same experiment only if they were written by the same text. This module
groups runs by that text, says in a few words how two texts differ (how many lines, in which
sections and functions, whether only number literals such as a seed changed), and tells whether a
log was written by a given train_gpt_simple.py. tools.stats and tools.results warn when they pool runs
of different scripts (and refuse under --strict); tools.results --check and tools.leaderboard fail an
approach directory none of whose logs was written by its own train_gpt_simple.py.
"""
import difflib
import os
import re

SCRIPT_NAME = "train_gpt_simple.py"
_NUMBER = re.compile(r"(?<![\w.])[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?(?![\w.])")
_RULE = re.compile(r"^#\s*[-=#]{5,}\s*#?\s*$")  # a comment line drawn as a rule: ----- or #####
_TITLE = re.compile(r"^#+\s*(.*?)\s*#*\s*$")
_DEF = re.compile(r"^(\s*)(?:async\s+)?(def|class)\s+([A-Za-z_]\w*)")


def normalize(text):
    """The script text as compared: trailing newlines do not count (a log prints the script plus one)."""
    return None if not text else text.rstrip("\n")


def _places(lines):
    """For every line, (section, scope): the title of the comment section it is in (a comment line after
    a rule of dashes or hashes, as in the benchmark's scripts) and the def/class around it."""
    out, section, after_rule = [], None, False
    top = method = None  # the enclosing top-level def/class, and the method inside a class
    is_class = False
    for line in lines:
        stripped = line.strip()
        if _RULE.match(stripped):
            after_rule = True
        else:
            if after_rule and stripped.startswith("#") and _TITLE.match(stripped).group(1):
                section = re.split(r"[:.]\s", _TITLE.match(stripped).group(1), 1)[0][:60]
            after_rule = False
        m = _DEF.match(line)
        if m and not m.group(1):
            top, method, is_class = m.group(3), None, m.group(2) == "class"
        elif m and is_class:
            method = m.group(3)
        elif stripped and not line[0].isspace() and not stripped.startswith(("#", "@", ")", "]", "}")):
            top = method = None
        out.append((section, f"{top}.{method}" if top and method else top))
    return out


def _excerpt(old, new, width=50):
    """The two lines, cut to the stretch around their first difference."""
    old, new = old.strip(), new.strip()
    if old and new:
        k = next((i for i, (x, y) in enumerate(zip(old, new)) if x != y), min(len(old), len(new)))
        start = max(0, k - 20)
        cut = (lambda s: ("..." if start else "") + s[start:start + width] + ("..." if len(s) > start + width else ""))
        return cut(old), cut(new)
    return (old[:width] + ("..." if len(old) > width else ""), new[:width] + ("..." if len(new) > width else ""))


def diff_summary(a, b, examples=2):
    """A short description of how script text b differs from a: the number of changed lines, whether only
    number literals changed, the sections and functions touched, and an example or two."""
    al, bl = (normalize(a) or "").split("\n"), (normalize(b) or "").split("\n")
    ops = [op for op in difflib.SequenceMatcher(None, al, bl, autojunk=False).get_opcodes() if op[0] != "equal"]
    if not ops:
        return "identical"
    changed = sum(max(i2 - i1, j2 - j1) for _, i1, i2, j1, j2 in ops)
    literals = all(tag == "replace" and i2 - i1 == j2 - j1 and
                   all(_NUMBER.sub("#", al[i]) == _NUMBER.sub("#", bl[j]) for i, j in zip(range(i1, i2), range(j1, j2)))
                   for tag, i1, i2, j1, j2 in ops)
    places = _places(al)
    where = []
    for _, i1, i2, _, _ in ops:
        for i in range(i1, max(i2, i1 + 1)):
            section, scope = places[min(i, len(places) - 1)]
            name = " ".join(x for x in (section and f"section '{section}'", scope and f"in {scope}") if x) or \
                "outside any section"
            if name not in where:
                where.append(name)
    shown = []
    for tag, i1, i2, j1, j2 in ops[:examples]:
        old, new = _excerpt(al[i1] if i2 > i1 else "", bl[j1] if j2 > j1 else "")
        shown.append(f"line {i1 + 1}: `{old}` -> `{new}`" if i2 > i1 and j2 > j1 else
                     f"line {i1 + 1}: removed `{old}`" if i2 > i1 else f"after line {i1}: added `{new}`")
    text = f"{changed} line(s) differ" + (" (only number literals, e.g. a seed)" if literals else "")
    text += "; " + ", ".join(where[:4]) + (f" and {len(where) - 4} more places" if len(where) > 4 else "")
    return text + "; e.g. " + "; ".join(shown)


def group_by_script(trials):
    """[(script text or None, [trials])], the biggest group first (ties: first seen); None = no script."""
    groups = {}
    for t in trials:
        groups.setdefault(normalize(t.script), []).append(t)
    known = sorted(((k, v) for k, v in groups.items() if k is not None), key=lambda kv: -len(kv[1]))
    return known + ([(None, groups[None])] if None in groups else [])


def _names(trials, limit=3):
    more = f" and {len(trials) - limit} more" if len(trials) > limit else ""
    return ", ".join(t.name for t in trials[:limit]) + more


def pool_report(trials):
    """(warnings, same): how the scripts of pooled runs differ. same is True when every run carries the
    same embedded script."""
    groups = group_by_script(trials)
    known = [(k, v) for k, v in groups if k is not None]
    warnings = []
    if len(known) > 1:
        ref, ref_runs = known[0]
        by_kind = {}
        for text, runs in known[1:]:
            summary = diff_summary(ref, text)
            kind = summary.split("; e.g. ")[0].split(" line(s) differ", 1)[1]
            by_kind.setdefault(kind, []).append((summary, runs))
        warnings.append(f"the runs were written by {len(known)} different scripts (pooled anyway; --strict "
                        f"refuses); compared with the script of {_names(ref_runs)}:")
        for kind, items in by_kind.items():
            runs = [t for _, rs in items for t in rs]
            head = (f"{len(items)} other scripts ({_names(runs)}) differ the same way; the first: " if len(items) > 1
                    else f"{_names(runs)}: ")
            warnings.append("  " + head + items[0][0])
    unknown = next((v for k, v in groups if k is None), [])
    if unknown and known:
        warnings.append(f"{_names(unknown)}: no embedded script (a console capture?); which script wrote "
                        f"{'it' if len(unknown) == 1 else 'them'} cannot be checked")
    return warnings, len(known) <= 1 and not (unknown and known)


def check_directory(directory, logs, label="its"):
    """Run identity of an approach directory: (problems, warnings). Every log in `logs` should have been
    written by DIRECTORY/train_gpt_simple.py; a problem when none was, a warning for each that was not."""
    path = os.path.join(directory, SCRIPT_NAME)
    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            own = normalize(f.read())
    except OSError:
        return [], [f"no {SCRIPT_NAME} in {directory}: which script wrote the logs cannot be checked"]
    problems, warnings, written = [], [], 0
    for log in logs:
        name = os.path.basename(log.path)
        script = normalize(log.script)
        if script is None:
            warnings.append(f"{name}: no embedded script: cannot tell whether {label} {SCRIPT_NAME} wrote it")
        elif script == own:
            written += 1
        else:
            warnings.append(f"{name} was not written by {label} {SCRIPT_NAME}; from the file to the log's script: "
                            f"{diff_summary(own, script)}")
    if logs and not written:
        problems.append(f"none of the {len(logs)} log(s) was written by {label} {SCRIPT_NAME} (the script "
                        "embedded in each log differs from the file, or is missing): the results are not of "
                        "this script")
    return problems, warnings
