"""Instruments for tools.tiny.run used by the tests of records/ (module level, so that rank processes can
unpickle them; bind arguments with functools.partial). An instrument runs as instrument(module, result) in every
rank before main(); the picklable dict `result` comes back to the test.
"""
import os

import torch
import torch.distributed as dist


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
