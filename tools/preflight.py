"""Check a modified train_gpt_simple.py on the CPU, before paying for a GPU run.

    python -m tools.preflight path/to/train_gpt_simple.py               every step of its train_steps
    python -m tools.preflight path/to/train_gpt_simple.py --steps 30    a quick look
    python -m tools.preflight path/to/train_gpt_simple.py --json        a machine-readable report
    python -m tools.preflight path/to/train_gpt_simple.py --keep-logs DIR   keep the CPU runs' logs

Runs the script's own code (init_params, make_optimizers, set_hparams, the extension points, main()
and its training loop) on the tiny model of tools.tiny (width 16) with synthetic shards in a temporary
directory: 2 trials of 10 steps on 1 rank (gradient accumulation, the trial split of the log), every
step of train_steps on 1 rank, 2 trials of 10 steps on 2 gloo ranks (gradient sums, the sharded
optimizer), and the last steps on 2 ranks, resumed from the long run's checkpoint; three more runs
stop with SIGTERM and resume, to compare with the runs that went on. tools.preflight_probes watches
every forward, backward, optimizer step, val pass, readout and checkpoint; the verdicts compare the
script with the repo's train_gpt_simple.py (the baseline) where the rules (RULES.md) fix what may
change. Prints a checklist (PASS / FAIL / SKIP, with what to change for each FAIL), the schedule of
every hyperparameter, and the wall time. Exit status: 0 no FAIL, 1 any FAIL, 2 bad input (no such
file, a bad argument).

Numbers on the tiny model say nothing about val loss: a PASS means the script runs, keeps the
rules a machine can check, and touches every parameter; not that it trains well.
"""
import argparse
import ast
import collections
import functools
import hashlib
import json
import math
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

from tools import preflight_probes as probes
from tools import tiny

BASELINE = Path(__file__).resolve().parents[1] / "train_gpt_simple.py"
PUBLIC_VAL_RE = re.compile(r"step:(\d+)/(\d+)\s+val_loss:([0-9.]+)")  # what the public tools parse (RULES 6.3)
ANY_VAL_RE = re.compile(r"step:(\d+)/(\d+)\s+val_loss:(\S+)")  # also nan / inf
NUMBER = r"(?:-?\d+\.\d{5}|nan|-?inf)"  # printed with :.5f
VAL_LINE_RE = re.compile(rf"step:(\d+)/(\d+) val_loss:{NUMBER}((?: [A-Za-z_]\w*:{NUMBER})*) "
                         r"train_time:\d+\.\d{3}s step_avg:\d+\.\d{2}ms")  # RULES 6.2, with readout columns (6.4)
TIME_RE = re.compile(r" train_time:\S+ step_avg:\S+$")
TRIAL_RE = re.compile(r"^trial (\d+)/(\d+) (seed|resumed)\b")
SEPARATOR = "=" * 100
ALLOWED_ENV = ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT", "SEED", "RESUME")
CLI_MODULES = {"argparse", "optparse", "getopt", "click", "typer", "fire", "absl", "hydra", "omegaconf", "docopt",
               "jsonargparse", "simple_parsing", "tyro"}
CODE_LOADERS = {"runpy.run_path", "runpy.run_module", "importlib.util.spec_from_file_location",
                "importlib.machinery.SourceFileLoader", "importlib.util.spec_from_loader"}
# names the runs hook besides tools.tiny.REQUIRED: the extension points and the loop's checkpoint and val code
HOOKED = ("init_params", "make_optimizers", "set_hparams", "is_val_step", "before_forward", "after_step", "readouts",
          "evaluate", "restore", "save_checkpoint", "run_trial")

WORLD = 2  # ranks of the multi-rank runs
SHORT_STEPS, SHORT_TRIALS, SHORT_MICROBATCHES = 10, 2, 2  # the short runs (1 and 2 ranks): 2 trials, accumulation
# The long run (every step, 1 rank) pays per step: one microbatch and one layer. Its one-matrix Muon stacks leave
# rank 1 without a share in the 2-rank tail that resumes from it (a code path of its own); the short runs have 2 layers.
LONG_MICROBATCHES, LONG_LAYERS = 1, 1
LATE = 0.95  # the tail and the long resume start at the first val step from this fraction of train_steps
TABLE_FRACTIONS = (0.0, 0.3, 0.7, 0.9, 1.0)  # the hyperparameter table's columns
STREAM_STEPS = 100  # steps of the data-stream comparison (tiny shards switch every 40 steps)
TIMEOUT_BASE_S, TIMEOUT_PER_STEP_S = 120, 0.5  # a hang guard for the forked runs
COMPILE_TIMEOUT_S = 900  # --compile: the first compile of a tiny model takes about a minute on 2 CPU cores
# The architecture check runs both models in float64 on shared random weights. A precision-only change (RULES 4.4:
# RMSNorm in float32, cast back) moves the gradients by ~4e-7 relative (float32 rounding inside a float64 model),
# a change of the math by 7e-5 (relu(x)+1e-4 squared) to 2 (LayerNorm); 0.125 for the attention scale 0.12: 5e-2.
ARCH_LOSS_RTOL, ARCH_GRAD_RTOL = 1e-6, 1e-5

# id, rule (RULES.md), what it checks, what to change when it fails
CHECKS = [
    ("load", "-", "the script exists, compiles, imports and defines the harness's names",
     "start from a copy of the repo's train_gpt_simple.py (python -m tools.new) and keep its names"),
    ("run", "-", "main() runs every step without an exception",
     "fix the exception above (the traceback shows the script's own lines)"),
    ("finite", "-", "no nan or inf: training loss, val loss, parameters, optimizer and extension state",
     "find the step where it starts (the first tensor named above) and fix it: lr schedule, a division, an optimizer state"),
    ("optimizers", "-", "every parameter is in exactly one optimizer",
     "make_optimizers must hand every model parameter to exactly one optimizer group"),
    ("gradients", "-", "every optimized parameter has a gradient at every optimizer step",
     "the model must use every parameter in its forward; do not clear .grad before the optimizer step"),
    ("updates", "-", "every optimized parameter with a non-zero gradient changes during training",
     "check its lr (and lr schedule) is non-zero and the optimizer's step writes the parameter"),
    ("ranks", "2.7", "every rank ends each trial with the same parameters and extension `state`",
     "sum every gradient over ranks before the update (main() does it for an optimizer without `owner`); an "
     "optimizer with `owner` must sum its own and hand every rank what it updated (Muon: reduce-scatter, all-gather); "
     "compute `state` the same way on every rank"),
    ("lr", "-", "every group's lr is finite and >= 0 at every optimizer step",
     "check lr_multiplier and set_hparams over all of train_steps, e.g. a decay that goes below 0 before the end"),
    ("hparams", "-", "every group's other numeric hyperparameters are finite and >= 0, momentum and betas < 1",
     "check set_hparams (and make_optimizers) over all of train_steps: the table below shows each value by step"),
    ("weights", "-", "parameters change only in before_forward, the optimizers' steps and after_step",
     "see the line above"),
    ("resume", "-", "a run stopped by SIGTERM and resumed from its checkpoint continues bitwise as the run that went on",
     "keep optimizer state in opt.state[p] or the param groups, and the extension points' in `state`: a checkpoint "
     "holds the model, every optimizer's state_dict(), `state` and the RNG; module globals and attributes of an "
     "optimizer object are lost at a resume"),
    ("architecture", "2.1, 4",
     "(a) parameter names, shapes and dtypes at full size; in float64, the forward's loss and gradients equal the baseline's",
     "restore the baseline's model classes and vocab_size, num_layers, model_dim; only the optimizer and init may "
     "change (precision-only changes are fine, RULES 4.4)"),
    ("data", "2.1",
     "(b) the train stream (1 and 2 ranks, across shards) and the val set equal the baseline's; main() trains on them",
     "restore distributed_data_generator, load_data_shard and how main() calls them"),
    ("constants", "2.1", "(c) batch_size, seq_len and val_tokens equal the baseline's",
     "restore them: batch 524,288 tokens of 1024, val_tokens 20 * 524288"),
    ("one_pass", "2.2", "(d) one forward and one backward per microbatch per optimizer step, covering the step's batch once",
     "no extra, repeated or lookahead forward/backward passes; one optimizer step per batch"),
    ("imports", "2.5", "(e) imports only the standard library, torch and triton",
     "copy the third-party code into the script instead of importing it"),
    ("log_script", "2.5", "(f) the log starts with the script's exact text and a line of 100 '='",
     "keep main()'s log(code) and log('=' * 100) at the top of the log"),
    ("log_format", "6",
     "(g) every val line has the layout of RULES 6.2; each trial validates at exactly the steps of the script's "
     "is_val_step; the script's text never matches the public pattern",
     "keep the val line as the baseline prints it ('step:S/N val_loss:L [name:value ...] train_time:Ts step_avg:Mms'); "
     "no digits after 'step:' in the script's text"),
    ("hardcoded", "2.5",
     "(h) hyperparameters hard-coded: no command-line parsing, sys.argv only for the trial count, os.environ only "
     + "/".join(ALLOWED_ENV), "write hyperparameters into the script; the log must reproduce the run"),
]
PASS, FAIL, SKIP = "PASS", "FAIL", "SKIP"


class Report:
    def __init__(self):
        self.checks = {cid: dict(id=cid, rule=rule, check=what, status=SKIP, detail="not run", fix=fix)
                       for cid, rule, what, fix in CHECKS}

    def set(self, cid, status, detail, fix=None):
        self.checks[cid].update(status=status, detail=detail)
        if fix:
            self.checks[cid]["fix"] = fix

    def ok(self):
        return not any(c["status"] == FAIL for c in self.checks.values())


