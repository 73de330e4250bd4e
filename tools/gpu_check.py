"""One GPU session, prepared: the self-check, ours against the public script, val loss at step 125.

    python -m tools.gpu_check --public PATH/TO/public_train_gpt_simple.py [--out DIR] [--budget 540]
    python -m tools.gpu_check --public PATH --rehearse --out /tmp/rehearsal     # the same on this CPU, tiny

PATH is the public track-3 script (records/track_3_optimization/train_gpt_simple.py of
KellerJordan/modded-nanogpt), which this repo does not ship: bring your own copy. On one GPU, no
network, in phases that each have a time limit and write their results as they go (a crash or a
timeout in one phase leaves the others' numbers), under --out (default $OUT):

  data    synthetic shards with learnable structure (a fixed random Markov chain:  data.json
          each token has 4 possible successors, probabilities 1/2, 1/4, 1/8, 1/8, so
          no model can go below its entropy, 1.213 nats, and a model that sees the
          future can), generated here with numpy
  sdpa    attention alone, forward + backward at the model's shape, per backend  sdpa.json, env.json
          (flash, efficient, cudnn, math; and the default with cuDNN on and off);
          torch, CUDA, cuDNN, the GPU
  check   python -m tools.speed --check                                          check.json, check.log
  ours    this repo's train_gpt_simple.py on the shards, its own schedule        ours/
          (3250 steps), stopped after the val pass at step --steps (125)
  public  the public script, the same shards and stop (a patched copy made at    public/
          run time: the stop, the val set size; nothing else on a GPU)
  before46, after46 (only when listed in --phases): record #46's port, before  before46.json, after46.json
          (--record46-before PATH) and as it is now: tools.speed --share 8 --rank 0
          --profile, rank 0's optimizer share of an 8-GPU run by operation, and the
          estimated 8-GPU step (forward+backward from the ours phase's ms/step)
  summary ms/step of both over steps 25-124 (host clock after each step's        summary.json, summary.txt
          optimizer, the same for both), MFU, val loss at steps 0 and 125

--rehearse runs every phase on this CPU with tiny sizes (gloo instead of NCCL, the public copy's
cuda calls patched to cpu), so that the GPU run cannot fail on a typo.
"""
import argparse
import json
import math
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
BATCH, SEQ_LEN, VOCAB = 8 * 64 * 1024, 1024, 50257
BRANCH_P = (0.5, 0.25, 0.125, 0.125)  # the Markov chain's successor probabilities
WINDOW = (25, 125)  # ms/step over the steps in [25, 125): after compilation and warm-up, no val pass inside
# phase: (nominal limit, least useful time) in seconds, for the real GPU run
LIMITS = dict(sdpa=(60, 20), check=(200, 100), ours=(240, 150), public=(300, 150), before46=(120, 60),
              after46=(120, 60))
PHASES = ("data", "sdpa", "check", "ours", "public", "before46", "after46")
RECORD46 = ROOT / "records" / "20260619_cwd_rowfloor_tailema" / "train_gpt_simple.py"
H200_FWD_BWD_MS = 1020.0  # 1033.7 ms/step - 13.7 ms optimizer: the baseline on one H200, tools.speed, 2026-11-30
TINY = dict(vocab=128, layers=2, dim=32, seqs=8, seq_len=16, micro=2, val_seqs=32)  # --rehearse


def say(msg):
    print(f"[gpu_check {time.strftime('%H:%M:%S')}] {msg}", flush=True)


def write_json(path, obj):
    tmp = f"{path}.tmp"
    with open(tmp, "w") as f:
        json.dump(obj, f, indent=1, default=str)
    os.replace(tmp, path)


# -----------------------------------------------------------------------------
# data: a fixed random Markov chain


def markov_table(vocab, seed=0):
    """successor[token, j]: the j-th possible next token (4 random permutations of the vocabulary)."""
    rng = np.random.default_rng(seed)
    return np.stack([rng.permutation(vocab) for _ in BRANCH_P], axis=1)


