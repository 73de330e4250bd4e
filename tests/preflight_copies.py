"""Copies of train_gpt_simple.py for the preflight's tests: the researcher's extension points (FRONTIER), and
deliberately broken copies, each meant to fail exactly one check of tools.preflight.

A copy is a list of (old, new) substitutions of the repo's script; FRONTIER is added at the end of the Init &
Optim Hyperparams section (later definitions win). Each old text must occur exactly once.
"""
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BASELINE = ROOT / "train_gpt_simple.py"
MARKER = "# -----------------------------------------------------------------------------\n# Training and Validation"

# The frontier's loop changes as a researcher writes them (docs/writing-an-approach.md), scaled to any
# train_steps: per-group schedules, val steps without step 0, a lookahead before the forward, a weight EMA
# from half-way (so that the late resumes of a 12-step preflight start after it exists) and its readout.
FRONTIER = '''
def set_hparams(step, optimizers, state):
    muon, adam = optimizers
    for group in adam.param_groups:
        group["lr"] = group["initial_lr"] * lr_multiplier(step)
    for group in muon.param_groups:
        group["lr"] = group["initial_lr"] * min(1.0, 3 * (train_steps - step) / train_steps)
        group["mu"] = 0.85 + 0.10 * min(1.0, 3 * step / train_steps)


def is_val_step(step):
    return step == train_steps or (step > 0 and step % 10 == 0) or step >= train_steps - 3


@torch.no_grad()
def before_forward(step, model, optimizers, state):
    params = list(model.parameters())
    if "prev" not in state:
        state["prev"] = [p.clone() for p in params]
        state["buf"] = [torch.zeros_like(p) for p in params]
    if train_steps // 6 <= step < train_steps - train_steps // 6:
        torch._foreach_add_(params, state["buf"], alpha=0.3)


@torch.no_grad()
def after_step(step, model, optimizers, state):
    params = list(model.parameters())
    torch._foreach_lerp_(state["buf"], torch._foreach_sub(params, state["prev"]), 0.01)
    torch._foreach_copy_(state["prev"], params)
    if step + 1 >= train_steps // 2:
        if "ema" not in state:
            state["ema"] = [p.float().clone() for p in params]
        else:
            torch._foreach_lerp_(state["ema"], [p.float() for p in params], 0.2)


@torch.no_grad()
def readouts(step, model, val_loss, evaluate, state):
    if "ema" not in state:
        return {"val_ema_loss": val_loss}
    params = list(model.parameters())
    saved = [p.clone() for p in params]
    for p, e in zip(params, state["ema"]):
        p.copy_(p.float().lerp(e, 0.6))
    loss = evaluate()
    torch._foreach_copy_(params, saved)
    return {"val_ema_loss": loss}
'''

# The EMA kept in a module global instead of `state`: a resume after it started loses it.
FRONTIER_GLOBAL_EMA = [
    ('''    if step + 1 >= train_steps // 2:
        if "ema" not in state:
            state["ema"] = [p.float().clone() for p in params]
        else:
            torch._foreach_lerp_(state["ema"], [p.float() for p in params], 0.2)''',
     '''    global EMA
    if step + 1 >= train_steps // 2:
        if EMA is None:
            EMA = [p.float().clone() for p in params]
        else:
            torch._foreach_lerp_(EMA, [p.float() for p in params], 0.2)'''),
    ('''    if "ema" not in state:
        return {"val_ema_loss": val_loss}''', '''    if EMA is None:
        return {"val_ema_loss": val_loss}'''),
    ('zip(params, state["ema"])', "zip(params, EMA)"),
    ("\ndef set_hparams(step, optimizers, state):\n    muon, adam", "\nEMA = None\n\n\ndef set_hparams(step, optimizers, state):\n    muon, adam"),
]

