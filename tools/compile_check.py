"""Run a training script's own torch.compile calls on the CPU and check the compiled path against eager.

    python -m tools.compile_check [SCRIPT] [--steps 8] [--json]

On a GPU the script compiles its model and Newton-Schulz with torch.compile (one static graph each,
fullgraph=True: a graph break is an error); on the CPU it runs them eagerly. This tool sets the
script's `compile_on_cpu = True` (Setup section), so the very same compile calls run on the CPU, at
the tiny size of tools/tiny.py, through the script's own main() for a few steps (the schedule
compressed to them), and checks:

  compile     every compile succeeds: no graph break, no compile error; the model is compiled
  recompiles  nothing compiles after train step 0 (a recompile every step, e.g. a Python float that
              changes each step passed into a compiled function, costs seconds to minutes per step on a
              GPU, and after 8 of them torch silently falls back to eager)
  model       at the first and the last step, on the same batch and weights, the compiled model's
              loss and gradients equal the uncompiled model's
  optimizer   at the same steps, every compiled function of the optimizers (Muon's newton_schulz: the
              square, tall and wide stacks) gives what the uncompiled function gives

On the CPU, inductor is told to round to bfloat16 wherever eager does (emulate_precision_casts), so
the comparison checks the graph, not the kernels' precision: the baseline matches exactly.
Exit status: 0 PASS (or SKIP: this machine cannot compile, no C++ compiler), 1 FAIL, 2 bad input.
"""
import argparse
import json
import logging
import math
import os
import re
import sys
import tempfile
import time
from pathlib import Path

import torch

from tools import tiny

BASELINE = Path(__file__).resolve().parents[1] / "train_gpt_simple.py"
PASS, FAIL, SKIP = "PASS", "FAIL", "SKIP"
STEPS = 8  # the compressed schedule: constant lr at steps 0-2, then a decay (a float that changes every step)
MICRO = 2  # sequences per microbatch on the CPU: 4 microbatches per step (a batch of 1 is a special shape)
# tolerances of compiled vs eager on the same batch and weights: loss per token (absolute), gradients and
# optimizer-function outputs (relative Frobenius norm of the difference)
CPU_TOL = dict(loss=1e-4, grad=1e-2, out=1e-3)  # bf16 roundings emulated: the baseline's loss differs by
# < 1e-6 per token, Newton-Schulz by 0, the bf16 embedding's gradient by ~1e-3 (its backward sums in another order)
GPU_TOL = dict(loss=1e-2, grad=0.1, out=0.05)  # real GPU kernels round differently from eager (tools.speed --check)
RECOMPILE_LOGGER = "torch._dynamo.guards.__recompiles"  # the artifact logger behind TORCH_LOGS=recompiles
WARMUP = ("train step 0",)  # where compiles are expected, with the first val pass (no_grad: its own graph)
HOOKED = ("make_optimizers", "forward_backward", "evaluate")  # the script's functions the check wraps


class _Stop(Exception):
    """Ends a run early (a recompile after warm-up was seen: the verdict is known)."""


def _first(text, n=2):
    lines = [ln.strip() for ln in str(text).strip().splitlines() if ln.strip()]
    return " ".join(lines[:n])


def user_frame(text):
    """'File "x.py", line N, in f: code' from a dynamo error's 'from user code:' section (the innermost frame)."""
    part = str(text).split("from user code:", 1)[-1]
    frames = re.findall(r'File "([^"]+)", line (\d+), in (\S+)\n\s*(.*)', part)
    if not frames:
        return None
    path, line, fn, code = frames[-1]
    return f"{os.path.basename(path)}:{line} in {fn}: {code.strip()}"


