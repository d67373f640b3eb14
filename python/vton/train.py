"""Training the original scripts' models from a notebook: CP-VTON+ GMM and TOM
(``train.py``), HR-VITON's condition generator with its discriminator
(``train_condition.py``) and a diffusers U-Net (``train_text_to_image.py`` / CatVTON).

A trainer is stepped by hand::

    t = vton.train.GMMTrainer(None, fine_height=128, fine_width=96, grid_size=3, ngf=4)
    losses = t.step(batch)          # {"Lwarp": ..., "Lgic": ..., "total": ...}
    t.save("runs/gmm")              # runs/gmm/checkpoints/step_<t.steps>/
    t.load("runs/gmm")              # continues exactly where it was saved

or :func:`run` drives the whole loop over a dataset folder (``vton train``'s loop).

Options are the original scripts' own names (``lr``, ``keep_step``, ``decay_step``,
``fine_height``, ``grid_size``, ``ngf``, ...), passed as keyword arguments; a name the
trainer does not know raises :class:`~vton.errors.InvalidInputError`. Batches are dicts
of float32 NCHW numpy arrays under the keys the original dataset class returns. Weights
are a checkpoint path or a dict of arrays under the original keys (``state_dict()``'s
form; torch tensors on the CPU work too). Bad input raises the exceptions of
:mod:`vton.errors`.
"""
from __future__ import annotations

import json
import os
import threading
from dataclasses import dataclass
from typing import Any, Callable, Dict, List, Mapping, Optional, Tuple, Union

import numpy as np

from . import _vton
from .errors import InvalidInputError, VtonRuntimeError

PathLike = Union[str, "os.PathLike[str]"]
Weights = Union[PathLike, Mapping[str, Any], None]

_KINDS = ("gmm", "tom", "tocg", "unet")


def _option_value(name: str, v: Any) -> Any:
    """An option as a JSON value: bool, int, float, str or a list of them."""
    if isinstance(v, np.generic):
        v = v.item()
    if isinstance(v, np.ndarray):
        v = v.tolist()
    if isinstance(v, (bool, int, float, str)):
        return v
    if isinstance(v, (list, tuple)):
        return [_option_value(name, x) for x in v]
    raise InvalidInputError(f"option {name}: {v!r} is not a bool, number, string or list of them")


def _options_json(opts: Mapping[str, Any]) -> str:
    """The options as one JSON object (None values are left out: the default applies)."""
    return json.dumps({k: _option_value(k, v) for k, v in opts.items() if v is not None})


def _weights(w: Weights, what: str) -> Tuple[Optional[str], Optional[Dict[str, np.ndarray]]]:
    """(path, None), (None, dict of float32 arrays) or (None, None)."""
    if w is None:
        return None, None
    if isinstance(w, (str, os.PathLike)):
        return os.fspath(w), None
    if isinstance(w, Mapping):
        out: Dict[str, np.ndarray] = {}
        for k, v in w.items():
            if not isinstance(k, str):
                raise InvalidInputError(f"{what}: keys must be strings, got {k!r}")
            try:
                out[k] = np.ascontiguousarray(np.asarray(v), dtype=np.float32)
            except (TypeError, ValueError) as e:
                raise InvalidInputError(f"{what}[{k!r}]: not convertible to a float32 array: {e}") from e
        return None, out
    raise InvalidInputError(f"{what} must be a path, a dict of arrays or None, got {type(w).__name__}")


def _path(p: Optional[PathLike], what: str) -> Optional[str]:
    if p is None:
        return None
    if not isinstance(p, (str, os.PathLike)):
        raise InvalidInputError(f"{what} must be a path, got {type(p).__name__}")
    return os.fspath(p)


def _batch(batch: Mapping[str, Any]) -> Dict[str, Any]:
    if not isinstance(batch, Mapping):
        raise InvalidInputError(f"batch must be a dict of float32 arrays, got {type(batch).__name__}")
    out: Dict[str, Any] = {}
    for k, v in batch.items():
        if not isinstance(v, np.ndarray):
            raise InvalidInputError(f"batch[{k!r}] must be a float32 numpy array, got {type(v).__name__}")
        out[k] = v
    return out


