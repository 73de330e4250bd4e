"""The matrix optimizer's work per rank, without launching ranks (behind python -m tools.speed --balance / --share).

A script's MatrixOptimizer gives each matrix to one rank (assign_ranks over its cost(m, n)). Here the script's own
make_optimizers() runs as rank r of W ranks with torch.distributed stood in for (`as_rank`): the collectives become
local copies of the same buffers, so step() does exactly rank r's local work (its buffers, its stacks' update()
calls, its state) on one device. From that:

  balance     each rank's estimated load (the sum of cost() of its matrices) at W = 1, 2, 4, 8; no tensor is made
  share       rank r's optimizer step timed on this device, with the update() calls and the rest (the machinery's
              buffers, stacks and copies) apart; the replicated optimizers (AdamW, ...) timed once
  profile     the same step under torch.profiler, its time (and FLOPs) by script function and operation
  estimate    a W-rank step = forward+backward of 1/W of the batch (measured here, scaled) + the slowest rank's
              share + the replicated optimizers + the collectives (a bandwidth model, stated): an ESTIMATE
"""
import contextlib
import math
import os
import statistics
import time

import torch

BUSBW_GBS = 400.0  # assumed NCCL bus bandwidth, GB/s (see estimate_step)
COPIES = {"stack", "cat", "copy_", "foreach_copy_", "clone", "gather", "index_select", "flip", "to_copy", "contiguous"}
REDUCTIONS = {"norm", "linalg_vector_norm", "sum", "argsort", "sort", "max", "min", "mean"}


class StandIn:
    """torch.distributed as rank `rank` of `world_size` sees it, in one process: the collectives MatrixOptimizer.step
    calls are copies of the same buffers (the memory traffic of their output, none of their communication)."""

    def __init__(self, rank, world_size):
        self.rank, self.world_size = rank, world_size

    def is_initialized(self):
        return True

    def get_rank(self):
        return self.rank

    def get_world_size(self):
        return self.world_size

    def reduce_scatter_tensor(self, output, input, *args, **kwargs):
        output.copy_(input.view(self.world_size, -1)[self.rank])  # rank r's part (the others' gradients: zero here)

    def all_gather_into_tensor(self, output, input, *args, **kwargs):
        output.view(self.world_size, -1).copy_(input.expand(self.world_size, -1))  # every part written, as NCCL does

    def __getattr__(self, name):
        raise RuntimeError(f"tools.speed --share: the script calls torch.distributed.{name} in its optimizer step; "
                           "only reduce_scatter_tensor and all_gather_into_tensor (MatrixOptimizer's) are stood in for")


@contextlib.contextmanager
def as_rank(module, rank, world_size):
    """Within: the script's `dist` is StandIn(rank, world_size)."""
    real = module.dist
    module.dist = StandIn(rank, world_size)
    try:
        yield
    finally:
        module.dist = real


def matrix_optimizers(module, optimizers):
    base = getattr(module, "MatrixOptimizer", None)
    found = [opt for opt in optimizers if base is not None and isinstance(opt, base)]
    if not found:
        raise ValueError(f"{module.__file__}: make_optimizers() returns no MatrixOptimizer (the harness's machinery "
                         "for sharded matrix optimizers): --balance and --share need one")
    return found