def classify(exc):
    """(kind, one-line description) of an exception raised while the compiled script ran."""
    dynamo_exc = getattr(torch._dynamo, "exc", None)
    text = f"{type(exc).__name__}: {exc}"
    where = user_frame(str(exc))
    if dynamo_exc is not None and isinstance(exc, (dynamo_exc.Unsupported, dynamo_exc.UserError)):
        return "graph break", f"{_first(exc)}" + (f" (at {where})" if where else "")
    if "CppCompileError" in text or "InvalidCxxCompiler" in text or "No working C++ compiler" in text:
        return "no compiler", _first(text, 3)
    if dynamo_exc is not None and isinstance(exc, dynamo_exc.TorchDynamoException):
        return "compile error", _first(text, 3) + (f" (at {where})" if where else "")
    return "run error", _first(text, 3)


def cpp_compiler_problem():
    """None if inductor finds a C++ compiler here, else why not (torch.compile on CPU needs one)."""
    try:
        from torch._inductor import cpp_builder
        cpp_builder.get_cpp_compiler()
    except Exception as e:  # noqa: BLE001 - any failure means: cannot compile here
        return f"{type(e).__name__}: {_first(e)}"
    return None


class _RecompileLog(logging.Handler):
    def __init__(self, sink):
        super().__init__()
        self.sink = sink

    def emit(self, record):
        self.sink(record.getMessage())


def recompile_reason(message):
    """'newton_schulz (train_gpt_simple.py:175): eps == 2.5e-07' (the function, and the first guard that
    failed: the value it was compiled for) from dynamo's recompile message."""
    fn = re.search(r"Recompiling function (\S+) in (\S+)", message)
    guards = [g.strip() for g in re.findall(r"- \d+/\d+: (.*?)(?:\s{2,}#|$)", message, re.M)]
    # one failed guard per cached graph: a graph compiled for another shape fails on the shape, so a graph whose
    # shapes match, failing on anything else (a value), names the real reason
    other = [g for g in guards if not re.search(r"(size|stride|dtype) mismatch", g)]
    name = f"{fn.group(1)} ({os.path.basename(fn.group(2))})" if fn else "a function"
    return name + (f": {(other or guards)[0]}" if guards else "")


def _rel(a, b):
    """||a - b|| / ||b|| in float64 (0 when both are 0)."""
    a, b = a.detach().double(), b.detach().double()
    num, den = (a - b).norm().item(), b.norm().item()
    return 0.0 if num == 0 else num / den if den > 0 else math.inf


def _tensors(obj):
    if torch.is_tensor(obj):
        return [obj]
    if isinstance(obj, (list, tuple)):
        return [t for x in obj for t in _tensors(x)]
    return []


def _clone(obj):
    if torch.is_tensor(obj):
        return obj.detach().clone()
    if isinstance(obj, (list, tuple)):
        return type(obj)(_clone(x) for x in obj)
    return obj


def is_compiled_function(obj):
    return callable(obj) and hasattr(obj, "_torchdynamo_orig_callable")


