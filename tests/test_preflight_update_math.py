"""tools.preflight.update_math, fast (issue 31): the `descent` probe and verdict on synthetic optimizer steps, the
`stack split` probe on the baseline's Muon and on broken copies loaded here (no run), and its verdict.

Mutation testing runs this file with test_preflight_judging.py (docs/preflight.md, Mutation testing); the
end-to-end broken copies are in test_preflight.py.
"""
import copy
import math
import os

import pytest
import torch

import preflight_copies as pc
from tools import tiny
from tools.preflight import common, update_math as um

FAIL, PASS, SKIP = common.FAIL, common.PASS, common.SKIP


def module(name, substitutions=(), extension=None, tmp=None):
    path = os.path.join(str(tmp), f"{name}.py")
    with open(path, "w") as f:
        f.write(pc.text(substitutions, extension))
    return tiny.load_script(path, f"update_math_{name}"), path


@pytest.fixture(scope="module")
def base():
    return tiny.load_script(str(pc.BASELINE), "update_math_baseline")


class Hub:
    def __init__(self, label="long", names=None):
        self.cfg, self.r, self.trial, self.resumed, self.names = dict(label=label), {}, 1, False, names or {}
        self.checking = False


def report_for(result):
    report = common.Report()
    return report, [dict(label="long", results=[result] if result is not None else [])]


# -----------------------------------------------------------------------------
# descent: the probe

def step(probe, opt, index, s):
    probe.optimizer_step(opt, index, s)
    opt.step()
    probe.optimizer_stepped(opt, index, s)


def test_descent_probe_takes_each_parameter_at_its_first_nonzero_gradient():
    a, b, c = (torch.nn.Parameter(torch.tensor(v)) for v in ([1.0, -2.0], [3.0, 4.0], [0.5, 0.5]))
    opt = torch.optim.SGD([dict(params=[a, b]), dict(params=[c], weight_decay=0.5)], lr=0.1)
    hub = Hub(names={id(a): "a", id(b): "b", id(c): "c"})
    probe = um.DescentProbe(hub)
    a.grad, b.grad, c.grad = torch.tensor([2.0, 1.0]), torch.zeros(2), torch.tensor([1.0, -1.0])
    step(probe, opt, 3, 0)  # b: a zero gradient, not taken
    a.grad, b.grad, c.grad = torch.tensor([5.0, 5.0]), torch.tensor([1.0, 0.0]), torch.tensor([1.0, 1.0])
    step(probe, opt, 3, 1)  # a and c: taken already; b: its first
    g0, g1 = hub.r["descent"]
    assert g0["optimizer"] == "optimizer 3 (SGD)" and not g0["matrix"] and g0["group"] == 0
    assert g0["names"] == ["a", "b"] and g0["shapes"] == [(2,), (2,)] and g0["steps"] == [0, 1]
    # SGD: dW = -lr g; the sum over the group of <g, -lr g> at each parameter's first step: -0.1 * 5 - 0.1 * 1
    assert g0["inner"] == pytest.approx(-0.6) and g0["grad_norm"] == pytest.approx(math.sqrt(6))
    assert g0["net_norm"] == pytest.approx(0.1 * math.sqrt(6))
    # torch's SGD adds weight decay to the gradient (coupled): net of the lr wd W the probe takes out,
    # dW + lr wd W = -lr g (g the gradient only): <g, -0.1 g> = -0.2
    assert g1["names"] == ["c"] and g1["inner"] == pytest.approx(-0.1 * 2 - 0.1 * 0.5 * (0.5 - 0.5))


def test_descent_probe_nets_out_decoupled_weight_decay():
    w = torch.nn.Parameter(torch.tensor([[1.0, 2.0], [3.0, -4.0]]))
    opt = torch.optim.AdamW([w], lr=0.01, weight_decay=0.1, betas=(0.9, 0.99), eps=1e-12)
    hub = Hub(names={id(w): "w"})
    probe = um.DescentProbe(hub)
    w.grad = torch.tensor([[0.5, -1.0], [2.0, 0.25]])
    step(probe, opt, 0, 0)
    (x,) = hub.r["descent"]
    # Adam's first step: -lr sign(g) (bias-corrected), the decay (1 - lr wd) W taken out: <g, -lr sign(g)> = -lr |g|_1
    assert x["inner"] == pytest.approx(-0.01 * 3.75, rel=1e-5) and x["net_norm"] == pytest.approx(0.02, rel=1e-5)


