"""A worker process for the resume tests: create (or load) a sobol study and run trials.

usage: resume_worker.py URL STUDY SEED N_ASK_TELL N_OPTIMIZE

First N_ASK_TELL trials through ask/tell (two reports costing $0.01 and $0.02, then told with
$0.03 more: $0.06 a trial), then N_OPTIMIZE trials through optimize() (the two reports only:
$0.03 a trial). Prints the numbers of the trials this process ran, as JSON, on stdout.
"""

import json
import sys

import thrifty as th

url, name, seed, n_ask, n_opt = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5])
SPACE = th.Space({"x": th.Float(0.0, 1.0), "lr": th.Float(1e-4, 1e-1, log=True), "k": th.Int(1, 64)})
study = th.Study.create(SPACE, "max", name=name, storage=url, strategy="sobol", seed=seed, load_if_exists=True)
ran = []


def objective(trial):
    ran.append(trial.number)
    trial.report(trial.params["x"] / 2, step=1, cost_usd=0.01)
    trial.report(trial.params["x"], step=2, cost_usd=0.02)
    return trial.params["x"]


for _ in range(n_ask):
    t = study.ask()
    study.tell(t, objective(t), cost_usd=0.03)
if n_opt:
    study.optimize(objective, n_trials=n_opt, progress=False)
print(json.dumps(ran))