# A readout that keeps the best val loss in the param groups (reached through a module global that make_optimizers
# sets) and a schedule that halves the lr on each plateau: the loss steers training (RULES 2.6). Validating every 2
# steps gives it plateaus to find in a 12-step run. The state lives in the param groups, so a resume keeps it.
VAL_STEER = '''
OPTIMIZERS = []


def make_optimizers(model):
    adam = torch.optim.AdamW([dict(params=[model.embed.weight], lr=0.7),
                              dict(params=[model.proj.weight], lr=0.004),
                              dict(params=[p for p in model.parameters() if p.ndim < 2], lr=0.015)],
                             betas=(0.8, 0.95), eps=1e-10, weight_decay=0.001, fused=True)
    muon = Muon([p for p in model.blocks.parameters() if p.ndim == 2], lr=0.025, weight_decay=0.05, mu=0.95)
    OPTIMIZERS[:] = [muon, adam]
    return [muon, adam]


def is_val_step(step):
    return step == train_steps or step % 2 == 0


def set_hparams(step, optimizers, state):
    for group in (g for opt in optimizers for g in opt.param_groups):
        group["lr"] = group["initial_lr"] * lr_multiplier(step) * 0.5 ** group.get("plateaus", 0)


def readouts(step, model, val_loss, evaluate, state):
    for group in (g for opt in OPTIMIZERS for g in opt.param_groups):
        if val_loss >= group.get("best_val", float("inf")):
            group["plateaus"] = group.get("plateaus", 0) + 1
        group["best_val"] = min(group.get("best_val", float("inf")), val_loss)
    return {}
'''

# after_step multiplies every weight by 1 - 1.5 * lr: at the embedding's lr of 0.7 the factor is -0.05, a sign flip
FLIP = '''
@torch.no_grad()
def after_step(step, model, optimizers, state):
    for opt in optimizers:
        for group in opt.param_groups:
            for p in group["params"]:
                p.mul_(1 - 1.5 * group["lr"])
'''

# block 0's MLP replaced by one with GELU squared (the module tree changes in make_optimizers, on every trial and
# resume alike, so every other check passes)
GELU_MLP = '''
class GeluMLP(MLP):
    def forward(self, x):
        return self.proj(F.gelu(self.fc(x)).square())


def make_optimizers(model):
    model.blocks[0].mlp = GeluMLP(model.model_dim if hasattr(model, "model_dim") else model.embed.weight.size(1))
    adam = torch.optim.AdamW([dict(params=[model.embed.weight], lr=0.7),
                              dict(params=[model.proj.weight], lr=0.004),
                              dict(params=[p for p in model.parameters() if p.ndim < 2], lr=0.015)],
                             betas=(0.8, 0.95), eps=1e-10, weight_decay=0.001, fused=True)
    muon = Muon([p for p in model.blocks.parameters() if p.ndim == 2], lr=0.025, weight_decay=0.05, mu=0.95)
    return [muon, adam]
'''

# per-rank noise added to the weights in before_forward (rank 0 adds none)
RANK_NOISE = '''
@torch.no_grad()
def before_forward(step, model, optimizers, state):
    rank = dist.get_rank() if dist.is_initialized() else 0
    for p in model.parameters():
        p.add_((torch.randn(p.shape) * 1e-3 * rank).to(p.dtype))
'''

# noise from a torch.Generator kept in a module global: a resume restarts it
GENERATOR_NOISE = '''
NOISE = torch.Generator().manual_seed(0)


@torch.no_grad()
def before_forward(step, model, optimizers, state):
    for p in model.parameters():
        p.add_((torch.randn(p.shape, generator=NOISE) * 1e-4).to(p.dtype))
'''

# `state` keeps the head's weight itself (not a copy): after a resume it holds a copy that no longer follows it
STATE_ALIAS = '''
@torch.no_grad()
def after_step(step, model, optimizers, state):
    if "head" not in state:
        state["head"] = model.proj.weight
'''

# Copies for the end-to-end tests that are not one check's broken copy: an endless loop in init_params (fails `run`,
# named; slow with the default limits), a script that prints 1 MB per step (passes, with a warning), a schedule with
# a one-step spike of the momentum and a step written in absolute steps (passes, with warnings).
STALL = "\ndef init_params(model):\n    while True:\n        pass\n"
CHATTY = "\ndef after_step(step, model, optimizers, state):\n    print('x' * (1 << 20))\n"
SPIKY = """
def set_hparams(step, optimizers, state):
    for group in (g for opt in optimizers for g in opt.param_groups):
        group["lr"] = group["initial_lr"] * lr_multiplier(step) * (0.1 if step > 2000 else 1.0)
        if "mu" in group:
            group["mu"] = 0.5 if step == 6 else 0.95
"""


