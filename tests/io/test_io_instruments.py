"""What real instruments write (issue 17): electron images in BCF and JEOL views, multi-page and
Auto Slice & View SEM runs, data bars, slice order, one line naming.

Expected values are those of ../shared/data/SOURCES.md (printed there by
RosettaSciIO and tifffile from the files' own metadata) or independent
checks named in each test.
"""

from __future__ import annotations

import shutil

import dask.array as da
import numpy as np
import pytest
import tifffile
from io_helpers import data_file, needs_data

import pfibsims as pfs
from pfibsims.dataset import history
from pfibsims.errors import FileFormatError
from pfibsims.io.lines import line_window
from pfibsims.io.sem import find_data_bar

pytestmark = needs_data


def _spacing(ds, dim):
    return float(ds[dim][1] - ds[dim][0])


# ---------------------------------------------------------------- Bruker BCF images


def test_bcf_v2_map_image_on_the_map_grid_dx_dy_from_the_file():
    path = data_file("eds/bcf_v2_50x50px.bcf")
    eds, sem = pfs.read_eds(path, lines=["Al_Ka", "O_Ka"], images=True)
    assert list(sem.data_vars) == ["Ch_1"]  # plane 'Ch 1'; the all-zero 'Ch 2' is not stored
    assert sem.Ch_1.attrs["detector"] == "Ch 1"
    assert dict(sem.sizes) == dict(eds.sizes) == {"z": 1, "y": 50, "x": 50}
    # TRTSEMData DX = 1.273058731E-2 um (x), DY = 1.180808099E-2 um (y)
    assert _spacing(eds, "x") == pytest.approx(12.73058731)
    assert _spacing(eds, "y") == pytest.approx(11.80808099)
    assert pfs.Grid.of(sem, dims=("y", "x")) == pfs.Grid.of(eds, dims=("y", "x"))
    assert sem.attrs["modality"] == "SEM"
    assert sem.attrs["beam_energy"] == "20 kV"


def test_bcf_v2_overview_has_its_own_calibration_and_lines_up_with_the_map():
    path = data_file("eds/bcf_v2_50x50px.bcf")
    ov = pfs.read_sem(path, image="overview")
    assert dict(ov.sizes) == {"z": 1, "y": 825, "x": 1100}
    assert _spacing(ov, "x") == pytest.approx(12.73058731)
    assert _spacing(ov, "y") == pytest.approx(11.80808099)
    assert ov.attrs["map_rectangle_top_left_px"] == [362.0, 472.0]
    small = pfs.read_sem(path)
    # the overview pixels at the map's coordinates are the same scene as the map's own image
    crop = ov.Ch_1.sel(y=small.y, x=small.x, method="nearest").values[0].astype(float)
    own = small.Ch_1.values[0].astype(float)
    assert np.corrcoef(crop.ravel(), own.ravel())[0, 1] > 0.95
    shifted = ov.Ch_1.values[0, 200:250, 200:250].astype(float)
    assert abs(np.corrcoef(shifted.ravel(), own.ravel())[0, 1]) < 0.5


@pytest.mark.parametrize(
    ("rel", "channels", "shape", "pixel_nm"),
    [
        ("eds/test_TEM.bcf", ["HAADF"], (64, 64), 0.771004754204027),
        ("eds/P45_the_default_job.bcf", ["BSE", "SE"], (75, 100), 8736.78506197786),
        ("eds/30x30_instructively_packed_16bit_compressed.bcf", ["AsB"], (30, 30), 1667.40910949362),
    ],
)
def test_bcf_images_named_by_detector(rel, channels, shape, pixel_nm):
    sem = pfs.read_sem(data_file(rel))
    assert list(sem.data_vars) == channels
    assert (sem.sizes["y"], sem.sizes["x"]) == shape
    assert _spacing(sem, "x") == pytest.approx(pixel_nm, rel=1e-9)
    assert all(sem[c].dtype == np.uint16 for c in channels)
    from rsciio.bruker import file_reader

    ref = {s["metadata"]["General"]["title"]: s["data"] for s in file_reader(str(data_file(rel)), select_type="image")}
    for c in channels:
        np.testing.assert_array_equal(sem[c].values[0], ref[c])


