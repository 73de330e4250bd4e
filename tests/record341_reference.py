"""Open pull request #341's method written directly from its script, one matrix and one parameter at a time (plain
torch, in the public script's order of operations), for tests/test_record_bimaxwell_kfac.py. Nothing here calls the
port (records/20260716_bimaxwell_kfac/train_gpt_simple.py); the test compares the two.

Source: KellerJordan/modded-nanogpt, refs/pull/341/head,
records/track_3_optimization/results/20260716_bimaxwell_kfac_2600/train_gpt_bimaxwell_kfac_2600.py (sha256 87e2ad14...):
record #46's script plus Bi-Maxwell momentum, the output-head K-FAC, the phase advance and a per-group tail EMA.
"""
import torch

# constants of the public script
MUON_LR, ADAM_EMBED_LR, ADAM_HEAD_LR, AUX_LR = 0.0375, 0.3, 1 / 320, 0.01
POWER_C = dict(embed=4.976805410800738e-05, head=5.184172302917436e-07, aux=1.6589351369335795e-06,
               muon=3.3169534699576625e-06)
POWER, TRAIN_STEPS, PHASE_ADVANCE, PHASE_SWITCH = 1.2, 2900, 60, 1400
BETA2, DENOM_POWER, TARGET_UW, CWD = 0.90, 0.50, 0.3825, 0.025
OUTWARD, INWARD = 0.5, 1.0
FLOOR, CAP, FLOOR_END, FADE_END, MIN_AGREE, MIN_ALIGN = 0.45, 0.85, 1375, 1625, 0.20, 0.00
LOOKAHEAD, LOOKAHEAD_EMA, PREFILL, REST = 0.3, 0.99, 300, TRAIN_STEPS - 950 - PHASE_ADVANCE
TAU, START, END = 150.0, 2040, 2840
LAMBDA_FIRST, LAMBDA_BLOCKS, LAMBDA_AUX, LAMBDA_PROJ = 0.90, 0.65, 1.00, 0.60
BM_BETA_F, BM_BETA_S, BM_W, BM_START = 0.85, 0.98, 0.4385, 1000
KFAC_STRENGTH, KFAC_INITIAL_STRENGTH, KFAC_POWER = 0.75, 0.25, 0.5
KFAC_FAST_BETA, KFAC_SLOW_BETA, KFAC_FAST_WEIGHT = 0.8, 0.98, 8.0 / 9.0
KFAC_DAMPING, KFAC_INITIAL_DAMPING = 0.05, 0.15
KFAC_COLLECT_START, KFAC_APPLY_START, KFAC_RAMP_END, KFAC_END, KFAC_REFRESH, KFAC_SUBSAMPLE = 1400, 1500, 1750, 2640, 8, 16


def schedule_steps(step):
    return TRAIN_STEPS - (PHASE_ADVANCE if step >= PHASE_SWITCH else 0)


def lr_at(step, initial, c):
    return min(initial, c * max(0.0, schedule_steps(step) - step) ** POWER)


def mu_at(step):
    cd_start = schedule_steps(step) - 200
    if step < 300:
        frac = step / 300
        return 0.85 + frac * (0.95 - 0.85)
    elif step > cd_start:
        frac = (step - cd_start) / 200
        return 0.95 - frac * (0.95 - 0.85)
    return 0.95


def tail_blend(name, ndim):
    if name == "proj.weight":
        return LAMBDA_PROJ
    if name.startswith("blocks.") and ndim >= 2:
        return LAMBDA_FIRST if int(name.split(".", 2)[1]) == 0 else LAMBDA_BLOCKS
    return LAMBDA_AUX


def gram_fro(X, eps):
    X = X.float()
    gram = X.mT @ X if X.size(-2) > X.size(-1) else X @ X.mT
    return gram.norm(dim=(-2, -1)).sqrt().clamp_min(eps)


def zeropower(G):
    X = G.bfloat16()
    if G.size(-2) > G.size(-1):
        X = X.mT
    X = X / gram_fro(X, 1e-7).to(X.dtype)
    for _ in range(12):
        A = X @ X.mT
        B = -1.5 * A + 0.5 * A @ A
        X = 2 * X + B @ X
    if G.size(-2) > G.size(-1):
        X = X.mT
    return X


