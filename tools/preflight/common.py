"""The checklist, the report record it fills, and the constants the other parts of tools.preflight share."""
import collections
import re
from pathlib import Path

BASELINE = Path(__file__).resolve().parents[2] / "train_gpt_simple.py"
PUBLIC_VAL_RE = re.compile(r"step:(\d+)/(\d+)\s+val_loss:([0-9.]+)")  # what the public tools parse (RULES 6.3)
ANY_VAL_RE = re.compile(r"step:(\d+)/(\d+)\s+val_loss:(\S+)")  # also nan / inf
NUMBER = r"(?:-?\d+\.\d{5}|nan|-?inf)"  # printed with :.5f
VAL_LINE_RE = re.compile(rf"step:(\d+)/(\d+) val_loss:{NUMBER}((?: [A-Za-z_]\w*:{NUMBER})*) "
                         r"train_time:\d+\.\d{3}s step_avg:\d+\.\d{2}ms")  # RULES 6.2, with readout columns (6.4)
TIME_RE = re.compile(r" train_time:\S+ step_avg:\S+$")
TRIAL_RE = re.compile(r"^trial (\d+)/(\d+) (seed|resumed)\b")
SEPARATOR = "=" * 100
ALLOWED_ENV = ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT", "SEED", "RESUME")
# names the runs hook besides tools.tiny.REQUIRED: the extension points and the loop's checkpoint and val code
HOOKED = ("init_params", "make_optimizers", "set_hparams", "is_val_step", "before_forward", "after_step", "readouts",
          "evaluate", "restore", "save_checkpoint", "run_trial")
WORLD = 2  # ranks of the multi-rank runs

# id, rule (RULES.md), what it checks, what to change when it fails
CHECKS = [
    ("load", "-", "the script exists, compiles, imports and defines the harness's names",
     "start from a copy of the repo's train_gpt_simple.py (python -m tools.new) and keep its names"),
    ("run", "-", "main() runs every step without an exception",
     "fix the exception above (the traceback shows the script's own lines)"),
    ("finite", "-", "no nan or inf: training loss, val loss, parameters, optimizer and extension state",
     "find the step where it starts (the first tensor named above) and fix it: lr schedule, a division, an optimizer state"),
    ("optimizers", "-", "every parameter is in exactly one optimizer",
     "make_optimizers must hand every model parameter to exactly one optimizer group"),
    ("gradients", "-", "every optimized parameter has a gradient at every optimizer step",
     "the model must use every parameter in its forward; do not clear .grad before the optimizer step"),
    ("updates", "-", "every optimized parameter with a non-zero gradient changes during training, and no step turns "
     "one around",
     "check its lr (and lr schedule) is non-zero and the optimizer's step writes the parameter; a factor such as "
     "1 - c * lr (weight decay) must stay above 0 at the largest lr"),
    ("learns", "-", "the tiny model's val loss falls clearly below its start, as the baseline's does on the same data "
     "(all optimizers together; each update's sign: descent)",
     "check the sign of the update (p -= lr * update), that the updates reach the weights and the lr schedule; the "
     "curve above shows the val loss by step"),
    # issue 31: the update's own math (tools/preflight/update_math.py)
    ("descent", "-", "each parameter's first update from a non-zero gradient, weight decay taken out, points downhill: "
     "<G, dW + lr wd W> < 0 per matrix of a MatrixOptimizer and per group of the other optimizers",
     "check the sign of the step in the update named above: W - lr * u (sub_, or add_ with alpha=-lr), with u "
     "pointing along the gradient"),
    ("stack_split", "-", "each MatrixOptimizer's update() gives every matrix of a stack the same result and state "
     "whole and split as 2 and 4 ranks split it (float64)",
     "reduce over each matrix only (dim=(-2, -1), keepdim=True), never over the stack's first dimension: which "
     "matrices share a stack depends on the number of GPUs (docs/writing-an-approach.md)"),
    ("ranks", "2.7", "every rank ends each trial with the same parameters and extension `state`; update() gets the "
     "gradients summed over ranks; 2 ranks give 1 rank's val losses and readouts",
     "sum every gradient over ranks before the update (main() does it for an optimizer without `owner`); an "
     "optimizer with `owner` must sum its own and hand every rank what it updated (Muon: reduce-scatter, all-gather); "
     "compute `state` the same way on every rank"),
    ("lr", "-", "every group's lr is finite and >= 0 at every optimizer step",
     "check lr_multiplier and set_hparams over all of train_steps, e.g. a decay that goes below 0 before the end"),
    ("hparams", "-", "every group's other numeric hyperparameters are finite and >= 0, momentum and betas < 1",
     "check set_hparams (and make_optimizers) over all of train_steps: the table below shows each value by step"),
    ("weights", "-", "parameters change only in before_forward, the optimizers' steps and after_step",
     "see the line above"),
    ("resume", "-", "a run stopped by SIGTERM and resumed from its checkpoint continues bitwise as the run that went on",
     "keep optimizer state in opt.state[p] or the param groups, and the extension points' in `state`: a checkpoint "
     "holds the model, every optimizer's state_dict(), `state` and the RNG; module globals and attributes of an "
     "optimizer object are lost at a resume"),
    ("architecture", "2.1, 4",
     "(a) parameter names, shapes and dtypes at full size; in float64, the forward's loss and gradients equal the baseline's",
     "restore the baseline's model classes and vocab_size, num_layers, model_dim; only the optimizer and init may "
     "change (precision-only changes are fine, RULES 4.4)"),
    ("data", "2.1",
     "(b) the train stream (1 and 2 ranks, across shards) and the val set equal the baseline's, a gap in the train "
     "shards is refused at launch; main() trains on them",
     "restore distributed_data_generator, load_data_shard, check_launch and how main() calls them"),
    ("constants", "2.1", "(c) batch_size, seq_len and val_tokens equal the baseline's",
     "restore them: batch 524,288 tokens of 1024, val_tokens 20 * 524288"),
    ("one_pass", "2.2", "(d) one forward and one backward per microbatch per optimizer step, covering the step's batch once",
     "no extra, repeated or lookahead forward/backward passes; one optimizer step per batch"),
    ("imports", "2.5", "(e) imports only the standard library, torch and triton",
     "copy the third-party code into the script instead of importing it"),
    ("log_script", "2.5", "(f) the log starts with the script's exact text and a line of 100 '='",
     "keep main()'s log(code) and log('=' * 100) at the top of the log"),
    ("log_format", "6",
     "(g) every val line has the layout of RULES 6.2; each trial validates at exactly the steps of the script's "
     "is_val_step and after its last step; the script's text never matches the public pattern",
     "keep the val line as the baseline prints it ('step:S/N val_loss:L [name:value ...] train_time:Ts step_avg:Mms') "
     "and the loop's val after the last step (RULES 6.1); no digits after 'step:' in the script's text"),
    ("hardcoded", "2.5",
     "(h) hyperparameters hard-coded: no command-line parsing, sys.argv only for the trial count, os.environ only "
     + "/".join(ALLOWED_ENV), "write hyperparameters into the script; the log must reproduce the run"),
    ("val_steer", "2.6", "(i) val never steers training: with every val loss and readout perturbed, training is "
     "bitwise the same", "no schedule, stop or hyperparameter may depend on val loss or a readout (RULES 2.6); a "
     "readout may write only its own keys of `state`, which nothing else reads"),
]
PASS, FAIL, SKIP = "PASS", "FAIL", "SKIP"