# issue 31 (descent, stack_split): a Lion (sign of the interpolated momentum, decoupled weight decay) in place of Muon
# on the hidden matrices, a plain torch.optim.Optimizer (its groups are judged as groups), with its step's sign flipped
LION_FLIPPED = '''
class Lion(torch.optim.Optimizer):
    def __init__(self, params, lr, weight_decay, betas=(0.9, 0.99)):
        super().__init__(params, dict(lr=lr, weight_decay=weight_decay, betas=betas))

    @torch.no_grad()
    def step(self):
        for group in self.param_groups:
            (b1, b2), lr, wd = group["betas"], group["lr"], group["weight_decay"]
            for p in group["params"]:
                m = self.state[p].setdefault("exp_avg", torch.zeros_like(p))
                p.mul_(1 - lr * wd).add_(m.lerp(p.grad, 1 - b1).sign(), alpha=lr)  # the sign flipped: alpha=-lr
                m.lerp_(p.grad, 1 - b2)


def make_optimizers(model):
    adam = torch.optim.AdamW([dict(params=[model.embed.weight], lr=0.7),
                              dict(params=[model.proj.weight], lr=0.004),
                              dict(params=[p for p in model.parameters() if p.ndim < 2], lr=0.015)],
                             betas=(0.8, 0.95), eps=1e-10, weight_decay=0.001, fused=True)
    lion = Lion([p for p in model.blocks.parameters() if p.ndim == 2], lr=0.0005, weight_decay=0.5)
    return [lion, adam]
'''
MUON_STEP = "        return W.mul_(1 - lr * wd).sub_(u, alpha=lr)\n"
ISSUE31_BROKEN = {
    "descent": ("gradient ascent on the hidden matrices: Muon's .sub_(u, alpha=lr) turned into .add_",
                [(MUON_STEP, MUON_STEP.replace(".sub_(", ".add_("))], None),
    "descent@lion": ("a Lion on the hidden matrices whose step has its sign flipped", [], LION_FLIPPED),
    "stack_split": ("Muon's update normalized by its norm over the whole (k, m, n) stack, not each matrix's",
                    [(MUON_STEP, "        u = u * min(u.shape[-2:]) ** 0.5 / (u.norm() + 1e-7)  # the RMS of the whole stack, not u's\n"
                      + MUON_STEP)], None),
}

# Sub-strings of the baseline used below
BACKWARD = "        loss.backward()\n"
MUON_BUFS = '        m = state.setdefault("momentum_buffer", torch.zeros_like(G))\n'
MUON_INIT = "        self.newton_schulz = compiled(newton_schulz, params[0].device)\n"

