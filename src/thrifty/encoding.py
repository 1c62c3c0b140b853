"""The vectorised encoding of a search space: many parameter sets to an array and back.

Get one with :func:`thrifty.encoding.encoder_of` (cached per space). Every model uses it (the GP
strategies, ``mfgp``, ``bohb``'s inner models, TPE, the cost forecast); :meth:`Space.encode` and
:meth:`Space.decode` are its one-row forms.

**Layout.** An encoded array has shape ``(n, d)``: one row per parameter set and one column per
parameter that is not :class:`~thrifty.space.Fixed`, in the space's order
(:attr:`Encoder.columns`, a :class:`Column` each, say which parameter a column holds, its kind,
scale and number of values). Every value lies in the unit cube ``[0, 1]``:

* ``Float``: ``(v - low) / (high - low)``, or the same on ``log`` values for ``log=True``;
* ``Int``: the centre of the value's cell, ``(index + 0.5) / n_values``; with ``log=True``,
  ``log(v)`` scaled between :meth:`Int.log_bounds <thrifty.space.Int.log_bounds>`;
* ``Categorical``: the centre of the choice's cell, ``(index + 0.5) / n_choices``;
* an inactive parameter (its ``when`` condition does not hold, or it is absent): ``nan``.

**Decoding** maps *any* array (values outside ``[0, 1]`` are clipped, ``nan`` reads as 0.5) to
valid parameter sets, conditions applied, so ``decode(encode(p)) == p`` exactly for ints and
categoricals and to within rounding for floats (clipped into their bounds; the ends are exact).

**Snapping** (:meth:`Encoder.snap`) maps points of the cube to the encoding of what they decode to
(ints and categoricals at their cell centres, inactive columns ``nan``), without building the
parameter sets: what a model scores is then what would be proposed.
"""

from __future__ import annotations

import math
import weakref
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

import numpy as np

from thrifty.errors import SpaceError
from thrifty.space import Categorical, Fixed, Float, Int, Space

if TYPE_CHECKING:  # pragma: no cover
    from thrifty.space import ParamValue


@dataclass(frozen=True)
class Column:
    """One column of an encoded array.

    ``name``: the parameter it holds. ``kind``: ``"float"``, ``"int"`` or ``"categorical"``.
    ``log``: encoded on a log scale. ``n_values``: distinct values of an int, choices of a
    categorical (0 for a float). ``conditional``: the parameter has a ``when`` condition (the
    column may be ``nan``)."""

    name: str
    kind: Literal["float", "int", "categorical"]
    log: bool
    n_values: int
    conditional: bool


# A condition of the decoding program: (parent, allowed int values / choice indices) or, for a
# Fixed parent, (parent, whether its value is among the allowed ones).
_Condition = tuple[str, "np.ndarray | bool"]


#: Two configurations are *near-duplicates* when every active numeric column (float or int, unit
#: cube, log scale where the parameter is log) differs by at most this much, every categorical is
#: the same choice and the same parameters are active: 1% of each parameter's range. Ints whose
#: cells are wider than that must be equal. Used by the model-based strategies (never propose a
#: near-duplicate of an observed point on a deterministic objective) and by the benchmarks' count
#: of full trainings paid twice.
NEAR = 0.01


