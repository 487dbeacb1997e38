"""sliceOmatic .tag files: round trip, tolerant header parsing, DICOM row order, refusals."""

from dataclasses import replace

import numpy as np
import pydicom
import pytest
import SimpleITK as sitk

from C3SarcopeniaLib import imaging
from C3SarcopeniaLib.errors import InputError
from C3SarcopeniaLib.tagfile import (TagHeader, header_for_image, parse_tag_header, read_tag,
                                     tag_mask_for_image, write_tag)

# The sample header of the TomoVision documentation, with its comment line.
DOCUMENTED_HEADER = (
    "x:256    y:256    z:9      type:BYTE\r\n"
    "org_x:-204.2221  org_y:-181.8909  org_z:-250.0000\r\n"
    "inc_x:0.7105     inc_y:0.7105     epais:5.0000\r\n"
    "dir_h_x:1.0000     dir_h_y:0.0000     dir_h_z:0.0000\r\n"
    "dir_v_x:0.0000     dir_v_y:1.0000     dir_v_z:0.0000\r\n"
    "uid:AFCCCAC6 chksum:09F1588D bin:256\r\n"
    "* number of echos:        0\r\n")


def ct_volume(size=(8, 6, 5), spacing=(0.7, 0.8, 2.5)) -> sitk.Image:
    image = sitk.Image(list(size), sitk.sitkFloat32)
    image.SetSpacing(spacing)
    image.SetOrigin((-10.0, -20.0, -40.0))
    return image


def raw_tag(path, header_text: str, labels: bytes) -> None:
    """A tag file assembled by hand, independent of write_tag."""
    path.write_bytes(header_text.encode("ascii") + b"\x0c" + labels)


def test_round_trip_keeps_labels_and_header(tmp_path):
    labels = np.random.default_rng(1).integers(0, 6, (5, 6, 8)).astype(np.uint8)
    header = replace(header_for_image(ct_volume()), uid="AFCCCAC6", checksum="09F1588D",
                     extra={"bin": "256"}, comments=("drawn by reader 2",))
    write_tag(tmp_path / "labels.tag", labels, header)
    read_header, read_labels = read_tag(tmp_path / "labels.tag")
    assert read_header == header
    assert read_labels.dtype == np.uint8 and np.array_equal(read_labels, labels)


def test_header_from_image_describes_its_grid():
    header = header_for_image(ct_volume())
    assert header.size == (8, 6, 5)
    assert header.pixel_spacing_mm == (0.7, 0.8) and header.slice_thickness_mm == 2.5
    assert header.origin_mm == (-10.0, -20.0, -40.0)
    assert header.row_direction == (1.0, 0.0, 0.0) and header.column_direction == (0.0, 1.0, 0.0)


def test_documented_header_is_parsed_with_comments_and_extra_fields():
    header = parse_tag_header(DOCUMENTED_HEADER)
    assert header.size == (256, 256, 9)
    assert header.origin_mm == (-204.2221, -181.8909, -250.0)
    assert header.pixel_spacing_mm == (0.7105, 0.7105) and header.slice_thickness_mm == 5.0
    assert header.uid == "AFCCCAC6" and header.checksum == "09F1588D"
    assert header.extra == {"bin": "256"}  # the comment's "echos:" is not a field
    assert header.comments == ("number of echos:        0",)


def test_header_tolerates_tabs_lf_commas_case_and_missing_optional_fields():
    header = parse_tag_header("X:4\tY:3,type:byte\n* exported by hand\nINC_X:0.5\tinc_y:0.5\n")
    assert header == TagHeader(size=(4, 3, 1), pixel_spacing_mm=(0.5, 0.5),
                               comments=("exported by hand",))


def test_trailing_padding_after_the_labels_is_ignored(tmp_path):
    labels = bytes(range(12))
    raw_tag(tmp_path / "padded.tag", "x:4 y:3 z:1\r\n", labels + b"\x00" * 7)
    _, read = read_tag(tmp_path / "padded.tag")
    assert read.shape == (1, 3, 4) and read.tobytes() == labels