def test_descent_probe_is_per_matrix_for_a_matrix_optimizer_and_only_early_in_the_long_run(base):
    params = [torch.nn.Parameter(torch.randn(4, 3, generator=torch.Generator().manual_seed(i))) for i in range(2)]
    opt = base.Muon(params, lr=0.1, weight_decay=0.5, mu=0.9)
    hub = Hub(names={id(p): f"m{i}" for i, p in enumerate(params)})
    probe = um.DescentProbe(hub)
    for p in params:
        p.grad = torch.ones(4, 3)
    step(probe, opt, 0, um.DESCENT_STEPS - 1)
    assert [x["names"] for x in hub.r["descent"]] == [["m0"], ["m1"]] and all(x["matrix"] for x in hub.r["descent"])
    assert all(x["inner"] < 0 and x["optimizer"] == "optimizer 0 (Muon)" for x in hub.r["descent"])
    for label, trial, resumed, s in (("short", 1, False, 0), ("long", 2, False, 0), ("long", 1, True, 0),
                                     ("long", 1, False, um.DESCENT_STEPS)):
        hub = Hub(label, names={id(p): "m" for p in params})
        hub.trial, hub.resumed = trial, resumed
        probe = um.DescentProbe(hub)
        step(probe, opt, 0, s)
        assert hub.r["descent"] == [] and probe.taken == []


def test_descent_probe_counts_its_time_and_skips_integer_parameters():
    p, n = torch.nn.Parameter(torch.ones(2)), torch.nn.Parameter(torch.ones(2, dtype=torch.int64), requires_grad=False)
    opt = torch.optim.SGD([p, n], lr=0.1)
    hub = Hub(names={id(p): "p"})
    probe = um.DescentProbe(hub)
    p.grad, n.grad = torch.ones(2), torch.ones(2, dtype=torch.int64)
    probe.optimizer_step(opt, 0, 0)
    assert [t[1] is p for t in probe.taken] == [True] and hub.r["descent_s"] >= 0
    probe.optimizer_stepped(opt, 0, 0)
    assert probe.taken == [] and hub.r["descent"][0]["names"] == ["p"]


# -----------------------------------------------------------------------------
# descent: the verdict

def entry(inner, net=1.0, matrix=True, names=("blocks.0.attn.q.weight",), steps=(2,), group=0, grad=2.0,
          optimizer="optimizer 0 (Muon)"):
    return dict(optimizer=optimizer, matrix=matrix, group=group, names=list(names), shapes=[(16, 16)] * len(names),
                steps=list(steps), inner=inner, grad_norm=grad, net_norm=net)


def test_judge_descent_passes_downhill_and_names_what_did_not_move():
    report, runs = report_for(dict(descent=[entry(-1.0), entry(-0.5, matrix=False, optimizer="optimizer 1 (AdamW)"),
                                            entry(0.0, net=0.0, names=("blocks.0.mlp.fc.weight",)),
                                            entry(0.0, net=0.0, matrix=False, group=2)]))
    um.judge_descent(report, runs)
    assert report.checks["descent"]["status"] == PASS
    assert report.checks["descent"]["detail"] == (
        "the first update of each of 1 matrices of a MatrixOptimizer and of 1 other param groups points downhill "
        "(long run, steps 0-4); 2 did not move: optimizer 0 (Muon) blocks.0.mlp.fc.weight, optimizer 0 (Muon) group 2")
    report, runs = report_for(dict(descent=[entry(-1.0)]))
    um.judge_descent(report, runs)
    assert report.checks["descent"]["detail"].endswith("(long run, steps 0-4)")


