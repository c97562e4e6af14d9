"""match_slices: slices of two stacks paired by depth, against hand-made depth lists."""

import numpy as np
import pytest

from pfibsims.dataset import stack
from pfibsims.errors import DataModelError, PfibsimsError
from pfibsims.resampling import match_slices
from pfibsims.resampling.slices import describe


def _stack(z, name="Li6"):
    return stack({name: np.zeros((len(z), 2, 2))}, pixel_size="72 nm", z=[f"{v} nm" for v in z])


def test_uneven_runs_pair_by_nearest_depth_within_half_a_slice():
    eds = _stack([0, 58, 121, 179, 240], "Zr_La")  # measured, uneven
    sims = _stack([3, 119, 185, 300])  # a map skipped at ~60 nm, one beyond the EDS run
    m = match_slices(eds, sims)
    assert m.tolerance_nm == pytest.approx(0.5 * np.median([58, 63, 58, 61]))  # the finer run's median step / 2
    assert (m.reference, m.other) == ((0, 2, 3), (0, 1, 2))
    assert m.unmatched_reference == (1, 4)
    assert m.unmatched_other == (3,)
    assert m.offsets_nm == (3.0, -2.0, 6.0)
    assert not m.one_to_one
    assert describe(m) == ("sims slices [3] have no eds slice within 29.75 nm and are left out; "
                           "eds slices [1, 4] have no sims slice within 29.75 nm")
    assert m.to_dict()["pairs"] == [[0, 0], [2, 1], [3, 2]]


def test_only_mutual_nearest_slices_pair_and_a_tolerance_can_be_given():
    eds = _stack([0, 100, 200], "Zr_La")
    sims = _stack([90, 105, 210])  # two SIMS slices near EDS slice 1: the nearer one wins
    m = match_slices(eds, sims, tolerance="20 nm")
    assert (m.reference, m.other, m.unmatched_other) == ((1, 2), (1, 2), (0,))
    assert match_slices(eds, sims, tolerance="4 nm").reference == ()
    same = match_slices(eds, _stack([0, 100, 200]))
    assert same.one_to_one
    assert same.offsets_nm == (0.0, 0.0, 0.0)


def test_single_maps_pair_whatever_their_depths():
    a = stack({"Zr_La": np.zeros((2, 2))}, pixel_size="81.4 nm")
    b = stack({"Li6": np.zeros((2, 2))}, pixel_size="72 nm", origin=("5 um", "0 nm", "0 nm"))
    m = match_slices(a, b)
    assert (m.reference, m.other, m.offsets_nm) == ((0,), (0,), (5000.0,))
    assert match_slices(a, b.isel(z=0, drop=True)).one_to_one  # a map without z is one slice
    assert match_slices(a, b, tolerance="1 um").reference == ()  # an explicit tolerance is honoured


def test_errors_name_the_argument():
    a = _stack([0, 60], "Zr_La")
    with pytest.raises(PfibsimsError, match="tolerance: expected a length such as '30 nm', got 30"):
        match_slices(a, a, tolerance=30)
    with pytest.raises(PfibsimsError, match="tolerance: expected a non-negative length"):
        match_slices(a, a, tolerance="-1 nm")
    with pytest.raises(DataModelError, match="other: expected a length 'units' attribute on z"):
        match_slices(a, a.assign_coords(z=("z", [0.0, 60.0])))
    with pytest.raises(DataModelError, match=r"reference: expected increasing slice depths, got \[60.0, 0.0\] nm"):
        match_slices(a.isel(z=[1, 0]), a)


@pytest.mark.parametrize("bad", [np.nan, np.inf])
def test_non_finite_depths_are_refused(bad):
    """A NaN depth passed the 'increasing' check (NaN compares false) and paired nothing, or the wrong slices."""
    a = _stack([0, 60, 120], "Zr_La")
    b = a.assign_coords(z=("z", [0.0, bad, 120.0], {"units": "nm"}))
    with pytest.raises(DataModelError, match=rf"other: expected finite slice depths, found {bad} nm at index 1"):
        match_slices(a, b)
    with pytest.raises(DataModelError, match=r"reference: expected finite slice depths"):
        match_slices(b, a)
