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

The project is untrusted input: it is parsed by expat, which expands no
external entity and refuses entity amplification (billion laughs); elements
count only in the ``EMProject`` namespace or in none; ``ZCutSpacing`` must be
a plausible thickness (1 pm to 10 cm), ``CenterZ`` within 10 cm of the origin,
``SizeZ`` from 0 to 10 cm and ``NumberOfCuts`` a whole number from 1 to 10^7,
else the project is refused naming it (:class:`~pfibsims.errors.FileFormatError`).
"""

from __future__ import annotations

import os
import re
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import FileFormatError
from ._common import check_file
from ._guards import FIELD_NM, PIXEL_NM

__all__ = ["AsvProject", "asv_depths", "check_one_run", "find_project", "read_emxml"]

_SLICE = re.compile(r"^(?P<dataset>.+?)-SliceImage-(?P<n>\d+)$")
_MAX_BYTES = 16 * 2**20
_NS = "{EMProject}"
#: Most cuts a project may declare.
_MAX_CUTS = 10**7


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


def _length_nm(node: ET.Element, tag: str, p: Path, low: float, high: float) -> float:
    """``<tag>`` (m) in nm, refused unless finite and within [low, high] nm."""
    value = _float(node, tag, p) * 1e9
    if not low <= value <= high:  # False for NaN
        raise FileFormatError(f"{p}: expected a {tag} between {low:g} nm and {high:g} nm, found {value:g} nm")
    return value


def _cuts(node: ET.Element, p: Path) -> float:
    value = _float(node, "NumberOfCuts", p)
    if not (1 <= value <= _MAX_CUTS and value == int(value)):  # NaN and inf fail the range test first
        raise FileFormatError(f"{p}: expected a whole number of cuts from 1 to {_MAX_CUTS} in <NumberOfCuts>, found {value:g}")
    return value


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
    except (ET.ParseError, LookupError, ValueError) as exc:  # LookupError, ValueError: the declared encoding
        raise FileFormatError(f"{p}: expected an EMProject XML file, but parsing failed ({exc})") from None
    for el in root.iter():  # drop the project's namespace: <{EMProject}ZCutSpacing> -> <ZCutSpacing>
        if isinstance(el.tag, str) and el.tag.startswith(_NS):
            el.tag = el.tag[len(_NS):]
    if root.tag != "EMProject":
        raise FileFormatError(f"{p}: expected an <EMProject> root (namespace 'EMProject' or none), found <{root.tag}>")
    spacing = _length_nm(root, "ZCutSpacing", p, *PIXEL_NM)
    datasets = {}
    for ds in root.iter("Dataset"):
        name = (ds.findtext("Name") or "").strip()
        center = ds.find("BoxCenter")
        size = ds.find("BoxSize")
        if not name or center is None or size is None:
            continue
        size_z = _length_nm(size, "SizeZ", p, 0.0, FIELD_NM)
        datasets[name] = {
            "z0_nm": _length_nm(center, "CenterZ", p, -FIELD_NM, FIELD_NM) - size_z / 2,
            "size_z_nm": size_z,
            "cuts": _cuts(ds, p),
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
        in the project, ``n`` is outside its cuts, the images are of two
        datasets (SEM and FIB slices are two series, not one stack), or two
        images are one slice (``-1`` and ``-001``).
    """
    depths, numbers, names = [], [], []
    seen: dict[int, Path] = {}
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
        name = wanted if wanted in project.datasets else m["dataset"]
        if names and name != names[0]:
            raise FileFormatError(f"{img}: expected slice images of one dataset of the project, got '{names[0]}' and '{name}'")
        if n in seen:
            raise FileFormatError(f"{img}: expected one image a slice, got slice {n} twice: '{seen[n].name}' and '{img.name}'")
        seen[n] = img
        names.append(name)
        depths.append(box["z0_nm"] + (n - 1) * project.spacing_nm)
        numbers.append(n)
    return depths, numbers


def _plural(n: int, word: str) -> str:
    return f"{n} {word}{'' if n == 1 else 's'}"


def _described(members: list[tuple[Path, int]], label: str) -> str:
    """``'SEM Image' (3 slices: SEM_Image-SliceImage-001.tif to ...-003.tif)`` for the message naming the runs."""
    first, last = members[0][0].name, members[-1][0].name
    span = first if len(members) == 1 else f"{first} to {last}"
    return f"{label} ({_plural(len(members), 'slice')}: {span})"


