"""What tools.preflight records inside each process of the checked script (tools.tiny.run).

`instrument(cfg, module, result)` wraps the script's own functions once (a `Hub`) and tells a few
probes, each of which records one thing into the picklable dict `result`:

  GradientProbe  which optimizer holds each parameter, its gradient at every optimizer step, and
                 whether it ever changes                              (optimizers, gradients, updates)
  HparamProbe    every group's numeric hyperparameters at every optimizer step  (lr, hparams)
  PassProbe      training forwards, backwards and the sequences they cover per step  (one_pass)
  StreamProbe    every batch main() fetches, against the baseline's stream       (data)
  FiniteProbe    the first parameter, optimizer state or extension state tensor that goes non-finite
  WeightProbe    parameters that change outside before_forward, the optimizers' steps and after_step
  StateProbe     the whole trial state (a "fingerprint") at trial ends, checkpoints and restores;
                 makes checkpoints due, copies them, and stops the run with SIGTERM  (ranks, resume)

Nothing here judges: tools.preflight reads `result` and gives the verdicts.
"""
import collections
import glob
import inspect
import math
import os
import shutil
import signal
import sys
import traceback

import torch

from tools import tiny

BASELINE = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "train_gpt_simple.py")
# module globals the harness itself sets (tools.tiny overrides) or the probes toggle: not the script's state
HARNESS_GLOBALS = set(tiny.TINY) | {"train_files", "val_files", "train_steps", "num_layers", "log_dir", "checkpoint_dir",
                                    "checkpoint_every", "micro_batch_seqs"}
OPT_FIELDS = {"defaults", "state", "param_groups", "step"}  # step: the probe's wrapper of opt.step
MOMENTUM_NAMES = ("mu", "momentum", "rho")


def is_momentum(key):
    """A hyperparameter that must stay below 1: momentum, mu, betas, beta1, ..."""
    key = key.split("[")[0]
    return key in MOMENTUM_NAMES or key.startswith("beta") or key.endswith(("_mu", "_momentum", "_beta", "_betas"))


def numeric_hparams(group):
    """(key, float) for every numeric hyperparameter of a param group; tuples give key[i]."""
    for key, value in group.items():
        if key == "params":
            continue
        if torch.is_tensor(value) and value.numel() == 1:
            value = value.item()
        if isinstance(value, bool) or value is None:
            continue
        if isinstance(value, (int, float)):
            yield key, float(value)
        elif isinstance(value, (tuple, list)) and value and all(
                isinstance(x, (int, float)) and not isinstance(x, bool) for x in value):
            for i, x in enumerate(value):
                yield f"{key}[{i}]", float(x)


def optimizer_label(index, opt):
    return f"optimizer {index} ({type(opt).__name__})"


# -----------------------------------------------------------------------------
# Fingerprints: every tensor and number of a trial's state, by a readable path


def _leaves(obj, path, out, names, module_name, depth=0, copy=True):
    if torch.is_tensor(obj):
        out[path] = obj.detach().to("cpu", copy=True) if copy else obj.detach()
    elif obj is None or (isinstance(obj, (int, float)) and not isinstance(obj, bool)):
        out[path] = obj
    elif depth >= 6:
        return
    elif isinstance(obj, dict):
        for i, (key, value) in enumerate(list(obj.items())):
            key = names.get(id(key), f"<tensor {i}>") if torch.is_tensor(key) else repr(key)
            _leaves(value, f"{path}[{key}]", out, names, module_name, depth + 1, copy)
    elif isinstance(obj, (list, tuple)):
        for i, value in enumerate(obj):
            _leaves(value, f"{path}[{i}]", out, names, module_name, depth + 1, copy)
    elif isinstance(obj, torch.nn.Module):
        for key, value in obj.state_dict().items():
            _leaves(value, f"{path}.{key}", out, names, module_name, depth + 1, copy)
    elif type(obj).__module__ == module_name and hasattr(obj, "__dict__"):  # an object of a class of the script
        for key, value in vars(obj).items():
            _leaves(value, f"{path}.{key}", out, names, module_name, depth + 1, copy)


