"""The hub: inside each process of the checked script, it wraps the script's own functions once, sends the probes
(tools.preflight.probes) the events in order, and keeps a one-line file saying where the script is (trial, step,
function), which the preflight reads when it has to kill a run that stalled. `instrument(cfg, module, result)` is
what the runs install."""
import functools
import inspect
import os
import signal
import time
import traceback

import torch

from tools import tiny
from tools.preflight.common import BASELINE
from tools.preflight.probes import FiniteProbe, GradientProbe, PassProbe, StateProbe, StreamProbe, WeightProbe
from tools.preflight.schedule import HparamProbe
from tools.preflight.trained import ArchProbe, CheckpointProbe, FlipProbe, LearnProbe
from tools.preflight.trajectory import TrajectoryProbe
from tools.preflight.update_math import DescentProbe, StackSplitProbe
from tools.preflight.world import SumProbe, ValProbe

# what each kind of run records: the script's runs everything; the twin (val perturbed) only its trajectory; the
# baseline's own runs their time (the hub) and the val loss they start from
PROBES = dict(full=(GradientProbe, HparamProbe, PassProbe, StreamProbe, FiniteProbe, WeightProbe, StateProbe,
                    TrajectoryProbe, ArchProbe, LearnProbe, CheckpointProbe, FlipProbe, DescentProbe, StackSplitProbe,
                    SumProbe, ValProbe),
              twin=(TrajectoryProbe, LearnProbe), baseline=(LearnProbe,))

