"""Per-format reader tests: the values each file's own metadata gives, and each error path.

Real files: ../shared/data (SOURCES.md lists the expected shapes, pixel sizes
and settings); skipped when absent. H5OINA, Ripple, AZtec and Hiden files are
written here in their documented layouts (no real public file exists).
"""

from __future__ import annotations

import numpy as np
import pytest
import xraydb
from io_helpers import data_file, needs_data, write_csv, write_h5oina, write_ripple, write_tiff

import pfibsims as pfs
from pfibsims.errors import DataModelError, FileFormatError, UnitsError
from pfibsims.io.cameca import channel_name
from pfibsims.io.lines import detector_fwhm, integrate_lines, line_energy, line_window

# ---------------------------------------------------------------- X-ray lines


def test_line_energies_come_from_xraydb():
    t = xraydb.xray_lines("Zr")
    la = [t["La1"], t["La2"]]
    expect = sum(v.energy * v.intensity for v in la) / sum(v.intensity for v in la)
    assert line_energy("Zr_La") == pytest.approx(expect)
    assert line_energy("Co_La1") == xraydb.xray_lines("Co")["La1"].energy
    assert 1480 < line_energy("Al_Ka") < 1490
    assert 270 < line_energy("C_Ka") < 285


@pytest.mark.parametrize(("name", "match"), [("Zr La", "expected names such as"), ("Xx_Ka", "chemical element"), ("C_La", "line of C")])
def test_unknown_lines_are_errors(name, match):
    with pytest.raises(DataModelError, match=match):
        line_energy(name)


def test_window_is_fwhm_based_and_overridable():
    e = line_energy("Al_Ka")
    lo, hi = line_window("Al_Ka")
    assert hi - lo == pytest.approx(2 * np.sqrt(130.0**2 + 2.5 * (e - 5898.7)))
    lo, hi = line_window("Al_Ka", window=1.0, fwhm_mnka="150 eV")
    assert hi - lo == pytest.approx(detector_fwhm(e, fwhm_mnka="150 eV"))
    lo, hi = line_window("Al_Ka", window="200 eV")
    assert (lo + hi) / 2 == pytest.approx(e)
    assert hi - lo == pytest.approx(200)
    with pytest.raises(UnitsError, match="window"):
        line_window("Al_Ka", window="2 nm")
    with pytest.raises(UnitsError, match="window"):
        line_window("Al_Ka", window=-1.0)


@pytest.mark.parametrize("lazy", [False, True])
def test_integrate_lines_sums_the_window(lazy):
    import dask.array as da

    energy = np.arange(0, 3000, 10.0)
    rng = np.random.default_rng(3)
    spec = rng.integers(0, 5, (4, 5, energy.size))
    arr = da.from_array(spec, chunks=(2, 5, 100)) if lazy else spec
    maps, attrs = integrate_lines(arr, energy, ["Al_Ka"], window="100 eV")
    lo, hi = line_window("Al_Ka", window="100 eV")
    sel = (energy >= lo) & (energy <= hi)
    np.testing.assert_array_equal(np.asarray(maps["Al_Ka"]), spec[..., sel].sum(-1))
    assert isinstance(maps["Al_Ka"], da.Array) == lazy
    with pytest.raises(DataModelError, match="energy range"):
        integrate_lines(spec, energy, ["Zr_Ka"])


# ---------------------------------------------------------------- Bruker BCF


@needs_data
def test_bcf_p45_matches_its_metadata():
    ds = pfs.read_eds(data_file("eds/P45_the_default_job.bcf"), lines=["Al_Ka"])
    assert dict(ds.sizes) == {"z": 1, "y": 75, "x": 100}
    assert float(ds.x[1] - ds.x[0]) == pytest.approx(8736.78506, rel=1e-6)
    assert ds.attrs["beam_energy"] == "20 kV"
    assert ds.attrs["working_distance"] == "7.69044 mm"
    assert ds.Al_Ka.attrs["line_energy"].endswith("eV")


@needs_data
def test_bcf_integration_equals_a_numpy_sum_of_the_raw_cube():
    from rsciio.bruker import file_reader

    path = data_file("eds/30x30_instructively_packed_16bit_compressed.bcf")
    ds = pfs.read_eds(path, lines=["Fe_Ka", "Si_Ka"], method="window", fwhm_mnka="130 eV")
    sig = file_reader(str(path), select_type="spectrum_image")[0]
    ax = sig["axes"][-1]
    energy = (ax["offset"] + ax["scale"] * np.arange(sig["data"].shape[-1])) * 1000
    for line in ("Fe_Ka", "Si_Ka"):
        lo, hi = line_window(line)
        sel = (energy >= lo) & (energy <= hi)
        np.testing.assert_array_equal(ds[line].values[0], sig["data"][..., sel].sum(-1))
    assert ds.Fe_Ka.values.sum() > 0
    assert set(ds.attrs["xray_lines_in_file"]) >= {"Al_Ka", "Fe_Ka", "Th_Ma"}