def fingerprint(module, model, optimizers, state):
    """{path: tensor or number}: parameters, every optimizer's per-parameter state, param groups and other
    attributes, the extension points' `state`, the script's module globals that hold tensors or numbers, RNG."""
    names = {id(p): n for n, p in model.named_parameters()} if model is not None else {}
    out, mod = {}, module.__name__
    for name, p in (model.named_parameters() if model is not None else []):
        out[f"parameter {name}"] = p.detach().to("cpu", copy=True)
    for i, opt in enumerate(optimizers or []):
        label = optimizer_label(i, opt)
        for p, st in list(opt.state.items()):
            for key, value in (st.items() if isinstance(st, dict) else [("", st)]):
                _leaves(value, f"{label} state {key} of {names.get(id(p), '?')}", out, names, mod)
        for g, group in enumerate(opt.param_groups):
            for key, value in numeric_hparams(group):
                out[f"{label} group {g} {key}"] = value
        for key, value in vars(opt).items():
            if key not in OPT_FIELDS and not key.startswith("_optimizer_") and not callable(value):
                _leaves(value, f"{label} attribute {key}", out, names, mod)
    _leaves(state if state is not None else {}, "state", out, names, mod)
    for key, value in vars(module).items():
        if key.startswith("__") or key in HARNESS_GLOBALS or inspect.ismodule(value) or callable(value):
            continue
        _leaves(value, f"module global {key}", out, names, mod)
    out["RNG state"] = torch.get_rng_state()
    return out


def _bytes(t):
    """A tensor's raw bytes (bitwise comparison: nan equals the same nan)."""
    t = t.detach().reshape(-1)
    return t.view(torch.uint8) if t.is_floating_point() and t.numel() else t


# -----------------------------------------------------------------------------
# The probes: one thing each. Events (all optional): trial_start(model, optimizers), restored(step, state),
# step_start(step), step_forwarded(step), passes_done(step), optimizer_step(opt, index, step), step_end(step),
# training_forward(args, loss), fetched(kind, i, batch, ref), val_start/val_end(step), readouts_start/
# readouts_end(step), saved(trial, step, run, optimizers, state), trial_end(normal).


class Probe:
    def __init__(self, hub):
        self.hub, self.r = hub, hub.r

    def note(self, key, item, limit=5):
        self.r["n_" + key] = self.r.get("n_" + key, 0) + 1
        if len(self.r.setdefault(key, [])) < limit:
            self.r[key].append(item)


class GradientProbe(Probe):
    """optimizers: every parameter in exactly one optimizer; gradients: each has a .grad at every optimizer
    step; updates: each with a non-zero gradient changes by the trial's end (fresh trials only)."""

    def __init__(self, hub):
        super().__init__(hub)
        self.r.update(none=set(), multi=set(), no_grad=collections.Counter(), unchanged=set(), zero_grad=set(),
                      opt_steps=[])
        self.optimized, self.had_grad, self.changed, self.snapshot = set(), set(), set(), None

    def trial_start(self, model, optimizers):
        count = collections.Counter(id(p) for opt in optimizers for g in opt.param_groups for p in g["params"])
        self.r["none"] |= {n for n, p in model.named_parameters() if count[id(p)] == 0}
        self.r["multi"] |= {n for n, p in model.named_parameters() if count[id(p)] > 1}
        self.optimized = {self.hub.names[i] for i in count if i in self.hub.names}
        self.had_grad, self.changed, self.snapshot = set(), set(), None
        self.members = [[(self.hub.names.get(id(p), "(a tensor not in the model)"), p)
                         for g in opt.param_groups for p in g["params"]] for opt in optimizers]
        self.r["opt_steps"].append([0] * len(optimizers))

    def optimizer_step(self, opt, index, step):
        self.r["opt_steps"][-1][index] += 1
        for name, p in self.members[index]:
            if p.grad is None or name not in self.had_grad:
                if p.grad is None:
                    self.r["no_grad"][name] += 1
                elif bool(p.grad.detach().ne(0).any()):
                    self.had_grad.add(name)  # a non-zero gradient: from now on it must change

    def passes_done(self, step):
        if self.snapshot is None:
            self.snapshot = {n: p.detach().clone() for n, p in self.hub.params}
        else:
            self.changed |= self.changes()

    def changes(self):
        return {n for n, p in self.hub.params
                if n not in self.changed and n in self.snapshot and not torch.equal(p.detach(), self.snapshot[n])}

    def trial_end(self, normal):
        if self.snapshot is None:
            return
        self.changed |= self.changes()
        if normal and not self.hub.resumed:  # a resumed trial's last steps may rightly not move a parameter
            self.r["unchanged"] |= (self.optimized & self.had_grad) - self.changed
            self.r["zero_grad"] |= (self.optimized - self.had_grad - set(self.r["no_grad"])) - self.changed
        self.snapshot = None


