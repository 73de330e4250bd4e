"""Speed of a training script's own step on synthetic data, the first-run self-check, and memory per sequence.

    torchrun --standalone --nproc_per_node=8 -m tools.speed [train_gpt_simple.py] [--steps 40]
    python -m tools.speed --check          # first thing on a new GPU machine: compiled = eager, no recompile, speed
    python -m tools.speed --check --cpu    # the same on the tiny CPU configuration (what the tests run)
    python -m tools.speed --memory         # memory per sequence of the compiled step, measured on the CPU
    python -m tools.speed --cpu            # the tiny CPU configuration: checks the tool, not speed
    python -m tools.speed --balance [SCRIPT]               # each rank's estimated optimizer load at W = 1, 2, 4, 8
    python -m tools.speed SCRIPT --share 8 [--rank 0] [--profile]   # rank r's optimizer share, timed; a step estimate

Measurement (default): runs the script's main() (its model, optimizers and training loop, official
sizes) for warmup + steps steps on random tokens, with a synchronized timestamp around every optimizer
step, and reports after warm-up: ms/step, tokens/s, MFU, peak memory, the time to the end of the first
step (compilation), the optimizer steps alone (with their own collectives) and one val pass.

--check: the same run, shorter (3 warm-up + 5 measured steps, 2 trials), watched by tools.compile_check:
no graph break, nothing compiles after step 0, at steps 0 and 2 the compiled model and optimizer
functions give what the uncompiled ones give on the same batch and weights, every loss is finite (the
second trial re-initializes the compiled model, as a multi-trial launch does); then ms/step, MFU,
optimizer ms, peak memory and the micro_batch_seqs chosen. Prints PASS or what is wrong (exit status 1).

--memory: inductor's own memory plan of the compiled training step (forward and backward) at the real
size, traced and scheduled on the CPU for 1 and 2 sequences per microbatch but never run (minutes, no
GPU), plus the weights, gradients and optimizer states; predicts the peak per micro_batch_seqs.
--balance, --share W, --profile: the matrix optimizer's work per rank without launching ranks, on this
machine's device (the GPU if there is one, else the CPU): see tools/optimizer_share.py. --share prints
an ESTIMATE of a W-rank step (forward+backward of 1/W of the batch, measured here and scaled; the slowest
rank's share; the replicated optimizers; the collectives from a stated bandwidth model).
Timing lives here, never in the tests.
"""
import argparse
import contextlib
import functools
import json
import math
import os
import re
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch

from tools import compile_check, optimizer_share, tiny

FLOP_PER_STEP = 4.48e14  # 0.855 GFLOP per token x 524,288 tokens (docs/speed.md)
PEAK_FLOPS = {"H100": 989e12, "H200": 989e12, "GH200": 989e12, "A100": 312e12}  # dense bf16 per GPU
BASELINE = Path(__file__).resolve().parents[1] / "train_gpt_simple.py"
CHECK_WARMUP, CHECK_STEPS = 3, 5
GIB, MIB = 2 ** 30, 2 ** 20
GPU_SIZES = {"80 GB (H100, A100 80GB)": 79.1, "48 GB (A40, L40S, A6000)": 44.4, "40 GB (A100 40GB)": 39.4,
             "24 GB (RTX 3090/4090, A10, L4)": 22.0, "16 GB (A4000, V100 16GB)": 15.7}  # what torch reports, GiB
CUDA_CONTEXT_GIB = 0.6  # the CUDA context and kernels: outside torch's allocator, not in its peak figures
ALLOCATOR_MARGIN = 0.9  # fraction of the rest the allocator can use for tensors (caching, fragmentation)