@needs_data
def test_bcf_default_lines_are_the_files_list():
    ds = pfs.read_eds(data_file("eds/Hitachi_TM3030Plus.bcf"), pixel_size="0.5 um")
    assert list(ds.data_vars) == ["Al_Ka", "Cu_Ka"]
    assert dict(ds.sizes) == {"z": 1, "y": 240, "x": 320}
    assert ds.attrs["pixel_size_source"] == "user"


@needs_data
def test_bcf_without_calibration_asks_for_pixel_size():
    with pytest.raises(FileFormatError, match=r"pixel_size: .*Hitachi_TM3030Plus\.bcf' has no pixel calibration"):
        pfs.read_eds(data_file("eds/Hitachi_TM3030Plus.bcf"))


@needs_data
def test_bcf_line_outside_the_spectrum_is_an_error():
    with pytest.raises(DataModelError, match="energy range"):
        pfs.read_eds(data_file("eds/P45_the_default_job.bcf"), lines=["U_Ka"], method="window")
    with pytest.raises(DataModelError, match=r"lines: expected lines the beam can excite, got U_Ka .*\(20 kV\)"):
        pfs.read_eds(data_file("eds/P45_the_default_job.bcf"), lines=["U_Ka"])


@needs_data
def test_per_slice_bcf_files_stack_along_z(tmp_path):
    src = data_file("eds/P45_the_default_job.bcf")
    paths = []
    for i in range(3):
        p = tmp_path / f"slice_{i:02d}.bcf"
        p.symlink_to(src)
        paths.append(p)
    ds = pfs.read_eds(str(tmp_path / "slice_*.bcf"), lines=["Al_Ka"], slice_thickness="60 nm")
    assert ds.sizes["z"] == 3
    assert ds.z.values.tolist() == [0.0, 60.0, 120.0]
    ds = pfs.read_eds(paths, lines=["Al_Ka"], depths=["0 nm", "55 nm", "130 nm"])
    assert ds.z.values.tolist() == [0.0, 55.0, 130.0]
    with pytest.raises(DataModelError, match="slice_thickness"):
        pfs.read_eds(paths, lines=["Al_Ka"])


@needs_data
def test_slices_of_different_shapes_are_an_error():
    with pytest.raises(FileFormatError, match=r"expected slices of shape \(75, 100\)"):
        pfs.read_eds([data_file("eds/P45_the_default_job.bcf"), data_file("eds/30x30_instructively_packed_16bit_compressed.bcf")],
                     lines=["Al_Ka"], slice_thickness="60 nm", pixel_size="1 um")


# ---------------------------------------------------------------- JEOL


@needs_data
def test_jeol_view_directory_reads_every_map():
    ds = pfs.read_eds(data_file("eds/jeol_View000"))
    assert list(ds.data_vars) == ["C_Ka", "O_Ka", "S_Ka", "Fe_Ka", "Cu_Ka"]  # 'C K' is the C K-alpha map
    assert dict(ds.sizes) == {"z": 1, "y": 512, "x": 512}
    assert float(ds.x[1] - ds.x[0]) == pytest.approx(8.69140625)
    assert int(ds.C_Ka.max()) == 6
    assert int(ds.O_Ka.max()) == 4
    assert np.mean(ds.C_Ka.values == 0) == pytest.approx(0.8, abs=0.02)
    assert ds.attrs["beam_energy"] == "200 kV"
    assert ds.C_Ka.attrs["jeol_title"] == "C K"


@needs_data
def test_jeol_missing_channel_is_an_error():
    with pytest.raises(DataModelError, match=r"lines: expected channels of the JEOL view"):
        pfs.read_eds(data_file("eds/jeol_View000"), lines=["Zr_L"])
    for name in ("Fe_K", "Fe_Ka"):  # one canonical name, both spellings accepted
        ds = pfs.read_eds(data_file("eds/jeol_View000"), lines=[name])
        assert list(ds.data_vars) == ["Fe_Ka"]
    with pytest.raises(DataModelError, match=r"expected each line once .*\['Fe_Ka'\]"):
        pfs.read_eds(data_file("eds/jeol_View000"), lines=["Fe_K", "Fe_Ka"])


