"""A training program that checkpoints and resumes, for `thrifty run` with a `command:` config.

Accuracy rises with the epochs towards a ceiling set by --lr; each line reports the epoch, the
accuracy and `trained`: the epochs this model state has really been through (restored from the
checkpoint on resume). It saves {epoch, acc} to checkpoint.json before reporting each step listed
in THRIFTY_CHECKPOINT_AT, and continues from THRIFTY_START_STEP.
"""

import argparse
import json
import os
import time

ap = argparse.ArgumentParser()
ap.add_argument("--lr", type=float, required=True)
ap.add_argument("--epochs", type=int, required=True)
args = ap.parse_args()
folder = os.environ["THRIFTY_CHECKPOINT_DIR"]
start = int(float(os.environ["THRIFTY_START_STEP"]))
save_at = {int(s) for s in os.environ.get("THRIFTY_CHECKPOINT_AT", "").split(",") if s}
path = os.path.join(folder, "checkpoint.json")
trained, acc = 0, 0.0
if start:
    with open(path) as fh:
        state = json.load(fh)
    trained, acc = state["epoch"], state["acc"]
    assert trained == start, (trained, start)
for epoch in range(start + 1, args.epochs + 1):
    time.sleep(0.005)
    trained += 1
    acc += (args.lr - acc) * 0.4
    if epoch in save_at:
        with open(path + ".tmp", "w") as fh:
            json.dump({"epoch": trained, "acc": acc}, fh)
        os.replace(path + ".tmp", path)
    print(f"epoch={epoch} val_acc={acc:.6f} trained={trained}", flush=True)
