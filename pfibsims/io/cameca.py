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
The pixel size is the raster (``Image.raster``, nm) over the image width.
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
        dtype (byte order made native); pixel size from the raster.
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
    for i, label in enumerate(labels):
        name, attrs = channel_name(label, i)
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