# ---------------------------------------------------------------- NanoSIMS


@pytest.mark.parametrize(
    ("label", "name", "mass"),
    [("6Li", "Li6", 6), ("12C", "C12", 12), ("12C 14N", "C12N14", 26), ("12C2", "C12C12", 24), ("16O", "O16", 16)],
)
def test_species_naming_rule(label, name, mass):
    got, attrs = channel_name(label, 0)
    assert got == name
    assert attrs["mass"] == mass
    assert attrs["label"] == label


@needs_data
def test_nanosims_image_sun():
    ds = pfs.read_sims(data_file("sims/image_sun.im"), slice_thickness="10 nm")
    assert list(ds.data_vars) == ["C12", "O16", "O18", "C12N14", "C12N15", "SE"]
    assert dict(ds.sizes) == {"z": 2, "y": 256, "x": 256}
    assert float(ds.x[1] - ds.x[0]) == pytest.approx(7011 / 256)
    assert ds.C12N14.attrs["label"] == "12C 14N"
    assert ds.C12N14.attrs["polarity"] == "-"  # Cs+ primary, sample at -8 kV: negative secondary ions (CN-)
    assert ds.C12.dtype == np.uint16
    assert ds.C12.dtype.isnative
    assert int(max(ds[v].max() for v in ds.data_vars)) == 11646
    assert ds.attrs["primary_ion"] == "Cs+"


@needs_data
def test_nanosims_rti_empty_label_and_uint32():
    ds = pfs.read_sims(data_file("sims/RTIimage.im"))
    assert list(ds.data_vars) == ["C12C12", "species1"]
    assert ds.species1.attrs["label"] == ""
    assert ds.C12C12.dtype == np.uint32
    assert int(ds.C12C12.max()) <= 39
    assert float(ds.x[1] - ds.x[0]) == pytest.approx(5007 / 256)


@needs_data
@pytest.mark.parametrize("rel", ["sims/image_sun.im", "sims/OpenMIMS_doc_051117_05-32dRe-03b.im", "sims/RTIimage.im"])
def test_nanosims_polarity_is_that_of_the_secondary_ions(rel):
    """The sign of the secondary ions is the sign of the sample's extraction voltage E0W: a sample at
    -8 kV (these Cs+ runs) extracts negative ions. (The sims package's header 'polarity' is the
    machine mode, '+' for these files, the opposite sign.)"""
    import sims

    e0w = sims.SIMS(str(data_file(rel))).header["SecondaryBeam"]["E0W"]
    ds = pfs.read_sims(data_file(rel), slice_thickness="10 nm")
    expected = "-" if e0w < 0 else "+"
    assert expected == "-"
    assert ds.attrs["polarity"] == expected
    assert {ds[v].attrs["polarity"] for v in ds.data_vars} == {expected}


@needs_data
@pytest.mark.parametrize(("rel", "tau_ns", "dwell_ms"), [("sims/image_sun.im", 36, 10), ("sims/RTIimage.im", None, 0.1),
                                                       ("sims/OpenMIMS_doc_051117_05-32dRe-03b.im", 44, 60)])
def test_nanosims_counting_attrs_from_the_header(rel, tau_ns, dwell_ms):
    """Dead time and dwell time were not read (isotope_ratio's dead-time correction needs both): each species on
    an electron multiplier now carries its detector's dead time, the dwell time a pixel and whether the counts
    are corrected already. The dwell time is checked against the header's own frame time (the B field's
    counting frame time, and the mass table's where it is the counting one: dwell x pixels); a Faraday cup or
    SE detector, or a species whose trolley names no detector (RTIimage: trolley 0), gets no dead time."""
    import sims

    header = sims.SIMS(str(data_file(rel))).header
    ds = pfs.read_sims(data_file(rel), slice_thickness="10 nm")
    pixels = ds.sizes["y"] * ds.sizes["x"]
    frames = [header["BFields"][0]["counting frame time"]]
    if tau_ns is not None:
        frames += [m["frame count time"] for m in header["MassTable"].values()]
    for v in ds.data_vars:
        a = ds[v].attrs
        assert a["dwell_time"] == f"{dwell_ms:g} ms"
        seconds = pfs.units.ureg.Quantity(a["dwell_time"]).to("s").magnitude
        for frame in frames:
            assert seconds * pixels == pytest.approx(frame, rel=1e-9)
        if tau_ns is None or a["label"] == "SE":
            assert "dead_time" not in a
            assert "dead_time_corrected" not in a
        else:
            assert a["dead_time"] == f"{tau_ns} ns"
            assert a["dead_time_corrected"] is False
    if tau_ns is not None:  # what isotope_ratio takes
        names = [v for v in ds.data_vars if v != "SE"]
        x, y = ds[names[1]].isel(z=0), ds[names[0]].isel(z=0)
        r = pfs.isotope_ratio(x, y, dead_time=x.attrs["dead_time"], dwell_time=x.attrs["dwell_time"])
        assert r.attrs["dead_time"] == f"{tau_ns} ns"


