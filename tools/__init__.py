"""Experiment tools for the Modded-NanoGPT optimization benchmark (track 3).

Each module runs as `python -m tools.<name> --help` from the repo root:
logs (parse a training log, print its embedded script), stats (the significance claim),
results (write and check results.json), leaderboard (regenerate LEADERBOARD.md),
plot (val-loss curves), new (scaffold an approach directory), identity (which script wrote a run),
public_claims (a dev check of the public track-3 claims), board (the workspace's message board, claims
and checked result markers), sweep (hyperparameter sweeps: variants, launch plans, a report with the
noise floor), and the CPU and speed checks of the training script (preflight, compile_check, speed).
"""
