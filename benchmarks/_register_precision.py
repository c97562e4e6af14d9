"""Precision of pfibsims.register on noisy count maps against the Cramér-Rao bound, for bench_register.py.

The issue's case: an EDS map of a few counts a pixel registered onto the
electron image of the same scan.  Semi-real: the real HAADF image of
``eds/test_TEM.bcf`` (64 x 64 px) and Poisson count maps of it at ``counts``
a pixel on average, the content moved by a known sub-pixel shift
(``tests/real_pairs.py: noisy_map``), many noise draws.

Beside pfibsims (``register(model="translation")``, mutual information):

- the Cramér-Rao bound of the shift (``real_pairs.noisy_map_bound``): the
  least standard deviation of any unbiased estimator, even one told the image
  and the Poisson model (offset and gain unknown);
- an oracle: the Poisson maximum-likelihood fit of that very model
  (``a + b t(p - s)``, cubic spline shift; scipy Powell from zero shift and
  the moment estimates of ``a``, ``b``), which no real pair offers (the
  relation of an element's counts to the HAADF is not known).

"share <= 0.15 px": the draws whose error (both axes together) is at most
0.15 px; "ideal": that share for an unbiased estimator at the bound (a
Gaussian error of the bound's SD an axis).
"""

from __future__ import annotations

import sys
import time
import warnings
from pathlib import Path

import numpy as np
import scipy.ndimage as ndi
from scipy.optimize import minimize

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
import real_pairs as rp  # noqa: E402

import pfibsims as pfs  # noqa: E402

PX = 0.771  # nm, the HAADF's pixel size as read (the errors are in pixels; any size gives the same numbers)


def oracle_shift(t: np.ndarray, k: np.ndarray) -> np.ndarray:
    """The Poisson maximum-likelihood shift (px) of counts ``k`` as ``a + b t(p - s)``."""
    def nll(p: np.ndarray) -> float:
        m = np.maximum(p[0] + p[1] * ndi.shift(t, p[2:], order=3, mode="nearest"), 1e-12)
        return float(np.sum(m - k * np.log(m)))

    b0 = k.std() / max(t.std(), 1e-12)
    start = np.array([k.mean() - b0 * t.mean(), b0, 0.0, 0.0])
    fit = minimize(nll, start, method="Powell", options={"xtol": 1e-4, "ftol": 1e-12})
    return fit.x[2:]


def run(data: Path, *, counts=(1.0, 3.0, 10.0, 30.0), shifts=((0.0, 0.0), (0.5, 0.5)), draws: int = 24) -> list[dict]:
    haadf = pfs.read_sem(data / "eds" / "test_TEM.bcf").HAADF.isel(z=0).values.astype(float)
    t = (haadf - haadf.min()) / np.ptp(haadf)
    rows = []
    for c in counts:
        for sh in shifts:
            ours, oracle, secs = [], [], []
            for seed in range(1, draws + 1):
                moving, fixed, truth = rp.noisy_map(haadf, PX, shift=sh, counts=c, seed=seed)
                t0 = time.perf_counter()
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    r = pfs.register(moving, fixed, model="translation")
                secs.append(time.perf_counter() - t0)
                ours.append((np.asarray(r.transform.offset) - np.asarray(truth.offset)) / PX)
                oracle.append(oracle_shift(t, np.asarray(moving.values).reshape(t.shape)) - np.asarray(sh))
            ours, oracle = np.array(ours), np.array(oracle)
            bound = rp.noisy_map_bound(haadf, shift=sh, counts=c)
            rows.append(dict(counts=c, shift=sh, bound=bound, mean=ours.mean(0), sd=ours.std(0, ddof=1),
                             within=float(np.mean(np.hypot(*ours.T) <= 0.15)), worst=float(np.hypot(*ours.T).max()),
                             oracle_sd=oracle.std(0, ddof=1), oracle_within=float(np.mean(np.hypot(*oracle.T) <= 0.15)),
                             ideal=float(1 - np.exp(-0.5 * 0.15**2 / float(np.mean(bound**2)))), draws=draws,
                             secs=float(np.median(secs))))
            print({k: np.round(v, 3).tolist() if isinstance(v, np.ndarray) else v for k, v in rows[-1].items()},
                  flush=True)
    return rows


def table(rows: list[dict]) -> str:
    def pair(v):
        return f"{v[0]:.3f}, {v[1]:.3f}"

    lines = ["| counts/px | shift (px) | bound SD y, x | pfibsims mean error y, x | SD y, x | SD / bound | worst | "
             "share <= 0.15 px | oracle ML SD y, x | oracle share | ideal share | s a registration |",
             "| ---: | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"]
    for r in rows:
        ratio = r["sd"] / r["bound"]
        lines.append(f"| {r['counts']:g} | {r['shift']} | {pair(r['bound'])} | {pair(r['mean'])} | {pair(r['sd'])} | "
                     f"{ratio[0]:.2f}, {ratio[1]:.2f} | {r['worst']:.2f} | {r['within']:.2f} | "
                     f"{pair(r['oracle_sd'])} | {r['oracle_within']:.2f} | {r['ideal']:.2f} | {r['secs']:.2f} |")
    return "\n".join(lines)


if __name__ == "__main__":
    print(table(run(Path(sys.argv[1]) if len(sys.argv) > 1 else Path(__file__).resolve().parents[2] / "shared" / "data")))
