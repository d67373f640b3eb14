import os
from dataclasses import dataclass
from typing import Any, Optional, Union, final


import numpy as np
import numpy.typing as npt

from . import metrics as metrics
from . import train as train
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
    def __new__(cls, height: int, width: int, grid_size: int = 5, *, device: str = "cpu") -> TpsGridGen: ...
    @property
    def device(self) -> str: ...
    @property
    def grid_size(self) -> int: ...
    def __call__(self, theta: npt.NDArray[np.float32]) -> npt.NDArray[np.float32]: ...

@final
class GMM:
    @staticmethod
    def from_checkpoint(path: Union[str, os.PathLike[str]], grid_size: int = 5, fine_height: int = 256,
                        fine_width: int = 192, *, device: str = "cpu") -> GMM: ...
    @property
    def device(self) -> str: ...
    def __call__(self, agnostic: npt.NDArray[np.float32],
                 cloth_mask: npt.NDArray[np.float32]) -> tuple[npt.NDArray[np.float32], npt.NDArray[np.float32]]: ...

@final
class TOM:
    @staticmethod
    def from_checkpoint(path: Union[str, os.PathLike[str]], input_nc: int = 26, output_nc: int = 4, num_downs: int = 6,
                        ngf: int = 64, norm_layer: str = "instance", *, device: str = "cpu") -> TOM: ...
    @property
    def device(self) -> str: ...
    def __call__(self, agnostic: npt.NDArray[np.float32], warped_cloth: npt.NDArray[np.float32],
                 warped_mask: npt.NDArray[np.float32]
                 ) -> tuple[npt.NDArray[np.float32], npt.NDArray[np.float32], npt.NDArray[np.float32]]: ...

@final
class ConditionGenerator:
    @staticmethod
    def from_checkpoint(path: Union[str, os.PathLike[str]], input1_nc: int = 4, input2_nc: int = 16,
                        output_nc: int = 13, ngf: int = 96, norm_layer: str = "batch", warp_feature: str = "T1",
                        out_layer: str = "relu", upsample: str = "bilinear", *,
                        device: str = "cpu") -> ConditionGenerator: ...
    @property
    def device(self) -> str: ...
    def __call__(self, input1: npt.NDArray[np.float32], input2: npt.NDArray[np.float32]
                 ) -> tuple[list[npt.NDArray[np.float32]], npt.NDArray[np.float32], npt.NDArray[np.float32],
                            npt.NDArray[np.float32]]: ...

@final
class HRVitonGenerator:
    @staticmethod
    def from_checkpoint(path: Union[str, os.PathLike[str]], input_nc: int = 9, ngf: int = 64,
                        norm_G: str = "spectralaliasinstance", num_upsampling_layers: str = "most",
                        gen_semantic_nc: int = 7, fine_height: int = 1024, fine_width: int = 768, *,
                        device: str = "cpu") -> HRVitonGenerator: ...
    @property
    def device(self) -> str: ...
    def __call__(self, x: npt.NDArray[np.float32], seg: npt.NDArray[np.float32],
                 seed: Optional[int] = 0) -> npt.NDArray[np.float32]: ...

@final
class DCIVITONWarping:
    @staticmethod
    def from_checkpoint(path: Union[str, os.PathLike[str]], oc: Optional[int] = None, *,
                        device: str = "cpu") -> DCIVITONWarping: ...
    @property
    def device(self) -> str: ...
    @property
    def oc(self) -> int: ...
    @property
    def input_1_channels(self) -> int: ...
    @property
    def input_2_channels(self) -> int: ...
    def __call__(self, input_1: npt.NDArray[np.float32], input_2: npt.NDArray[np.float32]
                 ) -> tuple[npt.NDArray[np.float32], npt.NDArray[np.float32], list[npt.NDArray[np.float32]]]: ...

@final
class DCIVITONUNet:
    @staticmethod
    def from_checkpoint(path: Union[str, os.PathLike[str]], input_channels: Optional[int] = None,
                        output_channels: Optional[int] = None, hidden_channels: Optional[int] = None,
                        time_emb_dim: Optional[int] = None, num_groups: int = 8, se_reduction: Optional[int] = None,
                        *, device: str = "cpu") -> DCIVITONUNet: ...
    @property
    def device(self) -> str: ...
    @property
    def input_channels(self) -> int: ...
    @property
    def output_channels(self) -> int: ...
    @property
    def hidden_channels(self) -> int: ...
    @property
    def time_emb_dim(self) -> int: ...
    @property
    def num_groups(self) -> int: ...
    @property
    def se_reduction(self) -> Optional[int]: ...
    def __call__(self, x: npt.NDArray[np.float32], t: Union[int, npt.ArrayLike]) -> npt.NDArray[np.float32]: ...