def balance(module, world_sizes=(1, 2, 4, 8)):
    """Per W: each rank's matrices and estimated load (the sum of the optimizer's cost() over them), from the
    script's own make_optimizers() on its full-size model on the meta device (no memory, no compute)."""
    with torch.device("meta"):
        model = module.GPT(module.vocab_size, module.num_layers, module.model_dim)
    names = {p: n for n, p in model.named_parameters()}
    out = dict(script=module.__file__, sizes=[module.vocab_size, module.num_layers, module.model_dim], world_sizes={})
    for w in world_sizes:
        with as_rank(module, 0, w):
            opts = matrix_optimizers(module, module.make_optimizers(model))
        load, count = [0] * w, [0] * w
        for opt in opts:
            for p, r in opt.owner.items():
                load[r] += opt.cost(*p.shape)
                count[r] += 1
        mean = sum(load) / w
        out["world_sizes"][w] = dict(load=load, matrices=count, max_over_mean=round(max(load) / mean, 4),
                                     share=[round(x / sum(load), 4) for x in load])
    out["optimizers"] = [type(o).__name__ for o in opts]
    out["matrices"] = sum(len(o.owner) for o in opts)
    out["cost_of"] = {f"{names[p].split('.', 2)[-1]} {tuple(p.shape)}": opt.cost(*p.shape)
                      for opt in opts for p in opt.owner if names[p].startswith("blocks.0.")}
    return out


def format_balance(rep):
    lines = [f"estimated optimizer load per rank of {rep['script']} ({', '.join(rep['optimizers'])}, {rep['matrices']} "
             f"matrices; load = the sum of cost(m, n) over a rank's matrices, as assign_ranks balances it)"]
    lines.append("  cost(m, n) per matrix of a block: " + ", ".join(f"{k}: {v:.3g}" for k, v in rep["cost_of"].items()))
    lines.append(f"  {'W':>2s}  {'max/mean':>8s}  per rank: share of the load (matrices)")
    for w, r in rep["world_sizes"].items():
        lines.append(f"  {w:>2d}  {r['max_over_mean']:8.3f}  "
                     + "  ".join(f"{s * 100:5.1f}% ({c})" for s, c in zip(r["share"], r["matrices"])))
    return "\n".join(lines)


# -----------------------------------------------------------------------------
# one rank's share, timed


def _sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def initialized_model(module, device, seed):
    """The script's full-size model on `device`, initialized by its init_params after torch.manual_seed(seed)."""
    torch.manual_seed(seed)
    with torch.device(device):
        model = module.GPT(module.vocab_size, module.num_layers, module.model_dim)
    module.init_params(model)
    return model


def build(module, device, rank, world_size, at_step, seed=0):
    """The script's full-size model on `device` (its init), its optimizers as rank `rank` of `world_size` sees them,
    hyperparameters of step `at_step` (set_hparams), and a fixed random gradient on every parameter."""
    model = initialized_model(module, device, seed)
    with as_rank(module, rank, world_size):
        optimizers = module.make_optimizers(model)
    for group in (g for opt in optimizers for g in opt.param_groups):
        group["initial_lr"] = group["lr"]
    module.set_hparams(at_step, optimizers, {})
    gen = torch.Generator(device=device).manual_seed(seed + 1)
    for p in model.parameters():
        p.grad = (torch.randn(p.shape, device=device, generator=gen) * 1e-3).to(p.dtype)
    return model, optimizers


def _timed_updates(opt, device, record):
    """Wrap opt.update so that each call's (shape of the stack, time) (synchronized) is appended to record."""
    update = opt.update

    def timed(W, G, state, group):
        _sync(device)
        t0 = time.perf_counter()
        out = update(W, G, state, group)
        _sync(device)
        record.append((tuple(W.shape), time.perf_counter() - t0))
        return out
    opt.update = timed


