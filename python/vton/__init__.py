"""vton: virtual try-on on a Rust engine.

Images may be numpy arrays ((H, W, 3) uint8 or float in [0, 1]), PIL images or paths;
masks likewise ((H, W), white = inside). Results are float32 numpy arrays in [0, 1].

Every model, pipeline and metric is loaded with a keyword ``device="cpu"`` (the names of
the CLI's ``--device``: ``"cpu"``, ``"wgpu"``, ``"wgpu:N"``, ``"cuda"``, ``"cuda:N"``), keeps
it and computes there; its ``device`` property gives the canonical name. The GPU
backends need a wheel built with ``--features wgpu`` / ``cuda``: see
:func:`compiled_backends`. An unknown name raises :class:`InvalidInputError`, a backend
this build lacks :class:`UnsupportedError`.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any, Optional, Union

import numpy as np

from . import _vton, metrics, train
from .diffusion import (AutoencoderKL, CatVTONPipeline, DDIMScheduler, DDPMScheduler, DiagonalGaussianDistribution,
                        DPMSolverMultistepScheduler, InpaintTryOnPipeline, UNet2DConditionModel)
from .errors import (CancelledError, CheckpointError, InvalidInputError, UnsupportedError, VtonError,
                     VtonFileNotFoundError, VtonIOError, VtonRuntimeError)

__version__ = _vton.__version__
TpsGridGen = _vton.TpsGridGen
GMM = _vton.GMM
TOM = _vton.TOM
ConditionGenerator = _vton.ConditionGenerator
HRVitonGenerator = _vton.HRVitonGenerator
DCIVITONWarping = _vton.DCIVITONWarping
DCIVITONUNet = _vton.DCIVITONUNet
DCIVITONScheduler = _vton.DCIVITONScheduler

ImageLike = Union[np.ndarray, "os.PathLike[str]", str, Any]


def compiled_backends() -> "list[str]":
    """The backends this build runs on: ``["cpu"]``, plus ``"wgpu"`` and / or ``"cuda"`` for
    a wheel built with those features (``maturin build --release --features cuda``)."""
    return list(_vton.compiled_backends())


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


def try_on(person: ImageLike, garment: ImageLike, keypoints: Any = None, person_mask: Optional[ImageLike] = None,
           garment_mask: Optional[ImageLike] = None, parse: Optional[ImageLike] = None,
           parser: Optional["HumanParser"] = None, *, device: str = "cpu") -> TryOnResult:
    """Weight-free geometric try-on of an upper-body garment.

    Only the two photos are required. ``keypoints`` is an OpenPose JSON path or a
    (25, 3) / (18, 3) array; the person mask is a grey image and ``parse`` a LIP label
    map. Whatever is not given is estimated: keypoints and the person mask with the
    bundled pose models (:func:`estimate_pose`, the largest person), the parse map with
    ``parser`` (a :class:`HumanParser`) when one is given; given inputs take precedence.
    The garment mask is estimated from the product photo when not given. ``device`` is
    where the warp and the pose models run (those are loaded once per device); the
    ``parser`` runs on its own device.
    """
    if parser is not None and not isinstance(parser, HumanParser):
        raise InvalidInputError(f"parser must be a vton.HumanParser, got {type(parser).__name__}")
    out = _vton._try_on(
        _load(person, "person", "RGB"),
        _load(garment, "garment", "RGB"),
        None if keypoints is None else _keypoints(keypoints),
        None if person_mask is None else _load(person_mask, "person_mask", "L"),
        None if garment_mask is None else _load(garment_mask, "garment_mask", "L"),
        None if parse is None else _load_parse(parse),
        None if parser is None else parser._inner,
        device=device,
    )
    return TryOnResult(**out)


PoseEstimate = _vton.PoseEstimate


def estimate_pose(image: ImageLike, person: Optional[int] = None, *, device: str = "cpu") -> "PoseEstimate":
    """Estimates one person's pose with the bundled MediaPipe Pose models (loaded once).

    Returns a :class:`PoseEstimate`: ``landmarks`` (33, 5) float32 (x, y in pixels, z,
    visibility, presence), ``keypoints`` (25, 3) OpenPose BODY_25 (x, y in pixels,
    confidence; 0 = missing) and ``mask`` (H, W) float32 person probability in [0, 1].
    ``person=None`` picks the largest person, an int that index of the detections (best
    score first). No person: :class:`InvalidInputError`. The models run on ``device``
    (loaded once per device).
    """
    return _vton.estimate_pose(_load(image, "image", "RGB"), person, device=device)


def segment_person(image: ImageLike, landscape: bool = False, *, device: str = "cpu") -> np.ndarray:
    """MediaPipe selfie segmentation: (H, W) float32 person probability in [0, 1].

    ``landscape=True`` uses the 256x144 landscape model (model_selection 1); the model
    runs on ``device`` (loaded once per device).
    """
    return _vton.segment_person(_load(image, "image", "RGB"), bool(landscape), device=device)


class TFLiteModel:
    """A ``.tflite`` model run by vton's interpreter (MediaPipe's float operator set).

    ``model(*inputs)`` takes one NHWC float32 array per input (the declared shapes) and
    returns a dict of output name to float32 array. The graph runs on ``device``.
    """

    def __init__(self, path: Union[str, "os.PathLike[str]"], *, device: str = "cpu") -> None:
        self._inner = _vton._TFLiteModel(os.fspath(path), device=device)

    @property
    def device(self) -> str:
        """The device the graph runs on (canonical name, e.g. ``"cpu"``, ``"cuda:0"``)."""
        return str(self._inner.device)

    @property
    def input_names(self) -> "list[str]":
        return list(self._inner.input_names)

    @property
    def output_names(self) -> "list[str]":
        return list(self._inner.output_names)

    @property
    def input_shapes(self) -> "list[tuple[int, ...]]":
        return [tuple(s) for s in self._inner.input_shapes]

    @property
    def output_shapes(self) -> "list[tuple[int, ...]]":
        return [tuple(s) for s in self._inner.output_shapes]

    def __call__(self, *inputs: Any) -> "dict[str, np.ndarray]":
        arrays = []
        for i, x in enumerate(inputs):
            try:
                arrays.append(np.ascontiguousarray(x, dtype=np.float32))
            except (TypeError, ValueError) as e:
                raise InvalidInputError(f"input {i}: not convertible to a float32 array: {e}") from e
        return dict(self._inner.run(arrays))

    def __repr__(self) -> str:
        return f"TFLiteModel(inputs={self.input_names}, outputs={self.output_names})"


class HumanParser:
    """Human parsing of a person photo: SCHP (``simple_extractor.py``'s procedure, 20 LIP
    labels) or SegFormer (DCI-VITON's ``parsehuman.py``, the checkpoint's labels).

    Load SCHP with :meth:`from_checkpoint` (the released ``exp-schp-201908261155-lip.pth``
    or a file with the same keys), SegFormer with :meth:`from_pretrained` (a Hugging Face
    folder such as ``segformer-b2-human-parse-24``); ``parser(image)`` returns the (H, W)
    uint8 label map in the model's own label set. Pipelines given a ``parser`` map the
    SegFormer human-parse-24 labels to LIP themselves.
    """

    def __init__(self, inner: Any) -> None:
        self._inner = inner

    @classmethod
    def from_checkpoint(cls, path: Union[str, "os.PathLike[str]"], *, input_size: "tuple[int, int]" = (473, 473),
                        flip: bool = False, device: str = "cpu") -> "HumanParser":
        """``input_size`` is the network's (height, width) (LIP: 473x473); ``flip`` averages
        with the mirrored image as SCHP's evaluate.py does; ``device``: where the network
        is loaded and runs."""
        try:
            h, w = (int(v) for v in input_size)
        except (TypeError, ValueError) as e:
            raise InvalidInputError(f"input_size must be (height, width), got {input_size!r}") from e
        return cls(_vton._HumanParser.from_checkpoint(os.fspath(path), h, w, bool(flip), device=device))

    @classmethod
    def from_pretrained(cls, path: Union[str, "os.PathLike[str]"], *, device: str = "cpu") -> "HumanParser":
        """A SegFormer folder (``config.json``, ``model.safetensors`` or ``pytorch_model.bin``,
        optional ``preprocessor_config.json``); the input size is the processor's.
        ``device``: where the network is loaded and runs."""
        return cls(_vton._HumanParser.from_pretrained(os.fspath(path), device=device))

    @property
    def device(self) -> str:
        """The device the network runs on (canonical name)."""
        return str(self._inner.device)

    @property
    def num_labels(self) -> int:
        return int(self._inner.num_labels)

    @property
    def input_size(self) -> "tuple[int, int]":
        return tuple(self._inner.input_size)  # type: ignore[return-value]

    def __call__(self, image: ImageLike) -> np.ndarray:
        return self._inner.parse(_load(image, "image", "RGB"))


def grid_sample(input: np.ndarray, grid: np.ndarray, mode: str = "bilinear", padding_mode: str = "zeros",
                align_corners: bool = False, *, device: str = "cpu") -> np.ndarray:
    """``torch.nn.functional.grid_sample`` on NCHW float32 arrays; grid is (N, H_out, W_out, 2) as (x, y).
    Computed on ``device``."""
    return _vton.grid_sample(np.ascontiguousarray(input, dtype=np.float32),
                             np.ascontiguousarray(grid, dtype=np.float32), mode, padding_mode, align_corners,
                             device=device)


def _keypoints(keypoints: Any) -> np.ndarray:
    if isinstance(keypoints, (str, os.PathLike)):
        return read_keypoints(keypoints)
    return np.ascontiguousarray(np.asarray(keypoints, dtype=np.float32))


@dataclass(frozen=True)
class CPVTONResult:
    """Result of :class:`CPVTONPipeline` at the model's fine size; float32 arrays in [0, 1]."""

    image: np.ndarray
    warped_cloth: np.ndarray
    warped_mask: np.ndarray
    rendered: np.ndarray
    composition_mask: np.ndarray


