"""From Li counts to Li concentration.

SIMS counts are not concentrations: the ion yield of Li depends on the matrix
it sputters from (Sun et al., Micron 2024, section 3: "the SIMS yield of
species under the ion beam depends on factors in addition to local element
concentration"). A FIB-SIMS volume holds its own standards: phases of known
stoichiometry identified by EDS. :func:`quantify` calibrates one relative
sensitivity factor per such phase on its interior and converts every voxel
with the factor of its own phase (never one global factor), correcting
voxels that mix phases by a linear mixing model. Isotope ratios
(:func:`isotope_ratio`, re-exported here) live in :mod:`pfibsims.isotopes`.
"""

from __future__ import annotations

import json
import math
import numbers
from collections.abc import Mapping
from typing import Any

import dask.array as da
import numpy as np
import xarray as xr

from ._chemistry import atom_fractions, atoms_per_cm3, element_symbol, theoretical_density
from ._engine.grouped import grouped_moments
from ._engine.smooth import gaussian
from ._xr import as_array, as_counts, check_same_grid, spacing_nm, spatial_dims
from .dataset import history, history_attrs, record
from .errors import DataModelError, PfibsimsError
from .isotopes import isotope_ratio
from .segmentation.distance import label_distance
from .segmentation.labels import flags, nonnegative
from .units import LENGTH_UNIT, length_nm, parse_quantity

__all__ = ["CATHODE_STANDARDS", "isotope_ratio", "quantify"]

#: The standards of the paper's cathode: phase name -> nominal formula.
CATHODE_STANDARDS = {"LLZTO": "Li6.4La3Zr1.4Ta0.6O12", "LCO": "LiCoO2"}

#: Attribute holding the calibration (JSON): per phase, the nominal content and fitted factors.
CALIBRATION = "pfibsims:calibration"

# A phase whose interior holds fewer voxels is calibrated (standard) or averaged (neighbour) on all its voxels.
_MIN_INTERIOR = 30


# -- inputs ------------------------------------------------------------------------
def _array(x: xr.DataArray, dims: tuple[str, ...]) -> Any:
    return as_array(x.transpose(*dims).data)


def _standards(standards: Any, names: list[str], element: str) -> dict[str, tuple[str, float]]:
    """``{phase: (formula, nominal atomic percent of element)}``."""
    element_symbol(element)
    if not isinstance(standards, Mapping) or not standards:
        raise PfibsimsError(f"standards: expected a mapping phase -> formula such as {CATHODE_STANDARDS}, got {standards!r}")
    out = {}
    for phase, formula in standards.items():
        if phase not in names:
            raise DataModelError(f"standards: phase {phase!r} is not among the labels' phases {names}")
        x = atom_fractions(formula, name=f"standards[{phase!r}]").get(element, 0.0)
        if not x > 0:
            raise PfibsimsError(f"standards[{phase!r}]: expected a formula containing {element}, got {formula!r}")
        out[phase] = (formula, 100.0 * x)
    return out


def _background(background: Any, names: list[str]) -> float | str:
    if isinstance(background, str):
        if background not in names:
            raise DataModelError(f"background: expected counts or a phase among {names}, got {background!r}")
        return background
    if isinstance(background, bool) or not isinstance(background, numbers.Real) or not math.isfinite(background):
        raise PfibsimsError(f"background: expected counts (a number >= 0) or a phase name, got {background!r}")
    if background < 0:
        raise PfibsimsError(f"background: expected counts >= 0, got {background!r}")
    return float(background)


# -- calibration ---------------------------------------------------------------------
def _interior_groups(lab: Any, lut: np.ndarray, spacing: tuple[float, ...], interior: float) -> Any:
    """Group ``lut[label]`` where a voxel is deeper than ``interior`` inside its phase, else -1 (one
    distance transform for all phases: from the nearest face between two different labels)."""
    reach = interior + max(s for s in spacing if math.isfinite(s))
    depth = label_distance(lab, sampling=spacing, reach=reach)
    where = da.where if isinstance(depth, da.Array) else np.where
    groups = where(lab < lut.size, lab, 0)  # labels outside the table take a masked slot below
    return where((depth > interior) & (lab < lut.size), groups, -1)


