"""The model as it trains: probes that look at the live model and its updates inside the script's process, and
their verdicts. ArchProbe checks the module tree, the parameters and the float64 forward of the model that trains
(after init_params, after make_optimizers, after the first before_forward, at the end of the run) against the
baseline's (`architecture`); LearnProbe measures the val loss of the freshly initialized model (`learns`);
CheckpointProbe names a value in `state` that a checkpoint cannot hold (`resume`); FlipProbe finds a place that
multiplies a parameter by a negative factor, so its new value points against the old one (`updates`)."""
import copy
import io
import math

import torch

from tools import tiny
from tools.preflight.common import FAIL, PASS, SKIP, _clip
from tools.preflight.compare import ARCH_GRAD_RTOL, ARCH_LOSS_RTOL
from tools.preflight.probes import Probe


def _tree(model):
    return [(name, type(module)) for name, module in model.named_modules()]


class ArchProbe(Probe):
    """result["arch"]: [dict(where, problem)], each problem once."""

    def __init__(self, hub):
        super().__init__(hub)
        self.r.update(arch=[])
        self.ref, self.seen, self.forwarded = None, set(), False
        self.on = hub.cfg.get("arch", True)

    def reference(self, model):
        """The baseline's GPT at this run's size, shared random weights, its float64 loss and gradients."""
        if self.ref is None:
            m, base = self.hub.m, self.hub.base
            ref_model = base.GPT(m.vocab_size, m.num_layers, m.model_dim)
            generator = torch.Generator().manual_seed(1234)
            with torch.no_grad():
                for p in ref_model.parameters():
                    p.copy_(torch.randn(p.shape, generator=generator) * 0.5 + (1.0 if p.ndim == 1 else 0.0))
            T = min(tiny.TINY["seq_len"], 16)
            inputs = torch.randint(0, m.vocab_size, (2, T), generator=generator)
            targets = torch.randint(0, m.vocab_size, (2, T), generator=generator)
            weights = {k: v.clone() for k, v in ref_model.state_dict().items()}
            ref_model.double()
            loss = ref_model(inputs, targets)
            loss.backward()
            self.ref = dict(tree=_tree(ref_model), params={n: (tuple(p.shape), p.dtype) for n, p in
                                                           base.GPT(m.vocab_size, m.num_layers, m.model_dim)
                                                           .named_parameters()},
                            weights=weights, inputs=inputs, targets=targets, loss=loss.detach(),
                            grads={n: p.grad for n, p in ref_model.named_parameters()})
        return self.ref

    def problems(self, model):
        ref, m = self.reference(model), self.hub.m
        found = []
        mine, theirs = dict(_tree(model)), dict(ref["tree"])
        missing = [n for n in theirs if n not in mine]
        extra = [n for n in mine if n not in theirs]
        found += [f"missing module {_clip(missing, 3)}"] if missing else []
        found += [f"extra module {_clip(extra, 3)}"] if extra else []
        for name, cls in mine.items():
            if name not in theirs:
                continue
            label = name or "the model"
            want = theirs[name]
            if cls.__name__ != want.__name__:
                found.append(f"{label} is a {cls.__name__} (the baseline's: {want.__name__})")
            elif want.__module__.startswith("torch") and cls is not want:
                found.append(f"{label} is a {cls.__module__}.{cls.__name__}, not torch's {want.__name__}")
            elif not want.__module__.startswith("torch") and getattr(m, cls.__name__, None) is not cls:
                found.append(f"{label} is a {cls.__name__} defined elsewhere than the script's class {cls.__name__}")
        for name, module in model.named_modules():
            if "forward" in vars(module):
                found.append(f"{name or 'the model'}.forward is rebound on the module (an instance attribute)")
        params = {n: (tuple(p.shape), p.dtype) for n, p in model.named_parameters()}
        if params != ref["params"]:
            missing = [n for n in ref["params"] if n not in params]
            extra = [n for n in params if n not in ref["params"]]
            differ = [f"{n} {params[n][0]} {str(params[n][1])[6:]} (baseline {ref['params'][n][0]} "
                      f"{str(ref['params'][n][1])[6:]})" for n in ref["params"] if n in params
                      and params[n] != ref["params"][n]]
            found += [f"parameters: " + "; ".join(x for x in [f"missing {_clip(missing, 3)}" if missing else "",
                                                              f"extra {_clip(extra, 3)}" if extra else "",
                                                              f"differ: {_clip(differ, 2)}" if differ else ""] if x)]
        if not found:
            found += self.math(model, ref)
        return found

    def math(self, model, ref):
        """The model's float64 forward on the shared weights against the baseline's (precision-only changes pass,
        RULES 4.4)."""
        self.hub.checking = True
        try:
            twin = copy.deepcopy(model)
            twin.zero_grad(set_to_none=True)
            twin.load_state_dict(ref["weights"])
            twin.double()
            loss = twin(ref["inputs"], ref["targets"])
            loss.backward()
        except Exception as e:
            return [f"its forward in float64 on the baseline's weights failed: {type(e).__name__}: {e}"]
        finally:
            self.hub.checking = False
        if not torch.is_tensor(loss) or loss.shape != ref["loss"].shape:
            return [f"its forward returned {loss!r}, not a summed loss"]
        loss_rel = abs(loss.item() - ref["loss"].item()) / abs(ref["loss"].item())
        off = []
        for n, g in ref["grads"].items():
            mine = dict(twin.named_parameters())[n].grad
            rel = math.inf if mine is None else ((mine - g).norm() / g.norm().clamp_min(1e-300)).item()
            if not rel <= ARCH_GRAD_RTOL:
                off.append(n)
        if loss_rel <= ARCH_LOSS_RTOL and not off:
            return []
        modules = sorted({n.rsplit(".", 1)[0] for n in off})
        return [f"its forward differs from the baseline's in float64 (loss {loss_rel:.1e} relative; gradients off: "
                f"{_clip(off, 3)}; the modules of those: {_clip(modules, 3)})"]

    def check(self, where, model):
        if not self.on or model is None or not self.hub.cfg.get("fresh", True):
            return
        with torch.random.fork_rng(devices=[]):  # building the reference draws from torch's RNG: the run's must not move
            problems = self.problems(model)
        for problem in problems:
            if problem not in self.seen:
                self.seen.add(problem)
                self.r["arch"].append(dict(where=where, problem=problem))

    def initialized(self):
        if self.hub.trial == 0:
            self.check("after init_params", self.hub.init_model)

    def trial_start(self, model, optimizers):
        if self.hub.trial == 1:
            self.check("after make_optimizers", model)

    def step_forwarded(self, step):
        if self.hub.trial == 1 and not self.forwarded:
            self.forwarded = True
            self.check(f"after the first before_forward (step {step})", self.hub.model)

    def run_end(self, completed):
        self.check("at the end of the run", self.hub.model)


