"""Bruker Esprit ``.bcf`` hypermaps and their electron images, read with RosettaSciIO (``rsciio.bruker``).

The spectrum image (y, x, energy) is read lazily (dask; decoded in a child process, where a
crash of the compiled decoder on a corrupt file cannot take the session down) and turned into line
maps by fitting (:mod:`pfibsims.io.fitting`) or window integration
(:mod:`pfibsims.io.lines`). Without ``lines`` the lines the file lists
(``Sample.xray_lines``) are used. The detector resolution is the file's
(``SigmaAbs``/``SigmaLin``: sigma^2 = SigmaAbs + SigmaLin * E, keV) unless
``fwhm_mnka`` is given.

Stage (``TRTSEMStageData``): ``X``, ``Y``, ``Z`` in um and ``Rotation``, ``Tilt`` in degrees, as the
file records them (RosettaSciIO maps them to HyperSpy's ``Stage.rotation`` and ``tilt_alpha``, degrees);
they become the attrs ``stage_position_x`` ... ``stage_position_rotation``, ``stage_position_tilt``.

Pixel size: ``DX`` (x) and ``DY`` (y) of the file's ``TRTSEMData``, in um.
(RosettaSciIO 0.15 gives the hypermap's x axis the ``DY`` scale; the two
differ in ``bcf_v2_50x50px.bcf``, whose map is a pixel-for-pixel crop of its
overview image calibrated with ``XCalibration = DX``.) A file without them
(a Hitachi tabletop SEM with Bruker Quantax) needs ``pixel_size=``.

Electron images (:func:`read_bcf_images`): the images recorded with the map
(one per detector: ``BSE``, ``SE``, ``HAADF``, ...; all-zero planes are not
stored) share the map's grid. Esprit 2 files may also hold an overview
image of a larger field (``image="overview"``), with its own calibration
(``XCalibration``/``YCalibration``) and the map's rectangle on it; it is
placed so that its pixels line up with the map's coordinates.
"""

from __future__ import annotations

import logging
import re
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import DataModelError, FileFormatError
from ._common import Frame, check_file, delayed_array, reading
from ._guards import MAX_RATIO, bcf_hypermap, check_declared, check_pixel_size
from .fitting import spectrum_maps
from .lines import canonical_lines

__all__ = ["read_bcf", "read_bcf_images"]

_SIGMA_TO_FWHM = 2.0 * np.sqrt(2.0 * np.log(2.0))


def _quiet_rsciio() -> None:
    # rsciio logs a warning on every call when numba is absent; it is not ours to show.
    logging.getLogger("rsciio").setLevel(logging.ERROR)


def check_sfs(path: Path) -> None:
    """Check a ``.bcf`` (an AidAim SFS container) is complete before parsing it.

    The header gives the chunk size (uint32 at 0x128) and the number of
    chunks (uint32 at 0x148); a complete file is ``0x118 + chunks * chunksize``
    bytes. RosettaSciIO's compiled decoder may crash on a truncated file, so
    a short file is refused here.
    """
    size = path.stat().st_size
    with open(path, "rb") as fh:
        head = fh.read(0x14C)
    if len(head) < 0x14C or head[:8] != b"AAMVHFSS":
        raise FileFormatError(f"{path}: expected a Bruker .bcf (an SFS container starting with 'AAMVHFSS'), found other data")
    chunksize = int.from_bytes(head[0x128:0x12C], "little")
    n_chunks = int.from_bytes(head[0x148:0x14C], "little")
    expected = 0x118 + n_chunks * chunksize
    if size < expected:
        raise FileFormatError(f"{path}: expected {expected} bytes ({n_chunks} chunks of {chunksize}), found {size}; the file is truncated")


def _pixel_size(micro: dict[str, Any]) -> tuple[float, float] | None:
    """(y, x) in nm from TRTSEMData DY/DX (um); None when the file has no calibration."""
    try:
        dy, dx = float(micro["DY"]) * 1000.0, float(micro["DX"]) * 1000.0
    except (KeyError, TypeError, ValueError):
        return None
    return (dy, dx) if dy > 0 and dx > 0 else None


def _fwhm_mnka(spectrum: dict[str, Any]) -> str | None:
    """The detector FWHM at Mn Ka the file records (SigmaAbs/SigmaLin, keV), as an energy string."""
    try:
        var = float(spectrum["SigmaAbs"]) + float(spectrum["SigmaLin"]) * 5.8987
    except (KeyError, TypeError, ValueError):
        return None
    return f"{_SIGMA_TO_FWHM * np.sqrt(var) * 1000.0:.6g} eV" if var > 0 else None


def _positive(value: Any) -> bool:
    try:
        return float(value) > 0
    except (TypeError, ValueError):
        return False


def _finite(value: Any) -> bool:
    try:
        return bool(np.isfinite(float(value)))
    except (TypeError, ValueError):
        return False


