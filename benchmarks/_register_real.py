"""Real and semi-real registration pairs for bench_register.py: pfibsims vs scikit-image and SimpleITK.

Each pair's true transform is known by construction (same raster: identity;
a real image through a known transform: that transform). Errors are the
displacement of the estimated against the true transform at the fixed field's
centre and the worst of its four corners, in fixed pixels. One run each.

References:

- scikit-image ``phase_cross_correlation`` (upsample 100; translation only; the
  moving image first pulled onto the fixed grid at the starting placement;
  with NaN, its masked normalised cross-correlation);
- SimpleITK (optional: ``pip install SimpleITK``) Mattes MI, 32 bins, a 3 x 3
  exhaustive translation search of 4 pixel steps at the coarsest of 3 levels,
  then regular-step gradient descent, the transform of the pair's model
  (translation, Euler or similarity about the fixed centre).
"""

from __future__ import annotations

import sys
import time
import warnings
from pathlib import Path

import numpy as np
import scipy.ndimage as ndi

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
import real_pairs as rp  # noqa: E402

import pfibsims as pfs  # noqa: E402
from pfibsims import Affine, Grid  # noqa: E402
from pfibsims.errors import RegistrationError  # noqa: E402


def _points(fixed) -> np.ndarray:
    g = Grid.of(fixed, ("y", "x"))
    (y0, y1), (x0, x1) = g.extent
    return np.array([[0.5 * (y0 + y1), 0.5 * (x0 + x1)], [y0, x0], [y0, x1], [y1, x0], [y1, x1]])


def _errors(fn, truth: Affine, fixed) -> tuple[float, float]:
    """(centre, worst corner) of ``fn`` (points (N, 2) y, x nm -> moving points) against ``truth``, fixed px."""
    pts = _points(fixed)
    e = np.linalg.norm(fn(pts) - truth(pts), axis=1) / float(np.mean(Grid.of(fixed, ("y", "x")).spacing))
    return float(e[0]), float(e[1:].max())


def _image(da) -> np.ndarray:
    v = da if not hasattr(da, "data_vars") else da[next(iter(da.data_vars))]
    return (v.isel(z=0) if "z" in v.dims else v).transpose("y", "x").values.astype(np.float64)


def skimage_phase(moving, fixed):
    """scikit-image's translation of the moving image pulled onto the fixed grid (identity placement)."""
    from skimage.registration import phase_cross_correlation

    fg = Grid.of(fixed, ("y", "x"))
    pulled = pfs.resample(moving, onto=fixed, kernel="linear")
    mov = _image(pulled)
    fix = _image(fixed)
    ok_m, ok_f = np.isfinite(mov), np.isfinite(fix)
    if ok_m.all() and ok_f.all():
        shift, _, _ = phase_cross_correlation(fix, mov, upsample_factor=100)
    else:
        shift = phase_cross_correlation(np.where(ok_f, fix, 0), np.where(ok_m, mov, 0), reference_mask=ok_f,
                                        moving_mask=ok_m)[0]
    # fixed(p) = mov(p - shift): the fixed point p is at moving point p - shift (px of the fixed grid)
    d = -np.asarray(shift, float) * np.asarray(fg.spacing)
    return lambda p: p + d