PERTURB = (0.5, 2.0)  # the twin run multiplies its val losses and readouts by these factors in turn


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
    """Wraps init_params, make_optimizers, set_hparams, every optimizer's step, GPT.forward,
    distributed_data_generator, before_forward, after_step, evaluate, readouts, restore, save_checkpoint and main:
    the thirteen ways the loop reaches the script's code. Each wrapper is `around` (bookkeeping before and after the
    call); only the generator and main need their own."""

    def __init__(self, module, result, cfg):
        self.m, self.r, self.cfg = module, result, cfg
        self.script = os.path.abspath(module.__file__)
        self.rank, self.world = int(os.environ.get("RANK", 0)), int(os.environ.get("WORLD_SIZE", 1))
        self.base = tiny.load_script(str(BASELINE), "preflight_baseline_stream")
        result.update(completed=False, traceback=None, instrument_error=None, trials=0, val_steps=None, stopped_at=None,
                      step_times=dict(first=None, last=None, steps=0))
        self.model, self.optimizers, self.state, self.names, self.params = None, [], None, {}, []
        self.trial, self.step, self.resumed, self.open, self.in_readouts = 0, 0, False, False, False
        self.checking, self.val_calls, self.val_batch = False, 0, None
        status = cfg.get("status")
        self.status = os.open(os.path.join(status, f"rank{self.rank}.where"), os.O_WRONLY | os.O_CREAT | os.O_TRUNC) \
            if status else None
        self.probes = [probe(self) for probe in PROBES[cfg.get("probes", "full")]]
        m, around = module, self.around
        m.init_params = around(m.init_params, before=self.on_init, after=lambda a, k, v: self.emit("initialized"),
                               where="init_params")
        m.make_optimizers = around(m.make_optimizers, before=lambda a, k: self.end_trial(),
                                   after=lambda a, k, value: self.start_trial(_arg(a, k, 0, "model"), value),
                                   where="make_optimizers")
        m.GPT.forward = around(m.GPT.forward, after=self.on_forward)
        m.distributed_data_generator = self.wrap_generator(m.distributed_data_generator)
        hooks = dict(before_forward=(self.on_before_forward, lambda a, k, v: self.emit("step_forwarded", self.step)),
                     set_hparams=(lambda a, k: self.emit("hparams_start", self.step),
                                  lambda a, k, v: self.emit("hparams_set", self.step)),
                     after_step=(self.on_after_step, lambda a, k, v: self.emit("step_end", self.step)),
                     evaluate=(self.on_evaluate, self.on_evaluated), readouts=(self.on_readouts, self.on_readouts_end),
                     restore=(None, self.on_restore), save_checkpoint=(None, self.on_saved))
        for name, (before, after) in hooks.items():
            if callable(getattr(m, name, None)):
                setattr(m, name, around(getattr(m, name), before, after, where=name))
        m.main = self.wrap_main(m.main)

    def safely(self, fn, *args):
        """Run a piece of the instrumentation; its own failure is reported as such, never as the script's."""
        try:
            return fn(*args)
        except Exception:
            if self.r["instrument_error"] is None:
                self.r["instrument_error"] = traceback.format_exc()

    def around(self, fn, before=None, after=None, where=None):
        """`fn` with before(args, kwargs) run first and after(args, kwargs, value) after it returned; an `after`
        that returns something other than None replaces the value. `where` names the call in the status file."""
        @functools.wraps(fn)
        def wrapped(*args, **kwargs):
            if where:
                self.where(f"in {where}")
            if before is not None:
                self.safely(before, args, kwargs)
            value = fn(*args, **kwargs)
            if where:
                self.where(f"after {where}")
            if after is not None:
                changed = self.safely(after, args, kwargs, value)
                value = value if changed is None else changed
            return value
        return wrapped

    def where(self, text):
        """Say in the status file where the script is now (read by the preflight after it killed a stalled run)."""
        if self.status is not None:
            place = f"{text} (trial {self.trial}, step {self.step})" if self.open else f"{text} (before trial " \
                                                                                         f"{self.trial + 1})"
            os.pwrite(self.status, place.encode()[:500].ljust(500), 0)

    def emit(self, event, *args):
        if self.checking:
            return
        for probe in self.probes:
            handler = getattr(probe, event, None)
            if handler is not None:
                self.safely(handler, *args)

    def end_trial(self, normal=True):
        if self.open:
            self.emit("trial_end", normal)
            self.open = False

    def on_init(self, args, kwargs):
        self.end_trial()  # before the next trial re-initializes the same model
        model = _arg(args, kwargs, 0, "model")
        self.init_model = model if isinstance(model, torch.nn.Module) else None

    def start_trial(self, model, optimizers):
        opts = [optimizers] if isinstance(optimizers, torch.optim.Optimizer) else list(optimizers)
        self.model, self.optimizers, self.state = model, opts, None
        self.params = list(model.named_parameters())  # the same tensors all trial long (a restore copies into them)
        self.names = {id(p): n for n, p in self.params}
        self.trial += 1
        self.r["trials"] += 1
        self.step, self.resumed, self.open, self.stepped = 0, False, True, False
        for i, opt in enumerate(opts):
            opt.step = self.around(opt.step, before=functools.partial(self.on_optimizer_step, opt, i),
                                   after=lambda a, k, v, opt=opt, i=i: self.emit("optimizer_stepped", opt, i, self.step),
                                   where=f"optimizer {i} ({type(opt).__name__}).step()")
        self.emit("trial_start", model, opts)

    def on_optimizer_step(self, opt, index, args, kwargs):
        if index == 0:
            if self.stepped:  # no before_forward since the last step (a loop without it): count
                self.step += 1
            self.stepped = True
            times = self.r["step_times"]
            times["first"] = times["first"] or time.monotonic()
            times["cpu_first"] = times.get("cpu_first") or time.process_time()
            times["last"], times["cpu_last"], times["steps"] = time.monotonic(), time.process_time(), times["steps"] + 1
            self.emit("passes_done", self.step)
        self.emit("optimizer_step", opt, index, self.step)

    def on_before_forward(self, args, kwargs):
        step, self.state = _arg(args, kwargs, 0, "step"), _arg(args, kwargs, 3, "state")
        self.step, self.stepped = step if isinstance(step, int) else self.step, False
        self.emit("step_start", self.step)

    def on_after_step(self, args, kwargs):
        self.state = _arg(args, kwargs, 3, "state")
        self.emit("after_step_start", self.step)

    def perturbed(self, value):
        """The twin run's val loss: the true one times the next factor of PERTURB (order-changing, not a shift)."""
        if not (self.cfg.get("perturb") and isinstance(value, (int, float)) and not isinstance(value, bool)):
            return None
        self.val_calls += 1
        return value * PERTURB[self.val_calls % len(PERTURB)]

    def on_evaluate(self, args, kwargs):
        self.val_pass = not self.in_readouts and self.open  # a readout's own evaluate() is part of the readout
        self.val_step = self.step + 1 if self.stepped else self.step  # validating before step s: s - 1 has trained
        if self.val_pass:
            self.emit("val_start", self.val_step)

    def on_evaluated(self, args, kwargs, value):
        if self.val_pass:
            self.emit("val_end", self.val_step)
            self.emit("val_value", self.val_step, value)
        return self.perturbed(value)

    def on_readouts(self, args, kwargs):
        self.readout_step, state = _arg(args, kwargs, 0, "step"), _arg(args, kwargs, 4, "state")
        if state is not None:
            self.state = state
        self.emit("readouts_start", self.readout_step)
        self.in_readouts = True

    def on_readouts_end(self, args, kwargs, value):
        self.in_readouts = False
        self.emit("readouts_end", self.readout_step)
        self.emit("readouts_value", self.readout_step, value)
        if self.cfg.get("perturb") and isinstance(value, dict):
            return {k: v if p is None else p for k, v in value.items() for p in [self.perturbed(v)]}
        return None

    def on_restore(self, args, kwargs, state):
        ckpt = _arg(args, kwargs, 1, "ckpt")
        step = ckpt.get("step") if isinstance(ckpt, dict) else None
        if isinstance(ckpt, dict) and isinstance(ckpt.get("trial"), int):
            self.trial = ckpt["trial"] + 1  # the trial this checkpoint continues (1-based)
        self.state, self.resumed = state, True
        self.step = step if isinstance(step, int) else self.step
        self.emit("restored", step, state)

    def on_saved(self, args, kwargs, value):
        trial = kwargs.get("trial")
        self.emit("saved", trial + 1 if isinstance(trial, int) else self.trial, kwargs.get("step"),
                  _arg(args, {}, 0, "run"), _arg(args, kwargs, 1, "optimizers"), kwargs.get("state", self.state))

    def on_forward(self, args, kwargs, loss):
        if torch.is_grad_enabled() and not self.checking:
            self.emit("training_forward", args + tuple(kwargs.get(k) for k in ("inputs", "targets") if k in kwargs), loss)

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
            self.where(f"in distributed_data_generator ({kind})")
            for i, batch in enumerate(generator(*args, **kwargs)):
                if kind == "val" and i == 0 and isinstance(batch, (tuple, list)) and len(batch) == 2:
                    self.val_batch = batch
                self.emit("fetched", kind, i, batch, ref)
                yield batch
                self.where(f"in distributed_data_generator ({kind})")
        return wrapped

    def wrap_main(self, main):
        def wrapped(*args, **kwargs):
            self.safely(self.record_val_steps)
            self.where("in main(), before the first trial")
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
                self.where("in main(), after the last trial")
                self.end_trial(self.r["completed"] and not self.r["stopped_at"])
                self.emit("run_end", self.r["completed"])
        return wrapped

    def record_val_steps(self):
        """The steps the script's own is_val_step validates (with this run's train_steps)."""
        if callable(getattr(self.m, "is_val_step", None)):
            T = self.m.train_steps  # the loop validates after the last step whatever is_val_step says (RULES 6.1)
            self.r["val_steps"] = [s for s in range(T + 1) if s == T or self.m.is_val_step(s)]


def instrument(cfg, module, result):
    if not cfg.get("resume"):
        os.environ.pop("RESUME", None)  # never resume the user's real run
    Hub(module, result, cfg)