def markov_tokens(successor, n, seed, chains=65536, min_length=4096):
    """n tokens of the chain: up to `chains` independent walks of at least `min_length` tokens (a walk's start
    cannot be predicted), generated side by side, each stored contiguously."""
    rng = np.random.default_rng(seed)
    chains = max(1, min(chains, n // min_length))
    steps = -(-n // chains)
    cdf = np.cumsum(BRANCH_P)
    cdf[-1] = 1.0
    out = np.empty((steps, chains), dtype=np.uint16)
    cur = rng.integers(0, len(successor), chains)
    for t in range(steps):
        out[t] = cur
        cur = successor[cur, np.searchsorted(cdf, rng.random(chains), side="right")]
    return out.T.reshape(-1)[:n]


def entropy_rate(successor, tokens):
    """The chain's entropy per token (nats), weighting each state by its frequency in `tokens`."""
    p = np.array(BRANCH_P)
    h = np.empty(len(successor))
    for s, row in enumerate(successor):
        merged = {}
        for tok, q in zip(row, p):
            merged[tok] = merged.get(tok, 0.0) + q
        q = np.array(list(merged.values()))
        h[s] = -(q * np.log(q)).sum()
    freq = np.bincount(tokens, minlength=len(successor)) / len(tokens)
    return float((freq * h).sum())


def make_data(directory, vocab, batch, steps, val_tokens):
    from data.shards import write_shard
    os.makedirs(directory, exist_ok=True)
    successor = markov_table(vocab)
    train = markov_tokens(successor, (steps + 1) * batch + 2, seed=1)
    val = markov_tokens(successor, val_tokens + batch, seed=2)
    write_shard(os.path.join(directory, "fineweb_train_000001.bin"), train)
    write_shard(os.path.join(directory, "fineweb_val_000000.bin"), val)
    return dict(dir=directory, vocab=vocab, train_tokens=len(train), val_tokens=len(val), steps=steps,
                entropy_nats=round(entropy_rate(successor, val), 4), uniform_nats=round(math.log(vocab), 4))


# -----------------------------------------------------------------------------
# phases run in child processes: python -m tools.gpu_check _env | _sdpa | _ours


def child_env(out):
    import torch
    info = dict(torch=torch.__version__, cuda=torch.version.cuda, cuda_available=torch.cuda.is_available(),
                date=time.strftime("%Y-%m-%d %H:%M:%S %Z"), python=sys.version.split()[0])
    facts = dict(gpu=lambda: torch.cuda.get_device_name(0), gpus=torch.cuda.device_count,
                 mem_gib=lambda: round(torch.cuda.get_device_properties(0).total_memory / 2 ** 30, 1),
                 capability=lambda: ".".join(map(str, torch.cuda.get_device_capability(0))),
                 cudnn=torch.backends.cudnn.version, nccl=lambda: ".".join(map(str, torch.cuda.nccl.version())),
                 driver=lambda: subprocess.run(["nvidia-smi", "--query-gpu=driver_version", "--format=csv,noheader"],
                                               capture_output=True, text=True, timeout=20).stdout.strip())
    for key, fact in facts.items() if torch.cuda.is_available() else ():
        try:
            info[key] = fact()
        except Exception as e:  # noqa: BLE001 - a fact this machine cannot give is noted, not fatal
            info[key] = f"unknown ({type(e).__name__})"
    write_json(out, info)


def child_sdpa(out, rehearse):
    """Forward + backward of the attention alone, at (micro, heads, 1024, 128) bf16 causal, per SDPA backend."""
    child_env(os.path.join(os.path.dirname(out), "env.json"))
    import torch
    import torch.nn.functional as F
    from torch.nn.attention import SDPBackend, sdpa_kernel
    cuda = torch.cuda.is_available() and not rehearse
    dev = "cuda" if cuda else "cpu"
    shape = (64, 6, SEQ_LEN, 128) if cuda else (2, 2, 16, 16)
    gen = torch.Generator(device=dev).manual_seed(0)
    q, k, v = (torch.randn(shape, device=dev, dtype=torch.bfloat16, generator=gen).requires_grad_() for _ in range(3))
    results = dict(shape=shape, device=dev)
    write_json(out, results)

    def run_once():
        y = F.scaled_dot_product_attention(q, k, v, is_causal=True, scale=0.12)
        y.sum().backward()
        return y

    def timed(n=10):
        for _ in range(3):
            run_once()
        if cuda:
            torch.cuda.synchronize()
        t0 = time.perf_counter()
        for _ in range(n):
            run_once()
        if cuda:
            torch.cuda.synchronize()
        return round(1000 * (time.perf_counter() - t0) / n, 3)

    ref = None
    for name in ("FLASH_ATTENTION", "EFFICIENT_ATTENTION", "CUDNN_ATTENTION", "MATH"):
        try:
            with sdpa_kernel(getattr(SDPBackend, name)):
                y = run_once().float()
                ms = timed()
            ref = y if ref is None else ref
            results[name.lower()] = dict(ok=True, ms_fwd_bwd=ms, max_diff_vs_first=round((y - ref).abs().max().item(), 5))
        except Exception as e:  # noqa: BLE001 - a backend that cannot run here is a result
            results[name.lower()] = dict(ok=False, error=f"{type(e).__name__}: {str(e).strip().splitlines()[0][:300]}")
        write_json(out, results)
    if cuda:
        for cudnn_on in (True, False):
            torch.backends.cuda.enable_cudnn_sdp(cudnn_on)
            try:
                results[f"default_cudnn_{'on' if cudnn_on else 'off'}"] = dict(ok=True, ms_fwd_bwd=timed())
            except Exception as e:  # noqa: BLE001
                results[f"default_cudnn_{'on' if cudnn_on else 'off'}"] = dict(ok=False, error=f"{type(e).__name__}: {e}"[:300])
            write_json(out, results)
    torch.backends.cuda.enable_cudnn_sdp(True)
    write_json(out, dict(results, done=True))


class _StopAt(Exception):
    pass


def child_ours(script, data_dir, out_dir, stop, val_tokens, rehearse):
    """The repo's script on the shards, its own schedule, stopped after the val line of step `stop`."""
    sys.path.insert(0, str(ROOT))
    from tools import tiny
    module = tiny.load_script(script)
    os.makedirs(out_dir, exist_ok=True)
    overrides = dict(train_files=os.path.join(data_dir, "fineweb_train_*.bin"),
                     val_files=os.path.join(data_dir, "fineweb_val_*.bin"), val_tokens=val_tokens,
                     log_dir=os.path.join(out_dir, "logs"), checkpoint_dir=os.path.join(out_dir, "checkpoints"),
                     checkpoint_every=None)
    if rehearse:
        overrides.update(vocab_size=TINY["vocab"], num_layers=TINY["layers"], model_dim=TINY["dim"],
                         batch_size=TINY["seqs"] * TINY["seq_len"], seq_len=TINY["seq_len"],
                         micro_batch_seqs=TINY["micro"], device_type="cpu")
    for key, value in overrides.items():
        setattr(module, key, value)
    module.check_launch = lambda: None  # the shards hold only the steps this run takes
    steps_file = open(os.path.join(out_dir, "steps.jsonl"), "w")
    make_optimizers, log = module.make_optimizers, module.log
    count = [0]

    def timed_make_optimizers(model):
        optimizers = make_optimizers(model)
        last, step = optimizers[-1], optimizers[-1].step

        def stamped(*args, **kwargs):  # the host clock after the step's last optimizer, as the public script prints
            result = step(*args, **kwargs)
            steps_file.write(json.dumps(dict(step=count[0], t=time.perf_counter())) + "\n")
            steps_file.flush()
            count[0] += 1
            return result
        last.step = stamped
        return optimizers

    def log_and_stop(run, line, echo=True):
        log(run, line, echo)
        if line.startswith(f"step:{stop}/"):
            raise _StopAt(line)

    module.make_optimizers, module.log = timed_make_optimizers, log_and_stop
    os.environ.setdefault("SEED", "0")
    t0 = time.perf_counter()
    steps_file.write(json.dumps(dict(step=-1, t=t0)) + "\n")
    try:
        module.main(1)
    except _StopAt:
        pass
    steps_file.close()


# -----------------------------------------------------------------------------
# the public script: a patched copy made at run time


def _sub(text, old, new, what):
    if text.count(old) != 1:
        raise ValueError(f"the public script changed: expected one {what} ({old!r}), found {text.count(old)}")
    return text.replace(old, new)


def patch_public(text, stop, val_tokens, rehearse):
    """The public script, stopped after the val pass of step `stop`, with `val_tokens` val tokens; with
    `rehearse`, also on the CPU (gloo, no compile) at the tiny sizes."""
    text = _sub(text, "        if step == train_steps:\n            break\n",
                f"        if step == train_steps or step == {stop}:  # gpu_check: stop here\n            break\n",
                "loop end")
    text = _sub(text, "val_tokens = 20 * 524288\n", f"val_tokens = {val_tokens}  # gpu_check\n", "val_tokens")
    if not rehearse:
        return text
    t = TINY
    for old, new in [
        ('device = torch.device("cuda", int(os.environ["LOCAL_RANK"]))', 'device = torch.device("cpu")'),
        ("torch.cuda.set_device(device)", "pass"),
        ('dist.init_process_group(backend="nccl", device_id=device)', 'dist.init_process_group(backend="gloo")'),
        ("dtype=torch.uint16, pin_memory=True)", "dtype=torch.uint16, pin_memory=False)"),
        ('inputs = buf[:-1].to(device="cuda", ', 'inputs = buf[:-1].to(device="cpu", '),
        ('targets = buf[1:].to(device="cuda", ', 'targets = buf[1:].to(device="cpu", '),
        ("torch.cuda.get_device_name(device)", "str(device)"),
        ("def distributed_data_generator(filename_pattern: str, batch_size: int, seq_len=1024):",
         f"def distributed_data_generator(filename_pattern: str, batch_size: int, seq_len={t['seq_len']}):"),
        ("def __init__(self, dim: int, head_dim=128):", "def __init__(self, dim: int, head_dim=16):"),
        ("batch_size = 8 * 64 * 1024\n", f"batch_size = {t['seqs'] * t['seq_len']}\n"),
        ("mbs = 64\n", f"mbs = {t['micro']}\n"),
        ("model = GPT(vocab_size=50304, num_layers=12, model_dim=768).cuda()",
         f"model = GPT(vocab_size={t['vocab']}, num_layers={t['layers']}, model_dim={t['dim']})"),
        ("model.compile(dynamic=False)\n", "pass  # gpu_check --rehearse: no compile on the CPU\n"),
        ("@torch.compile\ndef muon_update", "def muon_update"),
    ]:
        text = _sub(text, old, new, "rehearsal target")
    return text


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# -----------------------------------------------------------------------------
# the driver


def run_phase(name, cmd, timeout, out_dir, cwd=ROOT, env=None, log_name=None):
    """Run `cmd` with its output in out_dir/<log_name>; kill its process group at `timeout` s. A result dict."""
    log_path = os.path.join(out_dir, log_name or f"{name}.log")
    say(f"{name}: start, limit {timeout:.0f} s: {' '.join(map(str, cmd))}")
    t0 = time.monotonic()
    with open(log_path, "w") as log:
        proc = subprocess.Popen([str(c) for c in cmd], cwd=cwd, env=env, stdout=log, stderr=subprocess.STDOUT,
                                start_new_session=True)
        try:
            rc = proc.wait(timeout=timeout)
            status = "ok" if rc == 0 else f"exit {rc}"
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)  # not SIGTERM: our script would write a 1.4 GB checkpoint first
            proc.wait()
            status = "timeout"
    seconds = round(time.monotonic() - t0, 1)
    say(f"{name}: {status} after {seconds} s")
    return dict(status=status, seconds=seconds, log=log_path)


def tail(path, n=15):
    try:
        with open(path, errors="replace") as f:
            return "".join(f.readlines()[-n:])
    except OSError:
        return ""


def ours_numbers(out_dir, stop):
    """Per-step host times (steps.jsonl) and val lines (the script's log) of the `ours` phase."""
    ends = {}
    try:
        with open(os.path.join(out_dir, "steps.jsonl")) as f:
            for line in f:
                rec = json.loads(line)
                ends[rec["step"]] = rec["t"]
    except (OSError, ValueError):
        pass
    vals = {}
    for log in Path(out_dir, "logs").glob("*.txt") if Path(out_dir, "logs").is_dir() else []:
        for m in re.finditer(r"^step:(\d+)/\d+ val_loss:(\S+) train_time:(\S+)s", log.read_text(errors="replace"), re.M):
            vals[int(m.group(1))] = dict(val_loss=float(m.group(2)), train_time=float(m.group(3)))
    return dict(ends={k: v for k, v in ends.items() if k >= 0}, vals=vals)


def public_numbers(stdout_path):
    """Per-step train_time (the public script prints it after every step) and val lines from its stdout."""
    text = Path(stdout_path).read_text(errors="replace") if os.path.exists(stdout_path) else ""
    ends, vals = {}, {}
    for m in re.finditer(r"^step:(\d+)/\d+ train_time:(\S+)s", text, re.M):
        ends[int(m.group(1)) - 1] = float(m.group(2))  # printed as step+1 after step `step`
    for m in re.finditer(r"^step:(\d+)/\d+ val_loss:(\S+) train_time:(\S+)s", text, re.M):
        vals[int(m.group(1))] = dict(val_loss=float(m.group(2)), train_time=float(m.group(3)))
    return dict(ends=ends, vals=vals)


def ms_per_step(ends, window=WINDOW):
    """(ms per step, first, last) from end times of steps, over [window) or as much of it as ran."""
    a, b = window[0] - 1, window[1] - 1
    have = sorted(k for k in ends if k >= a)
    if a not in ends or not have or have[-1] <= a:
        return None, None, None
    last = min(b, have[-1])
    return round(1000 * (ends[last] - ends[a]) / (last - a), 1), a + 1, last


def summarize(results, data, stop, world_tokens=BATCH):
    peak = 989e12 if any(g in str(results.get("env", {}).get("gpu", "")) for g in ("H100", "H200", "GH200")) else None
    rows = {}
    for who in ("ours", "public"):
        nums = results.get(f"{who}_numbers") or dict(ends={}, vals={})
        ms, first, last = ms_per_step(nums["ends"])
        vals = nums["vals"]
        synced = None
        if 125 in vals and 250 in vals:
            synced = round(1000 * (vals[250]["train_time"] - vals[125]["train_time"]) / 125, 1)
        rows[who] = dict(ms_per_step=ms, window=[first, last] if ms else None,
                         mfu=round(4.48e14 / (ms / 1000) / peak, 3) if ms and peak else None,
                         synced_ms_per_step_125_250=synced, steps_done=max(nums["ends"], default=-1) + 1,
                         **{f"val_loss_{s}": vals[s]["val_loss"] for s in sorted(vals)})
    ours, public = rows["ours"], rows["public"]
    if ours["ms_per_step"] and public["ms_per_step"]:
        rows["ratio_ours_over_public"] = round(ours["ms_per_step"] / public["ms_per_step"], 3)
    for s in (0, 125, 250):
        if f"val_loss_{s}" in ours and f"val_loss_{s}" in public:
            rows[f"val_diff_{s}"] = round(ours[f"val_loss_{s}"] - public[f"val_loss_{s}"], 5)
    rows["entropy_floor_nats"] = data.get("entropy_nats") if data else None
    for name in ("before46", "after46"):
        rep = results.get(name)
        if rep:
            r0, est = rep["ranks"][0], rep["estimate"]
            kinds = r0.get("profile", {}).get("by_kind", {})
            rows[name] = dict(rank0_step_ms=r0["step_ms"], update_ms=r0["update_ms"], machinery_ms=r0["machinery_ms"],
                              first_step_ms=r0["first_step_ms"], by_kind={k: v["ms"] for k, v in kinds.items()},
                              estimated_step_ms_8=est["step_ms"], collectives_ms=est["collectives_ms"])
            if ours["ms_per_step"]:  # the baseline at 8 GPUs, the same estimate: its step / 8 + the same collectives
                base = ours["ms_per_step"] / 8 + est["collectives_ms"]
                rows[name]["baseline_estimated_step_ms_8"] = round(base, 2)
                rows[name]["ratio_to_baseline_8"] = round(est["step_ms"] / base, 3)
    return rows


def format_summary(results, rows):
    env = results.get("env", {})
    lines = [f"GPU check {env.get('date', '')}: {env.get('gpu', 'cpu (rehearsal)')}, torch {env.get('torch')}, "
             f"CUDA {env.get('cuda')}, cuDNN {env.get('cudnn')}",
             f"{'phase':8s} {'status':9s} {'seconds':>8s}"]
    for name in PHASES:
        r = results.get("phases", {}).get(name)
        if r:
            lines.append(f"{name:8s} {r['status']:9s} {r['seconds']:8.1f}")
    check = results.get("check", {})
    if check:
        lines.append(f"check: {check.get('status')}; micro_batch_seqs {check.get('micro_batch_seqs')}, "
                     f"{check.get('ms_per_step')} ms/step, MFU {check.get('mfu')}, optimizer {check.get('optimizer_ms')} ms, "
                     f"peak {check.get('peak_mem_gib')} GiB of {check.get('gpu_mem_gib')}, first step "
                     f"{check.get('first_step_s')} s" + ("" if check.get("status") == "PASS" else
                                                         "; problems: " + "; ".join(check.get("problems", []))))
    sdpa = results.get("sdpa", {})
    if sdpa:
        parts = [f"{k} {v['ms_fwd_bwd']} ms" if v.get("ok") else f"{k} FAILED ({v.get('error', '')[:80]})"
                 for k, v in sdpa.items() if isinstance(v, dict) and ("ok" in v)]
        lines.append(f"sdpa fwd+bwd {tuple(sdpa.get('shape', ()))}: " + "; ".join(parts))
    o, p = rows["ours"], rows["public"]
    lines.append(f"{'':34s} {'ours':>10s} {'public':>10s}")
    lines.append(f"{'ms/step (steps ' + str(WINDOW[0]) + '-' + str(WINDOW[1] - 1) + ', host clock)':34s} "
                 f"{o['ms_per_step']!s:>10s} {p['ms_per_step']!s:>10s}   ratio {rows.get('ratio_ours_over_public')}")
    lines.append(f"{'MFU':34s} {o['mfu']!s:>10s} {p['mfu']!s:>10s}")
    lines.append(f"{'steps done':34s} {o['steps_done']!s:>10s} {p['steps_done']!s:>10s}")
    for s in (0, 125, 250):
        if f"val_loss_{s}" in o or f"val_loss_{s}" in p:
            lines.append(f"{'val_loss at step ' + str(s):34s} {o.get(f'val_loss_{s}')!s:>10s} "
                         f"{p.get(f'val_loss_{s}')!s:>10s}   diff {rows.get(f'val_diff_{s}')}")
    if o.get("synced_ms_per_step_125_250") or p.get("synced_ms_per_step_125_250"):
        lines.append(f"{'ms/step 125-250 (synced val clock)':34s} {o['synced_ms_per_step_125_250']!s:>10s} "
                     f"{p['synced_ms_per_step_125_250']!s:>10s}")
    lines.append(f"entropy floor of the synthetic data: {rows['entropy_floor_nats']} nats/token (uniform: "
                 f"{results.get('data', {}).get('uniform_nats')})")
    for name in ("before46", "after46"):
        r = rows.get(name)
        if r:
            lines.append(f"{name}: rank 0 of 8, optimizer step {r['rank0_step_ms']} ms (update() {r['update_ms']}, "
                         f"machinery {r['machinery_ms']}; first step {r['first_step_ms']}); by kind: "
                         + ", ".join(f"{k} {v:.1f}" for k, v in r["by_kind"].items()))
            lines.append(f"  ESTIMATED 8-GPU step {r['estimated_step_ms_8']} ms (collectives {r['collectives_ms']} ms, "
                         f"a bandwidth model); the baseline's, estimated the same way, "
                         f"{r.get('baseline_estimated_step_ms_8')} ms: ratio {r.get('ratio_to_baseline_8')}")
    return "\n".join(lines)


def driver(args):
    out = os.path.abspath(args.out)
    os.makedirs(out, exist_ok=True)
    work = args.work or tempfile.mkdtemp(prefix="gpu_check_")
    os.makedirs(work, exist_ok=True)
    deadline = time.monotonic() + args.budget
    scale = args.budget / 540
    results = dict(args=vars(args), phases={}, out=out, work=work)
    t = TINY
    batch = t["seqs"] * t["seq_len"] if args.rehearse else BATCH
    val_tokens = t["val_seqs"] * t["seq_len"] if args.rehearse else args.val_tokens
    order = [p for p in PHASES if p in args.phases]

    def limit(name):
        later = [p for p in order[order.index(name) + 1:] if p in LIMITS]
        reserve = sum(LIMITS[p][1] * scale for p in later)
        remaining = deadline - time.monotonic()
        return min(LIMITS[name][0] * scale, remaining - reserve) if name in LIMITS else remaining

    def save():
        write_json(os.path.join(out, "results.json"), results)

    def phase(name, cmd, **kw):
        timeout = limit(name)
        if timeout < LIMITS.get(name, (0, 5))[1] * scale * 0.5:
            results["phases"][name] = dict(status="skipped", seconds=0.0, why=f"{timeout:.0f} s left for it")
            say(f"{name}: skipped, {timeout:.0f} s of the budget left for it")
            save()
            return None
        r = run_phase(name, cmd, timeout, out, **kw)
        results["phases"][name] = r
        save()
        return r

    py = sys.executable
    data = {}
    data_dir = os.path.join(work, "data")
    if "data" in order:
        t0 = time.monotonic()
        say(f"data: {args.steps + 1} steps of train tokens and {val_tokens} val tokens in {data_dir}")
        try:
            data = make_data(data_dir, t["vocab"] if args.rehearse else VOCAB, batch, args.steps, val_tokens)
            status = "ok"
        except Exception as e:  # noqa: BLE001 - reported; the phases that need data then fail on their own
            data, status = dict(error=f"{type(e).__name__}: {e}"), "error"
        results["phases"]["data"] = dict(status=status, seconds=round(time.monotonic() - t0, 1))
        results["data"] = data
        write_json(os.path.join(out, "data.json"), data)
        save()
        say(f"data: {status}, entropy floor {data.get('entropy_nats')} nats/token")
    if "sdpa" in order:
        phase("sdpa", [py, "-m", "tools.gpu_check", "_sdpa", os.path.join(out, "sdpa.json")]
              + (["--rehearse"] if args.rehearse else []))
        for key in ("sdpa", "env"):
            try:
                results[key] = json.load(open(os.path.join(out, f"{key}.json")))
            except (OSError, ValueError):
                pass
    if "check" in order:
        phase("check", [py, "-m", "tools.speed", str(args.ours), "--check", "--json", "--trials", "1"]
              + (["--cpu"] if args.rehearse else []))  # 1 trial here: the budget; a user's --check runs 2
        text = tail(os.path.join(out, "check.log"), 400)
        found = [ln for ln in text.splitlines() if ln.startswith("{") and '"status"' in ln]
        if found:
            results["check"] = json.loads(found[-1])
            write_json(os.path.join(out, "check.json"), results["check"])
        save()
    if "ours" in order:
        ours_dir = os.path.join(out, "ours")
        phase("ours", [py, "-m", "tools.gpu_check", "_ours", str(args.ours), data_dir, ours_dir, str(args.steps),
                       str(val_tokens)] + (["--rehearse"] if args.rehearse else []), log_name="ours.log")
        results["ours_numbers"] = ours_numbers(ours_dir, args.steps)
        save()
    if "public" in order:
        public_dir = os.path.join(work, "public")
        os.makedirs(os.path.join(public_dir, "data"), exist_ok=True)
        link = os.path.join(public_dir, "data", "fineweb10B")
        if not os.path.islink(link):
            os.symlink(data_dir, link)
        try:
            patched = patch_public(Path(args.public).read_text(), args.steps, val_tokens, args.rehearse)
            script = os.path.join(public_dir, "train_gpt_public.py")
            Path(script).write_text(patched)
            env = dict(os.environ, RANK="0", WORLD_SIZE="1", LOCAL_RANK="0", LOCAL_WORLD_SIZE="1",
                       MASTER_ADDR="127.0.0.1", MASTER_PORT=str(free_port()), PYTHONUNBUFFERED="1")
            phase("public", [py, script], cwd=public_dir, env=env, log_name="public_stdout.txt")
        except (OSError, ValueError) as e:
            results["phases"]["public"] = dict(status="error", seconds=0.0, why=str(e))
            say(f"public: {e}")
        results["public_numbers"] = public_numbers(os.path.join(out, "public_stdout.txt"))
        logs = Path(public_dir, "logs")
        if logs.is_dir():  # the public log (it starts with the patched script's text): keep only its run lines
            for log in logs.glob("*.txt"):
                body = log.read_text(errors="replace").split("=" * 100, 1)[-1]
                Path(out, "public_log_tail.txt").write_text(body)
        save()
    for name, script in (("before46", args.record46_before), ("after46", RECORD46)):
        if name in order:
            ms = ms_per_step(results.get("ours_numbers", {}).get("ends", {}))[0]
            fwd_bwd = ms or H200_FWD_BWD_MS  # ours' whole step at W=1 (its optimizer, ~1.3% of it, included)
            results[f"{name}_fwd_bwd_source"] = "ours phase ms/step" if ms else "H200 figure of 2026-11-30"
            phase(name, [py, "-m", "tools.speed", str(script), "--share", "8", "--rank", "0", "--profile", "--json",
                         "--fwd-bwd-ms", str(fwd_bwd)] + (["--cpu"] if args.rehearse else []))
            found = [ln for ln in tail(os.path.join(out, f"{name}.log"), 400).splitlines() if ln.startswith("{")]
            if found:
                results[name] = json.loads(found[-1])
                write_json(os.path.join(out, f"{name}.json"), results[name])
            save()
    rows = summarize(results, data, args.steps)
    results["summary"] = rows
    save()
    write_json(os.path.join(out, "summary.json"), rows)
    text = format_summary(results, rows)
    Path(out, "summary.txt").write_text(text + "\n")
    print("\n" + text, flush=True)
    if not args.keep_work and not args.work:
        shutil.rmtree(work, ignore_errors=True)
    failed = [n for n, r in results["phases"].items() if r["status"] not in ("ok",)]
    if results.get("check", {}).get("status") not in (None, "PASS"):
        failed.append("check")
    print(f"\nphases not ok: {', '.join(failed) or 'none'}; results in {out}", flush=True)
    return 1 if failed else 0


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    if argv and argv[0] == "_env":
        return child_env(argv[1])
    if argv and argv[0] == "_sdpa":
        return child_sdpa(argv[1], "--rehearse" in argv)
    if argv and argv[0] == "_ours":
        script, data_dir, out_dir, stop, val_tokens = argv[1:6]
        return child_ours(script, data_dir, out_dir, int(stop), int(val_tokens), "--rehearse" in argv)
    parser = argparse.ArgumentParser(prog="python -m tools.gpu_check", description=__doc__.split("\n\n")[0])
    parser.add_argument("--public", help="the public track-3 train_gpt_simple.py (your own copy; for the public phase)")
    parser.add_argument("--ours", default=str(ROOT / "train_gpt_simple.py"), help="our script (default: the repo's)")
    parser.add_argument("--out", default=os.environ.get("OUT"), help="results folder (default: $OUT)")
    parser.add_argument("--work", default=None, help="folder for the shards and the public run (default: a temp dir)")
    parser.add_argument("--steps", type=int, default=125, help="stop both runs after the val pass at this step")
    parser.add_argument("--val-tokens", type=int, default=4 * 524288,
                        help="val tokens of both runs on the synthetic data (default 4 x 524288; the benchmark's 20x)")
    parser.add_argument("--budget", type=float, default=540, help="seconds for all phases together (default 540)")
    parser.add_argument("--phases", default="data,sdpa,check,ours,public",
                        help=f"comma-separated, of {','.join(PHASES)} (default: the first five)")
    parser.add_argument("--record46-before", help="before46: the #46 port to compare with the repo's (a file)")
    parser.add_argument("--rehearse", action="store_true", help="every phase on this CPU at tiny sizes")
    parser.add_argument("--keep-work", action="store_true", help="keep the temp folder (shards, public run)")
    args = parser.parse_args(argv)
    args.phases = [p.strip() for p in args.phases.split(",") if p.strip()]
    unknown = set(args.phases) - set(PHASES)
    if unknown:
        parser.error(f"unknown phases {sorted(unknown)}: choose from {','.join(PHASES)}")
    if not args.out:
        parser.error("no --out and no $OUT: say where the results go")
    if "public" in args.phases and not (args.public and os.path.isfile(args.public)):
        parser.error(f"--public {args.public}: no such file (the public track-3 train_gpt_simple.py; the public phase "
                     "needs it)")
    if "before46" in args.phases and not (args.record46_before and os.path.isfile(args.record46_before)):
        parser.error(f"--record46-before {args.record46_before}: no such file (the before46 phase needs the #46 port "
                     "to compare, e.g. git show COMMIT:records/20260619_cwd_rowfloor_tailema/train_gpt_simple.py > F)")
    if args.steps % 125 or args.steps < 125:
        parser.error(f"--steps must be a multiple of 125 (both scripts validate every 125 steps); got {args.steps}")
    return driver(args)


if __name__ == "__main__":
    sys.exit(main())
