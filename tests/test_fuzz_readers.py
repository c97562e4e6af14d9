"""Every reader against hostile files (issue 21): truncations, bit flips, zero-length, random and edited headers.

Each reader case of the shared suite (tests/io/test_io_readers.py: real instrument files and
spec-faithful written ones) is mutated with deterministic seeds; every mutant is read and fully
computed in a child process (see fuzz_helpers) under a memory limit and a timeout. A mutant may
read (a flipped pixel is still an image) or raise a PfibsimsError naming the file; it must never
crash the process, hang, exhaust memory, or leak another exception.
"""

from __future__ import annotations

import os
import re
import resource
import shutil
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
from fuzz_helpers import Outcome, run_cases, summary

#: Address-space limit of a child: a reader that allocates from a declared size hits it.
MEMORY_LIMIT = 3 * 2**30
#: Seconds a child may spend on one mutant.
TIMEOUT = 30.0
#: Bit-flip mutants per file in CI (PFIBSIMS_FUZZ_SCALE multiplies them; the closing campaign used 40).
FLIPS = 2 * int(os.environ.get("PFIBSIMS_FUZZ_SCALE", "1"))
#: Readers whose every mutant that decodes costs seconds (the JEOL .pts event decoder is compiled in each
#: child): CI runs their truncated, empty and random mutants only; flips from PFIBSIMS_FUZZ_SCALE=2.
SLOW = {"jeol-pts": FLIPS - 2}


def _suite() -> Any:
    """The shared reader suite, tests/io/test_io_readers.py (its folder is not on sys.path in a child)."""
    import importlib.util
    import sys

    if "test_io_readers" not in sys.modules:
        spec = importlib.util.spec_from_file_location("test_io_readers", Path(__file__).parent / "io" / "test_io_readers.py")
        module = importlib.util.module_from_spec(spec)
        sys.modules["test_io_readers"] = module
        spec.loader.exec_module(module)
    return sys.modules["test_io_readers"]


def read_mutant(case: str, path: str) -> tuple[str, ...]:
    """Read and compute one mutant; the names and shapes read (module level: runs in the child)."""
    import dask

    suite = _suite()
    soft, hard = resource.getrlimit(resource.RLIMIT_AS)
    if soft == resource.RLIM_INFINITY or soft > MEMORY_LIMIT:
        resource.setrlimit(resource.RLIMIT_AS, (MEMORY_LIMIT, hard))
    ds = suite.CASES[case].read(Path(path))
    with dask.config.set(scheduler="synchronous"):
        ds = ds.compute()
    return tuple(f"{n}{tuple(v.shape)}" for n, v in ds.data_vars.items())


def _mutants(src: Path, out: Path, seed: int, n_flips: int) -> list[tuple[str, Path]]:
    """Deterministic mutants of ``src`` written beside each other in ``out``."""
    raw = src.read_bytes()
    rng = np.random.default_rng(seed)
    made = {}
    made["empty"] = b""
    for frac in (0.02, 0.3, 0.7, 0.999):
        made[f"cut{frac}"] = raw[: int(len(raw) * frac)]
    for at in (8, 300):  # inside the first header: a magic number, then a directory or a fixed header cut short
        made[f"cut{at}B"] = raw[:at]
    for k in range(n_flips):
        b = bytearray(raw)
        head = k % 2 == 0  # half the flips in the first 4 KB, where the headers are
        where = rng.integers(0, min(len(b), 4096) if head else len(b), 16)
        for w in where:
            b[w] ^= 1 << int(rng.integers(0, 8))
        made[f"flip16-{'head' if head else 'any'}-{k}"] = bytes(b)
    made["random"] = rng.integers(0, 256, min(len(raw), 65536), dtype=np.uint8).tobytes()
    paths = []
    for label, data in made.items():
        d = out / label
        d.mkdir()
        p = d / src.name
        p.write_bytes(data)
        paths.append((label, p))
    return paths


def _with_partner(mutant: Path, partner: Path) -> Path:
    """A mutated half of a Ripple pair beside an intact copy of the other half."""
    (mutant.parent / partner.name).write_bytes(partner.read_bytes())
    return mutant


