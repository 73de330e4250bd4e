"""The Modded-NanoGPT optimization benchmark (track 3) in one file: a fixed GPT-2-small trained on
a fixed FineWeb stream, 524,288 tokens per step. Change only the Optimizer and Init & Optim
Hyperparams sections; the score is the steps to val loss 3.28. Each log (logs/<uuid>.txt) begins
with this file, so a log reproduces its run.

    torchrun --standalone --nproc_per_node=8 train_gpt_simple.py [num_trials]
    SEED=1234 torchrun ...     replays the logged seed 1234 (later trials: 1235, 1236, ...)
"""
import glob, hashlib, math, os, signal, sys, time, types, uuid, zipfile  # noqa: E401

import torch
import torch.distributed as dist
import torch.nn as nn
import torch.nn.functional as F

# -----------------------------------------------------------------------------
# Dataloader

def shard_token_count(path):
    """Token count of a shard from its header (ValueError unless header and size are right)."""
    with open(path, "rb") as f:
        magic, version, count = (int.from_bytes(f.read(4), "little", signed=True) for _ in range(3))
        if magic != 20240520 or version != 1 or os.fstat(f.fileno()).st_size != 1024 + 2 * count:
            raise ValueError(f"{path}: not a whole token shard of this benchmark (python -m "
                             "tools.launch_check says what is wrong and how to fix it)")
    return count

def load_data_shard(path):  # a 1024-byte header, then uint16 tokens
    return torch.from_file(path, False, 512 + shard_token_count(path), dtype=torch.uint16)[512:]

def distributed_data_generator(filename_pattern, batch_size, rank, world_size, seq_len=1024,
                               device="cuda"):
    """This rank's (inputs, targets) of every step, the benchmark's stream: shards in name order, a
    step takes batch_size + 1 tokens from `pos` or moves to the next shard when they do not fit (its
    tail is skipped). Rank r takes the r-th slice."""
    files, local = iter(sorted(glob.glob(filename_pattern))), batch_size // world_size
    tokens, pos = torch.empty(0, dtype=torch.uint16), 0
    while True:
        while pos + batch_size + 1 >= len(tokens):
            path = next(files, None)
            if path is None:
                raise ValueError(f"ran out of tokens in {filename_pattern}; download more chunks")
            tokens, pos = load_data_shard(path), 0
        buf = tokens[pos + rank * local:][:local + 1].to(device, torch.int32, non_blocking=True)
        pos += batch_size
        yield buf[:-1].view(-1, seq_len), buf[1:].view(-1, seq_len).long()

def steps_in_shard(num_tokens, batch_size):  # the steps the stream takes from a shard
    return max(0, math.ceil((num_tokens - batch_size - 1) / batch_size))

# -----------------------------------------------------------------------------
# Architecture

def norm(x):
    return F.rms_norm(x, (x.size(-1),))

class RMSNorm(nn.Module):
    def __init__(self, dim):
        super().__init__()
        self.gains = nn.Parameter(torch.ones(dim))
    def forward(self, x):
        return (norm(x.float()) * self.gains).type_as(x)  # in float32 (a precision-only change)

class Linear(nn.Linear):  # fp32 master weights, cast to the activations' dtype (bf16) at use
    def forward(self, x):
        return F.linear(x, self.weight.type_as(x), self.bias.type_as(x))