def instrument(module, result):
    """Time every optimizer step (synchronized before and after) and every val pass."""
    cuda = module.device_type == "cuda"
    sync = torch.cuda.synchronize if cuda else (lambda: None)
    result.update(t_start=time.perf_counter(), steps=[], vals=[])
    make_optimizers, evaluate = module.make_optimizers, module.evaluate

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

    def timed_evaluate(run):  # around the val pass, outside the compiled model (a timer inside it breaks its graph)
        sync()
        t0 = time.perf_counter()
        loss = evaluate(run)
        sync()
        result["vals"].append([t0, time.perf_counter(), len(result["steps"])])
        return loss

    module.make_optimizers, module.evaluate = timed_make_optimizers, timed_evaluate
    main = module.main

    def timed_main(*args):
        try:
            return main(*args)
        finally:
            if cuda:
                result["peak_mem_gib"] = torch.cuda.max_memory_allocated() / GIB
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
    peak = next((v for k, v in sorted(PEAK_FLOPS.items(), key=lambda kv: -len(kv[0])) if k in device), None)
    return dict(device=device, world_size=world_size, steps_measured=len(measured), ms_per_step=round(ms, 2),
                tokens_per_s=round(tokens_per_step / (ms / 1000)),
                mfu=round(FLOP_PER_STEP / (ms / 1000) / (world_size * peak), 4) if peak else None,
                optimizer_ms=round(opt_ms, 2), first_step_s=round(ends[0] - result["t_start"], 1),
                val_pass_s=round(result["vals"][-1][1] - result["vals"][-1][0], 3) if result["vals"] else None,
                peak_mem_gib=round(result["peak_mem_gib"], 2) if "peak_mem_gib" in result else None)


def setup_run(module, args, tmp, train_steps):
    """Point `module` at synthetic shards in `tmp` (tiny CPU sizes with --cpu, official sizes otherwise)."""
    if args.cpu:
        overrides = dict(tiny.TINY)
        train, val = tiny.tiny_data(os.path.join(tmp, "data"), train_steps)
    else:  # official sizes; every rank writes the same random shards into its own directory
        overrides = {}
        train, val = tiny.make_shards(os.path.join(tmp, "data"), 50257, 1, (train_steps + 2) * module.batch_size,
                                      module.val_tokens + module.batch_size)
    overrides.update(train_files=train, val_files=val, train_steps=train_steps, log_dir=os.path.join(tmp, "logs"),
                     checkpoint_dir=os.path.join(tmp, "checkpoints"), checkpoint_every=None)
    if args.micro:
        overrides["micro_batch_seqs"] = args.micro
    for key, value in overrides.items():
        setattr(module, key, value)