class _Trainer:
    """Common implementation; subclasses fix the kind and the constructor's arguments."""

    _kind = ""

    def _build(self, weights: Weights, *, discriminator: Weights = None, vgg: Optional[PathLike] = None,
               device: str = "cpu", seed: int = 0, opts: Mapping[str, Any]) -> None:
        wp, wd = _weights(weights, "weights")
        dp, dd = _weights(discriminator, "discriminator")
        self._thread = threading.get_ident()
        self._inner = _vton._Trainer(self._kind, wp, wd, dp, dd, _path(vgg, "vgg"), _options_json(opts),
                                     int(seed), str(device))

    def _native(self) -> Any:
        """The native trainer, which only the thread that made it may use."""
        if threading.get_ident() != self._thread:
            raise VtonRuntimeError(f"{type(self).__name__} is used from another thread than the one that made it "
                                   "(a trainer stays on its thread; make one per thread)")
        return self._inner

    @property
    def kind(self) -> str:
        """``gmm``, ``tom``, ``tocg`` or ``unet``."""
        return str(self._native().kind)

    @property
    def device(self) -> str:
        """The device the trainer computes on (canonical name, e.g. ``"cpu"``, ``"cuda:0"``)."""
        return str(self._native().device)

    @property
    def steps(self) -> int:
        """Optimiser steps done so far."""
        return int(self._native().steps)

    @property
    def lr(self) -> float:
        """The learning rate the next step uses (the original schedule)."""
        return float(self._native().lr)

    def step(self, batch: Mapping[str, np.ndarray]) -> Dict[str, float]:
        """One optimiser step (every optimiser of the method) on a batch; returns every
        loss term by the name the original script gives it."""
        return dict(self._native().step(_batch(batch)))

    def state_dict(self) -> Dict[str, np.ndarray]:
        """The model's state dict under the original keys (PyTorch layout, float32;
        BatchNorm ``num_batches_tracked`` int64)."""
        return dict(self._native().state_dict(None))

    def save(self, path: PathLike) -> str:
        """Saves everything a resume needs (weights, optimiser moments, step, options) into
        the run folder ``path`` as ``path/checkpoints/step_<steps>/`` (``state.json``,
        ``<model>.safetensors`` and ``.pth``, ``optimizer.safetensors``), the layout
        ``vton train --out path`` writes; returns the checkpoint folder."""
        return os.fspath(self._native().save(os.fspath(path)))

    def load(self, path: PathLike) -> str:
        """Restores a checkpoint folder (one with ``state.json``) or a run folder's newest
        complete checkpoint, so that stepping continues exactly as if never stopped;
        returns the folder read."""
        return os.fspath(self._native().load(os.fspath(path)))

    def __repr__(self) -> str:
        if "_inner" not in self.__dict__ or threading.get_ident() != self._thread:
            return f"<{type(self).__name__}>"
        return f"{type(self).__name__}(steps={self.steps}, lr={self.lr:g})"


class GMMTrainer(_Trainer):
    """CP-VTON+ GMM (``train.py --stage GMM``): Adam (0.5, 0.999), L1 warp loss plus the
    grid-interval consistency term, linear LR decay after ``keep_step``.

    ``weights``: a GMM checkpoint or state dict (``gmm_final.pth`` keys); None starts from
    the original initialisation (seeded). Batch keys: ``agnostic``, ``cloth``,
    ``cloth_mask``, ``parse_cloth``. Options include ``fine_height``, ``fine_width``,
    ``grid_size``, ``ngf``, ``lr``, ``keep_step``, ``decay_step``, ``gic_weight``.
    """

    _kind = "gmm"

    def __init__(self, weights: Weights = None, *, device: str = "cpu", seed: int = 0, **opts: Any) -> None:
        self._build(weights, device=device, seed=seed, opts=opts)


class TOMTrainer(_Trainer):
    """CP-VTON+ TOM (``train.py --stage TOM``): L1 + VGG perceptual + mask loss.

    ``vgg``: torchvision's ``vgg19-*.pth`` (``features.<i>.*`` keys). ``weights``: a TOM
    checkpoint or state dict, or None (original initialisation). Batch keys:
    ``agnostic``, ``cloth``, ``cloth_mask``, ``image``, ``parse_cloth_mask``.
    """

    _kind = "tom"

    def __init__(self, weights: Weights = None, *, vgg: PathLike, device: str = "cpu", seed: int = 0,
                 **opts: Any) -> None:
        self._build(weights, vgg=vgg, device=device, seed=seed, opts=opts)


class ConditionGeneratorTrainer(_Trainer):
    """HR-VITON's condition generator with its multi-scale discriminator
    (``train_condition.py``): two Adam optimisers stepped in the script's order.

    ``generator`` / ``discriminator``: checkpoints or state dicts under the original keys;
    either omitted starts from ``train_condition.py``'s initialisation (options ``ngf``,
    default 96, and ``ndf``, default 64; ``seed``). ``vgg``: torchvision's VGG19. Batch keys: HR-VITON's dataset keys
    ``cloth``, ``cloth_mask``, ``parse_agnostic``, ``densepose``, ``parse_onehot``,
    ``parse``, ``pcm``, ``parse_cloth``. Options: ``train_condition.py``'s (``G_lr``,
    ``D_lr``, ``CElamda``, ``Ddownx2``, ``num_D``, ...). ``state_dict("G")`` is the
    generator's, ``state_dict("D")`` the discriminator's.
    """

    _kind = "tocg"

    def __init__(self, generator: Weights = None, discriminator: Weights = None, *, vgg: Optional[PathLike] = None,
                 device: str = "cpu", seed: int = 0, **opts: Any) -> None:
        self._build(generator, discriminator=discriminator, vgg=vgg, device=device, seed=seed, opts=opts)

    def _model_name(self, which: str) -> str:
        names = list(self._native().model_names())
        w = which.upper()
        if w not in ("G", "D"):
            raise InvalidInputError(f"which must be 'G' or 'D', got {which!r}")
        for n in names:
            low = n.lower()
            is_d = low in ("d", "discriminator", "netd") or low.startswith("disc")
            if (w == "D") == is_d:
                return n
        raise InvalidInputError(f"this trainer's state has no {which} model (it has {', '.join(names)})")

    def state_dict(self, which: str = "G") -> Dict[str, np.ndarray]:  # type: ignore[override]
        """``"G"``: the condition generator's state dict; ``"D"``: the discriminator's."""
        return dict(self._native().state_dict(self._model_name(which)))


