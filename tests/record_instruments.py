"""Instruments for tools.tiny.run used by the tests of records/ (module level, so that rank processes can
unpickle them; bind arguments with functools.partial). An instrument runs as instrument(module, result) in every
rank before main(); the picklable dict `result` comes back to the test.
"""
import functools
import inspect
import os

import torch
import torch.distributed as dist

import ckpt_instruments as ci
from tools import tiny


def val_every_5(step):
    """An is_val_step for short runs: every 5 steps (step 0 and a train_steps that is a multiple of 5 included)."""
    return step % 5 == 0


def tiny_stack(module, layers, seed=0, dim=16):
    """A GPT(64, layers, dim) of `module` with random block matrices (rows of very different norms, so that RowFloor
    lifts some rows and not others) and every other parameter as init_params leaves it."""
    torch.manual_seed(seed)
    model = module.GPT(64, layers, dim)
    module.init_params(model)
    gen = torch.Generator().manual_seed(seed + 1)
    with torch.no_grad():
        for p in model.blocks.parameters():
            if p.ndim == 2:
                p.copy_(torch.randn(p.shape, generator=gen) * 0.2 * (1 + 4 * torch.rand(p.size(0), 1, generator=gen)))
    return model


SHARDED_STEPS = (0, 1, 2, 1500)  # steps of the script's schedule (the #46 trust gate's floor fades at 1500)


def sharded_muon(module, result, layers=3, steps=SHARDED_STEPS):
    """Replace main(): the script's matrix optimizer (make_optimizers()[0], a MatrixOptimizer) alone on
    tiny_stack(layers), at `steps` of the script's schedule (set_hparams) with fixed random gradients, on every rank of
    this launch. Rank 0 is handed the gradients and the other ranks zeros, so the reduce-scatter's sum is the gradient
    bit for bit at any world size. result["params"]: the block matrices after the last step; result["owned"]: how many
    matrices this rank updated."""
    def main(num_trials=1):
        world_size = int(os.environ.get("WORLD_SIZE", 1))
        if world_size > 1:
            dist.init_process_group("gloo", rank=int(os.environ["RANK"]), world_size=world_size)
        try:
            model = tiny_stack(module, layers)
            muon = module.make_optimizers(model)[0]
            for group in muon.param_groups:
                group["initial_lr"] = group["lr"]
            named = [(n, p) for n, p in model.named_parameters() if p in muon.owner]
            result["owned"] = sum(owner == muon.rank for owner in muon.owner.values())
            gen = torch.Generator().manual_seed(7)
            for step in steps:
                module.set_hparams(step, [muon], {})
                for _, p in named:
                    grad = torch.randn(p.shape, generator=gen)
                    p.grad = grad if muon.rank == 0 else torch.zeros_like(grad)
                muon.step()
            result["params"] = {n: p.detach().clone() for n, p in named}
        finally:
            if dist.is_initialized():
                dist.destroy_process_group()
    module.main = main


# -----------------------------------------------------------------------------
# What the tests of the ported records (#46, #339, #341) share: each record is the harness's script outside its
# Architecture (one precision line), Optimizer and Init & Optim sections, its Muon is the harness's MatrixOptimizer
# machinery with the record's math, and its state resumes exactly through main().

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
HARNESS = os.path.join(ROOT, "train_gpt_simple.py")
SEPARATOR = "# -----------------------------------------------------------------------------\n"
RMSNORM_HARNESS = "        return F.rms_norm(x, (x.size(-1),), self.gains.type_as(x))\n"
RMSNORM_FLOAT32 = "        return (norm(x.float()) * self.gains).type_as(x)  # in float32 (a precision-only change)\n"


def sections(code):
    """{section heading: its text} of a script, split at the separator lines; the text before the first: "header"."""
    parts = code.split(SEPARATOR)
    return {p.split("\n", 1)[0].split(":")[0]: p for p in parts[1:]} | {"header": parts[0]}


def assert_the_record_is_the_harness_outside_its_sections(record):
    """Outside Architecture, Optimizer and Init & Optim the record is the harness's text; its Architecture is the
    harness's with RMSNorm computed in float32."""
    with open(record) as f, open(HARNESS) as g:
        mine, harness = sections(f.read()), sections(g.read())
    assert mine.keys() == harness.keys()
    changed = [k for k in harness if mine[k] != harness[k]]
    assert changed == ["# Architecture", "# Optimizer", "# Init & Optim Hyperparams"], (
        f"{record} differs from train_gpt_simple.py in {changed}: copy the harness's other sections into the record")
    assert mine["# Architecture"] == harness["# Architecture"].replace(RMSNORM_HARNESS, RMSNORM_FLOAT32)


