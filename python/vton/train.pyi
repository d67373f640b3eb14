import os
from dataclasses import dataclass
from typing import Any, Callable, Dict, List, Mapping, Optional, Tuple, Union

import numpy as np
import numpy.typing as npt

PathLike = Union[str, os.PathLike[str]]
Weights = Union[PathLike, Mapping[str, Any], None]

class _Trainer:
    _kind: str
    _inner: Any
    _thread: int
    def _native(self) -> Any: ...
    def _build(self, weights: Weights, *, discriminator: Weights = None, vgg: Optional[PathLike] = None,
               device: str = "cpu", seed: int = 0, opts: Mapping[str, Any]) -> None: ...
    @property
    def kind(self) -> str: ...
    @property
    def device(self) -> str: ...
    @property
    def steps(self) -> int: ...
    @property
    def lr(self) -> float: ...
    def step(self, batch: Mapping[str, npt.NDArray[np.float32]]) -> Dict[str, float]: ...
    def state_dict(self) -> Dict[str, npt.NDArray[Any]]: ...
    def save(self, path: PathLike) -> str: ...
    def load(self, path: PathLike) -> str: ...

class GMMTrainer(_Trainer):
    def __init__(self, weights: Weights = None, *, device: str = "cpu", seed: int = 0, **opts: Any) -> None: ...

class TOMTrainer(_Trainer):
    def __init__(self, weights: Weights = None, *, vgg: PathLike, device: str = "cpu", seed: int = 0,
                 **opts: Any) -> None: ...

class ConditionGeneratorTrainer(_Trainer):
    def __init__(self, generator: Weights = None, discriminator: Weights = None, *, vgg: Optional[PathLike] = None,
                 device: str = "cpu", seed: int = 0, **opts: Any) -> None: ...
    def _model_name(self, which: str) -> str: ...
    def state_dict(self, which: str = "G") -> Dict[str, npt.NDArray[Any]]: ...  # type: ignore[override]

class UNetTrainer(_Trainer):
    def __init__(self, weights: PathLike, *, device: str = "cpu", seed: int = 0, **opts: Any) -> None: ...
    def step(self, batch: Mapping[str, npt.NDArray[Any]]) -> Dict[str, float]: ...

@dataclass(frozen=True)
class RunSummary:
    steps_done: int
    cancelled: bool
    last_checkpoint: Optional[str]
    skipped_samples: List[Tuple[str, str]]
    mean_step_seconds: float

def run(kind: str, data: PathLike, out: PathLike, *, steps: Optional[int] = None, batch_size: int = 4,
        save_every: int = 1000, val_every: int = 0, keep_checkpoints: int = 0, resume: bool = False,
        weights: Weights = None, vgg: Optional[PathLike] = None, discriminator: Weights = None, seed: int = 0,
        workers: int = 2, skip_bad_samples: bool = False, device: str = "cpu",
        callback: Optional[Callable[[Dict[str, Any]], Optional[bool]]] = None, **opts: Any) -> RunSummary: ...

__all__ = ["GMMTrainer", "TOMTrainer", "ConditionGeneratorTrainer", "UNetTrainer", "RunSummary", "run"]
