"""Run a train_gpt_simple.py (ours or a user's edited copy) on the CPU: a tiny model on synthetic
shards in a temporary directory, in W gloo processes, through the script's own main().

Only the Setup section's sizes are replaced (model width and depth, batch, sequence length,
val tokens, data paths, device); the init, optimizers, schedule and training loop are the
script's own. Used by the tests and by tools.preflight.
"""
import importlib.util
import os
import socket
import sys
import tempfile
import traceback

import numpy as np
import torch
import torch.multiprocessing as mp

from data.shards import write_shard

REQUIRED = ("GPT", "Muon", "newton_schulz", "load_data_shard", "distributed_data_generator", "main")

# The tiny configuration: 8 sequences of 16 tokens per step, 2 layers of width 16 (one head).
TINY = dict(vocab_size=128, num_layers=2, model_dim=16, batch_size=8 * 16, seq_len=16, val_tokens=4 * 8 * 16,
            micro_batch_seqs=1, device_type="cpu")


class ScriptError(Exception):
    """The script cannot be imported or lacks the names the harness relies on."""


def load_script(path, module_name="user_train_gpt"):
    """Import a training script from its path, without running it."""
    path = os.path.abspath(path)
    if not os.path.isfile(path):
        raise ScriptError(f"{path}: no such file")
    spec = importlib.util.spec_from_file_location(module_name, path)
    module = importlib.util.module_from_spec(spec)
    try:
        spec.loader.exec_module(module)
    except Exception as e:
        raise ScriptError(f"{path}: importing it failed:\n{traceback.format_exc()}") from e
    missing = [name for name in REQUIRED if not hasattr(module, name)]
    if missing:
        raise ScriptError(f"{path}: lacks {', '.join(missing)}; the harness needs the names of the repo's "
                          "train_gpt_simple.py (start from a copy of it: python -m tools.new)")
    return module


def make_shards(directory, vocab_size, train_shards, tokens_per_shard, val_tokens, seed=0):
    """Write random-token train shards and one val shard; return (train_pattern, val_pattern)."""
    rng = np.random.default_rng(seed)
    os.makedirs(directory, exist_ok=True)
    for i in range(1, train_shards + 1):
        write_shard(os.path.join(directory, f"fineweb_train_{i:06d}.bin"), rng.integers(0, vocab_size, tokens_per_shard))
    write_shard(os.path.join(directory, "fineweb_val_000000.bin"), rng.integers(0, vocab_size, val_tokens))
    return os.path.join(directory, "fineweb_train_*.bin"), os.path.join(directory, "fineweb_val_*.bin")


def tiny_data(directory, train_steps, config=TINY, seed=0):
    """Shards for `train_steps` steps of `config` (a few steps to spare); returns the two patterns."""
    per_shard = 40  # steps per train shard, so that longer runs switch shards
    shards = -(-(train_steps + 5) // per_shard)
    return make_shards(directory, config["vocab_size"], shards, per_shard * config["batch_size"] + config["batch_size"] // 2,
                       config["val_tokens"] + config["batch_size"], seed)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _worker(rank, world_size, port, script, overrides, num_trials, instrument, out_dir):
    os.environ.update(RANK=str(rank), WORLD_SIZE=str(world_size), LOCAL_RANK=str(rank),
                      MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    torch.set_num_threads(1)
    result = dict(rank=rank, error=None)
    try:
        module = load_script(script)
        for key, value in overrides.items():
            setattr(module, key, value)
        if instrument is not None:
            instrument(module, result)
        module.main(num_trials)
    except BaseException as e:  # SystemExit included: report it, do not hang the other ranks' parent
        result["error"] = f"{type(e).__name__}: {e}\n{traceback.format_exc()}"
    torch.save(result, os.path.join(out_dir, f"rank{rank}.pt"))


def run(script, world_size, overrides, num_trials=1, instrument=None, env=None):
    """Run `script`'s main() in `world_size` gloo processes with module attributes `overrides`.

    `instrument(module, result)` runs in every process before main(); whatever it puts into the
    dict `result` (picklable) comes back. Returns the list of per-rank result dicts; each has
    "error" (None, or the exception and traceback).
    """
    saved = {k: os.environ.get(k) for k in (env or {})}
    os.environ.update(env or {})
    try:
        with tempfile.TemporaryDirectory() as out_dir:
            args = (world_size, free_port(), os.path.abspath(script), overrides, num_trials, instrument, out_dir)
            if world_size == 1:  # in this process: faster, and leaves its environment as it was
                threads, env_before = torch.get_num_threads(), dict(os.environ)
                try:
                    _worker(0, *args)
                finally:
                    torch.set_num_threads(threads)
                    os.environ.clear()
                    os.environ.update(env_before)
            else:
                mp.start_processes(_worker, args=args, nprocs=world_size, start_method="spawn")
            return [torch.load(os.path.join(out_dir, f"rank{r}.pt"), weights_only=False) for r in range(world_size)]
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def capture_model(module, result):
    """An `instrument` that returns the final parameters of each trial's model as result["params"]."""
    make_optimizers = module.make_optimizers

    def wrapped(model):
        result.setdefault("models", []).append(model)
        return make_optimizers(model)
    module.make_optimizers = wrapped
    main = module.main

    def main_and_collect(*args, **kwargs):
        try:
            return main(*args, **kwargs)
        finally:
            result["params"] = [{k: v.detach().clone() for k, v in m.named_parameters()} for m in result.pop("models", [])]
    module.main = main_and_collect


if __name__ == "__main__":
    sys.exit("tools.tiny is a library; see tools.preflight")
