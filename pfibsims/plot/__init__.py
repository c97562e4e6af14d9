"""Figures of the paper's workflow (Sun et al., Micron 2024), as PNG-ready matplotlib Figures.

Each function takes pfibsims data (DataArrays or Datasets, lazy or not) and
returns a :class:`matplotlib.figure.Figure`; it computes only what it draws:
one slice, one histogram, one reduction. :func:`save_figures` writes every
figure of a fused volume into a folder (used by ``pfibsims demo`` and
``pfibsims report``); it draws what it is given and classifies nothing.

* :func:`histograms`: intensity histograms, raw vs normalised (Fig. 2);
* :func:`normalization`: min-max vs log normalisation with the pixels each
  loses (Fig. 3);
* :func:`element_maps`: Li, Zr and Li x Zr (eq. 3 per pixel) on one colour
  scale with a scale bar, and the line profile (Fig. 6);
* :func:`joint_histogram`: the joint ("correlation") histogram, log colour;
* :func:`orthoslices`: xy, xz and yz slices with phase outlines;
* :func:`registration_overlay`: red/green or checkerboard overlay of the
  moving modality on the fixed one, before and after registration;
* :func:`volume_3d`: the 3-D view of Fig. 5(g), phases as surfaces and Li as
  a volume render, rendered off-screen by VTK (the optional ``render`` extra).

Figures are drawn on the Agg canvas without pyplot (no global state, no
window, safe in threads); images are placed by their physical extents so
aspect ratios honour the voxel spacing (60 nm in z vs 81.4 nm in-plane).
matplotlib is the optional ``plot`` extra: ``pip install 'pfibsims[plot]'``.
"""

from .gallery import save_figures
from .intensity import histograms, normalization
from .maps import element_maps, joint_histogram
from .overlay import registration_overlay
from .scene import volume_3d
from .volume import orthoslices

__all__ = [
    "element_maps",
    "histograms",
    "joint_histogram",
    "normalization",
    "orthoslices",
    "registration_overlay",
    "save_figures",
    "volume_3d",
]
