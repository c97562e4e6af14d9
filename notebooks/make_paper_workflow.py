"""Write notebooks/paper_workflow.ipynb (without outputs) with nbformat.

    python notebooks/make_paper_workflow.py

The notebook reproduces the workflow and figures of Sun et al. (Micron 2024)
on the synthetic cathode phantom, checking each step against the phantom's
ground truth. ``tests/test_notebook.py`` executes it top to bottom.
"""

from __future__ import annotations

from pathlib import Path

import nbformat
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

NOTEBOOK = Path(__file__).resolve().parent / "paper_workflow.ipynb"

#: Include the ``fuse`` cells (after step 5). Off while ``pfibsims.fuse`` does not
#: run yet (pipeline.py in progress when the notebook was written): turn on,
#: rerun this script, and ``tests/test_notebook.py`` executes them.
WITH_FUSE = True

CELLS: list[tuple[str, str]] = [
    ("md", """# The paper's workflow on a phantom

This notebook follows Sun et al., *Correlative micron-scale 3D element mapping
with a plasma FIB, EDS and SIMS* (Micron 2024), sections 2.3-2.4 and 3, step by
step with **pfibsims**, on the library's synthetic cathode phantom: a composite
of LLZTO (the Zr-bearing solid electrolyte), LCO (the Li/Co active material),
Al2O3 and Super P carbon, with Li depleted in a shell near LLZTO surfaces.
Because the phantom knows its own truth (phases, Li, drift, the SIMS-to-EDS
transform), every step is checked, not just shown.

The phantom is smaller than the paper's run (12 slices of 108 x 176 EDS pixels
instead of 39 of 216 x 352) so the notebook runs in well under a minute; the
pixel sizes are the paper's: 81.4 nm EDS, 72 nm SIMS, 60 nm slices."""),
    ("code", """%matplotlib inline
import numpy as np
import matplotlib.pyplot as plt
import pfibsims as pfs
from pfibsims import plot
from pfibsims.dataset import history
from pfibsims.segmentation import depletion_depth"""),
    ("md", """## 1. The acquisitions

`cathode` returns the EDS stack (channels `Zr_La`, `Co_La`, `Al_Ka`, `C_Ka`,
Poisson counts) on the sample frame, the SIMS stack (`Li6`) on its own,
rotated, shifted and drifting frame, and the truth. Everything is lazy: the
maps are dask arrays, generated chunk by chunk when something needs them."""),
    ("code", """eds, sims, truth = pfs.synthetic.cathode(seed=0, n_slices=12, eds_shape=(108, 176), sims_shape=(250, 250))
T_true = pfs.Affine.from_attrs(truth.attrs)   # SIMS -> EDS, pulls: EDS-frame point -> SIMS coordinate
print(pfs.Grid.of(eds))
print(pfs.Grid.of(sims))
eds"""),
    ("md", """## 2. Intensity histograms and normalisation (Figs. 2 and 3)

EDS and SIMS counts live on different scales. The paper maps both to 8-bit
gray levels by min-max scaling, eq. (1), `x* = (x - x_min) / (x_max - x_min)`,
or by the log transformation, eq. (2), `x* = log10 x / log10 x_max`. Fig. 2
compares the histograms: min-max spreads the counts over the gray scale, the
log crowds them to the high gray levels, especially for SIMS."""),
    ("code", """plot.histograms([eds.Zr_La, sims.Li6])"""),
    ("md", """Fig. 3: min-max scaling is at the mercy of one bright outlier; weak pixels
round to gray level 0 and are lost ("falsely removed pixels", panel g),
while the log only stretches the dynamic range (panel h). That is why the paper
goes on with the log normalisation."""),
    ("code", """plot.normalization(eds.Zr_La)"""),
    ("code", """norm = pfs.normalize(eds, method="log", zeros="clip")   # eq. 2; counts of 0 -> gray level 0
u8 = pfs.to_uint8(norm)
print(u8.Zr_La.dtype, int(u8.Zr_La.max()), history(u8)[-2]["step"], "->", history(u8)[-1]["step"])"""),
    ("md", """## 3. Drift between slices

Between milling steps the sample drifts in the SIMS image. `estimate_drift`
measures each slice's shift from the previous one by sub-pixel phase
correlation (summed, so slice 0 is the reference) and `resample(..., drift=)`
removes it. The phantom knows the true drift."""),
    ("code", """drift = pfs.estimate_drift(sims.Li6, trend="keep")  # the whole drift: the phantom's structures do not lean
err = np.abs(drift.values - truth.drift.values)
print(f"drift over the run: {np.abs(truth.drift.values).max():.0f} nm; "
      f"largest error of the estimate: {err.max():.0f} nm ({err.max() / 72:.2f} SIMS pixels)")
sims_c = pfs.resample(sims, onto=sims, drift=drift)"""),
    ("md", """## 4. Registration of SIMS onto EDS

The paper aligned the two datasets by hand (Avizo's Transform Editor) and then
refined with Register Images. `register` does both automatically: a global
search, then a local refinement of a rigid transform, maximising the mutual
information `MI = sum p(a, b) log(p(a, b) / (p(a) p(b)))` between the SIMS Li
intensity and a label map of the EDS channels, which needs no linear relation
between Li and any element. We compare the result with the true transform at
the corners of the EDS field."""),
    ("code", """reg = pfs.register(sims_c.Li6, eds, model="rigid")
T = reg.transform
print(reg.report.flags or "no warning flags", "| overlap", round(reg.report.overlap, 2), "| tiles agreeing", reg.report.agreement)
(y0, y1), (x0, x1) = pfs.Grid.of(eds, dims=("y", "x")).extent
corners = np.array([[y0, x0], [y0, x1], [y1, x0], [y1, x1]])
print("rotation found", round(T.decompose()["rotation"], 2), "deg; true", round(T_true.decompose()["rotation"], 2), "deg")
print(f"largest corner error: {np.linalg.norm(T(corners) - T_true(corners), axis=1).max():.0f} nm")"""),
    ("md", """## 5. Resampling onto the EDS grid (Lanczos)

As in the paper (Avizo's Resample with a Lanczos filter), the SIMS data go
onto the EDS grid, 81.4 x 81.4 x 60 nm voxels, through the registration:
`L(x) = sinc(x) sinc(x / a)`, `a = 3`. `coverage` marks the EDS voxels the
SIMS field covers."""),
    ("code", """grid = pfs.Grid.of(eds, dims=("y", "x"))
li = pfs.resample(sims_c, onto=grid, transform=T, kernel="lanczos", a=3)
inside = pfs.coverage(sims_c, onto=grid, transform=T)
vol = eds.assign(Li6=li.Li6)
r_truth = pfs.pearson(vol.Li6, truth.li, mask=inside)
print(f"fused Li vs the true Li: r = {float(r_truth):.3f}  ({r_truth.n} voxels)")
plot.registration_overlay(truth.li, sims.Li6, after=vol.Li6)"""),
    ("md", """The overlay shows the true Li map (red) with the SIMS Li (green) placed on
the EDS grid by its own coordinates (left) and by drift correction plus
registration (right): aligned features turn yellow."""),
    ("md", """## 6. Correlating Li and Zr (eq. 3, Fig. 6)

The paper measures how Li (SIMS) and Zr (EDS) go together voxel by voxel
with the sample covariance, eq. (3),
`Cov(A, B) = sum (A_i - mu)(B_i - nu) / (n - 1)`, the joint ("correlation")
histogram, and the per-voxel product `(A_i - mu)(B_i - nu)` mapped to 0-255
(Fig. 6c) with a line profile across a particle (Fig. 6d)."""),
    ("code", """c = pfs.covariance(vol.Li6, vol.Zr_La, mask=inside)
r = pfs.pearson(vol.Li6, vol.Zr_La, mask=inside)
print(f"Cov(Li, Zr) = {float(c):.3g} {c.attrs.get('units', '')};  Pearson r = {float(r):.3f} "
      f"[{r.ci_low:.3f}, {r.ci_high:.3f}]")
plot.joint_histogram(vol.Li6, vol.Zr_La, mask=inside)"""),
    ("code", """plot.element_maps(vol.Li6, vol.Zr_La)"""),
    ("md", """As in the paper, Li-rich and Zr-rich regions are largely separate (LCO holds
most of the Li), so the covariance is negative; within LLZTO particles the
Li x Zr product is highest away from the Li-depleted surface shell."""),
    ("md", """## 7. Phases from the EDS maps

The smoothed EDS counts are split into classes (k-means), and each class is
named from the paper's table: LLZTO (Zr), LCO (Co), Al2O3 (Al), Super P (C
alone) and the matrix between resolved particles; a class that matches none
is "unassigned". The phantom's true phase map scores the result, phase by
phase name."""),
    ("code", """phases = pfs.classify_phases(eds)
names, true_names = phases.attrs["flag_meanings"].split(), truth.phase.attrs["flag_meanings"].split()
same = sum((phases == names.index(n)) & (truth.phase == k) for k, n in enumerate(true_names))
print(f"voxels labelled as in the truth: {float(same.mean()):.1%}")
plot.orthoslices(vol, channel="Zr_La", labels=phases)"""),
    ("md", """## 8. Li per phase, and Li versus distance from the LLZTO surface

`phase_statistics` gives the Li distribution in each phase (the covered voxels
only); `boundary_profile` gives Li against the signed distance from LLZTO
surfaces (negative inside the particles), from the Euclidean distance on the
anisotropic voxel grid (voxels outside the SIMS field are NaN and left out). The phantom has a Li-depleted shell below the LLZTO
surface; `depletion_depth` fits its depth."""),
    ("code", """stats = pfs.phase_statistics(vol.Li6.where(inside), phases)
stats[["count", "fraction", "mean", "std", "median"]].to_dataframe()"""),
    ("code", """near = pfs.boundary_profile(vol.Li6, phases, "LLZTO", distances=("-1 um", "1 um"), bins="40 nm")
depth = depletion_depth(near)
fig, ax = plt.subplots(figsize=(6, 3.5))
ax.errorbar(near.distance / 1e3, near["mean"], yerr=near["sem"], fmt="o-", ms=3)
ax.axvline(0, color="k", lw=0.8)
ax.set_xlabel("signed distance from the LLZTO surface (um), negative inside")
ax.set_ylabel("Li6 (counts)")
ax.set_title(f"depletion depth: {float(depth['depth']):.0f} nm (truth {truth.attrs['depletion_depth']})")
fig.tight_layout()"""),
    ("md", """## 9. From counts to concentration

SIMS counts are not concentrations: the paper warns that "the SIMS yield of
species under the ion beam depends on factors in addition to local element
concentration", and lists as future work "methods to calibrate the Li-based
SIMS intensity counts with local Li elemental concentration". The volume holds
its own standards: LLZTO (Li6.4La3Zr1.4Ta0.6O12, 27.35 at. % Li) and LCO
(LiCoO2, 25 at. %), identified by EDS. `quantify` calibrates one sensitivity
factor per standard on its interior (voxels deeper than `interior` inside it,
away from the depleted surface and the blur of neighbours) and converts each
voxel with the factor of its own phase; with `psf` (the SIMS probe's Gaussian
sigma) voxels that mix phases are corrected by a linear mixing model. The
phantom's Li yield is about twice as high in LCO as in LLZTO (its matrix
effect), and it knows the concentration truth, `truth.li_percent`."""),
    ("code", """import json
bg = json.loads(truth.attrs["sims_counts"])["Li6"]["background"]   # detector background (on an instrument: measured off-sample)
q = pfs.quantify(vol.Li6, phases, interior="400 nm", background=bg, psf=truth.attrs["sims_blur"])
cal = json.loads(q.attrs["pfibsims:calibration"])["phases"]
print("relative sensitivity LCO / LLZTO:", round(cal["LCO"]["relative_sensitivity"], 2),
      "(true yield ratio", round(json.loads(truth.attrs["sims_yield"])["LCO"] / json.loads(truth.attrs["sims_yield"])["LLZTO"], 2), ")")
one = pfs.quantify(vol.Li6, phases, interior="400 nm", background=bg, standards={"LCO": "LiCoO2"}, rsf={"LLZTO": "LCO"})
true = truth.li_percent.values
value = lambda labels, name: labels.attrs["flag_values"][labels.attrs["flag_meanings"].split().index(name)]
for name in ("LLZTO", "LCO"):
    m = (phases.values == value(phases, name)) & (truth.phase.values == value(truth.phase, name))   # labelled as in the truth
    own, glob = (np.nanmedian(abs(x.values[m] - true[m]) / true[m]) for x in (q, one))
    print(f"{name}: median error vs truth {own:.1%} with its own factor, {glob:.1%} with LCO's factor for all")
pfs.phase_statistics(q, phases)[["mean", "median"]].to_dataframe()"""),
    ("md", """Per voxel, the counting statistics dominate the error at this dose (about 30
counts in LCO: 18 %); the `uncertainty` coordinate carries them, with the
calibration's. The depletion of LLZTO surfaces now reads in atomic percent:"""),
    ("code", """near_q = pfs.boundary_profile(q, phases, "LLZTO", distances=("-1 um", "1 um"), bins="40 nm")
fit = depletion_depth(near_q, exclude="100 nm")
fig, ax = plt.subplots(figsize=(6, 3.5))
ax.errorbar(near_q.distance / 1e3, near_q["mean"], yerr=near_q["sem"], fmt="o-", ms=3)
ax.axvline(0, color="k", lw=0.8)
ax.set_xlabel("signed distance from the LLZTO surface (um), negative inside")
ax.set_ylabel("Li (at. %)")
ax.set_title(f"Li {float(fit['surface']):.1f} -> {float(fit['bulk']):.1f} at. % over {float(fit['depth']):.0f} nm "
             f"(truth {json.loads(truth.attrs['li_percent'])['LLZTO_surface']:.1f} -> {json.loads(truth.attrs['li_percent'])['LLZTO_bulk']:.1f})")
fig.tight_layout()"""),
    ("md", """## What the run recorded

Every step appended itself, with its parameters, to the history of what it
returned (once per dataset: the CF `history` string, one line per step, and the
records as JSON under `pfibsims:history`, read with `pfibsims.dataset.history`):
the provenance of each number above."""),
    ("code", """print(vol.attrs["history"])
[(h["step"], h.get("input", "")) for h in history(vol)]"""),
]


