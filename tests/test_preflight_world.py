"""Issue 28's judging code, fast (no script runs; mutation testing runs this file with test_preflight_judging.py):
FlipProbe's cosine on known angles; tools/preflight/world.py's verdicts (update() gets the sum over ranks, the
2-rank val losses and readouts equal the 1-rank ones) on synthetic run records; the val schedule of log_format
(logcheck.schedule_holes, judge_val_schedule). The end-to-end behaviour: test_preflight.py's broken copies
ranks@mean, ranks@val, ranks@val_half and log_format@boundary.

Mutation testing (docs/preflight.md, "Mutation testing", with this file added to the tests and probes.py, trained.py,
world.py and logcheck.py to only_mutate): the mutants of the code this file covers that survive change nothing a
user can observe (mutmut 3.8.1 names, under tools.preflight.; `mutmut show NAME` prints the change):
- trained.xǁFlipProbeǁcompare__mutmut_22, _23: `2 / old` or `3 * old` in the shortcut for "nothing moved": it only
  saves work; without it an unmoved parameter gets the cosine 1, never a flip. _29, _31, _46: the clamp's upper
  end left out or 2.0: a cosine above 1 (the rounding of a barely moved parameter) is never below -1/sqrt(2), so it
  is never reported. _49: `<=` for `<` at -1/sqrt(2): a cosine from float32 norms that equals the double
  -0.5 ** 0.5 exactly. _50, _52: `>= 0` for `> 0` on a norm: a zero norm makes the cosine 0 / 0 = nan, and nan <
  COS is False. trained.xǁFlipProbeǁsampled__mutmut_3: `step <= 100`: step 100 is a multiple of 10, sampled anyway.
- world.xǁSumProbeǁoptimizer_stepped__mutmut_9: pop("update") without a default: optimizer_step set it, so it is
  there. world.x_sum_problems__mutmut_88 (`<` for `<=` SUM_RTOL), _124 (`<=` for `< 1e-3` from 1/W),
  world.x_val_problems__mutmut_59 (`>=` for `>` tol): a difference exactly at the limit. world.x_judge_world__mutmut_18,
  _21: 1-rank runs also go through the loop: they have no sum records (SumProbe is off on 1 rank) and are no key of
  PAIRS.
- logcheck.x_schedule_holes__mutmut_37: `break` for the `continue` after a stretch in a last 10% the script does not
  keep: every later stretch is in the last 10% as well, and skipped alike.
(probes.py's only covered line, Probe.note, is reached by no test of these files: "no tests".)"""
import math
import types

import pytest
import torch

from test_preflight_judging import make_run, result, verdict
from tools.preflight import common, logcheck, trained, world


# -----------------------------------------------------------------------------
# FlipProbe: the angle between a parameter's value before and after a place

def flip_probe(*params, on=True):
    hub = types.SimpleNamespace(r={}, cfg=dict(flips=on), params=list(params), trial=1)
    return trained.FlipProbe(hub), hub


def turned(old, new, step=0):
    """The flips FlipProbe records when before_forward turns `old` into `new`."""
    p = torch.nn.Parameter(old.clone())
    probe, hub = flip_probe(("w", p))
    probe.step_start(step)
    with torch.no_grad():
        p.copy_(new)
    probe.step_forwarded(step)
    return hub.r["flips"]


def rotated(degrees, scale=1.0, norm=1.0):
    """A vector of norm `norm` and one `scale` times as long at `degrees` from it."""
    t = math.radians(degrees)
    return norm * torch.tensor([1.0, 0.0, 0.0]), norm * scale * torch.tensor([math.cos(t), math.sin(t), 0.0])


@pytest.mark.parametrize("degrees,scale,norm", [(0, 1.0, 1.0), (60, 2.0, 1.0), (120, 1.0, 1.0), (120, 3.0, 1.0),
                                                (134, 1.0, 1.0), (134, 0.1, 1.0), (120, 1.0, 5.0), (130, 0.5, 0.2)])
def test_a_turn_up_to_135_degrees_is_not_a_flip(degrees, scale, norm):
    assert turned(*rotated(degrees, scale, norm)) == {}


@pytest.mark.parametrize("degrees,scale,norm", [(136, 1.0, 1.0), (150, 1.0, 1.0), (150, 0.25, 1.0), (150, 4.0, 1.0),
                                                (180, 1.0, 1.0), (180, 0.05, 1.0), (150, 1.0, 3.0), (140, 2.0, 0.3)])
def test_a_turn_past_135_degrees_is_a_flip_with_its_cosine(degrees, scale, norm):
    flips = turned(*rotated(degrees, scale, norm), step=7)
    assert list(flips) == [("before_forward", "w")]
    seen = flips[("before_forward", "w")]
    assert (seen["step"], seen["count"], seen["trial"]) == (7, 1, 1)
    assert seen["cos"] == pytest.approx(math.cos(math.radians(degrees)), abs=1e-6)
    assert -1.0 <= seen["cos"] <= 1.0


def test_150_degrees_reports_cos_minus_0_866():
    seen = turned(*rotated(150))[("before_forward", "w")]
    assert round(seen["cos"], 3) == -0.866