def _clip(items, n=5):
    items = list(items)
    return ", ".join(map(str, items[:n])) + (f" and {len(items) - n} more" if len(items) > n else "")


# -----------------------------------------------------------------------------
# Static checks of the script's text: (e), (h), the script part of (g), and the public repo's format

def _dotted(node):
    """'a.b.c' for a Name/Attribute chain, else None."""
    parts = []
    while isinstance(node, ast.Attribute):
        parts.append(node.attr)
        node = node.value
    if isinstance(node, ast.Name):
        return ".".join([node.id] + parts[::-1])
    return None


def _const_str(node):
    return node.value if isinstance(node, ast.Constant) and isinstance(node.value, str) else None


def check_imports(tree):
    """(e): problems as 'line N: ...' strings."""
    allowed = set(sys.stdlib_module_names) | {"torch", "triton"}
    problems = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            problems += [f"line {node.lineno}: import {a.name}" for a in node.names if a.name.split(".")[0] not in allowed]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                problems.append(f"line {node.lineno}: relative import from {'.' * node.level}{node.module or ''}")
            elif node.module.split(".")[0] not in allowed:
                problems.append(f"line {node.lineno}: from {node.module} import ...")
        elif isinstance(node, ast.Call):
            name = _dotted(node.func) or ""
            if name.split(".")[-1] in ("__import__", "import_module"):
                arg = node.args[0] if node.args else next((k.value for k in node.keywords if k.arg == "name"), None)
                module = _const_str(arg)
                if module is None:
                    problems.append(f"line {node.lineno}: {name}() of a name computed at run time")
                elif module.split(".")[0] not in allowed:
                    problems.append(f"line {node.lineno}: {name}({module!r})")
            elif name in CODE_LOADERS:
                problems.append(f"line {node.lineno}: {name}() loads code from another file")
    return problems


def check_hardcoded(tree):
    """(h): problems as 'line N: ...' strings."""
    parents = {child: node for node in ast.walk(tree) for child in ast.iter_child_nodes(node)}
    os_names, sys_names, environ_names, getenv_names, argv_names = {"os"}, {"sys"}, set(), set(), set()
    problems = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for a in node.names:
                if a.asname and a.name in ("os", "sys"):  # `import os` and `import sys` keep the default names
                    (os_names if a.name == "os" else sys_names).add(a.asname)
                if a.name.split(".")[0] in CLI_MODULES:
                    problems.append(f"line {node.lineno}: import {a.name} (command-line parsing)")
        elif isinstance(node, ast.ImportFrom) and not node.level:
            for a in node.names:
                target = {"os": {"environ": environ_names, "getenv": getenv_names, "environb": environ_names},
                          "sys": {"argv": argv_names}}.get(node.module, {}).get(a.name)
                if target is not None:
                    target.add(a.asname or a.name)
            if node.module.split(".")[0] in CLI_MODULES:
                problems.append(f"line {node.lineno}: from {node.module} import ... (command-line parsing)")

    def is_attr(node, names, attrs):
        return ((isinstance(node, ast.Attribute) and node.attr in attrs and isinstance(node.value, ast.Name)
                 and node.value.id in names))

    def key_problem(node, key_node, what):
        key = _const_str(key_node)
        if key is None:
            return f"line {node.lineno}: {what} with a key computed at run time"
        if key not in ALLOWED_ENV:
            return f"line {node.lineno}: {what} reads {key!r}"
        return None

    for node in ast.walk(tree):
        if is_attr(node, sys_names, ("argv",)) or (isinstance(node, ast.Name) and node.id in argv_names
                                                   and isinstance(node.ctx, ast.Load)):
            p = parents.get(node)
            index = p.slice if isinstance(p, ast.Subscript) and p.value is node else None
            value = (index.value if isinstance(index, ast.Constant) else -index.operand.value
                     if isinstance(index, ast.UnaryOp) and isinstance(index.op, ast.USub)
                     and isinstance(index.operand, ast.Constant) else None)
            if value in (0, -1) and not isinstance(value, bool):
                continue
            if isinstance(p, ast.Call) and isinstance(p.func, ast.Name) and p.func.id == "len":
                continue
            problems.append(f"line {node.lineno}: reads sys.argv beyond sys.argv[-1] (the trial count), sys.argv[0] "
                            "and len(sys.argv)")
        elif is_attr(node, os_names, ("environ", "environb")) or (isinstance(node, ast.Name) and node.id in environ_names
                                                                  and isinstance(node.ctx, ast.Load)):
            p = parents.get(node)
            problem = f"line {node.lineno}: uses the whole os.environ"
            if isinstance(p, ast.Subscript) and p.value is node:
                problem = None if isinstance(p.ctx, (ast.Store, ast.Del)) else key_problem(node, p.slice, "os.environ[...]")
            elif isinstance(p, ast.Attribute) and isinstance(parents.get(p), ast.Call) and parents[p].func is p:
                call = parents[p]
                if p.attr in ("get", "pop", "__getitem__", "__contains__"):
                    problem = key_problem(node, call.args[0] if call.args else None, f"os.environ.{p.attr}()")
                elif p.attr in ("setdefault", "update") and isinstance(parents.get(call), ast.Expr):
                    problem = None  # sets variables for libraries; its value is not used
            elif (isinstance(p, ast.Compare) and node in p.comparators
                  and all(isinstance(o, (ast.In, ast.NotIn)) for o in p.ops)):
                problem = key_problem(node, p.left, "'...' in os.environ")
            if problem:
                problems.append(problem)
        elif isinstance(node, ast.Call) and (is_attr(node.func, os_names, ("getenv", "getenvb"))
                                             or (isinstance(node.func, ast.Name) and node.func.id in getenv_names)):
            problem = key_problem(node, node.args[0] if node.args else None, "os.getenv()")
            if problem:
                problems.append(problem)
    return problems


def script_val_lines(code):
    """(g): lines of the script that the public log parser would read as val lines."""
    return [f"line {i}: {line.strip()[:100]}" for i, line in enumerate(code.splitlines(), 1) if PUBLIC_VAL_RE.search(line)]


def _is_main_guard(node):
    return (isinstance(node, ast.If) and isinstance(node.test, ast.Compare) and _dotted(node.test.left) == "__name__"
            and any(_const_str(c) == "__main__" for c in node.test.comparators))


def import_time_work(tree):
    """What a script does at import (outside functions, classes and `if __name__ == "__main__"`) that the harness's
    format does in main(): parse the command line, start processes or CUDA, train. As 'line N: ...' strings."""
    found = []
    for stmt in tree.body:
        if isinstance(stmt, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)) or _is_main_guard(stmt):
            continue
        for node in ast.walk(stmt):
            func = node.func if isinstance(node, ast.Call) else None
            last = func.attr if isinstance(func, ast.Attribute) else func.id if isinstance(func, ast.Name) else ""
            name = _dotted(func) or f"...{last}" if func is not None else ""
            if last in ("parse_args", "parse_known_args"):
                found.append(f"line {node.lineno}: parses the command line ({name})")
            elif last in ("init_process_group", "cuda", "set_device") or name.startswith("torch.cuda."):
                found.append(f"line {node.lineno}: starts distributed or CUDA work ({name})")
            elif last in ("backward", "step") and isinstance(stmt, (ast.For, ast.While)):
                found.append(f"line {stmt.lineno}: a training loop")
                break
    return list(dict.fromkeys(found))


def public_format_problem(tree, script):
    """One message if the script is in the public repo's format (runs at import, no main(num_trials)), else None."""
    work = import_time_work(tree)
    mains = [n for n in tree.body if isinstance(n, ast.FunctionDef) and n.name == "main"]
    if not work:
        return None
    what = "; ".join(work[:3]) + ("" if mains else "; no main(num_trials)")
    return (f"{script}: a script in the public repo's format, which runs when imported ({what}). The harness imports a "
            "script without running it and calls its main(num_trials), so it did not import this one. To check it "
            "here, port it into a copy of the harness's script: python -m tools.new NAME AGENT, then put its optimizer "
            "classes in the Optimizer section and its hyperparameters, schedules, val steps, lookahead, EMA and "
            "readouts in Init & Optim Hyperparams (README: Writing an approach); the seed comes from SEED=, not a "
            "flag (RULES 2.5)")


# -----------------------------------------------------------------------------
# Comparisons with the baseline: (a), (b) static part, (c)

def _full_size_params(module):
    """{name: (shape, dtype)} of the full-size model. It is built on the CPU with torch.nn.init's functions doing
    nothing meanwhile, so its 650 MB are allocated but never touched (the meta device would first import torch's
    reference ops: seconds)."""
    inits = [name for name in dir(torch.nn.init) if name.endswith("_") and not name.startswith("_")]
    saved = {name: getattr(torch.nn.init, name) for name in inits}
    try:
        for name in inits:
            setattr(torch.nn.init, name, lambda tensor, *args, **kwargs: tensor)
        model = module.GPT(module.vocab_size, module.num_layers, module.model_dim)
        return {n: (tuple(p.shape), p.dtype) for n, p in model.named_parameters()}
    finally:
        for name, fn in saved.items():
            setattr(torch.nn.init, name, fn)


