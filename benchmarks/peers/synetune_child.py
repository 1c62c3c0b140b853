"""Syne Tune's asynchronous BOHB as a child of the remote-ledger protocol (``synetune-bohb`` in
``benchmarks/multifidelity.py``; runs in ``benchmarks/_work/venv-synetune``, made by
``bash benchmarks/peers/setup.sh venv-synetune``).

The scheduler is ``syne_tune.optimizer.baselines.BOHB`` (0.16: ``AsynchronousSuccessiveHalving``
with the ``"kde"`` searcher, i.e. stopping-type ASHA, one bracket, the KDE fitted to each trial's
latest value), with the documented defaults for everything not set by the benchmark. It is driven
directly in a single-worker loop, as Syne Tune's ``Tuner`` drives it (``suggest`` /
``on_trial_add`` / ``on_trial_result`` per epoch / ``on_trial_remove`` on STOP or PAUSE /
``on_trial_complete`` at ``max_t``), instead of through its simulator backend: for one worker that
is the same sequence of calls, and every epoch goes through the parent's ledger, which enforces the
same hard budget as for every other method.
"""

from __future__ import annotations

import datetime
import logging
import os
from typing import Any

from remote_child import RemoteLedger


def config_space(space: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """The protocol's search space as a Syne Tune config space."""
    from syne_tune import config_space as cs

    make = {("int", False): cs.randint, ("int", True): cs.lograndint,
            ("float", False): cs.uniform, ("float", True): cs.loguniform}
    return {n: make[p["type"], bool(p["log"])](p["low"], p["high"]) for n, p in space.items()}


def main() -> None:
    ledger = RemoteLedger()  # first: its stdout redirect must be in place before Syne Tune loads
    os.environ.setdefault("SYNETUNE_FOLDER", os.path.join(os.getcwd(), "synetune"))
    logging.getLogger("syne_tune").setLevel(logging.WARNING)  # its INFO chatter off; the log keeps warnings

    import numpy as np
    from syne_tune.backend.trial_status import Trial
    from syne_tune.optimizer.baselines import BOHB
    from syne_tune.optimizer.scheduler import SchedulerDecision

    s = ledger.setup
    # 0.16's KDE searcher draws its random configurations (until its KDEs can be fitted, then a third of
    # them) from numpy's global generator, which neither BOHB nor the Tuner seeds: seed it, or no run repeats.
    np.random.seed(s["seed"])
    space = config_space(s["space"])
    scheduler = BOHB(space, metric="val_acc", do_minimize=False, time_attr="epoch", max_t=s["max_resource"],
                     grace_period=s["min_resource"], reduction_factor=s["eta"], random_seed=s["seed"])
    trials: dict[int, Trial] = {}  # Syne Tune trial id -> its Trial
    runs: dict[int, int] = {}  # Syne Tune trial id -> the ledger's run id
    full = stopped = paused = resumed = 0
    while not ledger.exhausted:
        suggestion = scheduler.suggest()
        if suggestion is None:  # the searcher ran out of configurations (not in a continuous space)
            break
        if suggestion.spawn_new_trial_id:
            if suggestion.checkpoint_trial_id is not None:
                raise NotImplementedError("warm-starting a new trial from another's checkpoint")
            trial = Trial(trial_id=len(trials), config=suggestion.config, creation_time=datetime.datetime.now())
            params = {n: int(v) if s["space"][n]["type"] == "int" else float(v)
                      for n, v in suggestion.config.items() if n in s["space"]}
            trials[trial.trial_id], runs[trial.trial_id] = trial, ledger.start(params)
            scheduler.on_trial_add(trial)
        else:  # resume a paused trial where it stopped: the ledger charges only its new epochs
            trial = trials[suggestion.checkpoint_trial_id]
            if suggestion.config is not None and suggestion.config != trial.config:
                raise NotImplementedError("resuming a trial with a changed configuration")
            resumed += 1
        while True:
            accs, epoch = ledger.train(runs[trial.trial_id], 1)
            if not accs:  # the budget line was already crossed
                break
            result = {"epoch": epoch, "val_acc": accs[-1]}
            decision = scheduler.on_trial_result(trial, result)
            if epoch >= s["max_resource"]:
                scheduler.on_trial_complete(trial, result)
                full += 1
                break
            if decision in (SchedulerDecision.STOP, SchedulerDecision.PAUSE):
                scheduler.on_trial_remove(trial)  # as the Tuner does on either decision
                stopped += decision == SchedulerDecision.STOP
                paused += decision == SchedulerDecision.PAUSE
                break
            if ledger.exhausted:
                break
    ledger.done(synetune_trials=len(trials), synetune_full=full, synetune_stopped=stopped,
                synetune_paused=paused, synetune_resumed=resumed)


if __name__ == "__main__":
    main()
