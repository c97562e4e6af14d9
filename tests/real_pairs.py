"""Real and semi-real registration pairs, their truth known by construction (tests and benchmarks).

Real pairs share one raster (two NanoSIMS species, two JEOL maps of one
spectrum image): their true transform is the identity.  Semi-real pairs apply
a known transform, contrast and noise to a real image.  Every function takes
the ``shared_data`` folder (tests get it from the fixture of that name).
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import scipy.ndimage as ndi
import tifffile

import pfibsims as pfs
from pfibsims import Affine, Grid


def field_error(T, truth, fixed) -> tuple[float, float]:
    """(centre, worst corner) displacement of ``T`` against ``truth`` over the fixed field, in fixed pixels."""
    g = Grid.of(fixed, ("y", "x"))
    (y0, y1), (x0, x1) = g.extent
    pts = np.array([[0.5 * (y0 + y1), 0.5 * (x0 + x1)], [y0, x0], [y0, x1], [y1, x0], [y1, x1]])
    e = np.linalg.norm(T(pts) - truth(pts), axis=1) / float(np.mean(g.spacing))
    return float(e[0]), float(e[1:].max())


def openmims(data: Path):
    """The OpenMIMS documentation image (4 species of one raster, 78 nm pixels)."""
    return pfs.read_sims(data / "sims" / "OpenMIMS_doc_051117_05-32dRe-03b.im")


def jeol_maps(data: Path):
    """The JEOL element maps of one view (one spectrum image: exactly co-registered) and the view's image."""
    maps = pfs.read_eds(sorted((data / "eds" / "jeol_View000").glob("*.map")))
    image = pfs.read_sem(data / "eds" / "jeol_View000" / "View000_0000000.img")
    return maps, image


def jeol_structure(data: Path) -> tuple[np.ndarray, float]:
    """A smooth real structure: the JEOL Fe + S maps of one spectrum image, Gaussian-smoothed by 1.5 px; its
    pixel size (nm)."""
    maps, _ = jeol_maps(data)
    fe_s = (maps.Fe_Ka.values.astype(np.float64) + maps.S_Ka.values).reshape(maps.sizes["y"], maps.sizes["x"])
    return ndi.gaussian_filter(fe_s, 1.5), float(maps.x[1] - maps.x[0])


def sparse_pair(structure: np.ndarray, px: float, *, shift: tuple[float, float], seed: int,
                counts: tuple[float, float] = (0.17, 0.16)):
    """Two independent Poisson count maps of ``structure`` as sparse as the JEOL maps (``counts`` a pixel on
    average, moving and fixed: 80-90 % zeros), the moving one's content moved by ``shift`` pixels: ``(moving,
    fixed, truth)``."""
    rng = np.random.default_rng(seed)
    moved = np.clip(ndi.shift(structure, shift, order=3, mode="nearest"), 0.0, None)
    lam = [a * c / structure.mean() for a, c in zip((moved, structure), counts, strict=True)]
    moving, fixed = (rng.poisson(a).astype(np.float64) for a in lam)
    moving = pfs.stack({"Fe_Ka": moving}, pixel_size=f"{px!r} nm", modality="EDS").Fe_Ka
    fixed = pfs.stack({"S_Ka": fixed}, pixel_size=f"{px!r} nm", modality="EDS")
    return moving, fixed, Affine.translation((shift[0] * px, shift[1] * px))


def zeiss_texture(data: Path) -> tuple[np.ndarray, float]:
    """A real SEM image (Zeiss InLens, 11.65 nm pixels), rows 0-349 (below is the data bar)."""
    img = tifffile.imread(data / "sem" / "test_tiff_Zeiss_SEM_512pix.tif")[:350].astype(np.float64)
    return img, 11.650390625


def remap(v: np.ndarray) -> np.ndarray:
    """A non-monotonic contrast (a phase bright at mid grey) of values in [0, 1]."""
    return 0.15 + np.sin(math.pi * 1.6 * np.clip(v, 0.0, 1.0)) ** 2


