"""A stdlib-only random-search child of the remote-ledger protocol: the protocol's own check
(``remote-random`` in ``benchmarks/multifidelity.py``; it must score like ``thrifty-random``'s
family, not identically: a different random stream)."""

from __future__ import annotations

import math
import random

from remote_child import RemoteLedger


def main() -> None:
    ledger = RemoteLedger()
    s = ledger.setup
    rng = random.Random(s["seed"])
    trials = 0
    while not ledger.exhausted:
        params = {}
        for name, p in s["space"].items():
            lo, hi = (math.log(p["low"]), math.log(p["high"])) if p["log"] else (p["low"], p["high"])
            x = rng.uniform(lo, hi)
            x = math.exp(x) if p["log"] else x
            params[name] = min(max(round(x), p["low"]), p["high"]) if p["type"] == "int" else x
        run = ledger.start(params)
        trials += 1
        ledger.train(run, s["max_resource"])
    ledger.done(remote_trials=trials)


if __name__ == "__main__":
    main()