def _phase_moments(li: Any, groups: Any, n: int, lut: np.ndarray | None = None) -> tuple[np.ndarray, ...]:
    s = grouped_moments(li, groups, n, lut=lut)
    return s["count"], s["mean"], s["std"]


def _calibrate(li, lab, values, names, spacing, interior, standards, background, rsf, mixing) -> dict[str, dict]:
    """Per phase: interior count, mean, its standard error, background-subtracted level, sensitivity.

    Only the phases that are used are measured: the standards, the background phase, and with the
    mixing model every phase (its level is its neighbours' correction); one distance transform and
    one pass of grouped moments for all of them.
    """
    n = len(values)
    need = [mixing or name in standards or name == background for name in names]
    lut = np.full(max(values) + 1, -1, dtype=np.int64)
    lut[[v for v, k in zip(values, need, strict=True) if k]] = [i for i, k in enumerate(need) if k]
    count, mean, std = _phase_moments(li, _interior_groups(lab, lut, spacing, interior), n, lut)
    thin = [k for k in range(n) if need[k] and count[k] < _MIN_INTERIOR]
    if thin:  # no interior (a coating): the mean over all its voxels
        all_count, all_mean, all_std = _phase_moments(li, lab, n, lut)
    table: dict[str, dict] = {}
    for k, name in enumerate(names):
        if not need[k]:
            continue
        c, m, s = (all_count[k], all_mean[k], all_std[k]) if k in thin else (count[k], mean[k], std[k])
        table[name] = {"label": values[k], "voxels": int(c), "interior": k not in thin, "mean_counts": float(m),
                       # s: population std; one voxel: its counting (Poisson) error, at least one count, as a voxel's
                       "sem_counts": float(s / math.sqrt(c - 1)) if c > 1 else math.sqrt(max(float(m), 1.0)) if c else math.nan}
    for name, arg in [*((s, "standards") for s in standards), *([(background, "background")] if isinstance(background, str) else [])]:
        if table[name]["voxels"] == 0:
            where = f"standards[{name!r}]" if arg == "standards" else arg
            raise PfibsimsError(f"{where}: the volume holds no voxel of phase {name!r} with finite counts; leave it out of {arg} (or check the labels)")
    b, sb = (table[background]["mean_counts"], table[background]["sem_counts"]) if isinstance(background, str) else (background, 0.0)
    for name, row in table.items():  # counts above background; the background phase's own level is 0 exactly
        row["level"], row["sem_level"] = row["mean_counts"] - b, 0.0 if name == background else math.hypot(row["sem_counts"], sb)
    for name, (formula, nominal) in standards.items():
        row = table[name]
        if not row["interior"]:
            raise PfibsimsError(
                f"interior: standard {name!r} has {count[names.index(name)]} voxels deeper than {interior:g} nm "
                f"(at least {_MIN_INTERIOR} needed); give a smaller interior"
            )
        if not row["level"] > 0:
            raise PfibsimsError(f"standards[{name!r}]: its interior holds no counts above the background ({row['level']:.4g})")
        row.update(formula=formula, nominal_percent=nominal, sensitivity=row["level"] / nominal,
                   sensitivity_rel_uncertainty=row["sem_level"] / row["level"])
    for name, given in (rsf or {}).items():
        if name not in names:
            raise DataModelError(f"rsf: phase {name!r} is not among the labels' phases {names}")
        if name in standards:
            raise PfibsimsError(f"rsf[{name!r}]: {name!r} is a standard, calibrated on its interior; give rsf only for phases without a standard")
        table.setdefault(name, {"label": values[names.index(name)]})
        if isinstance(given, str):
            if given not in standards:
                raise PfibsimsError(f"rsf[{name!r}]: expected a standard phase among {list(standards)} or a number, got {given!r}")
            src = table[given]
            table[name].update(sensitivity=src["sensitivity"], sensitivity_rel_uncertainty=src["sensitivity_rel_uncertainty"],
                               sensitivity_from=given)
        elif isinstance(given, numbers.Real) and not isinstance(given, bool) and given > 0:
            table[name].update(sensitivity=1.0 / float(given), sensitivity_rel_uncertainty=0.0, sensitivity_from="given")
        else:
            raise PfibsimsError(f"rsf[{name!r}]: expected a positive factor (atomic percent per count) or a standard phase, got {given!r}")
    ref = table[next(iter(standards))]["sensitivity"]
    for row in table.values():
        if "sensitivity" in row:
            row["rsf"] = 1.0 / row["sensitivity"]  # atomic percent per count above background
            row["relative_sensitivity"] = row["sensitivity"] / ref
    return {"background": b, "phases": table}


