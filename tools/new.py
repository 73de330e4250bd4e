"""Start a new approach: artifacts/<approach>_<agent_id>/ with a copy of train_gpt_simple.py.

    python -m tools.new APPROACH AGENT_ID [--root .]

Copies the repo root's train_gpt_simple.py and writes a README.md template to fill in. Names
are letters, digits, '-' and '_' (at most 64 characters). An existing directory is never
overwritten.

Exit status: 0 created, 2 bad input: the directory exists, a bad name, or no train_gpt_simple.py.
"""
import argparse
import os
import re
import shutil
import sys

NAME_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{0,63}")

README = """# {approach} ({agent_id})

## What changed

Describe the change against the repo's train_gpt_simple.py (optimizer, schedule, init) and why.
Only the optimizer, its hyperparameters and schedules, and the initialization may change
(RULES.md 2.1, 2.2): same data, batch of 524,288 tokens, architecture, one forward-backward per step.

## Hyperparameters

| name | value | baseline |
|---|---|---|
| train_steps | | 3250 |
| | | |

## How to run

From the repo root (the script reads data/fineweb10B/ and writes logs/ relative to the current
directory; get the data with `python data/cached_fineweb10B.py 20`):

    python -m tools.preflight artifacts/{dirname}/train_gpt_simple.py   # CPU check first
    torchrun --standalone --nproc_per_node=8 artifacts/{dirname}/train_gpt_simple.py 1

(the same command as `torchrun --standalone --nproc_per_node=8 train_gpt_simple.py 1` for the
baseline). The last argument is the number of trials; 1, 2 or 4 GPUs work too (same math).
Copy the logs (logs/<uuid>.txt) of every trial launched into this directory, then:

    python -m tools.stats artifacts/{dirname}/*.txt
    python -m tools.plot artifacts/{dirname}/*.txt -o artifacts/{dirname}/curve.png
    python -m tools.results artifacts/{dirname}/*.txt --agent-id {agent_id} --experiment "..." --optimizer ... \\
        --hparam lr=... -o artifacts/{dirname}/results.json
    python -m tools.results --check artifacts/{dirname}
    python -m tools.leaderboard

## Results

steps_to_3_28, mean and std val loss at it, number of runs, bar: from results.json (written by
`python -m tools.results`, never by hand). Every run launched counts.
"""


def main(argv=None):
    ap = argparse.ArgumentParser(prog="python -m tools.new", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("approach", help="a short name of the idea, e.g. muon-wd-warmup")
    ap.add_argument("agent_id", help="who runs it, e.g. agent-01")
    ap.add_argument("--root", default=".", help="the repository root (default: .)")
    args = ap.parse_args(argv)
    for what, name in (("APPROACH", args.approach), ("AGENT_ID", args.agent_id)):
        if not NAME_RE.fullmatch(name):
            print(f"error: {what} {name!r}: use letters, digits, '-' and '_' only (starting with a letter or digit, "
                  "at most 64 characters)", file=sys.stderr)
            return 2
    source = os.path.join(args.root, "train_gpt_simple.py")
    if not os.path.isfile(source):
        print(f"error: {source} does not exist: run from the repo root or pass --root", file=sys.stderr)
        return 2
    dirname = f"{args.approach}_{args.agent_id}"
    target = os.path.join(args.root, "artifacts", dirname)
    try:
        os.makedirs(os.path.join(args.root, "artifacts"), exist_ok=True)
        os.mkdir(target)
    except FileExistsError:
        print(f"error: {target} already exists; not overwriting it (pick another approach name)", file=sys.stderr)
        return 2
    except OSError as e:
        print(f"error: {target}: {e.strerror or e}", file=sys.stderr)
        return 2
    shutil.copyfile(source, os.path.join(target, "train_gpt_simple.py"))
    with open(os.path.join(target, "README.md"), "w") as f:
        f.write(README.format(approach=args.approach, agent_id=args.agent_id, dirname=dirname))
    print(f"created {target}/ with train_gpt_simple.py and README.md\n"
          f"next: edit {target}/train_gpt_simple.py (the Optimizer and Init & Optim Hyperparams sections), then "
          f"python -m tools.preflight {target}/train_gpt_simple.py")
    return 0


if __name__ == "__main__":
    sys.exit(main())
