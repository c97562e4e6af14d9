import json
import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pfibsims.errors import PfibsimsError, UnitsError
from pfibsims.transform import Affine

params = st.fixed_dictionaries(
    {
        "rotation": st.floats(-179, 179),
        "scale": st.tuples(st.floats(0.2, 5), st.floats(0.2, 5)),
        "shear": st.floats(-0.5, 0.5),
        "shift": st.tuples(st.floats(-1e5, 1e5), st.floats(-1e5, 1e5)),
    }
)


@settings(max_examples=300, deadline=None)
@given(params, st.tuples(st.floats(-1e4, 1e4), st.floats(-1e4, 1e4)))
def test_compose_with_inverse_is_identity(p, center):
    A = Affine.from_parameters(**p, center=center)
    assert (A @ A.inverse()).is_identity(atol=1e-6)
    assert (A.inverse() @ A).is_identity(atol=1e-6)


@settings(max_examples=300, deadline=None)
@given(params)
def test_decompose_round_trips_from_parameters(p):
    A = Affine.from_parameters(**p)
    d = A.decompose()
    assert d["rotation"] == pytest.approx(p["rotation"], abs=1e-7)
    assert d["scale"] == pytest.approx(p["scale"], rel=1e-9)
    assert d["shear"] == pytest.approx(p["shear"], abs=1e-9)
    assert d["shift"] == pytest.approx(p["shift"], abs=1e-6)
    assert Affine.from_parameters(**d) == A


@settings(max_examples=200, deadline=None)
@given(params)
def test_json_and_attrs_round_trip(p):
    A = Affine.from_parameters(**p)
    assert Affine.from_json(A.to_json()) == A
    attrs = A.to_attrs({"other": 1})
    assert attrs["other"] == 1
    json.dumps(attrs)
    assert Affine.from_attrs(attrs) == A


def test_rotation_convention_by_hand():
    # +x turns towards +y; points are (y, x) in nm
    R = Affine.from_parameters(rotation=90)
    np.testing.assert_allclose(R([0, 1]), [1, 0], atol=1e-12)
    np.testing.assert_allclose(R([1, 0]), [0, -1], atol=1e-12)
    c = (100.0, 200.0)
    Rc = Affine.from_parameters(rotation=30, center=c)
    np.testing.assert_allclose(Rc(c), c)  # the centre is fixed


def test_parameters_accept_units():
    A = Affine.from_parameters(rotation="0.5 deg", shift=("2 um", "-300 nm"), center=("1 um", "1 um"))
    B = Affine.from_parameters(rotation=0.5, shift=(2000, -300), center=(1000, 1000))
    assert A == B
    assert Affine.from_parameters(rotation=f"{math.pi / 2} rad") == Affine.from_parameters(rotation=90)


def test_composition_order():
    T = Affine.translation(("10 nm", "0 nm"))
    S = Affine.from_parameters(scale=2)
    np.testing.assert_allclose((T @ S)([1, 1]), [12, 2])  # scale first, then shift
    np.testing.assert_allclose((S @ T)([1, 1]), [22, 2])


def test_apply_vectorised():
    A = Affine.from_parameters(rotation=10, scale=(1.1, 0.9), shift=(5, 6))
    pts = np.random.default_rng(0).normal(size=(4, 5, 2))
    out = A(pts)
    assert out.shape == pts.shape
    np.testing.assert_allclose(out[2, 3], A.matrix[:2, :2] @ pts[2, 3] + A.matrix[:2, 2])


