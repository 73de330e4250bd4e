"""The architecture of train_gpt_simple.py (RULES.md section 4): the parameter tree of the official
model, and the forward pass against an independent plain implementation of the spec."""
import math

import pytest
import torch

import train_gpt_simple as tgs

V, L, D = 50304, 12, 768


def spec_shapes():
    """RULES.md 4.1, parameter by parameter."""
    shapes = {"embed.weight": (V, D), "proj.weight": (V, D), "proj.bias": (V,),
              "norm1.gains": (D,), "norm2.gains": (D,)}
    for i in range(L):
        b = f"blocks.{i}."
        for name in ("q", "k", "v", "proj"):
            shapes[b + f"attn.{name}.weight"] = (D, D)
            shapes[b + f"attn.{name}.bias"] = (D,)
        shapes[b + "mlp.fc.weight"], shapes[b + "mlp.fc.bias"] = (4 * D, D), (4 * D,)
        shapes[b + "mlp.proj.weight"], shapes[b + "mlp.proj.bias"] = (D, 4 * D), (D,)
        shapes[b + "norm1.gains"], shapes[b + "norm2.gains"] = (D,), (D,)
    return shapes


@pytest.fixture(scope="module")
def meta_model():
    with torch.device("meta"):
        return tgs.GPT(V, L, D)


def test_official_parameter_names_and_shapes(meta_model):
    got = {n: tuple(p.shape) for n, p in meta_model.named_parameters()}
    assert got == spec_shapes()
    assert len(got) == 5 + 12 * 14


def test_official_dtypes_and_count(meta_model):
    dtypes = {n: p.dtype for n, p in meta_model.named_parameters()}
    assert dtypes.pop("embed.weight") == torch.bfloat16
    assert set(dtypes.values()) == {torch.float32}
    total = sum(p.numel() for p in meta_model.parameters())
    assert total == sum(math.prod(s) for s in spec_shapes().values()) == 162_354_816
    # no buffers that are saved with the model (rotary tables are non-persistent)
    assert set(meta_model.state_dict()) == set(spec_shapes())


