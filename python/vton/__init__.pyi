import os
from dataclasses import dataclass
from typing import Any, Optional, Union, final


import numpy as np
import numpy.typing as npt

from .diffusion import (AutoencoderKL as AutoencoderKL, CatVTONPipeline as CatVTONPipeline,
                        DDIMScheduler as DDIMScheduler, DDPMScheduler as DDPMScheduler,
                        DiagonalGaussianDistribution as DiagonalGaussianDistribution,
                        DPMSolverMultistepScheduler as DPMSolverMultistepScheduler,
                        InpaintTryOnPipeline as InpaintTryOnPipeline, UNet2DConditionModel as UNet2DConditionModel)
from .errors import (CancelledError as CancelledError, CheckpointError as CheckpointError,
                     InvalidInputError as InvalidInputError, UnsupportedError as UnsupportedError,
                     VtonError as VtonError, VtonFileNotFoundError as VtonFileNotFoundError,
                     VtonIOError as VtonIOError, VtonRuntimeError as VtonRuntimeError)

__version__: str
ImageLike = Union[npt.ArrayLike, str, os.PathLike[str], Any]

@dataclass(frozen=True)
class TryOnResult:
    image: npt.NDArray[np.float32]
    agnostic_mask: npt.NDArray[np.float32]
    agnostic_image: npt.NDArray[np.float32]
    warped_garment: npt.NDArray[np.float32]
    warped_mask: npt.NDArray[np.float32]
    garment_mask: npt.NDArray[np.float32]

@final
class TpsGridGen:
    def __new__(cls, height: int, width: int, grid_size: int = 5) -> TpsGridGen: ...
    @property
    def grid_size(self) -> int: ...
    def __call__(self, theta: npt.NDArray[np.float32]) -> npt.NDArray[np.float32]: ...

def read_keypoints(path: Union[str, os.PathLike[str]], person: Optional[int] = None) -> npt.NDArray[np.float32]: ...
def try_on(person: ImageLike, garment: ImageLike, keypoints: Any, person_mask: Optional[ImageLike] = None,
           garment_mask: Optional[ImageLike] = None, parse: Optional[ImageLike] = None) -> TryOnResult: ...
def grid_sample(input: npt.NDArray[np.float32], grid: npt.NDArray[np.float32], mode: str = "bilinear",
                padding_mode: str = "zeros", align_corners: bool = False) -> npt.NDArray[np.float32]: ...

__all__ = ["try_on", "TryOnResult", "read_keypoints", "grid_sample", "TpsGridGen", "VtonError",
           "InvalidInputError", "VtonFileNotFoundError", "VtonIOError", "UnsupportedError", "VtonRuntimeError",
           "CheckpointError", "CancelledError", "AutoencoderKL", "DiagonalGaussianDistribution",
           "UNet2DConditionModel", "DDIMScheduler", "DDPMScheduler", "DPMSolverMultistepScheduler", "CatVTONPipeline",
           "InpaintTryOnPipeline", "__version__"]