# check (optionally @variant) -> (what the mistake is, substitutions, extension text to add or None)
BROKEN = {
    "load@syntax": ("a syntax error", [("def init_params(model):", "def init_params(model)")], None),
    "run": ("the optimizer raises at its 6th step", [(
        "        params = list(self.offset)\n",
        "        params = list(self.offset)\n        self.calls = getattr(self, 'calls', 0) + 1\n"
        "        if self.calls > 5:\n            raise RuntimeError('preflight test: the optimizer fails at step 5')\n")], None),
    "run@0": ("the optimizer raises at its first step (no parameter could change: updates must not be judged)",
              [("        params = list(self.offset)\n",
                "        raise RuntimeError('preflight test: the optimizer fails at step 0')\n")], None),
    "finite": ("Muon's momentum turns inf once its lr has decayed below 0.02 (a step of the schedule, the same after a "
               "resume)", [(MUON_BUFS, MUON_BUFS + "        if lr < 0.02:\n            m[0].fill_(float('inf'))\n")],
               None),
    "optimizers": ("the head's group left out of make_optimizers",
                   [("                              dict(params=[model.proj.weight], lr=0.004),\n", "")], None),
    "gradients": ("a parameter's gradient cleared before the optimizers step",
                  [("def optimizer_step(run, optimizers):\n",
                    "def optimizer_step(run, optimizers):\n    run.raw_model.proj.weight.grad = None\n")], None),
    "updates": ("a group with lr 0", [("dict(params=[model.proj.weight], lr=0.004)",
                                        "dict(params=[model.proj.weight], lr=0.0)")], None),
    "ranks": ("the summed gradients of biases and gains never reach .grad (each rank trains on its own)",
              [("                torch._foreach_copy_(vectors, [s.view_as(g) for s, g in zip(sums, vectors)])\n",
                "                pass\n")], None),
    "ranks@state": ("after_step keeps a value that differs by rank in `state`", [], '''
def after_step(step, model, optimizers, state):
    state["seen"] = torch.tensor(float(dist.get_rank()) if dist.is_initialized() else 0.0)
'''),
    "lr": ("a schedule typo: (0.9 - x) for (1 - x), below 0 in the last 10% of the steps",
           [("    return 1.0 if x < 0.3 else (1 - x) / 0.7\n", "    return 1.0 if x < 0.3 else (0.9 - x) / 0.7\n")], None),
    "hparams": ("a momentum schedule typo: 0.2 for 0.1, so mu passes 1 in the last quarter", [], '''
def set_hparams(step, optimizers, state):
    for group in (g for opt in optimizers for g in opt.param_groups):
        group["lr"] = group["initial_lr"] * lr_multiplier(step)
        if "mu" in group:
            group["mu"] = 0.85 + 0.2 * step / train_steps
'''),
    "weights": ("a readout that keeps p.detach() (an alias) instead of a copy: the weights stay blended",
                [("    saved = [p.clone() for p in params]\n", "    saved = [p.detach() for p in params]\n")], FRONTIER),
    "weights@set_hparams": ("set_hparams shrinks the weights through p.data", [], '''
def set_hparams(step, optimizers, state):
    for group in (g for opt in optimizers for g in opt.param_groups):
        group["lr"] = group["initial_lr"] * lr_multiplier(step)
        for p in group["params"]:
            p.data.mul_(1 - 1e-4)
'''),
    "resume": ("Muon keeps its momentum in an attribute of the optimizer, not in opt.state",
               [(MUON_INIT, MUON_INIT + "        self.momenta = {}\n"),
                (MUON_BUFS, "        m = self.momenta.setdefault(tuple(G.shape), torch.zeros_like(G))\n")], None),
    "resume@global": ("Muon keeps its momentum in a module global",
                      [("class Muon(MatrixOptimizer):\n", "MOMENTA = {}\n\n\nclass Muon(MatrixOptimizer):\n"),
                       (MUON_BUFS, "        m = MOMENTA.setdefault(tuple(G.shape), torch.zeros_like(G))\n")], None),
    "resume@ema": ("the weight EMA kept in a module global instead of `state`", FRONTIER_GLOBAL_EMA, FRONTIER),
    "resume@signal": ("the stop signal's handler does nothing: SIGTERM neither stops nor checkpoints the run",
                      [("signal.signal(s, lambda signum, frame: stop.append(signum))",
                        "signal.signal(s, lambda signum, frame: None)")], None),
    "learns": ("a sign error: the loss is negated before backward, so every optimizer climbs it",
               [(BACKWARD, "        (-loss).backward()\n")], None),
    "updates@flip": ("after_step multiplies every weight by 1 - 1.5 * lr: the embedding by -0.05 at its lr of 0.7",
                     [], FLIP),
    "val_steer": ("readouts counts plateaus of the val loss in the param groups and set_hparams halves the lr on each",
                  [], VAL_STEER),
    "ranks@before_forward": ("before_forward adds noise that differs by rank", [], RANK_NOISE),
    "weights@bf16": ("a readout that keeps its copies in bfloat16: the float32 weights come back rounded",
                     [("    saved = [p.clone() for p in params]\n", "    saved = [p.bfloat16() for p in params]\n")],
                     FRONTIER),
    "resume@generator": ("noise drawn from a torch.Generator kept in a module global", [], GENERATOR_NOISE),
    "resume@state": ("`state` keeps the head's weight itself, not a copy", [], STATE_ALIAS),
    "architecture@module": ("block 0's MLP replaced by a GELU one in make_optimizers", [], GELU_MLP),
    "architecture": ("a wider model", [("vocab_size, num_layers, model_dim = 50304, 12, 768",
                                        "vocab_size, num_layers, model_dim = 50304, 12, 1024")], None),
    "data": ("every rank trains on rank 0's slice of the batch",
             [("        buf = tokens[pos + rank * local:][:local + 1]", "        buf = tokens[pos:][:local + 1]")], None),
    "data@gap": ("check_launch only adds up the steps the train shards hold: a missing shard goes unnoticed",
                 [('        if have < train_steps and os.path.basename(path) != f"fineweb_train_{i:06d}.bin":',
                   '        if not os.path.exists(path):')], None),
    "constants": ("half the val tokens", [("val_tokens = 20 * 524288", "val_tokens = 10 * 524288")], None),
    "one_pass": ("a doubled backward (the same loss twice)",
                 [(BACKWARD, "        loss.backward(retain_graph=True)\n" + BACKWARD)], None),
    "imports": ("a third-party import", [("import torch\n", "import torch\nimport numpy\n")], None),
    "log_script": ("the log without the script's text", [('            log(run, code + "\\n" + "=" * 100, echo=False)\n',
                                                          '            log(run, "=" * 100, echo=False)\n')], None),
    "log_format": ("a wrong val line: 'val loss' for 'val_loss'",
                   [('log(run, f"step:{step}/{train_steps} val_loss:{val:.5f}"',
                     'log(run, f"step:{step}/{train_steps} val loss:{val:.5f}"')], None),
    "log_format@missing": ("the loop skips the val pass of step 0 that is_val_step asks for",
                           [("        if step == train_steps or is_val_step(step):  # every trial validates after its "
                             "last step\n", "        if step == train_steps or is_val_step(step) and step > 0:\n")],
                           None),
    "log_format@final": ("the loop's val after the last step removed, is_val_step without the last step",
                         [("        if step == train_steps or is_val_step(step):  # every trial validates after its "
                           "last step\n", "        if is_val_step(step) and step < train_steps:\n")],
                         "\ndef is_val_step(step):\n    return step % 4 == 0\n"),
    # issue 28: what the bitwise equality of the ranks cannot see (tools/preflight/world.py) and the val schedule
    "ranks@mean": ("the reduce-scatter's sum made a mean: update() gets the gradients averaged over ranks (Muon, "
                   "scale-invariant, trains as before)",
                   [("            dist.reduce_scatter_tensor(grads, flat.view(-1))\n",
                     "            dist.reduce_scatter_tensor(grads, flat.view(-1))\n            grads /= self.world_size\n")],
                   None),
    "ranks@val": ("evaluate() divides the val loss by the world size", [(
        "    return loss.item() / val_tokens\n", "    return loss.item() / val_tokens / run.world_size\n")], None),
    "ranks@val_half": ("evaluate() without the all-reduce: each rank returns the loss of its own half of the val set",
                       [("    if run.world_size > 1:\n        dist.all_reduce(loss)\n    return loss.item() / val_tokens\n",
                         "    return loss.item() / val_tokens * run.world_size\n")], None),
    "log_format@boundary": ("is_val_step's boundary of the last 10% at <= 0.9: step 2925 of 3250 (0.9 exactly) loses its "
                            "val (a 12-step run never reaches it)",
                            [("    return step % (125 if step / train_steps < 0.9 else 25) == 0\n",
                              "    return step % (125 if step / train_steps <= 0.9 else 25) == 0\n")], None),
    "hardcoded": ("a hyperparameter read from the environment",
                  [("lr=0.025, weight_decay=0.05, mu=0.95)",
                    'lr=float(os.environ.get("MUON_LR", "0.025")), weight_decay=0.05, mu=0.95)')], None),
    **ISSUE31_BROKEN,
}

