"""Every public function against bad arguments (issue 21): wrong types, units, NaN/inf, empty and 1-pixel inputs.

Each function has one valid call on small data (``TEMPLATES``); a case replaces one argument
with a hostile value (``DATA_POOL`` for the data arguments, ``OPTION_POOL`` for the options)
and runs the call, computing whatever it returns, in a child process (see fuzz_helpers) under
a memory limit and a timeout. A case may return, or raise a PfibsimsError; it must never crash
the process, hang, exhaust memory, or raise anything else. The cases are numerous, so CI runs
a deterministic sample of them (``PFIBSIMS_FUZZ_SCALE`` multiplies it; 0 runs them all).
"""

from __future__ import annotations

import os
import resource
from typing import Any

import numpy as np
import pytest
from fuzz_helpers import run_cases, summary

MEMORY_LIMIT = 3 * 2**30
TIMEOUT = 60.0
#: Cases run by CI (a deterministic sample; 0 = all).
SAMPLE = 120 * int(os.environ.get("PFIBSIMS_FUZZ_SCALE", "1"))


_FIXTURES: dict[str, Any] = {}


def _fixtures() -> dict[str, Any]:
    """Small valid inputs, built once in each child (no pickling of xarray objects)."""
    if not _FIXTURES:
        _FIXTURES.update(_build_fixtures())
    return _FIXTURES


def _build_fixtures() -> dict[str, Any]:
    import pfibsims as pfs

    rng = np.random.default_rng(0)
    shape = (3, 12, 16)
    yy, xx = np.mgrid[: shape[1], : shape[2]]
    disk = np.broadcast_to((yy - 6) ** 2 + (xx - 8) ** 2 < 30, shape)  # an LLZTO particle with an interior
    zr = np.where(disk, 80.0, 10.0) + rng.normal(0, 3, shape)
    co = np.where(disk, 5.0, 40.0) + rng.normal(0, 3, shape)
    li = 0.5 * zr + rng.normal(0, 3, shape) + 40
    eds = pfs.stack({"Zr_La": zr, "Co_La": co}, pixel_size="80 nm", slice_thickness="60 nm", modality="EDS")
    sims = pfs.stack({"Li6": li}, pixel_size="80 nm", slice_thickness="60 nm", modality="SIMS")
    labels = pfs.classify_phases(eds, phases={"LLZTO": {"Zr": "high"}, "LCO": {"Co": "high"}}, smooth="80 nm")
    return {
        "eds": eds, "sims": sims, "li": sims.Li6, "zr": eds.Zr_La, "labels": labels,
        "affine": pfs.Affine.identity(("y", "x")), "grid": pfs.Grid.of(eds, dims=["y", "x"]),
        "drift": pfs.estimate_drift(sims.Li6),
        "profile": pfs.boundary_profile(sims.Li6, labels, "LLZTO", distances=("-480 nm", "240 nm"), bins="80 nm"),
    }