@needs_data
def test_reader_errors_name_depths_as_the_reader_calls_it():
    """read_*(depths=...) passes them to stack(z=...); a wrong value is reported as depths=, the argument given."""
    path = data_file("sims/image_sun.im")  # 2 frames
    with pytest.raises(DataModelError, match=r"^slice_thickness: expected a length \(e\.g\. '60 nm'\), or depths= \(measured"):
        pfs.read_sims(path)
    with pytest.raises(UnitsError, match=r"^depths: expected one length or 2 lengths, got 3"):
        pfs.read_sims(path, depths=["0 nm", "5 nm", "9 nm"])
    with pytest.raises(DataModelError, match=r"^depths: expected increasing slice depths, got \[5\.0, 0\.0\] nm"):
        pfs.read_sims(path, depths=["5 nm", "0 nm"])
    with pytest.raises(DataModelError, match=r"^slice_thickness, depths: expected one of them"):
        pfs.read_sims(path, depths=["0 nm", "5 nm"], slice_thickness="5 nm")


@needs_data
def test_nanosims_no_species_is_an_error():
    with pytest.raises(DataModelError, match=r"species: expected channel names or labels"):
        pfs.read_sims(data_file("sims/RTIimage.im"), species=[])


@needs_data
def test_nanosims_species_selection():
    path = data_file("sims/OpenMIMS_doc_051117_05-32dRe-03b.im")
    ds = pfs.read_sims(path, species=["13C", "C12"])
    assert list(ds.data_vars) == ["C13", "C12"]
    assert float(ds.x[1] - ds.x[0]) == pytest.approx(19991 / 256)
    with pytest.raises(DataModelError, match="species: expected channels or labels"):
        pfs.read_sims(path, species=["Li6"])


@needs_data
@pytest.mark.parametrize("kw", [{"isotope": "6Li"}, {"mass": 6.0}, {"polarity": "-"}])
def test_nanosims_refuses_the_options_of_one_isotope_files(kw):
    """isotope/mass/polarity name the one isotope of a text or TIFF file; a NanoSIMS .im names its species
    itself, and they were silently ignored there (isotope='banana' read the file unchanged)."""
    (name,) = kw
    with pytest.raises(DataModelError, match=rf"{name}: expected None for NanoSIMS \.im files"):
        pfs.read_sims(data_file("sims/RTIimage.im"), **kw)


# ---------------------------------------------------------------- SEM


@needs_data
def test_fei_tiff_crops_the_data_bar_and_reads_settings():
    ds = pfs.read_sem(data_file("sem/test_tiff_FEI_SEM.tif"))
    assert dict(ds.sizes) == {"z": 1, "y": 1024, "x": 1536}
    assert float(ds.x[1] - ds.x[0]) == pytest.approx(1825.05)
    a = ds.attrs
    assert (a["beam_energy"], a["beam_current"], a["dwell_time"], a["detector"]) == ("10 kV", "0.8 nA", "10 us", "TLD")
    assert a["data_bar_rows"] == 79
    assert a["working_distance"] == "4.05688 mm"
    assert list(ds.data_vars) == ["SE"]
    import tifffile

    full = tifffile.imread(data_file("sem/test_tiff_FEI_SEM.tif"))
    np.testing.assert_array_equal(ds.SE.values[0], full[:1024])


@needs_data
def test_fei_settings_that_are_not_finite_or_positive_are_left_out(tmp_path):
    """HV=nan, BeamCurrent=inf, a negative dwell or a NaN stage X are not settings: no 'nan kV' in the attrs."""
    raw = data_file("sem/test_tiff_FEI_SEM.tif").read_bytes()
    for old, new in ((b"HV=10000", b"HV=nan  "), (b"BeamCurrent=8e-010", b"BeamCurrent=inf   "),
                     (b"Dwelltime=1e-005", b"Dwelltime=-1e-05"), (b"StageX=-0.0113253", b"StageX=nan       ")):
        assert old in raw
        assert len(old) == len(new)
        raw = raw.replace(old, new)
    path = tmp_path / "odd.tif"
    path.write_bytes(raw)
    a = pfs.read_sem(path).attrs
    assert not {"beam_energy", "beam_current", "dwell_time", "stage_position_x"} & set(a), a
    assert a["working_distance"] == "4.05688 mm"
    assert a["stage_position_y"] == "12.26 mm"


