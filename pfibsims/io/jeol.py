"""JEOL Analysis Station files via RosettaSciIO (``rsciio.jeol``): element maps, view image, spectrum images.

A JEOL view directory holds one ``.img`` electron image and one ``.map`` per
element; each map's title is the element and line family (``"C K"``,
``"Fe K"``), which becomes the data model's name of the family's alpha line,
``C_Ka``, ``Fe_Ka`` (:func:`pfibsims.io.lines.canonical_line`; ``lines=``
accepts ``Fe_K`` or ``Fe_Ka``). Maps and images are read lazily: metadata
when the dataset is built, pixels when computed.

A ``.pts`` spectrum image (an event stream, 4096 channels) is decoded by
RosettaSciIO only up to the energy the requested lines need
(``cutoff_at_kV``), in one task, and turned into line maps by fitting
(:mod:`pfibsims.io.fitting`) or window integration; the detector resolution
is the file's ``energy_resolution_MnKa`` unless ``fwhm_mnka`` is given.
The cube is decoded as 16-bit counts (RosettaSciIO's default, 8 bits, stops
at 255 X-rays in a pixel's channel).

The sweeps (frames) of a ``.pts`` are summed as recorded, without drift
alignment. Each sweep holds too few X-rays to measure its shift: on the
14-sweep test file (about 21,000 X-rays a sweep over 512 x 512 pixels), phase
correlation of 8 x 8-binned count maps put the sweeps within 3 px (26 nm) of
each other, no more than the same estimate gives between two random halves of
one sweep (up to 2 px). Sweeps acquired with drift must be aligned by the
acquisition software (JEOL's drift correction).
"""

from __future__ import annotations

import logging
import re
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import DataModelError, FileFormatError
from ._common import Frame, axes_pixel_size, check_file, delayed_array, reading
from ._guards import check_jeol_image, check_jeol_pts, check_pixel_size
from .fitting import line_family, spectrum_maps
from .lines import canonical_line, canonical_lines, detector_fwhm, line_window

__all__ = ["read_jeol", "read_jeol_image"]

_TITLE = re.compile(r"^\s*([A-Z][a-z]?)\s+([KLMN][a-z]?\d*)\s*$")


def _read(path: Any, **kw: Any) -> dict[str, Any]:
    from rsciio.jeol import file_reader

    logging.getLogger("rsciio").setLevel(logging.ERROR)
    if Path(path).suffix.lower() in (".map", ".img"):
        check_jeol_image(Path(path))
    elif Path(path).suffix.lower() == ".pts":
        check_jeol_pts(Path(path))
    out = file_reader(str(path), lazy=False, **kw)
    if not out:
        raise FileFormatError(f"{path}: expected a JEOL map, image or spectrum image, found nothing")
    return out[0]


def _read_data(path: str) -> np.ndarray:
    """The pixels of a JEOL ``.map``/``.img`` (module level: picklable)."""
    return np.asarray(_read(path)["data"])


#: The dtype a ``.pts`` cube is decoded into: RosettaSciIO's default, uint8, refuses a pixel's channel
#: that reaches 255 X-rays over the summed sweeps (a ValueError, which read as a corrupt file).
PTS_DTYPE = np.uint16


def _read_counts(path: Any, **kw: Any) -> dict[str, Any]:
    """:func:`_read` of a ``.pts`` into :data:`PTS_DTYPE` counts; a channel that fills it is a FileFormatError."""
    try:
        return _read(path, SI_dtype=PTS_DTYPE, **kw)
    except ValueError as exc:
        if "range of the dtype is too small" not in str(exc):
            raise
        raise FileFormatError(
            f"{path}: expected fewer than {np.iinfo(PTS_DTYPE).max} X-rays in one energy channel of one pixel "
            f"(the sweeps summed), found a channel that reaches it; pfibsims decodes .pts counts as {np.dtype(PTS_DTYPE).name}"
        ) from None


