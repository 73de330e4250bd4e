"""MatrixOptimizer's contract (issue 28): update() gets G, its matrices' gradients SUMMED over the ranks. Muon cannot
show it (Newton-Schulz normalizes its input, so a mean trains the same); momentum-free SGD, W - lr G, is not
scale-invariant. Two gloo ranks with different gradients each: G must be the sum of both bit for bit (a + b is
the same in either order), and every rank must end with W0 - lr (g0 + g1)."""
import os

import torch
import torch.distributed as dist

from tools import tiny
from tools_logtext import ROOT

SCRIPT = os.path.join(ROOT, "train_gpt_simple.py")
STEPS, LR = 2, 0.1


def grads_of(rank, step, shapes):
    """The gradients rank `rank` holds at `step`: different on every rank and step."""
    gen = torch.Generator().manual_seed(1000 * step + rank)
    return [torch.randn(shape, generator=gen) for shape in shapes]


def sgd_on_ranks(module, result):
    """Replace main(): an SGD subclass of the script's MatrixOptimizer on the tiny model's block matrices, STEPS steps
    with grads_of(rank, step); result["G"]: [(step, the stack's parameter indices, G)], result["params"]: the
    matrices after the last step, result["initial"]: before the first."""
    class SGD(module.MatrixOptimizer):
        def __init__(self, params, lr):
            super().__init__([dict(params=list(params))], dict(lr=lr))

        def update(self, W, G, state, group):
            result["G"].append((self.current_step, [index[p] for p in self.stacks[self.calls][1]], G.clone()))
            self.calls += 1
            return W - group["lr"] * G

    def main(num_trials=1):
        rank, world_size = int(os.environ.get("RANK", 0)), int(os.environ.get("WORLD_SIZE", 1))
        if world_size > 1:
            dist.init_process_group("gloo", rank=rank, world_size=world_size)
        try:
            torch.manual_seed(0)
            model = module.GPT(64, 2, 16)
            module.init_params(model)
            params = [p for p in model.blocks.parameters() if p.ndim == 2]
            index.update({p: i for i, p in enumerate(params)})
            result.update(G=[], initial=[p.detach().clone() for p in params], owned=0)
            sgd = SGD(params, lr=LR)
            result["owned"] = sum(owner == sgd.rank for owner in sgd.owner.values())
            for step in range(STEPS):
                for p, g in zip(params, grads_of(rank, step, [p.shape for p in params])):
                    p.grad = g
                sgd.current_step, sgd.calls = step, 0
                sgd.step()
            result["params"] = [p.detach().clone() for p in params]
        finally:
            if dist.is_initialized():
                dist.destroy_process_group()
    index = {}
    module.main = main


def test_update_gets_the_gradients_summed_over_two_ranks():
    results = tiny.run(SCRIPT, 2, {}, instrument=sgd_on_ranks, start_method="fork", timeout=300)
    for r in results:
        assert r["error"] is None, r["error"]
    initial = results[0]["initial"]
    shapes = [p.shape for p in initial]
    assert [r["owned"] for r in results] == [6, 6]  # 2 layers of 6 matrices: both ranks update some
    seen = set()
    for r in results:
        assert len(r["G"]) >= STEPS
        for step, indices, G in r["G"]:
            want = torch.stack([grads_of(0, step, shapes)[i] + grads_of(1, step, shapes)[i] for i in indices])
            assert torch.equal(G, want), (r["rank"], step, indices)
            # the mean would be half of it; either rank's own gradient alone is not it either
            assert not torch.equal(G, want / 2)
            seen |= {(step, i) for i in indices}
    assert seen == {(s, i) for s in range(STEPS) for i in range(len(shapes))}  # every matrix at every step, once
    for r in results:  # W0 - lr (g0 + g1), step by step, on every rank
        for i, w in enumerate(initial):
            want = w.clone()
            for step in range(STEPS):
                want = want - LR * (grads_of(0, step, shapes)[i] + grads_of(1, step, shapes)[i])
            assert torch.equal(r["params"][i], want), (r["rank"], i)