def test_hitachi_bcf_images_need_a_pixel_size():
    path = data_file("eds/Hitachi_TM3030Plus.bcf")
    with pytest.raises(FileFormatError, match=r"pixel_size: .*Hitachi_TM3030Plus\.bcf' has no pixel calibration"):
        pfs.read_sem(path)
    sem = pfs.read_sem(path, pixel_size="0.5 um")
    assert list(sem.data_vars) == ["SEM"]
    assert (sem.sizes["y"], sem.sizes["x"]) == (240, 320)
    with pytest.raises(FileFormatError, match=r"image: expected 'map' or 'overview', got 'big'"):
        pfs.read_sem(path, image="big", pixel_size="0.5 um")
    with pytest.raises(FileFormatError, match=r"Hitachi_TM3030Plus\.bcf: expected an overview image"):
        pfs.read_sem(path, image="overview", pixel_size="0.5 um")


def test_fuse_straight_from_a_bcf():
    """read_eds(..., images=True) gives the SEM stack that fuse(eds, sims, sem) takes."""
    eds, sem = pfs.read_eds(data_file("eds/P45_the_default_job.bcf"), lines=["Al_Ka"], images=True)
    rng = np.random.default_rng(0)
    sims = pfs.stack({"Li6": rng.poisson(5.0, (60, 80)).astype(float)}, pixel_size="10.92 um", modality="SIMS")
    vol = pfs.fuse(eds, sims, sem, register=None, drift=False)
    assert {"Al_Ka", "BSE", "SE", "Li6", "coverage"} <= set(vol.data_vars)
    assert dict(vol.sizes) == {"z": 1, "y": 75, "x": 100}
    np.testing.assert_array_equal(vol.BSE.values, sem.BSE.values)


def test_images_only_from_files_that_hold_them(tmp_path):
    from io_helpers import write_ripple

    p = write_ripple(tmp_path / "si", np.ones((2, 3, 100), np.uint16),
                     extra={"depth-scale": "0.02", "depth-origin": "0", "depth-units": "keV"})
    with pytest.raises(FileFormatError, match=r"images: expected Bruker \.bcf files or a JEOL view directory"):
        pfs.read_eds(p, lines=["Al_Ka"], pixel_size="1 um", images=True)


# ---------------------------------------------------------------- JEOL


def test_jeol_view_image_and_lazy_maps(no_compute):
    view = data_file("eds/jeol_View000")
    with no_compute():
        eds, img = pfs.read_eds(view, images=True)
        alone = pfs.read_sem(view / "View000_0000000.img")
    assert isinstance(eds.Fe_Ka.data, da.Array)
    assert isinstance(alone.IMG1.data, da.Array)
    assert dict(img.sizes) == {"z": 1, "y": 512, "x": 512}
    assert img.IMG1.dtype == np.uint8
    assert _spacing(img, "x") == pytest.approx(8.69140625)
    assert pfs.Grid.of(img, dims=("y", "x")) == pfs.Grid.of(eds, dims=("y", "x"))
    assert img.attrs["beam_energy"] == "200 kV"
    from rsciio.jeol import file_reader

    np.testing.assert_array_equal(alone.IMG1.values[0], file_reader(str(view / "View000_0000000.img"))[0]["data"])


@pytest.mark.slow
def test_jeol_pts_window_maps_equal_the_sum_of_rosettasciio_cube():
    path = data_file("eds/jeol_spectrum_image/View000_0000006.pts")
    win = pfs.read_eds(path, lines=["Fe_K", "Cu_Ka"], method="window")
    assert list(win.data_vars) == ["Fe_Ka", "Cu_Ka"]
    assert dict(win.sizes) == {"z": 1, "y": 512, "x": 512}
    assert _spacing(win, "x") == pytest.approx(8.69140625)
    assert win.attrs["detector_fwhm_mnka"] == "138 eV"  # the file's energy_resolution_MnKa
    from rsciio.jeol import file_reader

    sig = file_reader(str(path), cutoff_at_kV=9.5)[0]
    ax = sig["axes"][-1]
    energy = (ax["offset"] + ax["scale"] * np.arange(sig["data"].shape[-1])) * 1000
    for line in ("Fe_Ka", "Cu_Ka"):
        lo, hi = line_window(line, fwhm_mnka="138 eV")
        sel = (energy >= lo) & (energy <= hi)
        np.testing.assert_array_equal(win[line].values[0], sig["data"][..., sel].sum(-1))
    fit = pfs.read_eds(path, lines=["Fe_Ka", "Cu_Ka"])
    assert isinstance(fit.Fe_Ka.data, da.Array)
    total = float(fit.Fe_Ka.sum())
    assert 0.5 * float(win.Fe_Ka.sum()) < total < 1.5 * float(win.Fe_Ka.sum())