def _cases(tmp_path: Path, names: list[str], n_flips: int) -> tuple[list[str], list[tuple]]:
    suite = _suite()
    labels, cases = [], []
    for name in names:
        (tmp_path / name).mkdir()
        src = suite.CASES[name].make(tmp_path / name)
        seed = int.from_bytes(name.encode()[:4], "little")
        if src.suffix == ".rpl":  # the header and the data file of the pair are mutated separately
            raw = src.with_suffix(".raw")
            found = [(f"rpl-{lab}", _with_partner(p, raw)) for lab, p in _mutants(src, _dir(tmp_path / f"{name}-rpl"), seed, n_flips)]
            found += [(f"raw-{lab}", _with_partner(p, src).with_suffix(".rpl"))
                      for lab, p in _mutants(raw, _dir(tmp_path / f"{name}-raw"), seed + 1, n_flips)]
        else:
            found = _mutants(src, _dir(tmp_path / f"{name}-mutants"), seed, SLOW.get(name, n_flips))
        for label, p in found:
            labels.append(f"{name}/{label}")
            cases.append((read_mutant, (name, str(p))))
    return labels, cases


def _dir(p: Path) -> Path:
    p.mkdir()
    return p


def _clean(o: Outcome) -> bool:
    from pfibsims import errors

    if o.kind == "ok":
        return True
    return o.kind == "error" and o.error in {n for n in errors.__all__ if not n.endswith("Warning")}


READERS = ["bcf-P45", "bcf-30x30", "bcf-images", "jeol-map", "jeol-img", "jeol-pts", "im-openmims", "im-rti", "sem-fei16",
           "sem-zeiss", "sem-multipage", "asv-emxml", "h5oina", "ripple",
           "asv-slice", "bcf-tem", "bcf-v2", "bcf-overview"]  # the other files of issue 17


def test_mutated_files_read_or_raise_a_clean_error(tmp_path):
    labels, cases = _cases(tmp_path, READERS, n_flips=FLIPS)
    outcomes = run_cases(cases, timeout=TIMEOUT)
    bad = [(lab, o) for lab, o in zip(labels, outcomes, strict=True) if not _clean(o)]
    assert not bad, f"{len(bad)} of {len(cases)} mutants were not clean:\n" + summary([o for _, o in bad], [lab for lab, _ in bad])
    # an error names the file it is about (each mutant lives in its own directory)
    unnamed = [(lab, o) for lab, (_, (_, path)), o in zip(labels, cases, outcomes, strict=True)
               if o.kind == "error" and f"{Path(path).parent.name}/" not in o.message.splitlines()[0]]
    assert not unnamed, summary([o for _, o in unnamed], [lab for lab, _ in unnamed])


# ------------------------------------------------------------------ hostile headers, one guard each


def read_file(kind: str, path: str, kwargs: dict) -> tuple[str, ...]:
    """``pfs.read_<kind>(path, **kwargs)`` fully computed, under the memory limit (runs in the child)."""
    import dask

    import pfibsims as pfs

    soft, hard = resource.getrlimit(resource.RLIMIT_AS)
    if soft == resource.RLIM_INFINITY or soft > MEMORY_LIMIT:
        resource.setrlimit(resource.RLIMIT_AS, (MEMORY_LIMIT, hard))
    ds = getattr(pfs, f"read_{kind}")(path, **kwargs)
    with dask.config.set(scheduler="synchronous"):
        ds = ds.compute()
    return tuple(f"{n}{tuple(v.shape)}" for n, v in ds.data_vars.items())


def _patched(src: Path, dst: Path, edits: dict[int, bytes]) -> Path:
    raw = bytearray(src.read_bytes())
    for offset, value in edits.items():
        raw[offset : offset + len(value)] = value
    dst.parent.mkdir(parents=True, exist_ok=True)
    dst.write_bytes(bytes(raw))
    return dst