@needs_data
def test_fei_16bit():
    ds = pfs.read_sem(data_file("sem/FEI-Helios-Ebeam-16bits.tif"))
    assert dict(ds.sizes) == {"z": 1, "y": 442, "x": 512}
    assert ds.SE.dtype == np.uint16
    assert float(ds.x[1] - ds.x[0]) == pytest.approx(3372.4)
    assert ds.attrs["data_bar_rows"] == 29
    assert ds.attrs["beam_current"] == "0.00625 nA"


@needs_data
def test_zeiss_pixel_size_from_ap_width_not_ap_pixel_size():
    ds = pfs.read_sem(data_file("sem/test_tiff_Zeiss_SEM_512pix.tif"))
    assert dict(ds.sizes) == {"z": 1, "y": 350, "x": 512}  # rows 350-383: the burnt-in data bar
    assert float(ds.x[1] - ds.x[0]) == pytest.approx(5965 / 512, rel=1e-4)  # exactly: 5.824988 nm x 1024 / 512 (test_io_metadata)
    assert ds.attrs["beam_energy"] == "5 kV"
    assert ds.attrs["detector"] == "InLens"
    assert ds.attrs["ap_pixel_size"] == "5.825 nm"


def test_tiff_without_sem_metadata_is_an_error(tmp_path):
    p = write_tiff(tmp_path / "plain.tif", np.zeros((4, 4), np.uint8))
    with pytest.raises(FileFormatError, match=r"plain\.tif: expected a Thermo Fisher/FEI .* or Zeiss"):
        pfs.read_sem(p)


# ---------------------------------------------------------------- H5OINA (written in the spec's layout)


def test_h5oina_window_integral_maps(tmp_path):
    rng = np.random.default_rng(0)
    maps = {"Zr_La": rng.random((5, 7)), "Al_Ka": rng.random((5, 7))}
    p = write_h5oina(tmp_path / "a.h5oina", maps, step_um=0.0814)
    ds = pfs.read_eds(p)
    assert sorted(ds.data_vars) == ["Al_Ka", "Zr_La"]
    np.testing.assert_allclose(ds.Zr_La.values[0], maps["Zr_La"].astype(np.float32))
    assert float(ds.x[1] - ds.x[0]) == pytest.approx(81.4, rel=1e-6)
    assert ds.Zr_La.attrs["units"] == "counts/s"
    assert ds.Zr_La.attrs["h5oina_label"] == "Zr La1"
    assert ds.attrs["beam_energy"] == "5 kV"
    assert ds.attrs["stage_position_x"] == "12.5 mm"  # flat: a netCDF attribute
    assert ds.attrs["format_version"] == "6.0"
    ds = pfs.read_eds(p, lines=["Al_Ka"])
    assert list(ds.data_vars) == ["Al_Ka"]
    with pytest.raises(DataModelError, match=r"lines: expected channels the file .* holds"):
        pfs.read_eds(p, lines=["Co_La"])


def test_h5oina_spectrum_integration(tmp_path):
    rng = np.random.default_rng(1)
    spec = rng.integers(0, 4, (4, 6, 400))
    p = write_h5oina(tmp_path / "s.h5oina", {"Al_Ka": np.zeros((4, 6))}, spectrum=spec, channel_width=10.0, start_channel=-100.0)
    ds = pfs.read_eds(p, source="spectrum", lines=["Zr_La", "Al_Ka"], method="window")
    energy = -100.0 + 10.0 * np.arange(400)
    lo, hi = line_window("Zr_La")
    sel = (energy >= lo) & (energy <= hi)
    np.testing.assert_array_equal(ds.Zr_La.values[0], spec[..., sel].sum(-1))
    with pytest.raises(DataModelError, match="lines: expected the X-ray lines"):
        pfs.read_eds(p, source="spectrum")


def test_h5oina_layout_errors(tmp_path):
    import h5py

    p = tmp_path / "bad.h5oina"
    with h5py.File(p, "w") as f:
        f["x"] = 1
    with pytest.raises(FileFormatError, match=r"bad\.h5oina: expected an H5OINA file"):
        pfs.read_eds(p)
    p2 = write_h5oina(tmp_path / "b.h5oina", {"Al_Ka": np.zeros((2, 3))})
    with h5py.File(p2, "a") as f:
        del f["1/EDS/Header/X Step"]
    with pytest.raises(FileFormatError, match="X Step"):
        pfs.read_eds(p2)


