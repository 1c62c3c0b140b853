"""A space-filling share of a model's proposals, shared by ``bohb`` and ``mfgp``.

:func:`with_spread` gives a seeded share (``fraction``) of a batch's proposals to the study's
scrambled Sobol' sequence instead of the model: whether trial ``number`` gets a Sobol' point is a
draw from ``(seed, number)`` alone, so every worker agrees, and the point is point ``number`` of
the sequence or the first after it (of 64) that is not a near-duplicate
(:data:`thrifty.encoding.NEAR`) of a tried or already proposed configuration. It keeps a model that
is wrong about a region from never looking there again, without paying twice for one answer.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from thrifty.space import ParamValue, Space
from thrifty.trial import Trial

#: ``propose(n)`` -> the model's ``n`` proposals.
ModelProposals = Callable[[int], list[dict[str, ParamValue]]]


def space_filling_turn(fraction: float, seed: int, number: int) -> bool:
    """Whether trial ``number``'s proposal is a space-filling point (probability ``fraction``)."""
    if fraction <= 0.0:
        return False
    import numpy as np

    return bool(np.random.default_rng([int(seed) & 0xFFFFFFFF, number, 0xB0B]).random() < fraction)


def fresh_sobol(space: Space, history: Sequence[Trial], taken: Sequence[dict[str, ParamValue]], *,
                seed: int, number: int) -> dict[str, ParamValue]:
    """Point ``number`` of the study's scrambled Sobol' sequence, or the first after it (of 64)
    that is not a near-duplicate of a trial in ``history`` or of ``taken`` (the first if all are)."""
    import warnings

    import numpy as np
    from scipy.stats import qmc

    from thrifty.encoding import encoder_of

    enc = encoder_of(space)
    engine = qmc.Sobol(d=space.n_dims, scramble=True, seed=np.random.default_rng(int(seed) & 0xFFFFFFFF))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # balance warnings: points taken from the middle on purpose
        if number:
            engine.fast_forward(number)
        pts = enc.snap(engine.random(64))
    known = [t.params for t in history] + list(taken)
    near = enc.near_duplicates(pts, enc.snap(enc.encode(known))) if known else np.zeros(len(pts), dtype=bool)
    pick = int(np.argmin(near))  # the first fresh point (the first point if none is)
    return enc.decode(np.nan_to_num(pts[pick:pick + 1], nan=0.5))[0]


def with_spread(model: ModelProposals, fraction: float, space: Space, history: Sequence[Trial], *,
                seed: int, number: int, n: int) -> list[dict[str, ParamValue]]:
    """``n`` proposals for trials ``number .. number + n - 1``: the space-filling ones (see
    :func:`space_filling_turn`) in their places, the model's in the others."""
    spread = [space_filling_turn(fraction, seed, number + j) for j in range(n)]
    if not any(spread):
        return model(n)
    out = model(n - sum(spread)) if not all(spread) else []
    for j, flag in enumerate(spread):
        if flag:
            out.insert(j, fresh_sobol(space, history, out, seed=seed, number=number + j))
    return out