def cos(a, b):
    return (a * b).sum() / (a.norm() * b.norm()).clamp_min(1e-8)


def gate(raw, soap, grad, t):
    agree = ((cos(soap, raw) - MIN_AGREE) / (1 - MIN_AGREE)).clamp(0, 1)
    align = ((cos(soap, grad) - MIN_ALIGN) / (cos(raw, grad) - MIN_ALIGN).clamp_min(1e-8)).clamp(0, 1)
    g = (agree * align).clamp(0, 1)
    if t < FLOOR_END:
        floor = FLOOR
    elif t >= FADE_END:
        floor = 0.0
    else:
        floor = FLOOR * (FADE_END - t) / (FADE_END - FLOOR_END)
    return g.clamp(min=floor, max=CAP if t < FADE_END else 1.0)


def blend(raw, soap, g):
    b = raw + (soap - raw) * g
    return (b * (gram_fro(raw, 1e-8) / gram_fro(b, 1e-8))).to(raw.dtype)


class MuonRef:
    """One matrix at a time; `kind` per parameter: "proj" (attn.proj), "attn" (q, k, v) or "mlp"."""

    def __init__(self, params, kinds):
        self.params, self.kinds, self.state, self.t = params, kinds, {}, 0

    @torch.no_grad()
    def step(self, grads, lr, mu):
        for p, grad, kind in zip(self.params, grads, self.kinds):
            st = self.state.setdefault(id(p), dict(m=torch.zeros_like(p), v=torch.zeros_like(p),
                                                   Gr=torch.zeros(p.size(0), p.size(0)),
                                                   Gc=torch.zeros(p.size(1), p.size(1)), Qr=None, Qc=None))
            st["m"].lerp_(grad, 1 - mu)
            u = grad.lerp(st["m"], mu)
            if self.t >= BM_START:  # Bi-Maxwell
                if "mf" not in st:
                    st["mf"], st["ms"] = st["m"].clone(), st["m"].clone()
                else:
                    st["mf"].lerp_(grad, 1.0 - BM_BETA_F)
                    st["ms"].lerp_(grad, 1.0 - BM_BETA_S)
                u = grad.lerp(torch.lerp(st["ms"], st["mf"], BM_W), mu)
            if st["Qr"] is None:
                soap = u
            else:
                proj = st["Qr"].T @ u @ st["Qc"]
                st["v"].mul_(BETA2).add_(proj.square(), alpha=1 - BETA2)
                soap = st["Qr"] @ (proj / st["v"].clamp_min(1e-8 * 1e-8).pow(DENOM_POWER)) @ st["Qc"].T
                soap.mul_(gram_fro(u, 1e-8) / gram_fro(soap, 1e-8))
            if kind == "mlp":
                u = soap
            else:
                g = gate(u, soap, grad, self.t) if kind == "proj" else torch.ones(())
                u = blend(u, soap, g)
            U = zeropower(u)
            U *= max(1, U.size(-2) / U.size(-1)) ** 0.5
            # radial brake
            uf, pf = U.float(), p.float()
            coeff = (uf * pf).sum() / (pf * pf).sum().clamp_min(1e-12)
            radial = coeff * pf
            U = (uf - radial + (OUTWARD if coeff < 0 else INWARD) * radial).to(U.dtype)
            # RowFloor
            r_row = p.float().norm(dim=1, keepdim=True).clamp_min(1e-8)
            s_row = U.float().norm(dim=1, keepdim=True).clamp_min(1e-8)
            U = (U.float() * torch.clamp(TARGET_UW * r_row / s_row, min=1.0).pow(1.0)).to(U.dtype)
            # the radius pin and cautious weight decay
            before = p.float().norm().clamp_min(1e-8)
            target = (before + -lr * (U.float() * p.float()).sum() / before).clamp_min(1e-8)
            mask = (U.float() * p.float() > 0).to(p.dtype)
            p.add_(U, alpha=-lr)
            p.mul_(target / p.float().norm().clamp_min(1e-8))
            p.mul_(1.0 - (lr * CWD) * mask)
            # the preconditioner
            st["Gr"].lerp_(grad @ grad.T, 1 - BETA2)
            st["Gc"].lerp_(grad.T @ grad, 1 - BETA2)
            if st["Qr"] is None:
                st["Qr"] = torch.flip(torch.linalg.eigh(st["Gr"] + 1e-30 * torch.eye(p.size(0)))[1], [1])
                st["Qc"] = torch.flip(torch.linalg.eigh(st["Gc"] + 1e-30 * torch.eye(p.size(1)))[1], [1])
            else:
                order = torch.argsort(torch.diag(st["Qr"].T @ st["Gr"] @ st["Qr"]), descending=True)
                st["v"] = st["v"].index_select(0, order)
                st["Qr"] = torch.linalg.qr(st["Gr"] @ st["Qr"][:, order])[0]
                order = torch.argsort(torch.diag(st["Qc"].T @ st["Gc"] @ st["Qc"]), descending=True)
                st["v"] = st["v"].index_select(1, order)
                st["Qc"] = torch.linalg.qr(st["Gc"] @ st["Qc"][:, order])[0]
        self.t += 1