def test_every_reported_cosine_lies_in_minus_1_to_1():
    """new = -k old for many k and vectors: the law of cosines on float32 norms gives -1 +- rounding, clamped."""
    gen = torch.Generator().manual_seed(0)
    cosines = []
    for i in range(200):
        old = torch.randn(int(torch.randint(1, 300, (1,), generator=gen)), generator=gen)
        k = float(torch.rand(1, generator=gen)) * 10 + 1e-3
        cosines += [seen["cos"] for seen in turned(old, -k * old).values()]
    assert len(cosines) == 200 and all(-1.0 <= c <= 1.0 for c in cosines) and min(cosines) == -1.0


def test_flip_probe_places_counts_and_sampling():
    p, q = torch.nn.Parameter(torch.ones(4)), torch.nn.Parameter(torch.full((2,), 2.0))
    probe, hub = flip_probe(("p", p), ("q", q), ("n", torch.nn.Parameter(torch.zeros(0))))
    for step in (3, 4):  # the optimizers' steps flip p at two steps, after_step q at the second
        probe.step_start(step)
        probe.step_forwarded(step)  # (nothing moved before the forward)
        with torch.no_grad():
            p.mul_(-0.5)
        probe.after_step_start(step)
        if step == 4:
            with torch.no_grad():
                q.mul_(-1)
        probe.step_end(step)
    flips = hub.r["flips"]
    assert flips[("the optimizers' steps", "p")] == dict(step=3, cos=-1.0, count=2, trial=1)
    assert flips[("after_step", "q")] == dict(step=4, cos=-1.0, count=1, trial=1)
    assert set(flips) == {("the optimizers' steps", "p"), ("after_step", "q")}
    assert [s for s in range(0, 260) if probe.sampled(s)] == list(range(100)) + list(range(100, 260, 10))
    off, hub_off = flip_probe(("p", p), on=False)
    assert not off.sampled(0)
    off.step_start(0)
    with torch.no_grad():
        p.mul_(-1)
    off.step_forwarded(0)
    assert hub_off.r["flips"] == {}


def test_flip_probe_is_on_by_default_compares_only_sampled_steps_and_skips_integer_parameters():
    p = torch.nn.Parameter(torch.ones(3))
    ints = torch.nn.Parameter(torch.arange(3), requires_grad=False)  # an integer parameter: no angle, no error
    hub = types.SimpleNamespace(r={}, cfg={}, params=[("i", ints), ("p", p)], trial=1)
    probe = trained.FlipProbe(hub)
    assert probe.on and not probe.active
    probe.after_step_start(5)  # a place before any step_start: not compared (the step was not sampled)
    with torch.no_grad():
        p.mul_(-1)
    probe.step_end(5)
    assert hub.r["flips"] == {}
    probe.step_start(6)
    with torch.no_grad():
        p.mul_(-1)
        ints.mul_(-1)
    probe.step_forwarded(6)
    assert list(hub.r["flips"]) == [("before_forward", "p")]


def test_flip_probe_ignores_a_zero_value_and_a_changed_parameter_list():
    assert turned(torch.zeros(3), torch.tensor([1.0, 0.0, 0.0])) == {}  # old = 0: no angle
    assert turned(torch.tensor([1.0, 0.0, 0.0]), torch.zeros(3)) == {}  # new = 0
    p = torch.nn.Parameter(torch.ones(3))
    probe, hub = flip_probe(("p", p))
    probe.compare("before_forward", 0)  # nothing taken yet
    probe.step_start(0)
    hub.params = hub.params + [("q", torch.nn.Parameter(torch.ones(2)))]
    with torch.no_grad():
        p.mul_(-1)
    probe.step_forwarded(0)  # another number of parameters: not compared
    assert hub.r["flips"] == {}


# -----------------------------------------------------------------------------
# update() gets the gradients summed over ranks (world.SumProbe, world.sum_problems)

def g(*values):
    return torch.tensor(values, dtype=torch.float32)


def sum_run(G0, G1, names=("a", "b"), grads0=None, grads1=None, label="ranks"):
    """A 2-rank run whose optimizer 0 (SGD) had these gradients on each rank, and whose update() got G0 on rank 0
    (for both matrices) and G1 on rank 1 (none: rank 1 owns nothing)."""
    grads0 = grads0 if grads0 is not None else dict(a=g(1, 2), b=g(3, 4))
    grads1 = grads1 if grads1 is not None else dict(a=g(10, 20), b=g(-3, 0))
    key = dict(trial=1, step=1, index=0, label="optimizer 0 (SGD)")
    results = [result(rank=0, sum_grads=[dict(key, grads=grads0)],
                      sum_updates=[dict(key, names=list(names), G=G0)]),
               result(rank=1, sum_grads=[dict(key, grads=grads1)],
                      sum_updates=[] if G1 is None else [dict(key, names=list(names), G=G1)])]
    return make_run(label, 2, results)


SUM = torch.stack([g(11, 22), g(0, 4)])


def test_the_sum_passes_and_is_counted():
    assert world.sum_problems(sum_run(SUM.clone(), SUM.clone())) == ([], 2)
    assert world.sum_problems(sum_run(SUM.clone(), None)) == ([], 1)