# ---------------------------------------------------------------- Ripple


@pytest.mark.parametrize(("record_by", "order"), [("vector", "little-endian"), ("image", "big-endian")])
def test_ripple_spectrum_image(tmp_path, record_by, order):
    rng = np.random.default_rng(2)
    cube = rng.integers(0, 7, (5, 6, 300)).astype(np.uint16)
    p = write_ripple(tmp_path / "si", cube, record_by=record_by, byte_order=order,
                     extra={"depth-scale": "0.01", "depth-origin": "0", "depth-units": "keV"})
    ds = pfs.read_eds(p, lines=["Al_Ka"], pixel_size="81.4 nm", method="window")
    energy = 10.0 * np.arange(300)
    lo, hi = line_window("Al_Ka")
    sel = (energy >= lo) & (energy <= hi)
    np.testing.assert_array_equal(ds.Al_Ka.values[0], cube[..., sel].sum(-1))


def test_ripple_single_map_and_header_errors(tmp_path):
    m = np.arange(12, dtype=np.float32).reshape(3, 4)
    p = write_ripple(tmp_path / "Co La1", m, extra={"width-scale": "0.0814", "width-units": "um",
                                                   "height-scale": "0.0814", "height-units": "µm"})
    ds = pfs.read_eds(p)
    assert list(ds.data_vars) == ["Co_La"]
    np.testing.assert_array_equal(ds.Co_La.values[0], m)
    assert float(ds.x[1] - ds.x[0]) == pytest.approx(81.4)
    p.write_text("width\t4\n")
    with pytest.raises(FileFormatError, match="missing"):
        pfs.read_eds(p)
    q = write_ripple(tmp_path / "x", np.zeros((2, 2, 5), np.uint8))
    with pytest.raises(FileFormatError, match="energy calibration"):
        pfs.read_eds(q, pixel_size="1 nm")


# ---------------------------------------------------------------- AZtec exports


def test_channel_mapping_names_lines_as_lines_does_and_must_not_be_empty(tmp_path):
    """{'Fe_K': files} is Fe_Ka, as lines=['Fe_K'] is (one naming rule); an empty mapping is a clean error."""
    p = write_tiff(tmp_path / "a.tif", np.arange(6, dtype=np.uint16).reshape(2, 3))
    ds = pfs.read_eds({"Fe_K": p, "Zr_La": p}, pixel_size="81.4 nm")
    assert list(ds.data_vars) == ["Fe_Ka", "Zr_La"]
    assert ds.Fe_Ka.attrs["line"] == "Ka"
    with pytest.raises(FileFormatError, match=r"path_or_paths: expected at least one channel in the mapping, got \{\}"):
        pfs.read_eds({}, pixel_size="81.4 nm")
    with pytest.raises(FileFormatError, match=r"path_or_paths: expected at least one channel in the mapping, got \{\}"):
        pfs.read_sims({}, pixel_size="72 nm")


def test_aztec_tiff_and_csv_exports_group_by_channel(tmp_path):
    rng = np.random.default_rng(4)
    truth = {}
    for i in range(2):
        for name, label in (("Zr_La", "Zr La1"), ("Co_La", "Co Lα1")):
            arr = rng.integers(0, 50, (3, 5)).astype(np.uint16)
            truth[(name, i)] = arr
            write_tiff(tmp_path / f"slice{i}_{label}.tif", arr)
    ds = pfs.read_eds(str(tmp_path / "slice*.tif"), pixel_size="81.4 nm", slice_thickness="60 nm")
    assert sorted(ds.data_vars) == ["Co_La", "Zr_La"]
    assert ds.sizes["z"] == 2
    for (name, i), arr in truth.items():
        np.testing.assert_array_equal(ds[name].values[i], arr)
    csv = write_csv(tmp_path / "Al Ka1.csv", truth[("Zr_La", 0)], header="Map Data 1\nAl Ka1 counts\n")
    ds = pfs.read_eds(csv, pixel_size="81.4 nm")
    np.testing.assert_array_equal(ds.Al_Ka.values[0], truth[("Zr_La", 0)])
    ds = pfs.read_eds({"Zr_La": [tmp_path / "slice0_Zr La1.tif"]}, pixel_size="81.4 nm")
    assert list(ds.data_vars) == ["Zr_La"]