class AuxAdamRef:
    def __init__(self, params, betas):
        self.params, self.betas, self.state = params, betas, {}

    @torch.no_grad()
    def step(self, grads, lr):
        for p, grad, (b1, b2) in zip(self.params, grads, self.betas):
            st = self.state.setdefault(id(p), dict(m=torch.zeros_like(p), v=torch.zeros_like(p, dtype=torch.float32)))
            st["m"].lerp_(grad, 1 - b1)
            st["v"].lerp_(grad.float().square(), 1 - b2)
            p.add_((st["m"].float() / (st["v"].sqrt() + 1e-10)).to(p.dtype), alpha=-lr)


class OutputKFACRef:
    """The public script's _output_kfac_hook and _apply_output_kfac, on one process."""

    def __init__(self, dim):
        self.accum, self.count = torch.zeros(dim, dim), torch.zeros(())
        self.fast = self.slow = self.cov = self.inverse = None

    @torch.no_grad()
    def hook(self, step, inputs):  # a training forward's head input
        if not KFAC_COLLECT_START <= step < KFAC_END:
            return
        x = inputs.detach().flatten(0, -2)[::KFAC_SUBSAMPLE].float()
        self.accum.addmm_(x.mT, x)
        self.count.add_(x.size(0))

    @torch.no_grad()
    def apply(self, step, grad):
        if not KFAC_COLLECT_START <= step < KFAC_END:
            return
        batch_cov = self.accum / self.count.clamp_min(1.0)
        if self.fast is None:
            self.fast, self.slow = batch_cov.clone(), batch_cov.clone()
        else:
            self.fast.lerp_(batch_cov, 1.0 - KFAC_FAST_BETA)
            self.slow.lerp_(batch_cov, 1.0 - KFAC_SLOW_BETA)
        self.cov = torch.lerp(self.slow, self.fast, KFAC_FAST_WEIGHT)
        self.accum.zero_()
        self.count.zero_()
        if step < KFAC_APPLY_START:
            return
        ramp = min(1.0, max(0.0, (step - KFAC_APPLY_START) / (KFAC_RAMP_END - KFAC_APPLY_START)))
        strength = KFAC_INITIAL_STRENGTH + ramp * (KFAC_STRENGTH - KFAC_INITIAL_STRENGTH)
        damping_fraction = KFAC_INITIAL_DAMPING + ramp * (KFAC_DAMPING - KFAC_INITIAL_DAMPING)
        if self.inverse is None or (step - KFAC_APPLY_START) % KFAC_REFRESH == 0:
            eigenvalues, eigenvectors = torch.linalg.eigh(self.cov)
            damping = damping_fraction * eigenvalues.mean().clamp_min(1e-8)
            scales = (eigenvalues.clamp_min(0.0) + damping).pow(-KFAC_POWER)
            self.inverse = (eigenvectors * scales.unsqueeze(0)) @ eigenvectors.mT
        raw = grad.float()
        natural = raw @ self.inverse
        raw_norm = raw.norm()
        natural.mul_(raw_norm / natural.norm().clamp_min(1e-12))
        mixed = raw.lerp(natural, strength)
        mixed.mul_(raw_norm / mixed.norm().clamp_min(1e-12))
        grad.copy_(mixed.to(grad.dtype))