def test_a_mean_of_small_gradients_and_more_names():
    small = dict(a=g(1e-3, 2e-3), b=g(3e-3, 4e-3), c=g(0, 1e-3), d=g(1e-3, 0))
    other = dict(a=g(0, 0), b=g(0, 0), c=g(0, 0), d=g(0, 0))
    want = torch.stack([small[n] for n in "abcd"])
    (problem,), n = world.sum_problems(sum_run(want / 2, None, names="abcd", grads0=small, grads1=other))
    assert problem == ("ranks: optimizer 0 (SGD).update() on rank 0 (trial 1, step 1) got a G that is 0.5 x the "
                       "gradients summed over the 2 ranks (relative difference 0.5), for a, b and 2 more: a mean, not "
                       "the sum")


def test_every_update_of_a_rank_is_judged_after_one_that_is_not():
    run = sum_run(SUM / 2, None)
    key = dict(trial=1, step=1, index=0, label="optimizer 0 (SGD)")
    updates = run["results"][0]["sum_updates"]
    run["results"][0]["sum_updates"] = [dict(key, names=["x"], G=SUM), dict(key, names=["a", "b"], G=SUM[:1])] + updates
    problems, n = world.sum_problems(run)
    assert n == 1 and len(problems) == 2 and problems[0].endswith("got G of shape (1, 2) for 2 matrices of shape (2,)")
    assert problems[1].endswith(": a mean, not the sum")
    for r in run["results"]:  # no rank recorded its gradients at that step: nothing to compare
        r["sum_grads"] = []
    assert world.sum_problems(run) == ([], 0)


def test_a_mean_is_named():
    problems, n = world.sum_problems(sum_run(SUM / 2, None))
    assert n == 1 and problems == [
        "ranks: optimizer 0 (SGD).update() on rank 0 (trial 1, step 1) got a G that is 0.5 x the gradients summed over "
        "the 2 ranks (relative difference 0.5), for a, b: a mean, not the sum"]


@pytest.mark.parametrize("factor,named,rel", [(0.9, "0.9", "0.1"), (1.5, "1.5", "0.5"), (0.502, "0.502", "0.498")])
def test_another_factor_is_no_mean(factor, named, rel):
    (problem,), _ = world.sum_problems(sum_run(SUM * factor, None))
    assert problem == (f"ranks: optimizer 0 (SGD).update() on rank 0 (trial 1, step 1) got a G that is {named} x the "
                       f"gradients summed over the 2 ranks (relative difference {rel}), for a, b")


def test_one_rank_s_own_gradient_fails():
    mine = torch.stack([g(1, 2), g(3, 4)])
    (problem,), _ = world.sum_problems(sum_run(SUM.clone(), mine))
    assert problem.startswith("ranks: optimizer 0 (SGD).update() on rank 1 (trial 1, step 1) got a G that is ")


def test_the_tolerance_of_the_sum():
    scale = float(SUM.double().norm())
    nudge = torch.zeros_like(SUM, dtype=torch.float64)
    nudge[0, 0] = 0.9e-6 * scale
    assert world.sum_problems(sum_run((SUM.double() + nudge), None))[0] == []
    nudge[0, 0] = 1.1e-6 * scale
    (problem,), _ = world.sum_problems(sum_run((SUM.double() + nudge), None))
    assert "(relative difference 1.1e-06)" in problem


def test_a_zero_sum_wants_a_zero_g():
    zeros = dict(a=g(0, 0), b=g(0, 0))
    assert world.sum_problems(sum_run(torch.zeros(2, 2), None, grads0=zeros, grads1=zeros)) == ([], 1)
    (problem,), _ = world.sum_problems(sum_run(torch.stack([g(3, 4), g(0, 0)]), None, grads0=zeros, grads1=zeros))
    assert "got a G that is nan x the gradients summed over the 2 ranks (relative difference 5)" in problem


def test_non_finite_gradients_are_left_to_finite():
    nan = dict(a=g(float("nan"), 1), b=g(3, 4))
    assert world.sum_problems(sum_run(SUM / 2, None, grads0=nan)) == ([], 0)
    assert world.sum_problems(sum_run(SUM * float("inf"), None)) == ([], 0)
    run = sum_run(SUM / 2, None)  # a non-finite G first: the rank's next update() is still judged
    first = dict(run["results"][0]["sum_updates"][0], G=SUM * float("inf"))
    run["results"][0]["sum_updates"].insert(0, first)
    (problem,), n = world.sum_problems(run)
    assert n == 1 and problem.endswith(": a mean, not the sum")


def test_a_g_of_another_shape_and_records_without_every_rank():
    (problem,), n = world.sum_problems(sum_run(SUM[:1].clone(), None))
    assert n == 0 and problem == ("ranks: optimizer 0 (SGD).update() on rank 0 got G of shape (1, 2) for 2 matrices of "
                                  "shape (2,)")
    assert world.sum_problems(sum_run(SUM.clone(), None, grads1={"a": g(10, 20)})) == ([], 0)  # b missing on rank 1
    run = sum_run(SUM / 2, None)
    run["results"][1]["sum_grads"] = []
    assert world.sum_problems(run) == ([], 0)


def script():
    from tools import tiny
    return tiny.load_script(str(common.BASELINE), "world_test_script")


