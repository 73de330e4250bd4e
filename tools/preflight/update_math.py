"""The math of the update a researcher writes, judged inside the long run's process and in the preflight's:

  DescentProbe     `descent`: each parameter's first update from a non-zero gradient (its optimizer's state is then
                   still that of zero gradients), net of decoupled weight decay, points downhill: <G, dW + lr wd W> < 0
  StackSplitProbe  `stack split`: each MatrixOptimizer's update() on a stack of STACK_K same-shape matrices gives, in
                   float64, the same new matrices and the same state as on that stack split as 2 and 4 ranks split it

Both probes run on the long run only (1 rank, trial 1, fresh): the first in its first DESCENT_STEPS steps, the second
once, at its first optimizer step, on random matrices and deep copies of the optimizer (the run is not touched).
"""
import copy
import functools
import inspect
import math
import os
import time
import traceback

import torch
from torch.overrides import TorchFunctionMode

from tools.preflight.common import FAIL, PASS, SKIP, _clip
from tools.preflight.fingerprint import optimizer_label
from tools.preflight.probes import Probe

DESCENT_STEPS = 5  # steps 0-4: with zero-initialized projections and head the hidden matrices get gradients at 1 and 2
STACK_K, STACK_WORLDS, STACK_CALLS = 4, (2, 4), 3
# update()'s results on the whole stack and on its parts, matrix by matrix: |a - b| <= STACK_RTOL |a - W| for a new
# matrix (relative to its update), |a - b| <= STACK_RTOL |a| for a state tensor (Frobenius norms). Per-matrix math on
# the same inputs gives the same bits whatever the stack around it: measured 0 for Muon, NorMuon and record #46 (whose
# Gram norms and brake run in float32 inside update()). The tolerance leaves room for float32 steps summed in another
# order (~1e-7 of a value), while a reduction over the stack changes a matrix's update by a factor of order 1 (Muon's
# u / u.norm() over the stack: 0.2 to 0.5 of the update, measured).
STACK_RTOL = 1e-4


def _is_matrix_optimizer(opt):
    """main()'s own test (optimizer_step): a MatrixOptimizer has `owner`; update() is what the researcher writes."""
    return getattr(opt, "owner", None) is not None and callable(getattr(opt, "update", None))


def _number(value):
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else 0.0


class DescentProbe(Probe):
    """result["descent"]: [dict(optimizer, matrix, group, names, shapes, steps, inner, grad_norm, net_norm)], one per
    matrix of a MatrixOptimizer and one per param group of any other optimizer: the sums over its parameters, each
    taken at the first step (of the first DESCENT_STEPS) at which that parameter's gradient is non-zero, of
    <G, W_after - W_before + lr wd W_before> (float64; lr and weight_decay: the group's at that step, wd 0 without
    the key) and of the squares of |G| and of that net change."""

    def __init__(self, hub):
        super().__init__(hub)
        self.r.update(descent=[])
        self.on = hub.cfg.get("label") == "long"
        self.seen, self.taken, self.entries = set(), [], {}

    def active(self, step):
        return self.on and self.hub.trial == 1 and not self.hub.resumed and step < DESCENT_STEPS

    def optimizer_step(self, opt, index, step):
        self.taken = []
        if not self.active(step):
            return
        t0 = time.perf_counter()
        self.take(opt)
        self.r["descent_s"] = self.r.get("descent_s", 0.0) + time.perf_counter() - t0

    def take(self, opt):
        for g, group in enumerate(opt.param_groups):
            lr, wd = _number(group.get("lr")), _number(group.get("weight_decay"))
            for p in group["params"]:
                if id(p) in self.seen or p.grad is None or not p.is_floating_point() or not bool(p.grad.ne(0).any()):
                    continue
                self.seen.add(id(p))
                self.taken.append((g, p, p.detach().double().clone(), p.grad.detach().double().clone(), lr * wd))

    def optimizer_stepped(self, opt, index, step):
        taken, self.taken = self.taken, []
        if taken:
            t0 = time.perf_counter()
            self.judge(opt, index, step, taken)
            self.r["descent_s"] = self.r.get("descent_s", 0.0) + time.perf_counter() - t0

    def judge(self, opt, index, step, taken):
        matrix = _is_matrix_optimizer(opt)
        for g, p, before, grad, decay in taken:
            net = p.detach().double() - before + decay * before
            name = self.hub.names.get(id(p), "?")
            key = (index, g, name if matrix else None)
            entry = self.entries.get(key)
            if entry is None:
                entry = self.entries[key] = dict(optimizer=optimizer_label(index, opt), matrix=matrix, group=g, names=[],
                                                 shapes=[], steps=[], inner=0.0, grad_norm=0.0, net_norm=0.0)
                self.r["descent"].append(entry)
            entry["names"].append(name)
            entry["shapes"].append(tuple(p.shape))
            entry["steps"].append(step)
            entry["inner"] += float((grad * net).sum())
            entry["grad_norm"] = math.hypot(entry["grad_norm"], float(grad.norm()))
            entry["net_norm"] = math.hypot(entry["net_norm"], float(net.norm()))


