"""Trajectories: digests of the training state along a run, to find the first place where two runs that must
agree part. The 2-rank runs record one after every extension point and every optimizer's step, and the ranks are
compared (`ranks` names the first place a rank drifted). The long run and its twin, whose every val loss and
readout is perturbed, record one per path at every step's end; they must agree bit for bit (`val_steer`, RULES 2.6).
Digests are CRC32s of the tensors' bytes (exact: a different bit gives another digest but by a 1 in 4e9 chance)."""
import zlib

import torch

from tools.preflight.common import FAIL, PASS, SKIP, _clip, stall_text
from tools.preflight.fingerprint import _leaves, numeric_hparams, optimizer_label
from tools.preflight.probes import Probe

PLACES = dict(initialized="init_params", trial_start="make_optimizers", step_forwarded="before_forward",
              hparams_set="set_hparams", step_end="after_step", readouts_end="readouts", restored="restore")


class TrajectoryProbe(Probe):
    """result["events"] (cfg["events"]): [(trial, step, place, parameter digests, group digest, ((state path,
    digest), ...))] after every place that may change them. result["trajectory"] (cfg["trajectory"]): [(trial,
    step, paths index, digests, hyperparameters after set_hparams)] at every step's end, the paths in
    result["trajectory_paths"]; result["readout_keys"]: the keys of `state` that readouts wrote."""

    def __init__(self, hub):
        super().__init__(hub)
        self.events, self.steps = hub.cfg.get("events"), hub.cfg.get("trajectory")
        self.r.update(events=[], trajectory=[], trajectory_paths=[], readout_keys=set())
        self.views, self.paths_index, self.hparams, self.before_readouts = {}, {}, None, None
        self.known, self.named = None, ()

    def crc(self, t, cache):
        """CRC32 of a tensor's bytes, through a numpy view of its memory (no copy), kept while the tensor lives."""
        entry = self.views.get(id(t))
        if entry is None or entry[0] is not t or entry[1] != (t.data_ptr(), t.dtype, t.shape):
            d = t.detach()
            if not d.is_contiguous() or d.device.type != "cpu":
                return zlib.crc32(d.cpu().contiguous().reshape(-1).view(torch.uint8).numpy())
            entry = (t, (t.data_ptr(), t.dtype, t.shape), d.reshape(-1).view(torch.uint8).numpy())
        cache[id(t)] = entry
        return zlib.crc32(entry[2])

    def digest(self, value, cache):
        return self.crc(value, cache) if torch.is_tensor(value) else zlib.crc32(repr(value).encode())

    def state_items(self, cache):
        leaves = {}
        _leaves(self.hub.state if self.hub.state is not None else {}, "state", leaves, self.hub.names,
                self.hub.m.__name__, copy=False)
        return tuple((path, self.digest(value, cache)) for path, value in leaves.items())

    def groups(self):
        return tuple(tuple(numeric_hparams(g)) for opt in self.hub.optimizers for g in opt.param_groups)

    def record_event(self, place):
        if not self.events or self.hub.model is None and place != "init_params":
            return
        cache = {}
        params = self.hub.params if self.hub.model is not None else list(self.hub.init_model.named_parameters())
        self.r["events"].append((self.hub.trial, self.hub.step, place, tuple(self.crc(p, cache) for _, p in params),
                                 zlib.crc32(repr(self.groups()).encode()), self.state_items(cache)))
        self.views = cache

    def initialized(self):
        if self.hub.init_model is not None:
            self.record_event("init_params")

    def trial_start(self, model, optimizers):
        self.record_event("make_optimizers")

    def step_forwarded(self, step):
        self.record_event("before_forward")

    def hparams_set(self, step):
        self.record_event("set_hparams")
        if self.steps:
            self.hparams = self.groups()

    def optimizer_stepped(self, opt, index, step):
        self.record_event(f"{optimizer_label(index, opt)}.step()")

    def restored(self, step, state):
        self.record_event("restore")

    def readouts_start(self, step):
        self.before_readouts = self.top_keys()

    def readouts_end(self, step):
        if self.before_readouts is not None:
            after = self.top_keys()
            self.r["readout_keys"] |= {k for k in set(after) | set(self.before_readouts)
                                       if after.get(k) != self.before_readouts.get(k)}
        self.record_event("readouts")

    def top_keys(self):
        """{top-level key of `state`: digest of everything under it}."""
        out, cache = {}, {}
        for path, crc in self.state_items(cache):
            key = path[len("state["):].split("]")[0]
            out[key] = zlib.crc32(f"{path}{crc}".encode(), out.get(key, 0))
        return out

    def step_end(self, step):
        self.record_event("after_step")
        if not self.steps:
            return
        tensors = [p for _, p in self.hub.params]  # then every optimizer state tensor, by parameter and key
        keys = []
        for i, opt in enumerate(self.hub.optimizers):
            for p, st in list(opt.state.items()):
                for key, value in (st.items() if isinstance(st, dict) else ()):
                    keys.append((i, id(p), key))
                    tensors.append(value)
        ids = (tuple(keys), tuple(map(id, tensors)))
        if ids != self.known:  # the paths are named only when the tensors change (an optimizer that makes new ones)
            self.known = ids
            names = [f"parameter {n}" for n, _ in self.hub.params] + [
                f"{optimizer_label(i, self.hub.optimizers[i])} state {key} of {self.hub.names.get(p, '?')}"
                for i, p, key in keys]
            self.named = tuple(names)
        cache = {}
        digests = [self.digest(t, cache) for t in tensors]
        state = self.state_items(cache)
        self.views = cache
        paths = self.named + tuple(path for path, _ in state)
        index = self.paths_index.setdefault(paths, len(self.r["trajectory_paths"]))
        if index == len(self.r["trajectory_paths"]):
            self.r["trajectory_paths"].append(paths)
        self.r["trajectory"].append((self.hub.trial, step, index, tuple(digests) + tuple(c for _, c in state),
                                     self.hparams))


