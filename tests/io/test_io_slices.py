"""Folders and lists of slice images: one Auto Slice & View run at a time, and no stray image read as a slice.

The slices are the real ASV slice image (SEM_Image-SliceImage-001.tif, FEI tags, 385.4 nm pixels) linked
under slice names, beside copies of its real project (EMProject.emxml: 185 cuts of 100 nm).
"""

from __future__ import annotations

import shutil

import pytest
from io_helpers import data_file, needs_data

import pfibsims as pfs
from pfibsims.errors import FileFormatError

pytestmark = needs_data


def _run(folder, numbers, *, dataset="SEM_Image", project=True, digits=3):
    folder.mkdir(parents=True, exist_ok=True)
    if project:
        shutil.copy(data_file("sem/EMProject.emxml"), folder / "EMProject.emxml")
    for n in numbers:
        (folder / f"{dataset}-SliceImage-{n:0{digits}d}.tif").symlink_to(data_file("sem/SEM_Image-SliceImage-001.tif"))
    return folder


@pytest.mark.parametrize("kw", [{}, {"slice_thickness": "100 nm"}])
def test_one_folder_with_two_datasets_is_two_runs_not_one_stack(tmp_path, kw):
    """'SEM Image' and 'SEM Image 2' slices 1-3 in one folder without a project: read as 6 slices with slice_thickness."""
    folder = _run(_run(tmp_path / "run", (1, 2, 3), project=False), (1, 2, 3), dataset="SEM_Image_2", project=False)
    with pytest.raises(FileFormatError, match=rf"expected slice images of one dataset, got 'SEM Image' and 'SEM Image 2': "
                                              rf"'{tmp_path}/run' holds 2 Auto Slice & View runs, 'SEM Image' \(3 slices: "
                                              r"SEM_Image-SliceImage-001\.tif to SEM_Image-SliceImage-003\.tif\) and 'SEM Image 2' "
                                              r"\(3 slices: SEM_Image_2-SliceImage-001\.tif to SEM_Image_2-SliceImage-003\.tif\)"):
        pfs.read_sem(folder, **kw)


@pytest.mark.parametrize("kw", [{}, {"slice_thickness": "100 nm"}])
def test_two_run_folders_with_their_own_projects_are_refused_naming_both(tmp_path, kw):
    """runA (slices 1-3) and runB (slices 4-6), each beside its project: read as one stack of 6 at runA's z."""
    _run(tmp_path / "runA", (1, 2, 3))
    _run(tmp_path / "runB", (4, 5, 6))
    with pytest.raises(FileFormatError, match=rf"expected slice images of one project, got '{tmp_path}/runA/EMProject\.emxml' and "
                                              rf"'{tmp_path}/runB/EMProject\.emxml': '{tmp_path}' holds 2 Auto Slice & View runs, "
                                              r"'SEM Image' of 'runA/EMProject\.emxml' \(3 slices: .*-001\.tif to .*-003\.tif\) and "
                                              r"'SEM Image' of 'runB/EMProject\.emxml' \(3 slices: .*-004\.tif to .*-006\.tif\)"):
        pfs.read_sem(str(tmp_path / "run*" / "*.tif"), **kw)


@pytest.mark.parametrize("kw", [{}, {"slice_thickness": "100 nm"}, {"depths": ["0 nm", "100 nm", "200 nm", "300 nm"]}])
def test_two_numberings_of_one_dataset_are_two_runs(tmp_path, kw):
    """SliceImage-001, -002 and SliceImage-1, -2 in one folder: slice 1 twice (read as 4 slices when z was given)."""
    folder = _run(_run(tmp_path / "run", (1, 2), project=False), (1, 2), project=False, digits=1)
    with pytest.raises(FileFormatError, match=r"expected one image a slice, got slice 1 twice: 'SEM_Image-SliceImage-001\.tif' and "
                                              rf"'SEM_Image-SliceImage-1\.tif': '{tmp_path}/run' holds two numberings of 'SEM Image' "
                                              r"\(two runs\): zero-padded numbers \(2 slices: .*001\.tif to .*002\.tif\) and plain numbers "
                                              r"\(2 slices: SEM_Image-SliceImage-1\.tif to SEM_Image-SliceImage-2\.tif\)"):
        pfs.read_sem(folder, **kw)