# -----------------------------------------------------------------------------
# stack split

REDUCTIONS = {"norm", "sum", "mean", "amax", "amin", "max", "min", "std", "var", "prod", "logsumexp", "vector_norm",
              "matrix_norm", "nansum", "nanmean", "std_mean", "var_mean", "median", "linalg_norm", "frobenius_norm",
              "linalg_vector_norm", "linalg_matrix_norm"}


class ReductionSpy(TorchFunctionMode):
    """Records the reductions over the stack's first dimension (a tensor of the stack's leading size k with 3 or
    more dimensions, reduced over all of them or over dimension 0) and the script's line that called them."""

    def __init__(self, k, script):
        super().__init__()
        self.k, self.script, self.found = k, script, []

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        name = getattr(func, "__name__", "")
        if name in REDUCTIONS and args and torch.is_tensor(args[0]) and args[0].ndim >= 3 and args[0].size(0) == self.k:
            dim = kwargs.get("dim", args[1] if len(args) > 1 and not torch.is_tensor(args[1]) and
                             not isinstance(args[1], (float, str)) else None)
            if name in ("norm", "linalg_norm", "linalg_vector_norm") and len(args) > 1 and "dim" not in kwargs:
                dim = args[2] if len(args) > 2 else None  # norm(x, p, dim)
            dims = [] if dim is None else [dim] if isinstance(dim, int) else list(dim)
            if dim is None or any(d % args[0].ndim == 0 for d in dims):
                line = next((f"line {f.lineno}: {f.line}" for f in reversed(traceback.extract_stack())
                             if os.path.abspath(f.filename) == self.script), None)
                self.found.append(f"{name}() over {'every dimension' if dim is None else f'dim={dim}'}"
                                  + (f" ({line})" if line else ""))
        return func(*args, **kwargs)


def _float64_newton_schulz(module):
    """The script's newton_schulz in float64 where it has a `dtype` parameter (the baseline's and record #46's run
    in bfloat16), else None. In bfloat16 the same matrix gives other bits in a stack of 1 than in one of 4 (record
    #46: 3e-4 of the update, measured), in float64 the same bits (0 for Muon, NorMuon and record #46)."""
    ns = getattr(module, "newton_schulz", None)
    try:
        return functools.partial(ns, dtype=torch.float64) if "dtype" in inspect.signature(ns).parameters else None
    except (TypeError, ValueError):
        return None


def _float64_twin(opt, module, ns64):
    """A deep copy of the optimizer (its attributes and state: the run's optimizer is never touched) whose
    newton_schulz, where it is the script's own function (compiled() gives it back on the CPU), is ns64. (Not
    copy.deepcopy(opt): torch.optim.Optimizer's __getstate__ keeps only defaults, state and param_groups.)"""
    twin = object.__new__(type(opt))
    twin.__dict__.update(copy.deepcopy(vars(opt)))
    if ns64 is not None and vars(twin).get("newton_schulz") is getattr(module, "newton_schulz", None):
        twin.newton_schulz = ns64
    return twin


def _owners(module, opt, shape, world):
    """Which rank owns each matrix of a stack of STACK_K matrices of `shape`: the script's assign_ranks over cost()."""
    assign = getattr(module, "assign_ranks", None)
    costs = [opt.cost(*shape) if callable(getattr(opt, "cost", None)) else 1] * STACK_K
    owners = assign(costs, world) if callable(assign) else [i % world for i in range(STACK_K)]
    return [[i for i in range(STACK_K) if owners[i] == r] for r in range(world)]


