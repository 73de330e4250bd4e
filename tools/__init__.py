"""Experiment tools for the Modded-NanoGPT optimization benchmark (track 3).

Each module runs as `python -m tools.<name> --help` from the repo root. By purpose (docs/tools.md):

- run & check a training script: new (scaffold an approach), launch_check (a launch's faults, before
  and after), preflight (every check on CPU), compile_check (graph breaks), tiny (library: CPU runs)
- statistics & leaderboard: logs (read logs, print a log's script), stats (the significance claim),
  results (write and check results.json), leaderboard (regenerate LEADERBOARD.md), plot (val curves)
- records & public: public_claims (dev check of the public claims), identity (library: which script
  wrote a run, how two scripts differ)
- speed & GPU: speed (time an optimizer, --balance), optimizer_share (library: a rank's share),
  gpu_check (a checklist run on a GPU machine)
- workspace: board (message board, claims, checked result markers), sweep (variants, launch
  plans, a report with the noise floor)
"""