def self_check(args, module, rank, world_size):
    """--check: a short run watched by tools.compile_check and timed; the report (dict) on rank 0."""
    cpu = args.cpu
    warmup, steps = args.warmup, args.steps
    train_steps = warmup + steps + 1
    if cpu and not hasattr(module, "compile_on_cpu"):
        why = (f"{args.script} has no compile_on_cpu setting (Setup section): its compile calls cannot run on the CPU; "
               "take the Setup line and compiled() from the repo's train_gpt_simple.py")
        return dict(status="FAIL", script=str(args.script), device="cpu", torch=torch.__version__, cuda=None,
                    checks=[("compile", "FAIL", why)], problems=[f"compile: {why}"])
    compare_at = sorted({0, warmup - 1})
    timing, watch = {}, {}
    inductor = torch._inductor.config
    emulate = inductor.emulate_precision_casts
    with tempfile.TemporaryDirectory() as tmp:
        setup_run(module, args, tmp, train_steps)
        if cpu:
            module.compile_on_cpu, module.micro_batch_seqs = True, args.micro or compile_check.MICRO
            inductor.emulate_precision_casts = True  # bf16 roundings where eager has them: compiled = eager exactly

        def on_step(k):  # the peak of the measured steps: no compile, no eager reference in it
            if k == warmup and not cpu:
                torch.cuda.reset_peak_memory_stats()
        instrument(module, timing)
        # one rank stopping early at a recompile would leave the others waiting in a collective: stop only alone
        compile_check.instrument(module, watch, set(compare_at), ref_chunk=None if cpu else 8, on_step=on_step,
                                 stop_on_recompile=world_size == 1)
        os.environ.setdefault("SEED", "0")
        try:
            module.main(args.trials)
        finally:
            inductor.emulate_precision_casts = emulate
    if rank != 0:
        return None
    checks = compile_check.verdicts(watch, compile_check.CPU_TOL if cpu else compile_check.GPU_TOL, compare_at)
    losses = watch["val_losses"] + watch["train_losses"]
    if losses and all(math.isfinite(x) for x in losses):
        checks.append(("finite", "PASS", f"all {len(losses)} losses of {args.trials} trial(s) finite: val "
                       f"{watch['val_losses'][0]:.5f} at step 0, train loss per token {watch['train_losses'][0]:.4f} -> "
                       f"{watch['train_losses'][-1]:.4f}"))
    complete = len(timing["steps"]) == args.trials * train_steps
    if not complete and not watch["exception"] and not watch["stopped"]:
        checks.append(("run", "FAIL", f"only {len(timing['steps'])} of {args.trials} x {train_steps} steps ran "
                       "(a trial stopped on a nan or inf loss?)"))
    report = dict(status="PASS", script=str(args.script), torch=torch.__version__, cuda=torch.version.cuda,
                  micro_batch_seqs=watch["micro"], compared_at_steps=compare_at, trials=args.trials)
    if complete:  # the timing of trial 1
        first = dict(timing, steps=timing["steps"][:train_steps], vals=[v for v in timing["vals"] if v[2] <= train_steps])
        report.update(summarize(first, warmup, world_size, module.batch_size))
    if not cpu:
        props = torch.cuda.get_device_properties(torch.cuda.current_device())
        report.update(gpu_mem_gib=round(props.total_memory / GIB, 1), cudnn_sdp=torch.backends.cuda.cudnn_sdp_enabled(),
                      capability=".".join(map(str, torch.cuda.get_device_capability())))
        if report.get("mfu") is not None and report["mfu"] < 0.25:
            checks.append(("speed", "WARN", f"MFU {report['mfu']:.2f} is low for this GPU (the public script reaches "
                           "about 0.37 on 8 H100s): another process on the GPU, low clocks, or a slow change?"))
    report["checks"] = checks
    problems = [f"{name}: {detail}" for name, status, detail in checks if status == "FAIL"]
    report["problems"] = problems
    report["status"] = "FAIL" if problems else "PASS"
    report["comparisons"] = watch["comparisons"]
    return report


def print_check(report, out=None):
    out = out or sys.stdout
    where = report.get("device", "?")
    print(f"\nspeed self-check of {report.get('script')} on {where} (torch {report.get('torch')}, CUDA "
          f"{report.get('cuda')}), {time.strftime('%Y-%m-%d')}", file=out)
    for name, status, detail in report.get("checks", []):
        print(f"  {status:4s}  {name:11s} {detail}", file=out)
    for key in ("micro_batch_seqs", "world_size", "ms_per_step", "tokens_per_s", "mfu", "optimizer_ms", "peak_mem_gib",
                "gpu_mem_gib", "first_step_s", "val_pass_s", "cudnn_sdp", "capability"):
        if key in report:
            print(f"  {key:18s} {report[key]}", file=out)
    print(report["status"] if report["status"] == "PASS" else "FAIL:\n  " + "\n  ".join(report["problems"]), file=out)


# -----------------------------------------------------------------------------
# Memory per sequence: inductor's own plan for the compiled step, traced and scheduled on the CPU, never run


class _Planned(Exception):
    """Stops the compiled call once both graphs are planned: nothing runs."""


def _storage_bytes(nodes):
    seen = {}
    for n in nodes:
        val = n.meta.get("val") if isinstance(n, torch.fx.Node) else None
        if torch.is_tensor(val):
            storage = val.untyped_storage()
            seen[id(storage)] = storage.nbytes()
    return sum(seen.values())