def instrument(module, result, compare_at, ref_chunk=None, stop_on_recompile=True, on_step=None):
    """Watch `module` (a loaded training script) while its main() runs.

    result gets: "graphs" [{when, graphs}], "recompiles" [{when, reason}], "comparisons" [dicts], "micro",
    "model_compiled", "compiled_functions" (optimizer/module functions wrapped by torch.compile), "val_losses",
    "train_losses", "exception" (kind, text) if main() raised, "stopped" if it was stopped early.
    compare_at: train steps at which compiled and eager run on the same batch (eager on `ref_chunk`
    sequences at a time; None: the script's microbatch). on_step(k) runs at the start of train step k.
    """
    counters = torch._dynamo.utils.counters
    state = dict(when="setup", step=-1, trial=0, graphs=counters["stats"]["unique_graphs"], compare=False)
    result.update(graphs=[], recompiles=[], comparisons=[], micro=None, model_compiled=None, compiled_functions=[],
                  val_losses=[], train_losses=[], exception=None, stopped=None, graph_breaks=0, warmup=list(WARMUP))
    breaks0 = sum(counters["graph_break"].values())

    def flush(new_when):
        now = counters["stats"]["unique_graphs"]
        if now > state["graphs"]:
            result["graphs"].append(dict(when=state["when"], graphs=now - state["graphs"]))
        state["graphs"], state["when"] = now, new_when
        late = [g for g in result["graphs"] if g["when"] not in result["warmup"] and g["when"] != "setup"]
        if late and stop_on_recompile:
            raise _Stop(f"recompiled in {late[0]['when']}")

    def on_recompile(message):
        result["recompiles"].append(dict(when=state["when"], reason=recompile_reason(message)))

    handler, logger = _RecompileLog(on_recompile), logging.getLogger(RECOMPILE_LOGGER)

    def wrap_compiled(name, fn):
        orig = fn._torchdynamo_orig_callable
        result["compiled_functions"].append(name)

        def checked(*args, **kwargs):
            if not state["compare"]:
                return fn(*args, **kwargs)
            ref = orig(*_clone(args), **{k: _clone(v) for k, v in kwargs.items()})
            out = fn(*args, **kwargs)
            got, want = _tensors(out), _tensors(ref)
            shape = tuple(args[0].shape) if args and torch.is_tensor(args[0]) else None
            diffs = [_rel(a, b) for a, b in zip(got, want)] if len(got) == len(want) else [math.inf]
            result["comparisons"].append(dict(what=name, shape=shape, step=state["step"], kind="out",
                                              rel=max(diffs, default=0.0)))
            return out
        return checked

    for name, value in list(vars(module).items()):  # module-level functions under @torch.compile
        if is_compiled_function(value):
            setattr(module, name, wrap_compiled(name, value))

    make_optimizers = module.make_optimizers

    def watched_make_optimizers(model):
        optimizers = make_optimizers(model)
        for opt in optimizers:
            for name, value in list(vars(opt).items()):
                if is_compiled_function(value):
                    setattr(opt, name, wrap_compiled(f"{type(opt).__name__}.{name}", value))
        return optimizers

    forward_backward, evaluate = module.forward_backward, module.evaluate

    def label(what):  # "train step 3", "trial 2 val at step 0"
        return (f"trial {state['trial'] + 1} " if state["trial"] else "") + what

    def watched_forward_backward(run, inputs, targets):
        state["step"] += 1
        k = state["step"]
        flush(label(f"train step {k}"))
        if on_step is not None:
            on_step(k)
        if result["micro"] is None:
            result["micro"] = run.micro
            result["model_compiled"] = run.model is not run.raw_model and hasattr(run.model, "_orig_mod")
        state["compare"] = k in compare_at and state["trial"] == 0
        if not state["compare"]:
            loss = forward_backward(run, inputs, targets)
            result["train_losses"].append(loss.item() / inputs.numel())
            return loss
        params = dict(run.raw_model.named_parameters())
        before = {n: p.grad for n, p in params.items()}
        for p in params.values():
            p.grad = None
        chunk, ref_loss = ref_chunk or run.micro, 0.0
        for i in range(0, len(inputs), chunk):  # the uncompiled model on the same batch, the same weights
            loss = run.raw_model(inputs[i:i + chunk], targets[i:i + chunk])
            loss.backward()
            ref_loss += loss.item()
        ref_grads = {n: p.grad for n, p in params.items()}
        for n, p in params.items():
            p.grad = before[n]
        loss = forward_backward(run, inputs, targets)
        tokens = inputs.numel()
        worst = max(((n, _rel(params[n].grad, g)) for n, g in ref_grads.items()
                     if g is not None and params[n].grad is not None), key=lambda x: x[1], default=(None, 0.0))
        missing = sorted(n for n, g in ref_grads.items() if (g is None) != (params[n].grad is None))
        result["comparisons"].append(dict(what="model", shape=tuple(inputs.shape), step=k, kind="model",
                                          loss_eager=ref_loss / tokens, loss_compiled=loss.item() / tokens,
                                          loss_diff=abs(loss.item() - ref_loss) / tokens, grad_rel=worst[1],
                                          grad_worst=worst[0], grads_missing=missing))
        result["train_losses"].append(loss.item() / tokens)
        return loss

    def watched_evaluate(run):
        if "val at step" not in state["when"]:
            state["compare"] = False
            if not result["val_losses"]:  # the first val pass compiles the no_grad graph, at step 0 or later
                result["warmup"].append(label(f"val at step {state['step'] + 1}"))
            flush(label(f"val at step {state['step'] + 1}"))
        loss = evaluate(run)
        result["val_losses"].append(loss)
        return loss

    main = module.main

    def watched_main(*args):
        torch._logging.set_logs(recompiles=True)
        handlers, propagate = logger.handlers[:], logger.propagate
        logger.handlers, logger.propagate = [handler], False  # to the result, not to stderr
        try:
            main(*args)
            flush("end")
        except _Stop as e:
            result["stopped"] = str(e)
        except BaseException as e:  # noqa: BLE001 - reported, not raised: SystemExit of the script included
            if isinstance(e, KeyboardInterrupt):
                raise
            try:
                flush("end")
            except _Stop as stop:
                result["stopped"] = str(stop)
            result["exception"] = classify(e)
        finally:
            logger.handlers, logger.propagate = handlers, propagate
            torch._logging.set_logs()
            result["graph_breaks"] = sum(counters["graph_break"].values()) - breaks0

    run_trial = getattr(module, "run_trial", None)

    def watched_run_trial(run, trial, ckpt):
        state["trial"], state["step"] = trial, -1
        return run_trial(run, trial, ckpt)

    module.make_optimizers, module.forward_backward, module.evaluate = (watched_make_optimizers,
                                                                        watched_forward_backward, watched_evaluate)
    if run_trial is not None:
        module.run_trial = watched_run_trial
    module.main = watched_main