def test_official_heads(meta_model):
    for block in meta_model.blocks:
        assert block.attn.num_heads == 6 and block.attn.head_dim == 128
        assert block.attn.rotary.cos.shape == (1024, 128 // 2)


# -----------------------------------------------------------------------------
# forward against a plain reference


def ref_rms(x, gains=None):
    y = x * torch.rsqrt(x.square().mean(-1, keepdim=True) + torch.finfo(x.dtype).eps)
    return y if gains is None else y * gains


def ref_rotary(x, rotate_sign=1.0):  # x: (B, T, H, hd)
    T, hd = x.size(1), x.size(-1)
    freqs = torch.cat([(1 / 1024) ** torch.linspace(0, 1, hd // 4), torch.zeros(hd // 4)]).to(x.dtype)
    theta = torch.arange(T, dtype=x.dtype)[:, None] * freqs[None]  # (T, hd/2)
    cos, sin = theta.cos()[None, :, None], theta.sin()[None, :, None]
    x1, x2 = x[..., :hd // 2], x[..., hd // 2:]
    y1 = x1 * cos + rotate_sign * x2 * sin
    y2 = -rotate_sign * x1 * sin + x2 * cos
    return torch.cat([y1, y2], -1)


def reference_loss(W, inputs, targets, num_layers, heads, scale=0.12, softcap=True, rotate_sign=1.0):
    """RULES.md 4.2 in plain torch ops on a dict of weights W (all float32)."""
    lin = lambda x, name: x @ W[name + ".weight"].T + W[name + ".bias"]  # noqa: E731
    B, T = inputs.shape
    h = ref_rms(W["embed.weight"][inputs], W["norm1.gains"])
    C = h.size(-1)
    hd = C // heads
    mask = torch.ones(T, T, dtype=torch.bool).tril()
    for i in range(num_layers):
        p = f"blocks.{i}."
        a = ref_rms(h, W[p + "norm1.gains"])
        q, k, v = (lin(a, p + "attn." + n).view(B, T, heads, hd) for n in "qkv")
        q, k = ref_rotary(ref_rms(q), rotate_sign), ref_rotary(ref_rms(k), rotate_sign)
        q, k, v = (t.permute(0, 2, 1, 3) for t in (q, k, v))  # (B, H, T, hd)
        scores = (q @ k.transpose(-1, -2)) * scale
        scores = scores.masked_fill(~mask, float("-inf"))
        y = torch.softmax(scores, -1) @ v
        h = h + lin(y.permute(0, 2, 1, 3).reshape(B, T, C), p + "attn.proj")
        m = ref_rms(h, W[p + "norm2.gains"])
        h = h + lin(torch.relu(lin(m, p + "mlp.fc")).square(), p + "mlp.proj")
    z = lin(ref_rms(h, W["norm2.gains"]), "proj")
    if softcap:
        z = 15 * z / torch.sqrt(z.square() + 225)
    logp = z - torch.logsumexp(z, -1, keepdim=True)
    return -logp.gather(-1, targets[..., None]).sum()


def random_weights(model, seed):
    """Non-zero random values for every parameter (proj and gains included) so every path matters."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith("gains"):
                v = 1 + 0.3 * torch.randn(p.shape, generator=g)
            elif name.endswith("bias"):
                v = 0.2 * torch.randn(p.shape, generator=g)
            elif name == "embed.weight":
                v = torch.randn(p.shape, generator=g)
            elif name == "proj.weight":  # the head: logits of a few units, so the soft cap bends them
                v = 4 * torch.randn(p.shape, generator=g) / p.size(-1) ** 0.5
            else:
                v = 1.2 * torch.randn(p.shape, generator=g) / p.size(-1) ** 0.5
            p.copy_(v)


CONFIGS = [dict(vocab=128, layers=2, dim=16, T=16),  # tools.tiny's model: one head of 16
           dict(vocab=96, layers=2, dim=256, T=24)]  # two heads of 128, as in the real model


@pytest.mark.parametrize("cfg", CONFIGS, ids=["dim16", "dim256"])
def test_forward_matches_reference_in_float32(cfg):
    torch.manual_seed(0)
    model = tgs.GPT(cfg["vocab"], cfg["layers"], cfg["dim"]).float()
    random_weights(model, seed=1)
    heads = model.blocks[0].attn.num_heads
    assert heads == max(1, cfg["dim"] // 128)
    W = {n: p.detach() for n, p in model.named_parameters()}
    g = torch.Generator().manual_seed(2)
    inputs = torch.randint(0, cfg["vocab"], (3, cfg["T"]), generator=g, dtype=torch.int32)
    targets = torch.randint(0, cfg["vocab"], (3, cfg["T"]), generator=g)
    with torch.no_grad():
        loss = model(inputs, targets)
        ref = reference_loss(W, inputs.long(), targets, cfg["layers"], heads)
    assert loss.dtype == torch.float32 and loss.dim() == 0
    # measured relative differences: 7e-8 (dim 16) and 0 (dim 256)
    assert torch.allclose(loss, ref, rtol=2e-6, atol=0), (loss.item(), ref.item())
    # the check discriminates: each deviation from the spec moves the loss far beyond the tolerance
    with torch.no_grad():
        for kwargs in (dict(scale=1 / math.sqrt(cfg["dim"] // heads)), dict(softcap=False), dict(rotate_sign=-1.0)):
            wrong = reference_loss(W, inputs.long(), targets, cfg["layers"], heads, **kwargs)
            assert abs(wrong.item() - ref.item()) > 1e-3 * abs(ref.item()), kwargs
        # a sum, not a mean: one sequence's loss plus the others' is the whole loss
        parts = sum(model(inputs[i:i + 1], targets[i:i + 1]) for i in range(3))
    assert torch.allclose(parts, loss, rtol=1e-5)


def test_causal():
    torch.manual_seed(0)
    model = tgs.GPT(64, 2, 16).float()
    random_weights(model, seed=3)
    inputs = torch.randint(0, 64, (1, 12), dtype=torch.int32)
    targets = torch.randint(0, 64, (1, 12))
    changed = inputs.clone()
    changed[0, 8:] = (changed[0, 8:] + 1) % 64
    with torch.no_grad():
        assert torch.equal(model(inputs[:, :8], targets[:, :8]), model(changed[:, :8], targets[:, :8]))
        # per-position losses of the first 8 tokens do not depend on later tokens
        a = [model(inputs[:, :t], targets[:, :t]) for t in (4, 8)]
        b = [model(changed[:, :t], targets[:, :t]) for t in (4, 8)]
    assert all(torch.equal(x, y) for x, y in zip(a, b))


def test_default_bf16_embed_gives_bf16_activations_and_fp32_loss():
    torch.manual_seed(0)
    cfg = CONFIGS[1]
    model = tgs.GPT(cfg["vocab"], cfg["layers"], cfg["dim"])
    assert model.embed.weight.dtype == torch.bfloat16
    assert all(p.dtype == torch.float32 for n, p in model.named_parameters() if n != "embed.weight")
    random_weights(model, seed=1)
    # the reference uses the very same (bf16-representable) embedding, in float32
    W = {n: p.detach().float() for n, p in model.named_parameters()}
    seen = {}
    hooks = [m.register_forward_hook(lambda mod, args, out, name=name: seen.__setitem__(name, out.dtype))
             for name, m in model.named_modules() if name in ("embed", "norm1", "blocks.0", "blocks.1",
                                                               "blocks.0.attn", "blocks.0.mlp", "norm2", "proj")]
    g = torch.Generator().manual_seed(2)
    inputs = torch.randint(0, cfg["vocab"], (2, cfg["T"]), generator=g, dtype=torch.int32)
    targets = torch.randint(0, cfg["vocab"], (2, cfg["T"]), generator=g)
    with torch.no_grad():
        loss = model(inputs, targets)
        ref = reference_loss(W, inputs.long(), targets, cfg["layers"], model.blocks[0].attn.num_heads)
    for h in hooks:
        h.remove()
    assert len(seen) == 8 and set(seen.values()) == {torch.bfloat16}, seen
    assert loss.dtype == torch.float32
    # bf16 activations: measured relative difference 7.6e-4 here
    rel = abs(loss.item() - ref.item()) / abs(ref.item())
    assert rel < 1e-2, rel
    assert loss.item() != ref.item()  # it really ran in bf16


def test_fp32_master_weights_cast_at_use():
    model = tgs.GPT(64, 1, 16)
    model.blocks[0].attn.q.weight.data.normal_()
    assert model.blocks[0].attn.q.weight.dtype == torch.float32
    inputs = torch.randint(0, 64, (1, 8), dtype=torch.int32)
    loss = model(inputs, inputs.long())
    loss.backward()
    # gradients land in the fp32 master weights
    assert model.blocks[0].attn.q.weight.grad.dtype == torch.float32
    assert model.embed.weight.grad.dtype == torch.bfloat16
