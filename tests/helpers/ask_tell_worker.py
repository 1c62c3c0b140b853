"""A worker process for the concurrency tests: ask/tell N trials on a shared study.

usage: ask_tell_worker.py URL STUDY N OUT_JSON GO_FILE
Waits until GO_FILE exists (so all workers start together), then records every trial it was
handed (number and params) in OUT_JSON.
"""

import json
import os
import sys
import time

import thrifty as th

url, name, n, out, go = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4], sys.argv[5]
study = th.Study.load(name, storage=url)
while not os.path.exists(go):
    time.sleep(0.01)
handed = []
for _ in range(n):
    t = study.ask()
    handed.append({"number": t.number, "params": dict(t.params), "pid": os.getpid()})
    study.tell(t, float(t.number), cost_usd=0.001)
with open(out, "w") as fh:
    json.dump(handed, fh)