def test_aztec_errors(tmp_path):
    p = write_tiff(tmp_path / "Zr La1.tif", np.zeros((3, 5), np.uint16))
    with pytest.raises(FileFormatError, match=r"pixel_size: .*has no pixel calibration"):
        pfs.read_eds(p)
    q = write_tiff(tmp_path / "mystery.tif", np.zeros((3, 5), np.uint16))
    with pytest.raises(FileFormatError, match="expected a file name ending in an element and line"):
        pfs.read_eds(q, pixel_size="1 nm")
    r = write_csv(tmp_path / "C Ka1.csv", np.zeros((2, 3)))
    r.write_text(r.read_text() + "1,2\n")
    with pytest.raises(FileFormatError, match=r"expected 3 values per row .* line 3"):
        pfs.read_eds(r, pixel_size="1 nm")
    with pytest.raises(FileFormatError, match="files of one format"):
        pfs.read_eds([p, r], pixel_size="1 nm")
    with pytest.raises(FileFormatError, match="found none"):
        pfs.read_eds(str(tmp_path / "nothing_*.tif"))
    with pytest.raises(FileFormatError, match="expected an EDS file"):
        pfs.read_eds(write_csv(tmp_path / "a.xyz", np.zeros((2, 2))))


# ---------------------------------------------------------------- Hiden / text / TIFF SIMS


def test_hiden_text_with_header(tmp_path):
    m = np.arange(20).reshape(4, 5)
    header = "Hiden Analytical MAPPER export\nIsotope: 6Li\nMass: 6.015\nPolarity: positive\nPixel size: 72 nm\nDwell time: 5 ms\n\n"
    p = write_csv(tmp_path / "li6.txt", m, header=header, sep="\t", trailing=False)
    ds = pfs.read_sims(p)
    assert list(ds.data_vars) == ["Li6"]
    np.testing.assert_array_equal(ds.Li6.values[0], m)
    assert ds.Li6.attrs["mass"] == 6.015
    assert ds.Li6.attrs["polarity"] == "+"
    assert float(ds.x[1] - ds.x[0]) == pytest.approx(72.0)
    assert ds.attrs["dwell_time"] == "5 ms"


def test_sims_text_needs_an_isotope_and_multiblock_is_z(tmp_path):
    p = tmp_path / "plain.csv"
    p.write_text("1,2\n3,4\n\n5,6\n7,8\n")
    with pytest.raises(DataModelError, match="isotope: expected the isotope"):
        pfs.read_sims(p, pixel_size="72 nm")
    ds = pfs.read_sims(p, isotope="Li7", pixel_size="72 nm", slice_thickness="20 nm", polarity="+")
    assert ds.Li7.values.tolist() == [[[1, 2], [3, 4]], [[5, 6], [7, 8]]]
    with pytest.raises(DataModelError, match="polarity"):
        pfs.read_sims(p, isotope="Li7", pixel_size="72 nm", slice_thickness="20 nm", polarity="up")


def test_sims_isotope_with_a_sign_gives_the_polarity(tmp_path):
    """'6Li+' (as the paper writes it) says the polarity: it is kept, not dropped; a contradicting polarity= is an error."""
    p = tmp_path / "plain.csv"
    p.write_text("1,2\n3,4\n")
    ds = pfs.read_sims(p, isotope="6Li+", pixel_size="72 nm")
    assert list(ds.data_vars) == ["Li6"]
    assert ds.Li6.attrs["polarity"] == "+"
    assert ds.attrs["polarity"] == "+"
    q = write_csv(tmp_path / "o.txt", np.ones((2, 2)), header="Species: 16O-\n\n", sep="\t", trailing=False)
    assert pfs.read_sims(q, pixel_size="72 nm").O16.attrs["polarity"] == "-"
    with pytest.raises(DataModelError, match=r"polarity: expected the sign of isotope '6Li\+' \('\+'\), got '-'"):
        pfs.read_sims(p, isotope="6Li+", polarity="-", pixel_size="72 nm")


@pytest.mark.parametrize(("line", "match"), [("Polarity: sideways", "polarity: expected '\\+' or '-', got 'sideways' in the header of '.*li6.txt'"),
                                           ("Mass: heavy", "mass: expected a number of u, got 'heavy' in the header of '.*li6.txt'")])
def test_a_bad_header_value_names_the_file(tmp_path, line, match):
    p = write_csv(tmp_path / "li6.txt", np.ones((4, 5)), header=f"Isotope: 6Li\n{line}\n", sep="\t", trailing=False)
    with pytest.raises(DataModelError, match=match):
        pfs.read_sims(p, pixel_size="72 nm")


