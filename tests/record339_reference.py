"""Open pull request #339's method written directly from its script, one matrix and one parameter at a time, for
tests/test_record_bimaxwell.py. Nothing here calls the port (records/20260713_bimaxwell/train_gpt_simple.py).

Source: KellerJordan/modded-nanogpt, refs/pull/339/head,
records/track_3_optimization/results/20260713_bimaxwell_2635/train_gpt_bimaxwell_st1000.py (sha256 07e064a0...).
Against record #46's public script (train_gpt_cwd_SOTA.py) it changes two things: Muon's momentum from step 1000
(Bi-Maxwell: the same lines as PR #341's, so record341_reference's MuonRef) and the val steps. Everything else is
record #46's, so it is record46_reference's.
"""
from record46_reference import *  # noqa: F401,F403 - the schedules and constants, unchanged by the PR
import record46_reference
import record341_reference


class Record339(record46_reference.Record46):
    """Record46 with the Bi-Maxwell Muon (record341_reference.MuonRef: #46's Muon plus the PR's Bi-Maxwell lines)."""

    def __init__(self, named):
        super().__init__(named)
        self.muon = record341_reference.MuonRef([self.w[n] for n in self.muon_names], self.muon.kinds)