class Report:
    """The checks' statuses, details and fixes, and warnings: what a person should look at but that fails nothing."""

    def __init__(self):
        self.checks = {cid: dict(id=cid, rule=rule, check=what, status=SKIP, detail="not run", fix=fix)
                       for cid, rule, what, fix in CHECKS}
        self.warnings = []

    def warn(self, cid, text):
        if dict(check=cid, text=text) not in self.warnings:
            self.warnings.append(dict(check=cid, text=text))

    def set(self, cid, status, detail, fix=None):
        self.checks[cid].update(status=status, detail=detail)
        if fix:
            self.checks[cid]["fix"] = fix

    def ok(self):
        return not any(c["status"] == FAIL for c in self.checks.values())


def _clip(items, n=5):
    items = list(items)
    return ", ".join(map(str, items[:n])) + (f" and {len(items) - n} more" if len(items) > n else "")


def _groups(gs):
    if len(gs) > 1 and gs == list(range(gs[0], gs[-1] + 1)):
        return f"{gs[0]}-{gs[-1]}"
    return ",".join(map(str, gs))


def _merge(labelled):
    """[(run label, problem)] with the runs that share a problem said once: 'short, long: problem'."""
    merged = collections.OrderedDict()
    for label, problem in labelled:
        merged.setdefault(problem, []).append(label)
    lines = [f"{', '.join(labels)}: {problem}" for problem, labels in merged.items()]
    return lines[:2] + ([f"and {len(lines) - 2} more like these"] if len(lines) > 2 else [])


def stall_text(run):
    """A run killed at its time limit: the limit, and where each rank was (the status file its hub kept)."""
    places = [f"rank {r.get('rank')} was {r['where']}" for r in run["results"] if r.get("where")]
    text = (f"stalled: not done after {run['limit_s']:.0f} s (its limit: {run['limit_why']}), killed"
            + ("; " + "; ".join(places) if places else "; it never reached main()"))
    output = (run.get("outputs") or [""])[0].strip()
    return text + ("\n  last output:\n" + "\n".join(output.splitlines()[-10:]) if output else "")