def _float64_pass(module, state_dict, inputs, targets):
    """The loss and gradients of module.GPT at the tiny size in float64, on the weights `state_dict`."""
    V, L, D = (tiny.TINY[k] for k in ("vocab_size", "num_layers", "model_dim"))
    model = module.GPT(V, L, D)
    model.load_state_dict(state_dict)
    model.double()
    loss = model(inputs, targets)
    loss.backward()
    return loss, {n: p.grad for n, p in model.named_parameters()}


def check_architecture(user, base):
    """(a): (status, detail). Names, shapes and dtypes at full size; then the forward's loss and
    gradients on shared random weights at the tiny size, both models cast to float64, so that a change of where
    rounding happens (RULES 4.4) stays below the tolerances and a change of the math does not."""
    try:
        full = _full_size_params(user)
    except Exception as e:
        return FAIL, f"GPT(vocab_size, num_layers, model_dim) of the script failed: {type(e).__name__}: {e}"
    ref = _full_size_params(base)
    missing, extra = [n for n in ref if n not in full], [n for n in full if n not in ref]
    differ = [f"{n} {tuple(full[n][0])} {str(full[n][1])[6:]} (baseline {tuple(ref[n][0])} {str(ref[n][1])[6:]})"
              for n in ref if n in full and full[n] != ref[n]]
    if missing or extra or differ:
        parts = [f"missing {_clip(missing)}" if missing else "", f"extra {_clip(extra)}" if extra else "",
                 f"differ: {_clip(differ, 3)}" if differ else ""]
        sizes = f"GPT({user.vocab_size}, {user.num_layers}, {user.model_dim}) vs the baseline's GPT(50304, 12, 768)"
        return FAIL, f"parameters at full size, {sizes}: " + "; ".join(p for p in parts if p)
    V, L, D, T = (tiny.TINY[k] for k in ("vocab_size", "num_layers", "model_dim", "seq_len"))
    generator = torch.Generator().manual_seed(1234)
    ref_model = base.GPT(V, L, D)
    with torch.no_grad():
        for p in ref_model.parameters():
            p.copy_(torch.randn(p.shape, generator=generator) * 0.5 + (1.0 if p.ndim == 1 else 0.0))
    weights = ref_model.state_dict()
    inputs = torch.randint(0, V, (2, T), generator=generator)
    targets = torch.randint(0, V, (2, T), generator=generator)
    ref_loss, ref_grads = _float64_pass(base, weights, inputs, targets)
    try:
        loss, grads = _float64_pass(user, weights, inputs, targets)
    except Exception as e:
        return FAIL, (f"the script's GPT({V}, {L}, {D}) with the baseline's weights, cast to float64, failed: "
                      f"{type(e).__name__}: {e}")
    return judge_architecture(loss, ref_loss, grads, ref_grads, len(full))


def judge_architecture(loss, ref_loss, grads, ref_grads, n_params):
    """(a), the forward part: (status, detail) from the float64 losses and gradients of the script and the baseline."""
    if not torch.is_tensor(loss) or loss.shape != ref_loss.shape:
        return FAIL, f"the forward returned {loss!r}, not a loss like the baseline's (a summed cross-entropy)"
    loss_rel = abs(loss.item() - ref_loss.item()) / abs(ref_loss.item())
    grad_rel = {}
    for n, g in ref_grads.items():
        mine = grads.get(n)
        if mine is None or mine.shape != g.shape:
            grad_rel[n] = math.inf
        else:
            grad_rel[n] = ((mine.double() - g.double()).norm() / g.double().norm().clamp_min(1e-300)).item()
    worst = max(grad_rel, key=grad_rel.get)
    measured = f"loss {loss_rel:.1e} and gradient of {worst} {grad_rel[worst]:.1e} relative to the baseline's"
    if not loss_rel <= ARCH_LOSS_RTOL or not grad_rel[worst] <= ARCH_GRAD_RTOL:
        bad = [n for n, r in grad_rel.items() if not r <= ARCH_GRAD_RTOL]
        return FAIL, (f"in float64 on shared random weights at the tiny size the forward differs from the baseline's: "
                      f"{measured}" + (f" (gradients off: {_clip(bad)})" if bad else "")
                      + f"; rounding alone stays below {ARCH_LOSS_RTOL:g} (loss) and {ARCH_GRAD_RTOL:g} (gradients): "
                      "this changes the math (RULES 4.3)")
    return PASS, (f"{n_params} parameters with the baseline's names, shapes and dtypes at full size; in float64 the "
                  f"forward matches the baseline's within rounding ({measured})")


def check_stream(user, base, train, val):
    """(b), the generator itself: (ok, detail)."""
    B, T, VT = tiny.TINY["batch_size"], tiny.TINY["seq_len"], tiny.TINY["val_tokens"]
    for world in (1, 2):
        for rank in range(world):
            what = f"train stream, rank {rank} of {world}"
            try:
                mine = user.distributed_data_generator(train, B, rank, world, T, "cpu")
                ref = base.distributed_data_generator(train, B, rank, world, T, "cpu")
                for step in range(STREAM_STEPS):
                    what = f"train stream, rank {rank} of {world}, step {step}"
                    if not probes._same_batch(next(mine), next(ref)):
                        return False, f"{what}: the script's distributed_data_generator yields other tokens than the baseline's"
                what = f"val set, rank {rank} of {world}"
                if not probes._same_batch(next(user.distributed_data_generator(val, VT, rank, world, T, "cpu")),
                                          next(base.distributed_data_generator(val, VT, rank, world, T, "cpu"))):
                    return False, f"{what}: the script's val batch differs from the baseline's"
            except Exception as e:
                return False, f"{what}: the script's distributed_data_generator failed: {type(e).__name__}: {e}"
    return True, f"{STREAM_STEPS} steps (2 shard switches) on 1 and 2 ranks and the val set equal the baseline's"


def check_constants(user, base):
    """(c): (status, detail)."""
    differ = [f"{k} = {getattr(user, k, '(missing)')!r} (baseline {getattr(base, k)!r})"
              for k in ("batch_size", "seq_len", "val_tokens") if getattr(user, k, None) != getattr(base, k)]
    if differ:
        return FAIL, "; ".join(differ)
    return PASS, f"batch_size {base.batch_size}, seq_len {base.seq_len}, val_tokens {base.val_tokens}"


def rule_val_steps(train_steps):
    """RULES 6.1: step 0, every 125 while step/train_steps < 0.9, every 25 from there, and train_steps."""
    return [s for s in range(train_steps + 1)
            if s == train_steps or s % (125 if s / train_steps < 0.9 else 25) == 0]


# -----------------------------------------------------------------------------
# The runs