class LearnProbe(Probe):
    """result["initial_val"]: the val loss of the freshly initialized model of trial 1, before its first step (a
    forward of the val set without gradients, outside every check's bracket); result["val_curve"]: [(step, val loss)]
    of trial 1 as the script's evaluate() returned them (a fresh trial, the val passes of the loop)."""

    def __init__(self, hub):
        super().__init__(hub)
        self.r.update(initial_val=None, val_curve=[])

    def val_value(self, step, value):
        if self.hub.trial == 1 and not self.hub.resumed and isinstance(value, (int, float)):
            self.r["val_curve"].append((step, float(value)))

    def step_start(self, step):
        batch = self.hub.val_batch
        if self.r["initial_val"] is not None or self.hub.trial != 1 or self.hub.resumed or batch is None:
            return
        self.hub.checking = True
        try:
            with torch.no_grad():
                loss = self.hub.model(batch[0], batch[1])
            self.r["initial_val"] = float(loss) / batch[1].numel()
        finally:
            self.hub.checking = False


def checkpointable(value):
    try:
        buffer = io.BytesIO()
        torch.save(value, buffer)
        buffer.seek(0)
        torch.load(buffer, weights_only=True)
        return True
    except Exception:
        return False


def uncheckpointable(state, path="state"):
    """[(path, type name)] of the values in `state` that a checkpoint cannot hold (torch.load(weights_only=True)
    refuses them or torch.save fails), the innermost containers that hold them."""
    if checkpointable(state):
        return []
    if isinstance(state, dict):
        found = [x for k, v in state.items() for x in uncheckpointable(v, f"{path}[{k!r}]")]
    elif isinstance(state, (list, tuple)):
        found = [x for i, v in enumerate(state) for x in uncheckpointable(v, f"{path}[{i}]")]
    else:
        found = []
    return found or [(path, type(state).__name__)]