def time_share(module, world_size, rank, device, steps=3, warmup=1, at_step=1000, profile=False):
    """Rank `rank`'s matrix optimizer step at `world_size` ranks, on `device`: the first step (its state made: an
    eigendecomposition for SOAP-like optimizers), then `warmup` and `steps` timed steps (median). ms."""
    model, optimizers = build(module, device, rank, world_size, at_step)
    opts = matrix_optimizers(module, optimizers)
    updates = []
    for opt in opts:
        _timed_updates(opt, device, updates)

    def one_step():
        with as_rank(module, rank, world_size):
            _sync(device)
            t0 = time.perf_counter()
            for opt in opts:
                opt.step()
            _sync(device)
            return time.perf_counter() - t0

    first = one_step()
    for _ in range(warmup):
        one_step()
    totals, update_sums, per_stack = [], [], []
    for _ in range(steps):
        updates.clear()
        totals.append(one_step())
        update_sums.append(sum(s for _, s in updates))
        per_stack.append(updates[:])
    stacks = [(type(opt).__name__, g, tuple(P[0].shape), len(P)) for opt in opts for g, P in opt.stacks]
    out = dict(rank=rank, world_size=world_size, matrices=sum(len(P) for opt in opts for _, P in opt.stacks),
               stacks=[dict(optimizer=o, group=g, shape=s, k=k) for o, g, s, k in stacks],
               first_step_ms=round(1000 * first, 2), step_ms=round(1000 * statistics.median(totals), 2),
               update_ms=round(1000 * statistics.median(update_sums), 2), steps_timed=steps,
               update_ms_per_stack=[dict(shape=list(calls[0][0]),
                                         ms=round(1000 * statistics.median(s for _, s in calls), 2))
                                    for calls in zip(*per_stack)],
               state_mib=round(sum(v.nbytes for opt in opts for st in opt.state.values() for v in st.values()
                                   if torch.is_tensor(v)) / 2 ** 20, 1))
    out["machinery_ms"] = round(out["step_ms"] - out["update_ms"], 2)
    if profile:
        out["profile"] = profile_step(module, one_step, device, module.__file__)
    return out


def compare_shares(module, other, world_size, rank, device, steps=5, at_step=1000):
    """Rank `rank`'s share in two versions of a script, on the same model, gradients and hyperparameters, stepped
    alternately (a, b, a, b, ...: a shared machine's load falls on both alike), and their results compared after
    every step: a speed-up must change no bit. ms per version (median), and the largest difference seen."""
    built = [build(m, device, rank, world_size, at_step) for m in (module, other)]
    opts = [matrix_optimizers(m, optimizers) for m, (_, optimizers) in zip((module, other), built)]
    times, cpu_times, differ = ([], []), ([], []), []

    def step(i):
        with as_rank((module, other)[i], rank, world_size):
            _sync(device)
            t0, c0 = time.perf_counter(), time.process_time()
            for opt in opts[i]:
                opt.step()
            _sync(device)
        return time.perf_counter() - t0, time.process_time() - c0

    for k in range(steps + 1):  # the first step (state made) is compared, not timed
        for i in (0, 1) if k % 2 == 0 else (1, 0):
            elapsed, cpu = step(i)
            if k:
                times[i].append(elapsed)
                cpu_times[i].append(cpu)
        mine = [[p for opt in o for _, P in opt.stacks for p in P] for o in opts]
        diff = max((a - b).abs().max().item() for a, b in zip(*mine))
        states = [[v for opt in o for _, P in opt.stacks for p in P for v in opt.state[p].values()
                   if torch.is_tensor(v)] for o in opts]
        same_state = len(states[0]) == len(states[1]) and all(torch.equal(a, b) for a, b in zip(*states))
        differ.append(dict(step=k, max_param_diff=diff, params_equal=diff == 0 and all(
            torch.equal(a, b) for a, b in zip(*mine)), state_equal=same_state))
    ms = [round(1000 * statistics.median(x), 2) for x in times]
    cpu_ms = [round(1000 * statistics.median(x), 2) for x in cpu_times]
    return dict(rank=rank, world_size=world_size, scripts=[module.__file__, other.__file__], ms=ms, cpu_ms=cpu_ms,
                all_ms=[[round(1000 * s, 1) for s in x] for x in times], ratio=round(ms[1] / ms[0], 3),
                all_cpu_ms=[[round(1000 * s, 1) for s in x] for x in cpu_times],
                cpu_ratio=round(cpu_ms[1] / cpu_ms[0], 3) if cpu_ms[0] else None,
                bitwise_equal=all(d["params_equal"] and d["state_equal"] for d in differ), steps=differ)