@pytest.mark.slow
def test_jeol_maps_are_the_pts_counts_in_their_rois():
    """Two independent decodings agree: each JEOL .map (read by pfibsims) is, pixel for pixel, the sum
    of the view's .pts spectrum image (RosettaSciIO's event-stream decoder, all sweeps) over the map's
    own ROI (StartRoi..EndRoi, 10 eV channels from 0 eV), once the .pts energy axis that pfibsims
    reports (offset -960.66 eV, 9.999 eV per channel) places the ROI."""
    from rsciio.jeol import file_reader

    pts = data_file("eds/jeol_spectrum_image/View000_0000006.pts")
    maps = pfs.read_eds(data_file("eds/jeol_View000"))
    head = pfs.read_eds(pts, lines=["C_Ka"], method="window")
    offset, width = (float(head.attrs[f"energy_calibration_{k}"].split()[0]) for k in ("offset", "channel_width"))
    cube = np.asarray(file_reader(str(pts), cutoff_at_kV=9.0)[0]["data"])
    for name in maps.data_vars:
        src = data_file("eds/jeol_View000") / maps[name].attrs["source_file"]
        roi = file_reader(str(src))[0]["original_metadata"]["Map"]
        zero = round(-offset / width)  # the .pts channel of 0 eV: 96
        lo, hi = int(roi["StartRoi"]) + zero, int(roi["EndRoi"]) + zero + 1
        own = maps[name].values[0]
        # exact over StartRoi..EndRoi for O, S, Fe and Cu; JEOL's C K map holds one channel more at its low end
        assert any(np.array_equal(own, cube[..., start:hi].sum(-1, dtype=np.int64)) for start in (lo, lo - 1)), name
        assert (offset + lo * width) == pytest.approx(int(roi["StartRoi"]) * 10.0, abs=width)


def _pts_with_events(path, real, sweeps, channel):
    """A JEOL .pts: the real file's header (calibration, 512 x 512, 14 sweeps declared), then an event stream of
    ``len(sweeps)`` complete sweeps, sweep k holding ``sweeps[k]`` X-rays of ``channel`` at pixel (0, 0).

    The stream words are those RosettaSciIO's decoder reads: 0x9000 | y and 0x8000 | x in 4096 scan steps
    (8 a pixel here), 0xB000 | channel for an X-ray; a sweep is complete when its last y is the last row."""
    head = real.read_bytes()
    data_pos = int(np.frombuffer(head, "<u4", 6, 12)[4])
    words = []
    for n in sweeps:
        words += [0x9000, 0x8000] + [0xB000 | channel] * n + [0x9000 | 4088, 0x8000 | 4088]
    stream = np.asarray(words, "<u2").tobytes()
    fields = np.frombuffer(head, "<u4", 6, 12).copy()
    fields[5] = len(stream)  # data_len
    path.write_bytes(head[:12] + fields.tobytes() + head[36:data_pos] + stream)
    return path


def test_jeol_pts_counts_of_255_and_more_in_one_channel_are_read_not_refused(tmp_path):
    """RosettaSciIO decodes a .pts into uint8 by default and stops at 255 counts in a pixel's channel: two sweeps of
    300 and 200 C K X-rays in one pixel were refused as a corrupt file. The reference: the sum of the sweeps
    read one by one (``frame_list=[k]``) in a dtype that cannot overflow."""
    from rsciio.jeol import file_reader

    real = data_file("eds/jeol_spectrum_image/View000_0000006.pts")
    path = _pts_with_events(tmp_path / "hot.pts", real, [300, 200], 124)  # channel 124: 279 eV, C K
    per_sweep = [file_reader(str(path), cutoff_at_kV=0.5, frame_list=[k], SI_dtype=np.uint32)[0]["data"] for k in range(2)]
    assert [int(c[0, 0, 124]) for c in per_sweep] == [300, 200]
    assert sum(int(c.sum()) for c in per_sweep) == 500
    ds = pfs.read_eds(path, lines=["C_Ka"], method="window")
    c = ds.C_Ka.values[0]
    assert c[0, 0] == 500 == (per_sweep[0] + per_sweep[1])[0, 0].sum()
    assert c.sum() == 500


def test_jeol_pts_a_channel_that_fills_16_bits_is_a_clear_error(tmp_path):
    path = _pts_with_events(tmp_path / "full.pts", data_file("eds/jeol_spectrum_image/View000_0000006.pts"), [65535], 124)
    with pytest.raises(FileFormatError, match=r"full\.pts: expected fewer than 65535 X-rays in one energy channel of one pixel"):
        pfs.read_eds(path, lines=["C_Ka"], method="window")


