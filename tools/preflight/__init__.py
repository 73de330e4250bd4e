"""Check a modified train_gpt_simple.py on the CPU, before paying for a GPU run (docs/preflight.md).

    python -m tools.preflight path/to/train_gpt_simple.py               every step of its train_steps
    python -m tools.preflight path/to/train_gpt_simple.py --steps 30    a quick look
    python -m tools.preflight path/to/train_gpt_simple.py --json        a machine-readable report
    python -m tools.preflight path/to/train_gpt_simple.py --keep-logs DIR   keep the CPU runs' logs

Runs the script's own code (init_params, make_optimizers, set_hparams, the extension points, main()
and its training loop) on the tiny model of tools.tiny (width 16) with synthetic shards in a temporary
directory: 2 trials of 10 steps on 1 rank (gradient accumulation, the trial split of the log), every
step of train_steps on 1 rank, 2 trials of 10 steps on 2 gloo ranks (gradient sums, the sharded
optimizer), and the last steps on 2 ranks, resumed from the long run's checkpoint; three more runs
stop with SIGTERM and resume, to compare with the runs that went on. The probes watch every forward,
backward, optimizer step, val pass, readout and checkpoint; the verdicts compare the script with the
repo's train_gpt_simple.py (the baseline) where the rules (RULES.md) fix what may change. Prints a
checklist (PASS / FAIL / SKIP, with what to change for each FAIL), the schedule of every
hyperparameter, and the wall time. Exit status: 0 no FAIL, 1 any FAIL, 2 bad input (no such file, a
bad argument).

The package, by concern:
  common       the checklist (CHECKS), the Report, shared constants
  static       rules on the script's text: imports, hard-coded hyperparameters, the public format
  compare      comparisons with the baseline without a run: architecture, data stream, constants
  runs         the plan and the runs of the script (tools.tiny), one per configuration
  hub, probes  inside each run's process: the wrapped functions and what each probe records
  fingerprint  a trial's whole state by path, shared by the probes and the verdicts
  verdicts, resume, logcheck   the judges, from the runs' records
  core         preflight(): everything above in order, the report as a dict
  report       the report as text, and main()
"""
from tools.preflight.common import CHECKS, FAIL, PASS, SKIP, Report  # noqa: F401
from tools.preflight.core import preflight  # noqa: F401
from tools.preflight.report import format_report, main  # noqa: F401