def simpleitk_mattes(moving, fixed, model: str):
    """SimpleITK Mattes MI; returns the fixed -> moving point map, or None when SimpleITK is not installed."""
    try:
        import SimpleITK as sitk
    except ImportError:
        return None

    def img(da):
        g = Grid.of(da, ("y", "x"))
        a = _image(da)
        im = sitk.GetImageFromArray(np.nan_to_num(a, nan=float(np.nanmean(a))).astype(np.float32))
        im.SetSpacing((float(g.spacing[1]), float(g.spacing[0])))
        im.SetOrigin((float(g.origin[1]), float(g.origin[0])))
        return im, g

    f, fg = img(fixed)
    m, _ = img(moving)
    cy, cx = fg.center
    tx = {"translation": sitk.TranslationTransform(2), "rigid": sitk.Euler2DTransform(),
          "similarity": sitk.Similarity2DTransform()}[model]
    if model != "translation":
        tx.SetCenter((float(cx), float(cy)))
    r = sitk.ImageRegistrationMethod()
    r.SetMetricAsMattesMutualInformation(numberOfHistogramBins=32)
    r.SetMetricSamplingStrategy(r.NONE)
    r.SetInterpolator(sitk.sitkLinear)
    r.SetShrinkFactorsPerLevel([4, 2, 1])
    r.SetSmoothingSigmasPerLevel([2, 1, 0])
    h = float(np.mean(fg.spacing))
    # the recipe: exhaustive search, then gradient descent
    steps = {"translation": [3, 3], "rigid": [0, 3, 3], "similarity": [0, 0, 3, 3]}[model]
    scales = {"translation": [1.0, 1.0], "rigid": [1.0, 1.0, 1.0], "similarity": [1.0, 1.0, 1.0, 1.0]}[model]
    r.SetOptimizerAsExhaustive(steps, stepLength=4 * h)
    r.SetOptimizerScales(scales)
    r.SetInitialTransform(tx, inPlace=True)
    r.Execute(f, m)
    r2 = sitk.ImageRegistrationMethod()
    r2.SetMetricAsMattesMutualInformation(numberOfHistogramBins=32)
    r2.SetInterpolator(sitk.sitkLinear)
    r2.SetShrinkFactorsPerLevel([4, 2, 1])
    r2.SetSmoothingSigmasPerLevel([2, 1, 0])
    r2.SetOptimizerAsRegularStepGradientDescent(learningRate=2 * h, minStep=1e-3 * h, numberOfIterations=300)
    r2.SetOptimizerScalesFromPhysicalShift()
    r2.SetInitialTransform(tx, inPlace=True)
    r2.Execute(f, m)

    def fn(p):
        return np.array([tx.TransformPoint((float(x), float(y)))[::-1] for y, x in p])

    return fn


def pairs(data: Path):
    """(name, truth text, model, moving, fixed, truth Affine) for every benchmark pair."""
    o = rp.openmims(data)
    maps, image = rp.jeol_maps(data)
    tex, px = rp.zeiss_texture(data)
    haadf = pfs.read_sem(data / "eds" / "test_TEM.bcf").HAADF.isel(z=0).values.astype(float)
    ident = Affine.identity()
    out = [
        ("NanoSIMS 12C15N -> 12C14N (one raster)", "identity", "translation", o.C12N15, o[["C12N14"]], ident),
        ("NanoSIMS 13C -> 12C (one raster)", "identity", "rigid", o.C13, o[["C12"]], ident),
        ("JEOL Fe_Ka -> S_Ka (one spectrum image)", "identity", "translation", maps.Fe_Ka, maps[["S_Ka"]], ident),
        ("JEOL Cu_Ka -> S_Ka (one spectrum image)", "identity", "translation", maps.Cu_Ka, maps[["S_Ka"]], ident),
    ]
    # the maps onto the view's electron image: not recorded on the spectrum image's raster (the maps sit about
    # (-1, +7) px from it by every method): the error against the identity shows that offset
    for el in ("Fe_Ka", "S_Ka"):
        out.append((f"JEOL {el} -> view image (.img)", "identity as recorded (offset ~(-1, +7) px)",
                    "translation", maps[el], image, ident))
    bcf = data / "eds" / "bcf_v2_50x50px.bcf"
    eds50, img50 = pfs.read_eds(bcf), pfs.read_sem(bcf)
    for el in ("Ag_La", "Al_Ka"):
        out.append((f"BCF 50x50 {el} -> its SEM image (one smooth edge)", "identity", "translation", eds50[el],
                    img50, ident))
    tem = pfs.read_eds(data / "eds" / "test_TEM.bcf")
    out.append(("BCF STEM-EDS Ti_Ka (0.8 counts/px) -> its HAADF", "identity", "translation", tem.Ti_Ka,
                pfs.read_sem(data / "eds" / "test_TEM.bcf"), ident))
    for rot, sc in ((2.5, 1.02), (-3.0, 0.98)):
        m, f, t = rp.other_modality(tex[:256, :384], px, rotation=rot, scale=sc)
        out.append(("Zeiss SEM vs non-monotonic remap, 1.4x px, 30 counts", f"{rot:+g} deg, x{sc:g}, shift",
                    "similarity", m, f, t))
    for sh in ((0.0, 0.0), (0.5, 0.5)):
        m, f, t = rp.noisy_map(haadf, 0.771, shift=sh, counts=3.0, seed=1)
        out.append(("BCF HAADF vs a 3-count map of it", f"shift {sh} px", "translation", m, f, t))
    # masked: the Zeiss image with 59 % of the fixed field NaN (a disc of coverage), the moving a shifted copy
    t = tex[:256, :256]
    moved = ndi.shift(t, (3.3, -5.6), order=3, mode="nearest")
    yy, xx = np.indices(t.shape)
    fixed_vals = np.where((yy - 128) ** 2 + (xx - 128) ** 2 < 92**2, t, np.nan)
    f = pfs.stack({"SE": fixed_vals}, pixel_size=f"{px!r} nm", modality="SEM")
    m = pfs.stack({"Li6": moved}, pixel_size=f"{px!r} nm", modality="SIMS").Li6
    out.append(("Zeiss SEM, fixed 59 % NaN (outside a disc), moving shifted", "shift (3.3, -5.6) px", "translation", m, f,
                Affine.translation((3.3 * px, -5.6 * px))))
    return out


