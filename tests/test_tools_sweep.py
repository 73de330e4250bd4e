"""tools.sweep: variants that differ from the script by one literal, the journal, the launch plan (run here with a
fake torchrun), and the report: the runs' table, the seed noise from logs, the differences beyond it."""
import difflib
import importlib.util
import json
import os
import shutil
import subprocess
import sys

import pytest

from tools_logtext import RECORD46, ROOT, curve, log_text, write
from tools import sweep

SCRIPT = os.path.join(ROOT, "train_gpt_simple.py")
RECORD = os.path.join(ROOT, "records", "20260619_cwd_rowfloor_tailema", "train_gpt_simple.py")


def run(capsys, *argv, code=0):
    capsys.readouterr()
    got = sweep.main([str(a) for a in argv])
    out, err = capsys.readouterr()
    assert got == code, (out, err)
    return out, err


def source():
    with open(SCRIPT) as f:
        return f.read()


def changed_lines(a, b):
    return [line for line in difflib.unified_diff(a.splitlines(), b.splitlines(), lineterm="", n=0)
            if line[:1] in "+-" and not line.startswith(("+++", "---"))]


# --- names -------------------------------------------------------------------------------------------------------

def test_the_names_of_the_baseline():
    found, ambiguous = sweep.literals(source())
    values = {name: lit.text(source().splitlines()) for name, lit in found.items()}
    assert values == {"train_steps": "3250", "normal_.std": "1.0", "std": "1.0", "dict.lr#1": "0.7",
                      "dict.lr#2": "0.004", "dict.lr#3": "0.015", "AdamW.betas": "(0.8, 0.95)", "betas": "(0.8, 0.95)",
                      "AdamW.eps": "1e-10", "eps": "1e-10", "AdamW.weight_decay": "0.001", "AdamW.fused": "True",
                      "fused": "True", "Muon.lr": "0.025", "Muon.weight_decay": "0.05", "Muon.mu": "0.95", "mu": "0.95"}
    assert ambiguous == {"lr": ["dict.lr#1", "dict.lr#2", "dict.lr#3", "Muon.lr"],
                         "weight_decay": ["AdamW.weight_decay", "Muon.weight_decay"],
                         "dict.lr": ["dict.lr#1", "dict.lr#2", "dict.lr#3"]}


def test_the_names_of_record_46_tuple_assignments():
    with open(RECORD) as f:
        found, _ = sweep.literals(f.read())
    assert {k: found[k].value for k in ("lr_cool_end", "lr_cool_power", "lookahead_rest", "tail_ema_blend")} == {
        "lr_cool_end": 2900, "lr_cool_power": 1.2, "lookahead_rest": 950, "tail_ema_blend": 0.6}
    assert "dict.lr" in found and found["dict.lr"].value == 0.3  # lr=1 / 320 is an expression, not a literal


def test_list(capsys):
    out, _ = run(capsys, SCRIPT, "--list")
    lines = out.splitlines()
    at = source().splitlines().index("train_steps = 3250") + 1
    assert lines[1].split() == ["train_steps", "3250", "line", f"{at}:", "train_steps", "=", "3250"]
    assert any(line.split()[:4] == ["Muon.mu", "=", "mu", "0.95"] for line in lines)
    assert lines[-1].split() == ["weight_decay", "ambiguous:", "AdamW.weight_decay,", "Muon.weight_decay"]