def compiled_step_memory(module, seqs, vocab_size=None, num_layers=None, model_dim=None, seq_len=None):
    """Memory of one compiled training microbatch of `seqs` sequences of the script's GPT (its real sizes unless
    given), from inductor's own plan on the CPU: the graphs are traced, partitioned and scheduled, never run.

    Returns bytes: saved (what the forward keeps for the backward, made by the forward: activations and the bf16
    weight copies), saved_all (also the inputs, weights and buffers it keeps), forward_peak and backward_peak
    (inductor's estimate of the live bytes in each graph, in the order it chose; weights and incoming gradients
    not counted, the backward's own inputs and outputs counted)."""
    import torch._functorch.config as functorch_config
    import torch._inductor.compile_fx as compile_fx
    import torch._inductor.memory as inductor_memory
    sizes = [vocab_size or module.vocab_size, num_layers or module.num_layers, model_dim or module.model_dim]
    seq_len = seq_len or module.seq_len
    info, current = dict(estimates=dict(forward=[], backward=[])), ["forward"]
    estimate = inductor_memory.estimate_peak_memory

    def recorded_estimate(*args, **kwargs):
        peak, timeline = estimate(*args, **kwargs)
        info["estimates"][current[0]].append(peak)
        return peak, timeline

    def inner_compile(gm, example_inputs, **kwargs):
        current[0] = "backward" if kwargs.get("is_backward") else "forward"
        if current[0] == "forward":
            saved = list(gm.graph.find_nodes(op="output")[0].args[0])[1:]  # after the loss
            info["saved_all"] = _storage_bytes(saved)
            info["saved"] = _storage_bytes([n for n in saved if isinstance(n, torch.fx.Node) and n.op != "placeholder"])
        compiled = compile_fx.compile_fx_inner(gm, example_inputs, **kwargs)
        if current[0] == "backward":
            raise _Planned
        return compiled

    torch._dynamo.reset()
    inductor_memory.estimate_peak_memory = recorded_estimate
    try:
        with contextlib.ExitStack() as stack:  # plan afresh (a cached graph skips the scheduler), backward at once
            stack.enter_context(torch._inductor.config.patch(fx_graph_cache=False, reorder_for_peak_memory=True))
            stack.enter_context(functorch_config.patch(enable_autograd_cache=False,
                                                       force_non_lazy_backward_lowering=True))
            model = module.GPT(*sizes)
            backend = functools.partial(compile_fx.compile_fx, inner_compile=inner_compile)
            step = torch.compile(model, backend=backend, dynamic=False, fullgraph=True)
            inputs = torch.zeros(seqs, seq_len, dtype=torch.int32)
            try:
                step(inputs, inputs.long())
            except Exception as e:  # noqa: BLE001 - ours is wrapped by dynamo; anything else is re-raised
                cause = e
                while cause is not None and not isinstance(cause, _Planned):
                    cause = getattr(cause, "inner_exception", None) or cause.__cause__
                if cause is None:
                    raise
    finally:
        inductor_memory.estimate_peak_memory = estimate
        torch._dynamo.reset()
    if not info["estimates"]["backward"]:
        raise RuntimeError("inductor made no memory plan for the backward (reorder_for_peak_memory did not run)")
    # the scheduler estimates several orders and keeps the one with the lowest peak
    return dict(saved=info["saved"], saved_all=info["saved_all"], forward_peak=min(info["estimates"]["forward"]),
                backward_peak=min(info["estimates"]["backward"]))


def _role(name):
    return re.sub(r"blocks\.\d+\.", "blocks.*.", name)


