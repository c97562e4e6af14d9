"""pfibsims: correlative 3D EDS + SIMS element mapping from plasma-FIB slice-and-view data.

The public names are listed in ``__all__``; ``docs/architecture.md`` says where
everything else lives.  Names that moved in 0.2 (``record``, ``validate``,
``ureg``, ``parse_length``, ``parse_quantity``, ``correct_drift``, ``warp``)
still resolve, with a ``DeprecationWarning`` naming their new home.
"""

from typing import Any

from . import synthetic
from ._version import __version__
from .correlate import (
    colocalisation,
    covariance,
    covariance_map,
    joint_histogram,
    local_correlation,
    pearson,
    spearman,
)
from .dataset import stack
from .errors import (
    CoverageWarning,
    DataModelError,
    DataWarning,
    EstimationWarning,
    FileFormatError,
    GridError,
    PfibsimsError,
    RegistrationError,
    UnitsError,
)
from .grid import Grid
from .io import from_hyperspy, open_dataset, read_eds, read_sem, read_sims, save, to_hyperspy
from .isotopes import isotope_ratio
from .normalization import histogram, normalize, to_uint8
from .pipeline import fuse
from .progress import config
from .quantification import quantify
from .registration import Registration, estimate_drift, register
from .resampling import coverage, profile, resample
from .segmentation import boundary_profile, classify_phases, depletion_depth, particles, phase_statistics
from .transform import Affine

__all__ = [
    "Affine",
    "CoverageWarning",
    "DataModelError",
    "DataWarning",
    "EstimationWarning",
    "FileFormatError",
    "Grid",
    "GridError",
    "PfibsimsError",
    "Registration",
    "RegistrationError",
    "UnitsError",
    "__version__",
    "boundary_profile",
    "classify_phases",
    "colocalisation",
    "config",
    "covariance",
    "covariance_map",
    "coverage",
    "depletion_depth",
    "estimate_drift",
    "from_hyperspy",
    "fuse",
    "histogram",
    "isotope_ratio",
    "joint_histogram",
    "local_correlation",
    "normalize",
    "open_dataset",
    "particles",
    "pearson",
    "phase_statistics",
    "profile",
    "quantify",
    "read_eds",
    "read_sem",
    "read_sims",
    "register",
    "resample",
    "save",
    "spearman",
    "stack",
    "synthetic",
    "to_hyperspy",
    "to_uint8",
]


def __getattr__(name: str) -> Any:
    """Deprecated names (see the module docstring): warn, then hand over the object."""
    from ._deprecated import lookup

    return lookup(name)