def _read_pts(path: str, cutoff_kv: float, n: int) -> np.ndarray:
    """The first ``n`` channels of a ``.pts`` spectrum image, frames summed, as :data:`PTS_DTYPE` counts
    (module level: picklable)."""
    data = np.asarray(_read_counts(path, cutoff_at_kV=cutoff_kv)["data"])
    if data.shape[-1] < n:
        raise FileFormatError(f"{path}: expected at least {n} energy channels below {cutoff_kv} kV, found {data.shape[-1]}")
    return data[..., :n]


def _attrs(sig: dict[str, Any]) -> dict[str, Any]:
    md = sig.get("metadata", {})
    inst = md.get("Acquisition_instrument", {})
    beam = next(iter(inst.values()), {}) if inst else {}
    attrs: dict[str, Any] = {"format": "JEOL Analysis Station"}
    if "beam_energy" in beam:
        attrs["beam_energy"] = f"{float(beam['beam_energy']):.6g} kV"
    if "magnification" in beam:
        attrs["magnification"] = float(beam["magnification"])
    gen = md.get("General", {})
    if "date" in gen:
        attrs["acquisition_date"] = f"{gen['date']} {gen.get('time', '')}".strip()
    return attrs


def _lazy(path: Path, sig: dict[str, Any]) -> Any:
    data = sig["data"]
    return delayed_array(_read_data, path, shape=tuple(np.shape(data)), dtype=np.asarray(data).dtype)


def read_jeol_image(path: Any, *, channel: str | None = None) -> Frame:
    """Read the electron image (``.img``) of a JEOL view, lazily.

    The file does not name its detector; the channel is the image's title
    (``IMG1``) unless ``channel`` is given.
    """
    p = check_file(path, suffixes=(".img",), what="JEOL .img view image")
    with reading(p, "JEOL .img view image"):
        sig = _read(p)
        if np.ndim(sig["data"]) != 2:
            raise FileFormatError(f"{p}: expected a 2-D view image, found shape {np.shape(sig['data'])}")
        title = str(sig.get("metadata", {}).get("General", {}).get("title", "") or "IMG")
        name = channel or re.sub(r"\W+", "_", title).strip("_") or "IMG"
        attrs = _attrs(sig)
        attrs["format"] = "JEOL Analysis Station view image"
        pixel = check_pixel_size(axes_pixel_size(sig["axes"]), p, shape=np.shape(sig["data"]))
        return Frame({name: _lazy(p, sig)}, pixel, attrs, {name: {"detector": title}}, str(p))


def _pts_cutoff(lines: list[str], method: str, window: Any, fwhm: Any, beam_ev: float | None) -> float:
    """The energy (keV) up to which a ``.pts`` must be decoded for these lines."""
    top = 0.0
    for name in lines:
        if method == "window":
            top = max(top, line_window(name, window=window, fwhm_mnka=fwhm)[1])
        else:
            e = max(line_family(name, beam_energy_ev=beam_ev).energies)
            top = max(top, e + 4 * detector_fwhm(e, fwhm_mnka=fwhm))
    return top / 1000.0 + 0.1