def other_modality(tex: np.ndarray, px: float, *, rotation: float, scale: float, factor: float = 1.4,
                   counts: float = 30.0, seed: int = 0, margin: float = 0.12):
    """A simulated second modality of a real image: ``(moving, fixed, truth)``.

    ``fixed`` is the image; ``moving`` shows it through ``truth`` (rotation deg
    and scale about the fixed centre, and a shift), with ``factor`` times larger
    pixels (the image smoothed to them first), the non-monotonic :func:`remap`
    and Poisson noise at ``counts`` a pixel on average.  Its field is the fixed
    one less ``margin`` on every side.
    """
    rng = np.random.default_rng(seed)
    fgrid = Grid(tex.shape, px, (0.5 * px, 0.5 * px))
    truth = Affine.from_parameters(rotation=rotation, scale=scale, shift=(0.37 * factor * px, -0.61 * factor * px),
                                   center=fgrid.center)
    ext = [(lo + margin * (hi - lo), hi - margin * (hi - lo)) for lo, hi in fgrid.extent]
    mpx = factor * px
    mgrid = Grid(tuple(int((hi - lo) // mpx) for lo, hi in ext), mpx, tuple(lo + 0.5 * mpx for lo, _ in ext))
    q = np.stack(np.meshgrid(*mgrid.coords().values(), indexing="ij"), -1).reshape(-1, 2)
    idx = fgrid.to_index(truth.inverse()(q))
    smooth = ndi.gaussian_filter(tex, 0.5 * factor * scale, mode="nearest")
    vals = ndi.map_coordinates(smooth, [idx[:, 0], idx[:, 1]], order=3, mode="nearest").reshape(mgrid.shape)
    lam = remap((vals - tex.min()) / np.ptp(tex))
    counts_img = rng.poisson(lam * counts / lam.mean()).astype(np.float64)
    moving = pfs.stack({"Li6": counts_img}, pixel_size=f"{mpx!r} nm",
                       origin=tuple(f"{o!r} nm" for o in mgrid.origin), modality="SIMS")
    fixed = pfs.stack({"SE": tex}, pixel_size=f"{px!r} nm", modality="SEM")
    return moving.Li6, fixed, truth


def noisy_map(tex: np.ndarray, px: float, *, shift: tuple[float, float], counts: float, seed: int = 0):
    """A count map of a real image on its own raster, the content moved by ``shift`` pixels: ``(moving, fixed,
    truth)`` as an EDS map of a few counts a pixel against the electron image of the same scan."""
    rng = np.random.default_rng(seed)
    t = (tex - tex.min()) / np.ptp(tex)
    moved = ndi.shift(t, shift, order=3, mode="nearest")
    lam = (0.2 + moved) / (0.2 + t).mean() * counts
    moving = pfs.stack({"Ti_Ka": rng.poisson(lam).astype(np.float64)}, pixel_size=f"{px!r} nm", modality="EDS")
    fixed = pfs.stack({"HAADF": tex.astype(np.float64)}, pixel_size=f"{px!r} nm", modality="SEM")
    return moving.Ti_Ka, fixed, Affine.translation((shift[0] * px, shift[1] * px))


def noisy_map_bound(tex: np.ndarray, *, shift: tuple[float, float], counts: float) -> np.ndarray:
    """The Cramér-Rao bound of :func:`noisy_map`'s shift, px an axis (y, x): the smallest standard deviation any
    unbiased estimator can have, even one told the HAADF image and that the counts are Poisson of
    ``a + b t(p - s)`` (``t`` the image scaled to [0, 1]; ``a``, ``b`` unknown, as a detector's offset and gain).

    Fisher information ``I = sum_p J(p) J(p)^T / lambda(p)``, ``J`` the derivatives of the mean counts
    ``lambda`` by ``(a, b, s_y, s_x)`` (the shift's by central differences of the cubic spline, 1e-3 px);
    the bound is the shift block of ``I^-1``.  Depends on the image, the shift and ``counts`` only.
    """
    t = (tex - tex.min()) / np.ptp(tex)
    scale = counts / (0.2 + t).mean()
    a, b = 0.2 * scale, scale
    moved = ndi.shift(t, shift, order=3, mode="nearest")
    lam = a + b * moved
    h = 1e-3
    ds = [b * (ndi.shift(t, np.add(shift, e), order=3, mode="nearest")
               - ndi.shift(t, np.subtract(shift, e), order=3, mode="nearest")) / (2 * h) for e in ((h, 0), (0, h))]
    jac = np.stack([np.ones_like(lam), moved, *ds]).reshape(4, -1)
    info = (jac / lam.ravel()) @ jac.T
    return np.sqrt(np.diag(np.linalg.inv(info))[2:])


def cross_modal_stacks(data: Path, contrast: str):
    """A real SEM image as the drift-free reference (8 slices) and its view through a known rigid transform (2 deg,
    a shift), at 1.3x the pixel size, 30 counts a pixel, in the given contrast, with a known drift of +/- 4 px a
    slice: ``(moving, reference, T, drift nm, px)``."""
    tex, px = zeiss_texture(data)
    tex = tex[:200, :300]
    n, mpx = 8, 1.3 * px
    drift = np.random.default_rng(7).uniform(-4.0, 4.0, (n, 2)) * px  # nm
    centre = (100 * px, 150 * px)
    T = Affine.from_parameters(rotation=2.0, shift=(2.7 * px, -1.3 * px), center=centre)
    my, mx = np.arange(0.1 * 200 * px / mpx, 0.9 * 200 * px / mpx), np.arange(0.1 * 300 * px / mpx, 0.9 * 300 * px / mpx)
    q = np.stack(np.meshgrid(my * mpx, mx * mpx, indexing="ij"), -1).reshape(-1, 2)
    smooth = ndi.gaussian_filter(tex, 0.65, mode="nearest")
    rng = np.random.default_rng(0)
    look = {"same": lambda v: v, "inverted": lambda v: 1 - v, "remap": remap}[contrast]
    slices = []
    for d in drift:
        p = (Affine.translation(tuple(d)) @ T).inverse()(q) / px - 0.5  # fixed pixel index of each moving point
        v = ndi.map_coordinates(smooth, [p[:, 0], p[:, 1]], order=3, mode="nearest").reshape(my.size, mx.size)
        v = np.clip((v - tex.min()) / np.ptp(tex), 0, 1)
        slices.append(rng.poisson(30 * (0.05 + look(v)) / 0.55))
    moving = pfs.stack({"Li6": np.stack(slices).astype(float)}, pixel_size=f"{mpx!r} nm", slice_thickness="50 nm",
                   origin=(f"{float(my[0] * mpx)!r} nm", f"{float(mx[0] * mpx)!r} nm"), modality="SIMS").Li6
    reference = pfs.stack({"SE": np.stack([tex] * n)}, pixel_size=f"{px!r} nm", slice_thickness="50 nm", modality="SEM")
    return moving, reference, T, drift, px


def leaning_stack(tex: np.ndarray, *, n: int = 40, lean: tuple[float, float] = (0.35, -0.2), wobble: float = 0.15,
                  counts: float = 50.0, seed: int = 0) -> np.ndarray:
    """``n`` slices of a real image whose structures lean through the stack, with no drift: ``(n, y, x)`` counts.

    Slice ``k`` shows the image displaced by ``k * (lean + wobble * v(p))`` pixels, ``v`` a smooth random field
    of unit RMS (structures lean by ``lean`` px a slice on average, each region its own way), with Poisson noise
    at ``counts`` a pixel.  Slice-to-slice correlation reads the mean lean as drift; there is none.
    """
    rng = np.random.default_rng(seed)
    v = np.stack([ndi.gaussian_filter(rng.standard_normal(tex.shape), 30.0) for _ in range(2)])
    v /= np.sqrt((v**2).mean())
    t = (tex - tex.min()) / np.ptp(tex)
    yy, xx = np.indices(tex.shape, dtype=np.float64)
    out = []
    for k in range(n):
        dy, dx = k * (lean[0] + wobble * v[0]), k * (lean[1] + wobble * v[1])
        img = ndi.map_coordinates(t, [yy - dy, xx - dx], order=3, mode="nearest")
        out.append(rng.poisson(counts * (0.1 + img)))
    return np.stack(out).astype(np.float64)


def shift_slices(stack_: np.ndarray, shifts: np.ndarray) -> np.ndarray:
    """Each slice's content moved by its ``shifts`` row (px): a drift of ``shifts`` (cubic spline)."""
    return np.stack([ndi.shift(s, d, order=3, mode="nearest") for s, d in zip(stack_, shifts, strict=True)])