def _replaced(src: Path, dst: Path, old: bytes, new: bytes) -> Path:
    assert len(old) == len(new)
    raw = src.read_bytes()
    assert old in raw, old
    dst.parent.mkdir(parents=True, exist_ok=True)
    dst.write_bytes(raw.replace(old, new))
    return dst


def _tiff_dims(src: Path, dst: Path, width: int, length: int) -> Path:
    """A copy whose first page's ImageWidth/ImageLength say otherwise (as LONG entries; strips unchanged)."""
    import struct

    import tifffile

    with tifffile.TiffFile(src) as tif:
        tags = tif.pages[0].tags
        entries = {tags["ImageWidth"].offset: width, tags["ImageLength"].offset: length}
    return _patched(src, dst, {o: struct.pack("<HHII", code, 4, 1, v) for (o, v), code in zip(entries.items(), (256, 257), strict=True)})


def _tiff_short(src: Path, dst: Path, name: str, value: int) -> Path:
    """A copy whose first page's SHORT tag ``name`` (e.g. BitsPerSample) holds ``value``."""
    import struct

    import tifffile

    with tifffile.TiffFile(src) as tif:
        tag = tif.pages[0].tags[name]
        assert (tag.dtype, tag.count) == (3, 1)
        return _patched(src, dst, {tag.offset + 8: struct.pack("<HH", value, 0)})


def _tiff_loop(src: Path, dst: Path, to: int = 0) -> Path:
    """A copy whose last page points back to page ``to`` as the next page (a circular chain of pages)."""
    import struct

    import tifffile

    with tifffile.TiffFile(src) as tif:
        offsets = [q.offset for q in tif.pages]
    raw = src.read_bytes()
    entries = struct.unpack_from("<H", raw, offsets[-1])[0]
    return _patched(src, dst, {offsets[-1] + 2 + 12 * entries: struct.pack("<I", offsets[to])})


def _tiff_next(src: Path, dst: Path, where: Any) -> Path:
    """A copy whose last page points to ``where(file size, first data offset)`` as the next page (0 when it is the last)."""
    import struct

    import tifffile

    with tifffile.TiffFile(src) as tif:
        last, data = tif.pages[-1].offset, tif.pages[0].dataoffsets[0]
    raw = src.read_bytes()
    entries = struct.unpack_from("<H", raw, last)[0]
    return _patched(src, dst, {last + 2 + 12 * entries: struct.pack("<I", where(len(raw), data))})


def _h5oina(dst: Path, **header: float) -> Path:
    import h5py
    from io_helpers import write_h5oina

    dst.parent.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    write_h5oina(dst, {"Zr_La": rng.random((6, 8)), "Al_Ka": rng.random((6, 8))})
    with h5py.File(dst, "r+") as f:
        for key, value in header.items():
            f[f"1/EDS/Header/{key}"][...] = value
    return dst


def _ripple(dst: Path, **header: str) -> Path:
    from io_helpers import write_ripple

    dst.mkdir(parents=True, exist_ok=True)
    cube = np.random.default_rng(0).integers(0, 9, (6, 8, 50)).astype(np.uint16)
    extra = {"ev-per-chan": "10", "width-scale": "81.4", "width-units": "nm", "height-scale": "81.4", "height-units": "nm"}
    rpl = write_ripple(dst / "Zr La1", cube, extra=extra)
    text = rpl.read_text()
    for key, value in header.items():
        text = "\n".join(f"{key}\t{value}" if line.split("\t")[0] == key else line for line in text.splitlines())
    rpl.write_text(text + "\n")
    return rpl


