"""Geometry between Slicer and SimpleITK: volume nodes <-> LPS images, and slice positions.

Slicer stores geometry as IJK-to-RAS; the rest of C3SarcopeniaLib works in SimpleITK's LPS
space, so the conversion lives here.
"""

from __future__ import annotations

import numpy as np
import SimpleITK as sitk
import vtk
from vtk.util import numpy_support

from .. import imaging
from ..errors import InputError

_LPS_FROM_RAS = np.diag([-1.0, -1.0, 1.0])  # its own inverse: also RAS from LPS


def ijk_to_ras(image: sitk.Image) -> np.ndarray:
    """The 4x4 IJK-to-RAS matrix of a SimpleITK image (whose geometry is LPS)."""
    direction = np.array(image.GetDirection()).reshape(3, 3)
    matrix = np.eye(4)
    matrix[:3, :3] = _LPS_FROM_RAS @ direction @ np.diag(image.GetSpacing())
    matrix[:3, 3] = _LPS_FROM_RAS @ np.array(image.GetOrigin())
    return matrix


def volume_ijk_to_ras(volume_node) -> np.ndarray:
    matrix = vtk.vtkMatrix4x4()
    volume_node.GetIJKToRASMatrix(matrix)
    return numpy_matrix(matrix)


def numpy_matrix(matrix: vtk.vtkMatrix4x4) -> np.ndarray:
    return np.array([[matrix.GetElement(r, c) for c in range(4)] for r in range(4)])


def vtk_matrix(array: np.ndarray) -> vtk.vtkMatrix4x4:
    matrix = vtk.vtkMatrix4x4()
    for r in range(4):
        for c in range(4):
            matrix.SetElement(r, c, float(array[r, c]))
    return matrix


def voxels(volume_node) -> np.ndarray:
    """The volume's voxels as a (k, j, i) array: a view, so do not modify it."""
    image_data = volume_node.GetImageData() if volume_node is not None else None
    if image_data is None or image_data.GetPointData().GetScalars() is None:
        raise InputError("no CT volume is selected, or it holds no image: load a CT first.")
    if image_data.GetNumberOfScalarComponents() != 1:
        raise InputError(f"'{volume_node.GetName()}' is a colour or vector image, not a CT: "
                         "select a greyscale CT volume.")
    dims = image_data.GetDimensions()
    scalars = numpy_support.vtk_to_numpy(image_data.GetPointData().GetScalars())
    return scalars.reshape(dims[2], dims[1], dims[0])


def ct_from_volume_node(volume_node) -> sitk.Image:
    """The CT of a volume node as the float32 LPS image the pipeline expects.

    A volume under a transform is refused: the networks would see it untransformed while
    the user sees it moved, and the chosen slice would not be where it appears.
    """
    hu = voxels(volume_node)
    if volume_node.GetParentTransformNode() is not None:
        raise InputError(f"'{volume_node.GetName()}' is under a transform: harden the "
                         "transform (Data module, right-click the volume) or remove it first.")
    image = sitk.GetImageFromArray(hu.astype(np.float32))
    matrix = volume_ijk_to_ras(volume_node)
    axes_lps = _LPS_FROM_RAS @ matrix[:3, :3]
    spacing = np.linalg.norm(axes_lps, axis=0)
    image.SetSpacing(spacing.tolist())
    image.SetDirection((axes_lps / spacing).ravel().tolist())
    image.SetOrigin((_LPS_FROM_RAS @ matrix[:3, 3]).tolist())
    imaging.check_axial(image, f"'{volume_node.GetName()}'")
    return image


def set_volume_from_image(volume_node, image: sitk.Image) -> None:
    """Put a SimpleITK image (voxels and geometry) into a scalar volume node."""
    array = sitk.GetArrayFromImage(image)
    image_data = vtk.vtkImageData()
    image_data.SetDimensions(image.GetSize())
    vtk_array = numpy_support.numpy_to_vtk(np.ascontiguousarray(array).ravel(), deep=True)
    image_data.GetPointData().SetScalars(vtk_array)
    volume_node.SetIJKToRASMatrix(vtk_matrix(ijk_to_ras(image)))
    volume_node.SetAndObserveImageData(image_data)


def add_volume_node(scene, image: sitk.Image, name: str):
    """A new scalar volume node in the scene holding the image."""
    volume_node = scene.AddNewNodeByClass("vtkMRMLScalarVolumeNode", name)
    set_volume_from_image(volume_node, image)
    volume_node.CreateDefaultDisplayNodes()
    return volume_node


def slice_centre_ras(volume_node, slice_k: int) -> np.ndarray:
    """RAS position of the centre of slice k."""
    dims = volume_node.GetImageData().GetDimensions()
    centre = np.array([0.5 * (dims[0] - 1), 0.5 * (dims[1] - 1), float(slice_k), 1.0])
    return (volume_ijk_to_ras(volume_node) @ centre)[:3]


def slice_offset_mm(volume_node, slice_k: int) -> float:
    """Head-feet position (S, mm) of slice k: the axial view's slice offset, the same number
    as ``imaging.slice_z_mm`` (LPS and RAS share the S axis)."""
    return float(slice_centre_ras(volume_node, slice_k)[2])


def slice_count(volume_node) -> int:
    return int(volume_node.GetImageData().GetDimensions()[2])


def neighbour_slice_k(volume_node, slice_k: int, towards_head: bool) -> int:
    """The next slice towards the head (or the feet), whichever way the CT stores its slices;
    slice k itself at the end of the scan."""
    last = slice_count(volume_node) - 1
    head_step = 1 if slice_offset_mm(volume_node, last) > slice_offset_mm(volume_node, 0) else -1
    return int(np.clip(slice_k + (head_step if towards_head else -head_step), 0, last))


def show_slice(slice_node, volume_node, slice_k: int) -> None:
    """Move a slice view (usually the axial, Red) through the centre of slice k."""
    slice_node.JumpSliceByOffsetting(*slice_centre_ras(volume_node, slice_k))


def slice_k_shown(slice_node, volume_node) -> int:
    """The CT slice nearest the plane a slice view shows."""
    slice_to_ras = numpy_matrix(slice_node.GetSliceToRAS())
    normal, point = slice_to_ras[:3, 2], slice_to_ras[:3, 3]
    distances = [abs(float(normal @ (slice_centre_ras(volume_node, k) - point)))
                 for k in range(slice_count(volume_node))]
    return int(np.argmin(distances))