class Rotary(nn.Module):
    def __init__(self, head_dim, max_seq_len=1024):
        super().__init__()
        freqs = (1 / 1024) ** torch.linspace(0, 1, head_dim // 4)
        freqs = torch.cat([freqs, freqs.new_zeros(head_dim // 4)])  # half the pairs do not rotate
        theta = torch.outer(torch.arange(max_seq_len, dtype=torch.float32), freqs)
        self.register_buffer("cos", theta.cos(), persistent=False)
        self.register_buffer("sin", theta.sin(), persistent=False)
    def forward(self, x):  # x: (B, T, heads, head_dim)
        cos, sin = self.cos[None, :x.size(1), None], self.sin[None, :x.size(1), None]
        x1, x2 = x.float().chunk(2, dim=-1)
        return torch.cat([x1 * cos + x2 * sin, x2 * cos - x1 * sin], dim=-1).type_as(x)

class CausalSelfAttention(nn.Module):
    def __init__(self, dim):
        super().__init__()
        self.num_heads = max(1, dim // 128)  # heads of dim 128 (one narrower in tiny test models)
        self.head_dim = dim // self.num_heads
        self.q, self.k, self.v, self.proj = (Linear(dim, dim) for _ in range(4))
        self.rotary = Rotary(self.head_dim)
    def forward(self, x):
        B, T, C = x.shape
        q, k, v = (f(x).view(B, T, self.num_heads, self.head_dim) for f in (self.q, self.k, self.v))
        q, k = self.rotary(norm(q)), self.rotary(norm(k))
        y = F.scaled_dot_product_attention(q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2),
                                           is_causal=True, scale=0.12)
        return self.proj(y.transpose(1, 2).reshape(B, T, C))

class MLP(nn.Module):
    def __init__(self, dim):
        super().__init__()
        self.fc, self.proj = Linear(dim, 4 * dim), Linear(4 * dim, dim)
    def forward(self, x):
        return self.proj(F.relu(self.fc(x)).square())

class Block(nn.Module):
    def __init__(self, dim):
        super().__init__()
        self.norm1, self.attn = RMSNorm(dim), CausalSelfAttention(dim)
        self.norm2, self.mlp = RMSNorm(dim), MLP(dim)
    def forward(self, x):
        x = x + self.attn(self.norm1(x))
        return x + self.mlp(self.norm2(x))

class GPT(nn.Module):
    def __init__(self, vocab_size, num_layers, model_dim):
        super().__init__()
        self.embed = nn.Embedding(vocab_size, model_dim, dtype=torch.bfloat16)  # activations' dtype
        self.blocks = nn.ModuleList(Block(model_dim) for _ in range(num_layers))
        self.norm1, self.norm2 = RMSNorm(model_dim), RMSNorm(model_dim)
        self.proj = Linear(model_dim, vocab_size)
    def forward(self, inputs, targets):
        """Cross-entropy summed (not averaged) over all tokens."""
        x = self.norm1(self.embed(inputs))
        for block in self.blocks:
            x = block(x)
        logits = self.proj(self.norm2(x)).float()
        logits = 15 * logits * torch.rsqrt(logits.square() + 225)  # soft cap at +-15
        return F.cross_entropy(logits.view(-1, logits.size(-1)), targets.view(-1), reduction="sum")

# -----------------------------------------------------------------------------
# Optimizer: OPEN, UNMERGED public pull request #339 (modded-nanogpt track 3, results/20260713_bimaxwell_2635),
# written from its script. Record #46's method (Muon on the hidden matrices with SOAP preconditioning, the attn.proj
# trust gate, Newton-Schulz after a Gram-norm division, the radial brake, RowFloor, the radius pin, post-pin cautious
# weight decay; a bias-correction-free Adam for the gains and biases) plus Bi-Maxwell momentum (two momenta of fixed
# betas, mixed, from step 1000). The constants are the public script's.
#
# The machinery below (compiled, assign_ranks, MatrixOptimizer: which rank updates which matrix, the buffers,
# the collectives, the sharded state) is the harness's, verbatim. Muon is a MatrixOptimizer whose update() holds
# only the PR's math; its param groups say which blend a matrix gets (q, k, v; attn.proj's trust gate; none).

soap_beta2, soap_denom_power = 0.90, 0.50  # EMA of the Gram matrices and of the eigenbasis second moment; its power
trust_min_agree, trust_min_grad_align = 0.20, 0.00  # attn.proj trust gate (trust_gate)
trust_floor, trust_cap, trust_floor_end, trust_fade_end = 0.45, 0.85, 1375, 1625
radial_outward, radial_inward = 0.5, 1.0  # scale of the update's radial part when the step moves W outward / inward
row_floor, row_floor_power = 0.3825, 1.0  # RowFloor: every row of the update at least 0.3825 x that row of W
cautious_wd = 0.025  # decay of the coordinates the step already shrinks, after the radius pin
bimaxwell_fast, bimaxwell_slow, bimaxwell_weight = 0.85, 0.98, 0.4385  # Muon's two momenta from bimaxwell_start
bimaxwell_start = 1000

def gram_norm(X, eps):
    """sqrt(||X Xᵀ||_F) of every matrix of a (..., m, n) batch, in float32, from the smaller Gram matrix:
    (sum of sigma^4)^(1/4), which bounds the spectral norm from above and the Frobenius norm from below."""
    X = X.float()
    gram = X.mT @ X if X.size(-2) > X.size(-1) else X @ X.mT
    return gram.norm(dim=(-2, -1)).sqrt().clamp_min(eps)

def newton_schulz(G, steps=12, dtype=torch.bfloat16):
    """Orthogonalize every matrix of a (..., m, n) batch (in bfloat16): the baseline's iteration, after a division
    by the Gram norm above instead of the Frobenius norm (a larger start, same bound on the spectral norm)."""
    X = G.to(dtype)
    if G.size(-2) > G.size(-1):
        X = X.mT
    X = X / gram_norm(X, 1e-7)[..., None, None].to(dtype)
    for _ in range(steps):
        A = X @ X.mT
        B = -1.5 * A + 0.5 * A @ A
        X = 2 * X + B @ X
    return X.mT if G.size(-2) > G.size(-1) else X

def cosine(a, b, norm_a, norm_b):
    """Cosine of every pair of matrices of two (k, m, n) batches, given their Frobenius norms."""
    return (a * b).sum(dim=(-2, -1)) / (norm_a * norm_b).clamp_min(1e-8)

def trust_gate(raw, soap, grad, step):
    """How far each attn.proj matrix follows its SOAP direction s rather than the raw momentum u: the product of
    the agreement (cos(s, u) - 0.2) / 0.8 and the alignment cos(s, g) / cos(u, g), each clamped to [0, 1]; then
    bounded to [0.45, 0.85] until step 1375, the floor fading linearly to 0 by step 1625, [0, 1] from then on."""
    r, s, g = (x.norm(dim=(-2, -1)) for x in (raw, soap, grad))
    agree = ((cosine(soap, raw, s, r) - trust_min_agree) / (1 - trust_min_agree)).clamp(0, 1)
    align = ((cosine(soap, grad, s, g) - trust_min_grad_align)
             / (cosine(raw, grad, r, g) - trust_min_grad_align).clamp_min(1e-8)).clamp(0, 1)
    if step < trust_floor_end:
        floor = trust_floor
    elif step >= trust_fade_end:
        floor = 0.0
    else:
        floor = trust_floor * (trust_fade_end - step) / (trust_fade_end - trust_floor_end)
    return (agree * align).clamp(0, 1).clamp(min=floor, max=trust_cap if step < trust_fade_end else 1.0)

def brake_and_floor(U, W):
    """The radial brake, then RowFloor, on a batch of updates U (bfloat16, the step is W - lr U) of matrices W:
    U's component along W is halved when the step would move W outward, kept when inward; then every row of U is
    scaled up to at least row_floor x the norm of the same row of W."""
    u, w = U.float(), W.float()
    coeff = (u * w).sum(dim=(-2, -1), keepdim=True) / (w * w).sum(dim=(-2, -1), keepdim=True).clamp_min(1e-12)
    radial = coeff * w
    U = ((u - radial) + torch.where(coeff < 0, radial_outward, radial_inward) * radial).to(U.dtype)
    u = U.float()
    lift = row_floor * w.norm(dim=-1, keepdim=True).clamp_min(1e-8) / u.norm(dim=-1, keepdim=True).clamp_min(1e-8)
    return (u * lift.clamp(min=1.0).pow(row_floor_power)).to(U.dtype)

def eigenbasis(G):
    """Eigenvectors of every symmetric matrix of a batch, by descending eigenvalue (in float64 if float32 fails)."""
    eye = torch.eye(G.size(-1), device=G.device)
    try:
        Q = torch.linalg.eigh(G + 1e-30 * eye).eigenvectors
    except RuntimeError:
        Q = torch.linalg.eigh(G.double() + 1e-30 * eye).eigenvectors.float()
    return Q.flip(-1)

def refreshed_basis(G, Q):
    """One step of the power/QR iteration towards G's eigenbasis: Q's columns sorted by their eigenvalue estimates
    diag(Qᵀ G Q), descending, then qr(G Q): its Q from the Householder reflectors (R is not needed). Returns the new
    basis and the order (to permute the second moment)."""
    GQ = G @ Q
    order = (Q * GQ).sum(dim=-2).argsort(dim=-1, descending=True)
    return torch.linalg.householder_product(*torch.geqrf(GQ.gather(-1, order[:, None, :].expand_as(GQ)))), order

def compiled(fn, device):  # one static graph (a graph break is an error), on CUDA or compile_on_cpu
    on = device.type == "cuda" or compile_on_cpu
    return torch.compile(fn, dynamic=False, fullgraph=True) if on else fn

def assign_ranks(costs, world_size):
    """A rank for each matrix, balancing the ranks' summed costs: largest first, each to the least
    loaded rank (ties: the lower index, the lower rank): every rank computes the same owners."""
    load, owner = [0] * world_size, [0] * len(costs)
    for i in sorted(range(len(costs)), key=lambda i: -costs[i]):
        owner[i] = min(range(world_size), key=load.__getitem__)
        load[owner[i]] += costs[i]
    return owner

class MatrixOptimizer(torch.optim.Optimizer):
    """The machinery of a sharded optimizer for matrices; subclasses write update() (and cost()).

    Each matrix belongs to one rank (`owner`, from assign_ranks over cost()). step() puts every
    gradient into a flat (world_size, part) buffer, rank by rank; one reduce-scatter hands each rank
    its matrices' gradients summed over ranks. The rank calls update() once per stack (its matrices
    of one param group and shape); one all-gather hands the new matrices to every rank. A matrix's
    state lives on its owner: update() gets the stack's as {name: (k, ...) tensor}; state_dict()
    gathers every rank's for a checkpoint (rank 0 gets the whole; call it on every rank).
    """
    def __init__(self, params, defaults):
        super().__init__(params, defaults)
        on = dist.is_initialized()
        self.rank, self.world_size = (dist.get_rank(), dist.get_world_size()) if on else (0, 1)
        params = [p for group in self.param_groups for p in group["params"]]
        owners = assign_ranks([self.cost(*p.shape) for p in params], self.world_size)
        self.owner = dict(zip(params, owners))
        self.stacks, self.offset, sizes = [], {}, [0] * self.world_size  # p's place in its owner's
        for g, group in enumerate(self.param_groups):
            for shape in sorted({p.shape for p in group["params"]}):
                for r in range(self.world_size):
                    P = [p for p in group["params"] if p.shape == shape and self.owner[p] == r]
                    for p in P:
                        self.offset[p], sizes[r] = sizes[r], sizes[r] + p.numel()
                    if P and r == self.rank:
                        self.stacks.append((g, P))  # g: load_state_dict() replaces the groups
        self.part = max(sizes)
    def cost(self, m, n):
        """The work of updating one m x n matrix, in any unit: ranks get equal sums of it."""
        return m * n * min(m, n)
    def update(self, W, G, state, group):
        """W (k, m, n), this rank's k matrices of a stack, updated from G, their summed grads."""
        raise NotImplementedError
    def places(self, flat):  # every matrix's place in a (world_size, part) buffer
        return [flat[self.owner[p], i:i + p.numel()].view_as(p) for p, i in self.offset.items()]
    @torch.no_grad()
    def step(self):
        params = list(self.offset)
        flat = params[0].new_zeros(self.world_size, self.part)
        torch._foreach_copy_(self.places(flat), [p.grad for p in params])
        grads, new = flat[self.rank], flat.new_empty(self.part)
        if self.world_size > 1:  # the gradients of this rank's matrices, summed over ranks
            grads = flat.new_empty(self.part)
            dist.reduce_scatter_tensor(grads, flat.view(-1))
        for g, P in self.stacks:
            i, k = self.offset[P[0]], len(P) * P[0].numel()
            G, W = grads[i:i + k].view(len(P), *P[0].shape), new[i:i + k].view(len(P), *P[0].shape)
            torch.stack(P, out=W)
            state = {key: torch.stack([self.state[p][key] for p in P]) if torch.is_tensor(v) else v
                     for key, v in self.state[P[0]].items()}
            updated = self.update(W, G, state, self.param_groups[g])
            if updated is not W:
                W.copy_(updated)
            for j, p in enumerate(P):  # each matrix's state: its row of the stacks
                self.state[p].update({k: v[j] if torch.is_tensor(v) else v
                                      for k, v in state.items()})
        flat = new[None]
        if self.world_size > 1:
            flat = flat.new_empty(self.world_size, self.part)
            dist.all_gather_into_tensor(flat.view(-1), new)
        torch._foreach_copy_(params, self.places(flat))
    def state_dict(self):
        sd = super().state_dict()
        if self.world_size > 1:
            parts = [None] * self.world_size if self.rank == 0 else None
            dist.gather_object({i: {k: v.cpu() if torch.is_tensor(v) else v for k, v in st.items()}
                                for i, st in sd["state"].items()}, parts)
            sd["state"] = {i: st for part in parts or [] for i, st in part.items()}
        return sd
    def load_state_dict(self, sd):  # a whole state (any world size): this rank keeps its part
        params = [p for group in self.param_groups for p in group["params"]]
        super().load_state_dict(dict(sd, state={i: st for i, st in sd["state"].items()
                                                if self.owner[params[i]] == self.rank}))

class Muon(MatrixOptimizer):
    """PR #339's Muon (record #46's with Bi-Maxwell momentum), for the hidden matrices (named: the blend depends on
    the name).

    Per matrix W with summed gradient g, at training step t (group["step"], set by set_hparams):
        m = mu m + (1 - mu) g;  u = (1 - mu) g + mu m                       (Nesterov, as the baseline)
        Bi-Maxwell, from step 1000: fast = lerp(fast, g, 0.15), slow = lerp(slow, g, 0.02) (both = m at their first
        step, unchanged that step);  u = lerp(g, lerp(slow, fast, 0.4385), mu)  (m is kept, no longer used)
        SOAP (from the matrix's second step): p = Qrᵀ u Qc;  v = 0.9 v + 0.1 p²;  s = Qr (p / sqrt(max(v, 1e-16))) Qcᵀ,
        with u's Gram norm (first step: s = u); attention (group["blend"]): u = (u + gate (s - u)) with u's Gram
        norm, gate = trust_gate for attn.proj ("trust"), 1 for q, k, v ("full"); the MLP matrices (None): u = s
        U = NS(u) x sqrt(max(1, rows/cols));  U = brake_and_floor(U, W)
        W' = W - lr U, rescaled to the norm |W| - lr <U, W> / |W|;  then W' *= 1 - lr 0.025 [U W > 0]
        then the Gram EMAs Grow = lerp(Grow, g gᵀ, 0.1), Gcol = lerp(Gcol, gᵀ g, 0.1) and the bases: on the first
        step their eigenvectors (eigenvalues descending), later one QR step, Q = qr(G Q) after sorting Q's columns
        (and v) by the eigenvalue estimates diag(Qᵀ G Q).
    """

    state_keys = ("momentum", "exp_avg_sq", "row_gram", "col_gram", "row_basis", "col_basis", "fast", "slow")
    def __init__(self, named_params, lr, mu):
        named = list(named_params)
        blend = {n: "trust" if n.endswith(".attn.proj.weight") else "full" if n.endswith(
            (".attn.q.weight", ".attn.k.weight", ".attn.v.weight")) else None for n, _ in named}
        super().__init__([dict(params=[p for n, p in named if blend[n] == kind], blend=kind)
                          for kind in ("full", "trust", None) if kind in blend.values()], dict(lr=lr, mu=mu, step=0))
        self.newton_schulz = compiled(newton_schulz, named[0][1].device)
        self.brake_and_floor = compiled(brake_and_floor, named[0][1].device)
    def cost(self, m, n):
        """Eigenbasis refresh (G Q and QR of both Grams) and the SOAP projections dominate: ~ m³ + n³ + 2mn(m + n)."""
        return m ** 3 + n ** 3 + 2 * m * n * (m + n)
    def update(self, W, G, state, group):
        lr, mu, t = group["lr"], group["mu"], group["step"]
        k, m, n = G.shape
        if not state:
            state.update(momentum=torch.zeros_like(G), exp_avg_sq=torch.zeros_like(G), row_gram=G.new_zeros(k, m, m),
                         col_gram=G.new_zeros(k, n, n))
        state["momentum"].lerp_(G, 1 - mu)
        u = G.lerp(state["momentum"], mu)
        if t >= bimaxwell_start:
            if "fast" not in state:
                state["fast"], state["slow"] = state["momentum"].clone(), state["momentum"].clone()
            else:
                state["fast"].lerp_(G, 1 - bimaxwell_fast)
                state["slow"].lerp_(G, 1 - bimaxwell_slow)
            u = G.lerp(state["slow"].lerp(state["fast"], bimaxwell_weight), mu)
        s, soap = u, "row_basis" in state
        u_norm = gram_norm(u, 1e-8) if soap or group["blend"] else None  # kept by SOAP and by the blend
        if soap:  # SOAP: Adam's second moment in the eigenbases of the Gram EMAs, u's Gram norm kept
            Qr, Qc, v = state["row_basis"], state["col_basis"], state["exp_avg_sq"]
            projected = Qr.mT @ u @ Qc
            v.mul_(soap_beta2).add_(projected.square(), alpha=1 - soap_beta2)
            s = Qr @ (projected / v.clamp_min(1e-16).pow(soap_denom_power)) @ Qc.mT
            s.mul_((u_norm / gram_norm(s, 1e-8))[:, None, None])
        if group["blend"]:  # attention: a blend of u and s with u's Gram norm, attn.proj's from the trust gate
            towards = s - u  # x a gate of 1 for q, k, v (exact: the product would change no bit)
            s = u + (towards * trust_gate(u, s, G, t)[:, None, None] if group["blend"] == "trust" else towards)
            s = s * (u_norm / gram_norm(s, 1e-8))[:, None, None]
        U = self.brake_and_floor(self.newton_schulz(s) * max(1, m / n) ** 0.5, W)
        UW = U.float() * W
        radius = W.norm(dim=(-2, -1)).clamp_min(1e-8)
        radius = (radius + -lr * UW.sum(dim=(-2, -1)) / radius).clamp_min(1e-8)  # the radial change only
        decay = (UW > 0).to(W.dtype).mul_(-(lr * cautious_wd)).add_(1.0)  # 1 - lr 0.025 where the step shrinks |W|
        W.add_(U, alpha=-lr)  # in place: W is this stack's part of the buffer the all-gather sends
        W.mul_((radius / W.norm(dim=(-2, -1)).clamp_min(1e-8))[:, None, None])  # the radius pin
        W.mul_(decay)  # cautious weight decay, after the pin
        state["row_gram"].lerp_(G @ G.mT, 1 - soap_beta2)
        state["col_gram"].lerp_(G.mT @ G, 1 - soap_beta2)
        if "row_basis" not in state:
            state["row_basis"], state["col_basis"] = eigenbasis(state["row_gram"]), eigenbasis(state["col_gram"])
        else:
            state["row_basis"], order = refreshed_basis(state["row_gram"], state["row_basis"])
            state["exp_avg_sq"] = state["exp_avg_sq"].gather(-2, order[:, :, None].expand(k, m, n))
            state["col_basis"], order = refreshed_basis(state["col_gram"], state["col_basis"])
            state["exp_avg_sq"] = state["exp_avg_sq"].gather(-1, order[:, None, :].expand(k, m, n))
        return W

class AuxAdam(torch.optim.Optimizer):
    """Adam without bias correction and without weight decay (record #46's optimizer for gains and biases):
    m = lerp(m, g, 1 - beta1);  v = lerp(v, g², 1 - beta2);  p -= lr m / (sqrt(v) + eps)."""
    def __init__(self, params, lr, betas, eps):
        super().__init__(params, dict(lr=lr, betas=betas, eps=eps))
    @torch.no_grad()
    def step(self):
        for group in self.param_groups:
            P = [p for p in group["params"] if p.grad is not None]
            for p in P:
                if not self.state[p]:
                    self.state[p].update(exp_avg=torch.zeros_like(p),
                                         exp_avg_sq=torch.zeros_like(p, dtype=torch.float32))
            if not P:
                continue
            (beta1, beta2), grads = group["betas"], [p.grad for p in P]
            m, v = [self.state[p]["exp_avg"] for p in P], [self.state[p]["exp_avg_sq"] for p in P]
            torch._foreach_lerp_(m, grads, 1 - beta1)
            torch._foreach_lerp_(v, torch._foreach_mul(grads, grads), 1 - beta2)
            denom = torch._foreach_add(torch._foreach_sqrt(v), group["eps"])
            torch._foreach_add_(P, torch._foreach_div(m, denom), alpha=-group["lr"])

# -----------------------------------------------------------------------------
# Setup: the benchmark's fixed facts. Change them and your numbers no longer compare.

train_files = "data/fineweb10B/fineweb_train_*.bin"
val_files = "data/fineweb10B/fineweb_val_*.bin"
vocab_size, num_layers, model_dim = 50304, 12, 768  # GPT-2's 50,257 tokens, padded to 128 k
batch_size = 8 * 64 * 1024  # tokens per step, split over ranks and microbatches
seq_len = 1024
val_tokens = 20 * 524288
device_type = "cuda"  # the tests and tools.preflight run this file on "cpu"
compile_on_cpu = False  # True: compile on CPU as on CUDA (tools.compile_check: graph breaks)
micro_batch_seqs = None  # sequences per forward; None: by GPU memory (64 on 80 GB). Same math.
log_dir = "logs"
checkpoint_dir = "checkpoints"  # resume a stopped run with RESUME=checkpoints/<log name>.pt
checkpoint_every = None  # seconds between checkpoints; None: on SIGTERM/SIGINT only (~5 s each)

# -----------------------------------------------------------------------------
# Init & Optim Hyperparams: main() calls the functions below; as written they are OPEN PR #339's (not a merged record).

train_steps = 2900
lr_cool_end, lr_cool_power = 2900, 1.2  # PowerCool: lr = min(initial lr, power_c (2900 - step)^1.2), power_c per group
# EMA-Nesterov (before_forward, after_step): the forward of steps 300 to train_steps - 950 (excluded) starts from
# w + 0.3 (lr / initial lr) buf, where buf is an EMA (0.99) of the weights' change per step
lookahead_scale, lookahead_ema, lookahead_start, lookahead_rest = 0.3, 0.99, 300, 950
# the tail EMA (after_step), kept while 2400 <= steps done < 2900, and its readout 0.4 w + 0.6 ema (readouts)
tail_ema_start, tail_ema_end, tail_ema_tau, tail_ema_blend = 2400, 2900, 150, 0.6

def init_params(model):
    """Torch's default init of every layer, then the record's changes: both projections of every block and the
    head (weights and biases) zero, mlp.fc scaled by 1 - 0.3 layer / (layers - 1), the block gains from CGI."""
    for module in model.modules():
        if isinstance(module, (nn.Linear, nn.Embedding)):  # weight and bias U(+-1/sqrt(fan_in)); embedding N(0, 1)
            module.reset_parameters()
    for name, p in model.named_parameters():
        if name.endswith("gains"):
            nn.init.ones_(p)
        elif "proj" in name:
            nn.init.zeros_(p)
    seed, layers, pair = torch.initial_seed(), len(model.blocks), None  # the trial's seed
    with torch.no_grad():
        for i, block in enumerate(model.blocks):
            gains = block.norm1.gains
            block.mlp.fc.weight.mul_(1.0 - 0.30 * (i / (layers - 1) if layers > 1 else 0.0))
            # CGI: norm1 gains 1 - 0.125 s, norm2 gains 1 + 0.125 s, s a +-1 per channel; from layer 6 on in
            # pairs of layers whose signs balance per head
            if i >= 6 and (i - 6) % 2 == 1:
                s, pair = pair, None
            elif i >= 6:
                s, pair = paired_gain_signs(gains.numel(), seed, i, gains.device)
            else:
                s = torch.randint(0, 2, gains.shape, device=gains.device, dtype=torch.float32) * 2 - 1
            block.norm1.gains.copy_(1.0 - 0.125 * s)
            block.norm2.gains.copy_(1.0 + 0.125 * s)

def paired_gain_signs(width, seed, layer, device, head_dim=128):
    """CGI signs of a pair of layers: per head of 128 channels, the first layer's count of +1 is a fair coin count
    shrunk halfway to 64, the second layer's the complement 128 - count, each in a random order (a generator of its
    own, seeded from the trial's seed and the layer). A width that is not a multiple of 128: s and -s."""
    if width % head_dim:
        s = torch.randint(0, 2, (width,), device=device, dtype=torch.float32) * 2 - 1
        return s, -s
    gen = torch.Generator(device=device)
    gen.manual_seed(0xA9170000 + seed * 1009 + layer * 9176)
    first, second = [], []
    for _ in range(width // head_dim):
        coins = torch.randint(0, 2, (head_dim,), device=device, generator=gen, dtype=torch.int64) * 2 - 1
        plus = int(round(head_dim / 2 + 0.5 * (int((coins > 0).sum().item()) - head_dim / 2)))
        plus = max(0, min(head_dim, plus))
        for count, signs in ((plus, first), (head_dim - plus, second)):
            ordered = torch.cat([torch.ones(count, device=device), -torch.ones(head_dim - count, device=device)])
            signs.append(ordered[torch.randperm(head_dim, device=device, generator=gen)])
    return torch.cat(first), torch.cat(second)

def make_optimizers(model):
    muon = Muon([(n, p) for n, p in model.blocks.named_parameters() if p.ndim == 2], lr=0.0375, mu=0.95)
    adam = torch.optim.AdamW([dict(params=[model.embed.weight], lr=0.3), dict(params=[model.proj.weight], lr=1 / 320)],
                             betas=(0.8, 0.99), eps=1e-10, weight_decay=0, fused=True)  # fused: one kernel
    vectors = [(n, p) for n, p in model.named_parameters() if p.ndim < 2]
    gains = [p for n, p in vectors if n.endswith("gains")]
    attn_proj_biases = [p for n, p in vectors if n.endswith(".attn.proj.bias")]
    biases = [p for n, p in vectors if not n.endswith(("gains", ".attn.proj.bias"))]
    aux = AuxAdam([dict(params=gains, betas=(0.8, 0.99)), dict(params=biases, betas=(0.8, 0.997)),
                   dict(params=attn_proj_biases, betas=(0.8, 0.9965))], lr=0.01, betas=(0.8, 0.99), eps=1e-10)
    for group, power_c in zip(adam.param_groups, (4.976805410800738e-05, 5.184172302917436e-07)):  # embed, head
        group["power_c"] = power_c
    for group in muon.param_groups:
        group["power_c"] = 3.3169534699576625e-06
    for group in aux.param_groups:
        group["power_c"] = 1.6589351369335795e-06
    return [muon, adam, aux]

def muon_momentum(step):
    """0.85 -> 0.95 over the first 300 steps, 0.95 -> 0.85 over the last 200 steps of train_steps."""
    if step < 300:
        return 0.85 + step / 300 * (0.95 - 0.85)
    if step > train_steps - 200:
        return 0.95 - (step - (train_steps - 200)) / 200 * (0.95 - 0.85)
    return 0.95

def set_hparams(step, optimizers, state):
    """Every group's hyperparameters for `step`, set after its backward, before the optimizers step.
    group["initial_lr"] is the lr make_optimizers gave. PowerCool for every group, the momentum schedule for Muon,
    and Muon's group["step"], the step the trust gate's floor and cap and Bi-Maxwell's start follow."""
    for group in (g for opt in optimizers for g in opt.param_groups):
        group["lr"] = min(group["initial_lr"], group["power_c"] * max(0.0, lr_cool_end - step) ** lr_cool_power)
    for group in optimizers[0].param_groups:
        group["mu"], group["step"] = muon_momentum(step), step

def is_val_step(step):
    """Validate before training step `step` (step == train_steps: after the last one)? PR #339's val steps: every
    125 steps, every 5 from 2500 to 2800, every 10 from 2810 to 2890, 2895; not step 0."""
    dense = (2500 <= step <= 2800 and step % 5 == 0) or (2810 <= step <= 2890 and step % 10 == 0) or step == 2895
    return step == train_steps or (step > 0 and step % 125 == 0) or dense

# The loop's extension points. `state` is a dict that belongs to the trial: whatever these functions
# keep in it (tensors, numbers, strings, lists and dicts of them; checked at the first step and at every
# val step) is saved in every checkpoint and restored on resume. Compute it the same way on every rank.
# `model` is the uncompiled model (its parameters are the compiled model's). Weights may change in
# before_forward, the optimizers' step and after_step only: val passes and readouts must leave them bit
# for bit, and val losses must never steer training (RULES.md 2.6; tools.preflight checks all of this).

@torch.no_grad()
def before_forward(step, model, optimizers, state):
    """EMA-Nesterov: from step 300 to train_steps - 950 (excluded) every weight moves by 0.3 (lr / initial lr)
    times its lookahead buffer before the forward (lr of the embedding group, as set for the previous step); the
    gradient is taken there and the optimizers step from there."""
    params = list(model.parameters())
    if "lookahead" not in state:  # the weights at the end of the previous step, and the buffer
        state["lookahead_prev"], state["lookahead"] = [p.clone() for p in params], [torch.zeros_like(p) for p in params]
    if lookahead_start <= step < train_steps - lookahead_rest:
        embed = optimizers[1].param_groups[0]
        torch._foreach_add_(params, state["lookahead"], alpha=lookahead_scale * (embed["lr"] / embed["initial_lr"]))

@torch.no_grad()
def after_step(step, model, optimizers, state):
    """Every step: buf = 0.99 buf + 0.01 (w - w_prev), w_prev = w. After steps 2399 to 2898: the tail EMA of every
    weight but the token embedding, ema += (w - ema) / 150 (the first one a copy)."""
    params = list(model.parameters())
    torch._foreach_lerp_(state["lookahead"], torch._foreach_sub(params, state["lookahead_prev"]), 1 - lookahead_ema)
    torch._foreach_copy_(state["lookahead_prev"], params)
    if tail_ema_start <= step + 1 < tail_ema_end:
        named = {n: p.float() for n, p in model.named_parameters() if n != "embed.weight"}
        if "tail_ema" not in state:
            state["tail_ema"] = {n: w.clone() for n, w in named.items()}
        else:
            ema, weights = list(state["tail_ema"].values()), [named[n] for n in state["tail_ema"]]
            torch._foreach_add_(ema, torch._foreach_sub(weights, ema), alpha=1.0 / tail_ema_tau)

@torch.no_grad()
def readouts(step, model, val_loss, evaluate, state):
    """val_ema_loss: the val loss of 0.4 w + 0.6 ema (the tail EMA; the embedding as it is); val_loss before the
    EMA exists. The training weights are put back bit for bit."""
    if "tail_ema" not in state:
        return {"val_ema_loss": val_loss}
    params = dict(model.named_parameters())
    saved = {n: params[n].clone() for n in state["tail_ema"]}
    for n, ema in state["tail_ema"].items():
        p = params[n]
        p.copy_(((1.0 - tail_ema_blend) * p.float() + tail_ema_blend * ema).to(p.dtype))
    loss = evaluate()
    for n, w in saved.items():
        params[n].copy_(w)
    return {"val_ema_loss": loss}

# -----------------------------------------------------------------------------
# Training and Validation

def check_launch():
    """What must stop a launch before any GPU work, one line each (SystemExit). These faults and
    more, explained: python -m tools.launch_check (the preflight runs it too)."""
    if device_type == "cuda" and not torch.cuda.is_available():
        raise SystemExit("train_gpt_simple.py needs CUDA GPUs and found none. To check a script on "
                         "CPU: python -m tools.preflight path/to/train_gpt_simple.py")
    if type(train_steps) is not int or train_steps < 1:
        raise SystemExit(f"train_steps = {train_steps!r}: must be a whole number >= 1")
    paths, val_paths, have = sorted(glob.glob(train_files)), glob.glob(val_files), 0
    fix = "python data/cached_fineweb10B.py"
    if not paths or not val_paths:
        raise SystemExit(f"no shards at {val_files if paths else train_files} (run from the "
                         f"repo root); download them with: {fix} 20")
    try:
        for i, path in enumerate(paths, 1):  # shards 1, 2, ... up to the last one needed
            if have < train_steps and os.path.basename(path) != f"fineweb_train_{i:06d}.bin":
                raise SystemExit(f"train shard fineweb_train_{i:06d}.bin is missing (next: {path}),"
                                 f" and the stream would skip it: {fix} {min(len(paths) + 1, 103)}")
            have += steps_in_shard(shard_token_count(path), batch_size)
        val_have = shard_token_count(val_paths[0])
    except (OSError, ValueError) as e:  # a damaged shard, a directory, a dangling link
        raise SystemExit(f"{e.filename}: {e.strerror}" if isinstance(e, OSError) else e) from None
    if val_have < val_tokens + 2:  # the val batch takes val_tokens + 1 from a longer shard
        raise SystemExit(f"{val_paths[0]}: {val_have} tokens, fewer than val_tokens + 2 = "
                         f"{val_tokens + 2}")
    if have < train_steps:  # the benchmark's 103 shards: 190 steps each
        raise SystemExit(f"train_steps = {train_steps} needs {train_steps} batches, but the "
                         f"{len(paths)} train shards hold only {have}: " + (
                             f"{fix} {-(-train_steps // 190)}" if train_steps <= 103 * 190 else
                             "all 103 shards of the benchmark hold 19570 steps"))

def check_state(value, path="state"):
    """SystemExit naming the first value of the trial's state that a checkpoint cannot hold."""
    pairs = value.items() if isinstance(value, dict) else enumerate(value) if isinstance(
        value, (list, tuple)) else ()
    for key, item in pairs:
        check_state(key, f"a key of {path}")  # torch.load(weights_only=True) checks keys too
        check_state(item, f"{path}[{key!r}]")
    if not isinstance(value, (dict, list, tuple, torch.Tensor, bool, int, float, str, type(None))):
        raise SystemExit(f"{path} is a {type(value).__name__}: a checkpoint holds only tensors, "
                         "numbers, strings and lists, tuples and dicts of them; keep the values it "
                         "stands for instead")

def choose_micro_batch(device, seqs_per_rank, world_size):
    """micro_batch_seqs, or the most that fit the GPU: ~2.1 + 0.42 GiB each (docs/speed.md)."""
    cuda = device.type == "cuda"
    gib = torch.cuda.get_device_properties(device).total_memory / 2 ** 30 if cuda else 80
    n = micro_batch_seqs or (64 if gib >= 35 else 32 if gib >= 20 else 16 if gib >= 11 else 8)
    if seqs_per_rank % min(n, seqs_per_rank):
        raise SystemExit(f"micro_batch_seqs = {n} does not divide the {seqs_per_rank} sequences "
                         f"each of the {world_size} ranks takes per step: use one of " + ", ".join(
                             str(d) for d in range(1, seqs_per_rank + 1) if not seqs_per_rank % d))
    return min(n, seqs_per_rank)  # more: one forward per rank and step (the header says so)

def load_checkpoint(path, code, device):
    """The checkpoint at `path`, refused unless whole, written by this very script, its log here."""
    try:
        with zipfile.ZipFile(path) as z:  # torch.load does not check the CRCs torch.save writes
            bad = z.testzip() and f"not a whole checkpoint (corrupt member {z.testzip()})"
        ckpt = torch.load(path, map_location=device, weights_only=True)
        sha = isinstance(ckpt, dict) and ckpt.get("script_sha256")
        why = bad or not sha and "not a checkpoint of train_gpt_simple.py" or sha != hashlib.sha256(
            code.encode()).hexdigest() and (f"it was written by a different script; the log "
                                            f"{ckpt.get('log_path')} holds its code")
    except Exception as e:
        why = f"not a whole checkpoint ({type(e).__name__}: {e})"
    if not why and not os.path.isfile(ckpt["log_path"]):
        why = f"its log {ckpt['log_path']} is not there: put it back, or resume from its directory"
    if why:
        raise SystemExit(f"cannot resume from {path}: {why}")
    return ckpt

def save_checkpoint(run, optimizers, **ckpt):
    """Rank 0 writes `ckpt` with the model, every optimizer's state and the RNG. Returns why the
    write failed (a full disk, say), or None; a failed write leaves the previous checkpoint."""
    check_state(ckpt["state"])
    ckpt.update(optimizers=[opt.state_dict() for opt in optimizers],  # all ranks: sharded ones meet
                script_sha256=hashlib.sha256(run.code.encode()).hexdigest(), log_path=run.log_path,
                num_trials=run.num_trials, seed0=run.seed0, model=run.raw_model.state_dict(),
                rng=torch.get_rng_state(), cuda_rng=run.cuda and torch.cuda.get_rng_state())
    try:
        if run.rank == 0:
            torch.save(ckpt, run.ckpt_path + ".tmp")
            os.replace(run.ckpt_path + ".tmp", run.ckpt_path)  # the last stays until this is whole
            run.saved = (ckpt["trial"], ckpt["step"])
    except (OSError, RuntimeError) as e:
        if os.path.exists(run.ckpt_path + ".tmp"):
            os.remove(run.ckpt_path + ".tmp")
        return f"{type(e).__name__}: {str(e).strip().splitlines()[-1]}"

def restore(run, ckpt, optimizers):
    """The interrupted trial's model, optimizer states (each rank keeps its own shard) and RNG."""
    run.raw_model.load_state_dict(ckpt["model"])
    for opt, sd in zip(optimizers, ckpt["optimizers"]):
        opt.load_state_dict(sd)
    torch.set_rng_state(ckpt["rng"].cpu())
    if run.cuda:
        torch.cuda.set_rng_state(ckpt["cuda_rng"].cpu(), run.device)
    return ckpt["state"]

def evaluate(run):
    """Val loss of the current weights: the loss summed over the val set and ranks, per token."""
    with torch.no_grad():
        loss = sum(run.model(x, y).double() for x, y in zip(run.val_inputs.split(run.micro),
                                                           run.val_targets.split(run.micro)))
    if run.world_size > 1:
        dist.all_reduce(loss)
    return loss.item() / val_tokens

def forward_backward(run, inputs, targets):
    """One forward and one backward per microbatch; loss and gradients are sums over them."""
    train_loss = 0
    for x, y in zip(inputs.split(run.micro), targets.split(run.micro)):
        loss = run.model(x, y)
        loss.backward()
        train_loss += loss.detach()
    return train_loss

def optimizer_step(run, optimizers):
    """Sum the gradients over ranks, step every optimizer. A MatrixOptimizer (`owner`) sums its own;
    the rest are all-reduced asynchronously (one per matrix, one for all vectors), waited for just
    before the first optimizer that reads them."""
    works = []
    if run.world_size > 1:  # on one rank nothing to sum: no work per step here
        sharded = {p for opt in optimizers for p in getattr(opt, "owner", {})}
        grads = [p.grad for p in run.raw_model.parameters()
                 if p.grad is not None and p not in sharded]
        vectors = [g for g in grads if g.ndim < 2]  # biases and gains
        buckets = [g for g in grads if g.ndim >= 2] + [torch.cat([g.flatten() for g in vectors])
                                                       for _ in vectors[:1]]  # none if none
        works = [dist.all_reduce(b, async_op=True) for b in buckets]
    for opt in optimizers:
        if works and not getattr(opt, "owner", None):
            for work in works:
                work.wait()
            if vectors:
                sums = buckets[-1].split([g.numel() for g in vectors])
                torch._foreach_copy_(vectors, [s.view_as(g) for s, g in zip(sums, vectors)])
            works = []
        opt.step()
    run.raw_model.zero_grad(set_to_none=True)

def run_trial(run, trial, ckpt):
    """One trial: a fresh init (or the checkpoint's state), then every step with its val passes."""
    seed, tag = run.seed0 + trial, f"trial {trial + 1}/{run.num_trials}"
    run.raw_model.zero_grad(set_to_none=True)
    if not ckpt:
        log(run, f"{tag} seed {seed}")
        torch.manual_seed(seed)
        init_params(run.raw_model)
    optimizers = make_optimizers(run.raw_model)
    for group in (g for opt in optimizers for g in opt.param_groups):
        group["initial_lr"] = group["lr"]  # a resume loads the saved groups over these
    state, start, reached, train_time = {}, 0, None, 0.0
    if ckpt:
        state, start, reached, train_time = restore(run, ckpt, optimizers), ckpt["step"], \
            ckpt["reached"], ckpt["train_time"]
        log(run, f"{tag} resumed from {run.ckpt_path} at step {start} on world_size "
            f"{run.world_size} (micro_batch_seqs {run.micro})")
    train_loader = distributed_data_generator(train_files, batch_size, run.rank, run.world_size,
                                              seq_len, run.device)
    for _ in range(start):
        next(train_loader)
    if run.cuda:
        torch.cuda.reset_peak_memory_stats(run.device)
    # each step's flags [loss not finite, stop signal, checkpoint due], MAX over ranks, are read on
    # the host during the next step, after its forward and backward are queued: no step waits
    flags, flags_ready = torch.zeros(3, dtype=torch.int32, pin_memory=run.cuda), None
    val, last_save, t0 = float("nan"), time.perf_counter(), time.perf_counter()
    for step in range(start, train_steps + 1):
        if step == train_steps or is_val_step(step):  # every trial validates after its last step
            run.sync()
            train_time += time.perf_counter() - t0  # the clock stops during val
            val = evaluate(run)
            extra = readouts(step, run.raw_model, val, lambda: evaluate(run), state)
            log(run, f"step:{step}/{train_steps} val_loss:{val:.5f}" + "".join(
                f" {k}:{v:.5f}" for k, v in extra.items()) + f" train_time:{train_time:.3f}s "
                f"step_avg:{1000 * train_time / max(step, 1):.2f}ms")
            reached = step if reached is None and val <= 3.28 else reached
            check_state(state)
            t0 = time.perf_counter()
        if step == train_steps:
            break
        inputs, targets = next(train_loader)
        before_forward(step, run.raw_model, optimizers, state)
        train_loss = forward_backward(run, inputs, targets)
        if step > start:  # the previous step's flags
            if flags_ready is not None:
                flags_ready.synchronize()
            nonfinite, signum, save = flags.tolist()
            if nonfinite:
                log(run, f"{tag} stopped: training loss is nan or inf at step {step - 1}; going on "
                    "with the next trial")
                break
        due = run.rank == 0 and checkpoint_every is not None and \
            time.perf_counter() - last_save > checkpoint_every
        step_flags = torch.stack([~torch.isfinite(train_loss)] + [torch.full(
            (), v, device=run.device) for v in (run.stop[0] if run.stop else 0, due)]).int()
        sent = run.world_size > 1 and dist.all_reduce(step_flags, dist.ReduceOp.MAX, async_op=True)
        set_hparams(step, optimizers, state)
        optimizer_step(run, optimizers)
        after_step(step, run.raw_model, optimizers, state)
        if step == start:
            check_state(state)
        if run.world_size > 1:  # waited for only now: it ran under the optimizers' steps
            sent.wait()
        flags.copy_(step_flags, non_blocking=True)
        if run.cuda:
            (flags_ready := torch.cuda.Event()).record()
        now = train_time + time.perf_counter() - t0  # the public script's console line
        if run.rank == 0:
            print(f"step:{step + 1}/{train_steps} train_time:{now:.3f}s "
                  f"step_avg:{1000 * now / (step + 1):.2f}ms")
        if step > start and (signum or save):  # the state after this step: a resume starts there
            run.sync()
            train_time += time.perf_counter() - t0
            failed = save_checkpoint(run, optimizers, trial=trial, step=step + 1,
                                     train_time=train_time, reached=reached, state=state)
            last_save = t0 = time.perf_counter()
            kept = f"trial {run.saved[0] + 1} step {run.saved[1]}" if run.saved else "none"
            if failed:
                log(run, f"{tag} checkpoint at step {step + 1} not written ({failed}); the last "
                    f"one is {kept}, so the steps since are unprotected" + (
                        "" if signum else "; training goes on"))
            if signum:
                log(run, f"{tag} stopped by signal {signum} at step {step + 1}; " + (
                    f"checkpoint {run.ckpt_path}; resume with: RESUME={run.ckpt_path} and the same "
                    "launch command" + (f" (from {kept})" if failed else "") if run.saved else
                    "no checkpoint to resume from"))
                raise SystemExit(128 + signum)
    peak = torch.cuda.max_memory_allocated(run.device) / 2 ** 30 if run.cuda else 0.0
    log(run, f"{tag} target val_loss<=3.28 " + (
        "not reached" if reached is None else f"first reached at step {reached}"))
    log(run, f"{tag} summary: steps {step} final_val_loss {val:.5f} train_time {train_time:.3f}s "
        f"step_avg {1000 * train_time / max(step, 1):.2f}ms peak_mem {peak:.1f}GiB seed {seed}")

def log(run, line, echo=True):
    if run.rank == 0:
        if echo:
            print(line)
        run.logfile.write(line + "\n")
        run.logfile.flush()

def main(num_trials=1):
    rank, world_size = int(os.environ.get("RANK", 0)), int(os.environ.get("WORLD_SIZE", 1))
    seed0 = int(os.environ.get("SEED", int.from_bytes(os.urandom(6), "little")))
    if world_size < 1 or 8 % world_size or not 0 <= rank < world_size:
        raise SystemExit(f"world size {world_size} does not divide 8 (or rank {rank} is not below "
                         "it): launch with torchrun --nproc_per_node 1, 2, 4 or 8")
    check_launch()
    cuda, resume, code = device_type == "cuda", os.environ.get("RESUME"), open(__file__).read()
    device = torch.device(device_type, int(os.environ.get("LOCAL_RANK", 0)) if cuda else None)
    if cuda:
        torch.cuda.set_device(device)
        if torch.__version__.startswith("2.10") and torch.cuda.get_device_capability() == (8, 0):
            raise SystemExit("torch 2.10 with torch.compile gives NaN losses on A100 (public "
                             "modded-nanogpt issue #268): install torch 2.11 or newer")
        torch.backends.cuda.enable_cudnn_sdp(False)  # cuDNN attention: no plan for this layout
    ckpt = resume and load_checkpoint(resume, code, device)
    log_path = ckpt["log_path"] if ckpt else os.path.abspath(
        os.path.join(os.path.expanduser(log_dir), f"{uuid.uuid4()}.txt"))
    ckpt_path = resume or os.path.join(os.path.expanduser(checkpoint_dir),
                                       os.path.basename(log_path)[:-4] + ".pt")
    for directory in {os.path.dirname(log_path), os.path.dirname(os.path.abspath(ckpt_path))}:
        os.makedirs(directory, exist_ok=True)
    micro = choose_micro_batch(device, batch_size // world_size // seq_len, world_size)
    if world_size > 1:
        dist.init_process_group("nccl" if cuda else "gloo", rank=rank, world_size=world_size)
    stop = []  # a stop signal (preemption, Ctrl-C) checkpoints after the next step, then exits
    old_handlers = {s: signal.signal(s, lambda signum, frame: stop.append(signum))
                    for s in (signal.SIGTERM, signal.SIGINT)}
    try:
        run = types.SimpleNamespace(rank=rank, world_size=world_size, device=device, cuda=cuda,
                                    code=code, stop=stop, micro=micro, log_path=log_path,
                                    ckpt_path=ckpt_path,
                                    saved=ckpt and (ckpt["trial"], ckpt["step"]),
                                    sync=torch.cuda.synchronize if cuda else lambda: None)
        if rank == 0:
            run.logfile = open(run.log_path, "a")
            print(f"logging to {run.log_path}")
        if not ckpt:
            name, more = torch.cuda.get_device_name(device) if cuda else "cpu", micro_batch_seqs
            log(run, code + "\n" + "=" * 100, echo=False)
            log(run, f"PyTorch {torch.__version__} | CUDA {torch.version.cuda} | device {name} | "
                f"world_size {world_size} | micro_batch_seqs {micro}" + (f" (micro_batch_seqs ="
                f" {more} is more than the {micro} sequences of a rank)" * ((more or 0) > micro)))
            log(run, "=" * 100, echo=False)
        with torch.device(device):
            run.raw_model = GPT(vocab_size, num_layers, model_dim)
        run.model = compiled(run.raw_model, device)
        run.val_inputs, run.val_targets = next(distributed_data_generator(
            val_files, val_tokens, rank, world_size, seq_len, device))
        seed0 = torch.tensor(ckpt["seed0"] if ckpt else seed0, device=device)
        if world_size > 1:  # every rank initializes from rank 0's seed
            dist.broadcast(seed0, 0)
        run.seed0, run.num_trials = seed0.item(), ckpt["num_trials"] if ckpt else num_trials
        for trial in range(ckpt["trial"] if ckpt else 0, run.num_trials):
            try:
                run_trial(run, trial, ckpt if ckpt and trial == ckpt["trial"] else None)
            except torch.OutOfMemoryError:
                raise SystemExit(f"out of GPU memory with micro_batch_seqs = {micro} sequences per "
                                 f"forward: set micro_batch_seqs = {max(1, micro // 2)} in the "
                                 "Setup section (same math)") from None
        if rank == 0 and os.path.exists(run.ckpt_path):  # a resume would replay a finished run
            os.remove(run.ckpt_path)
            log(run, f"all trials done: removed the checkpoint {run.ckpt_path}")
    finally:
        for s, handler in old_handlers.items():
            signal.signal(s, handler)
        if dist.is_initialized():
            dist.destroy_process_group()

if __name__ == "__main__":
    arg = sys.argv[-1] if len(sys.argv) > 1 else "1"
    if not (arg.isascii() and arg.isdigit()) or int(arg) < 1:
        raise SystemExit(f"usage: torchrun --standalone --nproc_per_node=N {sys.argv[0]} "
                         f"[num_trials]  (got {arg!r})")
    main(int(arg))