def verdicts(result, tol, compare_at):
    """[(check, status, detail)] from an instrumented run's result."""
    out = []
    exc = result.get("exception")
    graphs = sum(g["graphs"] for g in result["graphs"])
    funcs = result["compiled_functions"]
    if exc and exc[0] == "graph break":
        out.append(("compile", FAIL, f"graph break: {exc[1]}; torch.compile(fullgraph=True) cannot compile this "
                    "line: move it out of the compiled function (the model's forward, newton_schulz), or make it "
                    "traceable (no print, .item(), data-dependent Python branching)"))
    elif exc and exc[0] == "compile error":
        out.append(("compile", FAIL, f"torch.compile failed: {exc[1]}"))
    elif exc:
        out.append(("run", FAIL, f"the compiled run stopped with {exc[1]}"))
    elif result["graph_breaks"]:
        out.append(("compile", FAIL, f"{result['graph_breaks']} graph break(s): a compile without fullgraph=True "
                    "split a function; compile with the script's compiled(fn, device) (fullgraph, static shapes)"))
    elif not result["model_compiled"]:
        out.append(("compile", FAIL, "main() did not compile the model under compile_on_cpu = True: build "
                    "run.model with compiled(run.raw_model, device) as the repo's train_gpt_simple.py does"))
    else:
        out.append(("compile", PASS, f"the model and {len(set(funcs))} optimizer function(s) "
                    f"({', '.join(sorted(set(funcs))) or 'none'}) compiled: {graphs} graphs, no graph break"))
    late = [g for g in result["graphs"] if g["when"] not in result.get("warmup", WARMUP) and g["when"] != "setup"]
    if late:
        reasons = [r for r in result["recompiles"] if r["when"] == late[0]["when"]]
        why = "; ".join(sorted({r["reason"] for r in reasons})[:3]) or "reason not logged"
        out.append(("recompiles", FAIL, f"{late[0]['graphs']} new graph(s) in {late[0]['when']}: {why}. A value that "
                    "changes between steps (a Python float such as lr, a step counter) passed into a compiled "
                    "function recompiles it every time: pass it as a tensor, or keep it outside the compiled function"))
    elif exc and exc[0] != "run error" or not result["graphs"]:
        out.append(("recompiles", SKIP, "the run did not get past the first compile"))
    else:
        where = ", ".join(f"{g['graphs']} in {g['when']}" for g in result["graphs"])
        out.append(("recompiles", PASS, f"none after train step 0 and the first val pass (graphs: {where})"))
    model = [c for c in result["comparisons"] if c["kind"] == "model"]
    if not model:
        out.append(("model", SKIP, "no comparison ran (the run stopped before step "
                    f"{min(compare_at) if compare_at else 0})"))
    else:
        bad = [c for c in model if not (c["loss_diff"] <= tol["loss"] and c["grad_rel"] <= tol["grad"])
               or c["grads_missing"]]
        loss_diff, grad_rel = max(c["loss_diff"] for c in model), max(c["grad_rel"] for c in model)
        steps = ", ".join(str(c["step"]) for c in model)
        detail = (f"loss per token |compiled - eager| {loss_diff:.3g} (tol {tol['loss']:g}), gradients max relative "
                  f"difference {grad_rel:.3g} (tol {tol['grad']:g}) at train steps {steps}")
        if bad:
            c = bad[0]
            detail += (f"; at step {c['step']}: loss {c['loss_compiled']:.6f} compiled vs {c['loss_eager']:.6f} eager, "
                       f"worst gradient {c['grad_worst']}" + (f", gradients only on one side: {c['grads_missing'][:3]}"
                                                               if c["grads_missing"] else ""))
        out.append(("model", FAIL if bad else PASS, detail))
    outs = [c for c in result["comparisons"] if c["kind"] == "out"]
    if not outs:
        out.append(("optimizer", SKIP if not funcs or not model else FAIL,
                    "no compiled optimizer function" if not funcs else "no compiled optimizer call was compared"))
    else:
        bad = [c for c in outs if not c["rel"] <= tol["out"]]
        shapes = sorted({(c["what"], c["shape"]) for c in outs}, key=str)
        listed = "; ".join(f"{w} {'x'.join(map(str, s)) if s else ''}" for w, s in shapes)
        detail = (f"compiled = eager within {max(c['rel'] for c in outs):.3g} relative (tol {tol['out']:g}): {listed}")
        if bad:
            c = bad[0]
            detail = (f"{c['what']} on {c['shape']} at step {c['step']}: compiled differs from eager by {c['rel']:.3g} "
                      f"relative (tol {tol['out']:g}); " + detail)
        out.append(("optimizer", FAIL if bad else PASS, detail))
    losses = result["val_losses"] + result["train_losses"]
    if losses and not all(math.isfinite(x) for x in losses):
        out.append(("finite", FAIL, "a compiled loss is nan or inf"))
    return out


