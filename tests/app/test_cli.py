import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import tifffile
from io_helpers import write_h5oina

import pfibsims
from pfibsims.app.cli import main


def test_version(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["--version"])
    assert exc.value.code == 0
    assert capsys.readouterr().out.strip() == f"pfibsims {pfibsims.__version__}"


def test_python_dash_m_runs():
    out = subprocess.run([sys.executable, "-m", "pfibsims", "--version"], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == f"pfibsims {pfibsims.__version__}"


def _run_script(argv, tmp_path):
    """``pfibsims.app.cli.run`` in a child process with an exit handler that writes a file and unflushed output."""
    mark = tmp_path / "handler-ran"
    code = (
        "import atexit, pathlib, sys\n"
        f"atexit.register(lambda: pathlib.Path({str(mark)!r}).write_text('yes'))\n"
        "sys.stdout.write('unflushed line\\n')\n"
        f"sys.argv = ['pfibsims', *{list(argv)!r}]\n"
        "from pfibsims.app.cli import run\n"
        "run()\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    return out, mark


def test_the_console_script_runs_exit_handlers_and_flushes_before_it_ends(tmp_path):
    out, mark = _run_script([], tmp_path)
    assert out.returncode == 2  # no command: help and exit code 2, as main returns
    assert "unflushed line" in out.stdout
    assert "demo" in out.stdout
    assert mark.read_text() == "yes"


def test_the_console_script_reports_a_library_error_with_its_exit_code(tmp_path):
    out, mark = _run_script(["report", str(tmp_path / "missing.zarr"), str(tmp_path / "r")], tmp_path)
    assert out.returncode == 2
    assert "pfibsims report: error:" in out.stderr
    assert mark.read_text() == "yes"


def test_no_command_prints_help(capsys):
    assert main([]) == 2
    assert "demo" in capsys.readouterr().out


# -- demo, fuse and report ----------------------------------------------------


@pytest.fixture(scope="module")
def demo_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp("demo")
    assert main(["demo", str(out), "--slices", "4", "--overwrite"]) == 0
    return out


def test_demo_writes_volume_figures_and_report(demo_dir):
    vol = pfibsims.open_dataset(demo_dir / "fused.zarr")
    assert {"Li6", "Zr_La", "coverage", "phase"} <= set(vol.data_vars)
    rep = json.loads((demo_dir / "report.json").read_text())
    assert rep["registration_error"]["max_error_nm"] < 3 * 81.4  # compared with the phantom's truth
    assert {"phantom (synthetic cathode)", "fuse: drift, registration, Lanczos resampling"} <= set(rep["timings_s"])
    assert len(list((demo_dir / "figures").glob("*.png"))) >= 5


def test_release_memory_frees_what_a_stage_left_in_cycles():
    import gc
    import weakref

    from pfibsims._memory import release_memory

    class Node:
        pass

    a, b = Node(), Node()
    a.other, b.other = b, a  # a cycle: only the cyclic collector frees it
    alive = weakref.ref(a)
    gc.disable()
    try:
        del a, b
        assert alive() is not None
        release_memory()
        assert alive() is None
    finally:
        gc.enable()


def test_demo_refuses_to_overwrite(demo_dir, capsys):
    assert main(["demo", str(demo_dir), "--slices", "4"]) == 2
    assert "outdir: expected no previous output" in capsys.readouterr().err


def test_report_command_on_a_saved_volume(demo_dir, tmp_path, capsys):
    assert main(["report", str(demo_dir / "fused.zarr"), str(tmp_path)]) == 0
    rep = json.loads((tmp_path / "report.json").read_text())
    assert rep["pearson"]["a"] == "Li6"
    assert -1 <= rep["pearson"]["r"] <= 1
    assert "Pearson r(Li6, Zr_La)" in capsys.readouterr().out


@pytest.mark.slow
def test_report_command_on_a_store_with_other_channel_names(demo_dir, tmp_path, capsys):
    vol = pfibsims.open_dataset(demo_dir / "fused.zarr").drop_vars("phase").isel(y=slice(0, 108), x=slice(0, 176))
    names = {"Zr_La": "Fe_Ka", "Co_La": "S_Ka", "Al_Ka": "Cu_Ka", "C_Ka": "O_Ka", "Li6": "O18"}
    other = vol.rename(names)
    for new in names.values():
        other[new].attrs = pfibsims.dataset.channel_attrs(new)
    pfibsims.save(other, tmp_path / "other.zarr")
    assert main(["report", str(tmp_path / "other.zarr"), str(tmp_path / "a")]) == 0
    first_line = next(c for c in pfibsims.open_dataset(tmp_path / "other.zarr").data_vars if c.endswith("_Ka"))
    assert f"Pearson r(O18, {first_line})" in capsys.readouterr().out  # no Li6, Zr_La: a SIMS isotope, an EDS line
    assert main(["report", str(tmp_path / "other.zarr"), str(tmp_path / "b"), "--channels", "S_Ka", "Cu_Ka"]) == 0
    rep = json.loads((tmp_path / "b" / "report.json").read_text())
    assert (rep["pearson"]["a"], rep["pearson"]["b"]) == ("S_Ka", "Cu_Ka")
    assert len(rep["figures"]) >= 4
    assert not {"LLZTO", "LCO", "SP", "matrix"} & set(rep["phases"])
    assert main(["report", str(tmp_path / "other.zarr"), str(tmp_path / "c"), "--channels", "Li6", "Zr_La"]) == 2
    assert "channels: ['Li6', 'Zr_La'] not among the channels of the volume" in capsys.readouterr().err


def _write_files(tmp: Path):
    """Per-slice H5OINA EDS maps and a multi-page SIMS TIFF of the same field (same frame, 2x finer pixels)."""
    rng = np.random.default_rng(0)
    zr = rng.poisson(20, (3, 24, 32)).astype(np.float32)
    eds = [write_h5oina(tmp / f"slice{k}.h5oina", {"Zr_La": zr[k], "Co_La": 30 - zr[k]}, step_um=0.1) for k in range(3)]
    li = np.repeat(np.repeat(zr, 2, axis=1), 2, axis=2)
    tifffile.imwrite(tmp / "li6.tif", li, photometric="minisblack")  # 3 pages: not planar RGB
    return eds, tmp / "li6.tif", zr


def test_fuse_command_on_files(tmp_path):
    eds, sims, zr = _write_files(tmp_path)
    out = tmp_path / "run.zarr"
    args = ["fuse", "--eds", *map(str, eds), "--sims", str(sims), "--out", str(out), "--sims-pixel-size", "50 nm",
            "--isotope", "6Li", "--slice-thickness", "60 nm", "--register", "none", "--no-drift"]
    assert main(args) == 0
    vol = pfibsims.open_dataset(out)
    assert vol.Li6.shape == (3, 24, 32)
    assert set(vol.data_vars) >= {"Zr_La", "Co_La", "Li6", "coverage"}
    # 2x2 pixels of 50 nm averaged onto 100 nm pixels: the Lanczos weights of Pillow's 2x reduction, away from the edges
    inner = (slice(None), slice(3, -3), slice(3, -3))
    np.testing.assert_allclose(vol.Li6.values[inner].mean(), zr[inner].mean(), rtol=0.02)
    assert main(args) == 2  # no overwrite without --overwrite


def _small_sims(tmp: Path, zr: np.ndarray) -> Path:
    """A SIMS TIFF of a 0.4 um square of the EDS field (EDS rows 10-13, columns 20-23), 2x finer, at its own origin."""
    li = np.repeat(np.repeat(zr, 2, axis=1), 2, axis=2)[:, 20:28, 40:48]
    tifffile.imwrite(tmp / "small.tif", li, photometric="minisblack")
    return tmp / "small.tif"


def test_fuse_command_with_an_initial_transform(tmp_path, capsys):
    eds, _, zr = _write_files(tmp_path)
    sims = _small_sims(tmp_path, zr)
    common = ["--eds", *map(str, eds), "--sims", str(sims), "--sims-pixel-size", "50 nm", "--isotope", "6Li",
              "--slice-thickness", "60 nm", "--register", "none", "--no-drift", "--min-coverage", "0.01"]
    # the SIMS point of an EDS point p is p - (1 um, 2 um): given as parameters, or as an Affine in a JSON file
    assert main(["fuse", *common, "--out", str(tmp_path / "a.zarr"), "--initial", '{"shift": ["-1 um", "-2 um"]}']) == 0
    affine = tmp_path / "initial.json"
    affine.write_text(pfibsims.Affine.translation((-1000.0, -2000.0)).to_json())
    assert main(["fuse", *common, "--out", str(tmp_path / "b.zarr"), "--initial", str(affine)]) == 0
    a, b = pfibsims.open_dataset(tmp_path / "a.zarr"), pfibsims.open_dataset(tmp_path / "b.zarr")
    np.testing.assert_array_equal(a.Li6.values, b.Li6.values)
    want = np.zeros(a.coverage.shape[1:], bool)
    want[10:14, 20:24] = True  # the 0.4 um square lands where it was cut from
    assert (a.coverage.values == want).all()
    np.testing.assert_allclose(a.Li6.values[:, 10:14, 20:24].mean(), zr[:, 10:14, 20:24].mean(), rtol=0.1)
    assert "warning" not in capsys.readouterr().err
    assert main(["fuse", *common, "--out", str(tmp_path / "c.zarr"), "--initial", '{"twist": 3}']) == 2
    assert "--initial: expected an Affine (with 'matrix') or parameters among" in capsys.readouterr().err


def test_fuse_command_warns_or_fails_on_a_small_coverage(tmp_path, capsys):
    eds, _, zr = _write_files(tmp_path)
    sims = _small_sims(tmp_path, zr)
    common = ["--eds", *map(str, eds), "--sims", str(sims), "--sims-pixel-size", "50 nm", "--isotope", "6Li",
              "--slice-thickness", "60 nm", "--register", "none", "--no-drift"]
    assert main(["fuse", *common, "--out", str(tmp_path / "w.zarr")]) == 0  # 16 of 768 EDS pixels: a warning
    assert "pfibsims: warning: sims: the SIMS field covers 2.08 % of the target grid" in capsys.readouterr().err
    assert main(["fuse", *common, "--out", str(tmp_path / "s.zarr"), "--strict"]) == 2
    err = capsys.readouterr().err
    assert "pfibsims fuse: error: sims: the SIMS field covers 2.08 %" in err
    assert not (tmp_path / "s.zarr").exists()


def test_fuse_command_errors(tmp_path, capsys):
    assert main(["fuse", "--eds", str(tmp_path / "none.h5oina"), "--sims", "x.tif", "--out", str(tmp_path / "o.zarr")]) == 2
    assert "error:" in capsys.readouterr().err
    eds, sims, _ = _write_files(tmp_path)
    assert main(["fuse", "--eds", *map(str, eds), "--sims", str(sims), "--out", str(tmp_path / "o.zarr"),
                 "--sims-pixel-size", "50 nm", "--isotope", "6Li", "--slice-thickness", "60 nm",
                 "--scheduler", "nonsense"]) == 2
    assert "--scheduler: expected threads, processes or a scheduler address" in capsys.readouterr().err


def test_fuse_command_errors_name_the_options_typed_not_the_keyword_arguments(tmp_path, capsys):
    """The library names its arguments (``min_coverage: expected ...``); the command names the option the user
    typed, also where one argument comes from two options (``pixel_size``: --pixel-size or --sims-pixel-size)."""
    eds, sims, _ = _write_files(tmp_path)
    base = ["fuse", "--eds", *map(str, eds), "--sims", str(sims), "--out", str(tmp_path / "o.zarr"), "--isotope", "6Li",
            "--register", "none", "--no-drift"]
    good = {"--sims-pixel-size": "50 nm", "--slice-thickness": "60 nm"}
    cases = [
        ({"--min-coverage": "5"}, "--min-coverage: expected a fraction between 0 and 1 such as 0.1, got 5.0"),
        ({"--sims-pixel-size": "50 banana"}, "--sims-pixel-size: expected a length such as '81.4 nm', got '50 banana'"),
        ({"--pixel-size": "x"}, "--pixel-size: expected a length such as '81.4 nm', got 'x'"),
        ({"--slice-thickness": "-60 nm"}, "--slice-thickness: expected a positive length, got '-60 nm'"),
        ({"--lines": "Qq_Ka"}, "--lines: expected channels the file"),
    ]
    for bad, message in cases:
        options = [t for k, v in {**good, **bad}.items() for t in (k, v)]
        assert main(base + options) == 2
        err = capsys.readouterr().err
        assert f"pfibsims fuse: error: {message}" in err
        assert not any(f"{name}:" in err for name in ("min_coverage", "pixel_size", "slice_thickness", " lines"))
    # the advice too: a SIMS text file has no calibration (was "give it, e.g. pixel_size='81.4 nm'")
    assert main(base + ["--slice-thickness", "60 nm"]) == 2
    err = capsys.readouterr().err
    assert f"pfibsims fuse: error: --sims-pixel-size: '{sims}' has no pixel calibration; give it, e.g. --sims-pixel-size '81.4 nm'" in err
    assert "pixel_size" not in err
    assert not (tmp_path / "o.zarr").exists()


def test_fuse_command_on_a_distributed_scheduler_address(tmp_path, dask_cluster):
    eds, sims, zr = _write_files(tmp_path)
    common = ["--sims-pixel-size", "50 nm", "--isotope", "6Li", "--slice-thickness", "60 nm", "--register", "none",
              "--no-drift"]
    out = tmp_path / "dist.zarr"
    assert main(["fuse", "--eds", *map(str, eds), "--sims", str(sims), "--out", str(out), *common,
                 "--scheduler", dask_cluster.scheduler_address]) == 0
    ref = tmp_path / "threads.zarr"
    assert main(["fuse", "--eds", *map(str, eds), "--sims", str(sims), "--out", str(ref), *common]) == 0
    a, b = pfibsims.open_dataset(out), pfibsims.open_dataset(ref)
    np.testing.assert_array_equal(a.Li6.values, b.Li6.values)
    np.testing.assert_array_equal(a.Zr_La.values, b.Zr_La.values)


def test_command_errors_name_the_option_of_a_missing_file_or_a_bad_initial(tmp_path, capsys):
    """Regression: a missing --eds/--sims/--sem file was reported as 'path: ...', a missing report store as
    'path: ...', an --initial Affine without dims as 'd: ...' (Affine.from_dict's argument) and an --initial
    rotation of 1e400 (JSON: inf) as a bare ValueError traceback ('math domain error')."""
    eds, sims, _ = _write_files(tmp_path)
    good = {"--eds": [str(p) for p in eds], "--sims": [str(sims)]}
    base = ["--out", str(tmp_path / "o.zarr"), "--sims-pixel-size", "50 nm", "--isotope", "6Li", "--slice-thickness",
            "60 nm", "--register", "none", "--no-drift"]
    for option in ("--eds", "--sims", "--sem"):
        files = {**good, option: [str(tmp_path / "none.tif")]}
        assert main(["fuse", *[t for k, v in files.items() for t in (k, *v)], *base]) == 2
        assert f"pfibsims fuse: error: {option}: expected an existing file, got '{tmp_path / 'none.tif'}'" in capsys.readouterr().err
    files = [t for k, v in good.items() for t in (k, *v)]
    cases = [
        ('{"matrix": [[1, 0, 0], [0, 1, 0], [0, 0, 1]]}', "--initial: expected a dict with 'matrix' and 'dims'"),
        ('{"rotation": 1e400}', "--initial: rotation: expected a finite angle such as '1.5 deg', got inf"),
        ('{"rotation": "x"}', "--initial: rotation: expected a plain number such as '1.5 deg', got 'x'"),
        ('{"shift": [1, 2, 3]}', "--initial: shift: expected one length or 2 lengths, got 3"),
    ]
    for text, message in cases:
        assert main(["fuse", *files, *base, "--initial", text]) == 2
        assert f"pfibsims fuse: error: {message}" in capsys.readouterr().err
    assert not (tmp_path / "o.zarr").exists()
    assert main(["report", str(tmp_path / "none.zarr"), str(tmp_path / "report")]) == 2
    assert f"pfibsims report: error: store: expected a Zarr store, got '{tmp_path / 'none.zarr'}'" in capsys.readouterr().err