def fixed_memory(module):
    """Bytes that do not depend on the microbatch, at the script's real sizes: weights, gradients, and optimizer
    state, the latter per parameter role measured by one step of the script's own optimizers on the tiny model."""
    torch.manual_seed(0)
    model = module.GPT(tiny.TINY["vocab_size"], tiny.TINY["num_layers"], tiny.TINY["model_dim"])
    module.init_params(model)
    optimizers = module.make_optimizers(model)
    for p in model.parameters():
        p.grad = torch.randn_like(p)
    for opt in optimizers:
        opt.step()
    state_ratio = {}
    for opt in optimizers:
        for p, st in opt.state.items():
            nbytes = sum(v.nbytes for v in st.values() if torch.is_tensor(v) and v.ndim > 0)
            name = next(n for n, q in model.named_parameters() if q is p)
            state_ratio[_role(name)] = nbytes / p.nbytes
    with torch.device("meta"):
        real = module.GPT(module.vocab_size, module.num_layers, module.model_dim)
    params = sum(p.nbytes for p in real.parameters())
    states = sum(state_ratio.get(_role(n), 0) * p.nbytes for n, p in real.named_parameters())
    return dict(weights=params, gradients=params, optimizer_state=round(states))


def memory_report(module, seqs=(1, 2)):
    """Per sequence and per microbatch bytes of the compiled step (slope and intercept over `seqs`), the fixed
    bytes, and the predicted peak per micro_batch_seqs; all at the script's real sizes."""
    plans = {s: compiled_step_memory(module, s) for s in seqs}
    a, b = min(seqs), max(seqs)
    per_seq = {k: (plans[b][k] - plans[a][k]) / (b - a) for k in plans[a]}
    per_micro = {k: plans[a][k] - a * per_seq[k] for k in plans[a]}
    fixed = fixed_memory(module)
    fixed_total = sum(fixed.values())
    def peak(m, keys=("forward_peak", "backward_peak")):  # the larger graph peak at m sequences, plus the fixed bytes
        return round((fixed_total + max(per_micro[k] + m * per_seq[k] for k in keys)) / GIB, 2)
    predict = {m: peak(m) for m in (8, 16, 32, 64)}
    floor = {m: peak(m, ("saved",)) for m in (8, 16, 32, 64)}  # a floor: the backward starts with all of it alive
    fits = {}
    for gpu, gib in GPU_SIZES.items():
        usable = (gib - CUDA_CONTEXT_GIB) * ALLOCATOR_MARGIN
        fits[gpu] = max([m for m in (8, 16, 32, 64) if predict[m] <= usable], default=None)
    return dict(sizes=dict(vocab_size=module.vocab_size, num_layers=module.num_layers, model_dim=module.model_dim,
                           seq_len=module.seq_len), seqs=list(seqs), plans=plans,
                per_seq_mib={k: round(v / MIB, 1) for k, v in per_seq.items()},
                per_microbatch_mib={k: round(v / MIB, 1) for k, v in per_micro.items()},
                fixed_mib={k: round(v / MIB, 1) for k, v in fixed.items()},
                predicted_peak_gib=predict, floor_peak_gib=floor, largest_micro_that_fits=fits, torch=torch.__version__)


def print_memory(rep, out=None):
    out = out or sys.stdout
    s = rep["sizes"]
    print(f"\nmemory of the compiled training step of GPT({s['vocab_size']}, {s['num_layers']}, {s['model_dim']}), "
          f"sequences of {s['seq_len']} tokens: inductor's plan on the CPU (torch {rep['torch']}), "
          f"{time.strftime('%Y-%m-%d')}", file=out)
    print(f"  {'MiB':>28s} {'per sequence':>13s} {'per microbatch':>15s}", file=out)
    for key, what in (("saved", "saved for backward"), ("forward_peak", "forward peak"),
                      ("backward_peak", "backward peak")):
        print(f"  {what:>28s} {rep['per_seq_mib'][key]:13.1f} {rep['per_microbatch_mib'][key]:15.1f}", file=out)
    f = rep["fixed_mib"]
    print(f"  fixed: weights {f['weights']:.0f} MiB, gradients {f['gradients']:.0f} MiB, optimizer state "
          f"{f['optimizer_state']:.0f} MiB", file=out)
    print("  predicted peak (GiB) by micro_batch_seqs: " + ", ".join(f"{m}: {v}" for m, v in
                                                                    rep["predicted_peak_gib"].items())
          + "  (floor, saved activations only: " + ", ".join(f"{m}: {v}" for m, v in rep["floor_peak_gib"].items())
          + ")", file=out)
    for gpu, m in rep["largest_micro_that_fits"].items():
        print(f"  {gpu:32s} largest micro_batch_seqs that fits the prediction: {m}", file=out)


