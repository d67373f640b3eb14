"""vton: virtual try-on on a Rust engine.

Images may be numpy arrays ((H, W, 3) uint8 or float in [0, 1]), PIL images or paths;
masks likewise ((H, W), white = inside). Results are float32 numpy arrays in [0, 1].
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any, Optional, Union

import numpy as np

from . import _vton
from .diffusion import (AutoencoderKL, CatVTONPipeline, DDIMScheduler, DDPMScheduler, DiagonalGaussianDistribution,
                        DPMSolverMultistepScheduler, InpaintTryOnPipeline, UNet2DConditionModel)
from .errors import (CancelledError, CheckpointError, InvalidInputError, UnsupportedError, VtonError,
                     VtonFileNotFoundError, VtonIOError, VtonRuntimeError)

__version__ = _vton.__version__
TpsGridGen = _vton.TpsGridGen

ImageLike = Union[np.ndarray, "os.PathLike[str]", str, Any]


def _load(x: Any, what: str, mode: str) -> np.ndarray:
    if isinstance(x, (str, os.PathLike)):
        path = os.fspath(x)
        if not os.path.exists(path):
            raise VtonFileNotFoundError(f"file not found: {path}")
        try:
            from PIL import Image
        except ImportError as e:  # pragma: no cover
            raise InvalidInputError(f"{what}: reading image files needs Pillow (pip install pillow)") from e
        try:
            with Image.open(path) as im:
                x = np.asarray(im.convert(mode))
        except OSError as e:
            raise InvalidInputError(f"{what}: cannot decode {path}: {e}") from e
    elif hasattr(x, "convert") and hasattr(x, "size"):  # PIL image
        x = np.asarray(x.convert(mode))
    arr = np.asarray(x)
    if arr.dtype == np.uint8:
        arr = arr.astype(np.float32) / 255.0
    elif arr.dtype == bool:
        arr = arr.astype(np.float32)
    elif np.issubdtype(arr.dtype, np.number):
        arr = arr.astype(np.float32)
    else:
        raise InvalidInputError(f"{what}: unsupported array dtype {arr.dtype}")
    if mode == "L" and arr.ndim == 3:
        arr = arr.mean(axis=2).astype(np.float32)
    return np.ascontiguousarray(arr)


def _load_parse(x: Any) -> np.ndarray:
    if isinstance(x, (str, os.PathLike)):
        path = os.fspath(x)
        if not os.path.exists(path):
            raise VtonFileNotFoundError(f"file not found: {path}")
        from PIL import Image
        with Image.open(path) as im:
            x = np.asarray(im)  # palette indices / grey values are the labels
    elif hasattr(x, "convert") and hasattr(x, "size"):
        x = np.asarray(x)
    return np.ascontiguousarray(np.asarray(x), dtype=np.float32)


def read_keypoints(path: Union[str, "os.PathLike[str]"], person: Optional[int] = None) -> np.ndarray:
    """Reads an OpenPose JSON (BODY_25 or COCO-18) as a (25, 3) BODY_25 array of (x, y, confidence).

    With several people, ``person`` picks one by index; by default the person whose
    keypoints span the largest box is used.
    """
    return _vton.read_keypoints(os.fspath(path), person)


@dataclass(frozen=True)
class TryOnResult:
    """Result of :func:`try_on`; every field is a float32 array in [0, 1]."""

    image: np.ndarray
    agnostic_mask: np.ndarray
    agnostic_image: np.ndarray
    warped_garment: np.ndarray
    warped_mask: np.ndarray
    garment_mask: np.ndarray


def try_on(person: ImageLike, garment: ImageLike, keypoints: Any, person_mask: Optional[ImageLike] = None,
           garment_mask: Optional[ImageLike] = None, parse: Optional[ImageLike] = None) -> TryOnResult:
    """Weight-free geometric try-on of an upper-body garment.

    ``keypoints`` is an OpenPose JSON path or a (25, 3) / (18, 3) array. A ``person_mask``
    or a LIP ``parse`` map is required; the garment mask is estimated when not given.
    """
    if isinstance(keypoints, (str, os.PathLike)):
        kp = read_keypoints(keypoints)
    else:
        kp = np.ascontiguousarray(np.asarray(keypoints, dtype=np.float32))
    out = _vton._try_on(
        _load(person, "person", "RGB"),
        _load(garment, "garment", "RGB"),
        kp,
        None if person_mask is None else _load(person_mask, "person_mask", "L"),
        None if garment_mask is None else _load(garment_mask, "garment_mask", "L"),
        None if parse is None else _load_parse(parse),
    )
    return TryOnResult(**out)


def grid_sample(input: np.ndarray, grid: np.ndarray, mode: str = "bilinear", padding_mode: str = "zeros",
                align_corners: bool = False) -> np.ndarray:
    """``torch.nn.functional.grid_sample`` on NCHW float32 arrays; grid is (N, H_out, W_out, 2) as (x, y)."""
    return _vton.grid_sample(np.ascontiguousarray(input, dtype=np.float32),
                             np.ascontiguousarray(grid, dtype=np.float32), mode, padding_mode, align_corners)


__all__ = ["try_on", "TryOnResult", "read_keypoints", "grid_sample", "TpsGridGen", "VtonError",
           "InvalidInputError", "VtonFileNotFoundError", "VtonIOError", "UnsupportedError", "VtonRuntimeError",
           "CheckpointError", "CancelledError", "AutoencoderKL", "DiagonalGaussianDistribution",
           "UNet2DConditionModel", "DDIMScheduler", "DDPMScheduler", "DPMSolverMultistepScheduler", "CatVTONPipeline",
           "InpaintTryOnPipeline", "__version__"]
