"""Image readers: PNG/JPEG (8/16-bit), DICOM, NIfTI/NRRD -> :class:`LoadedImage` (float32 + spacing)."""

from radclr.io.image import LoadedImage
from radclr.io.readers import ImageConversionWarning, image_size, read_image, read_mask

__all__ = ["LoadedImage", "read_image", "image_size", "read_mask", "ImageConversionWarning"]
