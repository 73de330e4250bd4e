"""Comparisons of the script with the baseline that need no run: (a) the model's parameters at full size and its
float64 forward at the tiny size, (b) the data stream itself, (c) the fixed constants, and the val cadence of
RULES 6.1."""
import math
import os
import tempfile

import torch

from tools import tiny
from tools.preflight.common import FAIL, PASS, _clip
from tools.preflight.fingerprint import same_batch

STREAM_STEPS = 100  # steps of the data-stream comparison (tiny shards switch every 40 steps)
# The architecture check runs both models in float64 on shared random weights. A precision-only change (RULES 4.4:
# RMSNorm in float32, cast back) moves the gradients by ~4e-7 relative (float32 rounding inside a float64 model),
# a change of the math by 7e-5 (relu(x)+1e-4 squared) to 2 (LayerNorm); 0.125 for the attention scale 0.12: 5e-2.
ARCH_LOSS_RTOL, ARCH_GRAD_RTOL = 1e-6, 1e-5


def _full_size_params(module):
    """{name: (shape, dtype)} of the full-size model. It is built on the CPU with torch.nn.init's functions doing
    nothing meanwhile, so its 650 MB are allocated but never touched (the meta device would first import torch's
    reference ops: seconds)."""
    inits = [name for name in dir(torch.nn.init) if name.endswith("_") and not name.startswith("_")]
    saved = {name: getattr(torch.nn.init, name) for name in inits}
    try:
        for name in inits:
            setattr(torch.nn.init, name, lambda tensor, *args, **kwargs: tensor)
        model = module.GPT(module.vocab_size, module.num_layers, module.model_dim)
        return {n: (tuple(p.shape), p.dtype) for n, p in model.named_parameters()}
    finally:
        for name, fn in saved.items():
            setattr(torch.nn.init, name, fn)


def _float64_pass(module, state_dict, inputs, targets):
    """The loss and gradients of module.GPT at the tiny size in float64, on the weights `state_dict`."""
    V, L, D = (tiny.TINY[k] for k in ("vocab_size", "num_layers", "model_dim"))
    model = module.GPT(V, L, D)
    model.load_state_dict(state_dict)
    model.double()
    loss = model(inputs, targets)
    loss.backward()
    return loss, {n: p.grad for n, p in model.named_parameters()}


def check_architecture(user, base):
    """(a): (status, detail). Names, shapes and dtypes at full size; then the forward's loss and
    gradients on shared random weights at the tiny size, both models cast to float64, so that a change of where
    rounding happens (RULES 4.4) stays below the tolerances and a change of the math does not."""
    try:
        full = _full_size_params(user)
    except Exception as e:
        return FAIL, f"GPT(vocab_size, num_layers, model_dim) of the script failed: {type(e).__name__}: {e}"
    ref = _full_size_params(base)
    missing, extra = [n for n in ref if n not in full], [n for n in full if n not in ref]
    differ = [f"{n} {tuple(full[n][0])} {str(full[n][1])[6:]} (baseline {tuple(ref[n][0])} {str(ref[n][1])[6:]})"
              for n in ref if n in full and full[n] != ref[n]]
    if missing or extra or differ:
        parts = [f"missing {_clip(missing)}" if missing else "", f"extra {_clip(extra)}" if extra else "",
                 f"differ: {_clip(differ, 3)}" if differ else ""]
        sizes = f"GPT({user.vocab_size}, {user.num_layers}, {user.model_dim}) vs the baseline's GPT(50304, 12, 768)"
        return FAIL, f"parameters at full size, {sizes}: " + "; ".join(p for p in parts if p)
    V, L, D, T = (tiny.TINY[k] for k in ("vocab_size", "num_layers", "model_dim", "seq_len"))
    generator = torch.Generator().manual_seed(1234)
    ref_model = base.GPT(V, L, D)
    with torch.no_grad():
        for p in ref_model.parameters():
            p.copy_(torch.randn(p.shape, generator=generator) * 0.5 + (1.0 if p.ndim == 1 else 0.0))
    weights = ref_model.state_dict()
    inputs = torch.randint(0, V, (2, T), generator=generator)
    targets = torch.randint(0, V, (2, T), generator=generator)
    ref_loss, ref_grads = _float64_pass(base, weights, inputs, targets)
    try:
        loss, grads = _float64_pass(user, weights, inputs, targets)
    except Exception as e:
        return FAIL, (f"the script's GPT({V}, {L}, {D}) with the baseline's weights, cast to float64, failed: "
                      f"{type(e).__name__}: {e}")
    return judge_architecture(loss, ref_loss, grads, ref_grads, len(full))


