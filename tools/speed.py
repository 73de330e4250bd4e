"""Measure the speed of a training script's own step on synthetic data.

    torchrun --standalone --nproc_per_node=8 -m tools.speed [train_gpt_simple.py] [--steps 40]
    python -m tools.speed --cpu            # the tiny CPU configuration: checks the tool, not speed

Runs the script's main() (its model, optimizers and training loop, official sizes) for
warmup + steps steps on random tokens, with a synchronized timestamp around every optimizer
step, and reports after warm-up: ms/step, tokens/s, MFU, peak memory, the time to the end of the
first step (compilation), the optimizer steps alone (with their own collectives) and one val pass.
Timing lives here, never in the tests.
"""
import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch

from tools import tiny

FLOP_PER_STEP = 4.48e14  # SPEC 8: 0.855 GFLOP per token x 524,288 tokens
PEAK_FLOPS = {"H100": 989e12, "H200": 989e12, "A100": 312e12}  # dense bf16 per GPU
BASELINE = Path(__file__).resolve().parents[1] / "train_gpt_simple.py"


def instrument(module, result):
    """Time every optimizer step (synchronized before and after) and every val pass."""
    cuda = module.device_type == "cuda"
    sync = torch.cuda.synchronize if cuda else (lambda: None)
    result.update(t_start=time.perf_counter(), steps=[], vals=[])
    make_optimizers, model_forward = module.make_optimizers, module.GPT.forward

    def timed_make_optimizers(model):
        optimizers = make_optimizers(model)
        first, last = optimizers[0], optimizers[-1]
        for opt in optimizers:
            step = opt.step

            def timed_step(*args, _step=step, _opt=opt, **kwargs):
                if _opt is first:
                    sync()
                    result["steps"].append([time.perf_counter(), None])
                out = _step(*args, **kwargs)
                if _opt is last:
                    sync()
                    result["steps"][-1][1] = time.perf_counter()
                return out
            opt.step = timed_step
        return optimizers

    def forward(self, inputs, targets):
        if torch.is_grad_enabled():
            return model_forward(self, inputs, targets)
        if not result["vals"] or result["vals"][-1][2] != len(result["steps"]):  # the first microbatch of a val pass
            sync()
            result["vals"].append([time.perf_counter(), None, len(result["steps"])])
        loss = model_forward(self, inputs, targets)
        sync()
        result["vals"][-1][1] = time.perf_counter()
        return loss

    module.make_optimizers, module.GPT.forward = timed_make_optimizers, forward
    main = module.main

    def timed_main(*args):
        try:
            return main(*args)
        finally:
            if cuda:
                result["peak_mem_gib"] = torch.cuda.max_memory_allocated() / 2 ** 30
                result["device"] = torch.cuda.get_device_name()
    module.main = timed_main


def summarize(result, warmup, world_size, tokens_per_step):
    steps = result["steps"]
    ends = [s[1] for s in steps]
    measured = [b - a for a, b in zip(ends[warmup:], ends[warmup + 1:])]
    if not measured:
        raise SystemExit(f"only {len(steps)} steps ran; need more than warmup + 1 = {warmup + 1}")
    ms = 1000 * statistics.median(measured)
    opt_ms = 1000 * statistics.median(b - a for a, b in steps[warmup:])
    device = result.get("device", "cpu")
    peak = next((v for k, v in PEAK_FLOPS.items() if k in device), None)
    return dict(device=device, world_size=world_size, steps_measured=len(measured), ms_per_step=round(ms, 2),
                tokens_per_s=round(tokens_per_step / (ms / 1000)),
                mfu=round(FLOP_PER_STEP / (ms / 1000) / (world_size * peak), 4) if peak else None,
                optimizer_ms=round(opt_ms, 2), first_step_s=round(ends[0] - result["t_start"], 1),
                val_pass_s=round(result["vals"][-1][1] - result["vals"][-1][0], 3) if result["vals"] else None,
                peak_mem_gib=round(result["peak_mem_gib"], 2) if "peak_mem_gib" in result else None)


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m tools.speed", description=__doc__.split("\n\n")[0])
    parser.add_argument("script", nargs="?", default=str(BASELINE), help="training script (default: the repo's)")
    parser.add_argument("--steps", type=int, default=40, help="measured steps after warm-up (default 40)")
    parser.add_argument("--warmup", type=int, default=10, help="steps before measuring (default 10)")
    parser.add_argument("--micro", type=int, default=None, help="micro_batch_seqs to use (default: the script's)")
    parser.add_argument("--cpu", action="store_true", help="tiny model on CPU, to check the tool itself")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    args = parser.parse_args(argv)
    if not args.cpu and not torch.cuda.is_available():
        parser.error("no CUDA GPU: tools.speed measures GPU speed (use --cpu to check the tool itself)")
    rank, world_size = int(os.environ.get("RANK", 0)), int(os.environ.get("WORLD_SIZE", 1))
    train_steps = args.warmup + args.steps + 1
    try:
        module = tiny.load_script(args.script)
    except tiny.ScriptError as e:
        raise SystemExit(str(e)) from None
    with tempfile.TemporaryDirectory() as tmp:
        if args.cpu:
            overrides = dict(tiny.TINY)
            train, val = tiny.tiny_data(os.path.join(tmp, "data"), train_steps)
        else:  # official sizes; every rank writes the same random shards into its own directory
            overrides = {}
            per_shard = train_steps + 2
            train, val = tiny.make_shards(os.path.join(tmp, "data"), 50257, 1, per_shard * module.batch_size,
                                          module.val_tokens + module.batch_size)
        overrides.update(train_files=train, val_files=val, train_steps=train_steps, log_dir=os.path.join(tmp, "logs"),
                         checkpoint_every=None)
        if args.micro:
            overrides["micro_batch_seqs"] = args.micro
        for key, value in overrides.items():
            setattr(module, key, value)
        result = {}
        instrument(module, result)
        os.environ.setdefault("SEED", "0")
        module.main(1)
    if rank != 0:
        return 0
    report = summarize(result, args.warmup, world_size, module.batch_size)
    if args.json:
        print(json.dumps(report))
    else:
        print(f"\nspeed of {args.script} ({time.strftime('%Y-%m-%d')})")
        for key, value in report.items():
            print(f"  {key:16s} {value}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