@pytest.mark.slow
def test_jeol_pts_real_sweeps_summed_equal_the_sum_of_each_sweep_read_alone():
    """The 14 complete sweeps of the real .pts, each decoded alone by RosettaSciIO (``frame_list=[k]``, uint32) and
    added, give pfibsims' C K window map pixel for pixel (the 15th, incomplete sweep is left out by both)."""
    from rsciio.jeol import file_reader

    path = data_file("eds/jeol_spectrum_image/View000_0000006.pts")
    ds = pfs.read_eds(path, lines=["C_Ka"], method="window")
    offset, width = (float(ds.attrs[f"energy_calibration_{k}"].split()[0]) for k in ("offset", "channel_width"))
    lo, hi = line_window("C_Ka", fwhm_mnka=ds.attrs["detector_fwhm_mnka"])
    energy = offset + width * np.arange(146)
    sel = (energy >= lo) & (energy <= hi)
    total = np.zeros((512, 512), np.int64)
    for k in range(15):
        total += file_reader(str(path), cutoff_at_kV=0.5, frame_list=[k], SI_dtype=np.uint32)[0]["data"][..., sel].sum(-1, dtype=np.int64)
    assert total.sum() > 10000
    np.testing.assert_array_equal(ds.C_Ka.values[0], total)


# ---------------------------------------------------------------- SEM TIFF: pages, data bars, order, ASV


def test_zeiss_multipage_is_a_stack():
    path = data_file("sem/ZEISS_SEM_multipage.tif")
    ds = pfs.read_sem(path, slice_thickness="60 nm")
    assert dict(ds.sizes) == {"z": 2, "y": 1536, "x": 2048}
    assert _spacing(ds, "x") == pytest.approx(24.65245 * 1024 / 2048)  # CZ_SEM SI pixel 2.465245e-008 m at 1024 px: 12.33 nm
    assert ds.attrs["pages"] == 2
    assert ds.attrs["data_bar_rows"] == 0
    sub = ds.SE.isel(y=slice(0, 8)).values
    with tifffile.TiffFile(path) as tif:
        for k in range(2):
            np.testing.assert_array_equal(sub[k], tif.pages[k].asarray()[:8])
    with pytest.raises(pfs.DataModelError, match="slice_thickness"):
        pfs.read_sem(path)


def test_multipage_whose_pages_disagree_on_the_pixel_size_is_not_one_stack(tmp_path):
    """Each page of ZEISS_SEM_multipage.tif has its own CZ_SEM tag; a second page at another field (ap_width
    50.48 um: 24.65 nm pixels) is not a slice on the first page's grid (it was read as 12.32 nm pixels)."""
    raw = data_file("sem/ZEISS_SEM_multipage.tif").read_bytes()
    second = raw.find(b"Width = 25.24", raw.find(b"Width = 25.24") + 1)
    assert second > 3173484  # in page 1's tag
    edited = tmp_path / "two_fields.tif"
    edited.write_bytes(raw[:second] + b"Width = 50.48" + raw[second + 13:])
    with pytest.raises(FileFormatError, match=r"two_fields\.tif: expected the pages of a stack on one grid, but page 1 has "
                                              r"24\.6484 nm pixels and 768 scan rows, page 0 12\.3262 nm and 1536; its pages are not one stack"):
        pfs.read_sem(edited, slice_thickness="60 nm")


def test_zeiss_magnification_is_a_number_as_bruker_and_jeol_give_it():
    """SmartSEM writes 'Mag = 50.00 K X'; the dataset holds 50000.0 (Bruker and JEOL give floats, 131.14 and 40000.0)."""
    with tifffile.TiffFile(data_file("sem/test_tiff_Zeiss_SEM_512pix.tif")) as tif:
        assert tif.sem_metadata["ap_mag"][1] == "50.00 K X"
    assert pfs.read_sem(data_file("sem/test_tiff_Zeiss_SEM_512pix.tif")).attrs["magnification"] == 50000.0
    assert pfs.read_sem(data_file("sem/ZEISS_SEM_multipage.tif"), slice_thickness="60 nm").attrs["magnification"] == 4530.0
    assert pfs.read_sem(data_file("eds/jeol_View000/View000_0000000.img")).attrs["magnification"] == 40000.0


def test_zeiss_data_bar_found_in_the_image():
    ds = pfs.read_sem(data_file("sem/test_tiff_Zeiss_SEM_512pix.tif"))
    assert ds.attrs["data_bar_rows"] == 34
    assert ds.attrs["data_bar_source"] == "image"
    full = tifffile.imread(data_file("sem/test_tiff_Zeiss_SEM_512pix.tif"))
    assert (full[350] == 0).mean() > 0.99  # the bar's frame line, just below the kept rows
    np.testing.assert_array_equal(ds.SE.values[0], full[:350])


