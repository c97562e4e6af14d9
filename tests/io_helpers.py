"""Shared pieces of the io tests: where the real files are, and writers of spec-faithful small files.

The writers produce files in the layouts the formats' own documents give; they
are test fixtures, not pfibsims code.
"""

from __future__ import annotations

from pathlib import Path

import h5py
import numpy as np
import pytest
import tifffile

#: Real instrument files (see SOURCES.md there), beside the repository.
DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"

needs_data = pytest.mark.skipif(
    not (DATA / "SOURCES.md").exists(),
    reason=f"real instrument files not found at {DATA} (the shared/ directory beside the repository)",
)


def data_file(rel: str) -> Path:
    p = DATA / rel
    if not p.exists():
        pytest.skip(f"real instrument file {rel} not found under {DATA}")
    return p


def _str(group: h5py.Group, name: str, value: str) -> None:
    group.create_dataset(name, data=np.array([value.encode()], dtype=h5py.string_dtype("utf-8")))


def _num(group: h5py.Group, name: str, value: float, dtype: str) -> None:
    group.create_dataset(name, data=np.array([[value]], dtype=dtype))


def write_h5oina(path: Path, maps: dict[str, np.ndarray], *, step_um: float = 0.0814, spectrum: np.ndarray | None = None,
                 channel_width: float = 10.0, start_channel: float = -100.0) -> Path:
    """Write an EDS map file exactly in the layout of Oxford Instruments' H5OINA spec (H5OINAFile.md).

    Root: Manufacturer, Software Version, Format Version, Index (Type attr).
    Slice '1' / technique 'EDS' / 'Header' (X Cells, Y Cells, X Step, Y Step
    in um, Beam Voltage kV, Working Distance mm, Project Label, Stage Position
    group, Channel Width, Start Channel, Number Channels) and 'Data' ('Window
    Integral' datasets named '<El> <Line>1' of shape (size, 1) float32 with
    Atomic Number / X-ray Line attrs, 'Live Time', optional 'Spectrum'
    (size, channels) int32). size = X Cells * Y Cells, rows in raster order.
    """
    ny, nx = next(iter(maps.values())).shape
    with h5py.File(path, "w") as f:
        _str(f, "Manufacturer", "Oxford Instruments")
        _str(f, "Software Version", "6.1.0.0")
        _str(f, "Format Version", "6.0")
        idx = f.create_dataset("Index", data=np.array([b"1"], dtype=h5py.string_dtype("utf-8")))
        idx.attrs["Type"] = "Single"
        eds = f.create_group("1/EDS")
        header, data = eds.create_group("Header"), eds.create_group("Data")
        _num(header, "X Cells", nx, "int32")
        _num(header, "Y Cells", ny, "int32")
        _num(header, "X Step", step_um, "float32")
        _num(header, "Y Step", step_um, "float32")
        _num(header, "Beam Voltage", 5.0, "float32")
        _num(header, "Working Distance", 4.2, "float32")
        _num(header, "Magnification", 3000.0, "float32")
        _str(header, "Project Label", "pfibsims test")
        _str(header, "Acquisition Date", "2024-01-02T03:04:05")
        stage = header.create_group("Stage Position")
        _num(stage, "X", 12.5, "float32")
        _num(stage, "Y", -3.25, "float32")
        _num(header, "Channel Width", channel_width, "float32")
        _num(header, "Start Channel", start_channel, "float32")
        if spectrum is not None:
            _num(header, "Number Channels", spectrum.shape[-1], "int32")
        wi = data.create_group("Window Integral")
        z_of = {"Zr": 40, "Co": 27, "Al": 13, "C": 6, "Li": 3}
        for name, arr in maps.items():
            el, line = name.split("_")
            d = wi.create_dataset(f"{el} {line}1", data=arr.reshape(-1, 1).astype(np.float32))
            d.attrs["Atomic Number"] = np.int32(z_of.get(el, 1))
            d.attrs["X-ray Line"] = f"{line}1"
            d.attrs["Unit"] = "counts per second"
        data.create_dataset("Live Time", data=np.full((nx * ny, 1), 0.01, np.float32))
        if spectrum is not None:
            data.create_dataset("Spectrum", data=spectrum.reshape(nx * ny, -1).astype(np.int32))
    return path


def write_ripple(stem: Path, cube: np.ndarray, *, record_by: str = "vector", byte_order: str = "little-endian",
                 extra: dict[str, str] | None = None) -> Path:
    """Write a Ripple pair (Lispix .rpl header + .raw) for a (y, x) map or (y, x, depth) cube."""
    data = cube if cube.ndim == 3 else cube[..., None]
    ht, w, d = data.shape
    dt = data.dtype
    kind = {"i": "signed", "u": "unsigned", "f": "float"}[dt.kind]
    lines = {
        "key": "value", "width": str(w), "height": str(ht), "depth": str(d), "offset": "0",
        "data-length": str(dt.itemsize), "data-type": kind, "byte-order": byte_order,
        "record-by": record_by if d > 1 else "dont-care", **(extra or {}),
    }
    stem.with_suffix(".rpl").write_text("; written by the pfibsims tests\n" + "".join(f"{k}\t{v}\n" for k, v in lines.items()))
    raw = data if record_by == "vector" or d == 1 else np.moveaxis(data, -1, 0)
    order = ">" if byte_order == "big-endian" else "<"
    np.ascontiguousarray(raw).astype(dt.newbyteorder(order)).tofile(stem.with_suffix(".raw"))
    return stem.with_suffix(".rpl")


def write_tiff(path: Path, arr: np.ndarray) -> Path:
    """A grey-level TIFF (a (z, y, x) array is z pages; tifffile alone writes (3, y, x) as planar RGB)."""
    tifffile.imwrite(path, arr, photometric="minisblack")
    return path


def write_csv(path: Path, arr: np.ndarray, header: str = "", sep: str = ",", trailing: bool = True) -> Path:
    rows = [sep.join(str(v) for v in row) + (sep if trailing else "") for row in np.atleast_2d(arr)]
    path.write_text(header + "\n".join(rows) + "\n")
    return path


def truncated_copy(src: Path, dst: Path, fraction: float = 0.5) -> Path:
    raw = src.read_bytes()
    dst.write_bytes(raw[: int(len(raw) * fraction)])
    return dst