class UNetTrainer(_Trainer):
    """diffusers U-Net fine-tuning (``train_text_to_image.py``; 9-channel inpainting and
    CatVTON's layouts): noise / v-prediction MSE, AdamW, global clipping, optional EMA.

    ``weights``: a diffusers U-Net folder (``config.json`` + weights) or a pipeline folder
    with ``unet/``. Batch keys: ``latents``, ``noise``, ``timesteps`` (``(N,)``),
    optional ``masked_latents`` and ``mask`` (inpainting) and ``encoder_hidden_states``
    (``(N, S, D)``); float32 arrays (integer timesteps are converted).
    """

    _kind = "unet"

    def __init__(self, weights: PathLike, *, device: str = "cpu", seed: int = 0, **opts: Any) -> None:
        if not isinstance(weights, (str, os.PathLike)):
            raise InvalidInputError(f"UNetTrainer takes a diffusers U-Net folder, got {type(weights).__name__}")
        self._build(weights, device=device, seed=seed, opts=opts)

    def step(self, batch: Mapping[str, np.ndarray]) -> Dict[str, float]:
        b = dict(_batch(batch))
        t = b.get("timesteps")
        if t is not None and np.issubdtype(t.dtype, np.integer):
            b["timesteps"] = t.astype(np.float32)
        return dict(self._native().step(b))


@dataclass(frozen=True)
class RunSummary:
    """What :func:`run` did."""

    steps_done: int
    cancelled: bool
    last_checkpoint: Optional[str]
    skipped_samples: List[Tuple[str, str]]
    mean_step_seconds: float


def run(kind: str, data: PathLike, out: PathLike, *, steps: Optional[int] = None, batch_size: int = 4,
        save_every: int = 1000, val_every: int = 0, keep_checkpoints: int = 0, resume: bool = False,
        weights: Weights = None, vgg: Optional[PathLike] = None, discriminator: Weights = None, seed: int = 0,
        workers: int = 2, skip_bad_samples: bool = False, device: str = "cpu",
        callback: Optional[Callable[[Dict[str, Any]], Optional[bool]]] = None, **opts: Any) -> RunSummary:
    """The whole training loop, as ``vton train``: ``kind`` (``gmm``, ``tom``, ``tocg``,
    ``unet``) over the dataset folder ``data`` (VITON-HD / HR-VITON layout, CP-VTON+'s
    VITON layout or what ``vton preprocess`` writes), into the run folder ``out``
    (``log.jsonl``, ``samples/``, ``checkpoints/step_<N>/``).

    ``steps`` defaults to the script's total (``keep_step + decay_step`` for gmm/tom).
    ``resume=True`` continues from the newest complete checkpoint in ``out``.
    ``callback`` gets one dict per event, ``type`` being ``started`` (step, total,
    resumed_from), ``step`` (step, total, losses, lr, seconds), ``validated`` (step, ssim,
    psnr, panel), ``saved`` (step, dir) or ``stopped`` (step, cancelled); returning
    ``False`` stops the run after a checkpoint is saved (the summary says
    ``cancelled``). An exception raised by the callback, or Ctrl-C, also stops it after
    the save and is raised from here.
    """
    if kind not in _KINDS:
        raise InvalidInputError(f"kind must be one of {', '.join(_KINDS)}, got {kind!r}")
    if callback is not None and not callable(callback):
        raise InvalidInputError(f"callback must be callable, got {type(callback).__name__}")
    wp, wd = _weights(weights, "weights")
    dp, dd = _weights(discriminator, "discriminator")
    s = _vton._train_run(kind, os.fspath(data), os.fspath(out), None if steps is None else int(steps),
                         int(batch_size), int(save_every), int(val_every), int(keep_checkpoints), bool(resume), wp, wd,
                         _path(vgg, "vgg"), dp, dd, int(seed), int(workers), bool(skip_bad_samples), str(device),
                         _options_json(opts), callback)
    last = s["last_checkpoint"]
    return RunSummary(steps_done=int(s["steps_done"]), cancelled=bool(s["cancelled"]),
                      last_checkpoint=None if last is None else os.fspath(last),
                      skipped_samples=[(str(a), str(b)) for a, b in s["skipped_samples"]],
                      mean_step_seconds=float(s["mean_step_seconds"]))


__all__ = ["GMMTrainer", "TOMTrainer", "ConditionGeneratorTrainer", "UNetTrainer", "RunSummary", "run"]