def plan_runs(train_steps, val_steps):
    """The steps at which runs stop, resume and are compared (see README, Preflight: the resume check).

    short: 2 trials of n steps; a copy is stopped by SIGTERM with its checkpoint at step k of trial 1 and resumed.
    long: a checkpoint at a (resumed by long_resume, which SIGTERM stops at b1) and at b1; the 2-rank tail resumes
    from a, with checkpoints at b and c; tail_resume resumes from b and SIGTERM stops it at c. A run saves the state
    after step s - 1 as "step s" (a resume starts there); the earliest save of a run that starts at s0 is s0 + 2.
    """
    n = min(train_steps, SHORT_STEPS)
    plan = dict(n=n, k=max(2, n // 2) if n >= 2 else None, a=None)
    if train_steps >= 6:
        late = [s for s in val_steps if LATE * train_steps <= s <= train_steps - 4]  # (T >= 6: a >= 2)
        a = late[0] if late else min(round(LATE * train_steps), train_steps - 4)
        b = next((s for s in val_steps if a + 2 <= s <= train_steps - 2), a + 2)
        plan.update(a=a, b1=a + 2, b=b, c=b + 2)
    return plan


def table_steps(train_steps):
    return sorted({min(train_steps - 1, round(f * train_steps)) for f in TABLE_FRACTIONS})


def read_text(path):
    return Path(path).read_text(errors="replace") if path and os.path.isfile(path) else ""


def run_script(script, tmp, spec, train, val):
    """One run of the script's main() (spec: see Runner.run); returns a dict with the per-rank results and logs."""
    label, world = spec["label"], spec["world"]
    seqs_per_rank = tiny.TINY["batch_size"] // world // tiny.TINY["seq_len"]
    micro = seqs_per_rank // spec["microbatches"]
    log_dir = os.path.join(tmp, f"logs_{label}")
    overrides = dict(tiny.TINY, micro_batch_seqs=micro, train_files=train, val_files=val, train_steps=spec["steps"],
                     num_layers=spec["layers"], log_dir=log_dir, checkpoint_dir=os.path.join(tmp, f"checkpoints_{label}"),
                     checkpoint_every=None, compile_on_cpu=False)  # the runs are eager: --compile checks compiling
    cfg = dict(label=label, microbatches=seqs_per_rank // math.gcd(micro, seqs_per_rank),
               output=os.path.join(tmp, f"output_{label}"), due=spec.get("due", set()), copies=spec.get("copies", {}),
               stop=spec.get("stop"), signal_rank=world - 1, resume=spec.get("resume"),
               table_steps=spec.get("table_steps", ()))
    resumed_log = spec.get("resumed_log")
    before = read_text(resumed_log)
    env = dict(SEED="0", RESUME=spec.get("resume") or "")
    timeout = None if spec.get("in_process") else TIMEOUT_BASE_S + TIMEOUT_PER_STEP_S * spec["steps"] * spec["trials"]
    t0 = time.perf_counter()
    results = tiny.run(script, world, overrides, spec["trials"], instrument=functools.partial(probes.instrument, cfg),
                       env=env, start_method="fork", timeout=timeout)
    if resumed_log:
        log_files = [resumed_log]
    else:
        log_files = sorted(str(p) for p in Path(log_dir).glob("*") if p.is_file()) if os.path.isdir(log_dir) else []
    logs = [read_text(p) for p in log_files]
    outputs = [read_text(cfg["output"] + f".rank{r}") for r in range(world)]
    completed = all(r.get("completed") and not r.get("error") for r in results)
    stopped = all(r.get("stopped_at") for r in results) if spec.get("stop") else None
    return dict(label=label, world=world, train_steps=spec["steps"], trials=spec["trials"], layers=spec["layers"],
                microbatches=cfg["microbatches"], results=results, logs=logs, log_files=log_files,
                log_new=(logs[0][len(before):] if resumed_log and logs else logs[0] if len(logs) == 1 else ""),
                outputs=outputs, seconds=time.perf_counter() - t0, completed=completed, stopped=stopped,
                fresh=not spec.get("resume"), start=spec.get("start", 0), stop=spec.get("stop"),
                copies=spec.get("copies", {}), checkpoint_dir=overrides["checkpoint_dir"], what=spec["what"])


def resume_copy(ckpt_path, log_path, dest_dir):
    """A copy of a checkpoint whose log is a copy of `log_path` (a resumed run appends to its checkpoint's log and
    removes the checkpoint when done: each resume gets its own). Returns (checkpoint, log) or raises ValueError."""
    os.makedirs(dest_dir, exist_ok=True)
    log_copy = os.path.join(dest_dir, os.path.basename(log_path))
    shutil.copyfile(log_path, log_copy)
    try:
        ckpt = torch.load(ckpt_path, map_location="cpu", weights_only=True)
    except Exception as e:
        raise ValueError(f"the checkpoint {os.path.basename(ckpt_path)} does not load with weights_only=True "
                         f"({type(e).__name__}: {str(e).splitlines()[0][:200]}): `state` may hold only tensors, numbers, "
                         "strings, lists, tuples and dicts") from None
    ckpt["log_path"] = log_copy
    dest = os.path.join(dest_dir, "resume.pt")
    torch.save(ckpt, dest)
    return dest, log_copy


class Runner:
    """Runs the plan, each run only when the runs it starts from succeeded. `runs` lists every run made;
    `skipped` says why a planned run was not: {label: (why, whether that is the script's fault)}."""

    def __init__(self, script, tmp, train_steps, plan, train, val, say):
        self.script, self.tmp, self.T, self.plan, self.train, self.val, self.say = script, tmp, train_steps, plan, train, val, say
        self.runs, self.by_label, self.skipped = [], {}, {}
        self.code = Path(script).read_text()

    def run(self, **spec):
        self.say(f"{spec['what']} ...")
        run = run_script(self.script, self.tmp, spec, self.train, self.val)
        run["nonfinite"] = bool(run_nonfinite_lines(run, self.code))
        self.runs.append(run)
        self.by_label[run["label"]] = run
        return run

    def from_copy(self, label, source, step):
        """(checkpoint, log) to resume `label` from the copy of `source`'s checkpoint at `step`, or None."""
        path = source["copies"].get((1, step)) if source else None
        if not (source and source["completed"]):
            self.skipped[label] = (f"{source['label'] if source else 'its source'} did not complete", False)
            return None
        if not (path and os.path.isfile(path) and source["log_files"]):
            if source["nonfinite"]:
                self.skipped[label] = (f"{source['label']}'s trial stopped on a non-finite loss before step {step}", False)
            else:
                self.skipped[label] = (f"{source['label']} wrote no checkpoint at step {step} although checkpoint_every "
                                       "= 0 made one due (keep the checkpoint code of the Training and Validation "
                                       "section)", True)
            return None
        try:
            return resume_copy(path, source["log_files"][0], os.path.join(self.tmp, f"resume_{label}"))
        except ValueError as e:
            self.skipped[label] = (str(e), True)
            return None

    def all(self):
        T, p, world = self.T, self.plan, WORLD
        n, k = p["n"], p["k"]
        short = dict(steps=n, trials=SHORT_TRIALS, microbatches=SHORT_MICROBATCHES, layers=tiny.TINY["num_layers"])
        self.run(label="short", world=1, in_process=True, due={(1, k)} if k else set(),
                 what=f"{SHORT_TRIALS} trials x {n} steps on 1 rank", **short)
        if k:
            stop = self.run(label="short_stop", world=1, stop=(1, k),
                            what=f"the same, stopped by SIGTERM with a checkpoint at step {k}", **short)
            files = [os.path.join(stop["checkpoint_dir"], f) for f in os.listdir(stop["checkpoint_dir"])] \
                if os.path.isdir(stop["checkpoint_dir"]) else []
            if stop["completed"] and stop["stopped"] and len(files) == 1 and stop["log_files"]:
                self.run(label="short_resume", world=1, resume=files[0], resumed_log=stop["log_files"][0], start=k,
                         what="resumed from it (RESUME) to the end", **short)
            elif stop["completed"] and stop["stopped"]:
                self.skipped["short_resume"] = (f"the run stopped by SIGTERM left {len(files)} files in its checkpoint "
                                                "directory, not one checkpoint", True)
            else:
                self.skipped["short_resume"] = ("the run meant to stop by SIGTERM did not stop (see resume)", False)
        else:
            self.skipped["short_stop"] = (f"{n} step: too short to stop and resume", False)
        long = dict(steps=T, trials=1, microbatches=LONG_MICROBATCHES, layers=LONG_LAYERS)
        late = p["a"] is not None
        copies = {(1, p["a"]): os.path.join(self.tmp, "long_a.pt")} if late else {}
        self.run(label="long", world=1, due={(1, p["a"]), (1, p["b1"])} if late else set(), copies=copies,
                 table_steps=table_steps(T), what=f"{T} steps on 1 rank", **long)
        if late:
            source = self.from_copy("long_resume", self.by_label["long"], p["a"])
            if source:
                self.run(label="long_resume", world=1, resume=source[0], resumed_log=source[1], start=p["a"],
                         stop=(1, p["b1"]), what=f"resumed at step {p['a']}, stopped by SIGTERM at {p['b1']}", **long)
        self.run(label="ranks", world=world, what=f"{SHORT_TRIALS} trials x {n} steps on {world} ranks", **short)
        if late:
            source = self.from_copy("tail", self.by_label["long"], p["a"])
            if source:
                tail = self.run(label="tail", world=world, resume=source[0], resumed_log=source[1], start=p["a"],
                                due={(1, p["b"]), (1, p["c"])}, copies={(1, p["b"]): os.path.join(self.tmp, "tail_b.pt")},
                                what=f"steps {p['a']}-{T} on {world} ranks, resumed from the long run", **long)
                source = self.from_copy("tail_resume", tail, p["b"])
                if source:
                    self.run(label="tail_resume", world=world, resume=source[0], resumed_log=source[1], start=p["b"],
                             stop=(1, p["c"]), what=f"the tail resumed at step {p['b']}, stopped by SIGTERM at {p['c']}",
                             **long)
        else:
            for label in ("long_resume", "tail", "tail_resume"):
                self.skipped[label] = (f"train_steps = {T} leaves no room (the late runs need at least 6 steps)", False)
        return self.runs


# -----------------------------------------------------------------------------
# Verdicts from the runs

CONSEQUENTIAL = ("Connection closed by peer", "Connection reset by peer", "Broken pipe", "Socket closed", "Timed out")


def _describe(run, microbatches=False):
    text = f"{run['label']} ({run['what']}"
    n = run["microbatches"]
    per = " per rank" if run["world"] > 1 else ""
    return text + (f", {n} microbatch{'es' if n > 1 else ''}{per}" if microbatches else "") + ")"


def _completed(runs):
    return all(r["completed"] for r in runs)


def _verdict(report, cid, problems, runs, pass_detail, needs_complete=True):
    if problems:
        report.set(cid, FAIL, "; ".join(problems))
    elif needs_complete and not _completed(runs):
        report.set(cid, SKIP, "a run did not complete (see run); no problem in the steps that ran")
    else:
        report.set(cid, PASS, pass_detail)


def _merge(labelled):
    """[(run label, problem)] with the runs that share a problem said once: 'short, long: problem'."""
    merged = collections.OrderedDict()
    for label, problem in labelled:
        merged.setdefault(problem, []).append(label)
    lines = [f"{', '.join(labels)}: {problem}" for problem, labels in merged.items()]
    return lines[:2] + ([f"and {len(lines) - 2} more like these"] if len(lines) > 2 else [])


def _results(runs):
    return [r for run in runs for r in run["results"]]


def _examples(runs, key, n=2):
    return [x for r in _results(runs) for x in r.get(key, [])][:n]


def _count(runs, key):
    return sum(r.get("n_" + key, 0) for r in _results(runs))


def judge_run(report, runs, skipped):
    failures = []
    for run in runs:
        errors = [r for r in run["results"] if r.get("error")]
        if not errors:
            continue
        # the cause, not another rank's echo of it (a closed connection)
        first = sorted(errors, key=lambda r: any(c in r["error"] for c in CONSEQUENTIAL))[0]
        text = first.get("traceback") or first["error"].strip()
        if not first.get("traceback") and run["outputs"][first["rank"]].strip():
            text += "\n  last output:\n" + "\n".join(run["outputs"][first["rank"]].strip().splitlines()[-10:])
        others = f" (rank {', '.join(str(r.get('rank')) for r in errors if r is not first)} too)" if len(errors) > 1 else ""
        failures.append((_describe(run), f"rank {first['rank']} failed{others}:\n" + text))
    if failures:
        merged = []  # the same failure in several runs: said once
        for label, text in failures:
            if merged and merged[-1][1] == text:
                merged[-1][0].append(label)
            else:
                merged.append(([label], text))
        report.set("run", FAIL, "\n".join(f"{' and '.join(labels)}: {text}" for labels, text in merged))
    else:
        notes = [f"{label}: not run, {why}" for label, (why, _) in skipped.items()]
        report.set("run", PASS, "\n".join([f"{_describe(r, True)}: {r['seconds']:.1f} s" for r in runs] + notes))


def after_script(log, code):
    """The part of a log after the embedded script (after its first line of 100 '=')."""
    if log.startswith(code):
        return log[len(code):]
    head, sep, tail = log.partition("\n" + SEPARATOR + "\n")
    return tail if sep else log


def nonfinite_lines(text):
    lines = []
    for line in text.splitlines():
        if "stopped: training loss is nan or inf" in line:
            lines.append(line.strip())
        m = ANY_VAL_RE.search(line)
        if m:
            try:
                if not math.isfinite(float(m.group(3))):
                    lines.append(line.strip())
            except ValueError:
                pass
    return lines


def run_nonfinite_lines(run, code):
    return nonfinite_lines(after_script(run["log_new"], code) if run["fresh"] else run["log_new"])


def judge_finite(report, runs, code):
    bad = []
    firsts = [(run, r["first_nonfinite"]) for run in runs for r in run["results"] if r.get("first_nonfinite")]
    if firsts:
        run, first = min(firsts, key=lambda x: x[0]["label"] != "long")  # the long run's: the schedule's own steps
        bad.append(f"first non-finite tensors: {run['label']} run, trial {first['trial']}, {first['when']}: "
                   + describe_paths(first["names"]))
    lines = [(run["label"], run_nonfinite_lines(run, code)) for run in runs]
    lines = [f"{label}: {found[0]}" for label, found in lines if found]
    if lines:
        bad.append(_clip(lines, 2))
    nonfinite = set().union(*(r.get("nonfinite", set()) for r in _results(runs)))
    if nonfinite:
        bad.append(f"non-finite parameters at the end: {_clip(sorted(nonfinite))}")
    _verdict(report, "finite", bad, runs, "training and val losses, and every parameter, optimizer state and "
             "extension state tensor finite after every step")


def _bitwise_equal(a, b):
    if torch.is_tensor(a) and torch.is_tensor(b):
        return (a.dtype == b.dtype and a.shape == b.shape
                and torch.equal(probes._bytes(a.contiguous()), probes._bytes(b.contiguous())))
    if isinstance(a, float) and isinstance(b, float) and math.isnan(a) and math.isnan(b):
        return True
    return type(a) is type(b) and a == b


def diff_fingerprints(got, want, prefixes=None):
    """Paths whose values differ between two fingerprints (or that only one has), in `want`'s order."""
    keys = list(want) + [k for k in got if k not in want]
    if prefixes is not None:
        keys = [k for k in keys if k.startswith(prefixes)]
    return [k for k in keys if k not in got or k not in want or not _bitwise_equal(got[k], want[k])]


def _largest_difference(got, want, paths):
    diffs = [(got[p].double() - want[p].double()).abs().nan_to_num(0).max().item() for p in paths
             if p in got and p in want and torch.is_tensor(got[p]) and got[p].is_floating_point()
             and got[p].shape == want[p].shape and got[p].numel()]
    return max(diffs) if diffs else None


def judge_ranks(report, runs):
    """Both ranks end every trial with bitwise equal parameters and `state` (a drift trains on silently)."""
    found, compared = collections.OrderedDict(), 0
    for run in (r for r in runs if r["world"] > 1 and r["completed"] and not r["stop"]):
        finals = [[f for f in r["finals"] if f["normal"]] for r in run["results"]]
        for trial in zip(*finals):
            compared += 1
            want = trial[0]["fingerprint"]
            for other in trial[1:]:
                got = other["fingerprint"]
                differ = diff_fingerprints(got, want, ("parameter ", "state"))
                if differ:
                    worst = _largest_difference(got, want, differ) or 0.0
                    where = found.setdefault(describe_paths(differ), [[], 0.0])
                    where[0].append(f"{run['label']} trial {trial[0]['trial']}")
                    where[1] = max(where[1], worst)
    problems = [f"the ranks end with different {what} (largest difference {worst:.3g}) in {_clip(where, 3)}"
                for what, (where, worst) in found.items()]
    if not problems and not compared and _completed(runs):
        report.set("ranks", SKIP, "no multi-rank trial ended")
    else:
        _verdict(report, "ranks", problems, runs, f"parameters and `state` bitwise equal on all {WORLD} ranks at the end "
                 f"of every trial of the {WORLD}-rank runs ({compared} trials)")


def judge_membership(report, runs):
    """optimizers, gradients, updates."""
    results = _results(runs)
    none = sorted(set().union(*(r.get("none", set()) for r in results)))
    multi = sorted(set().union(*(r.get("multi", set()) for r in results)))
    problems = (([f"in no optimizer: {_clip(none)}"] if none else [])
                + ([f"in more than one optimizer: {_clip(multi)}"] if multi else []))
    if problems or all(r.get("trials", 0) > 0 for r in results):
        _verdict(report, "optimizers", problems, runs, "every parameter in exactly one optimizer", needs_complete=False)
    elif _completed(runs):
        report.set("optimizers", FAIL, "main() never called make_optimizers")
    else:
        report.set("optimizers", SKIP, "the run failed before make_optimizers returned")
    no_grad = collections.Counter()
    for r in results:
        no_grad.update(r.get("no_grad", {}))
    missing = _clip(f"{n} ({c} steps)" for n, c in sorted(no_grad.items()))
    _verdict(report, "gradients", [f"no gradient at an optimizer step: {missing}"] if no_grad else [], runs,
             "every optimized parameter had a gradient at every optimizer step")
    unchanged = sorted(set().union(*(r.get("unchanged", set()) for r in results)))
    zero = sorted(set().union(*(r.get("zero_grad", set()) for r in results)) - set(unchanged))
    note = (f"; not judged, their gradients were always exactly zero (cut off by a parameter that does not train?): "
            f"{_clip(zero)}" if zero else "")
    _verdict(report, "updates", [f"never changed: {_clip(unchanged)}" + note] if unchanged else [], runs,
             "every optimized parameter with a non-zero gradient changed" + note)


def hparam_problems(runs, lr):
    """The wrong hyperparameter values seen (lr or all the others), each (optimizer, key, why) once: the long run's
    first, as text."""
    order = sorted(runs, key=lambda run: run["label"] != "long")
    seen, lines = set(), []
    for run in order:
        for (index, cls, key, why), x in run["results"][0].get("bad_hparams", {}).items() if run["results"] else []:
            if (key == "lr") != lr or (index, key, why) in seen:
                continue
            seen.add((index, key, why))
            groups = sorted(x["groups"])
            lines.append(f"{run['label']} run: optimizer {index} ({cls}) {key} = {x['value']:.4g} at step {x['step']} of "
                         f"trial {x['trial']}" + (f" in group{'s' if len(groups) > 1 else ''} {_groups(groups)}" if groups
                                                  else "") + f", {x['count']} values in all: {why}")
    return lines


def judge_hparams(report, runs):
    """lr and hparams, from every optimizer step of every run (rank 0)."""
    problems = hparam_problems(runs, lr=True)
    _verdict(report, "lr", ["; ".join(problems[:3])] if problems else [], runs,
             "finite and >= 0 in every group at every step")
    problems = hparam_problems(runs, lr=False)
    _verdict(report, "hparams", ["; ".join(problems[:3])] if problems else [], runs,
             "finite and >= 0 in every group at every step; momentum and betas below 1 (the table below: the long run)")


def judge_weights(report, runs):
    n_bad = _count(runs, "weight_changes")
    examples = [(run, x) for run in runs for r in run["results"] for x in r.get("weight_changes", [])][:2]
    problems = [f"{run['label']} trial {x['trial']}, {x['where']} changed {_clip(x['names']) or 'parameters'}"
                for run, x in examples]
    if problems:
        report.set("weights", FAIL, "; ".join(problems) + (f" ({n_bad} times in all)" if n_bad > len(problems) else ""),
                   fix=examples[0][1]["fix"])
    else:
        _verdict(report, "weights", [], runs, "bitwise unchanged across every val pass, readout, forward and backward")


def judge_passes(report, runs):
    """one_pass."""
    n_bad = _count(runs, "bad_passes")
    steps = sum(r.get("steps", 0) for r in _results(runs))
    problems = ([f"{n_bad} steps wrong (counted per rank), e.g. " + "; ".join(_examples(runs, "bad_passes"))] if n_bad
                else [] if steps or not _completed(runs) else ["no optimizer step was seen"])
    _verdict(report, "one_pass", problems, runs, f"one forward and one backward per microbatch per optimizer step over "
             f"the step's batch, {steps} rank-steps checked")


def judge_data(report, runs, stream_ok, stream_detail):
    errors = _examples(runs, "stream_errors")
    fetched = all(r.get("train_batches") and r.get("val_batches") for r in _results(runs))
    if not errors and _completed(runs) and not fetched:
        errors = ["main() did not fetch its train batches and val set through distributed_data_generator"]
    if not stream_ok or errors:
        report.set("data", FAIL, "; ".join(([] if stream_ok else [stream_detail]) + errors))
    elif not _completed(runs):
        report.set("data", SKIP, stream_detail + "; a run did not complete (see run)")
    else:
        report.set("data", PASS, stream_detail + "; main() trained and validated on that stream")


# -- resume

RESUME_KINDS = (("parameter ", "parameters"), ("state", "the extension points' `state`"),
                ("module global ", "module globals (not in a checkpoint)"), ("RNG", "the RNG state"))


def describe_paths(paths):
    """Differing fingerprint paths, grouped: 'parameters: a, b; optimizer 1 (AdamW) state: exp_avg of embed.weight'.
    List positions are folded: 'EMA[i] (33 entries)'."""
    groups = collections.OrderedDict()
    for path in paths:
        m = re.match(r"(optimizer \d+ \(\w+\)) (state|group|attribute) (.*)", path)
        if m:
            kind = {"state": "state", "group": "param groups", "attribute": "attributes (not in a checkpoint)"}[m[2]]
            name = m[3]
            kind = f"{m[1]} {kind}"
        else:
            kind = next((k for p, k in RESUME_KINDS if path.startswith(p)), "other")
            name = next((path[len(p):] for p in ("parameter ", "module global ") if path.startswith(p)), path)
        groups.setdefault(kind, collections.Counter())[re.sub(r"\[\d+\]", "[i]", name)] += 1
    return "; ".join(f"{kind}: " + _clip((f"{n} ({c} entries)" if c > 1 else n for n, c in names.items()), 4)
                     for kind, names in groups.items())


def compare_states(got, want):
    """What differs between two fingerprints, as text, or None."""
    differ = diff_fingerprints(got, want)
    if not differ:
        return None
    worst = _largest_difference(got, want, [p for p in differ if p.startswith("parameter ")])
    return describe_paths(differ) + (f" (parameters off by up to {worst:.3g})" if worst else "")


def val_records(text):
    """{(trial, step): the val line without its clock fields} of a log's text, trials numbered by 'trial i/n' lines."""
    records, trial = {}, 1
    for line in text.splitlines():
        m = TRIAL_RE.match(line)
        if m:
            trial = int(m[1])
        v = PUBLIC_VAL_RE.search(line)
        if v:
            records[(trial, int(v[1]))] = TIME_RE.sub("", line.strip())
    return records


def compare_val_lines(got_text, want_text, steps):
    """The first val line (at `steps`) that differs, as text, or None."""
    got, want = val_records(got_text), val_records(want_text)
    differ = [(t, s, line) for (t, s), line in want.items() if s in steps and got.get((t, s)) != line]
    if not differ:
        return None
    t, s, line = differ[0]
    return (f"val lines differ from trial {t} step {s} on ({len(differ)} lines): "
            f"{got.get((t, s), '(no val line)')!r} vs {line!r}")


def _stop_problem(run, step):
    if run["stopped"]:
        return None
    return (f"SIGTERM during step {step - 2} did not stop {run['label']} with a checkpoint at step {step} (keep main()'s "
            "signal handlers and the checkpoint code of the Training and Validation section)")


def _lost(restored, saved, step, rank=""):
    """The restored state against the saved one: what the resume at `step` lost (a note), or None."""
    if not (restored and saved):
        return None
    what = compare_states(restored, saved)
    return f"right after the restore at step {step}{rank}, already different (lost at the resume): {what}" if what else None


def judge_resume_short(ref, stop, res, k):
    """The short run stopped at k (SIGTERM) and resumed to the end, against the run that went on: (problems, notes)."""
    stopped = _stop_problem(stop, k)
    if stopped:
        return [stopped], []
    problems, notes = [], []
    r_ref, r_stop = ref["results"][0], stop["results"][0]
    if (1, k) in r_ref["saves"] and (1, k) in r_stop["saves"]:
        what = compare_states(r_stop["saves"][(1, k)], r_ref["saves"][(1, k)])
        problems += [f"the state saved on SIGTERM at step {k} differs from the run that went on: {what}"] if what else []
    if res is None or not res["completed"]:
        return problems, notes
    r_res = res["results"][0]
    want = [f for f in r_ref["finals"] if f["normal"]]
    got = [f for f in r_res["finals"] if f["normal"]]
    if len(got) != len(want):
        problems.append(f"the resumed run ended {len(got)} trials, the run that went on {len(want)}")
    ends = collections.OrderedDict()
    for f_want, f_got in zip(want, got):
        what = compare_states(f_got["fingerprint"], f_want["fingerprint"])
        if what:
            ends.setdefault(what, []).append(str(f_want["trial"]))
    problems += [f"at the end of trial {' and '.join(trials)} the state differs from the run that went on: {what}"
                 for what, trials in ends.items()]
    what = compare_val_lines(res["logs"][0] if res["logs"] else "", ref["logs"][0] if ref["logs"] else "",
                             range(ref["train_steps"] + 1))
    problems += [what] if what else []
    note = _lost(r_res["restores"].get((1, k)), r_ref["saves"].get((1, k)), k) if problems else None
    return problems, [note] if note else []


def judge_resume_late(ref, res, start, at):
    """A late resume at `start`, stopped by SIGTERM at `at`, against the run that went on, rank by rank:
    (problems, notes)."""
    stopped = _stop_problem(res, at)
    if stopped:
        return [stopped], []
    saved = [r["saves"].get((1, start)) for r in ref["results"]]
    if len(saved) > 1 and all(saved) and any(diff_fingerprints(s, saved[0], ("parameter ", "state")) for s in saved[1:]):
        return [], []  # the ranks already disagree (the ranks check says so): a checkpoint holds rank 0's copy only
    problems, notes = [], []
    for rank, (r_ref, r_res) in enumerate(zip(ref["results"], res["results"])):
        where = f" on rank {rank}" if ref["world"] > 1 else ""
        if (1, at) not in r_ref["saves"]:
            problems.append(f"{ref['label']} wrote no checkpoint at step {at}{where} although checkpoint_every = 0 made "
                            "one due")
            continue
        what = compare_states(r_res["saves"].get((1, at), {}), r_ref["saves"][(1, at)])
        if what:
            problems.append(f"at step {at}{where} the state differs from the run that went on: {what}")
            note = _lost(r_res["restores"].get((1, start)), r_ref["saves"].get((1, start)), start, where)
            notes += [note] if note else []
    what = compare_val_lines(res["log_new"], ref["log_new"], range(start, at))  # a fresh run's log_new: all of it
    return problems + ([what] if what else []), notes


def judge_resume(report, runs, plan, skipped):
    by = {run["label"]: run for run in runs}
    problems, done = [], []
    cases = [("1 rank", "short", "short_stop", f"stopped by SIGTERM at step {plan['k']} and resumed to the end"),
             ("1 rank, late", "long", "long_resume", f"resumed at step {plan['a']}, stopped by SIGTERM at {plan.get('b1')}"),
             (f"{WORLD} ranks, late", "tail", "tail_resume",
              f"resumed at step {plan.get('b')}, stopped by SIGTERM at {plan.get('c')}")]
    for name, ref_label, res_label, where in cases:
        ref, res = by.get(ref_label), by.get(res_label)
        if not (ref and res and ref["completed"] and res["completed"]):
            continue
        if ref["nonfinite"] or res["nonfinite"]:
            done.append(f"{name}: not judged, the loss went non-finite (see finite)")
            continue
        if ref_label == "short":
            got, notes = judge_resume_short(ref, res, by.get("short_resume"), plan["k"])
        elif ref_label == "long":
            got, notes = judge_resume_late(ref, res, plan["a"], plan["b1"])
        else:
            got, notes = judge_resume_late(ref, res, plan["b"], plan["c"])
        if got:
            problems.append(f"{name}, {where}: " + "; ".join(got + notes))
        done.append(f"{name}, {where}")
    problems += [f"{label}: {why}" for label, (why, fault) in skipped.items() if fault]
    if problems:
        report.set("resume", FAIL, "\n".join(problems))
    elif not done:
        report.set("resume", SKIP, "no resume ran" + "".join(f"; {label}: {why}" for label, (why, _) in skipped.items()))
    else:
        report.set("resume", PASS, "bitwise equal to the runs that went on (parameters, every optimizer's state and "
                   "attributes, `state`, module globals, RNG, val lines): " + "; ".join(done))


# -- logs

def check_log_script(code, run):
    """(f) for one fresh run: a problem string, None when fine, or SKIP."""
    if not run["logs"]:
        return "the run wrote no log into log_dir" if run["completed"] else SKIP
    if len(run["logs"]) > 1:
        return f"the run wrote {len(run['logs'])} files into log_dir, expected one log"
    log = run["logs"][0]
    if not log.startswith(code):
        n = next((i for i, (a, b) in enumerate(zip(log, code)) if a != b), min(len(log), len(code)))
        line = code[:n].count("\n") + 1
        return f"the log does not start with the script's exact text (first difference at line {line} of the script)"
    rest = log[len(code):].lstrip("\r\n")
    if rest.split("\n", 1)[0].rstrip() != SEPARATOR:
        return "the script's text in the log is not followed by a line of 100 '='"
    return None


def split_trials(lines):
    """{trial: [(step, val line)]} of a log's lines: split at 'trial i/n seed' lines (a 'trial i/n resumed' line
    continues trial i); a log without such lines is split where the step does not go up (the public tools split at
    step 0). Val lines before the first trial line go to trial None."""
    trials, marked, current = collections.OrderedDict(), any(TRIAL_RE.match(line) for line in lines), None
    for line in lines:
        m = TRIAL_RE.match(line)
        if m:
            current = int(m[1])
            trials.setdefault(current, [])
            continue
        v = PUBLIC_VAL_RE.search(line)
        if not v:
            continue
        if not marked and (current is None or int(v[1]) <= trials[current][-1][0]):
            current = len(trials) + 1
            trials[current] = []
        trials.setdefault(current, []).append((int(v[1]), line))
    return trials


def check_log_format(text, expected, train_steps, n_trials, nonfinite=False):
    """(g) for one log's text after the script: a problem string or None. `expected`: the val steps of a trial."""
    lines = [line.rstrip() for line in text.splitlines()]
    for line in lines:
        if (line.startswith("step:") or PUBLIC_VAL_RE.search(line)) and not VAL_LINE_RE.fullmatch(line):
            return (f"a val line not in the layout of RULES 6.2 ('step:S/N val_loss:L [name:value ...] "
                    f"train_time:Ts step_avg:Mms'): {line[:120]!r}")
    trials = split_trials(lines)
    if list(trials) != list(range(1, n_trials + 1)):
        return f"{len(trials)} trials found in the log (trials {_clip(list(trials))}), expected {n_trials}"
    for i, points in trials.items():
        steps = [s for s, _ in points]
        totals = {int(VAL_LINE_RE.fullmatch(line)[2]) for _, line in points}
        if totals - {train_steps}:
            return f"trial {i} has val lines whose total is not train_steps = {train_steps}: {_clip(totals)}"
        if steps != expected and not (nonfinite and steps == expected[:len(steps)]):
            extra, missing = sorted(set(steps) - set(expected)), sorted(set(expected) - set(steps))
            twice = sorted(s for s, c in collections.Counter(steps).items() if c > 1)
            return (f"trial {i} validates at steps other than the script's is_val_step says: "
                    + "; ".join(x for x in [f"extra {_clip(extra)}" if extra else "", f"missing {_clip(missing)}"
                                            if missing else "", f"twice {_clip(twice)}" if twice else ""] if x)
                    + ("" if extra or missing or twice else "; out of order"))
    return None


def cadence_note(val_steps, train_steps):
    """The script's val steps against RULES 6.1 (a note: RULES 6.4 allows denser val steps and none at step 0)."""
    rule = rule_val_steps(train_steps)
    if val_steps == rule:
        return f"{len(rule)} val steps per trial, the cadence of RULES 6.1"
    adds, drops = sorted(set(val_steps) - set(rule)), sorted(set(rule) - set(val_steps))
    return (f"{len(val_steps)} val steps per trial, not the cadence of RULES 6.1 (allowed by 6.4): "
            + "; ".join(x for x in [f"adds {_clip(adds)}" if adds else "", f"drops {_clip(drops)}" if drops else ""] if x))


def judge_logs(report, runs, code, val_lines):
    fresh = [run for run in runs if run["fresh"]]
    results = [check_log_script(code, run) for run in fresh]
    problems = _merge((run["label"], p) for run, p in zip(fresh, results) if p and p != SKIP)
    if problems:
        report.set("log_script", FAIL, "; ".join(problems))
    elif SKIP in results:
        report.set("log_script", SKIP, "a run failed before it wrote its log")
    else:
        report.set("log_script", PASS, f"the logs of {len(fresh)} runs start with the script's exact text and a line of 100 '='")
    nonfinite = report.checks["finite"]["status"] == FAIL
    problems = ["lines of the script match the public val pattern: " + _clip(val_lines, 3)] if val_lines else []
    skipped, checked, note, found = False, 0, "", []
    by = {run["label"]: run for run in runs}
    whole = [run for run in fresh if run["label"] != "short_stop"]
    if "short_resume" in by:  # the stopped log and its resumed rest must read as one uninterrupted log
        whole.append(dict(by["short_resume"], label="short_stop + short_resume"))
    for run in whole:
        expected = run["results"][0].get("val_steps")
        if not run["completed"] or len(run["logs"]) != 1 or expected is None:
            skipped = skipped or not run["completed"]
            continue
        problem = check_log_format(after_script(run["logs"][0], code), expected, run["train_steps"], run["trials"],
                                   nonfinite)
        checked += 1
        found += [(run["label"], problem)] if problem else []
        if run["label"] == "long":
            note = "; " + cadence_note(expected, run["train_steps"])
    problems += _merge(found)
    if problems:
        report.set("log_format", FAIL, "; ".join(problems))
    elif skipped or not checked:
        report.set("log_format", SKIP, "a run did not complete (see run); the script's text matches no val line")
    else:
        report.set("log_format", PASS, f"{checked} logs: every val line in the layout of RULES 6.2, each trial at exactly "
                   f"the script's val steps{note}; no line of the script matches the public pattern")


# -----------------------------------------------------------------------------
# The hyperparameter table (the long run, rank 0)

def hparam_rows(table):
    """[(optimizer, groups, key, {step: value})]: a row per optimizer and key, groups with equal values merged."""
    rows = []
    for (index, cls, key), by_step in table.items():
        groups = sorted({g for values in by_step.values() for g in values})
        series = collections.OrderedDict()
        for g in groups:
            series.setdefault(tuple(by_step[s].get(g) for s in sorted(by_step)), []).append(g)
        for values, gs in series.items():
            rows.append((f"{index} {cls}", gs, key, dict(zip(sorted(by_step), values))))
    return rows


def _groups(gs):
    if len(gs) > 1 and gs == list(range(gs[0], gs[-1] + 1)):
        return f"{gs[0]}-{gs[-1]}"
    return ",".join(map(str, gs))


def format_table(info):
    table = info.get("hparams")
    if not table or not table["rows"]:
        return []
    steps = table["steps"]
    T = info["train_steps"]
    heads = [f"{s} ({s / T:.2f})" for s in steps]
    lines = [f"Hyperparameters at the optimizer step of (the long run: {T} steps, rank 0):"]
    widths = [max(len(h), 10) for h in heads]
    lines.append(f"  {'optimizer':<13} {'groups':<7} {'key':<16} " + " ".join(h.rjust(w) for h, w in zip(heads, widths)))
    for row in table["rows"]:
        cells = [("-" if v is None else f"{v:.4g}").rjust(w) for v, w in zip(row["values"], widths)]
        lines.append(f"  {row['optimizer']:<13} {_groups(row['groups']):<7} {row['key']:<16} " + " ".join(cells))
    return lines


# -----------------------------------------------------------------------------

def static_checks(report, code, tree):
    problems = check_imports(tree)
    report.set("imports", FAIL if problems else PASS, "; ".join(problems) or "standard library, torch and triton only")
    problems = check_hardcoded(tree)
    report.set("hardcoded", FAIL if problems else PASS, "; ".join(problems) or
               "no command-line parsing; sys.argv: the trial count only; os.environ: " + ", ".join(ALLOWED_ENV) + " only")


def load_user(report, script, path, code, tree):
    """The imported script, or None after setting `load` to FAIL."""
    problem = public_format_problem(tree, script)
    if problem:
        report.set("load", FAIL, problem, fix="port the script into the harness's format (see above), then preflight it")
        return None
    try:
        user = tiny.load_script(path, "preflight_user")
    except tiny.ScriptError as e:
        if e.__cause__ is not None:  # importing it raised: show the script's own frames
            report.set("load", FAIL, f"{script}: importing it failed:\n" + probes.script_traceback(e.__cause__, path),
                       fix="fix the error above; a missing third-party module: copy its code into the script")
        else:
            report.set("load", FAIL, str(e).rstrip())
        return None
    missing = [name for name in HOOKED if not callable(getattr(user, name, None))]
    if missing:
        report.set("load", FAIL, f"{script}: lacks {', '.join(missing)}: the preflight watches the script through these "
                   "names of the repo's train_gpt_simple.py (start from a copy of it: python -m tools.new)")
        return None
    return user


def preflight(script, steps=None, progress=None, keep_logs=None, compile=False):
    """Run every check on `script` (and, with `compile`, tools.compile_check); returns the report as a dict."""
    say = progress or (lambda message: None)
    t0 = time.perf_counter()
    report = Report()
    path = os.path.abspath(script)
    info = dict(script=script, sha256=None, baseline=str(BASELINE), train_steps=None, steps_source=None)

    def finish():
        for c in report.checks.values():
            if c["detail"] == "not run":
                c["detail"] = "not run: the script did not load" if report.checks["load"]["status"] == FAIL else "not run"
        compiled = info.get("compile")
        info.update(ok=report.ok() and (compiled or {}).get("status") != FAIL, checks=list(report.checks.values()),
                    wall_s=round(time.perf_counter() - t0, 1))
        return info

    try:
        raw = Path(path).read_bytes()
        code = raw.decode()
    except OSError as e:
        report.set("load", FAIL, f"{script}: {e.strerror or e}", fix="give the path of a training script")
        info["bad_input"] = True
        return finish()
    except UnicodeDecodeError as e:
        report.set("load", FAIL, f"{script}: not UTF-8 text ({e})", fix="give the path of a training script")
        info["bad_input"] = True
        return finish()
    info["sha256"] = hashlib.sha256(raw).hexdigest()
    try:
        tree = ast.parse(code, filename=path)
    except SyntaxError as e:
        report.set("load", FAIL, f"{script}: syntax error at line {e.lineno}: {e.msg}\n    {(e.text or '').rstrip()}")
        return finish()
    static_checks(report, code, tree)
    val_lines = script_val_lines(code)
    if val_lines:
        report.set("log_format", FAIL, "lines of the script match the public val pattern: " + _clip(val_lines, 3))
    user = load_user(report, script, path, code, tree)
    if user is None:
        return finish()
    base = tiny.load_script(str(BASELINE), "preflight_baseline")
    train_steps = steps if steps is not None else getattr(user, "train_steps", None)
    if not isinstance(train_steps, int) or isinstance(train_steps, bool) or train_steps < 1:
        report.set("load", FAIL, f"train_steps = {train_steps!r}: expected a positive int")
        return finish()
    info.update(train_steps=train_steps, steps_source="--steps" if steps is not None else "the script's train_steps")
    report.set("load", PASS, "defines " + ", ".join(tiny.REQUIRED + HOOKED))
    report.set(*(("architecture",) + check_architecture(user, base)))
    report.set(*(("constants",) + check_constants(user, base)))
    try:
        user.train_steps = train_steps  # the val steps at this length, for the plan (the runs set it themselves)
        val_steps = [s for s in range(train_steps + 1) if user.is_val_step(s)]
    except Exception:
        val_steps = rule_val_steps(train_steps)  # the runs will show the script's error
    plan = plan_runs(train_steps, val_steps)
    with tempfile.TemporaryDirectory(prefix="preflight_") as tmp:
        train, val = tiny.tiny_data(os.path.join(tmp, "data"), max(train_steps, STREAM_STEPS))
        stream_ok, stream_detail = check_stream(user, base, train, val)
        runner = Runner(path, tmp, train_steps, plan, train, val, say)
        runs = runner.all()
        if keep_logs:
            info["kept_logs"] = keep_run_logs(runs, keep_logs)
    info["plan"] = plan
    info["runs"] = [dict(label=r["label"], what=r["what"], world_size=r["world"], train_steps=r["train_steps"],
                         trials=r["trials"], seconds=round(r["seconds"], 1), completed=r["completed"]) for r in runs]
    info["skipped_runs"] = runner.skipped
    judge_all(report, runs, runner.skipped, plan, code, val_lines, stream_ok, stream_detail)
    long = runner.by_label.get("long")
    if long and long["results"]:
        info["hparams"] = dict(steps=table_steps(train_steps), rows=[
            dict(optimizer=o, groups=gs, key=k, values=[v.get(s) for s in table_steps(train_steps)])
            for o, gs, k, v in hparam_rows(long["results"][0].get("hparams_table", {}))])
        info["val_steps"] = long["results"][0].get("val_steps")
    errors = [r["instrument_error"] for r in _results(runs) if r.get("instrument_error")]
    if errors:
        info["instrument_error"] = errors[0]
    if compile:
        say("compiling the script's model and optimizer functions on the CPU (tools.compile_check) ...")
        info["compile"] = run_compile_check(path)
    return finish()


def run_compile_check(path):
    """tools.compile_check in its own process (inductor's state stays out of this one, which forks ranks)."""
    try:
        out = subprocess.run([sys.executable, "-m", "tools.compile_check", path, "--json"], capture_output=True,
                             text=True, cwd=str(BASELINE.parent), timeout=COMPILE_TIMEOUT_S)
        result = json.loads(out.stdout.strip().splitlines()[-1])
    except subprocess.TimeoutExpired:
        return dict(status=FAIL, detail=f"did not finish within {COMPILE_TIMEOUT_S} s", checks=[])
    except (ValueError, IndexError):
        return dict(status=FAIL, detail="tools.compile_check gave no report: " + (out.stderr.strip()[-2000:] or
                                                                                     f"exit status {out.returncode}"),
                    checks=[])
    checks = [dict(name=c[0], status=c[1], detail=c[2]) for c in result.get("checks", [])]  # [name, status, detail]
    return dict(status=result.get("status"), detail=result.get("detail", ""), checks=checks)


def judge_all(report, runs, skipped, plan, code, val_lines, stream_ok, stream_detail):
    judge_run(report, runs, skipped)
    judge_finite(report, runs, code)
    judge_ranks(report, runs)
    judge_membership(report, runs)
    judge_hparams(report, runs)
    judge_weights(report, runs)
    judge_passes(report, runs)
    judge_data(report, runs, stream_ok, stream_detail)
    judge_resume(report, runs, plan, skipped)
    judge_logs(report, runs, code, val_lines)


def keep_run_logs(runs, directory):
    """Copy every run's log to DIRECTORY/<run>/<log name>; never overwrites. Returns the paths written."""
    kept = []
    for run in runs:
        for src in run["log_files"]:
            dest_dir = os.path.join(directory, run["label"])
            os.makedirs(dest_dir, exist_ok=True)
            dest = os.path.join(dest_dir, os.path.basename(src))
            if os.path.isfile(src) and not os.path.exists(dest):
                shutil.copyfile(src, dest)
                kept.append(dest)
    return kept


def format_report(info):
    lines = [f"preflight {info['script']}" + (f" (sha256 {info['sha256']})" if info.get("sha256") else "")]
    if info.get("train_steps"):
        lines.append(f"  {info['train_steps']} steps ({info['steps_source']}); tiny model of width "
                     f"{tiny.TINY['model_dim']}, synthetic data, CPU; runs: "
                     + "; ".join(f"{r['label']}: {r['what']}" for r in info.get("runs", [])))
    not_loaded = "not run: the script did not load"
    for c in info["checks"]:
        rule = f"rule {c['rule']}" if c["rule"] != "-" else ""
        lines.append(f"  {c['status']}  {c['id']:<12} {c['check']}" + (f"  [{rule}]" if rule else ""))
        if c["detail"] == not_loaded:
            continue
        if c["status"] != PASS or c["id"] in ("run", "log_format") or "not judged" in c["detail"]:
            detail = c["detail"].replace("\n", "\n        ")
            lines.append(f"        {detail}")
        if c["status"] == FAIL:
            lines.append(f"        fix: {c['fix']}")
    lines += format_table(info)
    fails = [c["id"] for c in info["checks"] if c["status"] == FAIL]
    skips = [c["id"] for c in info["checks"] if c["status"] == SKIP]
    verdict = (f"FAIL: {len(fails)} of {len(info['checks'])} checks ({', '.join(fails)})" if fails
               else f"PASS: all {len(info['checks'])} checks" + (f" ({len(skips)} skipped)" if skips else ""))
    if any(c["detail"] == not_loaded for c in info["checks"]):
        lines.append(f"SKIP: {not_loaded}.")
    if info.get("compile"):
        lines.append(f"compile check (--compile: the script's own torch.compile calls on the CPU): {info['compile']['status']}")
        for c in info["compile"].get("checks", []):
            lines.append(f"  {c['status']}  {c['name']:<12} {c['detail']}")
        if not info["compile"].get("checks"):
            lines.append(f"        {info['compile']['detail']}")
        if info["compile"]["status"] == FAIL:
            verdict = (f"FAIL: the compile check (the other {len(info['checks'])} checks pass)" if not fails
                       else verdict + " and the compile check")
    if info.get("kept_logs") is not None:
        lines.append(f"Logs kept: {len(info['kept_logs'])} files, e.g. " + _clip(info["kept_logs"], 2))
    lines.append(f"{verdict}. Wall time {info['wall_s']:.1f} s.")
    if info.get("train_steps") and info["steps_source"] == "--steps":
        lines.append("Note: --steps overrode train_steps; the default runs every step of the script's own train_steps.")
    if info.get("instrument_error"):
        lines.append("Note: the preflight's own instrumentation failed (a bug in tools.preflight):\n"
                     + info["instrument_error"])
    return "\n".join(lines)


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m tools.preflight", description=__doc__.split("\n\n")[0])
    parser.add_argument("script", help="the training script to check (a modified copy of train_gpt_simple.py)")
    parser.add_argument("--steps", type=int, default=None,
                        help="override train_steps (quick looks, tests); default: every step of the script's own train_steps")
    parser.add_argument("--json", action="store_true", help="print one JSON object instead of the checklist")
    parser.add_argument("--compile", action="store_true",
                        help="also run the script's own torch.compile calls on the CPU (tools.compile_check: graph breaks, "
                             "recompiles, compiled = eager); a minute or two more")
    parser.add_argument("--keep-logs", metavar="DIR", default=None,
                        help="copy the CPU runs' logs to DIR/<run>/ (created if missing; nothing there is overwritten)")
    args = parser.parse_args(argv)
    if args.steps is not None and args.steps < 1:
        parser.error("--steps must be at least 1")
    if args.keep_logs is not None:
        if os.path.exists(args.keep_logs) and not os.path.isdir(args.keep_logs):
            parser.error(f"--keep-logs {args.keep_logs}: a file is there; give a directory (created if missing)")
        try:
            os.makedirs(args.keep_logs, exist_ok=True)
        except OSError as e:
            parser.error(f"--keep-logs {args.keep_logs}: cannot create it ({e.strerror or e})")
    progress = None if args.json else (lambda message: print(f"preflight: {message}", flush=True))
    info = preflight(args.script, args.steps, progress, args.keep_logs, args.compile)
    print(json.dumps(info, indent=1, default=str) if args.json else format_report(info))
    return 0 if info["ok"] else 2 if info.get("bad_input") else 1


if __name__ == "__main__":
    from tools import preflight as _preflight  # the module proper, not __main__, so its objects have one home
    sys.exit(_preflight.main())
