"""Streaming numerics shared by two or more public modules: no xarray, no units.

* :mod:`.numba` -- numba's ``njit`` (or a no-op stand-in) and the switch that picks
  the compiled or the numpy path of the kernels below;
* :mod:`.moments` -- pair moments, value ranges and histograms of one block;
* :mod:`.grouped` -- per-group (per-label) moments and histograms;
* :mod:`.reduce` -- the dask graph that maps a block kernel over chunks and merges
  the partial results in a tree;
* :mod:`.smooth` -- the one Gaussian smoother (separable, with one NaN policy);
* :mod:`.views` -- reduced in-plane views (block means, spread sample tiles) under one
  pixel budget, for every step that estimates;
* :mod:`.clusters` -- k-means classes and their number by BIC;
* :mod:`.threads` -- the one pool of threads for in-memory work outside dask graphs.
"""