def _differ(a, b):
    """The paths whose digests differ between two {path: digest}."""
    return [k for k in list(a) + [k for k in b if k not in a] if a.get(k) != b.get(k)]


def first_rank_difference(results):
    """(trial, step, place, what differs) at the first event after which a rank's digests differ from rank 0's, or
    None. Events are compared in order; a rank that recorded fewer events is compared up to its last."""
    if len(results) < 2:
        return None
    ref = results[0].get("events") or []
    for other in results[1:]:
        for a, b in zip(ref, other.get("events") or []):
            if a[:3] != b[:3]:
                return a[0], a[1], a[2], f"rank {other.get('rank')} ran another sequence ({b[2]} at step {b[1]})"
            what = []
            params = [i for i, (x, y) in enumerate(zip(a[3], b[3])) if x != y] + \
                     ([-1] if len(a[3]) != len(b[3]) else [])
            if params:
                what.append(f"parameters ({len(params)} tensors)")
            if a[4] != b[4]:
                what.append("the param groups' hyperparameters")
            state = _differ(dict(a[5]), dict(b[5]))
            if state:
                what.append("`state`: " + _clip(state, 3))
            if what:
                return a[0], a[1], a[2], "; ".join(what)
    return None


RANK_FIXES = {
    "init_params": "initialize from torch's RNG only (main() seeds it the same on every rank) and the same way on "
                   "every rank",
    "make_optimizers": "make the optimizers the same way on every rank (no rank-dependent hyperparameters)",
    "before_forward": "compute the same move on every rank: no rank-dependent values (dist.get_rank(), per-rank "
                      "random numbers, a rank's own batch) in before_forward",
    "set_hparams": "set the same hyperparameters on every rank",
    "after_step": "compute `state` and any weight change the same way on every rank (no rank-dependent values)",
    "readouts": "readouts must leave `state` the same on every rank",
    "restore": "restore every rank from the same checkpoint",
}