@final
class DCIVITONScheduler:
    def __new__(cls, timesteps: int = 1000, beta_schedule: str = "linear", *,
                device: str = "cpu") -> DCIVITONScheduler: ...
    @property
    def device(self) -> str: ...
    @property
    def timesteps(self) -> int: ...
    @property
    def beta_schedule(self) -> str: ...
    @property
    def betas(self) -> npt.NDArray[np.float32]: ...
    @property
    def alphas(self) -> npt.NDArray[np.float32]: ...
    @property
    def alphas_cumprod(self) -> npt.NDArray[np.float32]: ...
    @property
    def sqrt_alphas_cumprod(self) -> npt.NDArray[np.float32]: ...
    @property
    def sqrt_one_minus_alphas_cumprod(self) -> npt.NDArray[np.float32]: ...
    def get_noisy_image(self, x_0: npt.NDArray[np.float32], t: Union[int, npt.ArrayLike],
                        noise: Optional[npt.NDArray[np.float32]] = None, *, seed: int = 0
                        ) -> tuple[npt.NDArray[np.float32], npt.NDArray[np.float32]]: ...
    def denoise_image(self, x_t: npt.NDArray[np.float32], t: Union[int, npt.ArrayLike],
                      noise_unet: npt.NDArray[np.float32]) -> npt.NDArray[np.float32]: ...
    def sampling_timesteps(self, n: int) -> list[int]: ...

@dataclass(frozen=True)
class DCIVITONResult:
    image: npt.NDArray[np.float32]
    warped: npt.NDArray[np.float32]
    agnostic: npt.NDArray[np.float32]
    agnostic_mask: npt.NDArray[np.float32]
    parse_agnostic: npt.NDArray[np.uint8]

class DCIVITONPipeline:
    def __init__(self, inner: Any) -> None: ...
    @classmethod
    def from_checkpoints(cls, warping: Union[str, os.PathLike[str]], unet: Union[str, os.PathLike[str]],
                         vae: Union[str, os.PathLike[str]], *, num_groups: int = 8,
                         se_reduction: Optional[int] = None, device: str = "cpu") -> DCIVITONPipeline: ...
    @property
    def device(self) -> str: ...
    def __call__(self, person: ImageLike, garment: ImageLike, densepose: ImageLike, parse: Optional[ImageLike] = None,
                 keypoints: Any = None, garment_mask: Optional[ImageLike] = None, *,
                 parser: Optional[HumanParser] = None, steps: int = 200, seed: int = 0, warp_size: int = 256,
                 image_size: int = 512, sampler: str = "original", eta: float = 0.0,
                 progress: Optional[Any] = None) -> DCIVITONResult: ...
    def warp(self, input_1: npt.NDArray[np.float32], input_2: npt.NDArray[np.float32]
             ) -> tuple[npt.NDArray[np.float32], npt.NDArray[np.float32], list[npt.NDArray[np.float32]]]: ...
    def condition(self, composite: npt.NDArray[np.float32], image_size: int = 512,
                  noise: Optional[npt.NDArray[np.float32]] = None, seed: int = 0) -> npt.NDArray[np.float32]: ...
    def sample(self, z_cond: npt.NDArray[np.float32], mask: npt.NDArray[np.float32], noise: npt.NDArray[np.float32],
               steps: int = 200, sampler: str = "original", eta: float = 0.0, seed: int = 0,
               progress: Optional[Any] = None) -> npt.NDArray[np.float32]: ...

@dataclass(frozen=True)
class CPVTONResult:
    image: npt.NDArray[np.float32]
    warped_cloth: npt.NDArray[np.float32]
    warped_mask: npt.NDArray[np.float32]
    rendered: npt.NDArray[np.float32]
    composition_mask: npt.NDArray[np.float32]

class CPVTONPipeline:
    def __init__(self, inner: Any) -> None: ...
    @classmethod
    def from_checkpoints(cls, gmm_path: Union[str, os.PathLike[str]], tom_path: Union[str, os.PathLike[str]], *,
                         grid_size: int = 5, fine_height: int = 256, fine_width: int = 192, ngf: int = 64,
                         norm_layer: str = "instance", align_corners: bool = True, radius: int = 5,
                         device: str = "cpu") -> CPVTONPipeline: ...
    @property
    def device(self) -> str: ...
    def __call__(self, person: ImageLike, cloth: ImageLike, keypoints: Any, cloth_mask: ImageLike,
                 person_mask: Optional[ImageLike] = None, parse: Optional[ImageLike] = None) -> CPVTONResult: ...
    def run(self, agnostic_gmm: npt.NDArray[np.float32], agnostic_tom: npt.NDArray[np.float32],
            cloth: npt.NDArray[np.float32], cloth_mask: npt.NDArray[np.float32]) -> dict[str, npt.NDArray[np.float32]]: ...

@dataclass(frozen=True)
class HRVitonResult:
    image: npt.NDArray[np.float32]
    warped_cloth: npt.NDArray[np.float32]
    warped_mask: npt.NDArray[np.float32]

