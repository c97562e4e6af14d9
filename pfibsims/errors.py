"""The exceptions and warnings pfibsims raises.

Every error a user can cause is a :class:`PfibsimsError` (itself a
``ValueError``), so ``except ValueError`` keeps working for callers that do not
know pfibsims.  Messages name the argument, what was expected and what was
found, in that order, e.g.::

    pixel_size: expected a length such as '81.4 nm', got '1.6 nA' (a current)
"""

from __future__ import annotations

__all__ = [
    "CoverageWarning",
    "DataModelError",
    "DataWarning",
    "EstimationWarning",
    "FileFormatError",
    "GridError",
    "PfibsimsError",
    "RegistrationError",
    "UnitsError",
]


class PfibsimsError(ValueError):
    """Base class of every error a user of pfibsims can cause."""


class UnitsError(PfibsimsError):
    """A value has no unit, an unknown unit, or a unit of the wrong kind."""


class GridError(PfibsimsError):
    """Grids are irregular, do not overlap, or do not match."""


class DataModelError(PfibsimsError):
    """A dataset does not follow the pfibsims data model (dims, coords, attrs)."""


class FileFormatError(PfibsimsError):
    """A file is missing, truncated, corrupt, or not of the expected format."""


class RegistrationError(PfibsimsError):
    """A transform could not be estimated from the data given."""


class EstimationWarning(UserWarning):
    """An estimate was made but is doubtful (flat optimum, search bound, outlier)."""


class DataWarning(UserWarning):
    """Values were left out of a computation and counted (inf values, which are not measurements)."""


class CoverageWarning(UserWarning):
    """Part of the target has no data from a modality: the fields barely overlap, or slices have no partner."""