def _run_split(opt, module, group, parts, inputs, spy=None):
    """update() on each part (a rank's stack) for every call of `inputs` [(W0, [G per call])], through the
    machinery's own stacking of per-matrix state. Returns per call [(new W, per-matrix state)] for all matrices."""
    ns, ns64 = getattr(module, "newton_schulz", None), _float64_newton_schulz(module)
    # one copy per rank: on GPUs every rank has its own optimizer object, so attributes of one (a buffer kept
    # by stack shape, say) are never seen by another; state per matrix is carried by the machinery (below)
    twins = [_float64_twin(opt, module, ns64) for _ in parts]
    # and its own module: the script's mutable globals (a buffer kept in a dict, say) are per process, so each
    # simulated rank gets a copy of them, and the run's own are back in place afterwards, untouched
    run_globals = {name: v for name, v in vars(module).items()
                   if not name.startswith("__") and isinstance(v, (dict, list, set, torch.Tensor))}
    rank_globals = [_copies(run_globals) for _ in parts]

    def switch(rank, entering):
        if entering:
            vars(module).update(rank_globals[rank])
        else:  # what update() left there, rebound names too
            rank_globals[rank] = {name: vars(module).get(name) for name in rank_globals[rank]}
    if ns64 is not None:
        module.newton_schulz = ns64  # update() may call the module's function itself
    try:
        return _calls(twins, group, parts, inputs, spy, switch)
    finally:
        vars(module).update(run_globals)
        if ns64 is not None:
            module.newton_schulz = ns


def _copies(values):
    """Deep copies of what can be copied (a value that cannot, such as a process group inside, stays shared)."""
    out = {}
    for name, v in values.items():
        try:
            out[name] = copy.deepcopy(v)
        except Exception:
            out[name] = v
    return out


def _calls(twins, group, parts, inputs, spy, switch=lambda rank, entering: None):
    W0, grads = inputs
    W = list(W0)  # float64
    states = [{} for _ in range(STACK_K)]
    out = []
    for G in grads:
        new = [None] * STACK_K
        for rank, (twin, idx) in enumerate(zip(twins, parts)):
            if not idx:
                continue
            stack_W = torch.stack([W[i] for i in idx])
            stack_G = torch.stack([G[i] for i in idx])
            first = states[idx[0]]
            state = {key: torch.stack([states[i][key] for i in idx]) if torch.is_tensor(v) else v
                     for key, v in first.items()}
            g = dict(group)
            switch(rank, True)
            try:
                with torch.random.fork_rng(devices=[]):
                    torch.manual_seed(0)
                    if spy is not None:
                        with spy:
                            updated = twin.update(stack_W, stack_G, state, g)
                    else:
                        updated = twin.update(stack_W, stack_G, state, g)
            finally:
                switch(rank, False)
            for j, i in enumerate(idx):
                new[i] = updated[j].detach().clone()
                states[i].update({key: v[j].detach().clone() if torch.is_tensor(v) else copy.deepcopy(v)
                                  for key, v in state.items()})
        W = new
        out.append((list(W), [dict(s) for s in states]))
    return out


def _differs(a, b, scale=None):
    """How far b is from a, relative to the norm of `scale` (default a; Frobenius; 0 for equal tensors)."""
    if a.shape != b.shape:
        return math.inf
    diff = float((a.double() - b.double()).norm())
    scale = a if scale is None else scale
    return diff / max(float(scale.double().norm()), 1e-300) if diff else 0.0


def split_difference(W0, whole, split):
    """The first difference between the whole stack's results and the split one's: (call, what, relative) or None.
    A new matrix is compared relative to the whole stack's change of it in that call (the update, not W), a state
    tensor relative to its norm; other state values must be equal."""
    before = W0
    for c, ((W_a, S_a), (W_b, S_b)) in enumerate(zip(whole, split)):
        for i, (a, b) in enumerate(zip(W_a, W_b)):
            rel = _differs(a, b, a.double() - before[i].double())
            if not rel <= STACK_RTOL:
                return c, f"the new matrix {i}", rel
        before = W_a
        for i, (sa, sb) in enumerate(zip(S_a, S_b)):
            for key in sorted(set(sa) | set(sb), key=str):
                va, vb = sa.get(key), sb.get(key)
                if key not in sa or key not in sb or torch.is_tensor(va) != torch.is_tensor(vb):
                    return c, f"state[{key!r}] of matrix {i}", math.inf
                rel = _differs(va, vb) if torch.is_tensor(va) else 0.0 if va == vb else math.inf
                if not rel <= STACK_RTOL:
                    return c, f"state[{key!r}] of matrix {i}", rel
    return None


