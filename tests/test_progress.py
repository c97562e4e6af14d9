"""Progress: one switch, silent by default, a callback or tqdm/text bars; counts are the real task counts."""

from __future__ import annotations

import sys

import dask
import dask.array as da
import pytest

from pfibsims.errors import PfibsimsError
from pfibsims.progress import compute, config, steps


def test_silent_by_default(capsys):
    assert config()["progress"] is False
    with steps("quiet", 3) as advance:
        advance()
    (total,) = compute(da.ones((4, 4), chunks=2).sum(), step="quiet")
    assert total == 16
    assert capsys.readouterr() == ("", "")


def test_callback_sees_every_task_of_a_compute():
    x = da.ones((6, 6), chunks=2) * 2
    n_tasks = len(dict(dask.optimize(x.sum())[0].__dask_graph__()))
    seen = []
    with config(progress=lambda *a: seen.append(a)):
        (total,) = compute(x.sum(), step="sum")
    assert total == 72
    assert seen[0] == ("sum", 0, seen[0][2])
    assert seen[-1][1] == seen[-1][2]  # finished: done == total
    assert [s[1] for s in seen] == list(range(len(seen)))  # one update per task, in order
    assert 0 < seen[-1][2] <= n_tasks + 1
    assert config()["progress"] is False  # restored after the block


def test_config_for_good_and_errors():
    try:
        config(progress=True)
        assert config()["progress"] is True
    finally:
        config(progress=False)
    with pytest.raises(PfibsimsError, match="progress: expected True, False or a callable.*got str"):
        config(progress="yes")


def test_text_fallback_without_tqdm(monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "tqdm.auto", None)  # import fails as if tqdm were absent
    with config(progress=True), steps("save: slabs", 2) as advance:
        advance()
        advance()
    assert capsys.readouterr().err.splitlines() == ["save: slabs: 1/2", "save: slabs: 2/2"]


def test_tqdm_bar_when_installed(capsys):
    pytest.importorskip("tqdm")
    with config(progress=True):
        compute(da.ones((4, 4), chunks=2).sum(), step="tqdm step")
    assert "tqdm step" in capsys.readouterr().err


# -- the long steps report through it --------------------------------------------
def _record():
    seen = []
    return seen, config(progress=lambda *a: seen.append(a))


def _finals(seen):
    """Last update of each step: {step: (done, total)}."""
    return {s: (d, t) for s, d, t in seen}


def test_drift_and_registration_report_progress():
    import pfibsims as pfs

    eds, sims, _ = pfs.synthetic.cathode(seed=1, n_slices=3, eds_shape=(96, 128), sims_shape=(180, 180))
    seen, cfg = _record()
    with cfg:
        pfs.estimate_drift(sims.Li6)
        pfs.register(sims.Li6, eds, model="translation")
    finals = _finals(seen)
    done, total = finals["estimate_drift: slices"]
    assert done == total > 0
    done, total = finals["register: search and refinement levels"]
    assert 2 <= done <= total


def test_save_reports_slabs_and_ome_levels(tmp_path):
    import pfibsims as pfs
    from pfibsims.io.store import _slabs

    ds = pfs.stack({"Li6": da.ones((70, 16, 16), chunks=(1, 16, 16))}, pixel_size="72 nm", slice_thickness="60 nm")
    n_slabs = len(_slabs(ds.copy(deep=False)))
    seen, cfg = _record()
    with cfg:
        pfs.save(ds, tmp_path / "a.zarr")
        pfs.save(ds, tmp_path / "a.ome.zarr", format="ome-zarr", levels=2)
    finals = _finals(seen)
    assert n_slabs > 1
    assert finals["save: slabs along z"] == (n_slabs, n_slabs)
    for k in (0, 1):
        done, total = finals[f"save: OME-Zarr level {k}"]
        assert done == total > 0


def test_the_cli_turns_progress_on():
    from pfibsims.app.cli import _scheduler

    with _scheduler("synchronous"):
        assert config()["progress"] is True
    assert config()["progress"] is False
