"""`Affine`: affine maps of physical coordinates (nm), never of pixel indices.

An `Affine` acts on points whose components follow its ``dims`` (``("y",
"x")`` in-plane, or ``("z", "y", "x")``), in nanometres.  Because it works on
physical coordinates it does not change when a pixel size does.

Direction convention (the whole library keeps it): a transform that
:func:`pfibsims.register` returns, or that :func:`pfibsims.resample` takes,
*pulls*: it maps a point of the target (fixed) frame to the matching point of
the source (moving) frame, as ITK's fixed-to-moving transform and
``scipy.ndimage.affine_transform`` do.

Angles: ``rotation`` is in degrees and turns the +x axis towards +y.  With
image rows (y) pointing down the screen, a positive angle turns clockwise on
screen.
"""

from __future__ import annotations

import json
import math
import numbers
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from .errors import PfibsimsError, UnitsError
from .grid import SPATIAL_DIMS
from .units import LENGTH_UNIT, lengths_nm, parse_quantity

__all__ = ["Affine"]

_ATTR = "pfibsims:affine"


def _matrix(m: Any, ndim: int | None = None) -> np.ndarray:
    try:
        a = np.array(m, dtype=np.float64)
    except (TypeError, ValueError, OverflowError):
        raise PfibsimsError(f"matrix: expected a 3x3 or 4x4 homogeneous matrix of numbers, got {m!r:.80}") from None
    if a.ndim != 2 or a.shape[0] not in (a.shape[1], a.shape[1] - 1) or a.shape[1] not in (3, 4):
        raise PfibsimsError(
            f"matrix: expected a 3x3 or 4x4 homogeneous matrix (or its top 2x3 / 3x4 rows), got shape {a.shape}"
        )
    n = a.shape[1] - 1
    if a.shape[0] == n:
        a = np.vstack([a, np.eye(n + 1)[-1]])
    if not np.allclose(a[-1], np.eye(n + 1)[-1]):
        raise PfibsimsError(f"matrix: expected a last row of {np.eye(n + 1)[-1].tolist()}, got {a[-1].tolist()}")
    if not np.all(np.isfinite(a)):
        raise PfibsimsError("matrix: expected finite values, found NaN or inf")
    linear = a[:n, :n]
    if not abs(np.linalg.det(linear)) > 1e-12 * max(1.0, float(np.abs(linear).max())) ** n:
        raise PfibsimsError(
            f"matrix: expected an invertible linear part (a transform maps the plane onto itself), got "
            f"{linear.tolist()} of determinant {np.linalg.det(linear):.3g}; every point would land on a line or a point"
        )
    return a


def _angle_deg(value: Any, name: str) -> float:
    if isinstance(value, numbers.Real):
        if not math.isfinite(value):  # math.cos(inf) raised a bare ValueError ('math domain error')
            raise UnitsError(f"{name}: expected a finite angle such as '1.5 deg', got {value!r}")
        return float(value)
    return float(parse_quantity(value, "deg", default_unit="deg", name=name).magnitude)


