"""Evidence for register's significance threshold (bench_register.py --calibrate), on the code as it is.

Every pair is registered by ``pfibsims.register`` as a user would (global
search, default options); the table prints what the significance rule reads
-- the tile agreement ``(agreeing, tested)`` of the search's best placement
and of the one accepted, and the surface's prominence -- the verdict, and
the error of the answer against the truth where there is one.

Classes of pairs (files of ../shared/data, see SOURCES.md):

- ``match``: the true transform is known by construction (same raster, same
  scan, or a known transform, contrast and noise applied to a real image);
- ``unrelated``: real images of different samples or non-overlapping
  fields (no true placement);
- ``noise``: Poisson noise (white and smoothed) against real images.

The rule (:data:`pfibsims.registration.significance.MIN_AGREE`): accepted when at
least 2 of the 2 x 2 tiles of the fixed field agree on the placement.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import scipy.ndimage as ndi
import tifffile

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
import real_pairs as rp  # noqa: E402
from _register_real import quiet_register  # noqa: E402

import pfibsims as pfs  # noqa: E402
from pfibsims import Affine  # noqa: E402
from pfibsims.errors import GridError, RegistrationError  # noqa: E402
from pfibsims.registration.significance import MIN_AGREE  # noqa: E402


def _on(values, px: float, name: str = "SE", modality: str = "SEM"):
    return pfs.stack({name: np.asarray(values, float)}, pixel_size=f"{px!r} nm", modality=modality)


def _moving(values, px: float):
    return _on(values, px, "Li6", "SIMS").Li6


def pairs(data: Path):
    """(name, class, model, moving, fixed, truth Affine or None)."""
    ident = Affine.identity()
    o = rp.openmims(data)
    sun = pfs.read_sims(data / "sims" / "image_sun.im", slice_thickness="50 nm").isel(z=0)
    maps, image = rp.jeol_maps(data)
    tex, px = rp.zeiss_texture(data)
    fei = tifffile.imread(data / "sem" / "test_tiff_FEI_SEM.tif")[:1024].astype(float)
    green = tifffile.imread(data / "coloc2" / "colocsample1b-green.tif")[16].astype(float)  # (33, 152, 172)
    red = tifffile.imread(data / "coloc2" / "colocsample1b-red.tif")[16].astype(float)
    bcf = data / "eds" / "bcf_v2_50x50px.bcf"
    eds50, img50 = pfs.read_eds(bcf), pfs.read_sem(bcf)
    tem, haadf = pfs.read_eds(data / "eds" / "test_TEM.bcf"), pfs.read_sem(data / "eds" / "test_TEM.bcf")
    out = []
    for a, b in (("C12N15", "C12N14"), ("C13", "C12"), ("C12N14", "C12"), ("C13", "C12N14")):
        out.append((f"NanoSIMS {a} -> {b} (one raster)", "match", "translation", o[a], o[[b]], ident))
    for a, b in (("C12N15", "C12N14"), ("O16", "C12"), ("C12N14", "C12")):
        if a in sun and b in sun:
            out.append((f"NanoSIMS sun {a} -> {b} (one raster)", "match", "translation", sun[a], sun[[b]], ident))
    for a, b in (("Fe_Ka", "S_Ka"), ("Cu_Ka", "S_Ka"), ("O_Ka", "S_Ka"), ("C_Ka", "S_Ka"), ("S_Ka", "Fe_Ka")):
        out.append((f"JEOL {a} -> {b} (one spectrum image)", "match", "translation", maps[a], maps[[b]], ident))
    off = Affine.translation((-1.0 * 8.69140625, 7.0 * 8.69140625))  # the image's offset (see the test)
    for a in ("Fe_Ka", "S_Ka", "Cu_Ka", "O_Ka", "C_Ka"):
        out.append((f"JEOL {a} -> view image", "match", "translation", maps[a], image, off))
    for rot, sc in ((2.5, 1.02), (-3.0, 0.98)):
        m, f, t = rp.other_modality(tex[:256, :384], px, rotation=rot, scale=sc)
        out.append((f"Zeiss SEM vs remap ({rot:+g} deg, x{sc:g})", "match", "similarity", m, f, t))
        m, f, t = rp.other_modality(fei[200:456, 600:984], 1825.05, rotation=rot, scale=sc, seed=1)
        out.append((f"FEI SEM vs remap ({rot:+g} deg, x{sc:g})", "match", "similarity", m, f, t))
    for el in ("Ag_La", "Al_Ka", "C_Ka"):
        out.append((f"BCF 50x50 {el} -> its SEM image", "match", "translation", eds50[el], img50, ident))
    for el in ("Ti_Ka", "O_Ka"):
        out.append((f"BCF STEM {el} -> its HAADF", "match", "translation", tem[el], haadf, ident))
    m, f, t = rp.noisy_map(haadf.HAADF.isel(z=0).values.astype(float), 0.771, shift=(0.5, 0.5), counts=3.0, seed=1)
    out.append(("BCF HAADF vs a 3-count map of it", "match", "translation", m, f, t))
    out.append(("Coloc 2 colocsample1b green -> red (slice 16)", "match", "translation", _moving(green, 100.0),
                _on(red, 100.0), ident))
    # unrelated real pairs
    out.append(("NanoSIMS sun 12C14N vs OpenMIMS 12C14N", "unrelated", "rigid", _moving(sun.C12N14.values, 78.09),
                o[["C12N14"]], None))
    out.append(("Zeiss SEM halves (no overlap)", "unrelated", "rigid", _moving(tex[:, :256], px), _on(tex[:, 256:], px),
                None))
    out.append(("FEI SEM vs Zeiss SEM", "unrelated", "rigid", _moving(fei[:350, :512], px), _on(tex, px), None))
    out.append(("JEOL view image vs Zeiss SEM", "unrelated", "rigid",
                _moving(image.IMG1.isel(z=0).values[::2, ::2], 2 * px), _on(tex, px), None))
    out.append(("JEOL Fe_Ka vs OpenMIMS 12C", "unrelated", "translation",
                _moving(maps.Fe_Ka.isel(z=0).values[:256, :256], 78.09), o[["C12"]], None))
    out.append(("Coloc 2 green vs Zeiss SEM", "unrelated", "rigid", _moving(green, 30.0), _on(tex, px), None))
    out.append(("FEI SEM halves (no overlap)", "unrelated", "rigid", _moving(fei[:512, :512], px),
                _on(fei[512:1024, 1024:1536], px), None))
    # noise against real images
    rng = np.random.default_rng(0)
    for lam in (0.5, 3.0, 30.0):
        for smooth in (0.0, 2.0):
            n = rng.poisson(lam, (270, 390)).astype(float)
            n = ndi.gaussian_filter(n, smooth) if smooth else n
            out.append((f"Poisson {lam:g} counts{', smoothed 2 px' if smooth else ''} vs Zeiss SEM", "noise", "rigid",
                        _moving(n, 1.3 * px), _on(tex, px), None))
    for lam in (0.5, 3.0):
        n = rng.poisson(lam, (256, 256)).astype(float)
        out.append((f"Poisson {lam:g} counts vs OpenMIMS 12C", "noise", "translation", _moving(n, 78.09), o[["C12"]],
                    None))
        out.append((f"Poisson {lam:g} counts vs JEOL view image", "noise", "translation", _moving(n, 2 * 8.69140625),
                    image, None))
    return out


def run(data: Path) -> list[dict]:
    rows = []
    for name, kind, model, moving, fixed, truth in pairs(data):
        try:
            r, dt = quiet_register(moving, fixed, model)
        except GridError as exc:  # not a verdict of the rule: reported as such
            print(f"{name}: {exc}", flush=True)
            continue
        ok = not isinstance(r, RegistrationError)
        report = r.report
        err = None
        if ok and truth is not None:
            err = max(rp.field_error(r.transform, truth, fixed))
        best = report.candidates[0]["agreement"] if report.candidates else [0, 0]
        rows.append(dict(name=name, kind=kind, model=model, best=tuple(best), used=tuple(report.agreement),
                         prominence=report.prominence, ok=ok, err=err, t=dt))
        print(rows[-1], flush=True)
    return rows


def table(rows: list[dict]) -> str:
    lines = [f"Rule: accepted when >= {MIN_AGREE} of the 2 x 2 tiles agree on the placement.\n",
             "| pair | class | model | tiles agreeing (best placement) | tiles agreeing (accepted) | prominence "
             "| verdict | error vs truth, worst of centre/corners, fixed px | s |",
             "| --- | --- | --- | ---: | ---: | ---: | --- | ---: | ---: |"]
    for r in rows:
        err = "" if r["err"] is None else f"{r['err']:.2f}"
        used = f"{r['used'][0]}/{r['used'][1]}" if r["ok"] else ""
        lines.append(f"| {r['name']} | {r['kind']} | {r['model']} | {r['best'][0]}/{r['best'][1]} | {used} | "
                     f"{r['prominence']:.2f} | {'accepted' if r['ok'] else 'refused'} | {err} | {r['t']:.1f} |")
    lines.append("")
    for kind in ("match", "unrelated", "noise"):
        sel = [r for r in rows if r["kind"] == kind]
        hist = np.bincount([r["best"][0] for r in sel], minlength=5)
        acc = sum(r["ok"] for r in sel)
        lines.append(f"- {kind}: {len(sel)} pairs, best placement agreed by 0/1/2/3/4 tiles in "
                     f"{'/'.join(str(int(v)) for v in hist[:5])} pairs; accepted {acc}")
    return "\n".join(lines)