@pytest.mark.parametrize("args, message", [
    (["--set", "nope=1", "--out", "o"], "error: no literal 'nope' in the Init & Optim Hyperparams section; the names "
     "there: AdamW.betas, AdamW.eps, AdamW.fused, AdamW.weight_decay, Muon.lr, Muon.mu, Muon.weight_decay, betas, "
     "dict.lr, dict.lr#1, dict.lr#2, dict.lr#3, eps, fused, lr, mu, normal_.std, std, train_steps, weight_decay (a "
     "constant inside an expression cannot be swept: make it a module-level assignment in that section first)"),
    (["--set", "lr=0.1", "--out", "o"], "error: lr is ambiguous: it names 4 literals: dict.lr#1, dict.lr#2, dict.lr#3, "
     "Muon.lr; pick one (--list shows their lines)"),
    (["--set", "Muon.lr", "--out", "o"], "error: --set 'Muon.lr': expected NAME=V1,V2,... (python -m tools.sweep "
     "SCRIPT --list shows the names)"),
    (["--set", "Muon.lr=0.1,1/3", "--out", "o"], "error: --set Muon.lr: '1/3' is not a Python literal (a number, "
     "True/False, None, a string or a tuple of them)"),
    (["--set", "Muon.lr='x'", "--out", "o"], "error: --set Muon.lr: \"'x'\" is a str, but Muon.lr is 0.025 (a number)"),
    (["--set", "fused=1", "--out", "o"], "error: --set fused: '1' is a number, but fused is True (True or False)"),
    (["--set", "train_steps=3000.0", "--out", "o"], "error: --set train_steps: '3000.0': a whole number >= 1"),
    (["--set", "train_steps=0", "--out", "o"], "error: --set train_steps: '0': a whole number >= 1"),
    (["--set", "betas=(0.9,0.95,0.1)", "--out", "o"], "error: --set betas: '(0.9,0.95,0.1)' is a tuple of 3, but "
     "betas is (0.8, 0.95) (a tuple of 2)"),
    (["--set", "mu=0.9,0.9", "--out", "o"], "error: --set mu: a value is given twice"),
    (["--set", "mu=0.9", "--set", "Muon.mu=0.8", "--out", "o"], "error: two --set name the same literal"),
    (["--set", "mu=0.9"], "error: give --out DIR: where the variants, the journal and the launch plan go"),
    (["--out", "o"], "error: nothing to sweep: give --set NAME=V1,V2,... (--list shows the names)"),
    (["--set", "mu=0.9", "--seeds", "1,x", "--out", "o"], "error: --seeds '1,x': whole numbers from 0 to 2**63 - 1, "
     "comma-separated (each is one run: SEED=s ... 1)"),
    (["--set", "mu=0.9", "--seeds", "1,1", "--out", "o"], "error: --seeds '1,1': a seed is given twice"),
    (["--set", "mu=0.9", "--per-run", "3", "--out", "o"], "error: --per-run 3: 1, 2, 4 or 8 GPUs per run (the "
     "script's world sizes)"),
    (["--set", "mu=0.9", "--gpus", "6", "--per-run", "4", "--out", "o"], "error: --gpus 6 is not a multiple of "
     "--per-run 4"),
])
def test_bad_input(tmp_path, capsys, monkeypatch, args, message):
    monkeypatch.chdir(tmp_path)
    _, err = run(capsys, SCRIPT, *args, code=2)
    assert err == message + "\n"
    assert os.listdir(tmp_path) == []  # nothing written


def test_bad_scripts(tmp_path, capsys):
    path = write(tmp_path / "x.py", "x = 1\n")
    _, err = run(capsys, path, "--list", code=2)
    assert err == ("error: no `# Init & Optim Hyperparams` section (a `# ----` line, then a line starting with `# Init "
                   "& Optim Hyperparams`): is this a copy of the harness's train_gpt_simple.py?\n")
    path = write(tmp_path / "y.py", "# " + "-" * 40 + "\n# Init & Optim Hyperparams\nx = (\n")
    _, err = run(capsys, path, "--list", code=2)
    assert err.startswith("error: the script does not parse: line 3: ")
    _, err = run(capsys, tmp_path / "missing.py", "--list", code=2)
    assert err == f"error: {tmp_path / 'missing.py'}: No such file or directory\n"


# --- writing a sweep ---------------------------------------------------------------------------------------------