def stack_split_problems(opt, index, module, script):
    """[problem] of one MatrixOptimizer: for each of its param groups and shapes, a random stack of STACK_K matrices
    through STACK_CALLS calls of update(), whole and split as each of STACK_WORLDS ranks would split it."""
    label = optimizer_label(index, opt)
    problems = []
    gen = torch.Generator().manual_seed(31)
    for g, group in enumerate(opt.param_groups):
        group = {k: v for k, v in group.items() if k != "params"}
        if not _number(group.get("lr")) and _number(group.get("initial_lr")):
            group["lr"] = group["initial_lr"]  # an lr of 0 at step 0 (a warmup) would hide the update
        for shape in sorted({tuple(p.shape) for p in opt.param_groups[g]["params"] if p.ndim == 2}):
            W0 = [torch.randn(shape, generator=gen, dtype=torch.float64) / shape[-1] ** 0.5 for _ in range(STACK_K)]
            grads = [[torch.randn(shape, generator=gen, dtype=torch.float64) for _ in range(STACK_K)]
                     for _ in range(STACK_CALLS)]
            inputs = (W0, grads)
            try:
                whole = _run_split(opt, module, group, [list(range(STACK_K))], inputs)
                splits = [(world, _owners(module, opt, shape, world)) for world in STACK_WORLDS]
                results = [(world, parts, _run_split(opt, module, group, parts, inputs))
                           for world, parts in splits]
            except Exception as e:
                return None, (f"{label}.update() on a float64 stack of {STACK_K} {shape} matrices (group {g}) raised "
                              f"{type(e).__name__}: {e}")
            for world, parts, split in results:
                found = split_difference(W0, whole, split)
                if found is None:
                    continue
                call, what, rel = found
                spy = ReductionSpy(STACK_K, script)
                try:
                    _run_split(opt, module, group, [list(range(STACK_K))], inputs, spy=spy)
                except Exception:
                    pass
                how = ("; the reductions over the whole stack: " + _clip(dict.fromkeys(spy.found), 3)) if spy.found \
                    else ("; no reduction over the stack's first dimension was seen: randomness drawn per stack, or a "
                          "computation in bfloat16 outside newton_schulz (which the preflight runs in float64)?")
                problems.append(f"{label}.update() on group {g}'s stack of {STACK_K} {shape} matrices: split as {world} "
                                f"ranks split it ({' and '.join(map(str, parts))}), {what} differs after call "
                                f"{call + 1} by {rel:.2g} of {'its update' if what.startswith('the new') else 'its norm'}: a reduction crosses the matrices of the stack "
                                f"(such as u.norm() over the whole (k, m, n) tensor){how}")
                break
    return problems, None


class StackSplitProbe(Probe):
    """result["stack_split"]: [dict(optimizer, problems, error, groups)] for each MatrixOptimizer of the long run,
    judged once, at its first optimizer step (after set_hparams: the groups' values of a real step)."""

    def __init__(self, hub):
        super().__init__(hub)
        self.r.update(stack_split=None)
        self.on = hub.cfg.get("label") == "long"

    def optimizer_step(self, opt, index, step):
        if not self.on or self.hub.trial != 1 or self.hub.resumed:
            return
        if self.r["stack_split"] is None:
            self.r["stack_split"] = []
        if index in {x["index"] for x in self.r["stack_split"]}:
            return
        entry = dict(index=index, optimizer=optimizer_label(index, opt), matrix=_is_matrix_optimizer(opt),
                     problems=[], error=None)
        self.r["stack_split"].append(entry)
        if entry["matrix"]:
            t0, self.hub.checking = time.perf_counter(), True
            try:
                entry["problems"], entry["error"] = stack_split_problems(opt, index, self.hub.m, self.hub.script)
            finally:
                self.hub.checking = False
                self.r["stack_split_s"] = self.r.get("stack_split_s", 0.0) + time.perf_counter() - t0