def test_sum_probe_records_update_inputs_and_puts_update_back():
    m = script()
    torch.manual_seed(0)
    a, b, c = (torch.nn.Parameter(torch.randn(3, 2)) for _ in range(3))
    muon = m.Muon([a, b, c], lr=0.1, weight_decay=0.0, mu=0.5)
    hub = types.SimpleNamespace(r={}, world=2, m=m, names={id(a): "a", id(b): "b", id(c): "c"}, trial=1)
    probe = world.SumProbe(hub)
    for step in range(3):
        for p in (a, b, c):
            p.grad = torch.randn(3, 2)
        grads = [p.grad.clone() for p in (a, b, c)]
        probe.optimizer_step(muon, 0, step)
        muon.step()
        probe.optimizer_stepped(muon, 0, step)
        assert "update" not in vars(muon)
        if step < world.SUM_STEPS:
            assert hub.r["sum_grads"][-1]["grads"].keys() == {"a", "b", "c"}
            assert all(torch.equal(hub.r["sum_grads"][-1]["grads"][n], t) for n, t in zip("abc", grads))
            (u,) = [u for u in hub.r["sum_updates"] if u["step"] == step]
            assert u["names"] == ["a", "b", "c"] and torch.equal(u["G"], torch.stack(grads))  # 1 rank: G is the grad
            assert (u["trial"], u["index"], u["label"]) == (1, 0, "optimizer 0 (Muon)")
    assert len(hub.r["sum_grads"]) == world.SUM_STEPS == len(hub.r["sum_updates"])
    probe.trial_start(None, [muon])  # a new trial records its first steps again
    probe.optimizer_step(muon, 0, 0)
    assert len(hub.r["sum_grads"]) == world.SUM_STEPS + 1
    own = lambda W, G, state, group: W  # noqa: E731 - an update() set on the object itself comes back
    muon.update = own
    probe.optimizer_step(muon, 0, 1)
    probe.optimizer_stepped(muon, 0, 1)
    assert muon.update is own


def test_sum_probe_names_each_stack_in_call_order():
    """Three shapes: three stacks, update() called once each; a matrix the hub cannot name is '?' (and has no
    gradient record); a matrix without .grad is left out; the records make a 2-rank run sum_problems compares."""
    m = script()
    torch.manual_seed(0)
    shapes = [(2, 2), (3, 2), (2, 4), (2, 2)]
    ps = [torch.nn.Parameter(torch.randn(*shape)) for shape in shapes]
    muon = m.Muon(ps, lr=0.1, weight_decay=0.0, mu=0.5)
    names = {id(p): n for p, n in zip(ps[:3], "abc")}  # ps[3] (2 x 2, a's stack) unnamed
    hub = types.SimpleNamespace(r={}, world=2, m=m, names=names, trial=1)
    probe = world.SumProbe(hub)
    for p in ps:
        p.grad = torch.randn(p.shape)
    ps[2].grad = None
    probe.optimizer_step(muon, 0, 0)
    assert set(hub.r["sum_grads"][0]["grads"]) == {"a", "b"}
    ps[2].grad = torch.zeros(2, 4)
    muon.step()
    probe.optimizer_stepped(muon, 0, 0)
    assert sorted(u["names"] for u in hub.r["sum_updates"]) == [["a", "?"], ["b"], ["c"]]
    by = {tuple(u["names"]): u["G"] for u in hub.r["sum_updates"]}
    assert torch.equal(by[("b",)], ps[1].grad[None]) and torch.equal(by[("a", "?")][0], ps[0].grad)
    copy = {k: [dict(x) for x in v] if isinstance(v, list) else v for k, v in hub.r.items()}
    for u in copy["sum_updates"]:
        u["G"] = u["G"] * 2  # both ranks held these gradients: the sum is twice them
    # b on each rank (a shares its stack with the unnamed matrix, c had no .grad)
    assert world.sum_problems(make_run("ranks", 2, [result(rank=0, **copy), result(rank=1, **copy)])) == ([], 2)


def test_sum_probe_without_stacks_and_an_update_with_more_arguments():
    m = script()

    class Extra(m.Muon):
        def update(self, W, G, state, group, scale=1.0, *more, **options):
            return W.sub_(G, alpha=scale * len(more) + options.get("add", 0))

    p = torch.nn.Parameter(torch.zeros(2, 2))
    opt = Extra([p], lr=0.1, weight_decay=0.0, mu=0.5)
    hub = types.SimpleNamespace(r={}, world=2, m=m, names={id(p): "p"}, trial=1)
    probe = world.SumProbe(hub)
    p.grad = torch.ones(2, 2)
    probe.optimizer_step(opt, 0, 0)
    W = opt.update(torch.zeros(1, 2, 2), torch.ones(1, 2, 2), {}, {}, 2.0, "x", "y", add=1)
    assert torch.equal(W, torch.full((1, 2, 2), -5.0)) and len(hub.r["sum_updates"]) == 1
    probe.optimizer_stepped(opt, 0, 0)
    del opt.stacks  # a subclass that keeps no `stacks`: update() still runs, nothing is named
    probe.optimizer_step(opt, 0, 1)
    opt.update(torch.zeros(1, 2, 2), torch.ones(1, 2, 2), {}, {})
    assert len(hub.r["sum_updates"]) == 1 and len(hub.r["sum_grads"]) == 2


