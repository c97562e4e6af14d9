"""Thermo Fisher Auto Slice & View project files (``EMProject.emxml``): where each slice lies in z.

The project (XML, namespace ``EMProject``) records ``ZCutSpacing`` (the
slice thickness, m) and, per dataset (``SEM Image``, ``EDS``, ...), its
``NumberOfCuts`` and box (``BoxCenter/CenterZ`` and ``BoxSize/SizeZ``, m).
Slice images are named ``<dataset>-SliceImage-<n>.tif`` with the dataset's
spaces written as ``_`` (``SEM_Image-SliceImage-001.tif``); slice ``n``
(from 1) lies at

    z = CenterZ - SizeZ / 2 + (n - 1) * ZCutSpacing,

the first cut at the near face of the box. :func:`asv_depths` gives these
depths for slice image files; :func:`find_project` finds the project beside
the images (the folder or up to two above: ``<project>/Images/<dataset>/``).
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import FileFormatError
from ._common import check_file

__all__ = ["AsvProject", "asv_depths", "find_project", "read_emxml"]

_SLICE = re.compile(r"^(?P<dataset>.+?)-SliceImage-(?P<n>\d+)$")
_MAX_BYTES = 16 * 2**20


@dataclass(frozen=True)
class AsvProject:
    """What an Auto Slice & View project says about z: spacing and each dataset's box, in nm."""

    path: str
    application: str
    spacing_nm: float
    datasets: dict[str, dict[str, float]]


def _float(node: ET.Element, tag: str, p: Path) -> float:
    text = node.findtext(tag)
    try:
        return float(text)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        raise FileFormatError(f"{p}: expected a number in <{tag}>, found {text!r}") from None


def read_emxml(path: Any) -> AsvProject:
    """Read the z geometry of an Auto Slice & View project (``EMProject.emxml``).

    Raises
    ------
    FileFormatError
        When the file is not an EMProject XML or lacks ``ZCutSpacing``.

    Examples
    --------
    >>> read_emxml("/no/such/EMProject.emxml")
    Traceback (most recent call last):
    ...
    pfibsims.errors.FileFormatError: path: expected an existing file, got '/no/such/EMProject.emxml', which does not exist
    """
    p = check_file(path, suffixes=(".emxml", ".xml"), what="Auto Slice & View project (.emxml)")
    if p.stat().st_size > _MAX_BYTES:
        raise FileFormatError(f"{p}: expected a project file under {_MAX_BYTES} bytes, found {p.stat().st_size}")
    try:
        root = ET.fromstring(p.read_bytes())
    except ET.ParseError as exc:
        raise FileFormatError(f"{p}: expected an EMProject XML file, but parsing failed ({exc})") from None
    for el in root.iter():  # drop the namespace: <{EMProject}ZCutSpacing> -> <ZCutSpacing>
        el.tag = el.tag.rsplit("}", 1)[-1]
    if root.tag != "EMProject":
        raise FileFormatError(f"{p}: expected an <EMProject> root, found <{root.tag}>")
    spacing = _float(root, "ZCutSpacing", p) * 1e9
    if not spacing > 0:
        raise FileFormatError(f"{p}: expected a positive ZCutSpacing, found {spacing} nm")
    datasets = {}
    for ds in root.iter("Dataset"):
        name = (ds.findtext("Name") or "").strip()
        center = ds.find("BoxCenter")
        size = ds.find("BoxSize")
        if not name or center is None or size is None:
            continue
        datasets[name] = {
            "z0_nm": (_float(center, "CenterZ", p) - _float(size, "SizeZ", p) / 2) * 1e9,
            "size_z_nm": _float(size, "SizeZ", p) * 1e9,
            "cuts": _float(ds, "NumberOfCuts", p),
        }
    return AsvProject(str(p), root.findtext("ApplicationName") or "", spacing, datasets)


def find_project(image: Path) -> Path | None:
    """The ``EMProject.emxml`` beside an ASV slice image (its folder or up to two above), if any."""
    if _SLICE.match(image.stem) is None:
        return None
    for folder in (image.parent, *list(image.parents)[1:3]):
        candidate = folder / "EMProject.emxml"
        if candidate.is_file():
            return candidate
    return None


def asv_depths(project: AsvProject, images: list[Path]) -> tuple[list[float], list[int]]:
    """Depth (nm) and slice number of each ASV slice image, from its name and the project.

    Raises
    ------
    FileFormatError
        When a name is not ``<dataset>-SliceImage-<n>``, the dataset is not
        in the project, or ``n`` is outside its cuts.
    """
    depths, numbers = [], []
    for img in images:
        m = _SLICE.match(img.stem)
        if m is None:
            raise FileFormatError(f"{img}: expected an Auto Slice & View slice image named '<dataset>-SliceImage-<n>.tif'")
        wanted = m["dataset"].replace("_", " ")
        box = project.datasets.get(wanted) or project.datasets.get(m["dataset"])
        if box is None:
            raise FileFormatError(f"{img}: expected dataset '{wanted}' in the project '{project.path}', found {sorted(project.datasets)}")
        n = int(m["n"])
        if not 1 <= n <= box["cuts"]:
            raise FileFormatError(f"{img}: expected a slice number between 1 and {int(box['cuts'])} (the project's cuts), found {n}")
        depths.append(box["z0_nm"] + (n - 1) * project.spacing_nm)
        numbers.append(n)
    return depths, numbers
