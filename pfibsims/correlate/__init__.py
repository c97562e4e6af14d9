"""Correlation statistics of two channels on one grid, over whole volumes.

What Sun et al. (Micron 2024, section 2.4 and Fig. 6) computed, and what a
careful reader adds:

* :func:`covariance`: the sample covariance of eq. 3, ``sum (A_i - mu)(B_i -
  nu) / (n - 1)`` (the paper prints ``B_i - mu``; ``nu``, the mean of B, is
  meant), lazily, in one pass over the chunks;
* :func:`pearson` (with a Fisher-z confidence interval and a p-value) and
  :func:`spearman`;
* :func:`covariance_map`: the per-voxel product ``(A - mu)(B - nu)`` (Fig. 6c);
* :func:`joint_histogram`: the "correlation histogram", lazily, one pass;
* :func:`colocalisation`: what Fiji's Coloc 2 reports, with its definitions
  (thresholded Manders tM1/tM2 at Costes' automatic thresholds, Pearson
  below/above them, Spearman with its t, Kendall's tau-b, Li's ICQ, Costes'
  significance test), in 3-D;
* :func:`local_correlation`: Pearson r in a moving window, lazily.

:func:`channel_pair` picks the two channels to correlate in a volume (the paper's
``Li6``/``Zr_La`` when present). Line profiles (:func:`pfibsims.resampling.profile`) sample as resampling does and live there.

Voxels where either channel is NaN or infinite (outside a field of view) are
left out of every statistic, pair by pair ("pairwise complete"); a ``mask``
leaves out more.  Scalar results: :func:`covariance` is a lazy 0-d
``DataArray`` (``float(c)`` computes it; coordinate ``n`` holds the number of
voxel pairs); :func:`pearson` and :func:`spearman` compute and return a frozen
:class:`Correlation` (``float(r)`` is the coefficient); :func:`colocalisation`
returns a :class:`Colocalisation`.
"""

from .coloc import Colocalisation, colocalisation, spearman
from .histogram import joint_histogram
from .local import local_correlation
from .moments import Correlation, covariance, covariance_map, pearson
from .pairs import channel_pair

__all__ = [
    "Colocalisation",
    "Correlation",
    "channel_pair",
    "colocalisation",
    "covariance",
    "covariance_map",
    "joint_histogram",
    "local_correlation",
    "pearson",
    "spearman",
]
