"""A process that works on a study with a dollar budget, for the ledger-sharing tests.

usage: ledger_worker.py URL STUDY BUDGET_USD N_TRIALS SLEEP_S [MARKER [WAIT_FOR]]

Creates the study (one float "x", random strategy, ``Budget(usd=BUDGET_USD)``, no metering) or
loads it if it exists, then runs ``optimize`` in this process: N_TRIALS trials (0: until the study
stops it). Each trial makes 4 reports costing $0.03125 each ($0.125 a trial, exact in binary),
sleeping SLEEP_S before each; MARKER (if given, "-" for none) is created when this process starts
its first trial; with WAIT_FOR, this process's first trial waits (up to 60 s) until that file exists
before it reports, so another process can be made to join while it runs. Prints one JSON line: the RunResult's reason, message and spend, the trial numbers this
process ran and its pid.
"""

import json
import os
import sys
import time

import thrifty as th

url, name, budget, n_trials, sleep_s = sys.argv[1], sys.argv[2], float(sys.argv[3]), int(sys.argv[4]), float(sys.argv[5])
marker = sys.argv[6] if len(sys.argv) > 6 and sys.argv[6] != "-" else None
wait_for = sys.argv[7] if len(sys.argv) > 7 else None
COST_PER_REPORT = 0.03125

study = th.Study.create(
    th.Space({"x": th.Float(0.0, 1.0)}), "max", name=name, storage=url, budget=th.Budget(usd=budget),
    load_if_exists=True,
)
ran = []


def objective(trial):
    ran.append(trial.number)
    if marker:
        open(marker, "a").close()
    if wait_for and len(ran) == 1:
        deadline = time.time() + 60
        while not os.path.exists(wait_for) and time.time() < deadline:
            time.sleep(0.01)
    for step in range(1, 5):
        time.sleep(sleep_s)
        trial.report(trial.params["x"] * step, step=step, cost_usd=COST_PER_REPORT)
    return trial.params["x"]


result = study.optimize(objective, n_trials=n_trials or None, progress=False)
print(json.dumps({"reason": result.reason, "message": result.message, "spent_usd": result.spent_usd,
                  "numbers": ran, "pid": os.getpid()}))