class Record341:
    """The whole per-step method on a dict of named parameters (cloned): EMA-Nesterov around the output K-FAC of
    the head's gradient, AdamW (embedding, head), Muon (block matrices) and the aux Adam (vectors); the tail EMA and
    its readout weights. step() takes the step's gradients and its head inputs (one tensor per forward)."""

    def __init__(self, named):
        self.w = {n: p.detach().clone() for n, p in named}
        self.names = list(self.w)
        matrices = [n for n in self.names if n.startswith("blocks.") and self.w[n].ndim == 2]
        kinds = ["proj" if n.endswith(".attn.proj.weight") else "attn" if ".attn." in n else "mlp" for n in matrices]
        self.muon_names = matrices
        self.muon = MuonRef([self.w[n] for n in matrices], kinds)
        self.adamw = torch.optim.AdamW([dict(params=[self.w["embed.weight"]], lr=ADAM_EMBED_LR),
                                        dict(params=[self.w["proj.weight"]], lr=ADAM_HEAD_LR)],
                                       betas=(0.8, 0.99), eps=1e-10, weight_decay=0, fused=True)
        self.vector_names = [n for n in self.names if self.w[n].ndim < 2]
        betas = [(0.8, 0.99) if n.endswith(".gains") or n in ("norm1.gains", "norm2.gains") else
                 (0.8, 0.9965) if n.endswith(".attn.proj.bias") else (0.8, 0.997) for n in self.vector_names]
        self.aux = AuxAdamRef([self.w[n] for n in self.vector_names], betas)
        self.prev = {n: w.clone() for n, w in self.w.items()}
        self.buf = {n: torch.zeros_like(w) for n, w in self.w.items()}
        self.embed_lr = ADAM_EMBED_LR  # the embedding group's lr as last set (before the first step: its initial lr)
        self.ema = None
        self.kfac = OutputKFACRef(self.w["proj.weight"].size(1))

    @torch.no_grad()
    def lookahead(self, step):  # before the forward
        if step + 1 > PREFILL and step < REST:
            alpha = LOOKAHEAD * (self.embed_lr / ADAM_EMBED_LR)
            for n in self.names:
                self.w[n].add_(self.buf[n], alpha=alpha)

    @torch.no_grad()
    def step(self, step, grads, head_inputs):
        grads = {n: g.clone() for n, g in grads.items()}
        for x in head_inputs:
            self.kfac.hook(step, x)
        self.kfac.apply(step, grads["proj.weight"])
        lrs = dict(embed=lr_at(step, ADAM_EMBED_LR, POWER_C["embed"]), head=lr_at(step, ADAM_HEAD_LR, POWER_C["head"]),
                   aux=lr_at(step, AUX_LR, POWER_C["aux"]), muon=lr_at(step, MUON_LR, POWER_C["muon"]))
        self.embed_lr = lrs["embed"]
        self.adamw.param_groups[0]["lr"], self.adamw.param_groups[1]["lr"] = lrs["embed"], lrs["head"]
        self.w["embed.weight"].grad, self.w["proj.weight"].grad = grads["embed.weight"], grads["proj.weight"]
        self.adamw.step()
        self.w["embed.weight"].grad = self.w["proj.weight"].grad = None
        self.muon.t = step  # the public Muon counts its steps from 0; a test may jump ahead
        self.muon.step([grads[n] for n in self.muon_names], lrs["muon"], mu_at(step))
        self.aux.step([grads[n] for n in self.vector_names], lrs["aux"])
        for n in self.names:
            look = self.w[n].add(self.prev[n], alpha=-1)
            self.buf[n].lerp_(look, 1 - LOOKAHEAD_EMA)
            self.prev[n].copy_(self.w[n])
        if START <= step + 1 < END:
            if self.ema is None:
                self.ema = {n: self.w[n].float().clone() for n in self.names if n != "embed.weight"}
            else:
                for n, e in self.ema.items():
                    e.add_(self.w[n].float() - e, alpha=1.0 / TAU)
        return lrs

    def readout_weights(self):
        """The weights a val pass of val_ema_loss sees (None before the EMA exists)."""
        if self.ema is None:
            return None
        out = {}
        for n, w in self.w.items():
            b = tail_blend(n, w.ndim)
            out[n] = ((1.0 - b) * w.float() + b * self.ema[n]).to(w.dtype) if n in self.ema else w
        return out