class HparamProbe(Probe):
    """lr and hparams: every numeric hyperparameter of every group at every optimizer step (rank 0; the
    schedule is the same on every rank); the values at cfg["table_steps"] for the report's table."""

    def __init__(self, hub):
        super().__init__(hub)
        self.r.update(hparams_table={}, bad_hparams={})  # (optimizer, its class, key, why) -> the first one and a count
        self.table_steps = set(hub.cfg.get("table_steps", ()))
        self.keys = {}  # id(group) -> (the group's size, [its numeric keys]) (set_hparams may add keys)

    def group_keys(self, group):
        known = self.keys.get(id(group))
        if known is None or known[0] != len(group):
            known = self.keys[id(group)] = (len(group), [key for key, _ in numeric_hparams(group)])
        return known[1]

    def optimizer_step(self, opt, index, step):
        if self.hub.rank != 0:
            return
        table = step in self.table_steps and self.hub.trial == 1
        for g, group in enumerate(opt.param_groups):
            values = dict(numeric_hparams(group)) if table else None
            for key in self.group_keys(group):
                if values is None:
                    raw, _, sub = key.partition("[")
                    value = group.get(raw)
                    value = value[int(sub[:-1])] if sub and isinstance(value, (tuple, list)) else value
                    value = value.item() if torch.is_tensor(value) and value.numel() == 1 else value
                    if not isinstance(value, (int, float)) or isinstance(value, bool):
                        continue
                else:
                    value = values.get(key)
                    if value is None:
                        continue
                    self.r["hparams_table"].setdefault((index, type(opt).__name__, key), {}).setdefault(step, {})[g] = value
                problem = self.problem(key, float(value))
                if problem:
                    seen = self.r["bad_hparams"].setdefault((index, type(opt).__name__, key, problem), dict(
                        trial=self.hub.trial, step=step, value=value, groups=set(), count=0))
                    seen["count"] += 1
                    if (seen["trial"], seen["step"]) == (self.hub.trial, step):
                        seen["groups"].add(g)

    @staticmethod
    def problem(key, value):
        """Why a hyperparameter's value is wrong, or None."""
        if not math.isfinite(value):
            return "not finite"
        if value < 0:
            return "negative"
        if is_momentum(key) and value >= 1:
            return "a momentum or beta at or above 1"
        return None


def _rows(inputs, targets):
    return [(tuple(i), tuple(t)) for i, t in zip(inputs.reshape(inputs.size(0), -1).tolist(),
                                                 targets.reshape(targets.size(0), -1).tolist())]


