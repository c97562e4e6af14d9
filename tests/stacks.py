"""Small test stacks with known shifts, shared by the registration and resampling tests."""

from __future__ import annotations

import numpy as np
import scipy.ndimage as ndi
import xarray as xr

from pfibsims import stack


def texture(shape, seed=0, sigma=2.5):
    rng = np.random.default_rng(seed)
    return ndi.gaussian_filter(rng.random(shape), sigma)


def shifted_stack(shifts_px, *, shape=(64, 64), seed=0, counts=200.0, chunks=None):
    """A stack whose content moves by ``shifts_px[k]`` (y, x) pixels in slice k (Fourier shift, Poisson noise)."""
    rng = np.random.default_rng(seed + 1)
    base = texture((shape[0] + 0, shape[1] + 0), seed)
    base = (base - base.min()) / (base.max() - base.min())
    f = np.fft.fft2(base)
    slices = []
    for s in shifts_px:
        img = np.real(np.fft.ifft2(ndi.fourier_shift(f, s)))
        slices.append(rng.poisson(counts * np.clip(img, 0, None) + 5).astype(np.float64))
    return stack({"Li6": np.stack(slices)}, pixel_size="72 nm", slice_thickness="60 nm", chunks=chunks)


# --------------------------------------------------------------------------
# correct_drift and warp
# --------------------------------------------------------------------------
def drift_table(values, units="nm"):
    return xr.DataArray(np.asarray(values, float), dims=("z", "component"), coords={"component": ["y", "x"]},
                        attrs={"units": units})