#: function -> (positional args, keyword options) of one valid call; strings name fixtures.
TEMPLATES: dict[str, tuple[tuple[Any, ...], dict[str, Any]]] = {
    "stack": (({"Li6": "np:li"},), {"pixel_size": "72 nm", "slice_thickness": "60 nm", "modality": "SIMS", "chunks": None}),
    "dataset.validate": (("@eds",), {}),
    "dataset.record": (("@eds", "step"), {"x": 1}),
    "units.parse_length": (("81.4 nm",), {}),
    "units.parse_quantity": (("1.6 nA", "A"), {}),
    "Affine": (("eye3",), {}),
    "Affine.from_json": (("json",), {}),
    "Grid": (((12, 16), ("80 nm", "80 nm")), {}),
    "normalize": (("@li",), {"method": "log", "low": 1.0, "high": 99.0, "max_samples": 10000}),
    "to_uint8": (("@li",), {"range": None, "fill": 0}),
    "histogram": (("@li",), {"bins": 16, "range": None}),
    "joint_histogram": (("@li", "@zr"), {"bins": 16, "range": None}),
    "covariance": (("@li", "@zr"), {}),
    "covariance_map": (("@li", "@zr"), {"center": "mean"}),
    "pearson": (("@li", "@zr"), {"confidence": 0.95}),
    "spearman": (("@li", "@zr"), {"confidence": 0.95, "max_voxels": 10000}),
    "colocalisation": (("@li", "@zr"), {"n_iter": 5, "seed": 0}),
    "local_correlation": (("@li", "@zr"), {"window": "400 nm", "min_pairs": 3}),
    "profile": (("@li", ("100 nm", "100 nm"), ("600 nm", "900 nm")), {"width": None, "n": None, "kernel": "linear"}),
    "resample": (("@sims", "@eds"), {"kernel": "linear", "fill": float("nan"), "transform": "@affine", "drift": "@drift"}),
    "coverage": (("@sims", "@eds"), {"transform": "@affine"}),
    "estimate_drift": (("@li",), {"reference": "previous", "upsample": 4}),
    "register": (("@li", "@zr"), {"model": "translation", "metric": "phase"}),
    "classify_phases": (("@eds",), {"phases": {"LLZTO": {"Zr": "high"}}, "smooth": "80 nm"}),
    "phase_statistics": (("@li", "@labels"), {"bins": 64}),
    "particles": (("@labels", "LLZTO"), {"connectivity": 1}),
    "boundary_profile": (("@li", "@labels", "LLZTO"), {"distances": ("-200 nm", "200 nm"), "bins": "80 nm"}),
    "depletion_depth": (("@profile",), {"model": "ramp", "exclude": "0 nm"}),
    "quantify": (("@li", "@labels"), {"standards": {"LLZTO": "Li6.4La3Zr1.4Ta0.6O12", "LCO": "LiCoO2"}, "interior": "80 nm",
                                      "background": 1.0, "psf": "80 nm", "units": "percent", "min_fraction": 0.5}),
    "isotope_ratio": (("@li", "@li"), {"natural": "auto", "background": (1.0, 1.0), "dead_time": "20 ns",
                                       "dwell_time": "1 ms", "phases": "@labels", "confidence": 0.95}),
}

#: Hostile values of a data argument (made in the child from these names).
DATA_POOL = ["none", "str", "int", "list", "ndarray", "empty", "one-pixel", "all-nan", "with-inf", "complex",
             "renamed-dims", "nan-coords", "no-z", "bool", "all-zero", "constant"]
#: Hostile values of an option.
OPTION_POOL: list[Any] = [None, "garbage", -5, 0, 10**9, float("nan"), float("inf"), "-50 nm", "1.6 nA", "10**10**10 nm",
                          (10**5, 10**5), [], True, "object"]


def _hostile_data(kind: str, like: Any) -> Any:
    """``like`` (a DataArray, or a Dataset's first variable) made hostile; works on any dims (images, profiles)."""
    import xarray as xr

    if kind in ("none", "str", "int", "list", "ndarray"):
        return {"none": None, "str": "abc", "int": 3, "list": [1, 2], "ndarray": np.ones((4, 4))}[kind]
    da = like if isinstance(like, xr.DataArray) else (next(iter(like.data_vars.values())) if isinstance(like, xr.Dataset) else None)
    if da is None:
        return None
    da = da.copy(deep=True)
    last = da.dims[-1]
    if kind == "empty":
        out = da.isel({da.dims[-2] if da.ndim > 1 else last: slice(0, 0)})
    elif kind == "one-pixel":
        out = da.isel({d: slice(0, 1) for d in da.dims})
    elif kind == "all-nan":
        out = da.astype(float) * np.nan
    elif kind == "with-inf":
        values = da.values.astype(float)
        values[(slice(None),) * (da.ndim - 1) + (min(3, da.shape[-1] - 1),)] = np.inf
        out = da.copy(data=values)
    elif kind == "complex":
        out = da.astype(complex) * (1 + 1j)
    elif kind == "renamed-dims":
        out = da.rename({last: "a"})
    elif kind == "nan-coords":
        if last not in da.coords:
            return da
        c = da[last].values.astype(float)
        c[min(2, c.size - 1)] = np.nan
        out = da.assign_coords({last: (last, c, da[last].attrs)})
    elif kind == "no-z":
        out = da.isel(z=0, drop=True) if "z" in da.dims else da
    elif kind == "bool":
        out = da > da.mean()
    elif kind == "all-zero":
        out = da * 0
    else:
        out = da * 0 + 7.0
    if isinstance(like, xr.Dataset) and kind != "no-z":
        out = out.to_dataset(name=str(da.name)).assign_attrs(like.attrs)
        for name, var in like.data_vars.items():  # the other variables of a result dataset (a profile) follow
            if name != da.name and var.dims == da.dims:
                out[name] = var.isel({d: slice(0, out.sizes.get(d, 0)) for d in var.dims}) if kind in ("empty", "one-pixel") else var
    return out