def format_compare(rep):
    a, b = rep["scripts"]
    lines = [f"rank {rep['rank']} of {rep['world_size']}: optimizer step, the two scripts stepped alternately "
             f"(median of {len(rep['all_ms'][0])} steps each)",
             f"  {rep['ms'][0]:10.1f} ms  {a}   (steps: {', '.join(map(str, rep['all_ms'][0]))})",
             f"  {rep['ms'][1]:10.1f} ms  {b}   (steps: {', '.join(map(str, rep['all_ms'][1]))})",
             f"  ratio {rep['ratio']} (second / first); process CPU time (all threads; what a shared machine's other "
             f"jobs do not inflate): {rep['cpu_ms'][0]:.0f} and {rep['cpu_ms'][1]:.0f} ms, ratio {rep['cpu_ratio']}",
             "  results: " + ("bitwise equal after every step (parameters and optimizer state)" if rep["bitwise_equal"]
                              else "DIFFER: " + "; ".join(f"step {d['step']}: max |param diff| "
                                                          f"{d['max_param_diff']:.3g}, state equal {d['state_equal']}"
                                                          for d in rep["steps"]))]
    return "\n".join(lines)


def time_replicated(module, device, steps=3, warmup=1, at_step=1000):
    """The optimizers that are not MatrixOptimizers (every rank runs them whole), one step timed (median), ms."""
    model, optimizers = build(module, device, 0, 1, at_step)
    mats = matrix_optimizers(module, optimizers)
    rest = [opt for opt in optimizers if opt not in mats]
    times = []
    for i in range(warmup + steps):
        _sync(device)
        t0 = time.perf_counter()
        for opt in rest:
            opt.step()
        _sync(device)
        if i >= warmup:
            times.append(time.perf_counter() - t0)
    sharded = {p for opt in mats for p in opt.owner}
    other_bytes = sum(p.numel() * p.element_size() for p in model.parameters() if p not in sharded)
    part_bytes = [opt.part * next(iter(opt.owner)).element_size() for opt in mats]
    return dict(names=[type(o).__name__ for o in rest], ms=round(1000 * statistics.median(times), 2) if rest else 0.0,
                other_grad_bytes=other_bytes, matrix_params=sum(p.numel() for p in sharded),
                matrix_bytes=sum(p.numel() * p.element_size() for p in sharded), part_bytes_at_1=part_bytes)


def forward_backward_ms(module, device, seqs, micro, steps=2):
    """One forward + backward of `seqs` sequences in microbatches of `micro` on the script's full-size model, compiled
    as the script compiles it (on CUDA; eager on the CPU); the median of `steps` after one warm-up, ms."""
    raw = initialized_model(module, device, seed=0)
    model = module.compiled(raw, device)
    gen = torch.Generator(device=device).manual_seed(2)
    x = torch.randint(0, module.vocab_size, (seqs, module.seq_len), device=device, generator=gen, dtype=torch.int32)
    y = torch.randint(0, module.vocab_size, (seqs, module.seq_len), device=device, generator=gen)
    times = []
    for i in range(1 + steps):
        _sync(device)
        t0 = time.perf_counter()
        for j in range(0, seqs, micro):
            model(x[j:j + micro], y[j:j + micro]).backward()
        _sync(device)
        times.append(time.perf_counter() - t0)
        raw.zero_grad(set_to_none=True)
    return 1000 * statistics.median(times[1:])


