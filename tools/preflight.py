"""Check a modified train_gpt_simple.py on the CPU, before paying for a GPU run.

    python -m tools.preflight path/to/train_gpt_simple.py            every step of its train_steps
    python -m tools.preflight path/to/train_gpt_simple.py --steps 30 a quick look
    python -m tools.preflight path/to/train_gpt_simple.py --json     a machine-readable report

Runs the script's own code (init_params, make_optimizers, lr schedule, main() and its training
loop) on the tiny model of tools.tiny (2 layers of width 16) with synthetic shards in a temporary
directory: first 2 trials of 10 steps on 1 rank in this process, 2 microbatches per step (the
single-GPU code path, gradient accumulation and the trial split of the log; it also warms torch
up), then every step of the script's train_steps on 2 gloo ranks forked from this process, one
microbatch per rank per step (the gradient sums over ranks, the sharded optimizer). It watches every forward, backward and optimizer step, and compares the script with the
repo's train_gpt_simple.py (the baseline) where the rules of the benchmark (SPEC section 2) fix
what may change. Prints a checklist (PASS / FAIL / SKIP, with what to change for each FAIL) and
the wall time. Exit status: 0 no FAIL, 1 any FAIL, 2 no such file (or a bad argument).

Numbers on the tiny model say nothing about val loss: a PASS means the script runs, keeps the
rules a machine can check, and touches every parameter; not that it trains well.
"""
import argparse
import ast
import collections
import functools
import json
import math
import os
import re
import sys
import tempfile
import time
import traceback
from pathlib import Path

import torch

from tools import tiny

BASELINE = Path(__file__).resolve().parents[1] / "train_gpt_simple.py"
PUBLIC_VAL_RE = re.compile(r"step:(\d+)/(\d+)\s+val_loss:([0-9.]+)")  # what the public tools parse
ANY_VAL_RE = re.compile(r"step:(\d+)/(\d+)\s+val_loss:(\S+)")  # also nan / inf
SEPARATOR = "=" * 100
ALLOWED_ENV = ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT", "SEED", "RESUME")
CLI_MODULES = {"argparse", "optparse", "getopt", "click", "typer", "fire", "absl", "hydra", "omegaconf", "docopt",
               "jsonargparse", "simple_parsing", "tyro"}
CODE_LOADERS = {"runpy.run_path", "runpy.run_module", "importlib.util.spec_from_file_location",
                "importlib.machinery.SourceFileLoader", "importlib.util.spec_from_loader"}
WORLD = 2  # ranks of the long run
SHORT_STEPS, SHORT_TRIALS, SHORT_MICROBATCHES = 10, 2, 2  # the 1-rank run (tiny.TINY): 2 trials, gradient accumulation
# The long run, every step on WORLD ranks, costs per step: one microbatch per rank, and one layer (its stacks of one
# matrix leave rank 1 without a share: that code path runs too). The short run covers 2 layers.
LONG_MICROBATCHES, LONG_LAYERS = 1, 1
STREAM_STEPS = 100  # steps of the data-stream comparison (tiny shards switch every 40 steps)
TIMEOUT_BASE_S, TIMEOUT_PER_STEP_S = 120, 0.5  # a hang guard for the long run

# id, rule (SPEC section 2), what it checks, what to change when it fails
CHECKS = [
    ("load", "-", "the script exists, compiles, imports and defines the harness's names",
     "start from a copy of the repo's train_gpt_simple.py (python -m tools.new) and keep its names"),
    ("run", "-", "main() runs every step without an exception",
     "fix the exception above (the traceback shows the script's own lines)"),
    ("finite", "-", "no nan or inf: training loss, val loss, parameters",
     "find the step where it starts (lr schedule, a division, an optimizer state) and fix it"),
    ("optimizers", "-", "every parameter is in exactly one optimizer",
     "make_optimizers must hand every model parameter to exactly one optimizer group"),
    ("gradients", "-", "every optimized parameter has a gradient at every optimizer step",
     "the model must use every parameter in its forward; do not clear .grad before the optimizer step"),
    ("updates", "-", "every optimized parameter with a non-zero gradient changes during training",
     "check its lr (and lr schedule) is non-zero and the optimizer's step writes the parameter"),
    ("ranks", "-", "every rank ends each trial with the same parameters (no rank drifts from the others)",
     "sum every gradient over ranks before the update (main() does it for an optimizer without `owner`); an "
     "optimizer with `owner` must sum its own and hand every rank what it updated (Muon: reduce-scatter, all-gather)"),
    ("lr", "-", "every group's lr is finite and >= 0 at every optimizer step",
     "check lr_multiplier (and any other schedule) over all of train_steps, e.g. a decay that goes below 0 before the end"),
    ("architecture", "2.1",
     "(a) parameter names and shapes at full size, and the forward (loss and gradients) equal the baseline's",
     "restore the baseline's model classes and vocab_size, num_layers, model_dim; only the optimizer and init may change"),
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
     "(g) the log parses with the public pattern and splits into trials at step 0; the script's text never matches it",
     "keep the 'step:S/N val_loss:L' lines as the baseline prints them; no digits after 'step:' in the script's text"),
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
# Static checks of the script's text: (e), (h), and the script part of (g)

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
                if a.name == "os":
                    os_names.add(a.asname or "os")
                elif a.name == "sys":
                    sys_names.add(a.asname or "sys")
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


