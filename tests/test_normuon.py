"""The worked example of docs/writing-an-approach.md: NorMuon, Muon with each row of the update normalized by a
per-row second-moment EMA, written as a subclass in a few lines; the machinery (ranks, buffers, collectives,
sharded state, checkpoints) comes for free.

Checked here: one NorMuon step equals the formula computed by hand per matrix; on 2 ranks both ranks end with
bitwise equal parameters; a run stopped by SIGTERM and resumed ends bitwise like the run that went on (parameters
and every rank's optimizer state, the row EMA included); and the copy passes the full-length preflight.
"""
import functools
import glob
import os

import pytest
import torch

import ckpt_instruments as ci
from tools import tiny
from tools_logtext import ROOT

SCRIPT = os.path.join(ROOT, "train_gpt_simple.py")

# The example as docs/writing-an-approach.md shows it (test_the_docs_show_this_code keeps them equal).
NORMUON = '''
class NorMuon(Muon):
    """Muon whose update has each row divided by the root of an EMA (0.95) of its mean square; norm kept."""

    def orthogonalize(self, u, state, group):
        O = super().orthogonalize(u, state, group).float()
        v = state.setdefault("row_second_moment", torch.zeros_like(O[..., :1]))  # one value per row
        v.lerp_(O.square().mean(dim=-1, keepdim=True), 1 - 0.95)
        N = O / (v.sqrt() + 1e-8)
        return N * (O.norm(dim=(-2, -1), keepdim=True) / N.norm(dim=(-2, -1), keepdim=True).clamp_min(1e-8))
'''
SETUP = "# -----------------------------------------------------------------------------\n# Setup"
STEPS, SEED, TRIALS = 12, 31, 2


def normuon_script(directory):
    code = open(SCRIPT).read()
    code = code.replace("\n" + SETUP, NORMUON + "\n" + SETUP, 1)
    code = code.replace("    muon = Muon([p for p in model.blocks", "    muon = NorMuon([p for p in model.blocks", 1)
    assert "class NorMuon(Muon)" in code and "muon = NorMuon(" in code
    path = os.path.join(str(directory), "train_gpt_simple.py")
    with open(path, "w") as f:
        f.write(code)
    return path


def test_the_docs_show_this_code():
    with open(os.path.join(ROOT, "docs", "writing-an-approach.md")) as f:
        assert NORMUON.strip() in f.read()
    assert len(NORMUON.strip().splitlines()) <= 10


def test_one_step_equals_the_formula_per_matrix(tmp_path):
    module = tiny.load_script(normuon_script(tmp_path), "normuon_formula")
    shapes = [(8, 8), (8, 8), (24, 8), (8, 24)]
    gen = torch.Generator().manual_seed(0)
    params = [torch.nn.Parameter(torch.randn(s, generator=gen)) for s in shapes]
    opt = module.NorMuon(params, lr=0.1, weight_decay=0.2, mu=0.9)
    want, v = [p.detach().double().clone() for p in params], [torch.zeros(s[0], 1, dtype=torch.float64) for s in shapes]
    m, plain = [torch.zeros(s) for s in shapes], [w.clone() for w in want]
    for step in range(3):
        grads = [torch.randn(s, generator=gen) for s in shapes]
        for p, g in zip(params, grads):
            p.grad = g.clone()
        opt.step()
        for i, g in enumerate(grads):
            # Muon's momentum and scaled Newton-Schulz as the script computes them (float32, bf16): the same bits of O
            m[i] = m[i].lerp(g, 1 - 0.9)
            O = (module.newton_schulz(g.lerp(m[i], 0.9)) * max(1, shapes[i][0] / shapes[i][1]) ** 0.5).double()
            v[i] = 0.95 * v[i] + 0.05 * O.square().mean(dim=-1, keepdim=True)
            N = O / (v[i].sqrt() + 1e-8)
            N = N * O.norm() / N.norm()
            want[i] = want[i] * (1 - 0.1 * 0.2) - 0.1 * N
            plain[i] = plain[i] * (1 - 0.1 * 0.2) - 0.1 * O  # Muon without the row normalization
    for p, w, vi, wrong in zip(params, want, v, plain):
        assert (p.double() - w).abs().max().item() < 1e-6  # float32 against float64 (measured below 3e-7)
        assert (p.double() - wrong).abs().max().item() > 1e-4  # the normalization is there (measured 3e-4 to 1e-2)
        assert torch.allclose(opt.state[p]["row_second_moment"].double(), vi, rtol=1e-5)


class Lab:
    def __init__(self, root):
        self.root = root
        self.script = normuon_script(root)
        self.train, self.val = tiny.tiny_data(os.path.join(root, "data"), STEPS)
        self.cache = {}

    def run(self, name, world, instrument, resume=""):
        over = dict(tiny.TINY, micro_batch_seqs=8, train_steps=STEPS, train_files=self.train, val_files=self.val,
                    log_dir=os.path.join(self.root, name, "logs"), checkpoint_dir=os.path.join(self.root, name, "ckpt"))
        return tiny.run(self.script, world, over, TRIALS, instrument, env=dict(SEED=str(SEED), RESUME=resume))

    def whole(self, world):
        if ("whole", world) not in self.cache:
            self.cache["whole", world] = self.run(f"whole{world}", world, ci.capture_trials)
        return self.cache["whole", world]


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    return Lab(str(tmp_path_factory.mktemp("normuon")))


def test_both_ranks_end_with_the_same_parameters(lab):
    results = lab.whole(2)
    assert [r["error"] for r in results] == [None, None]
    for trial in range(TRIALS):
        for name, p in results[0]["params"][trial].items():
            assert torch.equal(p, results[1]["params"][trial][name]), name
    # the row EMA is kept by the owner of each matrix only, and every matrix has one owner
    owned = [{n for n, st in r["opt_states"][0][0].items() if "row_second_moment" in st} for r in results]
    assert owned[0] and owned[1] and not owned[0] & owned[1] and len(owned[0] | owned[1]) == 12


@pytest.mark.parametrize("world", [1, 2])
def test_resume_ends_bitwise_like_the_run_that_went_on(lab, world):
    whole = lab.whole(world)
    stop = lab.run(f"stop{world}", world, functools.partial(ci.signal_at, 5, {world - 1}))
    assert all(r["error"].startswith("SystemExit: 143") for r in stop), [r["error"] for r in stop]
    (ckpt,) = glob.glob(os.path.join(lab.root, f"stop{world}", "ckpt", "*.pt"))
    assert any("row_second_moment" in st for st in torch.load(ckpt, weights_only=True)["optimizers"][0]["state"].values())
    resumed = lab.run(f"stop{world}", world, ci.capture_trials, resume=ckpt)
    assert [r["error"] for r in resumed] == [None] * world
    for rank in range(world):
        for got, want in zip(resumed[rank]["params"], whole[rank]["params"]):
            assert all(torch.equal(got[n], want[n]) for n in want)
        for got, want in zip(resumed[rank]["opt_states"], whole[rank]["opt_states"]):
            for g, w in zip(got, want):
                assert g.keys() == w.keys()
                assert all(torch.equal(g[n][k], w[n][k]) for n in w for k in w[n] if torch.is_tensor(w[n][k]))


def test_the_copy_passes_the_full_length_preflight(lab):
    """Every step of the script's own 3250 on the CPU (tools.preflight at full length: about 40 s idle)."""
    from tools import preflight
    info = preflight.preflight(lab.script)
    assert info["train_steps"] == 3250 and info["steps_source"] == "the script's train_steps"
    assert info["ok"] and all(c["status"] == "PASS" for c in info["checks"]), preflight.format_report(info)