def _hostile_cases(t: Path) -> list[tuple[str, str, Path, dict, str]]:
    """(label, reader, file, kwargs, expected message) for each hostile header."""
    from io_helpers import DATA, write_csv, write_tiff

    rng = np.random.default_rng(0)
    aztec = write_tiff(_dir(t / "aztec") / "Zr La1.tif", rng.integers(0, 99, (64, 48)).astype(np.uint16))
    sims_tif = write_tiff(_dir(t / "simstif") / "li.tif", rng.integers(0, 99, (64, 48)).astype(np.uint16))
    big = "TIFF page 0 declares 100000 x 100000 pixels .* but holds .* bytes of pixel data; its ImageWidth/ImageLength are corrupt"
    cases = [
        ("aztec-tiff-100000", "eds", _tiff_dims(aztec, t / "a1" / "Zr La1.tif", 100000, 100000), {"pixel_size": "80 nm"}, big),
        ("sims-tiff-100000", "sims", _tiff_dims(sims_tif, t / "s1" / "li.tif", 100000, 100000), {"isotope": "6Li", "pixel_size": "72 nm"}, big),
        ("aztec-tiff-wider", "eds", _tiff_dims(aztec, t / "a2" / "Zr La1.tif", 96, 64), {"pixel_size": "80 nm"}, "declares 96 x 64 pixels"),
        # a next-page pointer past the end (4 GB on), or into the pixels (no directory there): tifffile stops silently
        ("sims-tiff-next-ifd-4GB", "sims", _tiff_next(sims_tif, t / "n1" / "li.tif", lambda size, data: 0xFFFFFFF0),
         {"isotope": "6Li", "pixel_size": "72 nm"}, "page 0 points to a next page at byte 4294967280, past the end of the file"),
        ("aztec-tiff-next-ifd-into-pixels", "eds", _tiff_next(aztec, t / "n2" / "Zr La1.tif", lambda size, data: data + 1001),
         {"pixel_size": "80 nm"}, "page 0 points to a next page at byte \\d+, where the file holds no readable page directory"),
        ("h5oina-step-1e30", "eds", _h5oina(t / "h1" / "m.h5oina", **{"X Step": 1e30, "Y Step": 1e30}), {},
         "expected a pixel size \\(X Step, Y Step\\) between 0.001 nm and 1e\\+08 nm, found 1e\\+33 nm"),
        ("h5oina-step-1e-30", "eds", _h5oina(t / "h2" / "m.h5oina", **{"X Step": 1e-30, "Y Step": 1e-30}), {}, "found 1e-27 nm"),
        ("h5oina-cells", "eds", _h5oina(t / "h3" / "m.h5oina", **{"X Cells": 100000, "Y Cells": 100000}), {},
         "expected 10000000000 rows \\(X Cells x Y Cells\\)"),
        ("h5oina-cells-negative", "eds", _h5oina(t / "h4" / "m.h5oina", **{"X Cells": -8}), {}, "expected non-negative dimensions"),
        ("ripple-scale-1e30-m", "eds", _ripple(t / "r1", **{"width-scale": "1e30", "width-units": "m"}), {},
         "expected a pixel size \\(height-scale, width-scale\\) between"),
        ("ripple-units-expression", "eds", _ripple(t / "r2", **{"width-units": "10**10**10*nm"}), {"lines": ["C_Ka"]},
         "has no pixel calibration"),
        ("ripple-ev-per-chan-abc", "eds", _ripple(t / "r3", **{"ev-per-chan": "abc"}), {"lines": ["C_Ka"]},
         "ev-per-chan: expected an energy such as '1 eV', got 'abc'"),
        ("ripple-100000", "eds", _ripple(t / "r4", width="100000", height="100000"), {"lines": ["C_Ka"]},
         "its header declares 100000 x 100000 x 50 values"),
        ("ripple-larger-than-raw", "eds", _ripple(t / "r6", width="9"), {"lines": ["C_Ka"]},
         "declares 6 x 9 x 50 values of uint16 \\(5400 bytes\\) .* but the file holds 4800 bytes"),
        ("ripple-negative", "eds", _ripple(t / "r5", width="-8"), {"lines": ["C_Ka"]}, "expected non-negative dimensions"),
        ("hiden-pixel-expression", "sims", write_csv(_dir(t / "hd1") / "li6.txt", np.ones((4, 5)),
                                                     header="Isotope: 6Li\nPixel size: 10**10**10 nm\n"), {}, "has no pixel calibration"),
        ("hiden-pixel-1e30-m", "sims", write_csv(_dir(t / "hd2") / "li6.txt", np.ones((4, 5)),
                                                 header="Isotope: 6Li\nPixel size: 1e30 m\n"), {}, "found 1e\\+39 nm in the file"),
    ]
    if (DATA / "SOURCES.md").exists():
        fei, zeiss = DATA / "sem/FEI-Helios-Ebeam-16bits.tif", DATA / "sem/test_tiff_Zeiss_SEM_512pix.tif"
        multi, asv = DATA / "sem/ZEISS_SEM_multipage.tif", DATA / "sem/SEM_Image-SliceImage-001.tif"
        im, jeol = DATA / "sims/OpenMIMS_doc_051117_05-32dRe-03b.im", DATA / "eds/jeol_View000/View000_0000001.map"
        cases += [
            ("sem-fei-100000", "sem", _tiff_dims(fei, t / "f1" / fei.name, 100000, 100000), {}, big),
            ("sem-fei-pixel-1e26-m", "sem", _replaced(fei, t / "f2" / fei.name, b"PixelWidth=3.3724e-006", b"PixelWidth=3.3724e+026"), {},
             "expected a pixel size \\(Scan.PixelHeight/PixelWidth\\) between"),
            ("sem-zeiss-ap_width-1e300", "sem", _replaced(zeiss, t / "z1" / zeiss.name, b"Width = 5.965", b"Width = 1e300"), {},
             "expected a pixel size \\(ap_width over the image width\\) between"),
            ("sem-zeiss-ap_width-1e-30", "sem", _replaced(zeiss, t / "z2" / zeiss.name, b"Width = 5.965", b"Width = 1e-30"), {},
             "expected a pixel size \\(ap_width over the image width\\) between"),
            # tifffile iterates a circular chain of pages for ever; a page of no width, a pixel type numpy lacks
            ("sem-asv-ifd-loop", "sem", _tiff_loop(asv, t / "l1" / asv.name), {}, "page 0 points back to page 0 .* the chain of pages loops"),
            ("sem-multipage-ifd-loop", "sem", _tiff_loop(multi, t / "l2" / multi.name), {"slice_thickness": "50 nm"},
             "page 1 points back to page 0 .* the chain of pages loops"),
            ("aztec-tiff-ifd-loop", "eds", _tiff_loop(aztec, t / "l3" / "Zr La1.tif"), {"pixel_size": "80 nm"}, "the chain of pages loops"),
            ("sem-asv-next-ifd-past-end", "sem", _tiff_next(asv, t / "n3" / asv.name, lambda size, data: size + 8), {},
             "page 0 points to a next page at byte 1765148, past the end of the file \\(1765140 bytes\\)"),
            ("sem-multipage-next-ifd-into-pixels", "sem", _tiff_next(multi, t / "n4" / multi.name, lambda size, data: data + 7),
             {"slice_thickness": "50 nm"}, "page 1 points to a next page at byte \\d+, where the file holds no readable page directory"),
            ("sem-fei-width-0", "sem", _tiff_dims(fei, t / "w0" / fei.name, 0, 471), {}, "TIFF page 0 declares 0 x 471 pixels; expected at least one"),
            ("sem-fei-bits-0", "sem", _tiff_short(fei, t / "b0" / fei.name, "BitsPerSample", 0), {},
             "TIFF page 0 has pixels of a type numpy does not hold \\(BitsPerSample 0"),
            ("sem-zeiss-ap_width-nan", "sem", _replaced(zeiss, t / "z3" / zeiss.name, b"Width = 5.965", b"Width = nan  "), {},
             "expected ap_width \\(image width\\) as a finite length, found 'nan"),
            ("sem-zeiss-ap_height-inf", "sem", _replaced(multi, t / "z4" / multi.name, b"Height = 18.93", b"Height = inf  "),
             {"slice_thickness": "50 nm"}, "expected ap_height \\(image height\\) as a positive finite length, found 'inf"),
            ("sem-zeiss-ap_height-0", "sem", _replaced(multi, t / "z5" / multi.name, b"Height = 18.93", b"Height = 0    "),
             {"slice_thickness": "50 nm"}, "expected ap_height \\(image height\\) as a positive finite length, found '0"),
            ("im-raster-2^31-1", "sims", _patched(im, t / "i1" / im.name, {25116: (2**31 - 1).to_bytes(4, "big")}), {},
             "makes a field of 2147.48 mm"),
            ("im-width-32767", "sims", _patched(im, t / "i2" / im.name, {25106: (32767).to_bytes(2, "big"), 25108: (32767).to_bytes(2, "big")}), {},
             im.name),
            ("jeol-size-100000", "eds", _patched(jeol, t / "j1" / jeol.name, {30483: (100000).to_bytes(4, "little") * 2}), {},
             "declares 100000 x 100000 values of JEOL image pixels|declares 100000 x 100000 pixels"),
            ("jeol-size-512x1024", "eds", _patched(jeol, t / "j2" / jeol.name, {30487: (1024).to_bytes(4, "little")}), {},
             "declares 512 x 1024 pixels \\(Image/Size\\), but Image/Bits holds 262144 values"),
        ]
    return cases