# -----------------------------------------------------------------------------
# Comparisons with the baseline: (a), (b) static part, (c)

def check_architecture(user, base):
    """(a): (status, detail)."""
    try:
        with torch.device("meta"):
            full = {n: (tuple(p.shape), p.dtype) for n, p in
                    user.GPT(user.vocab_size, user.num_layers, user.model_dim).named_parameters()}
    except Exception as e:
        return FAIL, f"GPT(vocab_size, num_layers, model_dim) of the script failed on the meta device: {type(e).__name__}: {e}"
    with torch.device("meta"):
        ref = {n: (tuple(p.shape), p.dtype)
               for n, p in base.GPT(base.vocab_size, base.num_layers, base.model_dim).named_parameters()}
    missing, extra = [n for n in ref if n not in full], [n for n in full if n not in ref]
    differ = [f"{n} {tuple(full[n][0])} {str(full[n][1])[6:]} (baseline {tuple(ref[n][0])} {str(ref[n][1])[6:]})"
              for n in ref if n in full and full[n] != ref[n]]
    if missing or extra or differ:
        parts = [f"missing {_clip(missing)}" if missing else "", f"extra {_clip(extra)}" if extra else "",
                 f"differ: {_clip(differ, 3)}" if differ else ""]
        sizes = f"GPT({user.vocab_size}, {user.num_layers}, {user.model_dim}) vs the baseline's GPT(50304, 12, 768)"
        return FAIL, f"parameters at full size, {sizes}: " + "; ".join(p for p in parts if p)
    # the forward on shared random weights, at the tiny size
    V, L, D, T = (tiny.TINY[k] for k in ("vocab_size", "num_layers", "model_dim", "seq_len"))
    generator = torch.Generator().manual_seed(1234)
    ref_model = base.GPT(V, L, D)
    with torch.no_grad():
        for p in ref_model.parameters():
            p.copy_(torch.randn(p.shape, generator=generator) * 0.5 + (1.0 if p.ndim == 1 else 0.0))
    inputs = torch.randint(0, V, (2, T), generator=generator)
    targets = torch.randint(0, V, (2, T), generator=generator)
    try:
        model = user.GPT(V, L, D)
        model.load_state_dict(ref_model.state_dict())
        loss = model(inputs, targets)
        loss.backward()
    except Exception as e:
        return FAIL, f"the script's GPT({V}, {L}, {D}) with the baseline's weights failed: {type(e).__name__}: {e}"
    ref_loss = ref_model(inputs, targets)
    ref_loss.backward()
    if not isinstance(loss, torch.Tensor) or loss.shape != ref_loss.shape or not torch.allclose(
            loss.detach().double(), ref_loss.detach().double(), rtol=1e-5, atol=1e-5):
        value = loss.item() if isinstance(loss, torch.Tensor) and loss.numel() == 1 else loss
        return FAIL, f"the forward differs on shared weights at the tiny size: loss {value} vs the baseline's {ref_loss.item()}"
    grads = dict(model.named_parameters())
    bad = [n for n, p in ref_model.named_parameters()
           if grads[n].grad is None or not torch.allclose(grads[n].grad.double(), p.grad.double(), rtol=1e-4,
                                                          atol=1e-5 * float(p.grad.abs().max()) + 1e-12)]
    if bad:
        return FAIL, f"the loss matches but the gradients of {_clip(bad)} differ from the baseline's (a changed backward)"
    return PASS, (f"{len(full)} parameters with the baseline's names, shapes and dtypes at full size; "
                  f"loss and gradients equal on shared random weights at the tiny size ({loss.item():.4f})")


