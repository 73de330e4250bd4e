"""Instruments for tools.tiny.run used by test_checkpoint.py (module level, so that ranks started with
"spawn" can unpickle them too; bind arguments with functools.partial).

An instrument is called as instrument(module, result) in every rank before main(); `result` (a
picklable dict) comes back to the test.
"""
import glob
import os
import shutil
import signal

import torch


def chain(instruments, module, result):
    """Apply several instruments in order: partial(chain, [a, b])."""
    for instrument in instruments:
        instrument(module, result)


def _snapshot(model):
    return {k: v.detach().clone() for k, v in model.named_parameters()}


def _optimizer_states(model, optimizers):
    """[{param name: {key: a copy of the value}} per optimizer]: this rank's optimizer state (its shard)."""
    names = {p: n for n, p in model.named_parameters()}
    return [{names[p]: {k: v.clone() if torch.is_tensor(v) else v for k, v in st.items()} for p, st in opt.state.items()}
            for opt in optimizers]


def capture_trials(module, result):
    """result["params"], result["opt_states"]: the parameters and this rank's optimizer states at the end of each
    trial this process ran (resumed ones included).

    The script reuses one model for all trials, so a trial's end is taken when the next trial
    re-initializes the model (init_params), and when main() returns or raises.
    """
    result["params"], result["opt_states"] = [], []
    seen = {}
    init_params, make_optimizers, main = module.init_params, module.make_optimizers, module.main

    def close_trial():
        if "model" in seen:  # the previous trial's model, trained
            result["params"].append(_snapshot(seen["model"]))
            result["opt_states"].append(_optimizer_states(seen["model"], seen["optimizers"]))

    def wrapped_init(model):
        close_trial()
        seen.clear()
        return init_params(model)

    def wrapped_make(model):
        seen["model"], seen["optimizers"] = model, make_optimizers(model)
        return seen["optimizers"]

    def wrapped_main(*args, **kwargs):
        try:
            return main(*args, **kwargs)
        finally:
            close_trial()
    module.init_params, module.make_optimizers, module.main = wrapped_init, wrapped_make, wrapped_main


def _on_training_forward(module, count, action):
    """Call action() after the count-th training forward (grad enabled; val forwards do not count)."""
    forward = module.GPT.forward
    n = [0]

    def wrapped(self, *args, **kwargs):
        out = forward(self, *args, **kwargs)
        if torch.is_grad_enabled():
            n[0] += 1
            if n[0] == count:
                action()
        return out
    module.GPT.forward = wrapped


def signal_at(count, ranks, module, result, signum=signal.SIGTERM):
    """Send this process `signum` during its count-th training forward, on the ranks in `ranks` only."""
    if int(os.environ.get("RANK", 0)) in ranks:
        _on_training_forward(module, count, lambda: os.kill(os.getpid(), signum))


def copy_checkpoint_at(count, dest, module, result):
    """On rank 0, at its count-th training forward, copy the (periodic) checkpoint file to `dest`."""
    if int(os.environ.get("RANK", 0)) != 0:
        return

    def copy():
        files = glob.glob(os.path.join(module.checkpoint_dir, "*.pt"))
        assert len(files) == 1, files
        shutil.copyfile(files[0], dest)
        result["copied"] = files[0]
    _on_training_forward(module, count, copy)


class Accepted(Exception):
    """Raised by accept_only: load_checkpoint returned, so the checkpoint was accepted."""


def accept_only(module, result):
    """Stop main() right after load_checkpoint accepts a checkpoint (before it touches the log or trains)."""
    load_checkpoint = module.load_checkpoint

    def wrapped(*args, **kwargs):
        ckpt = load_checkpoint(*args, **kwargs)
        raise Accepted(f"checkpoint accepted: step {ckpt.get('step')}, trial {ckpt.get('trial')}")
    module.load_checkpoint = wrapped