# -- per-voxel conversion ---------------------------------------------------------------
def _tables(cal: dict, values: list[int], names: list[str], scale: dict[str, float]) -> dict[str, np.ndarray]:
    """Lookup tables indexed by label value (NaN where a phase is not quantifiable)."""
    size = max(values) + 1
    t = {k: np.full(size, np.nan) for k in ("s", "urel", "level", "ulevel", "scale")}
    for v, name in zip(values, names, strict=True):
        row = cal["phases"].get(name, {})
        t["level"][v], t["ulevel"][v] = row.get("level", np.nan), row.get("sem_level", np.nan)
        if "sensitivity" in row:
            t["s"][v], t["urel"][v], t["scale"][v] = row["sensitivity"], row["sensitivity_rel_uncertainty"], scale[name]
    t["level"] = np.nan_to_num(t["level"])
    t["ulevel"] = np.nan_to_num(t["ulevel"])
    return t


def _convert_block(li, lab, *, t, background, sigma, halo, values, min_fraction) -> np.ndarray:
    """(2, ...) float32: concentration and its standard uncertainty for one (halo-padded) block."""
    lab = np.asarray(lab)
    inner = (slice(None),) * (lab.ndim - 2) + (slice(halo, lab.shape[-2] - halo), slice(halo, lab.shape[-1] - halo))
    idx = np.clip(lab[inner].astype(np.intp), 0, t["s"].size - 1)
    li = np.asarray(li, dtype=np.float64)[inner]
    known = np.isin(lab[inner], values)
    signal = li - background
    var = np.maximum(li, 1.0)  # Poisson, at least one count: no count observed is not a rate known to be 0
    own = np.ones(li.shape)
    if sigma is not None:
        own = np.zeros(li.shape)
        for v in values:
            f = gaussian((lab == v).astype(np.float32), sigma)[inner]
            mine = idx == v
            own = np.where(mine, f, own)
            signal = signal - np.where(mine, 0.0, f * t["level"][v])
            var = var + np.where(mine, 0.0, (f * t["ulevel"][v]) ** 2)
    s = t["s"][idx]
    denom = np.maximum(own, min_fraction) * s
    c = signal / denom
    u = np.sqrt(var / denom**2 + (c * t["urel"][idx]) ** 2)
    bad = ~known | (own < min_fraction) | ~np.isfinite(li)
    out = np.stack([c * t["scale"][idx], u * t["scale"][idx]])
    out[:, bad] = np.nan
    return out.astype(np.float32)


