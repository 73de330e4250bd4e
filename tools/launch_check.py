"""Check a launch of train_gpt_simple.py (or an edited copy) before it starts, and explain a fault after it:

    python -m tools.launch_check [SCRIPT] [--json]

The script itself stops only what must stop a GPU launch (no CUDA, train_steps out of bounds, a world size
that does not divide the batch, missing or damaged train shards, a val shard too short, a bad checkpoint to
resume). This tool runs those checks (the script's own check_launch()) and the ones that explain a fault in
more words: the Setup values' types, SEED, RANK and WORLD_SIZE, set_hparams's arguments, every shard's
header and size, the val shard, the log and checkpoint directories, a torch known to fail. It reads the
environment the launch would see (SEED, RANK, WORLD_SIZE) and the script's data paths relative to the
current directory, as the launch does. Exit status 1 if any check fails, 2 if the script cannot be loaded.
tools.preflight runs the checks that need no data (script_problems).
"""
import argparse
import errno
import glob
import inspect
import json
import os
import sys
import tempfile

from tools import tiny


def shard_problem(path):
    """What is wrong with the token shard at `path` and how to fix it, or None (a whole shard)."""
    kind, _, index = os.path.basename(path).rsplit(".", 1)[0].rpartition("_")  # fineweb_train_000007: chunks 1..7
    chunks = int(index) if kind.endswith("train") and index.isascii() and index.isdigit() else 1
    fix = f"re-download it with: python data/cached_fineweb10B.py {min(max(chunks, 1), 103)} (it replaces only bad files)"
    try:
        with open(path, "rb") as f:
            header, size = f.read(1024), os.fstat(f.fileno()).st_size
    except OSError as e:  # a directory, a dangling link, no permission
        return f"{path}: cannot read it ({e.strerror or e}); {fix}"
    magic, version, count = (int.from_bytes(header[i:i + 4], "little", signed=True) for i in (0, 4, 8))
    if len(header) < 1024 or magic != 20240520 or version != 1:
        return (f"{path}: not a token shard of this benchmark (magic {magic}, version {version}, header "
                f"{len(header)} bytes; expected 20240520, 1, 1024); {fix}")
    if size != 1024 + 2 * count:
        return (f"{path}: truncated or damaged: {size} bytes, but its header promises {count} tokens = "
                f"{1024 + 2 * count} bytes; {fix}")
    return None


def shard_token_count(path):
    """The token count of a whole shard; ValueError with shard_problem's explanation otherwise."""
    problem = shard_problem(path)
    if problem:
        raise ValueError(problem)
    with open(path, "rb") as f:
        return int.from_bytes(f.read(12)[8:], "little", signed=True)


def value_problems(module):
    """The Setup and Init values the loop reads, of the wrong type or sign."""
    out = []
    for name, ok, want in (
            ("train_steps", lambda v: type(v) is int and v >= 1, "a whole number >= 1"),
            ("micro_batch_seqs", lambda v: v is None or type(v) is int and v >= 1, "None or a whole number >= 1"),
            ("checkpoint_every", lambda v: v is None or type(v) in (int, float) and v >= 0, "None or seconds >= 0")):
        value = getattr(module, name, None)
        if not ok(value):
            out.append(f"{name} = {value!r}: must be {want}")
    return out


def signature_problems(module):
    try:
        inspect.signature(module.set_hparams).bind(0, [], {})
    except TypeError:
        return ["set_hparams must take (step, optimizers, state): the trial's state is its third argument now; "
                "write def set_hparams(step, optimizers, state)"]
    return []


def script_problems(module):
    """The problems found in the script's text alone (no data, no environment): tools.preflight runs these."""
    return value_problems(module) + signature_problems(module)


def env_problems(env=None):
    """SEED, RANK and WORLD_SIZE as a launch would read them."""
    env = os.environ if env is None else env
    out = []
    seed = env.get("SEED")
    if seed is not None and not (seed.isascii() and seed.isdigit() and int(seed) < 2 ** 63):
        out.append(f"SEED={seed!r}: must be a whole number from 0 to 2**63 - 1, such as the seed a log's "
                   "'trial i/n seed S' line names")
    try:
        rank, world_size = int(env.get("RANK", 0)), int(env.get("WORLD_SIZE", 1))
    except ValueError:
        return out + [f"RANK and WORLD_SIZE must be whole numbers (torchrun sets them); got RANK={env.get('RANK')!r} "
                      f"WORLD_SIZE={env.get('WORLD_SIZE')!r}"]
    if world_size < 1 or 8 % world_size or not 0 <= rank < world_size:
        out.append(f"world size {world_size} does not divide 8 (or rank {rank} is not below it): launch with "
                   "torchrun --nproc_per_node 1, 2, 4 or 8")
    return out