def _attrs(md: dict[str, Any], om: dict[str, Any]) -> dict[str, Any]:
    micro, stage = om.get("Microscope", {}), om.get("Stage", {})
    inst = md.get("Acquisition_instrument", {})
    sem = next(iter(inst.values()), {}) if inst else {}
    attrs: dict[str, Any] = {"format": "Bruker BCF", "instrument_software": "Bruker Esprit"}
    if "beam_energy" in sem:
        attrs["beam_energy"] = f"{float(sem['beam_energy']):.6g} kV"
    if "magnification" in sem:
        attrs["magnification"] = float(sem["magnification"])
    if _positive(micro.get("WD")):  # Esprit writes WD = -1 when none was recorded (a STEM map)
        attrs["working_distance"] = f"{float(micro['WD']):.6g} mm"
    if stage:
        pos = {k: f"{float(stage[k]):.6g} um" for k in ("X", "Y", "Z") if _finite(stage.get(k))}
        pos.update({name: f"{float(stage[k]):.6g} deg" for k, name in (("Rotation", "rotation"), ("Tilt", "tilt")) if _finite(stage.get(k))})
        attrs["stage_position"] = pos
    gen = md.get("General", {})
    if "date" in gen:
        attrs["acquisition_date"] = f"{gen['date']} {gen.get('time', '')}".strip()
    return attrs


def guarded_hypermap(p: Path, data: Any) -> Any:
    """The hypermap as one lazy task that decodes it in a child process (see :func:`._guards.bcf_hypermap`).

    RosettaSciIO's compiled unpacker segfaults on some corrupt files (16 flipped bytes of a
    real file did); in a child, that is a ``FileFormatError`` naming the file.
    """
    dtype = np.dtype(data.dtype)
    shape = check_declared(data.shape, dtype, p, what="Bruker hypermap values")
    need, size = int(np.prod(shape, dtype=object)) * dtype.itemsize, p.stat().st_size
    if need > MAX_RATIO * size:  # packed and deflated pixel records: real files decode to 2-165x their size
        raise FileFormatError(
            f"{p}: its header declares a {' x '.join(map(str, shape))} hypermap ({need} bytes of {dtype}), more than "
            f"{MAX_RATIO} times the {size} bytes of the file; the header is corrupt"
        )
    return delayed_array(bcf_hypermap, p, None, shape, dtype.str, shape=shape, dtype=dtype)


def read_bcf(
    path: Any, *, lines: Any = None, method: str = "fit", window: Any = 2.0, fwhm_mnka: Any = None
) -> Frame:
    """Read one Bruker ``.bcf`` and make line maps from its spectrum image.

    Parameters
    ----------
    path : path
        The ``.bcf`` file.
    lines : list of str, optional
        Lines to map (``["Al_Ka", "Cu_Ka"]``); default the file's list.
    method : {"fit", "window"}
        Line maps by fitting (:func:`pfibsims.io.fitting.fit_lines`) or by
        window integration.
    window, fwhm_mnka
        Window width, and the detector resolution at Mn Ka (default: the
        file's, else 130 eV).

    Returns
    -------
    Frame
        Lazy line maps in counts, the pixel size (None when the file has
        none) and acquisition attrs (beam energy, magnification, working
        distance, stage, date, the detector resolution used).
    """
    p = check_file(path, suffixes=(".bcf",), what="Bruker .bcf hypermap")
    _quiet_rsciio()
    check_sfs(p)
    with reading(p, "Bruker .bcf hypermap"):
        from rsciio.bruker import file_reader

        found = file_reader(str(p), lazy=True, select_type="spectrum_image")
        if not found:
            raise DataModelError(f"{p}: expected a spectrum image (hypermap), found none")
        sig = found[0]
        data = sig["data"]
        if data.ndim != 3:
            raise DataModelError(f"{p}: expected a (y, x, energy) hypermap, found shape {data.shape}")
        data = guarded_hypermap(p, data)
        e_ax = sig["axes"][-1]
        unit = 1000.0 if str(e_ax.get("units", "keV")) == "keV" else 1.0
        scale, offset = float(e_ax["scale"]) * unit, float(e_ax["offset"]) * unit
        energy = offset + scale * np.arange(data.shape[-1])
        md, om = sig.get("metadata", {}), sig.get("original_metadata", {})
        listed = md.get("Sample", {}).get("xray_lines") or []
        use = canonical_lines(lines) if lines else canonical_lines(listed)
        if not use:
            raise DataModelError(f"lines: expected the X-ray lines to map (e.g. lines=['Al_Ka']); '{p}' lists none")
        attrs = _attrs(md, om)
        fwhm = fwhm_mnka or _fwhm_mnka(om.get("Spectrum", {})) or "130 eV"
        beam = float(attrs["beam_energy"].split()[0]) * 1000.0 if "beam_energy" in attrs else None
        maps, ch_attrs = spectrum_maps(
            data, energy, use, method=method, window=window, fwhm_mnka=fwhm, beam_energy_ev=beam, where=str(p)
        )
        if listed:
            attrs["xray_lines_in_file"] = list(listed)
        attrs["energy_calibration"] = {"channel_width": f"{scale:.6g} eV", "offset": f"{offset:.6g} eV"}
        attrs["detector_fwhm_mnka"] = str(fwhm)
        attrs["line_maps"] = method
    pixel = check_pixel_size(_pixel_size(om.get("Microscope", {})), p, shape=data.shape[:2], what="pixel size (DY, DX)")
    return Frame(maps, pixel, attrs, ch_attrs, str(p))