def _convert(li: Any, lab: Any, sigma: tuple[float, ...] | None, **kw: Any) -> Any:
    halo = 0 if sigma is None else int(4.0 * max(sigma) + 0.5)
    if not isinstance(li, da.Array) and not isinstance(lab, da.Array):
        pad = [(0, 0)] * (lab.ndim - 2) + [(halo, halo)] * 2
        return _convert_block(np.pad(li, pad), np.pad(lab, pad, mode="edge"), sigma=sigma, halo=halo, **kw)
    li, lab = da.asarray(li), da.asarray(lab)
    depth = {li.ndim - 2: halo, li.ndim - 1: halo}
    small = {ax: max(max(li.chunks[ax]), min(li.shape[ax], 2 * h)) for ax, h in depth.items() if min(li.chunks[ax]) < h}
    li = li.rechunk(small) if small else li  # overlaps need chunks at least as deep as the halo
    lab = lab.rechunk(li.chunks)
    if halo:
        li = da.overlap.overlap(li, depth=depth, boundary=0)
        lab = da.overlap.overlap(lab, depth=depth, boundary="nearest")
    chunks = ((2,),) + tuple(tuple(c - 2 * depth.get(ax, 0) for c in ch) for ax, ch in enumerate(li.chunks))
    return da.map_blocks(_convert_block, li, lab, new_axis=0, chunks=chunks, dtype=np.float32,
                         meta=np.empty((0,) * (li.ndim + 1), np.float32), sigma=sigma, halo=halo, **kw)


def _unit_scale(units: str, densities: Any, cal: dict, names: list[str]) -> tuple[str, dict[str, float]]:
    """The output unit and, per phase, the factor from atomic percent to it."""
    phases = [n for n, row in cal["phases"].items() if "sensitivity" in row]
    if units in ("percent", "%", "at.%"):
        return "percent", dict.fromkeys(phases, 1.0)
    if not isinstance(units, str) or "".join(units.split()).replace("^", "**") not in ("atoms/cm**3", "atom/cm**3", "1/cm**3", "cm**-3"):
        raise PfibsimsError(f"units: expected 'percent' or 'atoms/cm^3', got {units!r}")
    densities = dict(densities or {})
    if unknown := [k for k in densities if k not in names]:
        raise DataModelError(f"densities: phase {unknown[0]!r} is not among the labels' phases {names}")
    scale = {}
    for name in phases:
        formula = cal["phases"][name].get("formula")
        if formula is None:
            raise PfibsimsError(f"units: atoms/cm^3 needs the formula of phase {name!r}; it is quantified with a given rsf, give it as a standard")
        rho = (float(parse_quantity(densities[name], "g/cm**3", name=f"densities[{name!r}]").magnitude) if name in densities
               else theoretical_density(formula))
        if not (math.isfinite(rho) and rho > 0):
            raise PfibsimsError(f"densities[{name!r}]: expected a positive density such as '5.05 g/cm^3', got {densities[name]!r}")
        cal["phases"][name]["density_g_cm3"] = rho
        scale[name] = atoms_per_cm3(formula, rho) / 100.0
    return "cm**-3", scale