class CheckpointProbe(Probe):
    """result["uncheckpointable"]: what of `state` a checkpoint cannot hold, at the first step's end and the first
    readouts (fresh trials)."""

    def __init__(self, hub):
        super().__init__(hub)
        self.r.update(uncheckpointable=None)
        self.looked = set()

    def look(self, step, when):
        if when in self.looked or self.r["uncheckpointable"] or self.hub.resumed or not isinstance(self.hub.state, dict):
            return
        self.looked.add(when)
        found = uncheckpointable(self.hub.state)
        self.r["uncheckpointable"] = dict(step=step, when=when, found=found) if found else None

    def step_end(self, step):
        self.look(step, "after_step")

    def readouts_end(self, step):
        self.look(step, "readouts")


class FlipProbe(Probe):
    """result["flips"]: {(place, parameter): dict(step, cos, count)} for each place (before_forward, the optimizers'
    steps with the passes before them, after_step) that turned a parameter around: its new value points against the
    old one, at an angle over 135 degrees (cos < -1/sqrt(2): mostly the old value times a negative factor, as
    weight decay with lr * wd > 1 gives, rather than an update larger than a small weight)."""

    COS = -0.5 ** 0.5
    SAMPLE_ALL, SAMPLE_EVERY = 100, 10

    def __init__(self, hub):
        super().__init__(hub)
        self.r.update(flips={})
        self.on, self.before, self.active = hub.cfg.get("flips", True), None, False

    def floats(self):
        return [(n, p.detach()) for n, p in self.hub.params if p.is_floating_point() and p.numel()]

    def take(self):
        params = [p for _, p in self.floats()]
        if self.before is None or len(self.before) != len(params):
            self.before = [torch.empty_like(p) for p in params]
        torch._foreach_copy_(self.before, params)
        self.norms = None

    def compare(self, place, step):
        named = self.floats()
        if self.before is None or len(self.before) != len(named):
            return
        new = [p for _, p in named]
        both = torch.stack(torch._foreach_norm(torch._foreach_add(new, self.before))).double()
        if self.norms is None:
            self.norms = torch.stack(torch._foreach_norm(self.before)).double()
        old = self.norms
        if torch.equal(both, 2 * old):  # |x + x| = 2 |x| exactly: nothing moved here (the usual case, cheap)
            return
        a = torch.stack(torch._foreach_norm(new)).double()
        # <new, old> / (|new| |old|) from |new + old|^2 = |new|^2 + 2 <new, old> + |old|^2; the norms' rounding can
        # take it past -1 or 1 (new = -k old), hence the clamp
        cos = ((both ** 2 - a ** 2 - old ** 2) / 2 / (a * old)).clamp(-1.0, 1.0)
        for i in ((cos < self.COS) & (a > 0) & (old > 0)).nonzero().flatten().tolist():
            seen = self.r["flips"].setdefault((place, named[i][0]), dict(step=step, cos=cos[i].item(), count=0,
                                                                         trial=self.hub.trial))
            seen["count"] += 1

    def sampled(self, step):
        """Every step of the first SAMPLE_ALL, then every SAMPLE_EVERY-th (a factor below 0 comes back each step
        its lr is high, so a sample finds it; the cost stays off the long run)."""
        return self.on and (step < self.SAMPLE_ALL or step % self.SAMPLE_EVERY == 0)

    def step_start(self, step):
        self.active = self.sampled(step)
        if self.active:
            self.take()

    def step_forwarded(self, step):
        if self.active:
            self.compare("before_forward", step)
            self.take()

    def after_step_start(self, step):
        if self.active:
            self.compare("the optimizers' steps", step)
            self.take()

    def step_end(self, step):
        if self.active:
            self.compare("after_step", step)


# -----------------------------------------------------------------------------
# Verdicts (in the preflight's process)

LEARN_FAIL, LEARN_WARN = 0.1, 0.5  # shares of the baseline's drop of the val loss


