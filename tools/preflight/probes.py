"""The probes: what tools.preflight records inside each process of the checked script, one thing each, into the
picklable dict `result` that comes back to the preflight (tools.preflight.hub sends them the events):

  GradientProbe  which optimizer holds each parameter, its gradient at every optimizer step, and
                 whether it ever changes                              (optimizers, gradients, updates)
  PassProbe      training forwards, backwards and the sequences they cover per step  (one_pass)
  StreamProbe    every batch main() fetches, against the baseline's stream       (data)
  FiniteProbe    the first parameter, optimizer state or extension state tensor that goes non-finite
  WeightProbe    parameters that change outside before_forward, the optimizers' steps and after_step
  StateProbe     the whole trial state (a "fingerprint") at trial ends, checkpoints and restores;
                 makes checkpoints due, copies them, and stops the run with SIGTERM  (ranks, resume)

Nothing here judges: the verdicts read `result`.

Events (all optional): trial_start(model, optimizers), restored(step, state), step_start(step),
step_forwarded(step), passes_done(step), optimizer_step(opt, index, step), step_end(step), training_forward(args,
loss), fetched(kind, i, batch, ref), val_start/val_end(step), readouts_start/readouts_end(step), saved(trial, step,
run, optimizers, state), trial_end(normal).
"""
import collections
import glob
import math
import os
import shutil
import signal

import torch

from tools.preflight.fingerprint import _bytes, _leaves, fingerprint, optimizer_label, same_batch


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
        elif expected is None or not (isinstance(batch, (tuple, list)) and same_batch(batch, expected)):
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
        state = self.hub.state if isinstance(self.hub.state, dict) else {}
        return (tuple(len(opt.state) for opt in self.hub.optimizers), id(self.hub.state),
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
        changed = [(n, p, b) for (n, p), b in zip(named, old) if not torch.equal(_bytes(p), _bytes(b))]
        if not changed:
            return
        # told apart: a copy kept in bfloat16 and copied back (each value is the old one rounded), or anything else
        rounded = [n for n, p, b in changed
                   if p.dtype != torch.bfloat16 and torch.equal(_bytes(p), _bytes(b.to(torch.bfloat16).to(p.dtype)))]
        if rounded:
            fix = ("keep the copies in the parameters' own dtype (p.clone(), not p.bfloat16() or .to(the activations' "
                   "dtype), which for a bfloat16 parameter is the parameter itself): the weights must come back bit "
                   "for bit")
        self.note("weight_changes", dict(trial=self.hub.trial, where=where, rounded=rounded, fix=fix,
                                         names=[n for n, _, _ in changed if n not in rounded]))

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
            trial=self.hub.trial, names=changed, fix=self.FIX + "; set_hparams sets hyperparameters only", rounded=[],
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
                     "copies made with p.clone() (p.detach() and p.data share the weights' memory, so a copy made with "
                     "them changes with the weights) and copy them back after evaluate()")


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


