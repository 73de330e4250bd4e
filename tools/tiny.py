"""Run a train_gpt_simple.py (ours or a user's edited copy) on the CPU: a tiny model on synthetic
shards in a temporary directory, in W gloo processes, through the script's own main().

Only the Setup section's sizes are replaced (model width and depth, batch, sequence length,
val tokens, data paths, device); the init, optimizers, schedule and training loop are the
script's own. Used by the tests and by tools.preflight.

The synthetic stream of `tiny_data` is learnable: a first-order Markov chain over the tiny
vocabulary in which every token has MARKOV_SUCCESSORS successors with the probabilities
MARKOV_PROBS (one of them the next token id, so the chain visits every token). A model that
learns it reaches the entropy floor `markov_entropy()` = 1.11 nats per token from ln 128 = 4.85.
"""
import importlib.util
import os
import socket
import sys
import tempfile
import time
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
    sys.modules[module_name] = module  # torch.compile (dynamo) looks the module up by name
    try:
        spec.loader.exec_module(module)
    except (Exception, SystemExit) as e:  # SystemExit: e.g. argparse rejecting the caller's command line
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


MARKOV_PROBS = (0.55, 0.25, 0.15, 0.05)  # each token's successors, most likely first


def markov_entropy(probs=MARKOV_PROBS):
    """The entropy floor of the chain in nats per token: every row has the same probabilities, so the
    stationary distribution does not matter."""
    return float(-sum(p * np.log(p) for p in probs))


def markov_successors(vocab_size, seed=0, probs=MARKOV_PROBS):
    """(vocab_size, len(probs)) array: row t lists the successors of token t, in the order of `probs`.
    One of them is (t + 1) % vocab_size, so every token is reachable from every other (and a token may be
    its own successor, so the chain is aperiodic); the others are distinct random tokens."""
    rng = np.random.default_rng(seed)
    table = np.empty((vocab_size, len(probs)), dtype=np.int64)
    for t in range(vocab_size):
        others = rng.choice(np.delete(np.arange(vocab_size), (t + 1) % vocab_size), len(probs) - 1, replace=False)
        row = np.concatenate([[(t + 1) % vocab_size], others])
        rng.shuffle(row)
        table[t] = row
    return table


def markov_tokens(successors, count, rng, start=0, probs=MARKOV_PROBS):
    """`count` tokens of the chain from token `start`."""
    choices = rng.choice(len(probs), size=count, p=np.asarray(probs) / sum(probs)).tolist()
    table, token, out = successors.tolist(), start, [0] * count
    for i, c in enumerate(choices):
        out[i] = token
        token = table[token][c]
    return np.asarray(out, dtype=np.int64)


def tiny_data(directory, train_steps, config=TINY, seed=0):
    """Markov-chain shards (see the module's doc) for `train_steps` steps of `config` (a few steps to spare),
    train and val from the same chain; returns the two patterns (train_pattern, val_pattern)."""
    per_shard = 40  # steps per train shard, so that longer runs switch shards
    shards = -(-(train_steps + 5) // per_shard)
    tokens_per_shard = per_shard * config["batch_size"] + config["batch_size"] // 2
    successors = markov_successors(config["vocab_size"], seed)
    rng = np.random.default_rng(seed + 1)
    os.makedirs(directory, exist_ok=True)
    for i in range(1, shards + 1):
        write_shard(os.path.join(directory, f"fineweb_train_{i:06d}.bin"),
                    markov_tokens(successors, tokens_per_shard, rng, int(rng.integers(config["vocab_size"]))))
    write_shard(os.path.join(directory, "fineweb_val_000000.bin"),
                markov_tokens(successors, config["val_tokens"] + config["batch_size"], rng,
                              int(rng.integers(config["vocab_size"]))))
    return os.path.join(directory, "fineweb_train_*.bin"), os.path.join(directory, "fineweb_val_*.bin")


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


def run(script, world_size, overrides, num_trials=1, instrument=None, env=None, start_method="fork", timeout=None):
    """Run `script`'s main() in `world_size` gloo processes with module attributes `overrides`.

    `instrument(module, result)` runs in every process before main(); whatever it puts into the
    dict `result` (picklable) comes back. Returns the list of per-rank result dicts; each has
    "error" (None, or the exception and traceback).

    One rank without `timeout` runs in this process. Otherwise the ranks are processes: "fork"
    (the default) starts them in well under a second from a parent that has already imported
    torch, and they inherit everything the parent has (instruments need not be picklable);
    "spawn" re-imports everything (seconds per process) and pickles `instrument`. With `timeout`
    (seconds), processes still running then are killed, and a rank that died or was killed comes
    back as a result whose "error" says so, instead of raising.
    """
    saved = {k: os.environ.get(k) for k in (env or {})}
    os.environ.update(env or {})
    try:
        with tempfile.TemporaryDirectory() as out_dir:
            args = (world_size, free_port(), os.path.abspath(script), overrides, num_trials, instrument, out_dir)
            if world_size == 1 and timeout is None:  # in this process: faster, and leaves its environment as it was
                threads, env_before = torch.get_num_threads(), dict(os.environ)
                try:
                    _worker(0, *args)
                finally:
                    torch.set_num_threads(threads)
                    os.environ.clear()
                    os.environ.update(env_before)
            elif timeout is None:
                mp.start_processes(_worker, args=args, nprocs=world_size, start_method=start_method)
            else:
                return _run_with_timeout(args, world_size, start_method, timeout, out_dir)
            return [torch.load(os.path.join(out_dir, f"rank{r}.pt"), weights_only=False) for r in range(world_size)]
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def _run_with_timeout(args, world_size, start_method, timeout, out_dir):
    """Processes of run() under a deadline; ranks that died or ran past it get an "error" result."""
    context = mp.start_processes(_worker, args=args, nprocs=world_size, start_method=start_method, join=False)
    deadline, why = time.monotonic() + timeout, None
    try:
        while not context.join(max(0.0, min(1.0, deadline - time.monotonic()))):
            if time.monotonic() >= deadline:
                why = f"did not finish within {timeout:.0f} s (killed); a hang, e.g. a rank waiting for another"
                break
    except mp.ProcessExitedException as e:  # died without reporting (a signal, os._exit); the others are stopped
        why = f"a process died: {e}"
    finally:
        for process in context.processes:
            if process.is_alive():
                process.kill()
            process.join()
    results = []
    for r in range(world_size):
        path = os.path.join(out_dir, f"rank{r}.pt")
        results.append(torch.load(path, weights_only=False) if os.path.exists(path)
                       else dict(rank=r, error=f"rank {r} {why or 'exited without a result'}"))
    return results


def capture_model(module, result):
    """An `instrument` that returns the final parameters of each trial's model as result["params"].

    The script re-initializes one model object for every trial, so a trial's parameters are
    copied when the next trial calls init_params (or make_optimizers), and when main() returns.
    """
    init_params, make_optimizers, main = module.init_params, module.make_optimizers, module.main
    params, current = [], []

    def close_trial():
        if current:
            params.append({k: v.detach().clone() for k, v in current.pop().named_parameters()})

    def wrapped_init(*args, **kwargs):
        close_trial()
        return init_params(*args, **kwargs)

    def wrapped(model):
        close_trial()
        current.append(model)
        return make_optimizers(model)

    def main_and_collect(*args, **kwargs):
        try:
            return main(*args, **kwargs)
        finally:
            close_trial()
            result["params"] = params
    module.init_params, module.make_optimizers, module.main = wrapped_init, wrapped, main_and_collect


if __name__ == "__main__":
    sys.exit("tools.tiny is a library; see tools.preflight")