# Changes that must pass: precision only (RULES 4.4), and the frontier's loop changes.
PASSING = {
    "rmsnorm_fp32": [("        return F.rms_norm(x, (x.size(-1),), self.gains.type_as(x))",
                      "        return (F.rms_norm(x.float(), (x.size(-1),)) * self.gains.float()).type_as(x)")],
}
# Changes of the math the architecture check must reject (unit tests, no runs).
MATH_CHANGES = {
    "attention scale 0.125": [("scale=0.12)", "scale=0.125)")],
    "LayerNorm for RMSNorm": [("        return F.rms_norm(x, (x.size(-1),), self.gains.type_as(x))",
                               "        return F.layer_norm(x, (x.size(-1),), self.gains.type_as(x))")],
    "GELU squared for ReLU squared": [("F.relu(self.fc(x)).square()", "F.gelu(self.fc(x)).square()")],
    "relu(x) + 1e-4, squared": [("F.relu(self.fc(x)).square()", "(F.relu(self.fc(x)) + 1e-4).square()")],
    "soft cap 15.1": [("15 * logits * torch.rsqrt(logits.square() + 225)",
                       "15.1 * logits * torch.rsqrt(logits.square() + 228.01)")],
}


def text(substitutions=(), extension=None, base=None):
    """The script's text with `extension` added to Init & Optim Hyperparams, then the substitutions made."""
    result = base if base is not None else BASELINE.read_text()
    if extension:
        assert result.count(MARKER) == 1
        result = result.replace(MARKER, extension + "\n" + MARKER)
    for old, new in substitutions:
        assert result.count(old) == 1, f"substitution target {old!r} found {result.count(old)} times"
        result = result.replace(old, new)
    return result


def write(directory, name, substitutions=(), extension=None):
    path = Path(directory) / f"{name}.py"
    path.write_text(text(substitutions, extension))
    return path


def broken(directory, check):
    """The broken copy for `check` ('check' or 'check@variant'), written to directory/<check>.py."""
    _, substitutions, extension = BROKEN[check]
    return write(directory, check.replace("@", "_"), substitutions, extension)
