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


# ---------------------------------------------------------------------------------------------------------
# Provenance: what the logs say about where and how the runs were made

_GPU = r"(?:G?H[12]\d0|H20|[ABL]\d{2,3}[A-Z]?|RTX ?\d{4}|V100|T4|MI\d{3}X?)"
_GPU_RE = re.compile(r"(?:(?<![\w.-])|(?<=\d[x×]))" + _GPU + r"(?![\w.])")
# "8xH200", "8 × H100", "2x NVIDIA A40", "one GH200", "16-GPU"
_STATED_RE = re.compile(r"(?:(?<![\w.])(\d{1,3})\s*[x×]\s*(?:NVIDIA\s+)?|\b(one|single|a)\s+(?:NVIDIA\s+)?|"
                        r"(?<![\w.-]))?(" + _GPU + r")(?![\w.])")
_GPU_COUNT_RE = re.compile(r"(?<![\w.])(\d{1,3})[- ]GPUs?\b")
_WORDS = {"one": 1, "single": 1, "a": 1}


def gpu_models(text):
    """The GPU model names (H100, GH200, A800, L20X, ...) named in a text, in order, each once."""
    out = []
    for m in _GPU_RE.finditer(text or ""):
        if m.group(0) not in out:
            out.append(m.group(0))
    return out


def stated_hardware(text):
    """(models, counts): the GPU models a README names, and the GPU counts it states ("8xH200": 8,
    "one GH200": 1, "16-GPU": 16)."""
    models, counts = gpu_models(text), []
    for m in _STATED_RE.finditer(text or ""):
        k = int(m.group(1)) if m.group(1) else _WORDS.get((m.group(2) or "").lower())
        if k and k not in counts:
            counts.append(k)
    for m in _GPU_COUNT_RE.finditer(text or ""):
        if int(m.group(1)) not in counts:
            counts.append(int(m.group(1)))
    return models, counts


def _tally(values):
    """{value: count} in first-seen order, None left out."""
    out = {}
    for v in values:
        if v is not None:
            out[v] = out.get(v, 0) + 1
    return out


def val_cadence(trials):
    """[(val steps, [trials])]: the runs grouped by their val steps up to the last val step every run reached."""
    if not trials:
        return []
    last = min(t.final_step for t in trials)
    groups = {}
    for t in trials:
        groups.setdefault(tuple(p.step for p in t.points if p.step <= last), []).append(t)
    return sorted(groups.items(), key=lambda kv: -len(kv[1]))


def provenance(logs, trials, stated=None):
    """What the logs say about the runs: devices, world sizes and PyTorch versions of their headers, the sha256 of
    their scripts, and flags where they disagree with each other or with `stated` (a README, a results.json's
    hardware): another GPU model or GPU count, runs with different val steps, runs of different scripts."""
    devices = _tally(log.device for log in logs)
    worlds = _tally(log.world_size for log in logs)
    torches = _tally(log.torch for log in logs)
    shas = _tally(t.script_sha256 for t in trials)
    flags = []
    models, counts = stated_hardware(stated) if stated else ([], [])
    logged = [m for d in devices for m in gpu_models(d)]
    if models and devices:
        other = [d for d in devices if not set(gpu_models(d)) & set(models)]
        if other:
            flags.append(f"stated hardware {'/'.join(models)}; logs say {', '.join(other)}")
    elif not devices and logs:
        flags.append(f"{'stated hardware ' + '/'.join(models) + '; ' if models else ''}the logs name no device")
    if counts and worlds and not set(worlds) & set(counts):
        flags.append(f"stated {'/'.join(map(str, counts))} GPU(s); logs say world_size "
                     f"{', '.join(map(str, worlds))}")
    if len(devices) > 1 and not models:
        flags.append(f"{len(devices)} devices in the logs")
    if len(worlds) > 1:
        flags.append(f"world sizes differ: {', '.join(f'{w} ({k} logs)' for w, k in worlds.items())}")
    groups = val_cadence(trials)
    if len(groups) > 1:
        (main, runs), odd = groups[0], [t for _, ts in groups[1:] for t in ts]
        flags.append(f"val steps differ between runs: {len(runs)} run(s) share {len(main)} val steps, "
                     f"{_names(odd)} {'has' if len(odd) == 1 else 'have'} others")
    if len(shas) > 1:
        shown = [s[:8] for s in shas][:4]
        flags.append(f"{len(shas)} different scripts (sha256 {', '.join(shown)}{' ...' if len(shas) > 4 else ''})")
    early = [t for t in trials if t.ends_early]
    if early:
        last = sorted({t.final_step for t in early})
        flags.append(f"{len(early)} of {len(trials)} run(s) end before train_steps {early[0].train_steps} (last val "
                     f"step {', '.join(map(str, last[:4]))}{' ...' if len(last) > 4 else ''})")
    no_script = sum(1 for t in trials if t.script_sha256 is None)
    if no_script and trials:
        flags.append(f"{no_script} of {len(trials)} run(s) without an embedded script")
    return {"devices": devices, "world_sizes": worlds, "torch": torches, "script_sha256": shas,
            "logged_models": logged, "stated_models": models, "stated_counts": counts, "flags": flags}


def provenance_cell(p, sha_digits=8):
    """One line for a table: device xworld size, torch, script sha256 prefix."""
    def one(tally, show=str):
        if not tally:
            return "?"
        return "/".join(show(k) for k in list(tally)[:3]) + (f" +{len(tally) - 3}" if len(tally) > 3 else "")
    dev = one(p["devices"])
    ws = one(p["world_sizes"])
    return (f"{dev} x{ws}, torch {one(p['torch'])}, script "
            f"{one(p['script_sha256'], lambda s: s[:sha_digits])}")