def data_problems(module):
    """Every shard's header and size, the val set (the one shard, long enough), and the train shards' steps."""
    out = []
    train_paths, val_paths = sorted(glob.glob(module.train_files)), sorted(glob.glob(module.val_files))
    if not train_paths or not val_paths:
        return [f"no shards at {module.train_files if not train_paths else module.val_files} (run from the repo "
                "root); download them with: python data/cached_fineweb10B.py 20"]
    if [os.path.basename(p) for p in val_paths] != ["fineweb_val_000000.bin"]:
        out.append(f"{module.val_files} matches {', '.join(val_paths)}: the val set is the one shard "
                   "fineweb_val_000000.bin; python data/cached_fineweb10B.py --verify says what to repair")
    out += [p for p in map(shard_problem, train_paths + val_paths[:1]) if p]
    if not out:
        val_have, val_tokens = shard_token_count(val_paths[0]), module.val_tokens
        if val_have < val_tokens + 2:
            out.append(f"{val_paths[0]}: {val_have} tokens, fewer than val_tokens + 2 = {val_tokens + 2}")
    return out


def directory_problems(module):
    """The log and checkpoint directories must be writable: found now, not when a stop signal asks for a
    checkpoint (the run would go on unprotected)."""
    out = []
    for directory in dict.fromkeys(os.path.abspath(os.path.expanduser(d)) for d in (module.log_dir,
                                                                                     module.checkpoint_dir)):
        probe = directory
        while not os.path.lexists(probe):  # the nearest part that exists: nothing is created here
            probe = os.path.dirname(probe)
        try:
            if not os.path.isdir(probe):
                raise NotADirectoryError(errno.ENOTDIR, "Not a directory")
            tempfile.TemporaryFile(dir=probe).close()
        except OSError as e:
            out.append(f"cannot write to {directory} ({e.strerror or e}): the run's log and checkpoints go there; "
                       "make it writable or set log_dir / checkpoint_dir in the Setup section")
    return out


def torch_problems(module):
    import torch
    if module.device_type == "cuda" and torch.cuda.is_available() and torch.__version__.startswith("2.10") \
            and torch.cuda.get_device_capability() == (8, 0):
        return ["torch 2.10 with torch.compile gives NaN losses on A100 (public modded-nanogpt issue #268): "
                "install torch 2.11 or newer"]
    return []


def launch_problems(module):
    """What the script's own check_launch() refuses (its one line), as a list."""
    try:
        module.check_launch()
    except SystemExit as e:
        return [str(e.code)]
    return []


def micro_batch_note(module):
    """How the launch would split a rank's sequences (the header line's micro_batch_seqs), on W = 1..8."""
    if value_problems(module):
        return []
    seqs = module.batch_size // module.seq_len
    notes = []
    for world_size in (1, 2, 4, 8):
        per_rank = seqs // world_size
        m = module.micro_batch_seqs
        if m is not None and m < per_rank and per_rank % m:
            notes.append(f"on {world_size} GPU(s): micro_batch_seqs = {m} does not divide the {per_rank} sequences "
                         "of a rank")
    return notes


CHECKS = [("script", "the script's own check_launch()", launch_problems),
          ("values", "train_steps, micro_batch_seqs, checkpoint_every", value_problems),
          ("set_hparams", "set_hparams(step, optimizers, state)", signature_problems),
          ("environment", "SEED, RANK, WORLD_SIZE", lambda module: env_problems()),
          ("data", "every shard whole, the one val shard, long enough", data_problems),
          ("directories", "log_dir and checkpoint_dir writable", directory_problems),
          ("torch", "no torch known to fail on this GPU", torch_problems),
          ("micro_batch", "micro_batch_seqs divides a rank's sequences on 1, 2, 4, 8 GPUs", micro_batch_note)]


def run_checks(module):
    """[dict(check, what, ok, problems)] for every check of CHECKS."""
    out = []
    for name, what, fn in CHECKS:
        try:
            problems = fn(module)
        except Exception as e:  # noqa: BLE001 - a check that cannot run is a failed check, with its reason
            problems = [f"the check could not run: {type(e).__name__}: {e}"]
        out.append(dict(check=name, what=what, ok=not problems, problems=problems))
    return out


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m tools.launch_check", description=__doc__.split("\n\n")[0])
    parser.add_argument("script", nargs="?", default="train_gpt_simple.py")
    parser.add_argument("--json", action="store_true", help="print the checks as JSON")
    args = parser.parse_args(argv)
    try:
        module = tiny.load_script(args.script, "launch_check_script")
    except tiny.ScriptError as e:
        print(f"error: {str(e).splitlines()[0]}", file=sys.stderr)
        return 2
    rows = run_checks(module)
    if args.json:
        print(json.dumps(dict(script=args.script, ok=all(r["ok"] for r in rows), checks=rows), indent=1))
    else:
        width = max(len(r["check"]) for r in rows)
        for r in rows:
            print(f"{r['check']:<{width}}  {'PASS' if r['ok'] else 'FAIL'}  {r['what']}")
            for p in r["problems"]:
                print(f"{'':<{width}}        {p}")
        failed = [r["check"] for r in rows if not r["ok"]]
        print(f"{len(rows) - len(failed)} of {len(rows)} checks pass" + (f"; failing: {', '.join(failed)}"
                                                                        if failed else ""))
    return 0 if all(r["ok"] for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