def _resolve(value: Any, fx: dict[str, Any]) -> Any:
    import pfibsims as pfs

    if isinstance(value, str) and value.startswith("@"):
        return fx[value[1:]]
    if isinstance(value, str) and value.startswith("np:"):
        return fx[value[3:]].values
    if value == "eye3":
        return np.eye(3)
    if value == "json":
        return pfs.Affine.identity(("y", "x")).to_json()
    if value == "object":
        return object()
    if isinstance(value, dict):
        return {k: _resolve(v, fx) for k, v in value.items()}
    if isinstance(value, tuple):
        return tuple(_resolve(v, fx) for v in value)
    return value


def _function(name: str) -> Any:
    import importlib

    import pfibsims as pfs

    head, _, rest = name.partition(".")
    if head in ("dataset", "units"):  # record/validate/parse_* live there (their top-level names are deprecated)
        return getattr(importlib.import_module(f"pfibsims.{head}"), rest)
    obj = pfs
    for part in name.split("."):
        obj = getattr(obj, part)
    return obj


def call_case(name: str, where: Any, hostile: Any) -> str:
    """Run the template of ``name`` with argument ``where`` (an index or an option name) made hostile."""
    import dask

    soft, hard = resource.getrlimit(resource.RLIMIT_AS)
    if soft == resource.RLIM_INFINITY or soft > MEMORY_LIMIT:
        resource.setrlimit(resource.RLIMIT_AS, (MEMORY_LIMIT, hard))
    fx = _fixtures()
    args, kwargs = TEMPLATES[name]
    args, kwargs = [_resolve(a, fx) for a in args], {k: _resolve(v, fx) for k, v in kwargs.items()}
    if isinstance(where, int):
        args[where] = _hostile_data(hostile, args[where]) if hostile in DATA_POOL else _resolve(hostile, fx)
    elif where is not None:
        kwargs[where] = _resolve(hostile, fx)
    out = _function(name)(*args, **kwargs)
    with dask.config.set(scheduler="synchronous"):
        dask.compute(out)
    return type(out).__name__


def all_cases() -> list[tuple[str, Any, Any]]:
    cases = []
    for name, (args, kwargs) in TEMPLATES.items():
        cases.append((name, None, None))
        for i, a in enumerate(args):
            pool = DATA_POOL if isinstance(a, str) and a.startswith("@") else OPTION_POOL
            cases += [(name, i, h) for h in pool]
        for k in kwargs:
            cases += [(name, k, h) for h in OPTION_POOL]
    return cases


def _sample(cases: list, n: int) -> list:
    if n <= 0 or n >= len(cases):
        return cases
    keep = set(np.random.default_rng(21).choice(len(cases), n, replace=False).tolist())
    keep |= {i for i, c in enumerate(cases) if c[1] is None}  # every valid call
    return [c for i, c in enumerate(cases) if i in keep]


def _clean(o: Any) -> bool:
    from pfibsims import errors

    return o.kind == "ok" or (o.kind == "error" and o.error in {n for n in errors.__all__ if not n.endswith("Warning")})


def test_valid_templates_run():
    outcomes = run_cases([(call_case, (name, None, None)) for name in TEMPLATES], timeout=TIMEOUT)
    bad = [f"{n}: {o}" for n, o in zip(TEMPLATES, outcomes, strict=True) if o.kind != "ok"]
    assert not bad, "\n".join(bad)


@pytest.mark.slow
def test_bad_arguments_return_or_raise_a_pfibsims_error():
    cases = _sample([c for c in all_cases() if c[1] is not None], SAMPLE)
    outcomes = run_cases([(call_case, c) for c in cases], timeout=TIMEOUT)
    bad = [(c, o) for c, o in zip(cases, outcomes, strict=True) if not _clean(o)]
    labels = [f"{n}[{w}={h!r}]" for (n, w, h), _ in bad]
    assert not bad, f"{len(bad)} of {len(cases)} cases were not clean:\n" + summary([o for _, o in bad], labels)


# ------------------------------------------------------------------ options of the readers, save and open_dataset