def test_3d_embed_restrict_and_translation_units():
    A = Affine.from_parameters(rotation=3, shift=(10, 20))
    A3 = A.embed(("z", "y", "x"))
    np.testing.assert_allclose(A3([7.0, 1.0, 2.0]), [7.0, *A([1.0, 2.0])])
    assert A3.restrict(("y", "x")) == A
    B = Affine.from_parameters(scale=(1.5, 1, 1), shift=(60, 0, 0), dims=("z", "y", "x"))
    with pytest.raises(PfibsimsError, match="dims: the transform mixes"):
        Affine(np.array([[1, 0.1, 0, 0], [0, 1, 0, 0], [0, 0, 1, 0], [0, 0, 0, 1.0]])).restrict(("y", "x"))
    assert B.decompose()["scale"] == pytest.approx((1.5, 1.0, 1.0))
    assert Affine.from_dict({"dims": ["y", "x"], "units": "um", "matrix": np.eye(3).tolist()}) == Affine.identity()
    T = Affine.from_dict({"dims": ["y", "x"], "units": "um", "matrix": [[1, 0, 2], [0, 1, 3], [0, 0, 1]]})
    np.testing.assert_allclose(T.offset, [2000, 3000])


def test_errors_name_argument():
    with pytest.raises(PfibsimsError, match=r"matrix: expected a 3x3 or 4x4"):
        Affine(np.eye(5))
    with pytest.raises(PfibsimsError, match="scale: expected one or 2 non-zero"):
        Affine.from_parameters(scale=0)
    with pytest.raises(UnitsError, match="shift: expected a length"):
        Affine.from_parameters(shift=("1 nA", "0 nm"))
    for angle in (math.inf, -math.inf, math.nan):  # inf: a bare ValueError ('math domain error') from math.cos
        with pytest.raises(UnitsError, match="rotation: expected a finite angle such as '1.5 deg'"):
            Affine.from_parameters(rotation=angle)
    with pytest.raises(PfibsimsError, match=r"matrix: expected an invertible linear part .* of determinant 0"):
        Affine([[1, 1, 0], [1, 1, 0], [0, 0, 1]])  # refused at construction, so never resampled or inverted
    with pytest.raises(PfibsimsError, match=r"matrix: expected an invertible linear part"):
        Affine(np.zeros((2, 3)))
    with pytest.raises(PfibsimsError, match=r"matrix: expected a 3x3 or 4x4 homogeneous matrix of numbers, got 'eye'"):
        Affine("eye")
    with pytest.raises(PfibsimsError, match=r"text: expected the JSON of an Affine, .*RecursionError"):
        Affine.from_json("[" * 30000 + "]" * 30000)  # 60 kB, below the size limit: nesting is what fails
    with pytest.raises(PfibsimsError, match=r"text: expected the JSON object of an Affine"):
        Affine.from_json("[1, 2]")
    with pytest.raises(PfibsimsError, match=r"d: expected a dict with 'matrix' and 'dims'"):
        Affine.from_json('{"matrix": "abc", "dims": ["y", "x"]}')
    with pytest.raises(PfibsimsError, match=r"points: expected a last axis of 2"):
        Affine.identity()([1, 2, 3])
    with pytest.raises(PfibsimsError, match=r"other: expected an Affine on \('y', 'x'\)"):
        Affine.identity() @ Affine.identity(("z", "y", "x"))
    with pytest.raises(PfibsimsError, match=r"attrs: expected a 'pfibsims:affine' entry"):
        Affine.from_attrs({})
    with pytest.raises(PfibsimsError, match="text: expected the JSON of an Affine"):
        Affine.from_json("{not json")
    with pytest.raises(UnitsError, match="rotation: expected"):
        Affine.from_parameters(rotation="3 nm")


def test_value_semantics():
    from dask.base import tokenize

    A = Affine.from_parameters(rotation=1.0)
    B = Affine.from_parameters(rotation=1.0)
    assert A == B
    assert hash(A) == hash(B)
    assert tokenize(A) == tokenize(B)
    assert eval(repr(A), {"Affine": Affine}) == A  # noqa: S307
    with pytest.raises(ValueError, match="read-only"):
        A.matrix[0, 0] = 2
    assert A.is_identity() is False
    assert Affine.identity().is_identity()
    assert Affine.from_parameters(scale=(2, 3), shift=(1, 1)).is_axis_aligned
    assert not A.is_axis_aligned