class Encoder:
    """Encodes and decodes parameter sets of one space, many at a time (see the module doc)."""

    def __init__(self, space: Space) -> None:
        self.space = space
        self.names: tuple[str, ...] = space.dim_names
        self.n_dims = len(self.names)
        index = {n: i for i, n in enumerate(self.names)}
        columns = []
        for n in self.names:
            p = space[n]
            if isinstance(p, Float):
                columns.append(Column(n, "float", p.log, 0, bool(p.when)))
            elif isinstance(p, Int):
                columns.append(Column(n, "int", p.log, p.n_values, bool(p.when)))
            else:
                assert isinstance(p, Categorical)
                columns.append(Column(n, "categorical", False, len(p.choices), bool(p.when)))
        self.columns: tuple[Column, ...] = tuple(columns)
        #: Column indices of the floats and ints (continuous in the cube), of the categoricals and
        #: of the conditional parameters.
        self.continuous = np.array([i for i, c in enumerate(columns) if c.kind != "categorical"], dtype=int)
        self.categorical = np.array([i for i, c in enumerate(columns) if c.kind == "categorical"], dtype=int)
        self.conditional = np.array([i for i, c in enumerate(columns) if c.conditional], dtype=int)
        #: Whether some column is an int or a categorical.
        self.has_discrete = any(c.kind != "float" for c in columns)
        # The decoding program: space order (parents first), each parameter's column (-1 for a
        # Fixed one) and what its condition needs.
        self._program: list[tuple[str, Any, int, list[_Condition]]] = []
        for n, p in space.items():
            conds: list[_Condition] = []
            for parent, values in p.when:
                pp = space[parent]
                if isinstance(pp, Categorical):
                    conds.append((parent, np.array(sorted({pp.index(v) for v in values}))))
                elif isinstance(pp, Int):
                    conds.append((parent, np.array(sorted({int(v) for v in values}))))
                else:
                    assert isinstance(pp, Fixed)
                    conds.append((parent, any(pp.contains(v) for v in values)))
            self._program.append((n, p, index.get(n, -1), conds))
        self._params = [space[n] for n in self.names]

    def column(self, name: str) -> int:
        """The column of parameter ``name`` (a :class:`~thrifty.errors.SpaceError` for a fixed or
        unknown one)."""
        try:
            return self.names.index(name)
        except ValueError:
            raise SpaceError(f"parameter {name!r} has no column; the columns are {', '.join(self.names)}") from None

    # -- parameter sets to arrays --------------------------------------------------------------
    def encode(self, params: Sequence[Mapping[str, Any]]) -> np.ndarray:
        """The encodings of parameter sets, shape ``(len(params), n_dims)``; a parameter absent from
        a set (inactive) is ``nan``. Values are taken as valid (see :meth:`Space.validate`)."""

        x = np.full((len(params), self.n_dims), np.nan)
        for i, (name, p) in enumerate(zip(self.names, self._params)):
            rows = [r for r, q in enumerate(params) if name in q]
            if not rows:
                continue
            vals = [params[r][name] for r in rows]
            if isinstance(p, Float):
                if p.log:
                    x[rows, i] = [p.to_unit(v) for v in vals]
                else:
                    x[rows, i] = (np.array(vals, dtype=float) - p.low) / (p.high - p.low)
            elif isinstance(p, Categorical) or p.log:
                x[rows, i] = [p.to_unit(v) for v in vals]
            else:
                ints = np.array([int(v) for v in vals], dtype=np.int64)
                x[rows, i] = ((ints - p.low) // p.step + 0.5) / p.n_values
        return x

    # -- arrays to parameter sets --------------------------------------------------------------
    def decode(self, x: np.ndarray | Sequence[Sequence[float]]) -> list[dict[str, ParamValue]]:
        """Valid parameter sets (conditions applied, space order) of the rows of ``x``, shape
        ``(n, n_dims)``: values are clipped into ``[0, 1]`` and ``nan`` reads as 0.5."""

        x = np.asarray(x, dtype=float)
        if x.ndim != 2 or x.shape[1] != self.n_dims:
            raise SpaceError(f"decode: expected an array of shape (n, {self.n_dims}), got {x.shape}")
        m = len(x)
        u = np.clip(np.where(np.isnan(x), 0.5, x), 0.0, 1.0)
        active: dict[str, np.ndarray] = {}
        keyed: dict[str, np.ndarray] = {}  # int values / choice indices, for conditions
        program: list[tuple[str, list[Any], list[bool] | None]] = []
        for name, p, i, conds in self._program:
            act = self._active(m, conds, active, keyed)
            active[name] = act
            if i < 0:
                assert isinstance(p, Fixed)
                program.append((name, [p.value] * m, None if act.all() else act.tolist()))
                continue
            col = u[:, i]
            values: list[Any]
            if isinstance(p, Float):
                values = self._decode_float(p, col)
            elif isinstance(p, Categorical):
                idx = np.minimum((col * len(p.choices)).astype(int), len(p.choices) - 1)
                keyed[name] = idx
                values = [p.choices[j] for j in idx.tolist()]
            elif p.log:
                values = [p.from_unit(c) for c in col.tolist()]
                keyed[name] = np.array(values, dtype=np.int64)
            else:
                idx = np.minimum((col * p.n_values).astype(int), p.n_values - 1)
                ints = p.low + idx * p.step
                keyed[name] = ints
                values = ints.tolist()
            program.append((name, values, None if act.all() else act.tolist()))
        out: list[dict[str, ParamValue]] = []
        for r in range(m):
            row: dict[str, ParamValue] = {}
            for name, values, act_list in program:
                if act_list is not None and not act_list[r]:
                    continue
                row[name] = values[r]
            out.append(row)
        return out

    @staticmethod
    def _decode_float(p: Any, col: np.ndarray) -> list[float]:
        """A float column's values (as :meth:`Float.from_unit <thrifty.space.Float.from_unit>`)."""
        if p.log:
            return [p.from_unit(c) for c in col.tolist()]
        v = np.minimum(np.maximum(p.low + col * (p.high - p.low), p.low), p.high)
        v = np.where(col == 0.0, p.low, np.where(col == 1.0, p.high, v))
        return v.tolist()

    @staticmethod
    def _active(m: int, conds: list[_Condition], active: dict[str, np.ndarray],
                keyed: dict[str, np.ndarray]) -> np.ndarray:
        """Which of ``m`` rows satisfy ``conds``, given the parents' activity and values."""
        act = np.ones(m, dtype=bool)
        for parent, allowed in conds:
            act &= active[parent]
            if isinstance(allowed, np.ndarray):
                act &= np.isin(keyed[parent], allowed)
            elif not allowed:
                act[:] = False
        return act

    # -- points of the cube as the model sees them ------------------------------------------------
    def snap(self, u: np.ndarray) -> np.ndarray:
        """The rows of ``u`` (points of the cube; ``nan`` reads as 0.5) re-encoded as what they
        decode to: ints and categoricals at their cell centres, inactive columns ``nan``."""

        u = np.clip(np.nan_to_num(np.atleast_2d(np.asarray(u, dtype=float)), nan=0.5), 0.0, 1.0)
        m = len(u)
        x = np.full_like(u, np.nan)
        active: dict[str, np.ndarray] = {}
        keyed: dict[str, np.ndarray] = {}
        for name, p, i, conds in self._program:
            act = self._active(m, conds, active, keyed)
            active[name] = act
            if i < 0:
                continue
            col = u[:, i]
            if isinstance(p, Float):
                xi = col
            elif isinstance(p, Int) and not p.log:
                idx = np.minimum((col * p.n_values).astype(int), p.n_values - 1)
                keyed[name] = p.low + idx * p.step
                xi = (idx + 0.5) / p.n_values
            elif isinstance(p, Int):
                lo, hi = p.log_bounds()
                v = np.clip(np.rint(np.exp(lo + col * (hi - lo))), p.low, p.high)
                keyed[name] = v.astype(int)
                xi = (np.log(v) - lo) / (hi - lo)
            else:
                k = len(p.choices)
                idx = np.minimum((col * k).astype(int), k - 1)
                keyed[name] = idx
                xi = (idx + 0.5) / k
            x[:, i] = np.where(act, xi, np.nan)
        return x

    @staticmethod
    def keys(x: np.ndarray) -> list[bytes]:
        """Hashable keys of snapped points (rows of ``x``), equal for equal points (``nan`` equal
        to ``nan``, values rounded to 9 decimals): for duplicate checks."""
        return [row.tobytes() for row in np.round(np.nan_to_num(x, nan=-1.0), 9)]

    def cell_edges(self, i: int) -> np.ndarray:
        """The edges in ``[0, 1]`` of the cells of int column ``i``'s values (``n_values + 1`` of
        them; on the log scale for a log int, the ends being exactly 0 and 1)."""
        p = self._params[i]

        assert isinstance(p, Int)
        if not p.log:
            return np.linspace(0.0, 1.0, p.n_values + 1)
        lo, hi = p.log_bounds()
        vals = np.arange(p.low, p.high + 1, dtype=float)
        e = (np.log(np.r_[vals - 0.5, p.high + 0.5]) - lo) / (hi - lo)
        e[0], e[-1] = 0.0, 1.0
        return e

    def neighbours(self, u: np.ndarray, x: np.ndarray) -> np.ndarray:
        """Points of the cube one discrete step from a point (``u`` in the cube, ``x`` its snapped
        form): every other choice of each active categorical, the next value up and down of each
        active int. Shape ``(k, n_dims)``."""
        out = []
        for i, col in enumerate(self.columns):
            if np.isnan(x[i]) or col.kind == "float":
                continue
            k = col.n_values
            if col.kind == "categorical":
                cur = min(int(x[i] * k), k - 1)
                for c in range(k):
                    if c != cur:
                        v = u.copy()
                        v[i] = (c + 0.5) / k
                        out.append(v)
            elif not col.log:
                cur = min(int(x[i] * k), k - 1)
                for c in (cur - 1, cur + 1):
                    if 0 <= c < k:
                        v = u.copy()
                        v[i] = (c + 0.5) / k
                        out.append(v)
            else:  # log int: the values next to the current one
                p = self._params[i]
                lo, hi = p.log_bounds()
                cur = int(round(math.exp(lo + x[i] * (hi - lo))))
                for c in (cur - 1, cur + 1):
                    if p.low <= c <= p.high:
                        v = u.copy()
                        v[i] = (math.log(c) - lo) / (hi - lo)
                        out.append(v)
        return np.array(out) if out else np.empty((0, self.n_dims))

    def near_duplicates(self, x: np.ndarray, points: np.ndarray, tol: float = NEAR) -> np.ndarray:
        """For each snapped row of ``x``, whether some snapped row of ``points`` is its
        near-duplicate (:data:`NEAR`: every active numeric column within ``tol``, every categorical
        the same choice, the same columns active). Shapes ``(m, d)``, ``(n, d)``; ``(m,)`` booleans."""
        x = np.atleast_2d(np.asarray(x, dtype=float))
        points = np.asarray(points, dtype=float).reshape(-1, self.n_dims)
        out = np.zeros(len(x), dtype=bool)
        if not len(x) or not len(points):
            return out
        width = np.full(self.n_dims, tol + 1e-12)
        width[self.categorical] = 1e-9  # a categorical is the same choice or not
        p_nan = np.isnan(points)
        p_val = np.nan_to_num(points, nan=-1.0)
        for start in range(0, len(x), 256):  # (256, n, d) at a time: bounded memory
            xb = x[start:start + 256]
            close = np.abs(np.nan_to_num(xb, nan=-1.0)[:, None, :] - p_val[None, :, :]) <= width
            same_active = np.isnan(xb)[:, None, :] == p_nan[None, :, :]
            out[start:start + 256] = np.any(np.all(close & same_active, axis=2), axis=1)
        return out

    def first_not_near(self, x: np.ndarray, order: np.ndarray, points: np.ndarray) -> int | None:
        """The first index of ``order`` whose snapped row of ``x`` is no near-duplicate
        (:meth:`near_duplicates`) of a row of ``points``, checked 64 at a time; ``None`` if all are."""
        for start in range(0, len(order), 64):
            chunk = order[start:start + 64]
            fresh = chunk[~self.near_duplicates(x[chunk], points)]
            if len(fresh):
                return int(fresh[0])
        return None

    def all_points(self, limit: int) -> np.ndarray | None:
        """Every snapped point of an all-discrete space (in the order of the product of the
        columns' values, duplicates made by conditions dropped), or ``None`` if the space has a
        float or more than ``limit`` combinations of its columns' values."""
        if any(c.kind == "float" for c in self.columns):
            return None
        total = 1
        for c in self.columns:
            total *= c.n_values
            if total > limit:
                return None
        grids = []
        for i, c in enumerate(self.columns):
            k = c.n_values
            if c.kind == "int" and c.log:
                p = self._params[i]
                lo, hi = p.log_bounds()
                grids.append(np.array([(math.log(v) - lo) / (hi - lo) for v in p.values()]))
            else:
                grids.append((np.arange(k) + 0.5) / k)
        mesh = np.stack(np.meshgrid(*grids, indexing="ij"), axis=-1).reshape(-1, self.n_dims)
        x = self.snap(mesh)
        _, first = np.unique(np.nan_to_num(x, nan=-1.0), axis=0, return_index=True)
        return x[np.sort(first)]


_ENCODERS: weakref.WeakKeyDictionary[Space, Encoder] = weakref.WeakKeyDictionary()


def encoder_of(space: Space) -> Encoder:
    """The :class:`Encoder` of ``space``, built once per space (equal spaces share one)."""
    enc = _ENCODERS.get(space)
    if enc is None:
        enc = _ENCODERS[space] = Encoder(space)
    return enc