def run_compiled(script, steps=STEPS, progress=None, emulate=True):
    """Load `script`, run its main() on the CPU with compile_on_cpu = True for `steps` steps; the result dict."""
    module = tiny.load_script(script)
    if not hasattr(module, "compile_on_cpu"):
        return None, (f"{script} has no compile_on_cpu setting (Setup section), so its compile calls cannot run "
                      "on a CPU: take the Setup line and compiled() from the repo's train_gpt_simple.py")
    missing = [n for n in HOOKED if not callable(getattr(module, n, None))]
    if missing:
        return None, (f"{script} lacks {', '.join(missing)} (Training and Validation section), which this check "
                      "watches: keep the repo's train_gpt_simple.py structure")
    compare_at = {0, steps - 1}
    result = {}
    inductor = torch._inductor.config
    saved = dict(emulate=inductor.emulate_precision_casts, env={k: os.environ.get(k) for k in
                                                                ("RANK", "WORLD_SIZE", "LOCAL_RANK", "SEED", "RESUME")})
    with tempfile.TemporaryDirectory() as tmp:
        train, val = tiny.tiny_data(os.path.join(tmp, "data"), steps)
        overrides = dict(tiny.TINY, micro_batch_seqs=MICRO, train_files=train, val_files=val, train_steps=steps,
                         log_dir=os.path.join(tmp, "logs"), checkpoint_dir=os.path.join(tmp, "ckpt"),
                         checkpoint_every=None, compile_on_cpu=True)
        for key, value in overrides.items():
            setattr(module, key, value)
        instrument(module, result, compare_at)
        os.environ.update(RANK="0", WORLD_SIZE="1", LOCAL_RANK="0", SEED="0")
        os.environ.pop("RESUME", None)
        inductor.emulate_precision_casts = emulate
        if progress:
            progress(f"compiling and running {steps} steps on the CPU (the first compile takes about a minute)")
        t0 = time.perf_counter()
        try:
            with open(os.devnull, "w") as quiet:  # the script's own prints (log path, val lines)
                stdout, sys.stdout = sys.stdout, quiet
                try:
                    module.main(1)
                finally:
                    sys.stdout = stdout
        finally:
            inductor.emulate_precision_casts = saved["emulate"]
            for k, v in saved["env"].items():
                if v is None:
                    os.environ.pop(k, None)
                else:
                    os.environ[k] = v
        result["seconds"] = round(time.perf_counter() - t0, 1)
    result["compare_at"] = sorted(compare_at)
    return result, None