class PassProbe(Probe):
    """one_pass: per optimizer step exactly cfg["microbatches"] training forwards and as many backwards
    (a hook on each returned loss), which together cover the step's batch once."""

    def __init__(self, hub):
        super().__init__(hub)
        self.r.update(steps=0, n_bad_passes=0, bad_passes=[])
        self.fwd = self.bwd = 0
        self.rows, self.batches, self.first, self.val_rows = [], [], True, set()

    def trial_start(self, model, optimizers):
        self.fwd = self.bwd = 0
        self.rows, self.first = [], True

    def fetched(self, kind, i, batch, ref):
        if kind == "train" and i == 0:
            self.batches = []  # a new stream (a new trial): batches of an earlier one were abandoned
        if kind == "train" and isinstance(batch, (tuple, list)) and len(batch) == 2:
            self.batches.append(_rows(batch[0], batch[1]))
        if kind == "val" and i == 0 and isinstance(batch, (tuple, list)) and len(batch) == 2:
            self.val_rows = set(_rows(batch[0], batch[1]))  # to tell a training forward on val sequences

    def step_start(self, step):
        if self.first:  # a resumed trial fast-forwards the stream: only the last batch is this step's
            self.batches, self.first = self.batches[-1:], False

    def training_forward(self, args, loss):
        self.fwd += 1
        if len(args) >= 3 and all(torch.is_tensor(v) for v in args[1:3]):
            self.rows += _rows(args[1], args[2])
        if torch.is_tensor(loss) and loss.requires_grad:
            loss.register_hook(self.on_backward)

    def on_backward(self, grad):
        self.bwd += 1

    def passes_done(self, step):
        expected = self.hub.cfg["microbatches"]
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
            self.note("bad_passes", f"trial {self.hub.trial} step {step} on rank {self.hub.rank}: " + "; ".join(problems))
        on_val = sum(row in self.val_rows for row in self.rows)
        if on_val:  # judged by `data`: the rules fix what training reads
            self.r["n_stream_errors"] += 1
            self.note("stream_errors", f"training read the val shard: trial {self.hub.trial} step {step} on rank "
                      f"{self.hub.rank} trained on {on_val} of the val set's sequences")
        self.fwd = self.bwd = 0
        self.rows = []


def _same_batch(a, b):
    return (len(a) == len(b) == 2 and all(x.shape == y.shape and torch.equal(x.cpu().long(), y.cpu().long())
                                          for x, y in zip(a, b)))


class StreamProbe(Probe):
    """data: every batch main() fetches equals the baseline's stream at the same position."""

    def __init__(self, hub):
        super().__init__(hub)
        self.r.update(stream_errors=[], n_stream_errors=0, train_batches=0, val_batches=0)

    def fetched(self, kind, i, batch, ref):
        try:
            expected = next(ref, None)
        except ValueError:  # the baseline's stream ran out: main() read past the end of these files
            expected = None
        when = f"trial {self.hub.trial}" if self.hub.trial else "before the first trial"
        if kind == "val" and i > 0:  # the val set is one batch: more is training (or something) reading the val shard
            self.r["n_stream_errors"] += 1
            self.note("stream_errors", f"training read the val shard: {when}, rank {self.hub.rank} of {self.hub.world}: "
                      f"main() took batch {i} from the val files, whose only batch is the val set")
        elif expected is None or not (isinstance(batch, (tuple, list)) and _same_batch(batch, expected)):
            self.r["n_stream_errors"] += 1
            self.note("stream_errors", f"{when}, rank {self.hub.rank} of {self.hub.world}: the {kind} "
                      f"batch {i} that main() fetched differs from the baseline's stream"
                      + (" (the val set)" if kind == "val" else ""))
        self.r["train_batches" if kind == "train" else "val_batches"] += 1