def test_rows_follow_the_dicom_pixel_order(tmp_path):
    """Labels written in pydicom's pixel order land on the same voxels SimpleITK reads."""
    hu = np.full((6, 8), -1000, np.int16)  # air, so that it reads as a CT in HU
    hu[0, :3] = 100  # an L in the top-left corner and one pixel bottom-right: no symmetry
    hu[:4, 0] = 100
    hu[5, 7] = 100
    image = sitk.GetImageFromArray(hu)
    image.SetSpacing((0.7, 0.8))
    image.SetMetaData("0008|0060", "CT")
    sitk.WriteImage(image, str(tmp_path / "slice.dcm"))
    dicom_pixels = pydicom.dcmread(tmp_path / "slice.dcm").pixel_array
    raw_tag(tmp_path / "slice.dcm.tag", "x:8 y:6 z:1 inc_x:0.7 inc_y:0.8 type:BYTE\r\n",
            (dicom_pixels == 100).astype(np.uint8).tobytes())

    ct = imaging.read_ct(tmp_path / "slice.dcm")
    mask = tag_mask_for_image(tmp_path / "slice.dcm.tag", ct)
    assert mask.dtype == bool
    assert np.array_equal(mask, sitk.GetArrayFromImage(ct) == 100)


def test_one_slice_tag_is_placed_on_its_ct_slice(tmp_path):
    ct = ct_volume()
    labels = np.zeros((6, 8), np.uint8)
    labels[2:4, 1:6] = 1
    labels[0, 0] = 2  # another tissue, not counted
    write_tag(tmp_path / "c3.tag", labels, ct[:, :, 3:4])
    mask = tag_mask_for_image(tmp_path / "c3.tag", ct)
    assert mask.shape == (5, 6, 8)
    assert np.array_equal(np.flatnonzero(mask.any(axis=(1, 2))), [3])
    assert np.array_equal(mask[3], labels == 1)


def test_tag_values_choose_the_muscle_labels(tmp_path):
    ct = ct_volume(size=(8, 6, 1))
    labels = np.zeros((1, 6, 8), np.uint8)
    labels[0, 1, :4], labels[0, 4, :] = 1, 7
    write_tag(tmp_path / "c3.tag", labels, ct)
    assert tag_mask_for_image(tmp_path / "c3.tag", ct, (1, 7)).sum() == 12
    with pytest.raises(InputError, match=r"no pixels labelled 3.*labels present: 1, 7"):
        tag_mask_for_image(tmp_path / "c3.tag", ct, (3,))


def test_tag_of_another_size_is_refused(tmp_path):
    write_tag(tmp_path / "other.tag", np.ones((1, 6, 7), np.uint8),
              ct_volume(size=(7, 6, 1)))
    with pytest.raises(InputError, match=r"7x6 pixels but the CT slices are 8x6"):
        tag_mask_for_image(tmp_path / "other.tag", ct_volume(size=(8, 6, 1)))


def test_tag_with_another_spacing_is_refused_beyond_one_percent(tmp_path):
    ct = ct_volume(size=(8, 6, 1))
    for factor, accepted in ((1.005, True), (1.02, False)):
        header = replace(header_for_image(ct), pixel_spacing_mm=(0.7 * factor, 0.8))
        write_tag(tmp_path / "c3.tag", np.ones((1, 6, 8), np.uint8), header)
        if accepted:
            assert tag_mask_for_image(tmp_path / "c3.tag", ct).all()
        else:
            with pytest.raises(InputError, match=r"pixel spacing of 0.714x0.8 mm but the CT "
                                                 r"has 0.7x0.8 mm"):
                tag_mask_for_image(tmp_path / "c3.tag", ct)


def test_one_slice_tag_outside_the_ct_is_refused(tmp_path):
    ct = ct_volume()
    header = replace(header_for_image(ct[:, :, 0:1]), origin_mm=(-10.0, -20.0, 300.0))
    write_tag(tmp_path / "c3.tag", np.ones((1, 6, 8), np.uint8), header)
    with pytest.raises(InputError, match=r"z = 300.0 mm, which is not a slice of this CT"):
        tag_mask_for_image(tmp_path / "c3.tag", ct)


def test_damaged_files_are_refused_clearly(tmp_path):
    raw_tag(tmp_path / "short.tag", "x:4 y:3 z:1\r\n", bytes(5))
    with pytest.raises(InputError, match=r"truncated.*4x3x1 labels.*5 bytes"):
        read_tag(tmp_path / "short.tag")
    (tmp_path / "no_header_end.tag").write_bytes(b"x:4 y:3 z:1\r\n" + bytes(12))
    with pytest.raises(InputError, match="not a sliceOmatic .tag file"):
        read_tag(tmp_path / "no_header_end.tag")
    raw_tag(tmp_path / "no_size.tag", "type:BYTE\r\n", bytes(12))
    with pytest.raises(InputError, match=r"no valid 'x:' size field"):
        read_tag(tmp_path / "no_size.tag")