def assert_the_optimizer_machinery_is_the_harness_verbatim(rec, name):
    """compiled, assign_ranks and MatrixOptimizer are the harness's, character for character; the record's Muon
    only adds its math (update, cost) and its param groups (__init__)."""
    harness = tiny.load_script(HARNESS, name)
    for fn in ("compiled", "assign_ranks", "MatrixOptimizer"):
        assert inspect.getsource(getattr(rec, fn)) == inspect.getsource(getattr(harness, fn)), fn
    assert rec.Muon.__bases__ == (rec.MatrixOptimizer,)
    defined = [k for k, v in vars(rec.Muon).items() if inspect.isfunction(v) and v.__qualname__.startswith("Muon.")]
    assert defined == ["__init__", "cost", "update"]  # (torch.optim wraps step() in the class: not the record's)


def assert_the_same_bits_on_1_2_and_4_ranks(sharded):
    """sharded: {world size: tiny.run results of sharded_muon with layers=3}. Each rank updates the matrices
    assign_ranks gives it, in stacks of whatever size that makes; every rank ends with the one-rank result bit for
    bit (the gradients' sum over ranks is exact: rank 0 holds them, the others 0)."""
    (single,) = sharded[1]
    # 3 layers: 12 square (q, k, v, attn.proj) and 6 MLP matrices; an MLP matrix costs 17.5 square ones, so 4 ranks
    # split 2, 2, 1, 1 MLP matrices and the squares go to the two ranks with one
    assert single["owned"] == 18 and [r["owned"] for r in sharded[2]] == [9, 9]
    assert [r["owned"] for r in sharded[4]] == [2, 2, 7, 7]
    for world_size in (2, 4):
        for r in sharded[world_size]:
            assert r["error"] is None, r["error"]
            assert r["params"].keys() == single["params"].keys()
            for n, p in single["params"].items():
                assert torch.equal(r["params"][n], p), (world_size, r["rank"], n)


class ResumeRuns:
    """Runs of a record through main() on the tiny model with `overrides` (train_steps=30 and the record's schedule
    constants), SEED 5: whole(world_size) uninterrupted, resumed(world_size) stopped by SIGTERM in the forward of
    step stop_at - 1 on the last rank and resumed from its checkpoint. Both capture every trial's parameters."""

    def __init__(self, record, root, overrides, stop_at):
        self.record, self.root, self.overrides, self.stop_at, self.cache = record, str(root), overrides, stop_at, {}
        self.train, self.val = tiny.tiny_data(os.path.join(self.root, "data"), overrides["train_steps"])

    def run(self, name, world_size, instrument, resume=""):
        over = dict(tiny.TINY, micro_batch_seqs=8, train_files=self.train, val_files=self.val, **self.overrides,
                    log_dir=os.path.join(self.root, name, "logs"), checkpoint_dir=os.path.join(self.root, name, "ckpt"))
        results = tiny.run(self.record, world_size, over, 1, instrument, env=dict(SEED="5", RESUME=resume),
                           start_method="fork")
        (log,) = os.listdir(over["log_dir"])
        with open(os.path.join(over["log_dir"], log)) as f:
            return results, f.read(), over["checkpoint_dir"]

    def whole(self, world_size):
        key = ("whole", world_size)
        if key not in self.cache:
            self.cache[key] = self.run(f"whole{world_size}", world_size, ci.capture_trials)
        return self.cache[key]

    def resumed(self, world_size):
        """(the stopped run's log, the checkpoint as saved, the resumed run's results, its log)."""
        name = f"stop{world_size}"
        _, stopped_log, ckpt_dir = self.run(name, world_size, functools.partial(ci.signal_at, self.stop_at,
                                                                                {world_size - 1}))
        (ckpt,) = os.listdir(ckpt_dir)
        saved = torch.load(os.path.join(ckpt_dir, ckpt), weights_only=True)
        results, log, _ = self.run(name, world_size, ci.capture_trials, os.path.join(ckpt_dir, ckpt))
        return stopped_log, saved, results, log