class FiniteProbe(Probe):
    """finite: the first step after whose optimizers' step (and after_step) a parameter, an optimizer state tensor
    or a tensor in `state` is nan or inf, and which ones. (A non-finite gradient shows there as well: the optimizers
    write it into their state and the parameters in that step.) One foreach norm per step; the list of tensors is
    kept while the optimizers' state and `state` keep their shape."""

    def __init__(self, hub):
        super().__init__(hub)
        self.r.update(first_nonfinite=None, nonfinite=set())
        self.signature, self.tensors, self.names = None, [], []

    def shape(self):
        state = self.hub.state or {}
        return (tuple(len(opt.state) for opt in self.hub.optimizers), id(state),
                tuple((k, id(v), len(v) if isinstance(v, (list, tuple, dict)) else 0) for k, v in state.items()))

    def collect(self):
        """The floating tensors to watch, and their names."""
        tensors, names = [], []
        for i, opt in enumerate(self.hub.optimizers):
            for p, st in list(opt.state.items()):
                for key, value in (st.items() if isinstance(st, dict) else []):
                    if torch.is_tensor(value) and value.is_floating_point() and value.numel():
                        tensors.append(value.detach())
                        names.append(f"{optimizer_label(i, opt)} state {key} of {self.hub.names.get(id(p), '?')}")
        for n, p in self.hub.params:
            if p.is_floating_point() and p.numel():
                tensors.append(p.detach())
                names.append(f"parameter {n}")
        leaves = {}
        _leaves(self.hub.state or {}, "state", leaves, self.hub.names, self.hub.m.__name__, copy=False)
        for k, v in leaves.items():
            if torch.is_tensor(v) and v.is_floating_point() and v.numel():
                tensors.append(v)
                names.append(k)
        return tensors, names

    def step_end(self, step):
        if self.r["first_nonfinite"] is not None:
            return
        signature = self.shape()
        if signature != self.signature:
            self.signature = signature
            self.tensors, self.names = self.collect()
        if not self.tensors or bool(torch.stack(torch._foreach_norm(self.tensors)).isfinite().all()):
            return
        self.tensors, self.names = self.collect()  # exactly the current ones, to name them
        bad = [name for name, t in zip(self.names, self.tensors) if not bool(torch.isfinite(t).all())]
        if bad:  # (a norm can overflow for huge finite values: then nothing is named and nothing recorded)
            self.r["first_nonfinite"] = dict(trial=self.hub.trial, when=f"step {step}, after the optimizers' step "
                                             "and after_step", names=bad)

    def trial_start(self, model, optimizers):
        self.signature = None

    def trial_end(self, normal):
        if self.hub.model is not None:
            self.r["nonfinite"] |= {n for n, p in self.hub.params
                                    if not torch.isfinite(p.detach().float()).all()}


class WeightProbe(Probe):
    """weights: parameters change only in before_forward, the optimizers' step and after_step. Every val pass and
    every readouts call is bracketed by an exact snapshot (one foreach copy) and a bitwise comparison; the forward
    and backward passes with set_hparams and the gradient sums, every step, by the parameters' norms (one foreach
    norm each side, compared bit for bit: a write that keeps every norm exactly is not seen). A change is named."""

    FIX = "change weights only in before_forward, an optimizer's step or after_step"

    def __init__(self, hub):
        super().__init__(hub)
        self.r.update(n_weight_changes=0, weight_changes=[])
        self.buffers, self.norms = {}, None

    def floats(self):
        return [(n, p.detach()) for n, p in self.hub.params if p.is_floating_point()]

    def take(self, kind):
        params = [p for _, p in self.floats()]
        if kind not in self.buffers or len(self.buffers[kind]) != len(params):
            self.buffers[kind] = [torch.empty_like(p) for p in params]
        torch._foreach_copy_(self.buffers[kind], params)

    def compare(self, kind, where, fix):
        """Record the parameters whose bytes differ from the snapshot `kind`."""
        old = self.buffers.pop(kind, None)
        named = self.floats()
        if old is None or len(old) != len(named):
            return
        changed = [n for (n, p), b in zip(named, old) if not torch.equal(_bytes(p), _bytes(b))]
        if changed:
            self.note("weight_changes", dict(trial=self.hub.trial, where=where, names=changed, fix=fix))

    def norms_now(self):
        params = [p for _, p in self.floats()]
        return _bytes(torch.stack(torch._foreach_norm(params)).double()) if params else None

    def step_forwarded(self, step):
        self.norms = self.norms_now()

    def passes_done(self, step):
        before, self.norms = self.norms, None
        now = self.norms_now() if before is not None else None
        if now is None or torch.equal(now, before):
            return
        norms = torch.stack(torch._foreach_norm([p for _, p in self.floats()])).double()
        old = before.view(torch.float64)
        changed = [n for (n, _), a, b in zip(self.floats(), norms.tolist(), old.tolist())
                   if not (a == b or (math.isnan(a) and math.isnan(b)))]
        self.note("weight_changes", dict(
            trial=self.hub.trial, names=changed, fix=self.FIX + "; set_hparams sets hyperparameters only",
            where=f"step {step}: between before_forward and the optimizers' step (the forward and backward passes, "
                  "set_hparams, the gradient sums)"))

    def val_start(self, step):
        self.take("val")

    def val_end(self, step):
        self.compare("val", f"step {step}: the val pass", "the val pass must not write into the model")

    def readouts_start(self, step):
        self.take("readout")

    def readouts_end(self, step):
        self.compare("readout", f"step {step}: readouts", "a readout must put every weight back bit for bit: keep "
                     "copies made with p.clone() (p.detach() and p.data share the weights' memory) and copy them back "
                     "after evaluate()")