def test_three_values(tmp_path, capsys):
    out_dir = tmp_path / "sw"
    out, err = run(capsys, SCRIPT, "--set", "Muon.lr=0.02,0.025,0.03", "--seeds", "0,1", "--out", out_dir,
                   "--gpus", "8", "--per-run", "2")
    names = ["01_Muon.lr=0.02", "02_Muon.lr=0.025", "03_Muon.lr=0.03"]
    assert sorted(os.listdir(out_dir)) == names + ["console", "journal.jsonl", "launch.sh", "slurm.sbatch"]
    old = "                lr=0.025, weight_decay=0.05, mu=0.95)"  # the second line of make_optimizers' Muon(...)
    for name, value in zip(names, ("0.02", "0.025", "0.03")):
        with open(out_dir / name / "train_gpt_simple.py") as f:
            new = f.read()
        expected = [] if value == "0.025" else ["-" + old, "+" + old.replace("lr=0.025", f"lr={value}")]
        assert changed_lines(source(), new) == expected  # that literal, nothing else
        assert sweep.static_problems(new) == []
    journal = [json.loads(line) for line in (out_dir / "journal.jsonl").read_text().splitlines()]
    assert [(e["variant"], e["values"], e["seeds"], e["status"]) for e in journal] == [
        (n, {"Muon.lr": v}, [0, 1], "written") for n, v in zip(names, ("0.02", "0.025", "0.03"))]
    import hashlib
    assert {e["script_sha256"] for e in journal} == {hashlib.sha256(source().encode()).hexdigest()}
    assert journal[0]["original"] == {"Muon.lr": "0.025"}
    assert out.splitlines()[6] == ("  SEED=0 CUDA_VISIBLE_DEVICES=0,1 torchrun --standalone --nproc_per_node=2 "
                                   f"{out_dir}/01_Muon.lr=0.02/train_gpt_simple.py 1")
    launch = (out_dir / "launch.sh").read_text()
    assert "(export CUDA_VISIBLE_DEVICES=0,1; run 01_Muon.lr=0.02 0; run 02_Muon.lr=0.025 1) &\n" in launch
    assert "(export CUDA_VISIBLE_DEVICES=6,7; run 01_Muon.lr=0.02 1) &\nwait\n" in launch
    slurm = (out_dir / "slurm.sbatch").read_text()
    assert "#SBATCH --array=0-5\n" in slurm and "#SBATCH --gres=gpu:2\n" in slurm
    assert "JOBS=('01_Muon.lr=0.02 0' '02_Muon.lr=0.025 0' '03_Muon.lr=0.03 0' '01_Muon.lr=0.02 1'" in slurm
    for script in ("launch.sh", "slurm.sbatch"):
        subprocess.run(["bash", "-n", str(out_dir / script)], check=True)
    # again into the same directory: the same variants exist, nothing is overwritten, the journal grows
    out, _ = run(capsys, SCRIPT, "--set", "Muon.lr=0.02,0.025,0.03", "--seeds", "0,1", "--out", out_dir)
    assert [line.split()[1] for line in out.splitlines()[1:4]] == ["exists"] * 3
    assert len((out_dir / "journal.jsonl").read_text().splitlines()) == 6


def test_one_sweep_per_directory(tmp_path, capsys):
    run(capsys, SCRIPT, "--set", "mu=0.9,0.8", "--out", tmp_path / "s")
    before = {p: p.read_bytes() for p in (tmp_path / "s").rglob("*") if p.is_file()}
    _, err = run(capsys, SCRIPT, "--set", "mu=0.9", "--out", tmp_path / "s", code=2)
    assert err == f"error: {tmp_path / 's'} holds another sweep (01_Muon.mu=0.9, 02_Muon.mu=0.8); give this one its own --out\n"
    assert {p: p.read_bytes() for p in (tmp_path / "s").rglob("*") if p.is_file()} == before


def test_the_plan_packs_runs(tmp_path):
    jobs = sweep.plan_jobs(["a", "b", "c"], [7], 8, 4)
    assert jobs == [("a", 7, "0,1,2,3", 0), ("b", 7, "4,5,6,7", 1), ("c", 7, "0,1,2,3", 0)]
    assert [j[2] for j in sweep.plan_jobs(["a"], [1, 2, 3], 8, 1)] == ["0", "1", "2"]
    assert [j[2] for j in sweep.plan_jobs(["a", "b"], [1], 8, 8)] == ["0,1,2,3,4,5,6,7"] * 2


def test_a_grid_and_tuples(tmp_path, capsys):
    run(capsys, SCRIPT, "--set", "dict.lr#2=0.004,0.006", "--set", "betas=(0.8, 0.95),(0.9,0.99)", "--out",
        tmp_path / "g", "--gpus", "1", "--per-run", "1")
    names = sorted(n for n in os.listdir(tmp_path / "g") if n[:2].isdigit())
    assert names == ["01_dict.lr_2=0.004__AdamW.betas=_0.8_0.95", "02_dict.lr_2=0.004__AdamW.betas=_0.9_0.99",
                     "03_dict.lr_2=0.006__AdamW.betas=_0.8_0.95", "04_dict.lr_2=0.006__AdamW.betas=_0.9_0.99"]
    with open(tmp_path / "g" / names[3] / "train_gpt_simple.py") as f:
        new = f.read()
    assert changed_lines(source(), new) == [
        "-                              dict(params=[model.proj.weight], lr=0.004),",
        "+                              dict(params=[model.proj.weight], lr=0.006),",
        "-                             betas=(0.8, 0.95), eps=1e-10, weight_decay=0.001, fused=True)",
        "+                             betas=(0.9,0.99), eps=1e-10, weight_decay=0.001, fused=True)"]