class CPVTONPipeline:
    """CP-VTON+ end to end: GMM (TPS warp) then TOM (rendering and composition).

    Load with :meth:`from_checkpoints` from ``gmm_final.pth`` and ``tom_final.pth``.
    ``align_corners=True`` reproduces the torch 0.4.1 sampling the released checkpoints
    were trained with; ``False`` is what the repository computes on torch >= 1.3.
    """

    def __init__(self, inner: Any) -> None:
        self._inner = inner

    @classmethod
    def from_checkpoints(cls, gmm_path: Union[str, "os.PathLike[str]"], tom_path: Union[str, "os.PathLike[str]"], *,
                         grid_size: int = 5, fine_height: int = 256, fine_width: int = 192, ngf: int = 64,
                         norm_layer: str = "instance", align_corners: bool = True,
                         radius: int = 5, device: str = "cpu") -> "CPVTONPipeline":
        """Loads both networks onto ``device``, where every call then computes."""
        return cls(_vton._CPVTONPipeline.from_checkpoints(os.fspath(gmm_path), os.fspath(tom_path), grid_size,
                                                         fine_height, fine_width, ngf, norm_layer, align_corners,
                                                         radius, device=device))

    @property
    def device(self) -> str:
        """The device the networks are on (canonical name)."""
        return str(self._inner.device)

    def __call__(self, person: ImageLike, cloth: ImageLike, keypoints: Any, cloth_mask: ImageLike,
                 person_mask: Optional[ImageLike] = None, parse: Optional[ImageLike] = None) -> CPVTONResult:
        """Try-on on a photo: keypoints (OpenPose JSON or (25, 3) array), a person mask or
        a LIP parse map (the parse gives the original's head regions), garment and mask."""
        out = self._inner.try_on(_load(person, "person", "RGB"), _keypoints(keypoints), _load(cloth, "cloth", "RGB"),
                                 _load(cloth_mask, "cloth_mask", "L"),
                                 None if person_mask is None else _load(person_mask, "person_mask", "L"),
                                 None if parse is None else _load_parse(parse))
        return CPVTONResult(**out)

    def run(self, agnostic_gmm: np.ndarray, agnostic_tom: np.ndarray, cloth: np.ndarray,
            cloth_mask: np.ndarray) -> "dict[str, np.ndarray]":
        """The chain on NCHW float32 tensors (agnostics (N, 22, H, W), cloth in [-1, 1], mask in {0, 1})."""
        f = lambda a: np.ascontiguousarray(a, dtype=np.float32)  # noqa: E731
        return dict(self._inner.run(f(agnostic_gmm), f(agnostic_tom), f(cloth), f(cloth_mask)))