def quantify(
    li: xr.DataArray,
    phases: xr.DataArray,
    *,
    standards: Mapping[str, str] = CATHODE_STANDARDS,
    interior: Any = "500 nm",
    background: Any = 0.0,
    psf: Any = None,
    rsf: Mapping[str, Any] | None = None,
    units: str = "percent",
    densities: Mapping[str, Any] | None = None,
    min_fraction: float = 0.5,
    element: str = "Li",
) -> xr.DataArray:
    """Li concentration from SIMS counts, with one sensitivity factor per phase.

    Calibration: each standard phase is assumed to hold its nominal
    stoichiometry (``standards``, formulae parsed, e.g. LiCoO2 -> 25 at. %
    Li) in its interior, the voxels deeper than ``interior`` inside it (away
    from surfaces that may be depleted, and from the blur of neighbours). Its
    sensitivity is ``S = (mean counts there - background) / nominal``
    (counts per at. %); the relative sensitivity factor ``RSF = 1 / S``
    (at. % per count). A phase with no standard is not quantifiable (NaN)
    unless ``rsf`` gives it a factor. One global factor is never used: the
    matrix effect (a yield that differs by phase) is the point.

    Conversion, voxel by voxel, with the factor of the voxel's own phase
    ``p``. With ``psf`` (the SIMS probe's Gaussian standard deviation) the
    voxels that mix phases are corrected by a linear mixing model: the phase
    fractions ``f_q`` in the probe footprint are the EDS-derived labels
    blurred in-plane by ``psf``, each neighbour phase ``q`` contributes ``f_q``
    times its mean level (its interior mean above background; for a phase
    with no interior, e.g. a thin coating, the mean over all its voxels), and
    ``c = (counts - background - sum_{q != p} f_q level_q) / (f_p S_p)``;
    voxels whose own fraction is below ``min_fraction`` are NaN. Without
    ``psf``: ``c = (counts - background) / S_p``.

    Uncertainty (one standard uncertainty, a coordinate ``uncertainty`` in
    the output's units): counting statistics (Poisson variance = the
    counts, at least one count; after resampling, which averages
    neighbouring SIMS pixels, this overstates it a little), the neighbours' levels, and the calibration (the
    standard error of the standard's interior mean, and of a background
    phase's, treating their voxels as independent: a lower bound, since
    neighbouring voxels share the probe; a phase of one voxel takes that
    voxel's counting error).

    Computes: the calibration, now: one distance transform of the labels
    (depth inside the own phase, from the nearest face between two phases;
    lazy and chunked) and one pass over the counts and labels for the
    per-phase interior moments of the phases it measures (the standards, a
    background phase, with ``psf`` every phase); one more pass, over all
    voxels, only if a measured phase has no interior. The map is lazy when the inputs are (one
    task per chunk, with an in-plane halo of 4 ``psf`` for the mixing model). Measured, uneven slice
    depths: the interior depth takes their median step along ``z`` (an approximation across slices).

    Parameters
    ----------
    li : xarray.DataArray
        SIMS counts (units ``counts``) on the grid of ``phases``, e.g.
        ``vol.Li6`` from :func:`pfibsims.fuse`; NaN outside the SIMS field.
    phases : xarray.DataArray
        Phase labels with CF flags (:func:`pfibsims.classify_phases`).
    standards : mapping
        Phase name -> nominal formula; default :data:`CATHODE_STANDARDS`.
    interior : length
        Depth inside a phase beyond which a voxel counts as interior.
    background : float or str
        Counts without Li (detector background), or the name of a Li-free
        phase whose interior mean is taken as the background.
    psf : length, optional
        Gaussian standard deviation of the SIMS probe (in-plane), for the
        mixing model.
    rsf : mapping, optional
        Phase -> factor (at. % per count) or the name of a standard whose
        factor it borrows, for phases without a standard.
    units : {"percent", "atoms/cm^3"}
        Atomic percent, or atoms per cm^3 from each phase's density (from
        ``densities`` or the table of :mod:`pfibsims._chemistry`).
    densities : mapping, optional
        Phase -> density, e.g. ``{"LCO": "5.05 g/cm^3"}``.
    min_fraction : float
        Smallest own-phase fraction of a voxel that is converted (mixing).
    element : str
        The element counted (its atom fraction in the standards' formulae).

    Returns
    -------
    xarray.DataArray
        ``float32`` concentration, lazy when the inputs are; attrs ``units``
        (``"percent"`` or ``"cm**-3"``) and ``pfibsims:calibration`` (JSON:
        background, and per phase the voxels used, mean counts, level,
        sensitivity, ``rsf``, ``relative_sensitivity``, nominal percent);
        coordinate ``uncertainty``.

    Raises
    ------
    UnitsError
        When ``li`` is not in counts, or a length or density does not parse.
    DataModelError
        On a phase that the labels do not hold, or labels without flags.
    PfibsimsError
        On a formula without the element, a standard without interior, or an
        invalid option.

    Examples
    --------
    >>> import numpy as np, xarray as xr
    >>> from pfibsims.dataset import stack
    >>> lab = np.zeros((1, 40, 40), np.uint8); lab[:, :, 20:] = 1
    >>> counts = np.where(lab == 0, 50.0, 20.0)   # LCO left, LLZTO right: 2.5x apart, not 25/27
    >>> ds = stack({"Li6": counts}, pixel_size="100 nm")
    >>> ph = xr.DataArray(lab, dims=ds.Li6.dims, coords=ds.Li6.coords,
    ...                   attrs={"flag_values": [0, 1], "flag_meanings": "LCO LLZTO"})
    >>> q = quantify(ds.Li6, ph, standards={"LCO": "LiCoO2", "LLZTO": "Li6.4La3Zr1.4Ta0.6O12"},
    ...              interior="500 nm")
    >>> [round(float(v), 2) for v in np.unique(q)], q.attrs["units"]
    ([25.0, 27.35], 'percent')
    """
    li = as_counts(li, "li")
    dims = spatial_dims(li, "li")
    values, names = flags(phases, "phases")
    check_same_grid(li, phases, name="phases", ref="li")
    spacing = spacing_nm(li, "li", uneven_z="median")
    interior_nm = length_nm(interior, name="interior")
    if not interior_nm >= 0:
        raise PfibsimsError(f"interior: expected a length >= 0 such as '500 nm', got {interior!r}")
    sigma = None
    if psf is not None:
        psf_nm = length_nm(psf, name="psf")
        if not psf_nm > 0:
            raise PfibsimsError(f"psf: expected a positive length such as '80 nm', got {psf!r}")
        sigma = tuple(0.0 if i < len(dims) - 2 else psf_nm / s for i, s in enumerate(spacing))
    for arg, given, what in (("rsf", rsf, "factor such as {'SP': 1.25}"), ("densities", densities, "density such as {'LCO': '5.05 g/cm^3'}")):
        if given is not None and not isinstance(given, Mapping):
            raise PfibsimsError(f"{arg}: expected a mapping phase -> {what}, got {given!r}")
    if isinstance(min_fraction, bool) or not isinstance(min_fraction, numbers.Real) or not 0 < min_fraction <= 1:
        raise PfibsimsError(f"min_fraction: expected a number in (0, 1], got {min_fraction!r}")
    table = _standards(standards, names, element)
    bg = _background(background, names)
    lab, shifted = nonnegative(_array(phases, dims), values)  # the tables are indexed by label value
    counts = _array(li, dims)
    cal = _calibrate(counts, lab, shifted, names, spacing, interior_nm, table, bg, rsf, sigma is not None)
    for row in cal["phases"].values():
        row["label"] = values[shifted.index(row["label"])]
    out_units, scale = _unit_scale(units, densities, cal, names)
    t = _tables(cal, shifted, names, scale)
    both = _convert(counts, lab, sigma, t=t, background=cal["background"], values=shifted, min_fraction=float(min_fraction))
    coords = {k: v for k, v in li.coords.items() if set(v.dims) <= set(dims)}
    long = f"{element} concentration" + (" (atomic percent)" if out_units == "percent" else "")
    out = xr.DataArray(both[0], dims=dims, coords=coords, name=element)
    out = out.assign_coords(uncertainty=(dims, both[1], {"units": out_units, "long_name": "standard uncertainty"}))
    out.attrs = {"units": out_units, "long_name": long, "element": element, CALIBRATION: json.dumps(cal),
                 **history_attrs(history(li))}
    return record(out, "quantify", standards=dict(standards), interior=f"{interior_nm:.6g} {LENGTH_UNIT}",
                  background=bg, psf=None if psf is None else f"{psf_nm:.6g} {LENGTH_UNIT}", rsf=dict(rsf or {}),
                  units=out_units, min_fraction=float(min_fraction), element=element)