def _module(path, name):
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_train_steps_scales_the_baselines_schedules(tmp_path, capsys):
    _, err = run(capsys, SCRIPT, "--set", "train_steps=1625", "--out", tmp_path / "t", "--seeds", "0")
    assert err == ("note: train_steps: the section has no other literal 3250: its schedules follow train_steps, so "
                   "replacing the literal is the whole change\n")
    base = _module(SCRIPT, "sweep_base")
    half = _module(str(tmp_path / "t" / "01_train_steps=1625" / "train_gpt_simple.py"), "sweep_half")
    assert half.train_steps == 1625
    assert [half.lr_multiplier(s) for s in range(0, 1626)] == [base.lr_multiplier(2 * s) for s in range(0, 1626)]
    assert [s for s in range(1626) if half.is_val_step(s)] == [s // 2 for s in range(0, 3251, 2) if base.is_val_step(s)]


def test_train_steps_warns_of_absolute_schedules(tmp_path, capsys):
    _, err = run(capsys, RECORD, "--set", "train_steps=2800", "--out", tmp_path / "t", "--seeds", "0")
    assert err.startswith("warning: train_steps: 2 literal(s) of the section equal train_steps 2900 and stay as they "
                          "are in every variant")
    record = open(RECORD).read().splitlines()
    cool, tail = (1 + next(i for i, line in enumerate(record) if line.startswith(s)) for s in ("lr_cool_end, ",
                                                                                                "tail_ema_start, "))
    assert f"line {cool}: lr_cool_end, lr_cool_power = 2900, 1.2" in err and f"line {tail}: tail_ema_start, " in err


def test_a_variant_that_fails_the_static_checks_is_kept_in_the_journal(tmp_path, capsys):
    text = source().replace("train_steps = 3250\n", "train_steps = 3250\nnote = 'plain'\n")
    path = write(tmp_path / "train_gpt_simple.py", text)
    out, err = run(capsys, path, "--set", "note='ok','step:1/2 val_loss:3.0'", "--out", tmp_path / "s", code=1)
    assert err == (f"error: 1 of 2 variant(s) failed (kept in {tmp_path / 's' / 'journal.jsonl'}); no launch plan "
                   "written\n")
    journal = [json.loads(line) for line in (tmp_path / "s" / "journal.jsonl").read_text().splitlines()]
    at = text.splitlines().index("note = 'plain'") + 1
    assert journal[0]["status"] == "written"
    assert journal[1]["status"] == (f"failed: static checks: log_format: line {at}: note = 'step:1/2 val_loss:3.0'")
    assert f"  failed: static checks: log_format: line {at}" in out
    assert not (tmp_path / "s" / "launch.sh").exists()
    assert not (tmp_path / "s" / "02_note=_step_1_2_val_loss_3.0_").exists()


def test_never_overwrites_a_variant(tmp_path, capsys):
    run(capsys, SCRIPT, "--set", "mu=0.9", "--out", tmp_path / "s")
    path = tmp_path / "s" / "01_Muon.mu=0.9" / "train_gpt_simple.py"
    path.write_text("edited by hand\n")
    out, _ = run(capsys, SCRIPT, "--set", "mu=0.9", "--out", tmp_path / "s", code=1)
    assert f"  failed: {path} exists with other content; not overwritten (use another --out)" in out
    assert path.read_text() == "edited by hand\n"
    statuses = [json.loads(line)["status"] for line in (tmp_path / "s" / "journal.jsonl").read_text().splitlines()]
    assert statuses == ["written", f"failed: {path} exists with other content; not overwritten (use another --out)"]


FAKE_TORCHRUN = r'''#!{python}
"""A stand-in for torchrun: writes the log the training script would (its text, then one trial) and prints its path."""
import os, sys
sys.path.insert(0, {tests!r})
from tools_logtext import curve, log_text
script = sys.argv[-2]
seed = int(os.environ["SEED"])
if "0.03" in script and seed == 1:
    print("RuntimeError: CUDA out of memory", file=sys.stderr)
    sys.exit(1)
os.makedirs("logs", exist_ok=True)
path = os.path.abspath(f"logs/{{abs(hash((script, seed)))}}.txt")
print(f"logging to {{path}}")
with open(script) as f:
    text = f.read()
final = 3.2790 - 0.001 * ("0.025" in script) - 0.002 * ("0.03" in script) + 0.0002 * seed
with open(path, "w") as f:
    f.write(log_text([{{"points": curve(round(final, 5)), "seed": seed}}], script=text,
                     header="devices " + os.environ["CUDA_VISIBLE_DEVICES"] + " nproc " + sys.argv[2]))
'''


def test_the_launch_plan_runs(tmp_path, capsys):
    """launch.sh with a fake torchrun: each run's log lands in its variant's directory, the journal says how each
    run ended (a failed one too), and the report reads them."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    fake = bin_dir / "torchrun"
    fake.write_text(FAKE_TORCHRUN.format(python=sys.executable, tests=os.path.join(ROOT, "tests")))
    fake.chmod(0o755)
    work = tmp_path / "repo"
    work.mkdir()
    os.symlink(os.path.join(ROOT, "tools"), work / "tools")
    shutil.copy(SCRIPT, work / "train_gpt_simple.py")
    env = dict(os.environ, PATH=f"{bin_dir}:{os.path.dirname(sys.executable)}:{os.environ['PATH']}", PYTHONPATH=ROOT)
    subprocess.run([sys.executable, "-m", "tools.sweep", "train_gpt_simple.py", "--set", "Muon.lr=0.02,0.025,0.03",
                    "--seeds", "0,1", "--out", "sweeps/lr", "--gpus", "4", "--per-run", "2"], cwd=work, env=env,
                   check=True, capture_output=True)
    done = subprocess.run(["bash", "sweeps/lr/launch.sh"], cwd=work, env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    sweep_dir = work / "sweeps" / "lr"
    journal = [json.loads(line) for line in (sweep_dir / "journal.jsonl").read_text().splitlines()]
    runs = sorted((e["variant"], e["seed"], e["status"]) for e in journal if e["event"] == "run")
    assert runs == [("01_Muon.lr=0.02", 0, "finished"), ("01_Muon.lr=0.02", 1, "finished"),
                    ("02_Muon.lr=0.025", 0, "finished"), ("02_Muon.lr=0.025", 1, "finished"),
                    ("03_Muon.lr=0.03", 0, "finished"), ("03_Muon.lr=0.03", 1, "failed: exit status 1")]
    logs = {name: sorted(f for f in os.listdir(sweep_dir / name) if f.endswith(".txt"))
            for name in ("01_Muon.lr=0.02", "02_Muon.lr=0.025", "03_Muon.lr=0.03")}
    assert [len(v) for v in logs.values()] == [2, 2, 1]
    headers = sorted(open(sweep_dir / n / f).read().split("=" * 100)[1].strip() for n, fs in logs.items() for f in fs)
    assert headers == ["devices 0,1 nproc --nproc_per_node=2"] * 3 + ["devices 2,3 nproc --nproc_per_node=2"] * 2
    assert "CUDA out of memory" in (sweep_dir / "console" / "03_Muon.lr=0.03_seed1.out").read_text()
    out, _ = run(capsys, "report", sweep_dir)
    assert "failed run: 03_Muon.lr=0.03 seed 1: failed: exit status 1 (console: sweeps/lr/console/" in out


# --- the report --------------------------------------------------------------------------------------------------

def make_sweep(tmp_path, capsys, finals, seeds=(0, 1, 2), values=("0.02", "0.025", "0.03")):
    """A sweep of Muon.lr whose variants hold logs with these final losses: finals[variant][k] for seed k."""
    d = tmp_path / "sw"
    run(capsys, SCRIPT, "--set", "Muon.lr=" + ",".join(values), "--seeds", ",".join(map(str, seeds)), "--out", d)
    names = sorted(n for n in os.listdir(d) if n[:2].isdigit())
    for name, runs in zip(names, finals):
        with open(d / name / "train_gpt_simple.py") as f:
            script = f.read()
        for seed, final in zip(seeds, runs):
            if final is not None:
                write(d / name / f"seed{seed}.txt", log_text([{"points": curve(final), "seed": seed}], script=script))
    return d, names


def test_report_with_public_baseline_noise(tmp_path, capsys):
    d, names = make_sweep(tmp_path, capsys, [[3.2800, 3.2790, 3.2810], [3.2780, 3.2770, 3.2790],
                                             [3.2755, 3.2740, 3.2765]])
    out, _ = run(capsys, "report", d, "--baseline", RECORD46, "--plot", tmp_path / "p.png")
    lines = out.splitlines()
    assert lines[0] == f"sweep {d}: 3 variants, 9 runs; reference 02_Muon.lr=0.025"
    assert lines[1] == "metric: val_loss"
    lines = lines[:1] + lines[2:]
    assert lines[1] == (f"noise: sigma 0.00095 (seed std of the final val_loss at step 2765, n = 8, from --baseline "
                        f"{RECORD46})")
    assert lines[4].split() == ["01_Muon.lr=0.02", "0", "3250", "3.28000", "3250", "complete"]
    assert lines[5].split() == ["01_Muon.lr=0.02", "1", "3125", "3.27900", "3250", "complete"]
    assert lines[6].split()[:4] == ["01_Muon.lr=0.02", "2", "never", "3.28100"]
    assert lines[10].split()[:3] == ["03_Muon.lr=0.03", "0", "2750"]
    summary = {line.split()[0]: line for line in lines[15:18]}
    assert summary["02_Muon.lr=0.025"].split()[1:7] == ["3", "3.27800", "0.00100", "3250", "-", "reference"]
    assert summary["01_Muon.lr=0.02"].endswith("+0.00200 +- 0.00078 (paired over 3 seed(s) at step 3250, z +2.6): within the noise")
    assert summary["03_Muon.lr=0.03"].endswith("-0.00267 +- 0.00078 (paired over 3 seed(s) at step 3250, z -3.4): lower, beyond "
                                               "the noise")
    assert summary["03_Muon.lr=0.03"].split()[1:6] == ["3", "3.27533", "0.00126", "3250", "3050"]  # claim: tools.stats
    assert (tmp_path / "p.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    data = json.loads(run(capsys, "report", d, "--baseline", RECORD46, "--json")[0])
    assert data["noise"]["n"] == 8 and data["noise"]["sigma"] == pytest.approx(0.000949, abs=5e-6)
    v3 = data["variants"][2]
    assert v3["vs_ref"]["seeds"] == [0, 1, 2] and v3["vs_ref"]["beyond"] is True
    assert v3["vs_ref"]["delta"] == pytest.approx(-0.0026667, abs=1e-6)
    assert [r["steps_to_3_28"] for r in v3["runs"]] == [2750, 2500, 2875]
    out, _ = run(capsys, "report", d, "--baseline", RECORD46, "--z", "2")
    assert "z +2.6): higher, beyond the noise" in out


def test_report_noise_from_the_reference_variant(tmp_path, capsys):
    d, names = make_sweep(tmp_path, capsys, [[3.2800, None, None], [3.2780, 3.2770, 3.2790], [None, 3.2740, 3.2760]])
    # the reference variant (the script's own value, 0.025) gives the noise: std of 3.278, 3.277, 3.279
    out, _ = run(capsys, "report", d, "--ref", names[1])
    assert "noise: sigma 0.00100 (seed std of the final val_loss at step 3250, n = 3, from the reference variant " \
           "02_Muon.lr=0.025)" in out
    assert "+0.00200 +- 0.00141 (paired over 1 seed(s) at step 3250, z +1.4): within the noise" in out
    assert "-0.00300 +- 0.00100 (paired over 2 seed(s) at step 3250, z -3.0): lower, beyond the noise" in out


def test_report_unpaired_with_the_public_curve(tmp_path, capsys):
    d, names = make_sweep(tmp_path, capsys, [[3.2800], [3.2780]], seeds=(0,), values=("0.02", "0.025"))
    text = (d / names[0] / "seed0.txt").read_text().replace("trial 1/1 seed 0", "trial 1/1 seed 9")
    (d / names[0] / "seed0.txt").write_text(text)
    out, _ = run(capsys, "report", d)
    assert ("noise: sigma 0.00134 (seed std of the final val_loss at step 3250, n = 10, from the public baseline's "
            "runs (tools/reference/baseline_curve.csv))") in out
    assert "+0.00200 +- 0.00190 (unpaired, 1 vs 1 runs at step 3250, z +1.1): within the noise" in out


def test_report_finds_logs_by_their_script(tmp_path, capsys):
    d, names = make_sweep(tmp_path, capsys, [[], [3.2780, 3.2770, 3.2790], []])
    logs = tmp_path / "logs"
    logs.mkdir()
    with open(d / names[0] / "train_gpt_simple.py") as f:
        write(logs / "u1.txt", log_text([{"points": curve(3.2795), "seed": 0}], script=f.read()))
    write(logs / "other.txt", log_text([{"points": curve(3.2700), "seed": 0}]))  # another script: nobody's
    data = json.loads(run(capsys, "report", d, "--logs", logs, "--json")[0])
    assert [len(v["runs"]) for v in data["variants"]] == [1, 3, 0]
    assert data["variants"][0]["runs"][0]["final"] == 3.2795


def test_report_errors(tmp_path, capsys):
    _, err = run(capsys, "report", tmp_path, code=2)
    assert err == (f"error: {tmp_path / 'journal.jsonl'}: No such file or directory: not a sweep directory (python -m "
                   "tools.sweep writes it)\n")
    d, names = make_sweep(tmp_path, capsys, [[], [], []])
    _, err = run(capsys, "report", d, code=1)
    assert err.startswith(f"no runs yet: no training log in the variants' directories under {d}")
    write(d / names[0] / "s.txt", log_text([{"points": curve(3.2780), "seed": 0}]))
    _, err = run(capsys, "report", d, "--ref", "nope", code=2)
    assert err == f"error: --ref nope: not a variant of {d} ({', '.join(names)})\n"
    one = write(tmp_path / "one.txt", log_text([{"points": curve(3.2780), "seed": 0}]))
    _, err = run(capsys, "report", d, "--baseline", one, code=2)
    assert err == "error: --baseline: 1 run: the seed noise needs at least 2\n"
    _, err = run(capsys, "report", d, "--baseline", tmp_path / "nothing", code=2)
    assert err.startswith("error: --baseline: no training log among")
    with open(d / "journal.jsonl", "a") as f:
        f.write("{not json\n")
    _, err = run(capsys, "report", d, code=2)
    assert err == f"error: {d / 'journal.jsonl'}:4: not a JSON line\n"


def test_mark(tmp_path, capsys):
    run(capsys, SCRIPT, "--set", "mu=0.9", "--out", tmp_path / "s")
    out, _ = run(capsys, "mark", tmp_path / "s", "01_Muon.mu=0.9", "3", "0", "--log", "logs/x.txt")
    assert out == "01_Muon.mu=0.9 seed 3: finished\n"
    _, err = run(capsys, "mark", tmp_path / "s", "02_x", "3", "0", code=2)
    assert err == f"error: 02_x: not a variant of {tmp_path / 's'} (its journal has no such variant)\n"
    last = json.loads((tmp_path / "s" / "journal.jsonl").read_text().splitlines()[-1])
    assert {k: last[k] for k in ("event", "variant", "seed", "rc", "log", "status")} == {
        "event": "run", "variant": "01_Muon.mu=0.9", "seed": 3, "rc": 0, "log": "logs/x.txt", "status": "finished"}


def test_report_compares_at_the_last_common_val_step(tmp_path, capsys):
    d, names = make_sweep(tmp_path, capsys, [[3.2800, 3.2790], [3.2780, 3.2770]], seeds=(0, 1), values=("0.02", "0.025"))
    with open(d / names[0] / "train_gpt_simple.py") as f:
        script = f.read()
    short = {s: v for s, v in curve(3.2790).items() if s <= 3000}  # seed 1 of the first variant stops at step 3000
    write(d / names[0] / "seed1.txt", log_text([{"points": short, "seed": 1}], script=script))
    data = json.loads(run(capsys, "report", d, "--json")[0])
    first = data["variants"][0]
    assert first["step"] == 3000 and first["mean"] == pytest.approx((3.2800 + 0.002 + 3.2790 + 0.002) / 2, abs=1e-9)
    assert first["vs_ref"]["step"] == 3000 and first["vs_ref"]["delta"] == pytest.approx(0.0020, abs=1e-9)
    assert first["runs"][1]["status"] == "stops early at step 3000 of 3250 (no val line after it in its log)"


def test_more_bad_input(tmp_path, capsys):
    with pytest.raises(SystemExit) as e:
        sweep.main([SCRIPT, "--set", "mu=0.9", "--out", str(tmp_path / "o"), "--gpus", "0"])
    assert e.value.code == 2 and "argument --gpus: '0': a whole number >= 1" in capsys.readouterr().err
    (tmp_path / "file").write_text("")
    _, err = run(capsys, SCRIPT, "--set", "mu=0.9", "--out", tmp_path / "file" / "o", code=2)
    assert err == f"error: cannot make {tmp_path / 'file' / 'o'}: Not a directory\n"
    d = tmp_path / "s"
    d.mkdir()
    (d / "journal.jsonl").write_text('{"event": "run", "variant": "x", "status": "finished"}\n')
    _, err = run(capsys, "report", d, code=2)
    assert err == f"error: {d}: the journal lists no variant that was written\n"
    (d / "journal.jsonl").write_text("[1, 2]\n")
    _, err = run(capsys, "report", d, code=2)
    assert err == f"error: {d / 'journal.jsonl'}:1: not a JSON object\n"
    with pytest.raises(SystemExit) as e:
        sweep.main(["report", str(d), "--z", "0"])
    assert e.value.code == 2 and "argument --z: '0': a number above 0" in capsys.readouterr().err


def test_a_float_for_an_int(tmp_path, capsys):
    with open(RECORD) as f:
        text = f.read()
    path = write(tmp_path / "train_gpt_simple.py", text)
    run(capsys, path, "--set", "AdamW.weight_decay=0.01", "--out", tmp_path / "s", "--seeds", "0")
    with open(tmp_path / "s" / "01_AdamW.weight_decay=0.01" / "train_gpt_simple.py") as f:
        assert changed_lines(text, f.read())[1].endswith("betas=(0.8, 0.99), eps=1e-10, weight_decay=0.01, fused=True)"
                                                         "  # fused: one kernel")


def test_a_variant_that_cannot_be_written(tmp_path, capsys, monkeypatch):
    real_open = os.open

    def refuse(path, flags, mode=0o777):
        if str(path).endswith("train_gpt_simple.py"):
            raise PermissionError(13, "Permission denied")
        return real_open(path, flags, mode)

    monkeypatch.setattr(os, "open", refuse)
    out, err = run(capsys, SCRIPT, "--set", "mu=0.9", "--out", tmp_path / "s", code=1)
    path = tmp_path / "s" / "01_Muon.mu=0.9" / "train_gpt_simple.py"
    assert f"  failed: cannot write {path}: Permission denied" in out
    assert json.loads((tmp_path / "s" / "journal.jsonl").read_text())["status"] == \
        f"failed: cannot write {path}: Permission denied"


def test_report_on_another_metric(tmp_path, capsys):
    from tools_logtext import add_column
    d, names = make_sweep(tmp_path, capsys, [[], [], []])
    for name, offsets in zip(names, ((0.0, 0.0), (0.0, 0.0), (-0.004, -0.004))):
        with open(d / name / "train_gpt_simple.py") as f:
            script = f.read()
        for seed, final in ((0, 3.2780), (1, 3.2790)):
            text = log_text([{"points": curve(final), "seed": seed}], script=script)
            write(d / name / f"seed{seed}.txt", add_column(text, "val_ema_loss", offsets[seed] - 0.001))
    out, _ = run(capsys, "report", d, "--metric", "val_ema_loss")
    assert "metric: val_ema_loss" in out
    assert "noise: sigma 0.00071 (seed std of the final val_ema_loss at step 3250, n = 2, from the reference" in out
    assert "-0.00400 +- 0.00071 (paired over 2 seed(s) at step 3250, z -5.7): lower, beyond the noise" in out
    assert "+0.00000 +- 0.00071 (paired over 2 seed(s) at step 3250, z +0.0): within the noise" in out
    data = json.loads(run(capsys, "report", d, "--json")[0])  # on val_loss the three are the same
    assert [v["vs_ref"] and v["vs_ref"]["delta"] for v in data["variants"]] == [0.0, None, 0.0]
    _, err = run(capsys, "report", d, "--metric", "val_avg_loss", code=2)
    assert err == "error: --metric val_avg_loss: no run logs it; the columns these runs log: val_ema_loss, val_loss\n"