def test_judge_descent_fails_uphill_and_a_zero_inner_product_of_a_move():
    uphill = [entry(0.25, net=0.5, grad=1.0), entry(0.0, net=1.0, names=("b",), steps=(1,)),
              entry(1.0, matrix=False, group=1, names=("g1", "g2", "g3", "g4"), steps=(0, 1, 1, 3),
                    optimizer="optimizer 1 (Lion)"), entry(3.0, names=("d",)), entry(-1.0, names=("ok",))]
    report, runs = report_for(dict(descent=uphill))
    um.judge_descent(report, runs)
    detail = report.checks["descent"]["detail"]
    assert report.checks["descent"]["status"] == FAIL
    assert detail == ("4 of 5 first updates point uphill (their gradient's inner product with the change, weight decay "
                      "taken out, is not negative): optimizer 0 (Muon) group 0, blocks.0.attn.q.weight (16, 16): <G, dW + "
                      "lr wd W> = +0.25 at step 2 (cosine +0.500); optimizer 0 (Muon) group 0, b (16, 16): <G, dW + lr "
                      "wd W> = +0 at step 1 (cosine +0.000); optimizer 1 (Lion) group 1 (g1 (16, 16), g2 (16, 16), g3 "
                      "(16, 16) and 1 more): <G, dW + lr wd W> = +1 at steps 0, 1, 3 (cosine +0.500) and 1 more")


def test_judge_descent_skips_without_evidence_and_leaves_non_finite_steps_to_finite():
    for result, text in ((None, "the long run did not run (see run)"),
                         (dict(descent=[]), "the long run did not reach an optimizer step with a non-zero gradient"),
                         (dict(descent=[entry(0.0, net=0.0)]), "no first update moved a parameter to a finite value"),
                         (dict(descent=[entry(math.nan, net=math.nan), entry(1.0, net=math.inf)]),
                          "no first update moved a parameter to a finite value")):
        report, runs = report_for(result)
        um.judge_descent(report, runs)
        assert report.checks["descent"]["status"] == SKIP and report.checks["descent"]["detail"].startswith(text)
    report, runs = report_for(dict(descent=[entry(math.nan, net=math.nan), entry(-1.0)]))
    um.judge_descent(report, runs)
    assert report.checks["descent"]["status"] == PASS and "did not move" not in report.checks["descent"]["detail"]


def test_entry_text_without_norms_has_cosine_zero():
    assert um._entry_text(entry(-1.0, net=0.0)).endswith("(cosine +0.000)")
    assert um._entry_text(entry(-1.0, grad=0.0)).endswith("(cosine +0.000)")


# -----------------------------------------------------------------------------
# stack split: the parts, the comparison, the spy

def test_owners_follow_assign_ranks_or_round_robin(base):
    opt = base.Muon([torch.nn.Parameter(torch.zeros(4, 4))], lr=0.1, weight_decay=0.0, mu=0.9)
    assert um._owners(base, opt, (4, 4), 2) == [[0, 2], [1, 3]]
    assert um._owners(base, opt, (4, 4), 4) == [[0], [1], [2], [3]]

    class Plain:  # neither assign_ranks nor cost
        pass
    assert um._owners(Plain(), Plain(), (4, 4), 3) == [[0, 3], [1], [2]]

    class Skewed:
        @staticmethod
        def assign_ranks(costs, world):
            assert costs == [7] * um.STACK_K
            return [1, 1, 1, 0]

    class Costly:
        def cost(self, m, n):
            return m + n - 1
    assert um._owners(Skewed(), Costly(), (4, 4), 2) == [[3], [0, 1, 2]]


