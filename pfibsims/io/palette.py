"""Display colours shared by every viewer pfibsims writes for: OME-Zarr, napari, the 3-D figure.

One fixed palette, so a channel has the same colour in napari, Fiji, OMERO
and pfibsims' own figures, whatever else is in the volume:

===========  ===========  ===========================================
element      colour       hex (RGB)
===========  ===========  ===========================================
Li           red          ``FF0000``
Zr           green        ``00FF00``
Co           azure        ``0080FF``
Al           yellow       ``FFFF00``
C            cyan         ``00FFFF``
La           magenta      ``FF00FF``
O            orange       ``FF8000``
Ta           violet       ``8000FF``
Ni           chartreuse   ``80FF00``
Mn           rose         ``FF0080``
Fe           amber        ``FFB000``
P            spring       ``00FF80``
===========  ===========  ===========================================

Additive primaries first (red, green, blue-ish, then their mixtures), so
the paper's pair, Li over Zr, blends to yellow where both are high. SEM
detectors (``BSE``, ``SE``, ...) are grey (``FFFFFF``); any other element
takes the next colour of :data:`FALLBACK` in the order its channels come.
A phase label takes the colour of the channel that defines it (LLZTO the
Zr colour, LCO the Co colour, from ``pfibsims:phase_channels``); the
matrix (label 0) is transparent.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

__all__ = ["ELEMENT_COLOURS", "FALLBACK", "channel_colours", "label_colours", "rgba"]

#: Hex RGB colour of each element's channels (EDS lines and SIMS isotopes alike).
ELEMENT_COLOURS: dict[str, str] = {
    "Li": "FF0000", "Zr": "00FF00", "Co": "0080FF", "Al": "FFFF00", "C": "00FFFF", "La": "FF00FF",
    "O": "FF8000", "Ta": "8000FF", "Ni": "80FF00", "Mn": "FF0080", "Fe": "FFB000", "P": "00FF80",
}
#: Colours for elements not in :data:`ELEMENT_COLOURS`, taken in turn.
FALLBACK = ("FF8080", "80FF80", "8080FF", "FFFF80", "80FFFF", "FF80FF", "C0C0C0")
#: Colour of an SEM detector channel and of anything that names no element.
GREY = "FFFFFF"


def channel_colours(channels: Mapping[str, Mapping[str, Any]]) -> dict[str, str]:
    """Hex RGB colour of each channel, from its ``element`` (or ``detector``) attribute.

    Parameters
    ----------
    channels : mapping of str to mapping
        Channel name to its attrs (``{"element": "Zr", ...}``), in display order.

    Examples
    --------
    >>> channel_colours({"Li6": {"element": "Li"}, "Zr_La": {"element": "Zr"}, "BSE": {"detector": "BSE"},
    ...                  "W_Ma": {"element": "W"}})
    {'Li6': 'FF0000', 'Zr_La': '00FF00', 'BSE': 'FFFFFF', 'W_Ma': 'FF8080'}
    """
    out, spare = {}, {}
    for name, attrs in channels.items():
        element = attrs.get("element")
        if element in ELEMENT_COLOURS:
            out[name] = ELEMENT_COLOURS[element]
        elif element:
            spare.setdefault(element, FALLBACK[len(spare) % len(FALLBACK)])
            out[name] = spare[element]
        else:
            out[name] = GREY
    return out


def rgba(hex_rgb: str, alpha: int = 255) -> list[int]:
    """``"FF8000"`` as ``[255, 128, 0, alpha]`` (0-255 integers).

    Examples
    --------
    >>> rgba("FF8000")
    [255, 128, 0, 255]
    """
    return [int(hex_rgb[i : i + 2], 16) for i in (0, 2, 4)] + [int(alpha)]


def label_colours(attrs: Mapping[str, Any], channels: Mapping[str, Mapping[str, Any]]) -> list[tuple[int, str, list[int]]]:
    """``(value, name, rgba)`` for each label of a CF flag variable, in flag order.

    Labels come from ``flag_values`` / ``flag_meanings``; a boolean mask
    (no flags) is ``0 outside``, ``1 inside`` (white, half transparent).
    Value 0 (the matrix, or outside) is transparent.

    Parameters
    ----------
    attrs : mapping
        The label variable's attrs.
    channels : mapping of str to mapping
        The image channels' attrs, for the colour of the channel that defines each phase.

    Examples
    --------
    >>> label_colours({"flag_values": [0, 1], "flag_meanings": "matrix LLZTO",
    ...                "pfibsims:phase_channels": '{"LLZTO": "Zr_La"}'}, {"Zr_La": {"element": "Zr"}})
    [(0, 'matrix', [0, 0, 0, 0]), (1, 'LLZTO', [0, 255, 0, 255])]
    """
    values: Sequence[Any] | None = attrs.get("flag_values")
    if values is None:
        return [(0, "outside", [0, 0, 0, 0]), (1, "inside", rgba(GREY, 128))]
    names = str(attrs.get("flag_meanings", "")).split()
    if len(names) != len(values):
        names = [f"label_{int(v)}" for v in values]
    defining = attrs.get("pfibsims:phase_channels") or "{}"
    defining = json.loads(defining) if isinstance(defining, str) else dict(defining)
    by_channel = channel_colours(channels)
    out, k = [], 0
    for v, n in zip(values, names, strict=True):
        if int(v) == 0:
            out.append((0, n, [0, 0, 0, 0]))
            continue
        colour = by_channel.get(defining.get(n, ""))
        if colour is None:
            colour, k = FALLBACK[k % len(FALLBACK)], k + 1
        out.append((int(v), n, rgba(colour)))
    return out
