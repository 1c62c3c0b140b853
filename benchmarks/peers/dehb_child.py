"""DEHB (Awad et al. 2021, ``dehb`` 0.1.2: differential evolution + Hyperband) as a child of the
remote-ledger protocol (``dehb`` in ``benchmarks/multifidelity.py``; its venv:
``bash benchmarks/peers/setup.sh venv-dehb``, because DEHB pins numpy<2).

Driven by DEHB's ask/tell interface, as its documentation shows for multi-fidelity: fidelity =
epochs, min_fidelity = setup["min_resource"], max_fidelity = setup["max_resource"], eta =
setup["eta"], one worker (no Dask). Each ``ask`` is an evaluation of a configuration at a fidelity
from scratch: a new run on the parent's ledger, trained ``round(fidelity)`` epochs and charged for
every one of them, even when DEHB has evaluated the same configuration at a lower fidelity before.
The fitness told back is ``-val_accuracy`` of the last epoch trained (DEHB minimises; DE only
compares fitnesses, so the scale does not matter), the cost the epochs trained. The loop ends when a
reply says the budget is exhausted.

DEHB spaces its fidelities geometrically down from max_fidelity: with 1..52 epochs and eta 3 they
are 52/27, 52/9, 52/3 and 52 epochs, i.e. 2, 6, 17 and 52 after rounding (never 1 epoch).
"""

from __future__ import annotations

import os
import shutil
import tempfile
from typing import Any

from remote_child import RemoteLedger


def main() -> None:
    # The ledger first: it points sys.stdout at stderr, so DEHB's loguru set-up (which takes
    # sys.stdout when DEHB is constructed) logs to stderr and never into the protocol.
    ledger = RemoteLedger()
    s = ledger.setup

    import ConfigSpace as CS
    from dehb import DEHB
    from loguru import logger

    cs = CS.ConfigurationSpace(seed=s["seed"])
    cs.add_hyperparameters([
        CS.Integer(name, (p["low"], p["high"]), log=p["log"]) if p["type"] == "int"
        else CS.Float(name, (p["low"], p["high"]), log=p["log"])
        for name, p in s["space"].items()])
    out = tempfile.mkdtemp(prefix="dehb-", dir=os.getcwd())  # DEHB writes dehb.log (and state) here
    trials, epochs = 0, 0
    try:
        dehb = DEHB(cs=cs, min_fidelity=s["min_resource"], max_fidelity=s["max_resource"], eta=s["eta"],
                    seed=int(s["seed"]), n_workers=1, output_path=out, log_level="WARNING",
                    save_freq="end")  # "end" = when run() ends: never, with ask/tell (no state files)
        while not ledger.exhausted:
            job: dict[str, Any] = dehb.ask()
            config = job["config"]
            params = {name: int(config[name]) if p["type"] == "int" else float(config[name])
                      for name, p in s["space"].items()}
            run = ledger.start(params)
            trials += 1
            accs, _ = ledger.train(run, round(job["fidelity"]))
            epochs += len(accs)
            if ledger.exhausted:  # nothing after the line counts; DEHB need not hear of it
                break
            dehb.tell(job, {"fitness": -accs[-1], "cost": float(len(accs))})
    finally:
        logger.remove()  # closes DEHB's log file (an enqueued sink) before its folder goes
        shutil.rmtree(out, ignore_errors=True)
    ledger.done(dehb_trials=trials, dehb_epochs=epochs,
                dehb_fidelities=[round(float(f)) for f in dehb.fidelities])


if __name__ == "__main__":
    main()
