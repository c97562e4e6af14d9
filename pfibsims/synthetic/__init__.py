"""A synthetic cathode phantom with ground truth: :func:`cathode`.

* :mod:`.phantom` -- the acquisitions (EDS, SIMS) of a phantom and their truth;
* :mod:`.particles` -- the microstructure: particles, their lattice index, rendering;
* :mod:`.noise` -- counter-based Poisson noise, the same for any chunking.
"""

from .phantom import EDS_COUNTS, LI7_RATIO, MIXED_MATRIX, SIMS_COUNTS, cathode

__all__ = ["EDS_COUNTS", "LI7_RATIO", "MIXED_MATRIX", "SIMS_COUNTS", "cathode"]
