"""Names that moved in 0.2 still resolve for one release, with a DeprecationWarning naming the new home."""

from __future__ import annotations

import numpy as np
import pytest
from stacks import drift_table, shifted_stack

import pfibsims as pfs
from pfibsims import dataset, units


@pytest.mark.parametrize(("name", "new"), [("record", dataset.record), ("validate", dataset.validate),
                                           ("ureg", units.ureg), ("parse_length", units.parse_length),
                                           ("parse_quantity", units.parse_quantity)])
def test_moved_names_warn_and_are_the_same_object(name, new):
    with pytest.warns(DeprecationWarning, match=rf"pfibsims\.{name} is deprecated.*use pfibsims\.(units|dataset)\.{name}"):
        assert getattr(pfs, name) is new


def test_correct_drift_and_warp_warn_and_equal_resample():
    ds = shifted_stack([(0, 0), (0.3, 0.6)])
    d = drift_table([[0, 0], [21.6, 43.2]])
    ref = pfs.resample(ds, ds, drift=d)
    with pytest.warns(DeprecationWarning, match=r"correct_drift is deprecated.*resample\(ds, onto=ds, drift=drift\)"):
        out = pfs.correct_drift(ds, d)
    np.testing.assert_array_equal(out.Li6.values, ref.Li6.values)
    T = pfs.Affine.from_parameters(rotation=2.0, shift=(100, -50), center=(2000, 2000))
    onto = pfs.Grid((40, 40), "81.4 nm", origin="400 nm")
    with pytest.warns(DeprecationWarning, match="warp is deprecated"):
        out = pfs.warp(ds, T, onto, drift=d)
    np.testing.assert_array_equal(out.Li6.values, pfs.resample(ds, onto, transform=T, drift=d).Li6.values)


def test_unknown_names_are_attribute_errors():
    with pytest.raises(AttributeError, match="has no attribute 'nonesuch'"):
        pfs.nonesuch  # noqa: B018