def test_split_difference_relative_to_the_update_and_to_the_state():
    W0 = [torch.zeros(2, 2, dtype=torch.float64)]
    new = [torch.full((2, 2), 1.0, dtype=torch.float64)]
    state = [dict(m=torch.ones(2, dtype=torch.float64), n=3)]
    same = [(new, state)]
    assert um.split_difference(W0, same, [([new[0].clone()], [dict(m=torch.ones(2, dtype=torch.float64), n=3)])]) \
        is None
    near = new[0] + um.STACK_RTOL * 2 / 2 * 0.99  # |diff| = 0.99 RTOL * 2 = 0.99 RTOL |update|
    assert um.split_difference(W0, same, [([near], state)]) is None
    far = new[0] + um.STACK_RTOL * 1.01
    call, what, rel = um.split_difference(W0, same, [([far], state)])
    assert (call, what) == (0, "the new matrix 0") and rel == pytest.approx(um.STACK_RTOL * 1.01)
    # the second call compares with the first call's result, not W0
    W1 = [new[0] + 1.0]
    two = [(new, state), (W1, state)]
    off = W1[0] + 0.5
    assert um.split_difference(W0, two, [(new, state), ([off], state)]) == (1, "the new matrix 0", 0.5)
    for other, what in ((dict(m=torch.ones(2, dtype=torch.float64) * 1.5, n=3), 0.5),
                        (dict(m=torch.ones(2, dtype=torch.float64), n=4), math.inf),
                        (dict(m=torch.ones(2, dtype=torch.float64)), math.inf),
                        (dict(m=1.0, n=3), math.inf),
                        (dict(m=torch.ones(3, dtype=torch.float64), n=3), math.inf)):
        call, where, rel = um.split_difference(W0, same, [(new, [other])])
        assert call == 0 and where.startswith("state[") and where.endswith("] of matrix 0") and rel == what
    assert um.split_difference(W0, same, [(new, [dict(m=torch.ones(2, dtype=torch.float64), n=4)])])[1] == \
        "state['n'] of matrix 0"


def test_differs_is_zero_for_equal_tensors_even_with_zero_norm():
    z = torch.zeros(3, dtype=torch.float64)
    assert um._differs(z, z) == 0.0 and um._differs(z, z + 1.0, z) == pytest.approx(3 ** 0.5 * 1e300)
    assert um._differs(torch.ones(2), torch.ones(2) * 3) == 2.0


def test_reduction_spy_names_reductions_over_the_stack_and_its_line():
    spy = um.ReductionSpy(4, os.path.abspath(__file__))
    x = torch.randn(4, 3, 2)
    with spy:
        x.norm(dim=(-2, -1), keepdim=True)
        x.sum(dim=-1)
        torch.randn(3, 3, 2).norm()  # another leading size: not a stack of 4
        torch.randn(4, 3).norm()  # 2 dimensions
        x.mean(dim=1)
        x.norm()
        x.sum(0)
        x.amax(dim=(0, 1))
        torch.linalg.vector_norm(x)
        x.norm(2, -3)
        x.norm(p=2, dim=-1)
    lines = [f.split(" (line ")[0] for f in spy.found]
    assert lines == ["norm() over every dimension", "sum() over dim=0", "amax() over dim=(0, 1)",
                     "linalg_vector_norm() over every dimension", "norm() over dim=-3"]
    assert spy.found[0].endswith("x.norm())") and "(line " in spy.found[0]
    spy = um.ReductionSpy(4, "/elsewhere.py")
    with spy:
        x.norm()
    assert spy.found == ["norm() over every dimension"]