def test_one_run_still_reads_with_its_project_or_a_given_thickness(tmp_path):
    folder = _run(tmp_path / "run", (1, 2, 5))
    assert pfs.read_sem(folder).z.values.tolist() == pytest.approx([0.0, 100.0, 400.0])  # (n - 1) x ZCutSpacing 100 nm
    assert pfs.read_sem(folder, slice_thickness="60 nm").z.values.tolist() == [0.0, 60.0, 120.0]
    other = _run(tmp_path / "elsewhere", (), project=True) / "EMProject.emxml"  # a given project: one run with it
    assert pfs.read_sem(folder, project=other).attrs["asv_project"] == str(other)


# ---------------------------------------------------------------- stray images among the slices


@pytest.mark.parametrize("stray", ["Overview.tif", "zz_overview.tif"])  # sorts before or after the slices
@pytest.mark.parametrize("kw", [{}, {"slice_thickness": "100 nm"}])
def test_stray_image_in_an_asv_folder_is_refused_naming_it(tmp_path, stray, kw):
    """Every file of a folder is a slice (read_sem's docstring), so a stray is refused, not skipped. An overview of the
    slices' own shape and pixel size was stacked as a slice with slice_thickness=, or, sorting first, hid the project."""
    folder = _run(tmp_path / "run", (1, 2, 3))
    (folder / stray).symlink_to(data_file("sem/SEM_Image-SliceImage-001.tif"))
    with pytest.raises(FileFormatError, match=rf"expected only Auto Slice & View slice images .* in '{tmp_path}/run', found 1 other "
                                              rf"image beside its 3 slices: \['{stray}'\]; they are not slices of the run"):
        pfs.read_sem(folder, **kw)


def test_stray_of_another_shape_is_named_even_when_it_sorts_first(tmp_path):
    """Zeiss slices (350 x 512 kept) and a 16-bit FEI image (442 x 512) named to sort first: the message blamed slice_1."""
    for n in (1, 2, 3):
        (tmp_path / f"slice_{n}.tif").symlink_to(data_file("sem/test_tiff_Zeiss_SEM_512pix.tif"))
    (tmp_path / "a_thumb.tif").symlink_to(data_file("sem/FEI-Helios-Ebeam-16bits.tif"))
    with pytest.raises(FileFormatError, match=rf"^{tmp_path}/a_thumb\.tif: expected slices of shape \(350, 512\) \(as "
                                              rf"'{tmp_path}/slice_1\.tif' and 2 other files\), found \(442, 512\); leave out"):
        pfs.read_sem(tmp_path, slice_thickness="60 nm")


def test_stray_of_another_pixel_size_is_named(tmp_path):
    """Three ASV-size slices (385.417 nm) and an overview of the same shape at 1825.05 nm (the FEI SE image)."""
    for n in (1, 2, 3):
        (tmp_path / f"slice_{n}.tif").symlink_to(data_file("sem/SEM_Image-SliceImage-001.tif"))
    (tmp_path / "a_overview.tif").symlink_to(data_file("sem/test_tiff_FEI_SEM.tif"))
    with pytest.raises(FileFormatError, match=r"pixel_size: expected one pixel size across slices, found \[\(1825\.05, 1825\.05\)\] nm "
                                              rf"in \['a_overview\.tif'\] but \(385\.417, 385\.417\) nm in '{tmp_path}/slice_1\.tif' "
                                              r"and 2 other files; leave out files that are not slices"):
        pfs.read_sem(tmp_path, slice_thickness="60 nm")