class StateProbe(Probe):
    """ranks and resume: fingerprints of the whole state at each trial's end, at every checkpoint (saved)
    and right after a restore; makes checkpoints due (cfg["due"]: {(trial, step)}: the state after step - 1),
    copies them (cfg["copies"]: {(trial, step): path}) and sends SIGTERM so that the run stops with a
    checkpoint at cfg["stop"] = (trial, step)."""

    def __init__(self, hub):
        super().__init__(hub)
        self.r.update(finals=[], saves={}, restores={}, stopped_at=None, copied={})

    def fingerprint(self, optimizers=None, state=None):
        return fingerprint(self.hub.m, self.hub.model, optimizers if optimizers is not None else self.hub.optimizers,
                           state if state is not None else self.hub.state)

    def step_start(self, step):
        key = (self.hub.trial, step + 2)  # this step's flags are read during the next step, which is then saved
        if "checkpoint_every" in vars(self.hub.m):
            self.hub.m.checkpoint_every = 0 if key in self.hub.cfg.get("due", ()) else None
        if key == self.hub.cfg.get("stop") and self.hub.rank == self.hub.cfg.get("signal_rank", 0):
            os.kill(os.getpid(), signal.SIGTERM)

    def restored(self, step, state):
        self.r["restores"][(self.hub.trial, step)] = self.fingerprint(state=state)

    def saved(self, trial, step, run, optimizers, state):
        self.r["saves"][(trial, step)] = self.fingerprint(optimizers, state)
        dest = self.hub.cfg.get("copies", {}).get((trial, step))
        if dest and self.hub.rank == 0:
            path = getattr(run, "ckpt_path", None)
            if not (path and os.path.isfile(path)):
                files = glob.glob(os.path.join(self.hub.m.checkpoint_dir, "*.pt"))
                path = files[0] if len(files) == 1 else None
            if path:
                shutil.copyfile(path, dest)
                self.r["copied"][(trial, step)] = dest

    def trial_end(self, normal):
        self.r["finals"].append(dict(trial=self.hub.trial, normal=normal, resumed=self.hub.resumed,
                                     fingerprint=self.fingerprint()))


PROBES = (GradientProbe, HparamProbe, PassProbe, StreamProbe, FiniteProbe, WeightProbe, StateProbe)


# -----------------------------------------------------------------------------
# The hub: wraps the script's functions and sends the probes the events


def _arg(args, kwargs, index, name):
    return kwargs[name] if name in kwargs else args[index] if len(args) > index else None


def script_traceback(exc, script):
    """The traceback of `exc` cut to the script's own frames (and the frame that raised)."""
    frames = traceback.extract_tb(exc.__traceback__)
    keep = [f for f in frames if os.path.abspath(f.filename) == script]
    if frames and (not keep or keep[-1] is not frames[-1]):
        keep.append(frames[-1])
    return "".join(["Traceback (the script's frames):\n"] + traceback.format_list(keep)
                   + traceback.format_exception_only(type(exc), exc)).rstrip()