def estimate_step(world_size, fwd_bwd_full_ms, shares_ms, replicated, busbw_gbs=BUSBW_GBS):
    """A W-rank step, estimated: forward+backward of the whole batch / W (the batch splits evenly and microbatches
    run one after another), the slowest rank's matrix share, the replicated optimizers, and the collectives by a
    bandwidth model: ring reduce-scatter and all-gather of the matrix buffer ((W-1)/W of it through each rank's link,
    each), ring all-reduce of the other gradients (2 (W-1)/W), at `busbw_gbs` GB/s, no latency term, no overlap
    (the whole-model compile releases the gradients at the end of the backward). ms."""
    w = world_size
    matrix_buffer = replicated["matrix_bytes"]  # ~W x part: what the reduce-scatter reads, the all-gather writes
    comm_bytes = (2 * (w - 1) / w) * matrix_buffer + (2 * (w - 1) / w) * replicated["other_grad_bytes"]
    collectives = 1000 * comm_bytes / (busbw_gbs * 1e9) if w > 1 else 0.0
    parts = dict(forward_backward_ms=fwd_bwd_full_ms / w, slowest_share_ms=max(shares_ms),
                 replicated_ms=replicated["ms"], collectives_ms=collectives)
    parts = {k: round(v, 2) for k, v in parts.items()}
    parts["step_ms"] = round(sum(parts.values()), 2)
    return parts


# -----------------------------------------------------------------------------
# by operation: torch.profiler over one step, each op charged to the innermost function of the script it ran in


def op_kind(name):
    """The kind of work of a profiled op: eigh, QR, matmul, copy, reduction, elementwise, or other (not an aten op)."""
    base = name.removeprefix("aten::").strip("_")
    if "eigh" in base:
        return "eigh"
    if base in ("linalg_qr", "geqrf", "linalg_householder_product", "orgqr"):
        return "QR"
    if base in ("mm", "bmm", "matmul", "addmm", "baddbmm", "linear"):
        return "matmul"
    if base in COPIES:
        return "copy"
    if base in REDUCTIONS:
        return "reduction"
    return "elementwise" if name.startswith("aten::") else "other"


def analytic_flops(name, shapes):
    """FLOPs of the LAPACK-like ops the profiler does not count, from the input shape (k, n, n): geqrf 4/3 n^3 and
    householder_product (orgqr) 4/3 n^3 per square matrix; eigh about 9 n^3 (Golub and Van Loan's count for the
    symmetric QR algorithm with eigenvectors; divide and conquer differs by a constant)."""
    if not shapes or not shapes[0] or len(shapes[0]) < 2:
        return 0
    *batch, m, n = shapes[0]
    k = math.prod(batch) if batch else 1
    if name in ("aten::geqrf", "aten::linalg_householder_product"):
        return k * (2 * m * n * n - 2 * n ** 3 / 3)
    if name == "aten::linalg_qr":  # both, when the backend does not show them as ops of their own
        return 2 * k * (2 * m * n * n - 2 * n ** 3 / 3)
    if name in ("aten::_linalg_eigh", "aten::linalg_eigh"):
        return k * 9 * n ** 3
    return 0