#: Step 5 again, in one call; inserted before step 6 when ``WITH_FUSE``.
FUSE_CELLS: list[tuple[str, str]] = [
    ("md", """### All of it in one call: `fuse`

`fuse` composes the same public steps: drift estimation, registration, and
resampling of every SIMS channel onto the EDS grid with the drift and the
transform composed into one transform per slice (each voxel interpolated
once), plus a `coverage` mask; its attrs hold the transform, the drift, the
registration report and the history."""),
    ("code", """fused = pfs.fuse(eds, sims)
T_fused = pfs.Affine.from_attrs(fused.attrs)
r_fused = pfs.pearson(fused.Li6, truth.li, mask=fused.coverage)
print(sorted(fused.data_vars))
print(f"fuse: largest corner error {np.linalg.norm(T_fused(corners) - T_true(corners), axis=1).max():.0f} nm; "
      f"fused Li vs the true Li: r = {float(r_fused):.3f}")"""),
]


def build(with_fuse: bool = WITH_FUSE) -> nbformat.NotebookNode:
    """The notebook, cells in order, no outputs."""
    cells_src = list(CELLS)
    if with_fuse:
        at = next(i for i, (_, src) in enumerate(cells_src) if src.startswith("## 6."))
        cells_src[at:at] = FUSE_CELLS
    cells = [new_markdown_cell(src) if kind == "md" else new_code_cell(src) for kind, src in cells_src]
    nb = new_notebook(cells=cells)
    nb.metadata["kernelspec"] = {"display_name": "Python 3", "language": "python", "name": "python3"}
    nb.metadata["language_info"] = {"name": "python"}
    for i, cell in enumerate(nb.cells):  # stable ids: the file does not change when rebuilt
        cell["id"] = f"cell-{i:02d}"
    return nb


def main() -> None:
    nbformat.write(build(), NOTEBOOK)
    print(f"wrote {NOTEBOOK}")


if __name__ == "__main__":
    main()
