"""A trial's state as a "fingerprint": every tensor and number of it by a readable path (parameters, optimizer
state, param groups and attributes, the extension points' `state`, module globals, RNG), and the small helpers the
probes and the verdicts share to read hyperparameters and compare tensors bit for bit."""
import inspect

import torch

from tools import tiny

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
    elif isinstance(obj, torch.Generator):
        out[f"{path} (a torch.Generator's state)"] = obj.get_state()
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
        if key.startswith("__") or key in HARNESS_GLOBALS or inspect.ismodule(value) or (
                callable(value) and not isinstance(value, torch.Generator)):
            continue
        _leaves(value, f"module global {key}", out, names, mod)
    out["RNG state"] = torch.get_rng_state()
    return out


def _bytes(t):
    """A tensor's raw bytes (bitwise comparison: nan equals the same nan)."""
    t = t.detach().reshape(-1)
    return t.view(torch.uint8) if t.is_floating_point() and t.numel() else t


def same_batch(a, b):
    return (len(a) == len(b) == 2 and all(x.shape == y.shape and torch.equal(x.cpu().long(), y.cpu().long())
                                          for x, y in zip(a, b)))