def _and(items: list[str]) -> str:
    return items[0] if len(items) == 1 else ", ".join(items[:-1]) + " and " + items[-1]


def check_one_run(images: list[Path], project: Path | None = None) -> None:
    """Refuse image files that are not the slices of one Auto Slice & View run.

    Nothing is checked unless some file is named as an ASV slice (``<dataset>-SliceImage-<n>.tif``).
    Then every file must be one (an overview or any other image among them is refused, naming it: every
    file given is a slice, none is skipped), of one dataset, of one project (given, or found beside each
    image by :func:`find_project`), and each slice number may come once (``-1`` and ``-001`` are two
    numberings: two runs). The message names the folder and each run. This holds whatever gives the z
    (the project, ``slice_thickness=`` or ``depths=``): two runs are never one stack.

    Raises
    ------
    FileFormatError
        When the files are not the slices of one run.
    """
    named = [(img, _SLICE.match(img.stem)) for img in images]
    if not any(m for _, m in named):
        return
    folder = Path(os.path.commonpath([str(img.parent) for img in images]))
    strays = [img.name for img, m in named if m is None]
    slices = [(img, m) for img, m in named if m is not None]
    example = f"'{slices[0][0].parent / (slices[0][1]['dataset'] + '-SliceImage-*' + slices[0][0].suffix)}'"
    if strays:
        raise FileFormatError(
            f"path_or_paths: expected only Auto Slice & View slice images ('<dataset>-SliceImage-<n>.tif') in '{folder}', "
            f"found {_plural(len(strays), 'other image')} beside its {_plural(len(slices), 'slice')}: {strays[:8]}"
            f"{' ...' if len(strays) > 8 else ''}; they are not slices of the run: give the slices alone, e.g. {example}"
        )
    found: dict[Path, Path | None] = {}
    runs: dict[tuple[str, str], list[tuple[Path, int]]] = {}
    for img, m in slices:
        if project is None and img.parent not in found:
            found[img.parent] = find_project(img)
        where = project if project is not None else found[img.parent]
        runs.setdefault((str(where or ""), m["dataset"].replace("_", " ")), []).append((img, int(m["n"])))
    if len(runs) > 1:
        (p0, d0), (p1, d1) = list(runs)[:2]
        what, got = (("project", (p0, p1)) if p0 != p1 else ("dataset of the project" if p0 else "dataset", (d0, d1)))
        labels = [f"'{d}'" + (f" of '{Path(p).relative_to(folder) if Path(p).is_relative_to(folder) else p}'" if p0 != p1 and p else "")
                  for p, d in runs]
        raise FileFormatError(
            f"path_or_paths: expected slice images of one {what}, got '{got[0]}' and '{got[1]}': '{folder}' holds "
            f"{_plural(len(runs), 'Auto Slice & View run')}, {_and([_described(v, lab) for v, lab in zip(runs.values(), labels, strict=True)])}; "
            f"they are not one stack: read one run at a time, e.g. {example}"
        )
    _check_numbering(next(iter(runs.items())), folder)


def _check_numbering(run: tuple[tuple[str, str], list[tuple[Path, int]]], folder: Path) -> None:
    """Refuse a slice number given twice, naming the numberings (folder, digits written) as two runs."""
    (_, dataset), members = run
    seen: dict[int, Path] = {}
    for img, n in members:
        if n in seen:
            groups: dict[tuple[Path, bool], list[tuple[Path, int]]] = {}
            for q, k in members:
                digits = _SLICE.match(q.stem)["n"]  # type: ignore[index]
                groups.setdefault((q.parent, len(digits) > 1 and digits.startswith("0")), []).append((q, k))
            one = len({g[0] for g in groups}) == 1
            runs = [_described(v, ("" if one else f"'{g[0].relative_to(folder)}', ") + ("zero-padded" if g[1] else "plain") + " numbers")
                    for g, v in groups.items()]
            raise FileFormatError(
                f"path_or_paths: expected one image a slice, got slice {n} twice: '{seen[n].name}' and '{img.name}': "
                f"'{folder}' holds two numberings of '{dataset}' (two runs): {_and(runs)}; read one run at a time"
            )
        seen[n] = img