# -----------------------------------------------------------------------------


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m tools.speed", description=__doc__.split("\n\n")[0])
    parser.add_argument("script", nargs="?", default=str(BASELINE), help="training script (default: the repo's)")
    parser.add_argument("--steps", type=int, default=None,
                        help=f"measured steps after warm-up (default 40; --check: {CHECK_STEPS})")
    parser.add_argument("--warmup", type=int, default=None,
                        help=f"steps before measuring (default 10; --check: {CHECK_WARMUP})")
    parser.add_argument("--micro", type=int, default=None, help="micro_batch_seqs to use (default: the script's)")
    parser.add_argument("--cpu", action="store_true", help="tiny model on CPU, to check the tool itself")
    parser.add_argument("--check", action="store_true", help="the first-run self-check (see above)")
    parser.add_argument("--trials", type=int, default=2,
                        help="--check: trials in the run (default 2: the second re-initializes the compiled model)")
    parser.add_argument("--memory", action="store_true", help="memory per sequence of the compiled step (CPU)")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    share = parser.add_argument_group("the optimizer per rank (tools/optimizer_share.py)")
    share.add_argument("--balance", action="store_true", help="each rank's estimated load at W = 1, 2, 4, 8 (no tensors)")
    share.add_argument("--share", type=int, metavar="W", help="time the optimizer work each rank of a W-rank run owns")
    share.add_argument("--rank", type=int, action="append", help="--share: only this rank (repeatable; default: all)")
    share.add_argument("--profile", action="store_true", help="--share: the first rank's step by operation")
    share.add_argument("--vs", metavar="OTHER", help="--share: time OTHER (another version of SCRIPT) against SCRIPT, "
                       "stepped alternately on the same inputs, and check that their results are bitwise equal")
    share.add_argument("--at-step", type=int, default=1000, help="--share: hyperparameters of this step (default 1000)")
    share.add_argument("--device", default=None, help="--share: cuda or cpu (default: cuda if there is one)")
    share.add_argument("--fwd-seqs", type=int, default=None,
                       help="--share: sequences of the forward+backward measured (default: a rank's 512/W on a GPU, "
                       "1 on the CPU), scaled to 512")
    share.add_argument("--fwd-bwd-ms", type=float, default=None,
                       help="--share: the whole batch's forward+backward on one device, measured elsewhere (ms); "
                       "skips measuring it")
    share.add_argument("--busbw", type=float, default=optimizer_share.BUSBW_GBS,
                       help=f"--share: assumed collective bus bandwidth, GB/s (default {optimizer_share.BUSBW_GBS:.0f})")
    args = parser.parse_args(argv)
    if args.balance or args.share is not None:
        return share_main(parser, args)
    args.steps = args.steps if args.steps is not None else CHECK_STEPS if args.check else 40
    args.warmup = args.warmup if args.warmup is not None else CHECK_WARMUP if args.check else 10
    if not os.path.isfile(args.script):
        parser.error(f"{args.script}: no such file")
    if args.steps < 1 or args.warmup < 1 or args.trials < 1 or (args.micro is not None and args.micro < 1):
        parser.error("--steps, --warmup, --trials and --micro must be at least 1")
    if args.check and args.memory:
        parser.error("--check and --memory are separate runs: choose one")
    if not args.cpu and not args.memory and not torch.cuda.is_available():
        parser.error("no CUDA GPU: tools.speed measures GPU speed (use --cpu to check the tool itself)")
    try:
        module = tiny.load_script(args.script)
    except tiny.ScriptError as e:
        raise SystemExit(str(e)) from None
    if args.memory:
        if not args.json:
            print("planning the compiled step for 1 and 2 sequences (a few minutes on a CPU)", file=sys.stderr)
        rep = memory_report(module)
        print(json.dumps(rep)) if args.json else print_memory(rep)
        return 0
    rank, world_size = int(os.environ.get("RANK", 0)), int(os.environ.get("WORLD_SIZE", 1))
    if args.check:
        if args.cpu and compile_check.cpp_compiler_problem():
            raise SystemExit(f"torch.compile on the CPU needs a C++ compiler: {compile_check.cpp_compiler_problem()}")
        report = self_check(args, module, rank, world_size)
        if report is None:
            return 0
        print(json.dumps(report, default=str)) if args.json else print_check(report)
        return 0 if report["status"] == "PASS" else 1
    train_steps = args.warmup + args.steps + 1
    with tempfile.TemporaryDirectory() as tmp:
        setup_run(module, args, tmp, train_steps)
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