def test_find_data_bar_agrees_with_fei_metadata():
    """The image-based detector finds the bar the FEI metadata give (DatabarHeight 79), and none in a bar-less image.

    (FEI-Helios-Ebeam-16bits.tif is not used: its scan area was zeroed upstream, so every row is flat.)
    """
    assert find_data_bar(tifffile.imread(data_file("sem/test_tiff_FEI_SEM.tif"))) == 79
    assert find_data_bar(tifffile.imread(data_file("sem/ZEISS_SEM_multipage.tif"), key=0)) == 0
    assert pfs.read_sem(data_file("sem/test_tiff_FEI_SEM.tif")).attrs["data_bar_source"] == "metadata"


def test_slice_glob_is_sorted_naturally_and_the_order_recorded(tmp_path):
    src = data_file("sem/test_tiff_Zeiss_SEM_512pix.tif")
    for i in (1, 2, 10, 11, 3):
        (tmp_path / f"slice_{i}.tif").symlink_to(src)
    ds = pfs.read_sem(str(tmp_path / "slice_*.tif"), slice_thickness="60 nm")
    order = ["slice_1.tif", "slice_2.tif", "slice_3.tif", "slice_10.tif", "slice_11.tif"]
    assert [p.rsplit("/", 1)[-1] for p in ds.attrs["source_files"]] == order
    assert history(ds)[-1]["params"]["z_order"] == order
    assert ds.z.values.tolist() == [0.0, 60.0, 120.0, 180.0, 240.0]


def test_asv_slice_takes_z_from_its_project():
    ds = pfs.read_sem(data_file("sem/SEM_Image-SliceImage-001.tif"))
    assert ds.z.values.tolist() == [0.0]
    assert ds.attrs["slice_thickness"] == "100 nm"  # ZCutSpacing 1.0E-07 m
    assert ds.attrs["slice_numbers"] == [1]
    assert _spacing(ds, "x") == pytest.approx(385.417, rel=1e-4)  # SOURCES.md: 385.4 nm/px
    assert history(ds)[-1]["params"]["z_from"].endswith("EMProject.emxml")


def test_asv_slices_in_a_run_folder(tmp_path):
    """<project>/Images/SEM Image/SEM_Image-SliceImage-NNN.tif: z = (n - 1) x 100 nm from the box's near face."""
    shutil.copy(data_file("sem/EMProject.emxml"), tmp_path / "EMProject.emxml")
    images = tmp_path / "Images" / "SEM Image"
    images.mkdir(parents=True)
    for n in (3, 10, 185):
        (images / f"SEM_Image-SliceImage-{n:03d}.tif").symlink_to(data_file("sem/SEM_Image-SliceImage-001.tif"))
    ds = pfs.read_sem(str(images / "*.tif"))
    assert ds.z.values.tolist() == pytest.approx([200.0, 900.0, 18400.0])
    assert ds.attrs["slice_numbers"] == [3, 10, 185]
    (images / "SEM_Image-SliceImage-186.tif").symlink_to(data_file("sem/SEM_Image-SliceImage-001.tif"))
    with pytest.raises(FileFormatError, match=r"SliceImage-186\.tif: expected a slice number between 1 and 185"):
        pfs.read_sem(str(images / "*.tif"))
    other = tmp_path / "FIB_Unknown-SliceImage-001.tif"
    other.symlink_to(data_file("sem/SEM_Image-SliceImage-001.tif"))
    with pytest.raises(FileFormatError, match=r"expected dataset 'FIB Unknown' in the project"):
        pfs.read_sem(other)
    bad = tmp_path / "bad.emxml"
    bad.write_text("<EMProject><ZCutSpacing>x</ZCutSpacing></EMProject>")
    with pytest.raises(FileFormatError, match=r"bad\.emxml: expected a number in <ZCutSpacing>, found 'x'"):
        pfs.read_sem(other, project=bad)