def quiet_register(moving, fixed, model: str):
    """(the Registration, or the RegistrationError it raised; seconds): ``pfs.register`` with warnings silenced."""
    t0 = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            out = pfs.register(moving, fixed, model=model)
        except RegistrationError as exc:
            out = exc
    return out, time.perf_counter() - t0


def run(data: Path) -> list[dict]:
    rows = []
    for name, truth_text, model, moving, fixed, truth in pairs(data):
        r, t_ours = quiet_register(moving, fixed, model)
        ours = None if isinstance(r, RegistrationError) else _errors(r.transform, truth, fixed)
        t0 = time.perf_counter()
        ski = _errors(skimage_phase(moving, fixed), truth, fixed)
        t_ski = time.perf_counter() - t0
        t0 = time.perf_counter()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            fn = simpleitk_mattes(moving, fixed, model)
        itk = None if fn is None else _errors(fn, truth, fixed)
        t_itk = time.perf_counter() - t0
        rows.append(dict(name=name, truth=truth_text, model=model, ours=ours, t_ours=t_ours, ski=ski, t_ski=t_ski,
                         itk=itk, t_itk=t_itk if fn is not None else None))
        print(rows[-1], flush=True)
    return rows


def table(rows: list[dict]) -> str:
    def e(v):
        return "refused" if v is None else f"{v[0]:.2f} / {v[1]:.2f}"

    lines = ["| pair | truth | model | pfibsims error (centre / worst corner, px) | s | scikit-image phase "
             "correlation error | s | SimpleITK Mattes MI error | s |",
             "| --- | --- | --- | ---: | ---: | ---: | ---: | ---: | ---: |"]
    for r in rows:
        itk = "not installed" if r["t_itk"] is None else e(r["itk"])
        ti = "" if r["t_itk"] is None else f"{r['t_itk']:.1f}"
        lines.append(f"| {r['name']} | {r['truth']} | {r['model']} | {e(r['ours'])} | {r['t_ours']:.1f} | "
                     f"{e(r['ski'])} | {r['t_ski']:.2f} | {itk} | {ti} |")
    return "\n".join(lines)


if __name__ == "__main__":
    print(table(run(Path(sys.argv[1]) if len(sys.argv) > 1 else Path(__file__).resolve().parents[2] / "shared" / "data")))