def profile_step(module, one_step, device, script_path):
    """One step under torch.profiler: per (script function, op kind, op, input shapes): time (CPU self time, or the
    device's on CUDA), FLOPs (the profiler's for matmuls and elementwise ops, analytic_flops for QR and eigh)."""
    from torch.profiler import ProfilerActivity, profile
    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if device.type == "cuda" else [])
    with profile(activities=activities, record_shapes=True, with_stack=True, with_flops=True) as prof:
        one_step()
    script = os.path.basename(str(script_path))
    rows = {}
    for evt in prof.events():
        if ".py(" in evt.name or evt.name.startswith("<built-in"):  # the Python tracer's function events
            continue
        us = evt.self_device_time_total if device.type == "cuda" else evt.self_cpu_time_total
        outer = any(c.name == evt.name for c in evt.cpu_children)  # its out= variant inside it does the work
        flops = (evt.flops or 0) + (0 if outer else analytic_flops(evt.name, evt.input_shapes))
        if not us and not flops:
            continue
        fn, parent = "(outside the script)", evt.cpu_parent
        while parent is not None:  # the innermost function of the script this op ran in
            file, _, rest = parent.name.partition("(")
            if rest and os.path.basename(file) == script:
                fn = rest.split(": ", 1)[-1]
                break
            parent = parent.cpu_parent
        shapes = "x".join(str(tuple(s)) for s in (evt.input_shapes or []) if s)[:60]
        key = (fn, op_kind(evt.name), evt.name.removeprefix("aten::"), shapes)
        row = rows.setdefault(key, [0.0, 0.0, 0])
        row[0] += us / 1000
        row[1] += flops
        row[2] += 1
    total = sum(r[0] for r in rows.values())
    table = [dict(function=f, kind=k, op=o, shapes=s, ms=round(r[0], 3), flop=round(r[1]), gflop=round(r[1] / 1e9, 3),
                  calls=r[2],
                  share=round(r[0] / total, 4) if total else 0.0) for (f, k, o, s), r in rows.items()]
    table.sort(key=lambda r: -r["ms"])
    by_kind, by_function = {}, {}
    for r in table:
        for d, key in ((by_kind, r["kind"]), (by_function, r["function"])):
            agg = d.setdefault(key, dict(ms=0.0, gflop=0.0))
            agg["ms"] += r["ms"]
            agg["gflop"] += r["flop"] / 1e9
    def tidy(d):
        return {k: dict(ms=round(v["ms"], 2), gflop=round(v["gflop"], 4), share=round(v["ms"] / total, 4) if total
                        else 0.0) for k, v in sorted(d.items(), key=lambda kv: -kv[1]["ms"])}
    return dict(total_ms=round(total, 2), by_kind=tidy(by_kind), by_function=tidy(by_function), ops=table,
                timer="device (CUDA kernels)" if device.type == "cuda" else "CPU self time",
                note="profiled step: the profiler's own overhead inflates small ops; the timed steps have none")


def format_profile(prof, top=25):
    lines = [f"  by operation kind ({prof['timer']}, one profiled step, {prof['total_ms']:.1f} ms in ops):",
             f"    {'kind':12s} {'ms':>10s} {'share':>6s} {'GFLOP':>9s} {'GFLOP/s':>8s}"]
    for kind, v in prof["by_kind"].items():
        rate = v["gflop"] / (v["ms"] / 1000) if v["ms"] and v["gflop"] else 0
        lines.append(f"    {kind:12s} {v['ms']:10.2f} {v['share'] * 100:5.1f}% {v['gflop']:9.2f} {rate:8.1f}")
    lines.append("  by function of the script:")
    for fn, v in prof["by_function"].items():
        lines.append(f"    {fn:28s} {v['ms']:10.2f} ms {v['share'] * 100:5.1f}%  {v['gflop']:9.2f} GFLOP")
    lines.append(f"  the {top} largest (function, op, input shapes):")
    for r in prof["ops"][:top]:
        rate = r["gflop"] / (r["ms"] / 1000) if r["ms"] and r["gflop"] else 0
        lines.append(f"    {r['ms']:9.2f} ms {r['share'] * 100:5.1f}% {r['gflop']:8.2f} GFLOP {rate:7.1f} GFLOP/s "
                     f"x{r['calls']:<3d} {r['function']:18s} {r['kind']:11s} {r['op']:24s} {r['shapes']}")
    return "\n".join(lines)