def test_sum_probe_skips_one_rank_and_other_optimizers():
    m = script()
    p = torch.nn.Parameter(torch.randn(2, 2))
    adam = torch.optim.AdamW([p])
    muon = m.Muon([p], lr=0.1, weight_decay=0.0, mu=0.5)
    for hub_world, opt in ((1, muon), (2, adam)):
        hub = types.SimpleNamespace(r={}, world=hub_world, m=m, names={id(p): "p"}, trial=1)
        probe = world.SumProbe(hub)
        p.grad = torch.ones(2, 2)
        probe.optimizer_step(opt, 0, 0)
        assert hub.r["sum_grads"] == [] and "update" not in vars(opt)
    assert world.matrix_optimizer(m, muon) and not world.matrix_optimizer(types.SimpleNamespace(), muon)


# -----------------------------------------------------------------------------
# the 2-rank val losses and readouts against the 1-rank ones (world.ValProbe, world.val_problems)

def val_run(label, world_size, vals, readouts=(), fresh=True, start=0):
    """vals: [(trial, step, value)] of every rank (the same on each unless given per rank as a list)."""
    results = []
    for rank in range(world_size):
        mine = [(t, s, v[rank] if isinstance(v, list) else v) for t, s, v in vals]
        results.append(result(rank=rank, world_vals=mine, world_readouts=list(readouts)))
    return make_run(label, world_size, results, fresh=fresh, start=start)


SINGLE = val_run("short", 1, [(1, 0, 4.852), (1, 10, 4.6), (2, 0, 4.852), (2, 10, 4.61)],
                 [(1, 10, {"val_ema_loss": 4.5})])


def test_equal_val_losses_and_readouts_pass_and_are_counted():
    ranks = val_run("ranks", 2, [(1, 0, 4.852), (1, 10, 4.6 * (1 + 5e-3)), (2, 0, 4.852 * (1 + 5e-7)), (2, 10, 4.61)],
                    [(1, 10, {"val_ema_loss": 4.5 * (1 - 5e-3)})])
    assert world.val_problems(ranks, SINGLE) == ([], 10)


def test_a_val_loss_divided_by_the_world_size_fails_at_step_0():
    ranks = val_run("ranks", 2, [(1, 0, 2.426), (1, 10, 2.3), (2, 0, 2.426), (2, 10, 2.305)])
    problems, n = world.val_problems(ranks, SINGLE)
    assert n == 4 and problems == [  # (a value that fails is not looked at on the other ranks)
        "ranks: the val loss at step 0 of trial 1 is 2.426 on rank 0 of 2, 4.852 on 1 rank (short; 0.5 x, the limit "
        "1e-06 relative, from the same weights)",
        "ranks: the val loss at step 10 of trial 1 is 2.3 on rank 0 of 2, 4.6 on 1 rank (short; 0.5 x, the limit 0.01 "
        "relative)",
        "ranks: the val loss at step 0 of trial 2 is 2.426 on rank 0 of 2, 4.852 on 1 rank (short; 0.5 x, the limit "
        "1e-06 relative, from the same weights)",
        "ranks: the val loss at step 10 of trial 2 is 2.305 on rank 0 of 2, 4.61 on 1 rank (short; 0.5 x, the limit 0.01 "
        "relative)"]


@pytest.mark.parametrize("step,rel,fails", [(0, 0.9e-6, False), (0, 1.1e-6, True), (10, 0.9e-2, False),
                                            (10, 1.1e-2, True)])
def test_the_val_tolerances(step, rel, fails):
    value = {0: 4.852, 10: 4.6}[step]
    ranks = val_run("ranks", 2, [(1, step, value * (1 + rel))])
    problems, n = world.val_problems(ranks, SINGLE)
    assert n == (1 if fails else 2) and bool(problems) == fails


def test_a_readout_that_differs_fails_and_ranks_that_disagree_fail():
    ranks = val_run("ranks", 2, [(1, 10, 4.6)], [(1, 10, {"val_ema_loss": 9.0, "other": 1.0})])
    assert world.val_problems(ranks, SINGLE)[0] == [
        "ranks: the readout val_ema_loss at step 10 of trial 1 is 9 on rank 0 of 2, 4.5 on 1 rank (short; 2 x, the "
        "limit 0.01 relative)"]
    ranks = val_run("ranks", 2, [(1, 10, [4.6, 4.61])])
    problems, n = world.val_problems(ranks, SINGLE)
    assert problems == ["ranks: the val loss at step 10 of trial 1 differs between the ranks: 4.6 on rank 0, 4.61 on "
                        "rank 1"] and n == 2


def test_after_a_data_failure_no_val_and_after_a_finite_one_only_the_same_weights_are_compared():
    ranks = val_run("ranks", 2, [(1, 0, 4.852), (1, 10, 4.7), (2, 0, 2.426)])  # trial 2's step 0 after (1, 10)
    assert world.val_problems(ranks, SINGLE, later=False) == ([
        "ranks: the val loss at step 0 of trial 2 is 2.426 on rank 0 of 2, 4.852 on 1 rank (short; 0.5 x, the limit "
        "1e-06 relative, from the same weights)"], 3)
    for check, values, compared in (("data", 2.426, 0), ("finite", 4.852, 2)):  # data: not even step 0
        report = common.Report()
        report.set("ranks", "PASS", "bitwise equal")
        report.set(check, "FAIL", "other batches")
        world.judge_world(report, [SINGLE, val_run("ranks", 2, [(1, 0, values), (1, 10, 4.7)])])
        assert report.checks["ranks"]["status"] == "PASS"
        assert report.checks["ranks"]["detail"].endswith(f"({compared} values)")
    report = common.Report()
    report.set("ranks", "PASS", "bitwise equal")
    world.judge_world(report, [SINGLE, val_run("ranks", 2, [(1, 0, 4.852), (1, 10, 4.7)])])
    assert report.checks["ranks"]["status"] == "FAIL"


