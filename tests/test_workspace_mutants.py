r"""tools.board and tools.sweep: the judging code, the cases mutation testing (mutmut, docs/tools.md "Mutation
testing") found untested, and the bugs it led to.

DOCSTRING_RESULTS
"""
import datetime
import math
import os
import sys

import pytest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from tools_logtext import add_column, curve, log_text, write  # noqa: E402

from tools import board, sweep  # noqa: E402
from tools.logs import read_runs  # noqa: E402

T0 = datetime.datetime(2026, 12, 6, 18, 30, 5, tzinfo=datetime.timezone.utc)


def message(body, agent="agent-01", when=T0, refs=(), n=1, extra=None):
    return board.Message(board.message_name(agent, when, n), board.render(agent, "agent", when, refs, body, extra))


def trials(tmp_path, name, runs, column=None):
    """[Trial] of one log per (seed, final) in `runs`; `column`: also log val_ema_loss = val_loss + column."""
    paths = []
    for seed, final in runs:
        text = log_text([{"points": curve(final), "seed": seed}])
        if column is not None:
            text = add_column(text, "val_ema_loss", column)
        paths.append(write(tmp_path / f"{name}_{seed}.txt", text))
    return read_runs([str(p) for p in paths]).trials


# --- bugs ---------------------------------------------------------------------------------------------------------

def test_a_full_stop_after_the_artifact_is_not_part_of_its_name():
    m = message("**Leaderboard result:** 3075 steps · Muon wd 0.05 · artifacts/muon-wd_agent-01.",
                refs=["artifacts/muon-wd_agent-01/"])
    line = board.markers([m])[0][2]
    assert board.named_artifacts(m, line) == ["artifacts/muon-wd_agent-01"]  # one artifact, not two
    m = message("**Leaderboard result:** 3075 steps · in records/2026.12_x.v2.", refs=["artifacts/a.b_agent-01"])
    assert board.named_artifacts(m, board.markers([m])[0][2]) == ["artifacts/a.b_agent-01", "records/2026.12_x.v2"]


def test_no_difference_is_never_beyond_the_noise(tmp_path):
    # a noise of 0 (two reference runs whose final val_loss is the same to the logged decimals)
    ref = trials(tmp_path, "ref", [(0, 3.2780), (1, 3.2790)])
    same = trials(tmp_path, "same", [(0, 3.2780), (1, 3.2790)])
    c = sweep.compare(same, ref, 0.0, 3.0)
    assert (c["delta"], c["se"], c["z"], c["beyond"], c["verdict"]) == (0.0, 0.0, 0.0, False, "within the noise")
    lower = trials(tmp_path, "lower", [(0, 3.2770), (1, 3.2780)])
    c = sweep.compare(lower, ref, 0.0, 3.0)
    assert c["beyond"] is True and c["z"] == -math.inf and c["verdict"] == "lower, beyond the noise"


def test_a_paired_run_without_the_metric_is_left_out(tmp_path):
    ref = trials(tmp_path, "ref", [(0, 3.2780), (1, 3.2790)], column=-0.001)
    mine = trials(tmp_path, "mine", [(0, 3.2760)], column=-0.001) + trials(tmp_path, "bare", [(1, 3.2700)])
    c = sweep.compare(mine, ref, 0.001, 3.0, "val_ema_loss")  # the run of seed 1 logs no val_ema_loss
    assert c["seeds"] == [0] and c["how"] == "paired over 1 seed(s) (each run's last value: no common val step)"
    assert c["delta"] == pytest.approx(-0.0020, abs=1e-9) and c["se"] == pytest.approx(0.001 * math.sqrt(2), abs=1e-12)