@dataclass(frozen=True)
class HRVitonResult:
    """Result of :class:`HRVitonPipeline` at the fine size; float32 arrays in [0, 1]."""

    image: np.ndarray
    warped_cloth: np.ndarray
    warped_mask: np.ndarray


class HRVitonPipeline:
    """HR-VITON end to end, as its test_generator.py: condition generator at 256x192,
    parse composition and blur, full-resolution flow warp, occlusion handling, generator.

    Load with :meth:`from_checkpoints` from ``mtviton.pth`` and ``gen.pth``.
    """

    def __init__(self, inner: Any) -> None:
        self._inner = inner

    @classmethod
    def from_checkpoints(cls, tocg_path: Union[str, "os.PathLike[str]"], gen_path: Union[str, "os.PathLike[str]"],
                         *, tocg_ngf: int = 96, ngf: int = 64, fine_height: int = 1024, fine_width: int = 768,
                         norm_G: str = "spectralaliasinstance", num_upsampling_layers: str = "most",
                         occlusion: bool = True, device: str = "cpu") -> "HRVitonPipeline":
        """Loads both networks onto ``device``, where every call then computes."""
        return cls(_vton._HRVitonPipeline.from_checkpoints(os.fspath(tocg_path), os.fspath(gen_path), tocg_ngf, ngf,
                                                          fine_height, fine_width, norm_G, num_upsampling_layers,
                                                          occlusion, device=device))

    @property
    def device(self) -> str:
        """The device the networks are on (canonical name)."""
        return str(self._inner.device)

    @property
    def fine_size(self) -> "tuple[int, int]":
        return tuple(self._inner.fine_size)  # type: ignore[return-value]

    def __call__(self, cloth: ImageLike, cloth_mask: ImageLike, parse_agnostic: ImageLike, densepose: ImageLike,
                 agnostic: ImageLike, pose: Any = None, seed: Optional[int] = 0) -> HRVitonResult:
        """Try-on from HR-VITON's documented inputs (images, paths or arrays); ``parse_agnostic``
        is a LIP label map. ``pose`` is accepted for symmetry with the dataset and unused by
        the networks, as in the original. ``seed`` drives the generator's noise (None: none)."""
        out = self._inner.try_on(_load(cloth, "cloth", "RGB"), _load(cloth_mask, "cloth_mask", "L"),
                                 _load_parse(parse_agnostic), _load(densepose, "densepose", "RGB"),
                                 _load(agnostic, "agnostic", "RGB"), seed)
        return HRVitonResult(**out)

    def run(self, cloth: np.ndarray, cloth_mask: np.ndarray, parse_agnostic: np.ndarray, densepose: np.ndarray,
            agnostic: np.ndarray, seed: Optional[int] = 0) -> "dict[str, np.ndarray]":
        """The test procedure on NCHW float32 tensors at the fine size (13-channel one-hot parse)."""
        f = lambda a: np.ascontiguousarray(a, dtype=np.float32)  # noqa: E731
        return dict(self._inner.run(f(cloth), f(cloth_mask), f(parse_agnostic), f(densepose), f(agnostic), seed))