@pytest.mark.parametrize("cols", [1, 300])
def test_text_matrix_holds_8_bytes_a_value_while_reading(tmp_path, cols):
    """A text matrix is parsed into float64 as it is read: a one-column file of 300000 rows (0.6 MB) took
    ~50 MB of Python floats and lists (~85 bytes a file byte); numpy's loadtxt is the reference for the values."""
    import tracemalloc

    from pfibsims.io.text import read_text_matrix

    rows = 300000 // cols
    m = np.random.default_rng(3).integers(0, 9, (rows, cols))
    p = tmp_path / "m.csv"
    np.savetxt(p, m, fmt="%d", delimiter=",")
    tracemalloc.start()
    try:
        _, data = read_text_matrix(p)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    np.testing.assert_array_equal(data, np.loadtxt(p, delimiter=",", ndmin=2))
    assert peak < 3 * 8 * m.size + 2**20  # the values (an array that grows by doubling) and one line


def test_sims_mapping_names_the_isotope_of_each_series(tmp_path):
    a = write_tiff(tmp_path / "a.tif", np.ones((3, 4), np.uint16))
    b = write_tiff(tmp_path / "b.tif", 2 * np.ones((3, 4), np.uint16))
    ds = pfs.read_sims({"Li6": [a], "Li7": [b]}, pixel_size="72 nm")
    assert list(ds.data_vars) == ["Li6", "Li7"]
    assert int(ds.Li7.max()) == 2
    assert ds.Li6.attrs["element"] == "Li"


@needs_data
def test_tiff_compressed_with_a_codec_tifffile_lacks_is_refused_at_read():
    """Coloc 2's mandersA.tiff is LZW-compressed: without imagecodecs tifffile cannot decode it. That is said
    when the file is read, naming the codec and the package, not later at compute as 'truncated or corrupt'."""
    path = data_file("coloc2/mandersA.tiff")
    try:
        import imagecodecs  # noqa: F401
    except ImportError:
        with pytest.raises(FileFormatError, match=r"mandersA\.tiff: TIFF page 0 is compressed with LZW, which tifffile decodes only with the 'imagecodecs' package"):
            pfs.read_sims(path, isotope="Li6", pixel_size="72 nm")
    else:
        import tifffile

        ds = pfs.read_sims(path, isotope="Li6", pixel_size="72 nm")
        np.testing.assert_array_equal(ds.Li6.values[0], tifffile.imread(path))


@needs_data
def test_truncated_imagej_stack_is_not_read_as_fewer_slices(tmp_path):
    """ImageJ writes a stack's page directories after the pixels: greenZstack.tif (10 slices) cut in half keeps
    one readable page, and tifffile stops there without an error. The cut is found, not read as one slice."""
    import tifffile

    src = data_file("coloc2/greenZstack.tif")
    cut = tmp_path / "cut.tif"
    cut.write_bytes(src.read_bytes()[: src.stat().st_size // 2])
    with tifffile.TiffFile(cut) as tif:
        assert len(tif.pages) == 1  # what tifffile alone sees
    with pytest.raises(FileFormatError, match=r"cut\.tif: its TIFF page 0 points to a next page at byte \d+, past the end"):
        pfs.read_sims(cut, isotope="6Li", pixel_size="72 nm", slice_thickness="60 nm")
    assert pfs.read_sims(src, isotope="6Li", pixel_size="72 nm", slice_thickness="60 nm").sizes["z"] == 10


@needs_data
@pytest.mark.parametrize("keep", [1760318 + 2411, 1765140 - 1])  # inside the FEI_TITAN XML tag, its last byte
def test_tiff_cut_inside_a_metadata_tag_is_truncated_not_read(tmp_path, keep):
    """The ASV slice keeps its IFD and three FEI tags after the pixels, FEI_TITAN (34683, 4822 bytes) last.
    Cut inside it, tifffile drops the tag silently and the image reads; the cut is found instead."""
    import tifffile

    src = data_file("sem/SEM_Image-SliceImage-001.tif")
    cut = tmp_path / "SEM_Image-SliceImage-001.tif"
    cut.write_bytes(src.read_bytes()[:keep])
    with tifffile.TiffFile(cut) as tif:
        assert 34683 not in tif.pages[0].tags  # what tifffile alone sees
        assert tif.is_fei
    with pytest.raises(FileFormatError, match=rf"SliceImage-001\.tif: TIFF page 0's tag 34683 holds values up to byte 1765140, "
                                              rf"past the end of the file \({keep} bytes\); the file is truncated"):
        pfs.read_sem(cut, project=data_file("sem/EMProject.emxml"))