def test_asv_series_with_unpadded_names_takes_z_from_an_edited_project(tmp_path):
    """Slices named SliceImage-1, -2, -10, -11 sort naturally; z = CenterZ - SizeZ/2 + (n - 1) x ZCutSpacing (hand-computed)."""
    text = data_file("sem/EMProject.emxml").read_text(encoding="utf-8")
    edited = (text.replace("1.0000000000000001E-07", "5E-08").replace("<CenterZ>9.25E-06", "<CenterZ>6E-06")
              .replace("<SizeZ>1.85E-05", "<SizeZ>1E-05").replace("<NumberOfCuts>185", "<NumberOfCuts>200"))
    (tmp_path / "EMProject.emxml").write_text(edited, encoding="utf-8")
    images = tmp_path / "Images" / "SEM Image"
    images.mkdir(parents=True)
    for n in (11, 1, 10, 2):
        (images / f"SEM_Image-SliceImage-{n}.tif").symlink_to(data_file("sem/SEM_Image-SliceImage-001.tif"))
    ds = pfs.read_sem(images)
    assert ds.z.values.tolist() == pytest.approx([1000.0, 1050.0, 1450.0, 1500.0])  # z0 = 6000 - 10000 / 2 nm
    assert ds.attrs["slice_numbers"] == [1, 2, 10, 11]
    assert ds.attrs["slice_thickness"] == "50 nm"


def test_asv_slices_of_two_datasets_or_one_slice_twice_are_refused(tmp_path):
    """SEM and FIB slices are two image series, not one stack; '1' and '001' are the same slice."""
    shutil.copy(data_file("sem/EMProject.emxml"), tmp_path / "EMProject.emxml")
    real = data_file("sem/SEM_Image-SliceImage-001.tif")
    mixed = [tmp_path / "SEM_Image-SliceImage-1.tif", tmp_path / "FIB_Image-SliceImage-2.tif"]
    twice = [tmp_path / "SEM_Image-SliceImage-3.tif", tmp_path / "SEM_Image-SliceImage-003.tif"]
    for q in mixed + twice:
        q.symlink_to(real)
    with pytest.raises(FileFormatError, match=r"expected slice images of one dataset of the project, got 'SEM Image' and 'FIB Image'"):
        pfs.read_sem(mixed)
    with pytest.raises(FileFormatError, match=r"expected one image a slice, got slice 3 twice: 'SEM_Image-SliceImage-3\.tif' and 'SEM_Image-SliceImage-003\.tif'"):
        pfs.read_sem(twice)


_LOL = '<!DOCTYPE EMProject [<!ENTITY a "aaaaaaaaaa">' + "".join(
    f'<!ENTITY {chr(98 + i)} "{("&" + chr(97 + i) + ";") * 10}">' for i in range(9)) + "]>"


@pytest.mark.parametrize(
    ("label", "edit", "match"),
    [
        ("nan-cuts", ("<NumberOfCuts>185", "<NumberOfCuts>nan"), r"expected a whole number of cuts .* in <NumberOfCuts>, found nan"),
        ("inf-cuts", ("<NumberOfCuts>185", "<NumberOfCuts>inf"), r"expected a whole number of cuts .* found inf"),
        ("fractional-cuts", ("<NumberOfCuts>185", "<NumberOfCuts>2.5"), r"expected a whole number of cuts .* found 2.5"),
        ("negative-cuts", ("<NumberOfCuts>185", "<NumberOfCuts>-5"), r"expected a whole number of cuts .* found -5"),
        ("inf-spacing", ("1.0000000000000001E-07", "INF"), r"expected a ZCutSpacing between 0.001 nm and 1e\+08 nm, found inf nm"),
        ("huge-spacing", ("1.0000000000000001E-07", "1E300"), r"expected a ZCutSpacing between .*, found inf nm"),
        ("tiny-spacing", ("1.0000000000000001E-07", "1E-300"), r"expected a ZCutSpacing between .*, found 1e-291 nm"),
        ("nan-spacing", ("1.0000000000000001E-07", "NaN"), r"expected a ZCutSpacing between .*, found nan nm"),
        ("nan-centre", ("<CenterZ>9.25E-06", "<CenterZ>NaN"), r"expected a CenterZ between -1e\+08 nm and 1e\+08 nm, found nan nm"),
        ("negative-size", ("<SizeZ>1.85E-05", "<SizeZ>-1.85E-05"), r"expected a SizeZ between 0 nm and 1e\+08 nm, found -18500 nm"),
        ("unknown-encoding", ('encoding="utf-8"', 'encoding="bogus-enc"'), r"expected an EMProject XML file, but parsing failed \(unknown encoding"),
        ("not-a-text-encoding", ('encoding="utf-8"', 'encoding="rot13"'), r"expected an EMProject XML file, but parsing failed"),
        ("multi-byte-encoding", ('encoding="utf-8"', 'encoding="utf-7"'), r"expected an EMProject XML file, but parsing failed"),
        ("other-namespace", ('xmlns="EMProject"', 'xmlns="urn:other"'), r"expected an <EMProject> root \(namespace 'EMProject' or none\), found <\{urn:other\}EMProject>"),
        ("external-entity", ('<?xml version="1.0" encoding="utf-8"?>', '<!DOCTYPE r [<!ENTITY x SYSTEM "file:///etc/passwd">]>'),
         r"expected an EMProject XML file, but parsing failed \(undefined entity"),
        ("billion-laughs", ('<?xml version="1.0" encoding="utf-8"?>', _LOL), r"expected an EMProject XML file, but parsing failed \(limit on input amplification"),
    ],
)
def test_asv_hostile_project_is_a_file_format_error_naming_it(tmp_path, label, edit, match):
    """A corrupt or hostile EMProject.emxml is refused naming it, never a raw ValueError/LookupError or a wrong z."""
    text = data_file("sem/EMProject.emxml").read_text(encoding="utf-8")
    assert edit[0] in text
    if label == "billion-laughs":  # the entity is expanded where the project name is
        text = text.replace("<ProjectName>20230707_AlSi13_NFDI", "<ProjectName>&j;")
    if label == "external-entity":
        text = text.replace("<ProjectName>20230707_AlSi13_NFDI", "<ProjectName>&x;")
    project = tmp_path / label / "EMProject.emxml"
    project.parent.mkdir()
    project.write_text(text.replace(*edit), encoding="utf-8")
    image = project.parent / "SEM_Image-SliceImage-003.tif"
    image.symlink_to(data_file("sem/SEM_Image-SliceImage-001.tif"))
    with pytest.raises(FileFormatError, match=rf"{label}/EMProject\.emxml: {match}"):
        pfs.read_sem(image)