def _option_cases(t: Any) -> list[tuple[str, Any, str]]:
    """(label, call, expected first words of the message) for hostile options outside TEMPLATES."""
    from io_helpers import DATA, write_csv, write_tiff

    import pfibsims as pfs

    rng = np.random.default_rng(0)
    fx = _fixtures()
    tif = write_tiff(t / "Zr La1.tif", rng.integers(0, 99, (6, 8)).astype(np.uint16))
    txt = write_csv(t / "li.txt", rng.integers(0, 99, (6, 8)), header="Isotope: 6Li\n", sep="\t", trailing=False)
    store = pfs.save(fx["eds"], t / "s.zarr")
    im = DATA / "sims/OpenMIMS_doc_051117_05-32dRe-03b.im"
    cases: list[tuple[str, Any, str]] = []
    for value in (0, 3.5, True, object()):
        cases.append((f"lines={value!r}", lambda v=value: pfs.read_eds(tif, pixel_size="80 nm", lines=v), "lines: expected"))
    for value in (1, 1.5, ("+",), True):
        cases.append((f"polarity={value!r}", lambda v=value: pfs.read_sims(txt, pixel_size="72 nm", polarity=v), "polarity: expected"))
        cases.append((f"isotope={value!r}", lambda v=value: pfs.read_sims(txt, pixel_size="72 nm", isotope=v), "isotope: expected"))
        cases.append((f"channel={value!r}", lambda v=value: pfs.read_sem(tif, pixel_size="80 nm", channel=v), "channel: expected"))
    cases.append(("channel=['SE']", lambda: pfs.read_sem(tif, pixel_size="80 nm", channel=["SE"]), "channel: expected"))
    cases.append(("read_eds({})", lambda: pfs.read_eds({}, pixel_size="80 nm"), "path_or_paths: expected"))
    cases.append(("read_sims({})", lambda: pfs.read_sims({}, pixel_size="80 nm"), "path_or_paths: expected"))
    for value in (5, ["EMProject.emxml"]):
        cases.append((f"project={value!r}", lambda v=value: pfs.read_sem(tif, pixel_size="80 nm", project=v), "project: expected"))
    for value in (-5, 0, float("nan"), float("inf"), True, "6"):
        cases.append((f"mass={value!r}", lambda v=value: pfs.read_sims(txt, pixel_size="72 nm", mass=v), "mass: expected"))
    for value in ("inf nm", "5 kg", float("nan")):
        cases.append((f"depths={value!r}", lambda v=value: pfs.read_sims(txt, pixel_size="72 nm", depths=v), "depths: expected"))
    if im.exists():
        for value in ([], 5, [5], True):
            cases.append((f"species={value!r}", lambda v=value: pfs.read_sims(im, species=v), "species: expected"))
    for value in (None, "3", 0, -5, 1.5, float("nan"), float("inf"), True, (2, 2)):
        cases.append((f"levels={value!r}", lambda v=value: pfs.save(fx["eds"], t / "o.ome.zarr", format="ome-zarr", levels=v),
                      "levels: expected"))
    for value in ("no", 1, None):
        cases.append((f"overwrite={value!r}", lambda v=value: pfs.save(fx["eds"], store, overwrite=v), "overwrite: expected"))
    for value in (0, -5, False, "garbage", 1.5, {"a": 1}, {"z": "1 nm"}):
        cases.append((f"open_dataset(chunks={value!r})", lambda v=value: pfs.open_dataset(store, chunks=v), "chunks: expected"))
    for value in (0, -5, False, -(2**63)):
        cases.append((f"resample(chunks={value!r})", lambda v=value: pfs.resample(fx["sims"], fx["eds"], chunks=v), "chunks: "))
    return cases


def test_reader_and_store_options_raise_a_pfibsims_error_naming_the_option(tmp_path):
    import dask

    from pfibsims.errors import PfibsimsError

    wrong = []
    for label, call, expected in _option_cases(tmp_path):
        try:
            with dask.config.set(scheduler="synchronous"):
                dask.compute(call())
        except PfibsimsError as exc:
            if not str(exc).startswith(expected):
                wrong.append(f"{label}: {type(exc).__name__}: {exc}")
        except Exception as exc:  # noqa: BLE001 - any other exception is the defect reported
            wrong.append(f"{label}: {type(exc).__name__}: {exc}")
        else:
            wrong.append(f"{label}: accepted")
    assert not wrong, "\n".join(wrong)
    assert pfs_open_values(tmp_path / "s.zarr") == _fixtures()["eds"].Zr_La.values.tolist()  # the store is still there


def pfs_open_values(path: Any) -> list:
    import pfibsims as pfs

    return pfs.open_dataset(path).Zr_La.values.tolist()