@dataclass(frozen=True)
class DCIVITONResult:
    """Result of :class:`DCIVITONPipeline`; float32 arrays in [0, 1] but ``parse_agnostic``.

    ``image``: the try-on, ``image_size`` square; ``warped``: the warped garment pasted
    into the agnostic image, ``warp_size`` square; ``agnostic``, ``agnostic_mask`` and
    ``parse_agnostic`` (uint8 LIP labels) on the photo's grid."""

    image: np.ndarray
    warped: np.ndarray
    agnostic: np.ndarray
    agnostic_mask: np.ndarray
    parse_agnostic: np.ndarray


class DCIVITONPipeline:
    """DanMenCas/DCI-VITON end to end, as its ``viton_pipeline.py`` composes it: the
    agnostic drawing, the flow-warping network at ``warp_size``, the warped garment pasted
    into the agnostic image, VAE conditioning and the diffusion U-Net's sampling loop.

    Load with :meth:`from_checkpoints` from the two ``torch.save`` checkpoints and a Stable
    Diffusion VAE folder.
    """

    def __init__(self, inner: Any) -> None:
        self._inner = inner

    @classmethod
    def from_checkpoints(cls, warping: Union[str, "os.PathLike[str]"], unet: Union[str, "os.PathLike[str]"],
                         vae: Union[str, "os.PathLike[str]"], *, num_groups: int = 8,
                         se_reduction: Optional[int] = None, device: str = "cpu") -> "DCIVITONPipeline":
        """``num_groups``: the U-Net's GroupNorm groups (the original's 8; not in the
        checkpoint); ``se_reduction``: read from the weights when None. Widths come from
        the checkpoints. Every network is loaded onto ``device``."""
        return cls(_vton._DCIVITONPipeline.from_checkpoints(os.fspath(warping), os.fspath(unet), os.fspath(vae),
                                                           num_groups, se_reduction, device=device))

    @property
    def device(self) -> str:
        """The device the networks are on (canonical name)."""
        return str(self._inner.device)

    def __call__(self, person: ImageLike, garment: ImageLike, densepose: ImageLike, parse: Optional[ImageLike] = None,
                 keypoints: Any = None, garment_mask: Optional[ImageLike] = None, *,
                 parser: Optional["HumanParser"] = None, steps: int = 200, seed: int = 0, warp_size: int = 256,
                 image_size: int = 512, sampler: str = "original", eta: float = 0.0,
                 progress: Optional[Any] = None) -> DCIVITONResult:
        """Try-on from a person photo, a garment photo and the person's DensePose drawing
        (always the caller's). ``parse`` is a LIP label map of the photo, estimated with
        ``parser`` (a :class:`HumanParser`) when not given; ``keypoints`` an OpenPose JSON or
        a (25, 3) / (18, 3) array, estimated with the bundled pose models when not given;
        the garment mask is estimated from the product photo when not given.

        ``steps`` sampler steps (the original: 200) with ``sampler`` ``"original"`` (the
        repository's loop), ``"ddim"`` (``eta``) or ``"dpm"``; ``seed`` drives the VAE
        posterior sample and the start noise. ``progress(step, total, timestep)`` is called
        after every step; returning ``False`` cancels (:class:`CancelledError`)."""
        if parser is not None and not isinstance(parser, HumanParser):
            raise InvalidInputError(f"parser must be a vton.HumanParser, got {type(parser).__name__}")
        out = self._inner.try_on(
            _load(person, "person", "RGB"), _load(garment, "garment", "RGB"), _load(densepose, "densepose", "RGB"),
            None if parse is None else _load_parse(parse), None if keypoints is None else _keypoints(keypoints),
            None if garment_mask is None else _load(garment_mask, "garment_mask", "L"),
            None if parser is None else parser._inner, steps, seed, warp_size, image_size, sampler, eta, progress)
        return DCIVITONResult(**out)

    def warp(self, input_1: np.ndarray, input_2: np.ndarray) -> "tuple[np.ndarray, np.ndarray, list[np.ndarray]]":
        """The warping network on NCHW tensors: ``input_1 = cat(cloth, cloth_mask)``, ``input_2 =
        cat(densepose, parse_agnostic * 15)`` -> ``(warped_c, warped_cm, flow_list)``."""
        f = lambda a: np.ascontiguousarray(a, dtype=np.float32)  # noqa: E731
        wc, wcm, flows = self._inner.warp(f(input_1), f(input_2))
        return wc, wcm, list(flows)

    def condition(self, composite: np.ndarray, image_size: int = 512, noise: Optional[np.ndarray] = None,
                  seed: int = 0) -> np.ndarray:
        """``z_cond`` of a composite (1, 3, S, S) in [0, 1]: resized to ``image_size``, VAE
        posterior sample (``noise``, or drawn with ``seed``) times 0.18215."""
        n = None if noise is None else np.ascontiguousarray(noise, dtype=np.float32)
        return self._inner.condition(np.ascontiguousarray(composite, dtype=np.float32), image_size, n, seed)

    def sample(self, z_cond: np.ndarray, mask: np.ndarray, noise: np.ndarray, steps: int = 200,
               sampler: str = "original", eta: float = 0.0, seed: int = 0,
               progress: Optional[Any] = None) -> np.ndarray:
        """The sampling loop from ``z_cond`` noised with ``noise`` to the first timestep, with the
        latent-size mask in [-1, 1]; the last ``x0`` decoded, clamped to [-1, 1]."""
        f = lambda a: np.ascontiguousarray(a, dtype=np.float32)  # noqa: E731
        return self._inner.sample(f(z_cond), f(mask), f(noise), steps, sampler, eta, seed, progress)


__all__ = ["GMM", "TOM", "ConditionGenerator", "HRVitonGenerator", "CPVTONPipeline", "CPVTONResult",
           "HRVitonPipeline", "HRVitonResult", "try_on", "TryOnResult", "read_keypoints", "estimate_pose", "PoseEstimate",
           "segment_person", "TFLiteModel", "HumanParser", "grid_sample", "TpsGridGen", "VtonError",
           "InvalidInputError", "VtonFileNotFoundError", "VtonIOError", "UnsupportedError", "VtonRuntimeError",
           "CheckpointError", "CancelledError", "AutoencoderKL", "DiagonalGaussianDistribution",
           "UNet2DConditionModel", "DDIMScheduler", "DDPMScheduler", "DPMSolverMultistepScheduler", "CatVTONPipeline",
           "InpaintTryOnPipeline", "DCIVITONWarping", "DCIVITONUNet", "DCIVITONScheduler", "DCIVITONPipeline",
           "DCIVITONResult", "metrics", "train", "compiled_backends", "__version__"]