class Hub:
    """Wraps the script's init_params, make_optimizers, every optimizer's step, GPT.forward,
    distributed_data_generator, before_forward, after_step, evaluate, readouts, restore, save_checkpoint
    and main, and tells every probe what happened, in order."""

    def __init__(self, module, result, cfg):
        self.m, self.r, self.cfg = module, result, cfg
        self.script = os.path.abspath(module.__file__)
        self.rank, self.world = int(os.environ.get("RANK", 0)), int(os.environ.get("WORLD_SIZE", 1))
        self.base = tiny.load_script(BASELINE, "preflight_baseline_stream")
        result.update(completed=False, traceback=None, instrument_error=None, trials=0, val_steps=None)
        self.model, self.optimizers, self.state, self.names = None, [], None, {}
        self.trial, self.step, self.resumed, self.open, self.in_readouts = 0, 0, False, False, False
        self.probes = [probe(self) for probe in PROBES]
        m = module
        m.init_params = self.wrap_init_params(m.init_params)
        m.make_optimizers = self.wrap_make_optimizers(m.make_optimizers)
        m.GPT.forward = self.wrap_forward(m.GPT.forward)
        m.distributed_data_generator = self.wrap_generator(m.distributed_data_generator)
        for name in ("before_forward", "after_step", "evaluate", "readouts", "restore", "save_checkpoint"):
            if callable(getattr(m, name, None)):
                setattr(m, name, getattr(self, "wrap_" + name)(getattr(m, name)))
        m.main = self.wrap_main(m.main)

    def safely(self, fn, *args):
        """Run a piece of the instrumentation; its own failure is reported as such, never as the script's."""
        try:
            return fn(*args)
        except Exception:
            if self.r["instrument_error"] is None:
                self.r["instrument_error"] = traceback.format_exc()

    def emit(self, event, *args):
        for probe in self.probes:
            handler = getattr(probe, event, None)
            if handler is not None:
                self.safely(handler, *args)

    def end_trial(self, normal=True):
        if self.open:
            self.emit("trial_end", normal)
            self.open = False

    def wrap_init_params(self, init_params):
        def wrapped(*args, **kwargs):
            self.end_trial()  # before the next trial re-initializes the same model
            return init_params(*args, **kwargs)
        return wrapped

    def wrap_make_optimizers(self, make_optimizers):
        def wrapped(model, *args, **kwargs):
            self.end_trial()
            optimizers = make_optimizers(model, *args, **kwargs)
            self.safely(self.start_trial, model, optimizers)
            return optimizers
        return wrapped

    def start_trial(self, model, optimizers):
        opts = [optimizers] if isinstance(optimizers, torch.optim.Optimizer) else list(optimizers)
        self.model, self.optimizers, self.state = model, opts, None
        self.params = list(model.named_parameters())  # the same tensors all trial long (a restore copies into them)
        self.names = {id(p): n for n, p in self.params}
        self.trial += 1
        self.r["trials"] += 1
        self.step, self.resumed, self.open, self.stepped = 0, False, True, False
        for i, opt in enumerate(opts):
            opt.step = self.wrap_step(opt, opt.step, i)
        self.emit("trial_start", model, opts)

    def wrap_step(self, opt, step, index):
        def wrapped(*args, **kwargs):
            if index == 0:
                if self.stepped:  # no before_forward since the last step (a loop without it): count
                    self.step += 1
                self.stepped = True
                self.emit("passes_done", self.step)
            self.emit("optimizer_step", opt, index, self.step)
            return step(*args, **kwargs)
        return wrapped

    def wrap_before_forward(self, before_forward):
        def wrapped(*args, **kwargs):
            step, self.state = _arg(args, kwargs, 0, "step"), _arg(args, kwargs, 3, "state")
            self.step, self.stepped = step if isinstance(step, int) else self.step, False
            self.emit("step_start", self.step)
            value = before_forward(*args, **kwargs)
            self.emit("step_forwarded", self.step)
            return value
        return wrapped

    def wrap_after_step(self, after_step):
        def wrapped(*args, **kwargs):
            self.state = _arg(args, kwargs, 3, "state")
            value = after_step(*args, **kwargs)
            self.emit("step_end", self.step)
            return value
        return wrapped

    def wrap_evaluate(self, evaluate):
        def wrapped(*args, **kwargs):
            if self.in_readouts or not self.open:
                return evaluate(*args, **kwargs)
            self.emit("val_start", self.step)
            value = evaluate(*args, **kwargs)
            self.emit("val_end", self.step)
            return value
        return wrapped

    def wrap_readouts(self, readouts):
        def wrapped(*args, **kwargs):
            step, state = _arg(args, kwargs, 0, "step"), _arg(args, kwargs, 4, "state")
            if state is not None:
                self.state = state
            self.emit("readouts_start", step)
            self.in_readouts = True
            try:
                return readouts(*args, **kwargs)
            finally:
                self.in_readouts = False
                self.emit("readouts_end", step)
        return wrapped

    def wrap_restore(self, restore):
        def wrapped(*args, **kwargs):
            state = restore(*args, **kwargs)
            ckpt = _arg(args, kwargs, 1, "ckpt")
            step = ckpt.get("step") if isinstance(ckpt, dict) else None
            if isinstance(ckpt, dict) and isinstance(ckpt.get("trial"), int):
                self.trial = ckpt["trial"] + 1  # the trial this checkpoint continues (1-based)
            self.state, self.resumed = state, True
            self.emit("restored", step, state)
            return state
        return wrapped

    def wrap_save_checkpoint(self, save_checkpoint):
        def wrapped(*args, **kwargs):
            value = save_checkpoint(*args, **kwargs)
            trial = kwargs.get("trial")
            self.emit("saved", trial + 1 if isinstance(trial, int) else self.trial, kwargs.get("step"),
                      _arg(args, {}, 0, "run"), _arg(args, kwargs, 1, "optimizers"), kwargs.get("state", self.state))
            return value
        return wrapped

    def wrap_forward(self, forward):
        def wrapped(model, *args, **kwargs):
            loss = forward(model, *args, **kwargs)
            if torch.is_grad_enabled():
                values = (model,) + args + tuple(kwargs.get(k) for k in ("inputs", "targets") if k in kwargs)
                self.emit("training_forward", values, loss)
            return loss
        return wrapped

    def wrap_generator(self, generator):
        signature = inspect.signature(generator)

        def wrapped(*args, **kwargs):
            try:
                pattern = next(iter(signature.bind(*args, **kwargs).arguments.values()))
            except (TypeError, StopIteration):
                pattern = args[0] if args else None
            m = self.m
            kind = "train" if pattern == m.train_files else "val" if pattern == m.val_files else None
            if kind is None:
                self.r.setdefault("stream_errors", []).append(
                    f"distributed_data_generator called with files {pattern!r}, neither train_files nor val_files")
                yield from generator(*args, **kwargs)
                return
            ref = self.base.distributed_data_generator(pattern, m.batch_size if kind == "train" else m.val_tokens,
                                                       self.rank, self.world, m.seq_len, "cpu")
            for i, batch in enumerate(generator(*args, **kwargs)):
                self.emit("fetched", kind, i, batch, ref)
                yield batch
        return wrapped

    def wrap_main(self, main):
        def wrapped(*args, **kwargs):
            self.safely(self.record_val_steps)
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
                    if self.cfg.get("stop") and e.code == 128 + signal.SIGTERM:  # the stop we asked for
                        self.r["completed"], self.r["stopped_at"] = True, self.cfg["stop"]
                        return None
                    self.r["traceback"] = script_traceback(e, self.script)
                    raise
                except BaseException as e:
                    self.r["traceback"] = script_traceback(e, self.script)
                    raise
                finally:
                    self.end_trial(self.r["completed"] and not self.r["stopped_at"])
                    out.flush()
                    sys.stdout, sys.stderr = saved_streams
                    os.dup2(saved[0], 1)
                    os.dup2(saved[1], 2)
                    os.close(saved[0])
                    os.close(saved[1])
        return wrapped

    def record_val_steps(self):
        """The steps the script's own is_val_step validates (with this run's train_steps)."""
        if callable(getattr(self.m, "is_val_step", None)):
            self.r["val_steps"] = [s for s in range(self.m.train_steps + 1) if self.m.is_val_step(s)]


def instrument(cfg, module, result):
    if not cfg.get("resume"):
        os.environ.pop("RESUME", None)  # never resume the user's real run
    Hub(module, result, cfg)
