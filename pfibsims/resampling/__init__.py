"""Resampling: data onto a grid through an affine map (and each slice's drift), in one interpolation.

* :mod:`.interp` -- :func:`resample` and :func:`coverage`, the xarray-facing front door;
* :mod:`.drift` -- a drift table as one in-plane transform per slice (:func:`slice_transforms`);
* :mod:`.graph` -- which source window feeds which output chunk (the dask graph);
* :mod:`.kernels` -- interpolation kernels and weights, one slab in, one slab out (numba);
* :mod:`.lines` -- :func:`profile`, a line profile sampled as resampling samples;
* :mod:`.slices` -- :func:`match_slices`, the slices of two stacks paired by depth.
"""

from .drift import slice_transforms
from .interp import coverage, resample
from .lines import profile
from .slices import SliceMatch, match_slices

__all__ = ["SliceMatch", "coverage", "match_slices", "profile", "resample", "slice_transforms"]
