"""Phases, particles, and a channel versus distance from particle surfaces.

* :func:`classify_phases`: a uint8 label volume of any sample: k-means classes
  of the smoothed EDS counts, named from a phase table (the paper's cathode,
  :data:`CATHODE_PHASES`, when Zr, Co, Al and C are measured; else the
  classes' dominant elements), unmatched classes ``"unassigned"``, with CF
  ``flag_values`` / ``flag_meanings``;
* :func:`phase_statistics`: per-phase voxel count, volume, fraction and the
  distribution of a channel;
* :func:`particles`: 3-D connected components of one phase (volume,
  equivalent diameter, centroid, touching-the-border flag);
* :func:`boundary_profile`: mean (spread, count) of a channel versus the signed
  distance from a phase boundary (negative inside the phase), from an
  anisotropic physical-units distance transform;
* :func:`depletion_depth`: the depth of a surface depletion read from such a
  profile.

Label volumes follow the CF conventions for flags: ``flag_values`` (the label
integers) and ``flag_meanings`` (space-separated names), so any phase can be
named (``"LLZTO"``) or given by its integer.
"""

from .boundaries import boundary_profile, depletion_depth
from .components import particles
from .naming import CATHODE_PHASES
from .phases import classify_phases
from .statistics import phase_statistics

__all__ = [
    "CATHODE_PHASES",
    "boundary_profile",
    "classify_phases",
    "depletion_depth",
    "particles",
    "phase_statistics",
]