def rank_fix(place):
    if place.endswith(".step()"):
        return ("sum every gradient over ranks before the update (main() does it for an optimizer without `owner`); an "
                "optimizer with `owner` must sum its own and hand every rank what it updated (Muon: reduce-scatter, "
                "all-gather)")
    return RANK_FIXES.get(place, "compute everything the same way on every rank")


def readout_excluded(path, keys):
    return any(path == f"state[{k}]" or path.startswith((f"state[{k}][", f"state[{k}].")) for k in keys)


def first_parting(ref, twin):
    """Where the twin's trajectory first leaves the reference's, as text, or None. `state` under keys that readouts
    wrote (in either run) is not compared: it may hold val losses."""
    keys = set(ref.get("readout_keys") or ()) | set(twin.get("readout_keys") or ())
    a_steps, b_steps = ref.get("trajectory") or [], twin.get("trajectory") or []
    for a, b in zip(a_steps, b_steps):
        if a[:2] != b[:2]:
            return f"at trial {a[0]} step {a[1]} the twin was at trial {b[0]} step {b[1]}"
        if a[4] != b[4]:
            groups = [f"{k} {x:.4g} (perturbed: {y:.4g})" for ga, gb in zip(a[4] or (), b[4] or ())
                      for (k, x), (_, y) in zip(ga, gb) if x != y]
            return f"step {a[1]}, after set_hparams: the hyperparameters differ: " + _clip(groups or ["(their keys)"], 3)
        da = {p: c for p, c in zip(ref["trajectory_paths"][a[2]], a[3]) if not readout_excluded(p, keys)}
        db = {p: c for p, c in zip(twin["trajectory_paths"][b[2]], b[3]) if not readout_excluded(p, keys)}
        differ = _differ(da, db)
        if differ:
            return f"by the end of step {a[1]}: " + _clip(differ, 4)
    if len(a_steps) != len(b_steps):
        last = (a_steps or b_steps)[min(len(a_steps), len(b_steps)) - 1] if min(len(a_steps), len(b_steps)) else None
        return (f"the twin ran {len(b_steps)} steps, the run that went on {len(a_steps)}"
                + (f" (the same up to step {last[1]})" if last else "") + ": training stopped (or went on) on val")
    return None


def judge_val_steer(report, runs):
    """val_steer: the twin's trajectory equals the long run's bit for bit."""
    by = {run["label"]: run for run in runs}
    ref, twin = by.get("long"), by.get("twin")
    if not (ref and twin):
        report.set("val_steer", SKIP, "the twin run did not run" + (" (see run)" if ref else ""))
        return
    if not ref["completed"]:
        report.set("val_steer", SKIP, "the long run did not complete (see run)")
        return
    if not twin["completed"]:
        error = next((r.get("traceback") or r.get("error") for r in twin["results"] if r.get("error")), None)
        if twin.get("killed") == "time":  # the long run did not stall: the perturbed val losses made it
            report.set("val_steer", FAIL, "the twin run (val losses perturbed) " + stall_text(twin).split("\n")[0]
                       + ", where the long run did not")
        elif twin.get("killed"):
            report.set("val_steer", SKIP, "the twin run was stopped (see run)")
        else:
            report.set("val_steer", FAIL, "the twin run (val losses perturbed) failed where the long run did not: "
                       + (error or "no result").strip().splitlines()[-1])
        return
    parted = first_parting(ref["results"][0], twin["results"][0])
    steps = len(ref["results"][0].get("trajectory") or [])
    if parted:
        report.set("val_steer", FAIL, f"with every val loss and readout multiplied by 0.5 and 2 in turn, training "
                   f"parted from the run that went on: {parted}")
    else:
        keys = sorted(set(ref["results"][0].get("readout_keys") or ()))
        report.set("val_steer", PASS, f"parameters, optimizer state and `state` bitwise the same at the end of all "
                   f"{steps} steps with every val loss and readout perturbed"
                   + (f" (`state` keys readouts writes, not compared: {_clip(keys)})" if keys else ""))