def test_hostile_headers_are_refused_before_anything_is_allocated(tmp_path):
    cases = _hostile_cases(tmp_path)
    outcomes = run_cases([(read_file, (kind, str(path), kw)) for _, kind, path, kw, _ in cases], timeout=TIMEOUT)
    wrong = []
    for (label, _, path, _, expected), o in zip(cases, outcomes, strict=True):
        first = o.message.splitlines()[0] if o.message else ""
        if not (_clean(o) and o.kind == "error" and re.search(expected, first) and path.parent.name in first):
            wrong.append(f"{label}: {o}")
    assert not wrong, "\n".join(wrong)


# ------------------------------------------------------------------ hostile paths: what the file system holds there


def read_path(kind: str, path: Any, kwargs: dict, user: int | None) -> tuple[str, ...]:
    """``pfs.<kind>(path, **kwargs)`` fully computed, as ``user`` (an effective uid) when given (runs in the child)."""
    if user is None:
        return read_file(kind.removeprefix("read_"), path, kwargs) if kind != "open_dataset" else _opened(path)
    os.setegid(user)
    os.seteuid(user)
    try:
        return read_path(kind, path, kwargs, None)
    finally:
        os.seteuid(0)
        os.setegid(0)


def _opened(path: Any) -> tuple[str, ...]:
    import pfibsims as pfs

    return tuple(pfs.open_dataset(path).compute().data_vars)