def _same_batch(a, b):
    return (len(a) == len(b) == 2 and all(x.shape == y.shape and torch.equal(x.cpu().long(), y.cpu().long())
                                          for x, y in zip(a, b)))


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
                    if not _same_batch(next(mine), next(ref)):
                        return False, f"{what}: the script's distributed_data_generator yields other tokens than the baseline's"
                what = f"val set, rank {rank} of {world}"
                if not _same_batch(next(user.distributed_data_generator(val, VT, rank, world, T, "cpu")),
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


# -----------------------------------------------------------------------------
# The runs: an instrument in every process watches the script's own main()

def _rows(inputs, targets):
    return [(tuple(i), tuple(t)) for i, t in zip(inputs.reshape(inputs.size(0), -1).tolist(),
                                                 targets.reshape(targets.size(0), -1).tolist())]


def script_traceback(exc, script):
    """The traceback of `exc` cut to the script's own frames (and the frame that raised)."""
    frames = traceback.extract_tb(exc.__traceback__)
    keep = [f for f in frames if os.path.abspath(f.filename) == script]
    if frames and (not keep or keep[-1] is not frames[-1]):
        keep.append(frames[-1])
    return "".join(["Traceback (the script's frames):\n"] + traceback.format_list(keep)
                   + traceback.format_exception_only(type(exc), exc)).rstrip()


class Recorder:
    """Wraps the script's make_optimizers, optimizers' step, GPT.forward, distributed_data_generator and main."""

    def __init__(self, module, result, cfg):
        self.m, self.r, self.cfg = module, result, cfg
        self.script = os.path.abspath(module.__file__)
        self.rank, self.world = int(os.environ.get("RANK", 0)), int(os.environ.get("WORLD_SIZE", 1))
        self.base = tiny.load_script(str(BASELINE), "preflight_baseline_stream")
        result.update(completed=False, traceback=None, trials=0, steps=0, opt_steps=[], none=set(), multi=set(),
                      no_grad=collections.Counter(), unchanged=set(), zero_grad=set(), nonfinite=set(),
                      bad_passes=[], n_bad_passes=0,
                      stream_errors=[], bad_lr=[], n_bad_lr=0, train_batches=0, val_batches=0, instrument_error=None)
        self.model = self.names = self.snapshot = None
        self.optimized, self.had_grad, self.changed = set(), set(), set()
        self.fwd = self.bwd = 0
        self.rows, self.batches, self.step_in_trial = [], [], 0
        module.make_optimizers = self.wrap_make_optimizers(module.make_optimizers)
        module.init_params = self.wrap_init_params(module.init_params)
        module.GPT.forward = self.wrap_forward(module.GPT.forward)
        module.distributed_data_generator = self.wrap_generator(module.distributed_data_generator)
        module.main = self.wrap_main(module.main)

    def safely(self, fn, *args):
        """Run a piece of the instrumentation; its own failure is reported as such, never as the script's."""
        try:
            return fn(*args)
        except Exception:
            if self.r["instrument_error"] is None:
                self.r["instrument_error"] = traceback.format_exc()

    def note(self, key, item, limit=5):
        if len(self.r[key]) < limit:
            self.r[key].append(item)

    def wrap_init_params(self, init_params):
        def wrapped(*args, **kwargs):
            self.safely(self.finish_trial)  # before the next trial re-initializes the same model
            return init_params(*args, **kwargs)
        return wrapped

    def wrap_make_optimizers(self, make_optimizers):
        def wrapped(model):
            self.safely(self.finish_trial)
            optimizers = make_optimizers(model)
            self.safely(self.new_trial, model, optimizers)
            return optimizers
        return wrapped

    def new_trial(self, model, optimizers):
        """make_optimizers returned: which optimizer holds each parameter; watch every optimizer's step."""
        opts = [optimizers] if isinstance(optimizers, torch.optim.Optimizer) else list(optimizers)
        self.model, self.names = model, {id(p): n for n, p in model.named_parameters()}
        count = collections.Counter(id(p) for opt in opts for g in opt.param_groups for p in g["params"])
        self.r["none"] |= {n for n, p in model.named_parameters() if count[id(p)] == 0}
        self.r["multi"] |= {n for n, p in model.named_parameters() if count[id(p)] > 1}
        self.optimized = {self.names[i] for i in count if i in self.names}
        self.had_grad, self.changed, self.snapshot, self.step_in_trial = set(), set(), None, 0
        self.fwd = self.bwd = 0
        self.rows = []
        self.r["trials"] += 1
        self.r["opt_steps"].append([0] * len(opts))
        for i, opt in enumerate(opts):
            opt.step = self.wrap_step(opt, opt.step, i)

    def wrap_step(self, opt, step, index):
        def wrapped(*args, **kwargs):
            if index == 0:
                self.safely(self.boundary)
            self.safely(self.before_step, opt, index)
            return step(*args, **kwargs)
        return wrapped

    def before_step(self, opt, index):
        """Every optimizer's step: its lrs, and which of its parameters have a gradient."""
        self.r["opt_steps"][-1][index] += 1
        for g, group in enumerate(opt.param_groups if self.rank == 0 else []):  # the same schedule on every rank
            lr = group.get("lr")
            try:
                lr = float(lr)
            except (TypeError, ValueError, RuntimeError):
                continue
            if not (math.isfinite(lr) and lr >= 0):
                self.r["n_bad_lr"] += 1
                self.note("bad_lr", f"trial {self.r['trials']} step {self.step_in_trial - 1}: "
                          f"optimizer {index} ({type(opt).__name__}) group {g} lr = {lr!r}")
        for group in opt.param_groups:
            for p in group["params"]:
                name = self.names.get(id(p), "(a tensor not in the model)")
                if p.grad is None:
                    self.r["no_grad"][name] += 1
                elif name not in self.had_grad and bool(p.grad.detach().ne(0).any()):
                    self.had_grad.add(name)  # a non-zero gradient: from now on it must change

    def boundary(self):
        """The first optimizer's step: the end of a training step's passes."""
        if self.snapshot is None:
            self.snapshot = {n: p.detach().clone() for n, p in self.model.named_parameters()}
        else:
            self.changed |= self.changes()
        step, expected = self.step_in_trial, self.cfg["microbatches"]
        self.step_in_trial += 1
        self.r["steps"] += 1
        problems = []
        if self.fwd != expected or self.bwd != expected:
            problems.append(f"{self.fwd} training forwards and {self.bwd} backwards (expected {expected} each)")
        if self.batches:
            batch = self.batches.pop(0)
            if sorted(self.rows) != sorted(batch):
                problems.append(f"the forwards covered {len(self.rows)} sequences, not the step's batch of {len(batch)} "
                                "sequences once each")
        elif self.rows:
            problems.append("trained without fetching a new batch from distributed_data_generator (a re-used batch)")
        if problems:
            self.r["n_bad_passes"] += 1
            self.note("bad_passes", f"trial {self.r['trials']} step {step} on rank {self.rank}: " + "; ".join(problems))
        self.fwd = self.bwd = 0
        self.rows = []

    def on_backward(self, grad):
        self.bwd += 1

    def wrap_forward(self, forward):
        import inspect
        signature = inspect.signature(forward)

        def wrapped(model, *args, **kwargs):
            loss = forward(model, *args, **kwargs)
            if torch.is_grad_enabled():
                self.safely(self.after_forward, signature, (model,) + args, kwargs, loss)
            return loss
        return wrapped

    def after_forward(self, signature, args, kwargs, loss):
        """A training forward (gradients on): count it, keep its sequences, count its loss's backward."""
        self.fwd += 1
        try:
            values = list(signature.bind(*args, **kwargs).arguments.values())[1:3]
        except TypeError:
            values = list(args[1:3])
        if len(values) == 2 and all(isinstance(v, torch.Tensor) for v in values):
            self.rows += _rows(*values)
        if isinstance(loss, torch.Tensor) and loss.requires_grad:
            loss.register_hook(self.on_backward)

    def wrap_generator(self, generator):
        import inspect
        signature = inspect.signature(generator)

        def wrapped(*args, **kwargs):
            try:
                bound = signature.bind(*args, **kwargs)
                bound.apply_defaults()
                pattern = next(iter(bound.arguments.values()))
            except TypeError:
                pattern = args[0] if args else None
            m = self.m
            kind = "train" if pattern == m.train_files else "val" if pattern == m.val_files else None
            if kind is None:
                self.note("stream_errors", f"distributed_data_generator called with files {pattern!r}, "
                          "neither train_files nor val_files")
                yield from generator(*args, **kwargs)
                return
            ref = self.base.distributed_data_generator(pattern, m.batch_size if kind == "train" else m.val_tokens,
                                                       self.rank, self.world, m.seq_len, "cpu")
            if kind == "train":
                self.batches = []  # a new stream (a new trial): batches of an earlier one were abandoned
            for i, batch in enumerate(generator(*args, **kwargs)):
                self.safely(self.fetched, kind, i, batch, ref)
                yield batch
        return wrapped

    def fetched(self, kind, i, batch, ref):
        """A batch main() took from distributed_data_generator, against the baseline's stream."""
        expected = next(ref, None)
        if expected is None or not (isinstance(batch, (tuple, list)) and _same_batch(batch, expected)):
            self.note("stream_errors", f"trial {self.r['trials']}, rank {self.rank} of {self.world}: the {kind} "
                      f"batch {i} that main() fetched differs from the baseline's stream"
                      + (" (the val set)" if kind == "val" else ""))
        if kind == "train":
            self.r["train_batches"] += 1
            if isinstance(batch, (tuple, list)) and len(batch) == 2:
                self.batches.append(_rows(batch[0], batch[1]))
        else:
            self.r["val_batches"] += 1

    def changes(self):
        """Names of the parameters not yet seen to change that differ from their value before the first step."""
        return {n for n, p in self.model.named_parameters()
                if n not in self.changed and n in self.snapshot and not torch.equal(p.detach(), self.snapshot[n])}

    def finish_trial(self, normal=True):
        """The end of a trial; `normal` False: an exception ended it, so parameters had no chance to change."""
        if self.model is None or self.snapshot is None:
            return
        self.changed |= self.changes()
        if normal:
            self.r["unchanged"] |= (self.optimized & self.had_grad) - self.changed
            self.r["zero_grad"] |= (self.optimized - self.had_grad - set(self.r["no_grad"])) - self.changed
        self.r["nonfinite"] |= {n for n, p in self.model.named_parameters() if not torch.isfinite(p.detach().float()).all()}
        self.r.setdefault("final", []).append({n: p.detach().clone() for n, p in self.model.named_parameters()})
        self.model = self.snapshot = None

    def wrap_main(self, main):
        def wrapped(*args, **kwargs):
            sys.stdout.flush()
            sys.stderr.flush()
            saved, saved_streams = (os.dup(1), os.dup(2)), (sys.stdout, sys.stderr)
            with open(self.cfg["output"] + f".rank{self.rank}", "w", buffering=1) as out:
                os.dup2(out.fileno(), 1)  # the script's output (and C-level warnings) into a file, both levels
                os.dup2(out.fileno(), 2)
                sys.stdout = sys.stderr = out
                try:
                    value = main(*args, **kwargs)
                    self.r["completed"] = True
                    return value
                except SystemExit as e:
                    if e.code in (None, 0):
                        self.r["completed"] = True
                        return None
                    self.r["traceback"] = script_traceback(e, self.script)
                    raise
                except BaseException as e:
                    self.r["traceback"] = script_traceback(e, self.script)
                    raise
                finally:
                    self.safely(self.finish_trial, self.r["completed"])
                    out.flush()
                    sys.stdout, sys.stderr = saved_streams
                    os.dup2(saved[0], 1)
                    os.dup2(saved[1], 2)
                    os.close(saved[0])
                    os.close(saved[1])
        return wrapped


def instrument(cfg, module, result):
    os.environ.pop("RESUME", None)  # never resume the user's real run
    Recorder(module, result, cfg)


def run_script(script, tmp, label, world, train_steps, trials, microbatches, train, val, num_layers=None, timeout=None):
    """One run of the script's main(); returns a dict with the per-rank results and the log text."""
    seqs_per_rank = tiny.TINY["batch_size"] // world // tiny.TINY["seq_len"]
    micro = seqs_per_rank // microbatches
    log_dir = os.path.join(tmp, f"logs_{label}")
    overrides = dict(tiny.TINY, micro_batch_seqs=micro, train_files=train, val_files=val, train_steps=train_steps,
                     num_layers=num_layers or tiny.TINY["num_layers"],
                     log_dir=log_dir, checkpoint_dir=os.path.join(tmp, f"checkpoints_{label}"), checkpoint_every=None)
    cfg = dict(microbatches=seqs_per_rank // math.gcd(micro, seqs_per_rank), output=os.path.join(tmp, f"output_{label}"))
    t0 = time.perf_counter()
    results = tiny.run(script, world, overrides, trials, instrument=functools.partial(instrument, cfg),
                       env=dict(SEED="0"), start_method="fork", timeout=timeout)
    logs = sorted(p for p in Path(log_dir).glob("*") if p.is_file()) if os.path.isdir(log_dir) else []
    outputs = []
    for r in range(world):
        path = cfg["output"] + f".rank{r}"
        outputs.append(Path(path).read_text(errors="replace") if os.path.exists(path) else "")
    return dict(label=label, world=world, train_steps=train_steps, trials=trials, microbatches=cfg["microbatches"],
                results=results,
                logs=[p.read_text(errors="replace") for p in logs], outputs=outputs,
                seconds=time.perf_counter() - t0,
                completed=all(r.get("completed") and not r.get("error") for r in results))


# -----------------------------------------------------------------------------
# Verdicts from the runs

CONSEQUENTIAL = ("Connection closed by peer", "Connection reset by peer", "Broken pipe", "Socket closed", "Timed out")


def _describe(run, microbatches=False):
    text = (f"{run['train_steps']} steps on {run['world']} ranks" if run["trials"] == 1
            else f"{run['trials']} trials x {run['train_steps']} steps on {run['world']} rank")
    n = run["microbatches"]
    per = " per rank" if run["world"] > 1 else ""
    return text + (f", {n} microbatch{'es' if n > 1 else ''}{per} per step" if microbatches else "")


def judge_run(report, runs):
    failures = []
    for run in runs:
        errors = [r for r in run["results"] if r.get("error")]
        if not errors:
            continue
        # the cause, not another rank's echo of it (a closed connection)
        first = sorted(errors, key=lambda r: any(c in r["error"] for c in CONSEQUENTIAL))[0]
        text = first.get("traceback") or first["error"].strip()
        if not first.get("traceback") and run["outputs"][first.get("rank", 0)].strip():
            text += "\n  last output:\n" + "\n".join(run["outputs"][first.get("rank", 0)].strip().splitlines()[-10:])
        others = f" (rank {', '.join(str(r.get('rank')) for r in errors if r is not first)} too)" if len(errors) > 1 else ""
        failures.append(f"{_describe(run)}: rank {first.get('rank', 0)} failed{others}:\n" + text)
    if failures:
        if len(failures) == 2 and failures[0].split(":\n", 1)[1] == failures[1].split(":\n", 1)[1]:
            failures = [failures[0] + f"\n(the same in the run of {_describe(runs[1])})"]
        report.set("run", FAIL, "\n".join(failures))
    else:
        report.set("run", PASS, "; ".join(f"{_describe(r, True)} ({r['seconds']:.0f} s)" for r in runs))


def _verdict(report, cid, problems, runs, pass_detail, needs_complete=True):
    if problems:
        report.set(cid, FAIL, "; ".join(problems))
    elif needs_complete and not all(r["completed"] for r in runs):
        report.set(cid, SKIP, "the run did not complete (see run); no problem in the steps that ran")
    else:
        report.set(cid, PASS, pass_detail)


def after_script(log, code):
    """The part of a log after the embedded script (after its first line of 100 '=')."""
    if log.startswith(code):
        return log[len(code):]
    head, sep, tail = log.partition("\n" + SEPARATOR + "\n")
    return tail if sep else log


def nonfinite_lines(run, code):
    lines = []
    for log in run["logs"]:
        for line in after_script(log, code).splitlines():
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


def judge_dynamic(report, runs, code):
    results = [r for run in runs for r in run["results"]]
    # finite
    bad = [f"{_describe(run)}: {line}" for run in runs for line in nonfinite_lines(run, code)[:1]]
    nonfinite = set().union(*(r.get("nonfinite", set()) for r in results))
    if nonfinite:
        bad.append(f"non-finite parameters at the end: {_clip(sorted(nonfinite))}")
    _verdict(report, "finite", bad, runs, "training losses, val losses and final parameters finite")
    # ranks: a drift grows silently on the GPUs (each rank validates its own copy of the model)
    problems, compared = [], 0
    for run in (run for run in runs if run["world"] > 1 and run["completed"]):
        finals = [r.get("final", []) for r in run["results"]]
        for t, models in enumerate(zip(*finals)):
            compared += 1
            differ = [n for n, p in models[0].items()
                      if any(not torch.allclose(m[n], p, rtol=0, atol=0, equal_nan=True) for m in models[1:])]
            if differ:
                worst = max((m[n].double() - models[0][n].double()).abs().nan_to_num(0).max().item()
                            for n in differ for m in models[1:])
                problems.append(f"{_describe(run)}, trial {t + 1}: the ranks end with different {_clip(differ)} "
                                f"(largest difference {worst:.3g})")
    if not problems and not compared and all(run["completed"] for run in runs):
        report.set("ranks", SKIP, "no trial's final parameters were recorded")
    else:
        _verdict(report, "ranks", problems, runs, f"bitwise equal on all {WORLD} ranks at the end of the long run")
    # optimizers: complete once make_optimizers has returned
    none = sorted(set().union(*(r.get("none", set()) for r in results)))
    multi = sorted(set().union(*(r.get("multi", set()) for r in results)))
    problems = (([f"in no optimizer: {_clip(none)}"] if none else [])
                + ([f"in more than one optimizer: {_clip(multi)}"] if multi else []))
    seen = all(r.get("trials", 0) > 0 for r in results)
    if problems or seen:
        _verdict(report, "optimizers", problems, runs, "every parameter in exactly one optimizer", needs_complete=False)
    elif all(run["completed"] for run in runs):
        report.set("optimizers", FAIL, "main() never called make_optimizers")
    else:
        report.set("optimizers", SKIP, "the run failed before make_optimizers returned")
    # gradients
    no_grad = collections.Counter()
    for r in results:
        no_grad.update(r.get("no_grad", {}))
    missing = _clip(f"{n} ({c} steps)" for n, c in sorted(no_grad.items()))
    _verdict(report, "gradients", [f"no gradient at an optimizer step: {missing}"] if no_grad else [], runs,
             "every optimized parameter had a gradient at every optimizer step")
    # updates
    unchanged = sorted(set().union(*(r.get("unchanged", set()) for r in results)))
    zero = sorted(set().union(*(r.get("zero_grad", set()) for r in results)) - set(unchanged))
    note = (f"; not judged, their gradients were always exactly zero (cut off by a parameter that does not train?): "
            f"{_clip(zero)}" if zero else "")
    _verdict(report, "updates", [f"never changed: {_clip(unchanged)}" + note] if unchanged else [], runs,
             "every optimized parameter with a non-zero gradient changed" + note)
    # lr
    n_bad = sum(r.get("n_bad_lr", 0) for r in results)
    examples = [x for r in results for x in r.get("bad_lr", [])][:2]
    _verdict(report, "lr", [f"{n_bad} negative or non-finite lr values, e.g. " + "; ".join(examples)] if n_bad else [], runs,
             "finite and >= 0 in every group at every step")
    # one_pass
    n_bad = sum(r.get("n_bad_passes", 0) for r in results)
    examples = [x for r in results for x in r.get("bad_passes", [])][:2]
    steps = sum(r.get("steps", 0) for r in results)
    _verdict(report, "one_pass", [f"{n_bad} steps wrong (counted per rank), e.g. " + "; ".join(examples)] if n_bad else
             ([] if steps or not all(run["completed"] for run in runs) else ["no optimizer step was seen"]), runs,
             "one forward and one backward per microbatch per optimizer step over the step's batch ("
             + " and ".join(f"{run['microbatches']} per step on {run['world']} rank{'s' if run['world'] > 1 else ''}"
                            for run in runs) + f"), {steps} rank-steps checked")
    errors = [x for r in results for x in r.get("stream_errors", [])][:2]
    fetched = all(r.get("train_batches") and r.get("val_batches") for r in results)
    if not errors and all(run["completed"] for run in runs) and not fetched:
        errors = ["main() did not fetch its train batches and val set through distributed_data_generator"]
    return errors


def check_log_script(code, run):
    """(f) for one run: a problem string, None when fine, or SKIP."""
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


def check_log_format(run, nonfinite):
    """(g) for one run: a problem string, None when fine, or SKIP."""
    if not run["logs"] or len(run["logs"]) > 1:
        return SKIP if not run["completed"] else None  # (f) says why
    trials = []
    for line in run["logs"][0].splitlines():
        m = PUBLIC_VAL_RE.search(line)
        if m:
            step, total = int(m.group(1)), int(m.group(2))
            if step == 0 or not trials:
                trials.append([])
            trials[-1].append((step, total))
    if not run["completed"]:
        return SKIP
    label = _describe(run)
    if len(trials) != run["trials"]:
        return f"{label}: {len(trials)} trials found by splitting at step 0 (expected {run['trials']})"
    for i, points in enumerate(trials, 1):
        steps = [s for s, _ in points]
        if points[0][0] != 0:
            return f"{label}: trial {i} does not start at step 0"
        if any(total != run["train_steps"] for _, total in points):
            return f"{label}: trial {i} has val lines whose total is not train_steps = {run['train_steps']}"
        if any(b <= a for a, b in zip(steps, steps[1:])):
            return f"{label}: trial {i}: val steps not increasing"
        if not nonfinite and steps[-1] != run["train_steps"]:
            return f"{label}: trial {i} ends at step {steps[-1]}, not at train_steps = {run['train_steps']}"
    return None


# -----------------------------------------------------------------------------

def preflight(script, steps=None, progress=None):
    """Run every check on `script`; returns the report as a dict."""
    say = progress or (lambda message: None)
    t0 = time.perf_counter()
    report = Report()
    path = os.path.abspath(script)
    info = dict(script=script, baseline=str(BASELINE), train_steps=None, steps_source=None)

    def finish():
        for c in report.checks.values():
            if c["detail"] == "not run":
                c["detail"] = "not run: the script did not load" if report.checks["load"]["status"] == FAIL else "not run"
        info.update(ok=report.ok(), checks=list(report.checks.values()), wall_s=round(time.perf_counter() - t0, 1))
        return info

    try:
        code = Path(path).read_text()
    except OSError as e:
        report.set("load", FAIL, f"{script}: {e.strerror or e}", fix="give the path of a training script")
        info["bad_input"] = True
        return finish()
    except UnicodeDecodeError as e:
        report.set("load", FAIL, f"{script}: not UTF-8 text ({e})", fix="give the path of a training script")
        info["bad_input"] = True
        return finish()
    try:
        tree = ast.parse(code, filename=path)
    except SyntaxError as e:
        report.set("load", FAIL, f"{script}: syntax error at line {e.lineno}: {e.msg}\n    {(e.text or '').rstrip()}")
        return finish()
    problems = check_imports(tree)
    report.set("imports", FAIL if problems else PASS, "; ".join(problems) or "standard library, torch and triton only")
    problems = check_hardcoded(tree)
    report.set("hardcoded", FAIL if problems else PASS, "; ".join(problems) or
               "no command-line parsing; sys.argv: the trial count only; os.environ: " + ", ".join(ALLOWED_ENV) + " only")
    val_lines = script_val_lines(code)

    try:
        user = tiny.load_script(path, "preflight_user")
    except tiny.ScriptError as e:
        if e.__cause__ is not None:  # importing it raised: show the script's own frames
            report.set("load", FAIL, f"{script}: importing it failed:\n" + script_traceback(e.__cause__, path),
                       fix="fix the error above; a missing third-party module: copy its code into the script")
        else:
            report.set("load", FAIL, str(e).rstrip())
        if val_lines:
            report.set("log_format", FAIL, "lines of the script match the public val pattern: " + _clip(val_lines, 3))
        return finish()
    base = tiny.load_script(str(BASELINE), "preflight_baseline")
    train_steps = steps if steps is not None else getattr(user, "train_steps", None)
    if not isinstance(train_steps, int) or isinstance(train_steps, bool) or train_steps < 1:
        report.set("load", FAIL, f"train_steps = {train_steps!r}: expected a positive int")
        return finish()
    info.update(train_steps=train_steps, steps_source="--steps" if steps is not None else "the script's train_steps")
    report.set("load", PASS, "defines " + ", ".join(tiny.REQUIRED))

    report.set(*(("architecture",) + check_architecture(user, base)))
    report.set(*(("constants",) + check_constants(user, base)))
    with tempfile.TemporaryDirectory(prefix="preflight_") as tmp:
        train, val = tiny.tiny_data(os.path.join(tmp, "data"), max(train_steps, STREAM_STEPS))
        stream_ok, stream_detail = check_stream(user, base, train, val)
        short_steps = min(train_steps, SHORT_STEPS)
        say(f"running {SHORT_TRIALS} trials x {short_steps} steps on 1 rank ...")
        short = run_script(path, tmp, "short", 1, short_steps, SHORT_TRIALS, SHORT_MICROBATCHES, train, val)  # warms up too
        say(f"running {train_steps} steps on {WORLD} ranks ({info['steps_source']}) ...")
        long = run_script(path, tmp, "long", WORLD, train_steps, 1, LONG_MICROBATCHES, train, val, LONG_LAYERS,
                          timeout=TIMEOUT_BASE_S + TIMEOUT_PER_STEP_S * train_steps)
    runs = [long, short]
    info["runs"] = [dict(label=r["label"], world_size=r["world"], train_steps=r["train_steps"], trials=r["trials"],
                         seconds=round(r["seconds"], 1), completed=r["completed"]) for r in runs]
    judge_run(report, runs)
    stream_errors = judge_dynamic(report, runs, code)
    if not stream_ok or stream_errors:
        report.set("data", FAIL, "; ".join(([] if stream_ok else [stream_detail]) + stream_errors))
    elif not all(r["completed"] for r in runs):
        report.set("data", SKIP, stream_detail + "; the run did not complete (see run)")
    else:
        report.set("data", PASS, stream_detail + "; main() trained and validated on that stream")

    results = [check_log_script(code, run) for run in runs]
    problems = [p for p in results if p and p != SKIP]
    if problems:
        report.set("log_script", FAIL, "; ".join(problems))
    elif SKIP in results:
        report.set("log_script", SKIP, "the run failed before it wrote its log")
    else:
        report.set("log_script", PASS, "both runs' logs start with the script's exact text and a line of 100 '='")

    nonfinite = report.checks["finite"]["status"] == FAIL
    results = [check_log_format(run, nonfinite) for run in runs]
    problems = (["lines of the script match the public val pattern: " + _clip(val_lines, 3)] if val_lines else []) + \
        [p for p in results if p and p != SKIP]
    if problems:
        report.set("log_format", FAIL, "; ".join(problems))
    elif SKIP in results:
        report.set("log_format", SKIP, "the run did not complete (see run); the script's text matches no val line")
    else:
        report.set("log_format", PASS, f"1 trial ending at step {train_steps}/{train_steps} and {SHORT_TRIALS} trials "
                   "split at step 0; no line of the script matches the pattern")
    if any(r.get("instrument_error") for run in runs for r in run["results"]):
        info["instrument_error"] = next(r["instrument_error"] for run in runs for r in run["results"]
                                        if r.get("instrument_error"))
    return finish()


def format_report(info):
    lines = [f"preflight {info['script']}"]
    if info.get("train_steps"):
        lines[0] += (f": {info['train_steps']} steps ({info['steps_source']}) on {WORLD} gloo ranks ({LONG_LAYERS} "
                     f"layer, {LONG_MICROBATCHES} microbatch per rank) and {SHORT_TRIALS} trials x "
                     f"{min(info['train_steps'], SHORT_STEPS)} steps on 1 rank ({tiny.TINY['num_layers']} layers, "
                     f"{SHORT_MICROBATCHES} microbatches); tiny model of width {tiny.TINY['model_dim']}, synthetic data, CPU")
    not_loaded = "not run: the script did not load"
    for c in info["checks"]:
        rule = f"rule {c['rule']}" if c["rule"] != "-" else ""
        lines.append(f"  {c['status']}  {c['id']:<12} {c['check']}" + (f"  [{rule}]" if rule else ""))
        if c["detail"] == not_loaded:
            continue
        if c["status"] != PASS or c["id"] == "run" or "not judged" in c["detail"]:
            detail = c["detail"].replace("\n", "\n        ")
            lines.append(f"        {detail}")
        if c["status"] == FAIL:
            lines.append(f"        fix: {c['fix']}")
    fails = [c["id"] for c in info["checks"] if c["status"] == FAIL]
    skips = [c["id"] for c in info["checks"] if c["status"] == SKIP]
    verdict = (f"FAIL: {len(fails)} of {len(info['checks'])} checks ({', '.join(fails)})" if fails
               else f"PASS: all {len(info['checks'])} checks" + (f" ({len(skips)} skipped)" if skips else ""))
    if any(c["detail"] == not_loaded for c in info["checks"]):
        lines.append(f"SKIP: {not_loaded}.")
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
    args = parser.parse_args(argv)
    if args.steps is not None and args.steps < 1:
        parser.error("--steps must be at least 1")
    progress = None if args.json else (lambda message: print(f"preflight: {message}", flush=True))
    info = preflight(args.script, args.steps, progress)
    print(json.dumps(info, indent=1) if args.json else format_report(info))
    return 0 if info["ok"] else 2 if info.get("bad_input") else 1


if __name__ == "__main__":
    from tools import preflight as _preflight  # the module proper, not __main__, so its objects have one home
    sys.exit(_preflight.main())
