"""The YAHPO Gym LCBench surrogate, read with onnxruntime (shared by the benchmarks).

The data are NOT part of this repository: they are read from ``$THRIFTY_BENCHDATA/lcbench`` (default
``../shared/benchdata/lcbench`` relative to the repository root). ``LCBench.load()`` says clearly
where it looked when they are missing.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
DEFAULT_BENCHDATA = REPO.parent / "shared" / "benchdata"

#: Continuous inputs of the model, in order (raw values).
X_CONT = ["epoch", "batch_size", "learning_rate", "momentum", "weight_decay", "num_layers", "max_units", "max_dropout"]
#: Outputs of the model, in order.
OUTPUTS = ["time", "val_accuracy", "val_cross_entropy", "val_balanced_accuracy", "test_cross_entropy",
           "test_balanced_accuracy"]
MAX_EPOCH = 52


class BenchdataMissing(RuntimeError):
    pass


def benchdata_dir() -> Path:
    return Path(os.environ.get("THRIFTY_BENCHDATA", DEFAULT_BENCHDATA))


@dataclass
class LCBench:
    """Evaluate configurations of one OpenML task at any epochs."""

    session: object
    task_code: int
    task: str
    space: dict  # name -> (low, high, log, is_int)

    @classmethod
    def load(cls, task: str) -> LCBench:
        folder = benchdata_dir() / "lcbench"
        model = folder / "model.onnx"
        if not model.exists():
            raise BenchdataMissing(
                f"the LCBench surrogate is missing: looked for {model}. Point THRIFTY_BENCHDATA at the folder "
                "that holds lcbench/ (model.onnx, encoding.json, config_space.json)."
            )
        import onnxruntime as ort

        opts = ort.SessionOptions()
        opts.intra_op_num_threads = 1
        opts.inter_op_num_threads = 1
        session = ort.InferenceSession(str(model), opts, providers=["CPUExecutionProvider"])
        encoding = json.loads((folder / "encoding.json").read_text())["OpenML_task_id"]
        cs = json.loads((folder / "config_space.json").read_text())
        tasks = next(h["choices"] for h in cs["hyperparameters"] if h["name"] == "OpenML_task_id")
        if task not in tasks:
            raise ValueError(f"task {task!r} is not one of the surrogate's tasks: {', '.join(tasks)}")
        space = {}
        for h in cs["hyperparameters"]:
            if h["name"] in ("OpenML_task_id", "epoch"):
                continue
            space[h["name"]] = (float(h["lower"]), float(h["upper"]), bool(h.get("log")), h["type"] == "uniform_int")
        return cls(session, int(encoding[task]), task, space)

    @staticmethod
    def tasks() -> list[str]:
        cs = json.loads((benchdata_dir() / "lcbench" / "config_space.json").read_text())
        return list(next(h["choices"] for h in cs["hyperparameters"] if h["name"] == "OpenML_task_id"))

    def sample(self, rng: np.random.Generator, n: int) -> list[dict]:
        """Uniform random configurations (log-uniform where the parameter is log)."""
        out = []
        for _ in range(n):
            cfg = {}
            for name, (lo, hi, log, is_int) in self.space.items():
                if is_int:
                    if log:
                        v = int(round(np.exp(rng.uniform(np.log(lo - 0.5 if lo > 0.5 else lo), np.log(hi + 0.5)))))
                        v = min(max(v, int(lo)), int(hi))
                    else:
                        v = int(rng.integers(int(lo), int(hi) + 1))
                else:
                    v = float(np.exp(rng.uniform(np.log(lo), np.log(hi)))) if log else float(rng.uniform(lo, hi))
                cfg[name] = v
            out.append(cfg)
        return out

    def evaluate(self, configs: list[dict], epochs: np.ndarray | list[int]) -> dict[str, np.ndarray]:
        """Outputs for every (config, epoch) pair: arrays of shape (len(configs), len(epochs)).

        ``time`` is made a running maximum over the epochs given (the regression is occasionally
        non-monotone), so it is the cumulative training seconds up to each epoch.
        """
        epochs = np.asarray(epochs, dtype=np.float32)
        n, m = len(configs), len(epochs)
        x = np.empty((n * m, len(X_CONT)), dtype=np.float32)
        for i, cfg in enumerate(configs):
            row = [cfg[k] for k in X_CONT[1:]]
            x[i * m:(i + 1) * m, 0] = epochs
            x[i * m:(i + 1) * m, 1:] = row
        cat = np.full((n * m, 1), self.task_code, dtype=np.int32)
        out = self.session.run(None, {"x_cont": x, "x_cat": cat})[0].reshape(n, m, len(OUTPUTS))
        res = {name: out[:, :, k].astype(float) for k, name in enumerate(OUTPUTS)}
        res["time"] = np.maximum.accumulate(np.maximum(res["time"], 0.0), axis=1)
        return res