# -----------------------------------------------------------------------------
# Verdicts (in the preflight's process)

def _long(runs):
    run = next((r for r in runs if r["label"] == "long"), None)
    return run["results"][0] if run and run["results"] else None


def _entry_text(x):
    where = f"group {x['group']}, {x['names'][0]} {x['shapes'][0]}" if x["matrix"] else \
        f"group {x['group']} ({_clip([f'{n} {s}' for n, s in zip(x['names'], x['shapes'])], 3)})"
    cos = x["inner"] / (x["grad_norm"] * x["net_norm"]) if x["grad_norm"] and x["net_norm"] else 0.0
    steps = sorted(set(x["steps"]))
    return (f"{x['optimizer']} {where}: <G, dW + lr wd W> = {x['inner']:+.3g} at step{'s' if len(steps) > 1 else ''} "
            f"{_clip(steps)} (cosine {cos:+.3f})")


def judge_descent(report, runs):
    """descent: every first update from a non-zero gradient, net of decoupled weight decay, points downhill."""
    result = _long(runs)
    entries = (result or {}).get("descent") or []
    if not entries:
        report.set("descent", SKIP, "the long run did not reach an optimizer step with a non-zero gradient" if result
                   else "the long run did not run (see run)")
        return
    entries = [x for x in entries if math.isfinite(x["inner"]) and math.isfinite(x["net_norm"])]  # else: finite
    uphill = [x for x in entries if x["inner"] > 0 or (x["inner"] == 0 and x["net_norm"] > 0)]
    still = [x for x in entries if x["net_norm"] == 0]
    judged = len(entries) - len(still)
    if uphill:
        report.set("descent", FAIL, f"{len(uphill)} of {len(entries)} first updates point uphill (their gradient's "
                   "inner product with the change, weight decay taken out, is not negative): "
                   + "; ".join(_entry_text(x) for x in uphill[:3]) + (f" and {len(uphill) - 3} more" if len(uphill) > 3
                                                                       else ""))
        return
    if not judged:
        report.set("descent", SKIP, "no first update moved a parameter to a finite value (an lr of 0 in the first "
                   f"{DESCENT_STEPS} steps? see finite): nothing to judge")
        return
    matrices = sum(x["matrix"] for x in entries if x["net_norm"] > 0)
    report.set("descent", PASS, f"the first update of each of {matrices} matrices of a MatrixOptimizer and of "
               f"{judged - matrices} other param groups points downhill (long run, steps 0-{DESCENT_STEPS - 1})"
               + (f"; {len(still)} did not move: " + _clip([x['optimizer'] + ' ' + (x['names'][0] if x['matrix'] else
                                                            f"group {x['group']}") for x in still], 3) if still else ""))


def judge_stack_split(report, runs):
    """stack split: every MatrixOptimizer's update() gives each matrix of a stack the same result and state however
    the stack is split over ranks."""
    result = _long(runs)
    entries = (result or {}).get("stack_split")
    if entries is None:
        report.set("stack_split", SKIP, "the long run did not reach an optimizer step" if result else
                   "the long run did not run (see run)")
        return
    matrix = [x for x in entries if x["matrix"]]
    errors = [x["error"] for x in matrix if x["error"]]
    problems = [p for x in matrix for p in x["problems"]]
    if problems:
        report.set("stack_split", FAIL, "; ".join(problems[:2]) + (f" and {len(problems) - 2} more" if len(problems) > 2
                                                                    else ""))
    elif errors:
        report.set("stack_split", SKIP, "; ".join(errors[:2]))
    elif not matrix:
        report.set("stack_split", PASS, "no MatrixOptimizer in the run: no stack is split over ranks")
    else:
        report.set("stack_split", PASS, f"{', '.join(x['optimizer'] for x in matrix)}: update() in float64 gives every "
                   f"matrix of a stack of {STACK_K} the same new value and state, whole and split as "
                   f"{' and '.join(map(str, STACK_WORLDS))} ranks split it, over {STACK_CALLS} calls")