def test_asv_project_in_no_namespace_is_read_and_foreign_elements_are_not():
    """The EMProject namespace or none are both the project's; an element of another namespace is not its ZCutSpacing."""
    from pfibsims.io.emxml import read_emxml

    text = data_file("sem/EMProject.emxml").read_text(encoding="utf-8")
    import tempfile
    from pathlib import Path

    with tempfile.TemporaryDirectory() as d:
        plain = Path(d) / "EMProject.emxml"
        plain.write_text(text.replace(' xmlns="EMProject"', ""), encoding="utf-8")
        assert read_emxml(plain).spacing_nm == pytest.approx(100.0)
        foreign = Path(d) / "foreign.emxml"
        foreign.write_text(text.replace("<ZCutSpacing>1.0000000000000001E-07</ZCutSpacing>",
                                        '<o:ZCutSpacing xmlns:o="urn:other">5E-08</o:ZCutSpacing>'), encoding="utf-8")
        with pytest.raises(FileFormatError, match=r"foreign\.emxml: expected a number in <ZCutSpacing>, found None"):
            read_emxml(foreign)


# ---------------------------------------------------------------- odd but legal inputs


def test_directory_with_upper_case_extensions_reads_every_file(tmp_path):
    """Instrument PCs write 'SLICE_1.TIF' and 'View000_0000001.MAP': a directory finds them as it finds '.tif'."""
    view = tmp_path / "view"
    view.mkdir()
    for src in sorted(data_file("eds/jeol_View000").iterdir()):
        shutil.copy(src, view / src.name.upper())
    maps, img = pfs.read_eds(view, images=True)
    ref = pfs.read_eds(data_file("eds/jeol_View000"))
    assert list(maps.data_vars) == list(ref.data_vars)
    np.testing.assert_array_equal(maps.Fe_Ka.values, ref.Fe_Ka.values)
    assert list(img.data_vars) == ["IMG1"]
    sem = tmp_path / "sem"
    sem.mkdir()
    (sem / "SLICE_1.TIF").symlink_to(data_file("sem/test_tiff_FEI_SEM.tif"))
    (sem / "slice_2.tif").symlink_to(data_file("sem/test_tiff_FEI_SEM.tif"))
    ds = pfs.read_sem(sem, slice_thickness="60 nm")
    assert [p.rsplit("/", 1)[-1] for p in ds.attrs["source_files"]] == ["SLICE_1.TIF", "slice_2.tif"]
    ims = tmp_path / "sims"
    ims.mkdir()
    (ims / "RUN_1.IM").symlink_to(data_file("sims/RTIimage.im"))
    (ims / "run_2.im").symlink_to(data_file("sims/RTIimage.im"))
    assert pfs.read_sims(ims, slice_thickness="10 nm").sizes["z"] == 2


