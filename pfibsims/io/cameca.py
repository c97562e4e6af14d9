"""Cameca NanoSIMS ``.im`` isotope images, read with the ``sims`` package.

Species labels become channel names by one rule: each isotope token
``<mass><Element>[<count>]`` becomes ``<Element><mass>``, repeated ``count``
times, tokens joined in the file's order:

======== ==========
label    channel
======== ==========
``6Li``  ``Li6``
``12C``  ``C12``
``12C 14N`` ``C12N14``
``12C2`` ``C12C12``
``SE``   ``SE`` (secondary-electron detector)
``""``   ``species1`` (an empty label: ``species<index>``)
======== ==========

so single isotopes follow the data model (``Li6``) and molecules stay
readable and unambiguous. The original label is kept in the channel attrs
(``label``) with the nominal ``mass`` (sum of the isotope masses) and the
``polarity`` of the secondary ions: the sign of the sample's extraction
voltage ``E0W`` (a sample at -8 kV, as under a Cs+ beam, extracts negative
ions: ``"-"``). The ``sims`` package's header ``polarity`` is the machine
mode, the opposite sign, and is not used. Frames (planes in depth) become ``z``.
The pixel size is the raster (``Image.raster``, nm) over the image width. Counting: the dead time of the
species' electron multiplier (``Detectors``, ``em deadtime`` in ns), the dwell time a pixel (the B field's
``time per pixel``, s: a frame's ``frame count time`` is that times the pixels) and the mass table's
``deadtime corrected`` flag become the channel attrs ``dead_time``, ``dwell_time``, ``dead_time_corrected``.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any

import numpy as np

from ..errors import DataModelError, FileFormatError
from ._common import Frame, check_file, reading
from ._guards import check_pixel_size

__all__ = ["channel_name", "read_im"]

_TOKEN = re.compile(r"^(\d{1,3})([A-Z][a-z]?)(\d*)$")


def channel_name(label: str, index: int) -> tuple[str, dict[str, Any]]:
    """Channel name and attrs for a NanoSIMS species label.

    Examples
    --------
    >>> channel_name("12C 14N", 0)
    ('C12N14', {'label': '12C 14N', 'mass': 26, 'isotope': '12C 14N'})
    >>> channel_name("", 1)[0]
    'species1'
    """
    text = str(label).strip()
    if not text:
        return f"species{index}", {"label": str(label)}
    tokens = text.replace("-", " ").split()
    parts, mass = [], 0
    for tok in tokens:
        m = _TOKEN.match(tok)
        if m is None:
            clean = re.sub(r"\W", "_", text)
            name = clean if clean[0].isalpha() else f"species_{clean}"
            attrs: dict[str, Any] = {"label": str(label)}
            if text.upper() in ("SE", "SED", "ESI"):
                attrs["detector"] = text
            return name, attrs
        count = int(m[3] or 1)
        parts.append(f"{m[2]}{m[1]}" * count)
        mass += int(m[1]) * count
    attrs = {"label": str(label), "mass": mass, "isotope": text}
    if len(tokens) == 1 and not _TOKEN.match(tokens[0])[3]:
        el = _TOKEN.match(tokens[0])[2]
        attrs["element"] = el
    return "".join(parts), attrs


def _secondary_polarity(header: dict[str, Any]) -> str:
    """``"-"`` or ``"+"``: the secondary ions' sign, that of the extraction voltage E0W; ``""`` if unknown."""
    try:
        e0w = float((header.get("SecondaryBeam") or {})["E0W"])
    except (KeyError, TypeError, ValueError):
        return ""
    return "-" if e0w < 0 else "+" if e0w > 0 else ""