def test_a_resumed_run_starts_from_the_same_weights_only_if_shared():
    long = val_run("long", 1, [(1, 8, 4.0), (1, 12, 3.9)])
    tail = val_run("tail", 2, [(1, 8, 4.0 * (1 + 1e-4)), (1, 12, 3.9)], fresh=False, start=8)
    (problem,), _ = world.val_problems(tail, long)
    assert problem.startswith("tail: the val loss at step 8 of trial 1 is 4.0004 on rank 0 of 2, 4 on 1 rank (long; "
                              "1 x, the limit 1e-06 relative, from the same weights)")
    assert world.val_problems(tail, long, shared=False) == ([], 4)


def test_a_rank_after_a_non_finite_one_and_a_zero_reference():
    single = val_run("short", 1, [(1, 0, 4.852), (1, 10, 0.0)])
    ranks = val_run("ranks", 2, [(1, 0, [float("nan"), 2.0])])
    assert world.val_problems(ranks, single) == ([
        "ranks: the val loss at step 0 of trial 1 differs between the ranks: nan on rank 0, 2 on rank 1",
        "ranks: the val loss at step 0 of trial 1 is 2 on rank 1 of 2, 4.852 on 1 rank (short; 0.4122 x, the limit "
        "1e-06 relative, from the same weights)"], 1)
    ranks = val_run("ranks", 2, [(1, 10, 1.0)])
    assert world.val_problems(ranks, single)[0] == [
        "ranks: the val loss at step 10 of trial 1 is 1 on rank 0 of 2, 0 on 1 rank (short; nan x, the limit 0.01 "
        "relative)"]


def test_values_that_are_not_finite_or_not_numbers_are_left_to_finite():
    single = val_run("short", 1, [(1, 0, 4.852), (1, 10, float("nan"))])
    ranks = val_run("ranks", 2, [(1, 0, float("inf")), (1, 10, 1.0)])
    assert world.val_problems(ranks, single) == ([], 0)
    assert world._relative("x", 1.0) is None and world._relative(1.0, 0.0) == 1e12


def test_val_probe_records_val_losses_and_numeric_readouts():
    hub = types.SimpleNamespace(r={}, trial=2)
    probe = world.ValProbe(hub)
    probe.val_value(5, 4.25)
    probe.val_value(6, True)
    probe.val_value(7, torch.tensor(1.0))
    probe.readouts_value(5, {"a": 1, "b": 2.5, "c": "x", "d": False, 3: 1.0})
    probe.readouts_value(6, None)
    assert hub.r == dict(world_vals=[(2, 5, 4.25)], world_readouts=[(2, 5, {"a": 1.0, "b": 2.5, "3": 1.0})])


def test_judge_world_fails_ranks_naming_evaluate_or_the_sum():
    runs = [SINGLE, val_run("ranks", 2, [(1, 0, 2.426)])]
    checks = verdict(world.judge_world, runs)
    assert checks["ranks"]["status"] == "FAIL"
    assert checks["ranks"]["detail"].startswith("the val losses depend on the world size (evaluate() and its reduction "
                                                "over ranks): ranks: the val loss at step 0 of trial 1 is 2.426")
    assert checks["ranks"]["fix"].startswith("evaluate() must return the val loss summed over the val set and the ranks")
    report = common.Report()
    report.set("ranks", "FAIL", "the ranks end with different parameters", fix="sum every gradient")
    world.judge_world(report, [SINGLE, sum_run(SUM / 2, None)])
    assert report.checks["ranks"]["detail"] == (
        "the ranks end with different parameters; ranks: optimizer 0 (SGD).update() on rank 0 (trial 1, step 1) got a "
        "G that is 0.5 x the gradients summed over the 2 ranks (relative difference 0.5), for a, b: a mean, not the sum")
    assert report.checks["ranks"]["fix"] == ("sum every gradient; a MatrixOptimizer's step() must hand update() the "
                                             "gradients summed over ranks (dist.reduce_scatter_tensor sums; do not "
                                             "divide by world_size)")


