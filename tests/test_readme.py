"""The README's quick start runs as written (in a scratch folder: it saves run.zarr)."""

import re
import warnings
from pathlib import Path

import numpy as np

import pfibsims as pfs

README = Path(__file__).resolve().parents[1] / "README.md"


def test_quick_start_runs(tmp_path, monkeypatch, capsys):
    code = re.search(r"## Quick start\n\n```python\n(.*?)```", README.read_text(), re.S)[1]
    monkeypatch.chdir(tmp_path)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", pfs.EstimationWarning)  # a doubtful estimate is allowed to warn here
        exec(compile(code, "README.md", "exec"), {})  # noqa: S102
    assert (tmp_path / "run.zarr").is_dir()
    out = capsys.readouterr().out
    assert "Correlation(" in out
    assert "Grid(shape=(8, 216, 352)" in out


def test_readme_has_the_two_setup_commands():
    text = README.read_text()
    assert re.search(r"^python3 -m venv \.venv && .*pfibsims demo demo-output", text, re.M)
    assert re.search(r"^python3 -m venv \.venv && .*pip install -e \"\.\[test\]\" && .*pytest", text, re.M)


def test_any_sample_example_runs(shared_data, capsys):
    # the README's second example: a real JEOL view (not a cathode) and a SIMS map made from it
    code = re.search(r"## Any sample, any frame\n.*?```python\n(.*?)```", README.read_text(), re.S)[1]
    namespace: dict = {}
    exec(compile(code, "README.md", "exec"), namespace)  # noqa: S102
    out = capsys.readouterr().out
    assert "Grid(shape=(512, 512)" in out
    vol, phases, pull = namespace["vol"], namespace["phases"], namespace["pull"]
    assert dict(vol.sizes) == {"z": 1, "y": 512, "x": 512}  # one slice in, one slice out
    names = phases.attrs["flag_meanings"].split()
    assert not {"LLZTO", "LCO", "Al2O3", "SP", "matrix"} & set(names)
    assert all(set(n.split("+")) <= {"C", "O", "S", "Fe", "Cu"} for n in names[1:])
    est = pfs.Affine.from_attrs(vol.attrs)
    grid = pfs.Grid.of(namespace["maps"])
    corners = np.array([[lo, lo2] for lo in grid.extent[0] for lo2 in grid.extent[1]])
    assert np.abs(est(corners) - pull.inverse()(corners)).max() < 8.7  # within an EDS pixel of the truth