def test_float64_newton_schulz(base):
    ns = um._float64_newton_schulz(base)
    G = torch.randn(2, 5, 3, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    assert ns(G).dtype == torch.float64 and base.newton_schulz(G).dtype == torch.bfloat16
    assert torch.equal(ns(G), base.newton_schulz(G, dtype=torch.float64))

    class NoDtype:
        @staticmethod
        def newton_schulz(G, steps=5):
            return G

    class Missing:
        newton_schulz = None
    assert um._float64_newton_schulz(NoDtype) is None and um._float64_newton_schulz(Missing) is None


# -----------------------------------------------------------------------------
# stack split: the probe on scripts (loaded here, no run)

def muon_of(mod, shapes=((4, 4), (6, 4))):
    params = [torch.nn.Parameter(torch.zeros(s)) for s in shapes]
    opt = mod.Muon(params, lr=0.025, weight_decay=0.05, mu=0.95)
    return opt


def test_stack_split_passes_the_baseline_and_leaves_it_untouched(base):
    opt = muon_of(base)
    before = (opt.newton_schulz, base.newton_schulz, dict(vars(opt)))
    assert um.stack_split_problems(opt, 0, base, str(pc.BASELINE)) == ([], None)
    assert (opt.newton_schulz, base.newton_schulz) == before[:2] and not opt.state


def test_stack_split_fails_the_broken_copy_naming_the_line(tmp_path):
    mod, path = module("stack_split", pc.BROKEN["stack_split"][1], tmp=tmp_path)
    problems, error = um.stack_split_problems(muon_of(mod), 0, mod, path)
    assert error is None and len(problems) == 2
    assert problems[0].startswith("optimizer 0 (Muon).update() on group 0's stack of 4 (4, 4) matrices: split as 2 "
                                  "ranks split it ([0, 2] and [1, 3]), the new matrix 0 differs after call 1 by ")
    at = 1 + open(path).read().splitlines().index(
        "        u = u * min(u.shape[-2:]) ** 0.5 / (u.norm() + 1e-7)  # the RMS of the whole stack, not u's")
    assert "of its update: a reduction crosses the matrices of the stack (such as u.norm() over the whole (k, m, n) " \
           f"tensor); the reductions over the whole stack: norm() over every dimension (line {at}: u = u * " in problems[0]
    assert problems[1].startswith("optimizer 0 (Muon).update() on group 1's stack of 4 (6, 4) matrices")


STATE_COUNT = [(pc.MUON_BUFS, pc.MUON_BUFS + '        state["seen"] = state.get("seen", 0) + G.size(0)\n')]
NOISE = [(pc.MUON_STEP, "        u = u + 0.1 * torch.randn_like(u)\n" + pc.MUON_STEP)]
BF16 = [(pc.MUON_STEP, "        u = (u.bfloat16() @ u.bfloat16().mT @ u.bfloat16()).to(u.dtype)\n" + pc.MUON_STEP)]
RAISES = [(pc.MUON_STEP, "        assert W.dtype == torch.float32\n" + pc.MUON_STEP)]
ZERO_LR = [(pc.MUON_STEP, '        assert lr == 0.5, lr\n' + pc.MUON_STEP)]


def test_stack_split_state_that_counts_the_stack(tmp_path):
    mod, path = module("count", STATE_COUNT, tmp=tmp_path)
    problems, _ = um.stack_split_problems(muon_of(mod, [(4, 4)]), 0, mod, path)
    assert len(problems) == 1 and "state['seen'] of matrix 0 differs after call 1 by inf of its norm" in problems[0]
    assert "no reduction over the stack's first dimension was seen" in problems[0]


def test_stack_split_noise_drawn_per_stack_fails_the_run_rng_stays(tmp_path):
    mod, path = module("noise", NOISE, tmp=tmp_path)
    state = torch.get_rng_state()
    problems, _ = um.stack_split_problems(muon_of(mod, [(4, 4)]), 0, mod, path)
    assert torch.equal(torch.get_rng_state(), state)
    assert len(problems) == 1 and "split as 2 ranks" in problems[0] and "randomness drawn per stack" in problems[0]


def test_stack_split_in_float64_not_bfloat16(tmp_path):
    """Per-matrix math in bfloat16 outside newton_schulz: the same bits whatever the stack (measured), so it passes;
    update() sees float64 inputs."""
    mod, path = module("bf16", BF16, tmp=tmp_path)
    assert um.stack_split_problems(muon_of(mod, [(4, 4)]), 0, mod, path) == ([], None)
    mod, path = module("f32", RAISES, tmp=tmp_path)
    problems, error = um.stack_split_problems(muon_of(mod, [(4, 4)]), 2, mod, path)
    assert problems is None and error == ("optimizer 2 (Muon).update() on a float64 stack of 4 (4, 4) matrices "
                                          "(group 0) raised AssertionError: ")


def test_stack_split_uses_the_initial_lr_where_the_lr_is_zero(tmp_path):
    mod, path = module("lr", ZERO_LR, tmp=tmp_path)
    opt = muon_of(mod, [(4, 4)])
    opt.param_groups[0].update(lr=0.0, initial_lr=0.5)
    assert um.stack_split_problems(opt, 0, mod, path) == ([], None)
    assert opt.param_groups[0]["lr"] == 0.0
    opt.param_groups[0].update(lr=0.5, initial_lr=0.7)
    assert um.stack_split_problems(opt, 0, mod, path) == ([], None)


def test_stack_split_probe_judges_each_matrix_optimizer_once(base):
    muon, adam = muon_of(base, [(4, 4)]), torch.optim.SGD([torch.nn.Parameter(torch.zeros(2))], lr=0.1)
    hub = Hub()
    hub.m, hub.script = base, str(pc.BASELINE)
    probe = um.StackSplitProbe(hub)
    assert hub.r["stack_split"] is None
    for s in range(2):
        probe.optimizer_step(muon, 0, s)
        probe.optimizer_step(adam, 1, s)
    assert hub.r["stack_split"] == [dict(index=0, optimizer="optimizer 0 (Muon)", matrix=True, problems=[], error=None),
                                    dict(index=1, optimizer="optimizer 1 (SGD)", matrix=False, problems=[], error=None)]
    assert hub.r["stack_split_s"] > 0 and not hub.checking
    for label, trial, resumed in (("short", 1, False), ("long", 2, False), ("long", 1, True)):
        hub = Hub(label)
        hub.trial, hub.resumed = trial, resumed
        um.StackSplitProbe(hub).optimizer_step(muon, 0, 0)
        assert hub.r["stack_split"] is None


# -----------------------------------------------------------------------------
# stack split: the verdict

def split_entry(matrix=True, problems=(), error=None, index=0, name="Muon"):
    return dict(index=index, optimizer=f"optimizer {index} ({name})", matrix=matrix, problems=list(problems),
                error=error)


def test_judge_stack_split():
    cases = [(None, SKIP, "the long run did not run (see run)"),
             (dict(stack_split=None), SKIP, "the long run did not reach an optimizer step"),
             (dict(stack_split=[split_entry(False, name="AdamW")]), PASS,
              "no MatrixOptimizer in the run: no stack is split over ranks"),
             (dict(stack_split=[split_entry(), split_entry(index=2, name="NorMuon")]), PASS,
              "optimizer 0 (Muon), optimizer 2 (NorMuon): update() in float64 gives every matrix of a stack of 4 the "
              "same new value and state, whole and split as 2 and 4 ranks split it, over 3 calls"),
             (dict(stack_split=[split_entry(error="raised X"), split_entry(error="raised Y", index=1),
                                split_entry(error="raised Z", index=2)]), SKIP, "raised X; raised Y"),
             (dict(stack_split=[split_entry(error="raised X"), split_entry(problems=["a", "b"], index=1),
                                split_entry(False, problems=["ignored"])]), FAIL, "a; b"),
             (dict(stack_split=[split_entry(problems=["a", "b", "c", "d"])]), FAIL, "a; b and 2 more")]
    for result, status, detail in cases:
        report, runs = report_for(result)
        um.judge_stack_split(report, runs)
        assert (report.checks["stack_split"]["status"], report.checks["stack_split"]["detail"]) == (status, detail)


def test_the_checklist_has_both_checks_after_learns():
    ids = [c[0] for c in common.CHECKS]
    assert ids[ids.index("learns") + 1:ids.index("learns") + 3] == ["descent", "stack_split"]


# -----------------------------------------------------------------------------
# after mutation testing (tools/preflight/update_math.py): the edges the tests above left open

def test_is_matrix_optimizer_needs_owner_and_update():
    class Owner:
        owner = {}

    class Update:
        def update(self):
            pass

    class Both(Owner, Update):
        pass
    assert [um._is_matrix_optimizer(c()) for c in (Owner, Update, Both)] == [False, False, True]
    assert um._is_matrix_optimizer(torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=0.1)) is False
    assert [um._number(v) for v in (True, "0.1", None, 3, 0.5)] == [0.0, 0.0, 0.0, 3.0, 0.5]


