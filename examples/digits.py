"""The demo workload: a small neural network on scikit-learn's handwritten digits.

Each trial trains an ``MLPClassifier`` for up to 20 epochs with ``partial_fit`` and reports the
validation accuracy after every epoch (``step`` = epochs trained). thrifty meters its cost from the
study's pricing (see digits.yaml): the objective reports no dollars itself.
"""

from __future__ import annotations

import warnings

import numpy as np
from sklearn.datasets import load_digits
from sklearn.exceptions import ConvergenceWarning
from sklearn.model_selection import train_test_split
from sklearn.neural_network import MLPClassifier
from sklearn.preprocessing import StandardScaler

EPOCHS = 20

_DATA = None


def _data():
    global _DATA
    if _DATA is None:
        x, y = load_digits(return_X_y=True)
        x_train, x_val, y_train, y_val = train_test_split(x, y, test_size=0.3, random_state=0, stratify=y)
        scaler = StandardScaler().fit(x_train)
        _DATA = scaler.transform(x_train), scaler.transform(x_val), y_train, y_val
    return _DATA


def objective(trial):
    """Train for up to EPOCHS epochs; report validation accuracy and cost after each."""
    x_train, x_val, y_train, y_val = _data()
    p = trial.params
    model = MLPClassifier(
        hidden_layer_sizes=(p["units"],) * p["layers"],
        activation=p["activation"],
        solver=p["solver"],
        learning_rate_init=p["lr"],
        alpha=p["alpha"],
        momentum=p.get("momentum", 0.9),
        batch_size=p["batch_size"],
        random_state=trial.number,
    )
    classes = np.unique(y_train)
    rng = np.random.default_rng(trial.number)
    accuracy = 0.0
    for epoch in range(1, EPOCHS + 1):
        order = rng.permutation(len(x_train))
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            model.partial_fit(x_train[order], y_train[order], classes=classes)
        accuracy = float(model.score(x_val, y_val))
        trial.report({"accuracy": accuracy}, step=epoch)
        if trial.should_stop():
            return None
    return {"accuracy": accuracy}