@dataclass(frozen=True, eq=False, repr=False, init=False)
class Affine:
    """An immutable affine map of physical points in nm.

    Parameters
    ----------
    matrix : array_like
        The homogeneous ``(n+1, n+1)`` matrix (or its top ``n`` rows), acting
        on column vectors ``(p_0, ..., p_{n-1}, 1)`` ordered as ``dims``.
        Translations are in nm.
    dims : sequence of str, optional
        The axes, ``("y", "x")`` for a 3x3 matrix and ``("z", "y", "x")`` for
        a 4x4 one by default.

    Notes
    -----
    ``(A @ B)(p) == A(B(p))``. Two transforms are equal when their matrices
    agree to 1e-9 (relative) and their dims match.

    Examples
    --------
    >>> T = Affine.from_parameters(rotation=90, shift=("1 um", "0 um"))
    >>> T([0.0, 1.0]).round(9) + 0.0  # (y, x) in nm: +x turns to +y, then shifts
    array([1001.,    0.])
    >>> (T @ T.inverse()).is_identity()
    True
    """

    matrix: np.ndarray
    dims: tuple[str, ...]

    def __init__(self, matrix: Any, dims: Sequence[str] | None = None) -> None:
        m = _matrix(matrix)
        n = m.shape[0] - 1
        dims = SPATIAL_DIMS[3 - n :] if dims is None else tuple(dims)
        if len(dims) != n or any(d not in SPATIAL_DIMS for d in dims):
            raise PfibsimsError(f"dims: expected {n} names from {SPATIAL_DIMS}, got {dims}")
        m.setflags(write=False)
        object.__setattr__(self, "matrix", m)
        object.__setattr__(self, "dims", dims)

    # -- constructors -------------------------------------------------------
    @classmethod
    def identity(cls, dims: Sequence[str] = ("y", "x")) -> Affine:
        """The identity on ``dims``."""
        return cls(np.eye(len(dims) + 1), dims)

    @classmethod
    def translation(cls, shift: Any, dims: Sequence[str] = ("y", "x")) -> Affine:
        """A pure translation by ``shift`` (lengths per axis, in ``dims`` order).

        Examples
        --------
        >>> Affine.translation(("10 nm", "0.02 um"))([0, 0])
        array([10., 20.])
        """
        dims = tuple(dims)
        m = np.eye(len(dims) + 1)
        m[:-1, -1] = lengths_nm(shift, len(dims), default_unit=LENGTH_UNIT, name="shift")
        return cls(m, dims)

    @classmethod
    def from_parameters(
        cls,
        *,
        rotation: Any = 0.0,
        scale: Any = 1.0,
        shear: float = 0.0,
        shift: Any = 0.0,
        center: Any = 0.0,
        dims: Sequence[str] = ("y", "x"),
    ) -> Affine:
        """Build ``p -> R S_h S (p - c) + c + t`` from physical parameters.

        Parameters
        ----------
        rotation : float or str
            In-plane angle in degrees (``1.5`` or ``"1.5 deg"``), turning +x
            towards +y.
        scale : float or (sy, sx) or (sz, sy, sx)
            Dimensionless scale factors per axis (in ``dims`` order).
        shear : float
            In-plane shear ``m``: ``x' = x + m y`` before rotation.
        shift : length or sequence of lengths
            Translation ``t`` in ``dims`` order (``("2 um", "3 um")``; numbers in nm).
        center : length or sequence of lengths
            The fixed point ``c`` of rotation, shear and scaling.
        dims : ("y", "x") or ("z", "y", "x")
            For 3-D the rotation and shear act in the y-x plane; z is scaled
            and shifted only.

        Examples
        --------
        >>> A = Affine.from_parameters(rotation=1.5, scale=1.02, shift=("2 um", "-1 um"))
        >>> {k: round(float(v), 6) for k, v in A.decompose().items() if k == "rotation"}
        {'rotation': 1.5}
        """
        dims = tuple(dims)
        n = len(dims)
        if dims not in (("y", "x"), ("z", "y", "x")):
            raise PfibsimsError(f"dims: expected ('y', 'x') or ('z', 'y', 'x'), got {dims}")
        theta = math.radians(_angle_deg(rotation, "rotation"))
        sc = np.broadcast_to(np.asarray(scale, dtype=float), (n,)) if np.ndim(scale) == 0 else np.asarray(scale, float)
        if sc.shape != (n,) or np.any(sc == 0) or not np.all(np.isfinite(sc)):
            raise PfibsimsError(f"scale: expected one or {n} non-zero finite factors, got {scale!r}")
        c, s = math.cos(theta), math.sin(theta)
        # In (y, x) order: x' = c x - s y, y' = s x + c y.
        rot = np.array([[c, s], [-s, c]])
        sh = np.array([[1.0, 0.0], [shear, 1.0]])  # x' = x + shear * y
        lin2 = rot @ sh @ np.diag(sc[-2:])
        lin = np.eye(n)
        lin[-2:, -2:] = lin2
        if n == 3:
            lin[0, 0] = sc[0]
        cen = np.asarray(lengths_nm(center, n, default_unit=LENGTH_UNIT, name="center"))
        t = np.asarray(lengths_nm(shift, n, default_unit=LENGTH_UNIT, name="shift"))
        m = np.eye(n + 1)
        m[:n, :n] = lin
        m[:n, n] = cen - lin @ cen + t
        return cls(m, dims)

    # -- algebra ------------------------------------------------------------
    @property
    def ndim(self) -> int:
        return len(self.dims)

    @property
    def linear(self) -> np.ndarray:
        """The ``(n, n)`` linear part (dimensionless)."""
        return self.matrix[:-1, :-1]

    @property
    def offset(self) -> np.ndarray:
        """The translation part in nm."""
        return self.matrix[:-1, -1]

    def __matmul__(self, other: Affine) -> Affine:
        if not isinstance(other, Affine):
            return NotImplemented
        if other.dims != self.dims:
            raise PfibsimsError(f"other: expected an Affine on {self.dims}, got one on {other.dims}")
        return Affine(self.matrix @ other.matrix, self.dims)

    def inverse(self) -> Affine:
        """The inverse map.

        Raises
        ------
        PfibsimsError
            When the linear part is singular.
        """
        if abs(np.linalg.det(self.linear)) < 1e-12:
            raise PfibsimsError("transform: expected an invertible affine, got a singular linear part")
        return Affine(np.linalg.inv(self.matrix), self.dims)

    def __call__(self, points: Any) -> np.ndarray:
        """Apply to points of shape ``(..., ndim)`` in nm (ordered as ``dims``)."""
        p = np.asarray(points, dtype=np.float64)
        if p.shape[-1:] != (self.ndim,):
            raise PfibsimsError(f"points: expected a last axis of {self.ndim} ({self.dims}), got shape {p.shape}")
        return p @ self.linear.T + self.offset

    def is_identity(self, atol: float = 1e-9) -> bool:
        """Whether this is the identity (linear part within ``atol``, shift within ``atol`` nm)."""
        return bool(np.allclose(self.matrix, np.eye(self.ndim + 1), rtol=0, atol=atol))

    @property
    def is_axis_aligned(self) -> bool:
        """True when the linear part is diagonal (scaling and shifting only)."""
        lin = self.linear
        return bool(np.allclose(lin - np.diag(np.diag(lin)), 0, atol=1e-12))

    def embed(self, dims: Sequence[str] = SPATIAL_DIMS) -> Affine:
        """This transform on more axes, acting as the identity on the new ones.

        Examples
        --------
        >>> Affine.translation((5, 6)).embed(("z", "y", "x"))([0, 0, 0])
        array([0., 5., 6.])
        """
        dims = tuple(dims)
        if not set(self.dims) <= set(dims):
            raise PfibsimsError(f"dims: expected a superset of {self.dims}, got {dims}")
        n = len(dims)
        m = np.eye(n + 1)
        idx = [dims.index(d) for d in self.dims] + [n]
        m[np.ix_(idx, idx)] = self.matrix
        return Affine(m, dims)

    def restrict(self, dims: Sequence[str]) -> Affine:
        """The action on a subset of axes; raises if those axes mix with the others."""
        dims = tuple(dims)
        idx = [self.dims.index(d) for d in dims]
        rest = [i for i in range(self.ndim) if i not in idx]
        lin = self.linear
        if rest and (np.any(np.abs(lin[np.ix_(idx, rest)]) > 1e-12) or np.any(np.abs(lin[np.ix_(rest, idx)]) > 1e-12)):
            raise PfibsimsError(f"dims: the transform mixes {dims} with the other axes and cannot be restricted")
        m = self.matrix[np.ix_(idx + [self.ndim], idx + [self.ndim])]
        return Affine(m, dims)

    # -- parameters ---------------------------------------------------------
    def decompose(self) -> dict[str, Any]:
        """Rotation (deg), scale, shear and shift, such that
        ``Affine.from_parameters(**A.decompose(), dims=A.dims) == A``.

        The shift returned is with ``center=0``. A reflection shows as a
        negative ``scale`` along the first in-plane axis (y).
        """
        lin2 = self.linear[-2:, -2:]
        if self.ndim == 3 and (
            np.any(np.abs(self.linear[0, 1:]) > 1e-12) or np.any(np.abs(self.linear[1:, 0]) > 1e-12)
        ):
            raise PfibsimsError("transform: decompose() needs z not mixed with y, x (an in-plane rotation)")
        # Columns in (y, x) order; lin2 = rot @ [[sy, 0], [shear*sy, sx]].
        col_x = lin2[:, 1]  # image of the x unit vector: (s sx, c sx) -> rotation and sx
        sx = float(np.hypot(*col_x))
        theta = math.atan2(col_x[0], col_x[1])
        c, s = math.cos(theta), math.sin(theta)
        rot = np.array([[c, s], [-s, c]])
        rest = rot.T @ lin2  # [[sy, 0], [shear*sy, sx]]
        sy = float(rest[0, 0])
        shear = float(rest[1, 0] / sy)
        scale = (sy, sx) if self.ndim == 2 else (float(self.linear[0, 0]), sy, sx)
        return {
            "rotation": math.degrees(theta),
            "scale": scale,
            "shear": shear,
            "shift": tuple(float(v) for v in self.offset),
        }

    # -- serialisation ------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict: ``{"dims", "units", "matrix"}``."""
        return {"type": "Affine", "dims": list(self.dims), "units": LENGTH_UNIT, "matrix": self.matrix.tolist()}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> Affine:
        """Inverse of :meth:`to_dict`; translations are converted from ``d["units"]``."""
        try:
            m = np.array(d["matrix"], dtype=float)
            dims = tuple(d["dims"])
            units = d.get("units", LENGTH_UNIT)
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise PfibsimsError(f"d: expected a dict with 'matrix' and 'dims', got {d!r} ({exc})") from None
        factor = lengths_nm(f"1 {units}", 1, name="units")[0]
        if factor != 1.0:
            m[:-1, -1] *= factor
        return cls(m, dims)

    def to_json(self) -> str:
        """The transform as a JSON string (see :meth:`from_json`).

        Examples
        --------
        >>> A = Affine.from_parameters(rotation=2, shift=(30, 40))
        >>> Affine.from_json(A.to_json()) == A
        True
        """
        return json.dumps(self.to_dict())

    @classmethod
    def from_json(cls, text: str) -> Affine:
        """Parse the output of :meth:`to_json`."""
        if isinstance(text, str) and len(text) > 1 << 16:
            raise PfibsimsError(f"text: expected the JSON of an Affine (a few hundred characters), got {len(text)} characters")
        try:
            d = json.loads(text)
        except (TypeError, ValueError, RecursionError) as exc:
            raise PfibsimsError(f"text: expected the JSON of an Affine, got {text!r:.80} ({type(exc).__name__}: {str(exc)[:80]})") from None
        if not isinstance(d, Mapping):
            raise PfibsimsError(f"text: expected the JSON object of an Affine, got {text!r:.80}")
        return cls.from_dict(d)

    def to_attrs(self, attrs: Mapping[str, Any] | None = None, key: str = _ATTR) -> dict[str, Any]:
        """A copy of ``attrs`` holding this transform (as JSON) under ``key``."""
        out = dict(attrs or {})
        out[key] = self.to_json()
        return out

    @classmethod
    def from_attrs(cls, attrs: Mapping[str, Any], key: str = _ATTR) -> Affine:
        """Read a transform stored by :meth:`to_attrs`."""
        if key not in attrs:
            raise PfibsimsError(f"attrs: expected a '{key}' entry holding an Affine, found keys {sorted(attrs)}")
        value = attrs[key]
        return cls.from_dict(value) if isinstance(value, Mapping) else cls.from_json(value)

    # -- value semantics ----------------------------------------------------
    def isclose(self, other: Any, rtol: float = 1e-9, atol: float = 1e-9) -> bool:
        """Same dims and matrices within tolerance (translations in nm)."""
        return (
            isinstance(other, Affine)
            and other.dims == self.dims
            and bool(np.allclose(self.matrix, other.matrix, rtol=rtol, atol=atol))
        )

    def __eq__(self, other: object) -> bool:
        return self.isclose(other)

    def __hash__(self) -> int:
        return hash(self.dims)

    def __repr__(self) -> str:
        rows = ", ".join("[" + ", ".join(f"{v:.12g}" for v in row) + "]" for row in self.matrix)
        return f"Affine([{rows}], dims={self.dims})"

    def __dask_tokenize__(self) -> tuple:
        return ("pfibsims.Affine", self.dims, self.matrix.tobytes())