def _drop(run):
    """(initial val loss, (step, last val loss), curve) of a run's trial 1, or None."""
    result = run["results"][0] if run and run["completed"] and run["results"] else {}
    start, curve = result.get("initial_val"), result.get("val_curve") or []
    if start is None or not curve:
        return None
    return start, curve[-1], curve


def judge_learns(report, runs, floor, schedule_warned=False):
    """learns: the long run's val loss falls clearly below its start, as the baseline's does on the same data."""
    by = {run["label"]: run for run in runs}
    if by.get("long") and by["long"].get("nonfinite"):
        report.set("learns", PASS, "not judged: the long run's loss went non-finite (see finite)")
        return
    mine, base = _drop(by.get("long")), _drop(by.get("base_long"))
    if mine is None or base is None:
        report.set("learns", SKIP, "the long run (or the baseline's) did not complete" + (" (see run)" if by.get("long")
                                                                                            else ""))
        return
    (start, (step, end), curve), (b_start, (b_step, b_end), _) = mine, base
    base_drop, drop = b_start - b_end, start - end
    numbers = (f"val loss {start:.3f} at the start, {end:.3f} at step {step} (entropy floor {floor:.3f}); the "
               f"baseline on the same data: {b_start:.3f} -> {b_end:.3f} at step {b_step}")
    shown = curve if len(curve) <= 8 else curve[:3] + curve[len(curve) // 2:len(curve) // 2 + 1] + curve[-4:]
    points = ", ".join(f"{s}: {v:.3f}" for s, v in shown)
    if not (base_drop > 0.05):
        report.set("learns", SKIP, f"the baseline does not learn in {b_step} steps here: {numbers}")
    elif not math.isfinite(end):
        report.set("learns", SKIP, f"the val loss is not finite (see finite): {numbers}")
    elif not drop >= LEARN_FAIL * base_drop:
        text = (f"the val loss does not fall: {numbers}; curve (step: val loss): {points}")
        if schedule_warned and end <= start + LEARN_FAIL * base_drop:  # (under --steps a warmup of absolute steps
            # may not have begun: a val loss that stays put is not judged then; one that rises still fails)
            report.set("learns", PASS, "not judged: under --steps the schedule is not the script's own compressed "
                       f"(see hparams): {text}")
            report.warn("learns", text)
        else:
            report.set("learns", FAIL, text)
    else:
        report.set("learns", PASS, numbers + " (all optimizers together: the sign of each update is descent's)")
        if drop < LEARN_WARN * base_drop:
            report.warn("learns", f"learns much more slowly than the baseline: {numbers} (the val loss fell "
                        f"{drop:.3f}, {100 * drop / base_drop:.0f}% of the baseline's {base_drop:.3f})")


def judge_live_architecture(report, runs):
    """architecture, on the model that trains: the problems the runs' ArchProbes saw, added to the static check."""
    found = []
    for run in runs:
        for r in run["results"]:
            for x in r.get("arch") or []:
                text = f"{x['where']}: {x['problem']}"
                if text not in found:
                    found.append(text)
    if not found:
        status = report.checks["architecture"]["status"]
        if status == PASS:
            report.checks["architecture"]["detail"] += ("; the model that trains has the baseline's modules, "
                                                        "parameters and float64 forward after init_params, after "
                                                        "make_optimizers, after the first before_forward and at the "
                                                        "end of each run")
        return
    detail = "the model that trains: " + "; ".join(found[:4]) + (f" and {len(found) - 4} more" if len(found) > 4 else "")
    if report.checks["architecture"]["status"] == FAIL:
        detail = report.checks["architecture"]["detail"] + "; " + detail
    report.set("architecture", FAIL, detail, fix="keep the baseline's model classes: init_params and the other "
               "extension points may set the weights' values only, not replace modules or their forward")


def flip_problems(runs):
    found = {}
    for run in runs:
        for r in run["results"]:
            for (place, name), x in (r.get("flips") or {}).items():
                key = (place, name)
                if key not in found:
                    found[key] = dict(x, run=run["label"])
                else:
                    found[key]["count"] += x["count"]
    return [f"{place} turned {name} around at step {x['step']} of the {x['run']} run (cosine {x['cos']:.3f} between its "
            f"new and its old value; {x['count']} steps in all)" for (place, name), x in found.items() if x["count"] >= 2]
