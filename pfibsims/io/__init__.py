"""Reading instrument files into the data model, and saving to Zarr / OME-Zarr.

* :func:`read_eds`: AZtec H5OINA, AZtec per-element TIFF/CSV/TXT exports,
  Ripple RPL/RAW, Bruker BCF, JEOL map sets and PTS; spectrum images become
  line maps by fitting (:mod:`.fitting`) or window integration.
* :func:`read_sims`: Cameca NanoSIMS ``.im``, Hiden-style text/CSV matrices,
  (multi-page) TIFF, plain text matrices.
* :func:`read_sem`: Thermo Fisher/FEI, Zeiss and ImageJ TIFF (multi-page TIFFs
  are stacks; Auto Slice & View slices take z from their project), the
  electron images of Bruker BCF and the JEOL view image (``.img``).
* :func:`save` / :func:`open_dataset`: atomic Zarr v3 and OME-Zarr stores.

Several files (a list, a glob pattern, a directory) become slices along
``z``, spaced by ``slice_thickness=`` or at measured ``depths=`` (by default
an ImageJ stack's own ``spacing=``); patterns
and directories are sorted naturally (``slice_2`` before ``slice_10``) and
the history records the order (``z_order``).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import xarray as xr

from ..errors import DataModelError, FileFormatError, PfibsimsError
from ._common import Frame, build, expand_paths, files_in, is_dir
from ._guards import pixel_size_overrides
from .aztec import TEXT, TIFF, read_map_file
from .bruker import read_bcf, read_bcf_images
from .cameca import read_im
from .emxml import asv_depths, check_one_run, find_project, read_emxml
from .h5oina import read_h5oina
from .hiden import read_sims_matrix
from .hyperspy import from_hyperspy, to_hyperspy
from .jeol import read_jeol, read_jeol_image
from .lines import canonical_line, canonical_lines
from .ripple import read_ripple
from .sem import read_sem_tiff
from .store import open_dataset, save

__all__ = ["from_hyperspy", "open_dataset", "read_eds", "read_sem", "read_sims", "save", "to_hyperspy"]

_EDS_PATTERNS = ("*.h5oina", "*.bcf", "*.rpl", "*.map", "*.pts", "*.tif", "*.tiff", "*.csv", "*.txt")
_SIMS_PATTERNS = ("*.im", "*.csv", "*.txt", "*.dat", "*.asc", "*.tif", "*.tiff")


def _merge_channels(frames: list[Frame]) -> Frame:
    """One frame from several one-channel frames of one slice."""
    first = frames[0]
    channels, ch_attrs = {}, {}
    for f in frames:
        for name, arr in f.channels.items():
            if name in channels:
                raise FileFormatError(f"{f.path}: expected one file per channel in a slice, found a second '{name}'")
            channels[name] = arr
            ch_attrs[name] = f.channel_attrs.get(name, {})
    pixels = {f.pixel_size for f in frames if f.pixel_size is not None}
    if len(pixels) > 1:
        raise FileFormatError(f"{first.path}: expected one pixel size for the channels of a slice, found {sorted(pixels)} nm")
    spacings = {f.z_spacing for f in frames}
    return Frame(channels, pixels.pop() if pixels else None, first.attrs, ch_attrs, first.path, first.units,
                 z_spacing=spacings.pop() if len(spacings) == 1 else None)


def _per_channel(mapping: Mapping[str, Any], reader: Any, **kw: Any) -> list[Frame]:
    """{'Zr_La': path-or-list-or-glob, ...} -> one merged frame per slice."""
    if not mapping:
        raise FileFormatError(f"path_or_paths: expected at least one channel in the mapping, got {dict(mapping)}")
    per = {name: expand_paths(v) for name, v in mapping.items()}
    counts = {n: len(v) for n, v in per.items()}
    if len(set(counts.values())) > 1:
        raise FileFormatError(f"path_or_paths: expected the same number of slice files for each channel, got {counts}")
    n = next(iter(counts.values()))
    return [_merge_channels([reader(per[name][i], channel=name, **kw) for name in per]) for i in range(n)]


def _line_keys(mapping: Mapping[str, Any]) -> dict[str, Any]:
    """Channel names of a mapping named as ``lines=`` names them (``Fe_K`` -> ``Fe_Ka``); other names kept."""
    out: dict[str, Any] = {}
    for key, value in mapping.items():
        try:
            name = canonical_line(str(key))
        except PfibsimsError:
            name = str(key)
        if name in out:
            raise FileFormatError(f"path_or_paths: expected each channel once in the mapping, got '{key}' and another '{name}'")
        out[name] = value
    return out


def _eds_frames(paths: list[Path], *, lines: Any, method: str, window: Any, fwhm_mnka: Any, source: str) -> list[Frame]:
    suffixes = {p.suffix.lower() for p in paths}
    if len(suffixes) > 1:
        raise FileFormatError(f"path_or_paths: expected files of one format, got {sorted(suffixes)}")
    suffix = suffixes.pop()
    if suffix in (".map",):
        return [read_jeol(paths, lines=lines)]
    if suffix in TIFF + TEXT:
        frames = [read_map_file(p) for p in paths]
        # per-element exports: group by channel; each channel's files are the slices
        names: dict[str, list[Frame]] = {}
        for f in frames:
            names.setdefault(next(iter(f.channels)), []).append(f)
        counts = {k: len(v) for k, v in names.items()}
        if len(set(counts.values())) > 1:
            raise FileFormatError(f"path_or_paths: expected the same number of files for each channel, got {counts}")
        slices = [_merge_channels([names[k][i] for k in names]) for i in range(next(iter(counts.values())))]
        if lines:
            absent = [n for n in lines if n not in slices[0].channels]
            if absent:
                raise FileFormatError(f"lines: expected channels among the files ({sorted(slices[0].channels)}), got {absent}")
            for s in slices:
                s.channels = {n: s.channels[n] for n in lines}
        return slices
    kw = {"lines": lines, "method": method, "window": window, "fwhm_mnka": fwhm_mnka}
    if suffix == ".h5oina" or suffix in (".h5", ".hdf5"):
        return [read_h5oina(p, source=source, **kw) for p in paths]
    if suffix == ".bcf":
        return [read_bcf(p, **kw) for p in paths]
    if suffix in (".rpl", ".raw"):
        return [read_ripple(p, **kw) for p in paths]
    if suffix == ".pts":
        return [read_jeol([p], **kw) for p in paths]
    raise FileFormatError(
        f"path_or_paths: expected an EDS file (.h5oina, .bcf, .rpl/.raw, JEOL .map/.pts, .tif, .csv, .txt), got '{paths[0]}'"
    )


@pixel_size_overrides
def read_eds(
    path_or_paths: Any,
    *,
    lines: Any = None,
    pixel_size: Any = None,
    slice_thickness: Any = None,
    depths: Any = None,
    method: str = "fit",
    window: Any = 2.0,
    fwhm_mnka: Any = None,
    source: str = "auto",
    images: bool = False,
    chunks: Any = None,
) -> Any:
    """Read EDS element maps into a dataset of the data model.

    Parameters
    ----------
    path_or_paths : path, glob pattern, directory, list, or mapping
        One file; several files or a pattern (``"run/slice_*.bcf"``) whose
        sorted files are slices along ``z``; a JEOL view directory (its
        ``.map`` files); per-element exports, either named by element and
        line (``"slice01_Zr La1.tif"``: files are grouped by channel, each
        channel's sorted files are its slices) or given as a mapping
        ``{"Zr_La": "zr_*.tif", "Co_La": [...]}`` (keys named as ``lines``
        names them: ``Fe_K`` is ``Fe_Ka``).
    lines : list of str, optional
        Lines to return (``["Zr_La", "Co_La", "Al_Ka", "C_Ka"]``; a bare
        family letter is its alpha line: ``Fe_K`` is ``Fe_Ka``). For a
        spectrum image (BCF, RPL, H5OINA spectra, JEOL PTS) these are the
        line families fitted (list every element with lines nearby) or
        integrated; for map files they select channels.
    pixel_size : length or (y, x) lengths, optional
        Overrides the files' calibration; required when a file has none
        (AZtec TIFF/CSV exports, the Hitachi BCF).
    slice_thickness : length, optional
        z spacing of several slices (``"60 nm"``); by default an ImageJ
        stack's own ``spacing=``.
    depths : lengths, optional
        Measured slice depths instead of ``slice_thickness``.
    method : {"fit", "window"}
        Spectrum images: net counts per line family by least squares of
        Gaussian lines on a local background (default;
        :func:`pfibsims.io.fitting.fit_lines`), or the sum of the channels in
        a window around each line (``LineOverlapWarning`` when windows
        overlap).
    window : float or energy
        For ``method="window"``: width in detector FWHMs (default 2) or an energy.
    fwhm_mnka : energy, optional
        Detector resolution at Mn Ka; default the file's (Bruker, JEOL,
        Ripple headers that record it), else ``"130 eV"``.
    source : str
        For H5OINA: ``"auto"``, ``"Window Integral"``, ``"Peak Area"``,
        ``"Composition"`` or ``"spectrum"``.
    images : bool
        Also return the electron images recorded with the maps (Bruker BCF:
        its detectors; JEOL view directory: its ``.img``), on the files'
        own grid, as a second dataset: ``eds, sem = read_eds(path,
        images=True)``, ready for ``fuse(eds, sims, sem)``.
    chunks : optional
        Dask chunks of the result, per axis ``(z, y, x)`` or by dimension
        name (``{"y": 512}``).

    Returns
    -------
    xarray.Dataset, or (xarray.Dataset, xarray.Dataset) with ``images=True``
        ``modality="EDS"``, dims ``(z, y, x)``; lazy where the format allows.

    Raises
    ------
    FileFormatError
        Missing, truncated, corrupt or wrong-format files; a missing pixel
        calibration; slices of different shapes or channels.
    DataModelError
        Unknown lines or lines outside the spectrum.

    Examples
    --------
    >>> read_eds("/no/such/map.bcf")
    Traceback (most recent call last):
    ...
    pfibsims.errors.FileFormatError: path: expected an existing file, got '/no/such/map.bcf', which does not exist
    """
    lines = canonical_lines(lines)
    image_frames: list[Frame] | None = None
    if isinstance(path_or_paths, Mapping):
        frames = _per_channel(_line_keys(path_or_paths), read_map_file)
    else:
        p = Path(os.fspath(path_or_paths)) if isinstance(path_or_paths, (str, os.PathLike)) else None
        if p is not None and is_dir(p) and files_in(p, ("*.map",)):
            frames = [read_jeol(files_in(p, ("*.map",)), lines=lines)]
            if images:
                img = files_in(p, ("*.img",))
                if not img:
                    raise FileFormatError(f"images: expected a JEOL view image (.img) in '{p}', found none")
                image_frames = [read_jeol_image(img[0])]
        else:
            paths = expand_paths(path_or_paths, patterns=_EDS_PATTERNS)
            frames = _eds_frames(paths, lines=lines, method=method, window=window, fwhm_mnka=fwhm_mnka, source=source)
            if images:
                if any(q.suffix.lower() != ".bcf" for q in paths):
                    raise FileFormatError(
                        f"images: expected Bruker .bcf files or a JEOL view directory (files that hold electron images), got '{paths[0]}'"
                    )
                image_frames = [read_bcf_images(q) for q in paths]
    params = {"path": [f.path for f in frames], "lines": lines, "method": method, "window": window, "fwhm_mnka": fwhm_mnka}
    kw = {"pixel_size": pixel_size, "slice_thickness": slice_thickness, "depths": depths, "chunks": chunks}
    eds = build(frames, step="read_eds", modality="EDS", params=params, **kw)
    if image_frames is None:
        return eds
    sem = build(image_frames, step="read_sem", modality="SEM", params={"path": [f.path for f in image_frames]}, **kw)
    return eds, sem


@pixel_size_overrides
def read_sims(
    path_or_paths: Any,
    *,
    pixel_size: Any = None,
    slice_thickness: Any = None,
    depths: Any = None,
    species: Any = None,
    isotope: str | None = None,
    mass: float | None = None,
    polarity: str | None = None,
    chunks: Any = None,
) -> xr.Dataset:
    """Read SIMS isotope maps into a dataset of the data model.

    Parameters
    ----------
    path_or_paths : path, glob pattern, directory or list
        Cameca NanoSIMS ``.im`` (all species; frames become ``z``), or
        text/CSV matrices and TIFF (one isotope per file; several files or
        frames are slices). A mapping ``{"Li6": files, "Li7": files}``
        names the isotope of each file series.
    pixel_size : length or (y, x) lengths, optional
        Overrides the file's calibration; required when it has none.
    slice_thickness, depths : optional
        z of several slices or frames; by default an ImageJ stack's own
        ``spacing=`` (its pixel size, too, is read).
    species : list of str, optional
        For ``.im``: channels to keep (``"C12"`` or the label ``"12C"``).
    isotope, mass, polarity : optional
        For text/TIFF: ``"6Li"`` (``"6Li+"`` also gives the polarity), mass
        in u, ``"+"``/``"-"`` (override the file header). Not for ``.im``
        (a DataModelError: its species are named in the file).
    chunks : optional
        Dask chunks of the result, per axis ``(z, y, x)`` or by dimension
        name (``{"y": 512}``).

    Returns
    -------
    xarray.Dataset
        ``modality="SIMS"``. NanoSIMS species are named by the rule in
        :mod:`pfibsims.io.cameca` (``12C 14N`` -> ``C12N14``), the label kept
        in the channel attrs.
    """
    if isinstance(path_or_paths, Mapping):
        frames = _per_channel(
            {k: v for k, v in path_or_paths.items()},
            lambda p, channel, **kw: _renamed(read_sims_matrix(p, isotope=_iso_of(channel), mass=mass, polarity=polarity), channel),
        )
    else:
        paths = expand_paths(path_or_paths, patterns=_SIMS_PATTERNS)
        suffixes = {p.suffix.lower() for p in paths}
        if len(suffixes) > 1:
            raise FileFormatError(f"path_or_paths: expected files of one format, got {sorted(suffixes)}")
        if suffixes == {".im"}:
            for name, value in (("isotope", isotope), ("mass", mass), ("polarity", polarity)):
                if value is not None:
                    raise DataModelError(
                        f"{name}: expected None for NanoSIMS .im files (their species are named in the file; "
                        f"choose them with species=), got {value!r:.60}")
            frames = [read_im(p, species=species) for p in paths]
        else:
            frames = [read_sims_matrix(p, isotope=isotope, mass=mass, polarity=polarity) for p in paths]
    return build(
        frames, step="read_sims", modality="SIMS", pixel_size=pixel_size, slice_thickness=slice_thickness,
        depths=depths, chunks=chunks, params={"path": [f.path for f in frames], "species": species, "isotope": isotope},
    )


def _iso_of(channel: str) -> str:
    return channel


def _renamed(frame: Frame, name: str) -> Frame:
    (old,) = frame.channels
    frame.channels = {name: frame.channels[old]}
    frame.channel_attrs = {name: frame.channel_attrs.get(old, {})}
    return frame


def _sem_frames(paths: list[Path], *, channel: str | None, image: str) -> list[Frame]:
    suffixes = {q.suffix.lower() for q in paths}
    if len(suffixes) > 1:
        raise FileFormatError(f"path_or_paths: expected files of one format, got {sorted(suffixes)}")
    suffix = suffixes.pop()
    if image not in ("map", "overview"):
        raise FileFormatError(f"image: expected 'map' or 'overview', got {image!r}")
    if suffix != ".bcf" and image != "map":
        raise FileFormatError(f"image: expected 'map' (the default) for TIFF and JEOL .img files, got {image!r}; only a .bcf holds an overview")
    if suffix == ".bcf":
        frames = [read_bcf_images(q, image=image) for q in paths]
        if channel is not None:
            raise FileFormatError(f"channel: expected None for a .bcf (its channels are named by detector), got {channel!r}")
        return frames
    if suffix == ".img":
        return [read_jeol_image(q, channel=channel) for q in paths]
    return [read_sem_tiff(q, channel=channel) for q in paths]


def _asv_z(paths: list[Path], project: Any) -> tuple[list[float], dict[str, Any]] | None:
    """Depths of Auto Slice & View slice images from their project (given, or found beside them)."""
    found = project if project is not None else find_project(paths[0])
    if found is None:
        return None
    asv = read_emxml(found)
    depths, numbers = asv_depths(asv, paths)
    if len(depths) > 1 and any(b <= a for a, b in zip(depths, depths[1:], strict=False)):
        order = sorted(range(len(paths)), key=lambda i: depths[i])
        raise FileFormatError(
            f"path_or_paths: expected slices in increasing depth, got slice numbers {numbers}; "
            f"give them as {[paths[i].name for i in order]}"
        )
    attrs = {"asv_project": str(asv.path), "slice_thickness": f"{asv.spacing_nm:.6g} nm", "slice_numbers": numbers}
    return [f"{d!r} nm" for d in depths], attrs


@pixel_size_overrides
def read_sem(path_or_paths: Any, *, pixel_size: Any = None, slice_thickness: Any = None, depths: Any = None,
             channel: str | None = None, image: str = "map", project: Any = None, chunks: Any = None) -> xr.Dataset:
    """Read SEM images: Thermo Fisher/FEI, Zeiss and ImageJ TIFF, Bruker BCF images, the JEOL view image.

    Parameters
    ----------
    path_or_paths : path, glob pattern, directory or list
        One image, or per-slice images (slices along ``z``): TIFF (data bar
        cropped, pixel size from the tags; a multi-page TIFF is a stack of
        slices; an ImageJ TIFF, e.g. saved from Fiji, gives the calibration
        ImageJ records, channel ``SEM``), Bruker ``.bcf`` (its electron
        images, one channel per detector, on the file's grid) or JEOL
        ``.img``. Every file is a slice: an image that is not (an overview,
        a thumbnail of another shape or pixel size) is refused naming it,
        never skipped.
    pixel_size : optional
        Overrides the files' pixel size.
    slice_thickness, depths : optional
        z of several slices (or pages); by default an ImageJ stack's own
        ``spacing=``.
    channel : str, optional
        Channel name for TIFF/``.img``; default from the detector (``"SE"`` or
        ``"BSE"``; the JEOL image's title).
    image : {"map", "overview"}
        For ``.bcf``: the images recorded with the map, or the overview
        image (Esprit 2), placed on the map's coordinates.
    project : path, optional
        Auto Slice & View project (``EMProject.emxml``) giving the z of
        ``<dataset>-SliceImage-<n>.tif`` slices; by default one beside the
        images is used (their folder or two above). ASV slices must be one
        run: another image among them (an overview), two datasets, two
        projects or a slice number twice is a FileFormatError naming the
        folder, the runs or the stray files, whatever gives z.
    chunks : optional
        Dask chunks of the result, per axis ``(z, y, x)`` or by dimension
        name (``{"y": 512}``).

    Returns
    -------
    xarray.Dataset
        ``modality="SEM"``; attrs ``beam_energy``, ``beam_current``,
        ``working_distance``, ``dwell_time``, ``detector``,
        ``stage_position_x``, ``_y``, ``_z``, ``_rotation``, ``_tilt``, ``data_bar_rows`` as far as
        the file gives them (flat attrs, so that ``to_netcdf`` writes them);
        ``skipped_pages``: the pages of a multi-page TIFF left out of its
        stack (another shape or type; a ``DataWarning`` names the
        full-resolution ones).

    Raises
    ------
    FileFormatError
        A file of another format, or without pixel calibration (give
        ``pixel_size=``).
    """
    if channel is not None and not (isinstance(channel, str) and channel.strip()):
        raise FileFormatError(f"channel: expected a channel name such as 'SE' or 'BSE', got {channel!r:.60}")
    if project is not None and not isinstance(project, (str, os.PathLike)):
        raise FileFormatError(f"project: expected the path of an Auto Slice & View project (EMProject.emxml), got {type(project).__name__}")
    paths = expand_paths(path_or_paths, patterns=("*.tif", "*.tiff", "*.bcf", "*.img"))
    if all(q.suffix.lower() in (".tif", ".tiff") for q in paths):  # before reading: strays or two runs are no stack
        check_one_run(paths, None if project is None else Path(os.fspath(project)))
    frames = _sem_frames(paths, channel=channel, image=image)
    params: dict[str, Any] = {"path": [f.path for f in frames]}
    if depths is None and slice_thickness is None and all(q.suffix.lower() in (".tif", ".tiff") for q in paths):
        asv = _asv_z(paths, project)
        if asv is not None:
            depths, extra = asv
            for f in frames:
                f.attrs.update(extra)
            params["z_from"] = extra["asv_project"]
    return build(
        frames, step="read_sem", modality="SEM", pixel_size=pixel_size, slice_thickness=slice_thickness,
        depths=depths, chunks=chunks, params=params,
    )