def test_chunks_by_dimension_name_are_applied_or_refused():
    """chunks={'y': 64} means what it means in xarray, for numpy-backed (.im) and dask-backed (.map) readers alike."""
    sims = pfs.read_sims(data_file("sims/RTIimage.im"), chunks={"y": 64})
    assert sims.C12C12.data.chunks == ((1,), (64, 64, 64, 64), (256,))
    eds = pfs.read_eds(data_file("eds/jeol_View000"), lines=["Fe_Ka"], chunks={"x": 128, "y": -1})
    assert eds.Fe_Ka.data.chunks == ((1,), (512,), (128, 128, 128, 128))
    with pytest.raises(pfs.DataModelError, match=r"chunks: expected dimension names among \['z', 'y', 'x'\], got 'q'"):
        pfs.read_sims(data_file("sims/RTIimage.im"), chunks={"q": 3})


def test_bcf_working_distance_of_minus_one_is_not_a_distance():
    """A STEM map's TRTSEMData has WD = -1 (Esprit's 'not recorded'); an SEM map's 7.69 mm is kept."""
    from rsciio.bruker import file_reader

    path = data_file("eds/test_TEM.bcf")
    wd = file_reader(str(path), select_type="image")[0]["original_metadata"]["Microscope"]["WD"]
    assert float(wd) == -1
    assert "working_distance" not in pfs.read_sem(path).attrs
    assert pfs.read_sem(data_file("eds/P45_the_default_job.bcf")).attrs["working_distance"] == "7.69044 mm"


def test_image_option_is_refused_where_it_means_nothing():
    with pytest.raises(FileFormatError, match=r"image: expected 'map' \(the default\) for TIFF and JEOL \.img files"):
        pfs.read_sem(data_file("sem/test_tiff_FEI_SEM.tif"), image="overview")
    with pytest.raises(FileFormatError, match=r"image: expected 'map' or 'overview', got 'big'"):
        pfs.read_sem(data_file("sem/test_tiff_FEI_SEM.tif"), image="big")


def test_directory_skips_hidden_files_as_a_pattern_does(tmp_path):
    """A folder copied from a Mac holds '._slice_1.tif' (AppleDouble metadata, not an image): a directory,
    like the pattern 'folder/*.tif', leaves hidden files out."""
    (tmp_path / "slice_1.tif").symlink_to(data_file("sem/test_tiff_FEI_SEM.tif"))
    (tmp_path / "._slice_1.tif").write_bytes(b"\x00\x05\x16\x07" + bytes(4092))
    by_dir = pfs.read_sem(tmp_path)
    by_glob = pfs.read_sem(str(tmp_path / "*.tif"))
    assert by_dir.attrs["source_files"] == by_glob.attrs["source_files"] == [str(tmp_path / "slice_1.tif")]


def test_names_with_glob_characters_are_read_as_named(tmp_path):
    """'scan[1].tif' or a run folder 'run [1]' (Windows acquisition software writes such names) is a path, not a pattern."""
    src = data_file("sem/test_tiff_FEI_SEM.tif")
    (tmp_path / "scan[1].tif").symlink_to(src)
    folder = tmp_path / "run [1]"
    folder.mkdir()
    for i in (2, 1):
        (folder / f"slice_{i}.tif").symlink_to(src)
    ref = pfs.read_sem(src)
    for path in (str(tmp_path / "scan[1].tif"), tmp_path / "scan[1].tif", folder / "slice_1.tif"):
        ds = pfs.read_sem(path)
        np.testing.assert_array_equal(ds.SE.values, ref.SE.values)
    ds = pfs.read_sem(str(folder / "slice_*.tif"), slice_thickness="60 nm")
    assert [p.rsplit("/", 1)[-1] for p in ds.attrs["source_files"]] == ["slice_1.tif", "slice_2.tif"]


@pytest.mark.parametrize(("detector", "channel"), [(b"CZ BSD", "BSE"), (b"QBSD  ", "BSE"), (b"SE2   ", "SE")])
def test_zeiss_backscatter_detectors_give_bse(tmp_path, detector, channel):
    """Zeiss names its backscatter detectors BSD (CZ BSD, QBSD, AsB, EsB): the real Zeiss file with
    'Signal A = InLens' changed to another detector, byte for byte, is read as that detector's signal."""
    raw = data_file("sem/test_tiff_Zeiss_SEM_512pix.tif").read_bytes()
    assert raw.count(b"Signal A = InLens") == 1
    path = tmp_path / "zeiss.tif"
    path.write_bytes(raw.replace(b"Signal A = InLens", b"Signal A = " + detector))
    ds = pfs.read_sem(path)
    assert list(ds.data_vars) == [channel]
    assert ds.attrs["detector"] == detector.decode().strip()