def share_report(module, world_size, ranks, device, steps, warmup, at_step, profile, fwd_seqs, fwd_bwd_ms_given,
                 busbw_gbs, say=print):
    """--share: every rank in `ranks` timed, the replicated optimizers, forward+backward and the step estimate."""
    rep = dict(script=module.__file__, world_size=world_size, device=str(device), torch=torch.__version__,
               date=time.strftime("%Y-%m-%d"), at_step=at_step, ranks=[])
    if device.type == "cuda":
        rep["gpu"] = torch.cuda.get_device_name(device)
    for r in ranks:
        say(f"rank {r} of {world_size}: building and timing its share on {device}")
        rep["ranks"].append(time_share(module, world_size, r, device, steps, warmup, at_step,
                                       profile and r == ranks[0]))
        say("  " + ", ".join(f"{s['shape']}: {s['ms']:.1f} ms" for s in rep["ranks"][-1]["update_ms_per_stack"]))
    say("the replicated optimizers")
    rep["replicated"] = time_replicated(module, device, steps, warmup, at_step)
    batch_seqs = module.batch_size // module.seq_len
    per_rank = batch_seqs // world_size
    if fwd_bwd_ms_given is not None:
        rep["forward_backward"] = dict(source="given (--fwd-bwd-ms): the whole batch on one device",
                                       full_ms=fwd_bwd_ms_given)
    else:
        seqs = min(fwd_seqs or per_rank, per_rank)
        micro = min(seqs, module.choose_micro_batch(device, per_rank, world_size))
        say(f"forward+backward of {seqs} sequences (microbatches of {micro}) on {device}")
        ms = forward_backward_ms(module, device, seqs, micro)
        rep["forward_backward"] = dict(source=f"measured: {seqs} sequences in microbatches of {micro}, "
                                       f"{'compiled' if device.type == 'cuda' else 'eager'}, scaled linearly to "
                                       f"{batch_seqs}", measured_ms=round(ms, 2), seqs=seqs,
                                       full_ms=round(ms * batch_seqs / seqs, 2))
    rep["estimate"] = estimate_step(world_size, rep["forward_backward"]["full_ms"],
                                    [r["step_ms"] for r in rep["ranks"]], rep["replicated"], busbw_gbs)
    rep["estimate"]["ranks_timed"] = len(ranks)
    rep["busbw_gbs"] = busbw_gbs
    return rep


def format_share(rep):
    w = rep["world_size"]
    lines = [f"optimizer share per rank of {rep['script']} at W = {w}, timed on {rep.get('gpu', rep['device'])} "
             f"(torch {rep['torch']}), {rep['date']}, hyperparameters of step {rep['at_step']}",
             f"  {'rank':>4s} {'matrices':>8s} {'first step':>11s} {'step':>10s} {'update()':>10s} {'machinery':>10s} "
             f"{'state':>9s}   stacks (shape x k)"]
    for r in rep["ranks"]:
        stacks = ", ".join(f"{s['shape'][0]}x{s['shape'][1]} x{s['k']}" for s in r["stacks"])
        lines.append(f"  {r['rank']:>4d} {r['matrices']:>8d} {r['first_step_ms']:>8.1f} ms {r['step_ms']:>7.1f} ms "
                     f"{r['update_ms']:>7.1f} ms {r['machinery_ms']:>7.1f} ms {r['state_mib']:>6.0f} MiB   {stacks}")
    rp = rep["replicated"]
    lines.append(f"  replicated optimizers ({', '.join(rp['names']) or 'none'}), every rank: {rp['ms']} ms")
    for r in rep["ranks"]:
        if "profile" in r:
            lines.append(f"profile of rank {r['rank']}'s step:")
            lines.append(format_profile(r["profile"]))
    fb, est = rep["forward_backward"], rep["estimate"]
    lines.append(f"ESTIMATE of one step at W = {w} (not a {w}-rank measurement):")
    lines.append(f"  forward+backward  {est['forward_backward_ms']:9.2f} ms  = {fb['full_ms']:.1f} ms / {w} "
                 f"({fb['source']})")
    lines.append(f"  slowest share     {est['slowest_share_ms']:9.2f} ms  (the slowest of the {est['ranks_timed']} "
                 "rank(s) timed above)")
    lines.append(f"  replicated        {est['replicated_ms']:9.2f} ms")
    lines.append(f"  collectives       {est['collectives_ms']:9.2f} ms  (bandwidth model, not measured: ring "
                 f"reduce-scatter + all-gather of {rp['matrix_bytes'] / 1e6:.0f} MB of matrices, all-reduce of "
                 f"{rp['other_grad_bytes'] / 1e6:.0f} MB of other gradients, at an assumed {rep['busbw_gbs']:.0f} GB/s "
                 "bus bandwidth, no latency, no overlap)")
    lines.append(f"  step              {est['step_ms']:9.2f} ms  (estimate)")
    return "\n".join(lines)