def _read_pts_frame(p: Path, lines: Any, method: str, window: Any, fwhm_mnka: Any) -> Frame:
    use = canonical_lines(lines)
    if not use:
        raise DataModelError(f"lines: expected the X-ray lines to map from '{p}', e.g. ['Fe_Ka'], got {lines!r}")
    with reading(p, "JEOL .pts spectrum image"):
        head = _read_counts(p, cutoff_at_kV=0.5, frame_list=[0])  # metadata: one frame, a few channels
        attrs = _attrs(head)
        beam = float(attrs["beam_energy"].split()[0]) * 1000.0 if "beam_energy" in attrs else None
        det = head["metadata"].get("Acquisition_instrument", {})
        det = next(iter(det.values()), {}).get("Detector", {}).get("EDS", {}) if det else {}
        fwhm = fwhm_mnka or (f"{float(det['energy_resolution_MnKa']):.6g} eV" if "energy_resolution_MnKa" in det else "130 eV")
        e_ax = head["axes"][-1]
        offset, scale = float(e_ax["offset"]) * 1000.0, float(e_ax["scale"]) * 1000.0
        cutoff = _pts_cutoff(use, method, window, fwhm, beam)
        n = int(np.floor((cutoff * 1000.0 - offset) / scale)) - 1
        ny, nx = np.shape(head["data"])[:2]
        cube = delayed_array(_read_pts, p, cutoff, n, shape=(ny, nx, n), dtype=PTS_DTYPE)
        energy = offset + scale * np.arange(n)
        maps, ch_attrs = spectrum_maps(cube, energy, use, method=method, window=window, fwhm_mnka=fwhm, beam_energy_ev=beam, where=str(p))
        attrs["energy_calibration"] = {"channel_width": f"{scale:.6g} eV", "offset": f"{offset:.6g} eV"}
        attrs["detector_fwhm_mnka"] = str(fwhm)
        attrs["line_maps"] = method
        return Frame(maps, check_pixel_size(axes_pixel_size(head["axes"][:2]), p, shape=(ny, nx)), attrs, ch_attrs, str(p))


def read_jeol(
    paths: list[Any], *, lines: Any = None, method: str = "fit", window: Any = 2.0, fwhm_mnka: Any = None
) -> Frame:
    """Read a JEOL map set (several ``.map`` files of one view) or one ``.pts`` file.

    Parameters
    ----------
    paths : list of paths
        The ``.map`` files of one view (one channel each), or one ``.pts``.
    lines : list of str, optional
        For maps: the channels to keep (``["Fe_Ka"]`` or ``["Fe_K"]``); for
        a ``.pts``: the lines to map (required).
    method, window, fwhm_mnka
        For a ``.pts``: see :func:`pfibsims.io.fitting.spectrum_maps`.

    Returns
    -------
    Frame
        One lazy channel per map, in counts; pixel size from the files.
    """
    files = [check_file(p, suffixes=(".map", ".pts"), what="JEOL .map or .pts file") for p in paths]
    if files[0].suffix.lower() == ".pts":
        return _read_pts_frame(files[0], lines, method, window, fwhm_mnka)
    channels: dict[str, Any] = {}
    ch_attrs: dict[str, dict[str, Any]] = {}
    pixel = None
    attrs: dict[str, Any] = {}
    for f in files:
        with reading(f, "JEOL .map element map"):
            sig = _read(f)
        title = str(sig.get("metadata", {}).get("General", {}).get("title", ""))
        m = _TITLE.match(title)
        if m is None:
            raise FileFormatError(f"{f}: expected an element map titled like 'Fe K', found title {title!r}")
        name = canonical_line(f"{m[1]}_{m[2]}")
        if name in channels:
            raise FileFormatError(f"{f}: expected one map per line, found a second '{title}' map")
        ps = check_pixel_size(axes_pixel_size(sig["axes"]), f, shape=np.shape(sig["data"]))
        if channels and np.shape(sig["data"]) != next(iter(channels.values())).shape:
            raise FileFormatError(f"{f}: expected maps of one shape in a view, found {np.shape(sig['data'])}")
        if pixel is not None and ps is not None and not np.allclose(ps, pixel, rtol=1e-6):
            raise FileFormatError(f"{f}: expected the pixel size {pixel} nm of the other maps, found {ps} nm")
        pixel = pixel or ps
        channels[name] = _lazy(f, sig)
        ch_attrs[name] = {"jeol_title": title, "source_file": f.name}
        attrs = attrs or _attrs(sig)
    if lines:
        want = canonical_lines(lines) or []
        absent = [n for n in want if n not in channels]
        if absent:
            raise DataModelError(f"lines: expected channels of the JEOL view ({sorted(channels)}), got {absent}")
        channels = {n: channels[n] for n in want}
    return Frame(channels, pixel, attrs, ch_attrs, str(files[0].parent))