def test_descent_time_and_unnamed_parameters(monkeypatch):
    ticks = iter(range(100))
    monkeypatch.setattr(um.time, "perf_counter", lambda: float(next(ticks)))
    p = torch.nn.Parameter(torch.ones(2))
    opt = torch.optim.SGD([p], lr=0.1)
    hub = Hub()  # p has no name
    probe = um.DescentProbe(hub)
    p.grad = torch.ones(2)
    probe.optimizer_step(opt, 0, 0)  # ticks 0, 1
    assert hub.r["descent_s"] == 1.0
    probe.optimizer_stepped(opt, 0, 0)  # ticks 2, 3
    assert hub.r["descent_s"] == 2.0 and hub.r["descent"][0]["names"] == ["?"]
    probe.optimizer_step(opt, 0, 1)  # ticks 4, 5: nothing taken (p was), still timed
    probe.optimizer_stepped(opt, 0, 1)  # nothing taken: not timed
    assert hub.r["descent_s"] == 3.0


def test_split_difference_at_the_tolerance_and_with_mixed_keys(monkeypatch):
    monkeypatch.setattr(um, "STACK_RTOL", 0.5)
    W0 = [torch.zeros(1, dtype=torch.float64)]
    a = [(torch.ones(1, dtype=torch.float64),)]
    state = [{1: torch.ones(1, dtype=torch.float64), "a": 2}]
    whole = [([a[0][0]], state)]
    assert um.split_difference(W0, whole, [([torch.full((1,), 1.5, dtype=torch.float64)], state)]) is None  # = 0.5
    other = [{1: torch.full((1,), 1.5, dtype=torch.float64), "a": 2}]
    assert um.split_difference(W0, whole, [([a[0][0]], other)]) is None
    assert um.split_difference(W0, whole, [([torch.full((1,), 1.75, dtype=torch.float64)], state)]) == \
        (0, "the new matrix 0", 0.75)
    assert um.split_difference(W0, whole, [([a[0][0]], [{1: torch.ones(1, dtype=torch.float64), "a": 3}])]) == \
        (0, "state['a'] of matrix 0", math.inf)