def check(script_path=str(BASELINE), progress=None, steps=STEPS):
    """The compile check of `script_path`: dict(status PASS|FAIL|SKIP, detail (one line per problem),
    checks [(check, status, detail)], and the raw numbers (graphs, recompiles, comparisons, seconds))."""
    t0 = time.perf_counter()
    base = dict(script=str(script_path), steps=steps, torch=torch.__version__)
    problem = cpp_compiler_problem()
    if problem:
        return dict(base, status=SKIP, checks=[("compile", SKIP, problem)],
                    detail=f"torch.compile on the CPU needs a C++ compiler and found none ({problem}); "
                           "install g++ to run this check, or run tools.speed --check on the GPU")
    try:
        result, why = run_compiled(script_path, steps, progress)
    except tiny.ScriptError as e:
        return dict(base, status=FAIL, checks=[("load", FAIL, str(e))], detail=str(e))
    if why:
        return dict(base, status=FAIL, checks=[("compile", FAIL, why)], detail=why)
    checks = verdicts(result, CPU_TOL, result["compare_at"])
    failed = [c for c in checks if c[1] == FAIL]
    if result["exception"] and result["exception"][0] == "no compiler":
        return dict(base, status=SKIP, checks=checks, detail=result["exception"][1])
    return dict(base, status=FAIL if failed else PASS, checks=checks,
                detail="\n".join(f"{c}: {d}" for c, _, d in failed) or "compiled = eager, no graph break, no recompile",
                graphs=result["graphs"], recompiles=result["recompiles"], comparisons=result["comparisons"],
                compiled_functions=result["compiled_functions"], micro=result["micro"],
                seconds=round(time.perf_counter() - t0, 1))


def print_report(report, out=None):
    out = out or sys.stdout
    print(f"compile check of {report['script']} (tiny model on the CPU, {report['steps']} steps, "
          f"torch {report['torch']})", file=out)
    for name, status, detail in report["checks"]:
        print(f"  {status:4s}  {name:11s} {detail}", file=out)
    seconds = f" Wall time {report['seconds']} s." if "seconds" in report else ""
    print(f"{report['status']}.{seconds}", file=out)


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m tools.compile_check", description=__doc__.split("\n\n")[0])
    parser.add_argument("script", nargs="?", default=str(BASELINE), help="training script (default: the repo's)")
    parser.add_argument("--steps", type=int, default=STEPS, help=f"steps of the compressed schedule (default {STEPS})")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    args = parser.parse_args(argv)
    if not os.path.isfile(args.script):
        parser.error(f"{args.script}: no such file")
    if args.steps < 2:
        parser.error(f"--steps must be at least 2 (got {args.steps}): the check compares the first and the last step")
    progress = None if args.json else (lambda msg: print(msg, file=sys.stderr, flush=True))
    report = check(args.script, progress, args.steps)
    if args.json:
        print(json.dumps(report, default=str))
    else:
        print_report(report)
    return 1 if report["status"] == FAIL else 0


if __name__ == "__main__":
    sys.exit(main())