def _counting_attrs(header: dict[str, Any], labels: list[str]) -> list[dict[str, Any]]:
    """Per species: the electron multiplier's dead time (``dead_time``, from its detector's ``em deadtime``,
    ns), the dwell time a pixel (``dwell_time``: the B field's ``time per pixel``, s, when the file has one
    B field) and whether the counts are dead-time corrected already (``dead_time_corrected``); what the header
    does not say unambiguously is left out (a Faraday cup, a mass table that does not list the species)."""
    out: list[dict[str, Any]] = [{} for _ in labels]
    table = header.get("MassTable")
    if not isinstance(table, dict) or [str(k) for k in table] != labels:
        return out
    fields = header.get("BFields") or []
    dwell = fields[0].get("time per pixel") if len(fields) == 1 and isinstance(fields[0], dict) else None
    detectors = header.get("Detectors") or {}
    for attrs, mass in zip(out, table.values(), strict=True):
        if not isinstance(mass, dict):
            continue
        if isinstance(dwell, (int, float)) and 0 < dwell < 1e3:
            attrs["dwell_time"] = f"{float(dwell) * 1e3:.6g} ms"
        det = detectors.get(f"Detector {mass.get('trolley index')}")
        tau = det.get("em deadtime") if isinstance(det, dict) and det.get("detector", "EM") == "EM" else None
        if isinstance(tau, (int, float)) and 0 < tau < 1e4:
            attrs["dead_time"] = f"{float(tau):.6g} ns"
            attrs["dead_time_corrected"] = bool(mass.get("deadtime corrected", False))
    return out


def read_im(path: Any, *, species: Any = None) -> Frame:
    """Read one NanoSIMS ``.im`` file.

    Parameters
    ----------
    path : path
        The ``.im`` file.
    species : list of str, optional
        Channels to keep, by channel name (``"C12"``) or file label
        (``"12C"``); default all.

    Returns
    -------
    Frame
        One channel per species, ``(frame, y, x)`` counts in the file's
        dtype (byte order made native); pixel size from the raster. A
        species counted on an electron multiplier carries its ``dead_time``
        (e.g. ``"44 ns"``), ``dead_time_corrected`` and the ``dwell_time`` a
        pixel (e.g. ``"10 ms"``), as :func:`pfibsims.isotope_ratio` takes them.
    """
    want = None if species is None else [species] if isinstance(species, str) else list(species) if isinstance(species, Iterable) else []
    if want is not None and (not want or not all(isinstance(w, str) for w in want)):
        raise DataModelError(f"species: expected channel names or labels such as ['Li6', '16O'], got {species!r:.60}")
    p = check_file(path, suffixes=(".im",), what="Cameca NanoSIMS .im file")
    with reading(p, "Cameca NanoSIMS .im file"):
        import sims

        s = sims.SIMS(str(p))
        da_ = s.data
        header = s.header
        if da_ is None or getattr(da_, "ndim", 0) != 4:
            raise FileFormatError(f"{p}: expected image data (species, frame, y, x), found {getattr(da_, 'shape', None)}")
        image = header.get("Image", {})
        raster = float(image.get("raster", 0) or 0)
        width = int(image.get("width", da_.shape[-1]) or da_.shape[-1])
        labels = [str(v) for v in np.asarray(da_.coords["species"].values)]
        arr = np.asarray(da_.values)
        arr = arr.astype(arr.dtype.newbyteorder("="), copy=False)
    channels: dict[str, Any] = {}
    ch_attrs: dict[str, dict[str, Any]] = {}
    polarity = _secondary_polarity(header)
    counting = _counting_attrs(header, labels)
    for i, label in enumerate(labels):
        name, attrs = channel_name(label, i)
        attrs.update(counting[i])
        if name in channels:
            name = f"{name}_{i}"
        if polarity in ("+", "-"):
            attrs["polarity"] = polarity
        channels[name] = arr[i]
        ch_attrs[name] = attrs
    if want is not None:
        by_label = {a["label"]: n for n, a in ch_attrs.items()}
        keep = []
        for w in want:
            n = w if w in channels else by_label.get(w)
            if n is None:
                raise DataModelError(f"species: expected channels or labels of '{p}' ({sorted(channels)} / {labels}), got {w!r}")
            keep.append(n)
        channels = {n: channels[n] for n in keep}
    pixel = (raster / width, raster / width) if raster > 0 and width > 0 else None
    check_pixel_size(pixel, p, shape=arr.shape[-2:], what="pixel size (Image.raster over the width)")
    beam = header.get("PrimaryBeam", {}) or {}
    attrs: dict[str, Any] = {
        "format": "Cameca NanoSIMS .im",
        "analysis_type": str(header.get("analysis type", "")),
        "acquisition_date": str(header.get("date", "")),
        "raster": f"{raster:.6g} nm",
        "frames": int(arr.shape[1]),
        "species_labels": labels,
    }
    if polarity:
        attrs["polarity"] = polarity
    if beam.get("source"):
        attrs["primary_ion"] = str(beam["source"])
    return Frame(channels, pixel, attrs, ch_attrs, str(p))