class HRVitonPipeline:
    def __init__(self, inner: Any) -> None: ...
    @classmethod
    def from_checkpoints(cls, tocg_path: Union[str, os.PathLike[str]], gen_path: Union[str, os.PathLike[str]], *,
                         tocg_ngf: int = 96, ngf: int = 64, fine_height: int = 1024, fine_width: int = 768,
                         norm_G: str = "spectralaliasinstance", num_upsampling_layers: str = "most",
                         occlusion: bool = True, device: str = "cpu") -> HRVitonPipeline: ...
    @property
    def device(self) -> str: ...
    @property
    def fine_size(self) -> tuple[int, int]: ...
    def __call__(self, cloth: ImageLike, cloth_mask: ImageLike, parse_agnostic: ImageLike, densepose: ImageLike,
                 agnostic: ImageLike, pose: Any = None, seed: Optional[int] = 0) -> HRVitonResult: ...
    def run(self, cloth: npt.NDArray[np.float32], cloth_mask: npt.NDArray[np.float32],
            parse_agnostic: npt.NDArray[np.float32], densepose: npt.NDArray[np.float32],
            agnostic: npt.NDArray[np.float32], seed: Optional[int] = 0) -> dict[str, npt.NDArray[np.float32]]: ...

def read_keypoints(path: Union[str, os.PathLike[str]], person: Optional[int] = None) -> npt.NDArray[np.float32]: ...
def try_on(person: ImageLike, garment: ImageLike, keypoints: Any = None, person_mask: Optional[ImageLike] = None,
           garment_mask: Optional[ImageLike] = None, parse: Optional[ImageLike] = None,
           parser: Optional[HumanParser] = None, *, device: str = "cpu") -> TryOnResult: ...
def compiled_backends() -> list[str]: ...

@final
class PoseEstimate:
    @property
    def landmarks(self) -> npt.NDArray[np.float32]: ...
    @property
    def keypoints(self) -> npt.NDArray[np.float32]: ...
    @property
    def mask(self) -> npt.NDArray[np.float32]: ...
    @property
    def score(self) -> float: ...
    @property
    def image_size(self) -> tuple[int, int]: ...

def estimate_pose(image: ImageLike, person: Optional[int] = None, *, device: str = "cpu") -> PoseEstimate: ...
def segment_person(image: ImageLike, landscape: bool = False, *, device: str = "cpu") -> npt.NDArray[np.float32]: ...

class TFLiteModel:
    def __init__(self, path: Union[str, os.PathLike[str]], *, device: str = "cpu") -> None: ...
    @property
    def device(self) -> str: ...
    @property
    def input_names(self) -> list[str]: ...
    @property
    def output_names(self) -> list[str]: ...
    @property
    def input_shapes(self) -> list[tuple[int, ...]]: ...
    @property
    def output_shapes(self) -> list[tuple[int, ...]]: ...
    def __call__(self, *inputs: npt.ArrayLike) -> dict[str, npt.NDArray[np.float32]]: ...

class HumanParser:
    def __init__(self, inner: Any) -> None: ...
    @classmethod
    def from_checkpoint(cls, path: Union[str, os.PathLike[str]], *, input_size: tuple[int, int] = (473, 473),
                        flip: bool = False, device: str = "cpu") -> HumanParser: ...
    @classmethod
    def from_pretrained(cls, path: Union[str, os.PathLike[str]], *, device: str = "cpu") -> HumanParser: ...
    @property
    def device(self) -> str: ...
    @property
    def num_labels(self) -> int: ...
    @property
    def input_size(self) -> tuple[int, int]: ...
    def __call__(self, image: ImageLike) -> npt.NDArray[np.uint8]: ...
def grid_sample(input: npt.NDArray[np.float32], grid: npt.NDArray[np.float32], mode: str = "bilinear",
                padding_mode: str = "zeros", align_corners: bool = False, *,
                device: str = "cpu") -> npt.NDArray[np.float32]: ...

__all__ = ["GMM", "TOM", "ConditionGenerator", "HRVitonGenerator", "CPVTONPipeline", "CPVTONResult",
           "HRVitonPipeline", "HRVitonResult", "try_on", "TryOnResult", "read_keypoints", "estimate_pose", "PoseEstimate",
           "segment_person", "TFLiteModel", "HumanParser", "grid_sample", "TpsGridGen", "VtonError",
           "InvalidInputError", "VtonFileNotFoundError", "VtonIOError", "UnsupportedError", "VtonRuntimeError",
           "CheckpointError", "CancelledError", "AutoencoderKL", "DiagonalGaussianDistribution",
           "UNet2DConditionModel", "DDIMScheduler", "DDPMScheduler", "DPMSolverMultistepScheduler", "CatVTONPipeline",
           "InpaintTryOnPipeline", "DCIVITONWarping", "DCIVITONUNet", "DCIVITONScheduler", "DCIVITONPipeline",
           "DCIVITONResult", "metrics", "train", "compiled_backends", "__version__"]