def _channel(label: Any, taken: dict[str, Any], i: int) -> str:
    """A channel name from a Bruker plane description: 'BSE', 'SE', 'HAADF', 'Ch 1' -> 'Ch_1'."""
    name = re.sub(r"\W+", "_", str(label or "").strip()).strip("_") or f"image{i}"
    base, k = name, 2
    while name in taken:
        name, k = f"{base}_{k}", k + 1
    return name


def _overview_geometry(bcf: Any, p: Path) -> tuple[tuple[float, float], tuple[float, float]]:
    """Pixel size (y, x) in nm of the overview and the (top, left) pixel of the map's rectangle on it."""
    root = ET.fromstring(bcf.get_file("EDSDatabase/HeaderData").get_as_BytesIO_string().getvalue())
    node = root.find(".//ClassInstance[@Name='OverviewImages']/ChildClassInstances/ClassInstance[@Type='TRTImageData']")
    if node is None:
        raise FileFormatError(f"{p}: expected an overview image (Esprit 2 'OverviewImages'), found none")
    try:
        pixel = (float(node.findtext("YCalibration")) * 1000.0, float(node.findtext("XCalibration")) * 1000.0)
    except (TypeError, ValueError):
        raise FileFormatError(f"{p}: expected XCalibration/YCalibration of the overview image, found none") from None
    rect = node.find("./ChildClassInstances/ClassInstance[@Name='Map']//Rect")
    top_left = (0.0, 0.0) if rect is None else (float(rect.findtext("Top") or 0), float(rect.findtext("Left") or 0))
    if not (pixel[0] > 0 and pixel[1] > 0):
        raise FileFormatError(f"{p}: expected positive overview calibration, found {pixel} nm")
    return pixel, top_left


def read_bcf_images(path: Any, *, image: str = "map") -> Frame:
    """Read the electron images of a Bruker ``.bcf`` (one channel per detector).

    Parameters
    ----------
    path : path
        The ``.bcf`` file.
    image : {"map", "overview"}
        The images recorded with the map (on its grid), or the overview
        image of a larger field (Esprit 2 files), placed so that the map's
        rectangle on it has the map's coordinates (``attrs['origin']``).

    Returns
    -------
    Frame
        Channels named by the plane descriptions (``BSE``, ``SE``,
        ``HAADF``, ``AsB``; other labels made identifiers, ``Ch 1`` ->
        ``Ch_1``), in counts; pixel size from the file (None when absent).
    """
    p = check_file(path, suffixes=(".bcf",), what="Bruker .bcf file")
    if image not in ("map", "overview"):
        raise FileFormatError(f"image: expected 'map' or 'overview', got {image!r}")
    _quiet_rsciio()
    check_sfs(p)
    with reading(p, "Bruker .bcf file"):
        from rsciio.bruker._api import BCF_reader

        bcf = BCF_reader(str(p))
        header = bcf.header
        items = header.image.images if image == "map" else (header.overview.images if hasattr(header, "overview") else [])
        if not items:
            raise FileFormatError(f"{p}: expected {'electron images' if image == 'map' else 'an overview image'} in the file, found none")
        channels: dict[str, Any] = {}
        ch_attrs: dict[str, dict[str, Any]] = {}
        for i, item in enumerate(items):
            label = item["metadata"].get("General", {}).get("title", "")
            name = _channel(label, channels, i)
            channels[name] = np.asarray(item["data"])
            ch_attrs[name] = {"detector": str(label), "units": "counts"}
        attrs = _attrs(items[0]["metadata"], items[0].get("original_metadata", {}))
        attrs["format"] = "Bruker BCF electron image"
        attrs["bcf_image"] = image
        shape = np.shape(next(iter(channels.values())))
        pixel = check_pixel_size(_pixel_size(header.sem_metadata), p, shape=shape, what="pixel size (DY, DX)")
        if image == "overview":
            pixel, (top, left) = _overview_geometry(bcf, p)
            check_pixel_size(pixel, p, shape=shape, what="overview pixel size (YCalibration, XCalibration)")
            attrs["map_rectangle_top_left_px"] = [top, left]
            return Frame(channels, pixel, attrs, ch_attrs, str(p), origin_px=(-top, -left))
    return Frame(channels, pixel, attrs, ch_attrs, str(p))