def test_judge_world_shows_two_problems_of_each_kind_from_every_run():
    long = val_run("long", 1, [(1, 8, 4.0), (1, 12, 3.9)])
    tail = val_run("tail", 2, [(1, 8, 4.0 * (1 + 1e-4)), (1, 12, 3.9)], fresh=False, start=8)
    tail["results"][0].update(sum_run(SUM / 2, None, label="tail")["results"][0])
    tail["results"][1].update(sum_run(SUM / 2, None, label="tail")["results"][1])
    ranks = sum_run(SUM / 2, SUM / 2)  # both ranks' update() get a mean: with the tail's, 3 such problems
    ranks["results"][0]["world_vals"] = ranks["results"][1]["world_vals"] = [(1, 0, 1.0), (2, 0, 1.0), (2, 10, 1.0)]
    checks = verdict(world.judge_world, [SINGLE, long, make_run("other", 2), ranks, tail])
    mean = ("optimizer 0 (SGD).update() on rank {} (trial 1, step 1) got a G that is 0.5 x the gradients summed over "
            "the 2 ranks (relative difference 0.5), for a, b: a mean, not the sum")
    assert checks["ranks"]["detail"] == (
        f"ranks: {mean.format(0)}; ranks: {mean.format(1)}; the val losses depend on the world size (evaluate() and its reduction over "
        "ranks): ranks: the val loss at step 0 of trial 1 is 1 on rank 0 of 2, 4.852 on 1 rank (short; 0.2061 x, the "
        "limit 1e-06 relative, from the same weights); ranks: the val loss at step 0 of trial 2 is 1 on rank 0 of 2, "
        "4.852 on 1 rank (short; 0.2061 x, the limit 1e-06 relative, from the same weights)")
    assert checks["ranks"]["fix"] == (
        "a MatrixOptimizer's step() must hand update() the gradients summed over ranks (dist.reduce_scatter_tensor "
        "sums; do not divide by world_size); evaluate() must return the val loss summed over the val set and the "
        "ranks per val token, whatever the world size (the val reduction: all_reduce the sums, divide by val_tokens "
        "only)")
    checks = verdict(world.judge_world, [long, val_run("tail", 2, [(1, 8, 4.0 * (1 + 1e-4))], fresh=False, start=8)])
    assert "(long; 1 x, the limit 1e-06 relative, from the same weights)" in checks["ranks"]["detail"]
    # tail_resume starts from the tail's weights: its first val has the later steps' tolerance; a 2-rank run without
    # its 1-rank run is not compared
    resumed = val_run("tail_resume", 2, [(1, 8, 4.0 * (1 + 1e-4))], fresh=False, start=8)
    report = common.Report()
    report.set("ranks", "PASS", "bitwise equal")
    world.judge_world(report, [long, resumed, val_run("ranks", 2, [(1, 0, 1.0)])])
    assert report.checks["ranks"]["detail"] == ("bitwise equal; no MatrixOptimizer to check update()'s sum on; the "
                                                "2-rank val losses and readouts equal the 1-rank runs' (2 values)")
    report = common.Report()  # a FAIL already there: both fixes added
    report.set("ranks", "FAIL", "the ranks end with different parameters", fix="sum every gradient")
    world.judge_world(report, [SINGLE, ranks])
    assert report.checks["ranks"]["fix"] == (
        "sum every gradient; a MatrixOptimizer's step() must hand update() the gradients summed over ranks "
        "(dist.reduce_scatter_tensor sums; do not divide by world_size); evaluate() must return the val loss summed "
        "over the val set and the ranks per val token, whatever the world size (the val reduction: all_reduce the "
        "sums, divide by val_tokens only)")


def test_judge_world_adds_what_it_compared_to_a_pass():
    report = common.Report()
    report.set("ranks", "PASS", "bitwise equal")
    ranks = sum_run(SUM.clone(), SUM.clone())
    ranks["results"][0].update(world_vals=[(1, 0, 4.852)])
    world.judge_world(report, [SINGLE, ranks, make_run("long"), make_run("tail", 2)])
    assert report.checks["ranks"]["detail"] == (
        "bitwise equal; update() of every MatrixOptimizer got the gradients summed over the ranks (2 stacks at the "
        "first 2 steps of each trial); the 2-rank val losses and readouts equal the 1-rank runs' (1 values)")
    report = common.Report()
    report.set("ranks", "PASS", "bitwise equal")
    world.judge_world(report, [SINGLE, val_run("ranks", 2, [(1, 0, 4.852)])])
    assert report.checks["ranks"]["detail"] == ("bitwise equal; no MatrixOptimizer to check update()'s sum on; the "
                                                "2-rank val losses and readouts equal the 1-rank runs' (2 values)")
    report = common.Report()  # ranks SKIP (no multi-rank trial ended) and nothing wrong: left as it is
    world.judge_world(report, [SINGLE])
    assert report.checks["ranks"]["status"] == "SKIP"


# -----------------------------------------------------------------------------
# log_format: the val schedule at the script's own train_steps (logcheck.schedule_holes, judge_val_schedule)

def schedule(rule, train_steps=3250):
    return [s for s in range(train_steps + 1) if s == train_steps or rule(s, train_steps)]


def record46(s, T):  # records/20260619_cwd_rowfloor_tailema's is_val_step (2900 steps)
    dense = (2600 <= s <= 2810 and s % 5 == 0) or (2820 <= s <= 2890 and s % 10 == 0) or s == 2895
    return (s > 0 and s % 125 == 0) or dense


