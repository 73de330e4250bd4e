"""Issue 28's judging code, fast (no script runs; mutation testing runs this file with test_preflight_judging.py):
FlipProbe's cosine on known angles; tools/preflight/world.py's verdicts (update() gets the sum over ranks, the
2-rank val losses and readouts equal the 1-rank ones) on synthetic run records; the val schedule of log_format
(logcheck.schedule_holes, judge_val_schedule). The end-to-end behaviour: test_preflight.py's broken copies
ranks@mean, ranks@val, ranks@val_half and log_format@boundary."""
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


def rotated(degrees, scale=1.0):
    t = math.radians(degrees)
    return torch.tensor([1.0, 0.0, 0.0]), scale * torch.tensor([math.cos(t), math.sin(t), 0.0])


@pytest.mark.parametrize("degrees,scale", [(0, 1.0), (60, 2.0), (120, 1.0), (120, 3.0), (134, 1.0), (134, 0.1)])
def test_a_turn_up_to_135_degrees_is_not_a_flip(degrees, scale):
    assert turned(*rotated(degrees, scale)) == {}


@pytest.mark.parametrize("degrees,scale", [(136, 1.0), (150, 1.0), (150, 0.25), (150, 4.0), (180, 1.0), (180, 0.05)])
def test_a_turn_past_135_degrees_is_a_flip_with_its_cosine(degrees, scale):
    flips = turned(*rotated(degrees, scale), step=7)
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