def _path_cases(t: Path) -> list[tuple[str, str, Any, dict, str]]:
    """(label, reader, path, kwargs, expected message) for paths that are not a readable regular file."""
    from io_helpers import write_tiff

    tif = write_tiff(_dir(t / "ok") / "Zr La1.tif", np.ones((6, 8), np.uint16))
    loop = _dir(t / "loop")
    os.symlink(loop / "b.tif", loop / "a.tif")
    os.symlink(loop / "a.tif", loop / "b.tif")
    os.symlink(loop / "b.zarr", loop / "a.zarr")
    os.symlink(loop / "a.zarr", loop / "b.zarr")
    dev = _dir(t / "dev")
    os.symlink("/dev/zero", dev / "li.csv")
    os.mkfifo(dev / "se.tif")
    (_dir(t / "dirs") / "x.tif").mkdir()
    long = str(t / ("x" * 300 + ".tif"))
    eds = {"pixel_size": "80 nm"}
    return [
        ("symlink-loop", "read_eds", loop / "a.tif", eds, "a symbolic-link loop"),
        ("symlink-loop-store", "open_dataset", loop / "a.zarr", {}, "a symbolic-link loop"),
        ("dev-zero", "read_sims", dev / "li.csv", {"isotope": "6Li"}, "expected a regular file, .* a device, a pipe or a socket"),
        ("fifo", "read_sem", dev / "se.tif", {}, "expected a regular file, .* a device, a pipe or a socket"),
        ("directory-named-tif", "read_sem", [t / "dirs" / "x.tif"], {}, "which is a directory"),
        ("name-too-long", "read_sem", long, {}, "expected a path this user can look at, .*File name too long"),
        ("name-too-long-store", "open_dataset", long[:-4] + ".zarr", {}, "File name too long"),
        ("nul-byte", "read_sem", str(tif).replace("Zr", "Z\x00r"), {}, "embedded null byte"),
        ("bcf-named-tif", "read_eds", _copy("eds/P45_the_default_job.bcf", t / "bcf" / "Zr La1.tif"), eds, "expected a readable TIFF map"),
        ("tif-named-bcf", "read_eds", _copy("sem/test_tiff_FEI_SEM.tif", t / "tif" / "x.bcf"), {}, "expected a Bruker .bcf"),
    ]