def test_judge_texts_at_the_counts_where_they_change():
    report, runs = report_for(dict(descent=[entry(1.0, names=(n,), steps=(1, 3)) for n in "abc"]))
    um.judge_descent(report, runs)
    detail = report.checks["descent"]["detail"]
    assert detail.startswith("3 of 3 first updates point uphill") and "more" not in detail and "at steps 1, 3 (" in detail
    still = [entry(0.0, net=0.0, names=(n,)) for n in "abcd"]
    report, runs = report_for(dict(descent=[entry(-1.0)] + still))
    um.judge_descent(report, runs)
    assert report.checks["descent"]["detail"].endswith(
        "4 did not move: optimizer 0 (Muon) a, optimizer 0 (Muon) b, optimizer 0 (Muon) c and 1 more")
    report, runs = report_for(dict(stack_split=[split_entry(problems=["a", "b", "c"])]))
    um.judge_stack_split(report, runs)
    assert report.checks["stack_split"]["detail"] == "a; b and 1 more"
    report = common.Report()
    um.judge_descent(report, [dict(label="short", results=[dict(descent=[entry(1.0)])])])
    um.judge_stack_split(report, [])
    assert report.checks["descent"]["detail"] == report.checks["stack_split"]["detail"] == \
        "the long run did not run (see run)"


def test_reduction_spy_positional_dims():
    spy = um.ReductionSpy(4, "/elsewhere.py")
    x = torch.randn(4, 3, 2)
    with spy:
        torch.linalg.vector_norm(x, 2, 0)
        torch.linalg.vector_norm(x, 2, (-2, -1))
        torch.linalg.norm(x, None, (0, 1))
        y = x.sum(dim=-1)
    assert spy.found == ["linalg_vector_norm() over dim=0", "linalg_norm() over dim=(0, 1)"]
    assert torch.equal(y, x.sum(dim=-1))  # the call's own arguments, kwargs included


