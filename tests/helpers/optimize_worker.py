"""A worker process for the recovery tests.

usage: optimize_worker.py URL STUDY MODE MARKER [N_WORKERS] [N_TRIALS]

MODE:
  hang     trial 3 writes MARKER and then hangs (the test kills the process with SIGKILL)
  suicide  trial 2 (first attempt) kills its own process with SIGKILL
  slow     every trial writes MARKER and takes 30 s (the test sends Ctrl-C)
  normal   every trial takes a few milliseconds
"""

import os
import signal
import sys
import time

import thrifty as th

# A program started in the background by a non-interactive shell (as some CI runners start the
# test suite) inherits SIGINT ignored; a user's program in a terminal does not. Be the latter.
signal.signal(signal.SIGINT, signal.default_int_handler)

url, name, mode, marker = sys.argv[1:5]
n_workers = int(sys.argv[5]) if len(sys.argv) > 5 else 1
n_trials = int(sys.argv[6]) if len(sys.argv) > 6 else None


def objective(trial):
    if mode == "hang" and trial.number == 3:
        open(marker, "w").close()
        time.sleep(600)
    if mode == "suicide" and trial.number == 2 and trial.retry_of is None:
        os.kill(os.getpid(), signal.SIGKILL)
    if mode == "slow":
        open(marker, "a").close()
        for step in range(300):
            time.sleep(0.1)
            trial.report(step * 0.001, step=step)
    for step in range(1, 4):
        time.sleep(0.005)
        trial.report(trial.params["x"] * step, step=step, cost_usd=0.01)
    return trial.params["x"] * 3


study = th.Study.load(name, storage=url)
study.optimize(objective, n_trials=n_trials, n_workers=n_workers, progress=False)