def _copy(name: str, dst: Path) -> Path:
    from io_helpers import DATA

    dst.parent.mkdir(parents=True, exist_ok=True)
    dst.write_bytes((DATA / name).read_bytes() if (DATA / name).exists() else b"not a real file")
    return dst


def _unreadable_cases(t: Path) -> list[tuple[str, str, Any, dict, str]]:
    """Files and folders this user may not read (run as 'nobody' when the tests run as root)."""
    from io_helpers import write_h5oina, write_tiff

    rng = np.random.default_rng(0)
    made = {
        "tif": (write_tiff(_dir(t / "u1") / "se.tif", rng.integers(0, 99, (6, 8)).astype(np.uint16)), "read_sims", {"isotope": "6Li", "pixel_size": "72 nm"}),
        "bcf": (_copy("eds/P45_the_default_job.bcf", t / "u2" / "m.bcf"), "read_eds", {}),
        "h5oina": (write_h5oina(_dir(t / "u3") / "m.h5oina", {"Zr_La": rng.random((6, 8))}), "read_eds", {}),
        "emxml": (_copy("sem/EMProject.emxml", t / "u4" / "EMProject.emxml"), "read_sem", {}),
    }
    cases = []
    for label, (path, kind, kw) in made.items():
        path.chmod(0)
        if label == "emxml":  # the project of a slice image
            kw, path = {"project": str(path)}, _copy("sem/SEM_Image-SliceImage-001.tif", t / "u4" / "s.tif")
        cases.append((f"unreadable-{label}", kind, path, kw, "expected a readable file, .* which this user may not read"))
    folder = write_tiff(_dir(t / "u5") / "se.tif", np.ones((6, 8), np.uint16)).parent
    folder.chmod(0)
    cases.append(("unreadable-folder", "read_sims", folder, {"isotope": "6Li", "pixel_size": "72 nm"}, "expected a directory this user may list"))
    cases.append(("file-in-unreadable-folder", "read_sims", folder / "se.tif", {"isotope": "6Li", "pixel_size": "72 nm"},
                  "expected a path this user can look at, .*Permission denied"))
    return cases


def test_paths_that_are_not_readable_files_are_refused_naming_the_path(tmp_path):
    cases = [(*c, None) for c in _path_cases(tmp_path)]
    user = 65534 if os.geteuid() == 0 else None  # root reads anything: the unreadable cases run as 'nobody'
    shared = Path(tempfile.mkdtemp(prefix="pfibsims-unreadable-"))  # pytest's folders are private to their user
    shared.chmod(0o755)
    cases += [(*c, user) for c in _unreadable_cases(shared)]
    try:
        outcomes = _run_paths(cases)
    finally:
        shutil.rmtree(shared)
    wrong = []
    for (label, _, path, kw, expected, _), o in zip(cases, outcomes, strict=True):
        first = o.message.splitlines()[0] if o.message else ""
        named = Path(kw.get("project") or (path[0] if isinstance(path, list) else path)).name.split("\x00")[0][:40]
        if not (o.kind == "error" and _clean(o) and re.search(expected, first) and named in first):
            wrong.append(f"{label}: {o}")
    assert not wrong, "\n".join(wrong)


def _run_paths(cases: list) -> list[Outcome]:
    return run_cases([(read_path, (kind, str(p) if isinstance(p, Path) else [str(q) for q in p] if isinstance(p, list) else p, kw, u))
                      for _, kind, p, kw, _, u in cases], timeout=TIMEOUT)