# update() sees newton_schulz in float64, both its own attribute and the module's function; an attribute list
NS_DTYPES = [(pc.MUON_STEP, "        assert self.newton_schulz(G).dtype == newton_schulz(G).dtype == torch.float64\n"
              + pc.MUON_STEP)]
ATTRIBUTE = [(pc.MUON_INIT, pc.MUON_INIT + "        self.seen = []\n"),
             (pc.MUON_STEP, "        self.seen.append(G.size(0))\n" + pc.MUON_STEP)]


def test_stack_split_runs_newton_schulz_in_float64_and_copies_the_optimizer(tmp_path):
    mod, path = module("ns64", NS_DTYPES, tmp=tmp_path)
    ns = mod.newton_schulz
    assert um.stack_split_problems(muon_of(mod, [(4, 4)]), 0, mod, path) == ([], None)
    assert mod.newton_schulz is ns
    mod, path = module("attribute", ATTRIBUTE, tmp=tmp_path)
    opt = muon_of(mod, [(4, 4)])
    assert um.stack_split_problems(opt, 0, mod, path) == ([], None) and opt.seen == []


SINGLE = [(pc.MUON_STEP, "        u = u * (2.0 if G.size(0) == 1 else 1.0)\n" + pc.MUON_STEP)]


def test_stack_split_tries_4_ranks_after_2_pass_and_times_itself(tmp_path, monkeypatch):
    mod, path = module("single", SINGLE, tmp=tmp_path)
    problems, _ = um.stack_split_problems(muon_of(mod, [(4, 4)]), 0, mod, path)
    assert len(problems) == 1 and "split as 4 ranks split it ([0] and [1] and [2] and [3]), the new matrix 0 differs " \
        "after call 1 by " in problems[0]
    assert problems[0].endswith("(k, m, n) tensor); no reduction over the stack's first dimension was seen: randomness "
                                "drawn per stack, or a computation in bfloat16 outside newton_schulz (which the "
                                "preflight runs in float64)?")
    ticks = iter(range(100))
    monkeypatch.setattr(um.time, "perf_counter", lambda: float(next(ticks)))
    hub = Hub()
    hub.m, hub.script = mod, path
    probe = um.StackSplitProbe(hub)
    probe.optimizer_step(muon_of(mod, [(4, 4)]), 0, 0)
    probe.optimizer_step(muon_of(mod, [(4, 4)]), 1, 0)
    assert hub.r["stack_split_s"] == 2.0 and [x["index"] for x in hub.r["stack_split"]] == [0, 1]
    assert hub.r["stack_split"][1]["problems"][0].startswith("optimizer 1 (Muon).update()")


def test_judge_descent_fail_text_ends_with_the_last_entry():
    report, runs = report_for(dict(descent=[entry(1.0, names=(n,)) for n in "ab"]))
    um.judge_descent(report, runs)
    assert report.checks["descent"]["detail"].endswith("optimizer 0 (Muon) group 0, b (16, 16): <G, dW + lr wd W> = "
                                                       "+1 at step 2 (cosine +0.500)")


@pytest.mark.parametrize("copy_name", ["resume", "resume@global"])
def test_stack_split_simulates_each_rank_with_its_own_optimizer_and_globals(tmp_path, copy_name):
    """A buffer kept by stack shape in an attribute of the optimizer or in a module global is per process on GPUs:
    two simulated ranks sharing one would mix their matrices here and nowhere else. Those copies fail `resume` (the
    buffer is not in a checkpoint), not `stack_split`; and the probe leaves the run's global as it found it."""
    mod, path = module(copy_name, *pc.BROKEN[copy_name][1:], tmp=tmp_path)
    opt = muon_of(mod, [(4, 4)])
    before = copy.deepcopy(getattr(mod, "MOMENTA", None))
    assert um.stack_split_problems(opt, 0, mod, path) == ([], None)
    assert getattr(mod, "MOMENTA", None) == before
    assert not vars(opt).get("momenta")  # the run's optimizer: no buffer of the probe's stacks