def share_main(parser, args):
    """--balance and --share (tools/optimizer_share.py)."""
    if args.balance and args.share is not None:
        parser.error("--balance and --share are separate runs: choose one")
    if args.share is not None and (args.share < 1 or 8 % args.share):
        parser.error(f"--share {args.share}: the world size must divide 8 (1, 2, 4 or 8)")
    if args.rank and not all(0 <= r < (args.share or 1) for r in args.rank):
        parser.error(f"--rank {args.rank}: ranks of a {args.share}-rank run are 0 to {(args.share or 1) - 1}")
    for path in (args.script, args.vs):
        if path and not os.path.isfile(path):
            parser.error(f"{path}: no such file")
    device = torch.device(args.device or ("cuda" if torch.cuda.is_available() and not args.cpu else "cpu"))
    if device.type == "cuda" and not torch.cuda.is_available():
        parser.error("--device cuda: no CUDA GPU here")
    try:
        module = tiny.load_script(args.script, "speed_share_script")
        if args.balance:
            rep = optimizer_share.balance(module)
            print(json.dumps(rep)) if args.json else print(optimizer_share.format_balance(rep))
            return 0
        module.device_type = device.type
        if args.cpu:  # the tiny configuration: checks the tool, not speed
            for key in ("vocab_size", "num_layers", "model_dim", "batch_size", "seq_len"):
                setattr(module, key, tiny.TINY[key])
        ranks = sorted(set(args.rank)) if args.rank else list(range(args.share))
        if args.vs:
            other = tiny.load_script(args.vs, "speed_share_other")
            for key in ("device_type", "vocab_size", "num_layers", "model_dim", "batch_size", "seq_len"):
                setattr(other, key, getattr(module, key))
            rep = optimizer_share.compare_shares(module, other, args.share, ranks[0], device, args.steps or 5,
                                                 args.at_step)
            print(json.dumps(rep)) if args.json else print(optimizer_share.format_compare(rep))
            return 0 if rep["bitwise_equal"] else 1
        say = (lambda msg: print(msg, file=sys.stderr, flush=True))
        rep = optimizer_share.share_report(module, args.share, ranks, device, args.steps or 3, args.warmup or 1,
                                           args.at_step, args.profile, args.fwd_seqs or (None if device.type == "cuda"
                                                                                         else 1),
                                           args.fwd_bwd_ms, args.busbw, say)
    except (tiny.ScriptError, ValueError) as e:
        raise SystemExit(str(e)) from None
    print(json.dumps(rep)) if args.json else print(optimizer_share.format_share(rep))
    return 0


if __name__ == "__main__":
    sys.exit(main())