def judge_architecture(loss, ref_loss, grads, ref_grads, n_params):
    """(a), the forward part: (status, detail) from the float64 losses and gradients of the script and the baseline."""
    if not torch.is_tensor(loss) or loss.shape != ref_loss.shape:
        return FAIL, f"the forward returned {loss!r}, not a loss like the baseline's (a summed cross-entropy)"
    loss_rel = abs(loss.item() - ref_loss.item()) / abs(ref_loss.item())
    grad_rel = {}
    for n, g in ref_grads.items():
        mine = grads.get(n)
        if mine is None or mine.shape != g.shape:
            grad_rel[n] = math.inf
        else:
            grad_rel[n] = ((mine.double() - g.double()).norm() / g.double().norm().clamp_min(1e-300)).item()
    worst = max(grad_rel, key=grad_rel.get)
    measured = f"loss {loss_rel:.1e} and gradient of {worst} {grad_rel[worst]:.1e} relative to the baseline's"
    if not loss_rel <= ARCH_LOSS_RTOL or not grad_rel[worst] <= ARCH_GRAD_RTOL:
        bad = [n for n, r in grad_rel.items() if not r <= ARCH_GRAD_RTOL]
        return FAIL, (f"in float64 on shared random weights at the tiny size the forward differs from the baseline's: "
                      f"{measured}" + (f" (gradients off: {_clip(bad)})" if bad else "")
                      + f"; rounding alone stays below {ARCH_LOSS_RTOL:g} (loss) and {ARCH_GRAD_RTOL:g} (gradients): "
                      "this changes the math (RULES 4.3)")
    return PASS, (f"{n_params} parameters with the baseline's names, shapes and dtypes at full size; in float64 the "
                  f"forward matches the baseline's within rounding ({measured})")


def check_stream(user, base, train, val):
    """(b), the generator itself: (ok, detail)."""
    B, T, VT = tiny.TINY["batch_size"], tiny.TINY["seq_len"], tiny.TINY["val_tokens"]
    for world in (1, 2):
        for rank in range(world):
            what = f"train stream, rank {rank} of {world}"
            try:
                mine = user.distributed_data_generator(train, B, rank, world, T, "cpu")
                ref = base.distributed_data_generator(train, B, rank, world, T, "cpu")
                for step in range(STREAM_STEPS):
                    what = f"train stream, rank {rank} of {world}, step {step}"
                    if not same_batch(next(mine), next(ref)):
                        return False, f"{what}: the script's distributed_data_generator yields other tokens than the baseline's"
                what = f"val set, rank {rank} of {world}"
                if not same_batch(next(user.distributed_data_generator(val, VT, rank, world, T, "cpu")),
                                          next(base.distributed_data_generator(val, VT, rank, world, T, "cpu"))):
                    return False, f"{what}: the script's val batch differs from the baseline's"
            except Exception as e:
                return False, f"{what}: the script's distributed_data_generator failed: {type(e).__name__}: {e}"
    return True, f"{STREAM_STEPS} steps (2 shard switches) on 1 and 2 ranks and the val set equal the baseline's"


def check_gap(user, train, val, missing=2):
    """(b), at launch: the script's check_launch() refuses train shards with a gap before the last one the run needs
    (the stream would skip the missing shard and train on other tokens): (ok, detail). At the tiny sizes, it is shown
    the whole set of tiny shards, which it must accept, then links to them without shard `missing`; the script's
    globals are put back."""
    if not callable(getattr(user, "check_launch", None)):
        return False, "the script has no check_launch(): a train shard missing from the download would go unnoticed"
    name = f"fineweb_train_{missing:06d}.bin"
    with tempfile.TemporaryDirectory() as tmp:
        directory, prefix = os.path.dirname(train), os.path.basename(train).split("*")[0]
        for shard in os.listdir(directory):
            if shard.startswith(prefix) and shard != name:
                os.symlink(os.path.join(directory, shard), os.path.join(tmp, shard))
        # 50 steps: more than shard 1 holds (40), fewer than shards 1 and 3 do, so a gap is the only fault
        launches = [("the whole set", dict(tiny.TINY, train_steps=50, train_files=train, val_files=val)),
                    (f"without {name}", dict(train_files=os.path.join(tmp, os.path.basename(train))))]
        saved = {key: getattr(user, key) for key in launches[0][1] if hasattr(user, key)}
        refused = None
        try:
            for what, overrides in launches:
                for key, value in overrides.items():
                    setattr(user, key, value)
                user.check_launch()
        except SystemExit as e:
            refused = what, str(e.code)
        except Exception as e:
            refused = what, f"{type(e).__name__}: {e}"
        finally:
            for key in launches[0][1]:
                if key in saved:
                    setattr(user, key, saved[key])
                else:
                    delattr(user, key)
    if refused is None:
        return False, (f"check_launch() accepted train shards without {name}: the stream would skip that shard and "
                       "train on other tokens; a gap before the last shard the run needs must be refused")
    if refused[0] != launches[1][0] or name not in refused[1]:
        return False, f"check_launch() refused the preflight's tiny shards ({refused[0]}), not for a gap: {refused[1]}"
    return True, f"check_launch() refuses train shards without {name}"


def check_constants(user, base):
    """(c): (status, detail)."""
    differ = [f"{k} = {getattr(user, k, '(missing)')!r} (baseline {getattr(base, k)!r})"
              for k in ("batch_size", "seq_len", "val_tokens") if getattr(user, k, None) != getattr(base, k)]
    if differ:
        return FAIL, "; ".join(differ)
    return PASS, f"batch_size {base.batch_size}, seq_len {base.seq_len}, val_tokens {base.val_tokens}"

