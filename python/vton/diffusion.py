"""Latent diffusion with diffusers' names: models, schedulers and try-on pipelines.

Arrays are float32 numpy arrays in NCHW layout. Schedulers mirror diffusers' API:
``from_pretrained(path)``, ``from_config(dict)``, ``set_timesteps(n)``, ``timesteps``,
``step(model_output, timestep, sample, eta=0.0, variance_noise=None)`` returning the
previous sample, ``add_noise(original, noise, timesteps)``.

Models, pipelines and schedulers take a keyword ``device="cpu"`` (``"wgpu"``,
``"cuda[:N]"`` with a wheel built for them), keep it and compute there (``.device``).
"""
from __future__ import annotations

import json
import os
from typing import Any, Dict, Optional, Sequence, Union

import numpy as np

from . import _vton
from .errors import VtonFileNotFoundError

AutoencoderKL = _vton.AutoencoderKL
DiagonalGaussianDistribution = _vton.DiagonalGaussianDistribution
UNet2DConditionModel = _vton.UNet2DConditionModel
CatVTONPipeline = _vton.CatVTONPipeline
InpaintTryOnPipeline = _vton.InpaintTryOnPipeline


def _f32(a: Any) -> np.ndarray:
    return np.ascontiguousarray(np.asarray(a, dtype=np.float32))


def _find_scheduler_config(path: Union[str, "os.PathLike[str]"]) -> str:
    p = os.fspath(path)
    for c in (p, os.path.join(p, "scheduler_config.json"), os.path.join(p, "scheduler", "scheduler_config.json")):
        if os.path.isfile(c):
            return c
    raise VtonFileNotFoundError(f"file not found: {os.path.join(p, 'scheduler_config.json')}")


class _Scheduler:
    """Common implementation; subclasses fix the diffusers class name."""

    _class_name = ""

    def __init__(self, *, device: str = "cpu", **config: Any) -> None:
        cfg = dict(config)
        cfg["_class_name"] = self._class_name
        self.config: Dict[str, Any] = cfg
        self._inner = _vton._Scheduler(json.dumps(cfg), device=device)

    @classmethod
    def from_config(cls, config: Dict[str, Any], *, device: str = "cpu", **overrides: Any):
        """Builds from a diffusers config dict (unknown keys ignored, missing ones defaulted);
        the steps compute on ``device``."""
        cfg = {k: v for k, v in dict(config).items() if not k.startswith("_")}
        cfg.update(overrides)
        return cls(device=device, **cfg)

    @classmethod
    def from_pretrained(cls, path: Union[str, "os.PathLike[str]"], *, device: str = "cpu", **overrides: Any):
        """Reads ``scheduler_config.json`` (a file, its folder, or a pipeline folder)."""
        with open(_find_scheduler_config(path)) as f:
            return cls.from_config(json.load(f), device=device, **overrides)

    @property
    def device(self) -> str:
        """The device the steps compute on (canonical name)."""
        return str(self._inner.device)

    def set_timesteps(self, num_inference_steps: int) -> None:
        self._inner.set_timesteps(int(num_inference_steps))

    @property
    def timesteps(self) -> np.ndarray:
        return np.asarray(self._inner.timesteps(), dtype=np.int64)

    @property
    def init_noise_sigma(self) -> float:
        return float(self._inner.init_noise_sigma())

    def scale_model_input(self, sample: np.ndarray, timestep: Optional[int] = None) -> np.ndarray:
        return _f32(sample)

    def step(self, model_output: np.ndarray, timestep: int, sample: np.ndarray, eta: float = 0.0,
             variance_noise: Optional[np.ndarray] = None, seed: int = 0) -> np.ndarray:
        """One denoising step; returns the previous sample. Stochastic steps use
        ``variance_noise`` when given, else noise drawn from ``seed``."""
        vn = None if variance_noise is None else _f32(variance_noise)
        return self._inner.step(_f32(model_output), int(timestep), _f32(sample), float(eta), vn, int(seed))

    def add_noise(self, original_samples: np.ndarray, noise: np.ndarray,
                  timesteps: Union[int, Sequence[int], np.ndarray]) -> np.ndarray:
        ts = [int(t) for t in np.atleast_1d(np.asarray(timesteps))]
        return self._inner.add_noise(_f32(original_samples), _f32(noise), ts)

    def __repr__(self) -> str:
        return f"{self._class_name}({json.dumps({k: v for k, v in self.config.items() if k != '_class_name'})})"


class DDIMScheduler(_Scheduler):
    _class_name = "DDIMScheduler"


class DDPMScheduler(_Scheduler):
    _class_name = "DDPMScheduler"


class DPMSolverMultistepScheduler(_Scheduler):
    _class_name = "DPMSolverMultistepScheduler"


__all__ = ["AutoencoderKL", "DiagonalGaussianDistribution", "UNet2DConditionModel", "DDIMScheduler",
           "DDPMScheduler", "DPMSolverMultistepScheduler", "CatVTONPipeline", "InpaintTryOnPipeline"]