@pytest.mark.parametrize("name,rule,train_steps,holes", [
    ("6.1", lambda s, T: s % (125 if s / T < 0.9 else 25) == 0, 3250, []),
    ("<= 0.9", lambda s, T: s % (125 if s / T <= 0.9 else 25) == 0, 3250, [(2925, 2925, 2875, 2950)]),
    ("< 0.91", lambda s, T: s % (125 if s / T < 0.91 else 25) == 0, 3250, [(2925, 2950, 2875, 2975)]),
    ("< 0.89", lambda s, T: s % (125 if s / T < 0.89 else 25) == 0, 3250, []),  # denser: allowed
    ("no step 0", lambda s, T: s > 0 and s % (125 if s / T < 0.9 else 25) == 0, 3250, []),
    ("no 250", lambda s, T: s != 250 and s % (125 if s / T < 0.9 else 25) == 0, 3250, [(250, 250, 125, 375)]),
    ("no 250, 375", lambda s, T: s not in (250, 375) and s % (125 if s / T < 0.9 else 25) == 0, 3250,
     [(250, 375, 125, 500)]),
    ("no 3225", lambda s, T: s != 3225 and s % (125 if s / T < 0.9 else 25) == 0, 3250, [(3225, 3225, 3200, 3250)]),
    ("every 250", lambda s, T: s % 250 == 0, 1000, [(125, 125, 0, 250), (375, 375, 250, 500), (625, 625, 500, 750)]),
    ("every 125 (the AdamW record)", lambda s, T: s % 125 == 0, 5625, []),
    ("every 50 at the end", lambda s, T: s % (125 if s / T < 0.9 else 50) == 0, 1000,
     [(925, 925, 900, 950), (975, 975, 950, 1000)]),
    ("#46", record46, 2900, []),
    ("every 125, 2900 steps", lambda s, T: s % 125 == 0, 2900, []),  # (2900 itself is no multiple of 125)
    ("every 125, 250 steps", lambda s, T: s % 125 == 0, 250, []),  # 225 = 0.9 x 250: the last 10%, not kept
    ("every 125 and 900 of 1000", lambda s, T: s % 125 == 0 or s == 900, 1000, [(925, 975, 900, 1000)]),
    ("the last step only", lambda s, T: False, 3250, []),
])
def test_schedule_holes(name, rule, train_steps, holes):
    assert logcheck.schedule_holes(schedule(rule, train_steps), train_steps) == holes, name


def test_schedule_note_says_where_the_schedule_first_differs():
    assert logcheck.schedule_note(logcheck.rule_val_steps(3250), 3250) == (
        "is_val_step over its train_steps = 3250: the 38 val steps of RULES 6.1")
    assert logcheck.schedule_note(schedule(record46, 2900), 2900) == (
        "is_val_step over its train_steps = 2900: 74 val steps, first differing from RULES 6.1 at step 0 (adds 2600, "
        "2605, 2610 and 40 more; drops 0, 2825)")
    assert logcheck.schedule_note(schedule(lambda s, T: s % 125 == 0, 5625), 5625) == (
        "is_val_step over its train_steps = 5625: 46 val steps, first differing from RULES 6.1 at step 5075 (drops "
        "5075, 5100, 5150 and 15 more)")
    assert logcheck.schedule_note([0, 5, 10], 10) == (
        "is_val_step over its train_steps = 10: 3 val steps, first differing from RULES 6.1 at step 5 (adds 5)")


def test_judge_val_schedule():
    boundary = schedule(lambda s, T: s % (125 if s / T <= 0.9 else 25) == 0)
    report = common.Report()
    report.set("log_format", "PASS", "4 logs")
    logcheck.judge_val_schedule(report, logcheck.rule_val_steps(3250), 3250)
    assert report.checks["log_format"]["detail"] == (
        "4 logs; is_val_step over its train_steps = 3250: the 38 val steps of RULES 6.1")
    report.set("log_format", "PASS", "4 logs")  # without the note: the long run's own detail says it
    logcheck.judge_val_schedule(report, logcheck.rule_val_steps(3250), 3250, note=False)
    assert report.checks["log_format"]["detail"] == "4 logs"
    logcheck.judge_val_schedule(report, boundary, 3250, note=False)
    check = report.checks["log_format"]
    assert check["status"] == "FAIL" and check["detail"] == (
        "is_val_step over its train_steps = 3250 (evaluated at every step, not run) skips step 2925 of RULES 6.1 while it "
        "validates at 2875 and 2950 around it: first differing step 2925; 6.1: every 125 while step / train_steps < "
        "0.9, every 25 from there, and the last step")
    assert check["fix"].startswith("validate at every step RULES 6.1 asks for (more steps are fine, step 0 may go)")
    report = common.Report()
    report.set("log_format", "FAIL", "a val line", fix="keep it")
    logcheck.judge_val_schedule(report, [s for s in boundary if s not in (250, 375)], 3250)
    check = report.checks["log_format"]
    assert check["detail"] == (
        "a val line; is_val_step over its train_steps = 3250 (evaluated at every step, not run) skips steps 250 to 375 "
        "of RULES 6.1 while it validates at 125 and 500 around them: first differing step 250 (and 1 more such "
        "stretches); 6.1: every 125 while step / train_steps < 0.9, every 25 from there, and the last step")
    assert check["fix"].startswith("keep it; validate at every step")
    report = common.Report()  # is_val_step raised (None), or SKIP and nothing wrong: left as it is
    logcheck.judge_val_schedule(report, None, 3250)
    logcheck.judge_val_schedule(report, logcheck.rule_val_steps(3250), 3250)
    assert report.checks["log_format"]["status"] == "SKIP" and report.checks["log_format"]["detail"] == "not run"
