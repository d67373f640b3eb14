"""Catalogue-scale try-on on a Ray cluster: a ``ray.data`` pipeline over person x garment pairs.

The catalogue (the format ``vton run-batch --pairs`` reads) is a text file, one pair a line::

    # person            garment            optional key=PATH inputs
    person/a.png        garment/x.png      keypoints=person/a_keypoints.json person_mask=person/a_mask.png
    person/b.png        garment/x.png      garment_mask=garment/x_mask.png

Fields are whitespace-separated; the optional keys are ``keypoints``, ``person_mask``,
``garment_mask`` and ``parse``; relative paths are relative to the pairs file's folder;
blank lines and lines starting with ``#`` are skipped. A pair's result is
``{person_stem}__{garment_stem}.png`` in the output folder. An unknown key, a missing
file or two pairs with the same output name are errors naming the line.

:func:`run_catalogue` runs it: pairs whose output exists are skipped (``resume=True``),
the rest go through a fixed pool of :class:`TryOnActor` (one loaded model per actor,
``Dataset.map_batches``), each result is written atomically (a temporary file in the
output folder, then ``os.replace``), and a pair that fails is recorded in the summary and
in ``errors.jsonl`` in the output folder instead of stopping the run. See docs/scale.md.

Devices: each actor loads its model on ``device=`` (vton's names: ``"cpu"``,
``"cuda[:N]"``, ``"wgpu[:N]"``). With ``num_gpus_per_actor > 0`` and no ``device``, the
actors use the GPU Ray reserved for them (``"cuda"``: Ray sets ``CUDA_VISIBLE_DEVICES``,
so it is device 0) when the vton wheel has a GPU backend; a wheel without one is an
:class:`vton.UnsupportedError` before any actor starts, never a silent CPU run.
"""
from __future__ import annotations

import json
import math
import os
import tempfile
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, Iterable, List, Mapping, Optional, Sequence, Tuple, Union

import numpy as np

try:
    import ray
    import ray.data
except ImportError as _e:  # pragma: no cover - exercised only without ray
    raise ImportError('vton.ray needs Ray Data: pip install "ray[data]"') from _e

from . import CatVTONPipeline, CPVTONPipeline, HumanParser, InpaintTryOnPipeline, compiled_backends, try_on
from . import _vton  # type: ignore[attr-defined]  # the native module (no stub)
from .errors import InvalidInputError, UnsupportedError, VtonFileNotFoundError

#: The optional ``key=PATH`` inputs of a catalogue line (and the optional Dataset columns).
OPTIONAL_KEYS: Tuple[str, ...] = ("keypoints", "person_mask", "garment_mask", "parse")
#: The columns of a pairs Dataset (``person`` and ``garment`` are required).
COLUMNS: Tuple[str, ...] = ("person", "garment") + OPTIONAL_KEYS
#: The methods :class:`TryOnActor` runs.
SUPPORTED_METHODS: Tuple[str, ...] = ("geometric", "cpvton", "catvton", "inpaint")
#: The per-pair failure log written into the output folder.
ERRORS_FILE = "errors.jsonl"

_PathLike = Union[str, "os.PathLike[str]"]


@dataclass(frozen=True)
class Pair:
    """One person x garment pair with its optional inputs (absolute or caller-relative paths).

    ``line`` is the catalogue line (1-based) or, for pairs given as a list, the index.
    """

    person: str
    garment: str
    keypoints: Optional[str] = None
    person_mask: Optional[str] = None
    garment_mask: Optional[str] = None
    parse: Optional[str] = None
    line: Optional[int] = None

    @property
    def output_name(self) -> str:
        """``{person_stem}__{garment_stem}.png``."""
        return output_name(self.person, self.garment)

    def as_row(self) -> Dict[str, Any]:
        """The Dataset row: every column a string ("" = not given) plus the line (-1 = none)."""
        row: Dict[str, Any] = {k: getattr(self, k) or "" for k in COLUMNS}
        row["line"] = -1 if self.line is None else int(self.line)
        return row


@dataclass
class RunSummary:
    """What :func:`run_catalogue` did: counts, the failures (one dict per pair) and the wall time."""

    done: int = 0
    skipped: int = 0
    failed: int = 0
    errors: List[Dict[str, Any]] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def total(self) -> int:
        return self.done + self.skipped + self.failed


def _stem(path: str) -> str:
    return os.path.splitext(os.path.basename(path))[0]


def output_name(person: _PathLike, garment: _PathLike) -> str:
    """The result file name of a pair: ``{person_stem}__{garment_stem}.png``."""
    return f"{_stem(os.fspath(person))}__{_stem(os.fspath(garment))}.png"


def _check_outputs(pairs: Sequence[Pair], label: Callable[[Pair], str]) -> None:
    seen: Dict[str, Pair] = {}
    for p in pairs:
        name = p.output_name
        if name in seen:
            raise InvalidInputError(f"{label(p)}: output {name} is also the output of {label(seen[name])} "
                                    f"(two pairs with the same person and garment stems)")
        seen[name] = p


def _check_files(p: Pair, label: Callable[[Pair], str]) -> None:
    for k in COLUMNS:
        v = getattr(p, k)
        if v is not None and not os.path.isfile(v):
            raise VtonFileNotFoundError(f"{label(p)}: {k} file not found: {v}")


def parse_pairs(path: _PathLike, check_files: bool = True) -> List[Pair]:
    """Reads a catalogue file (the format in this module's doc) into absolute-path pairs.

    Errors name the line: :class:`vton.InvalidInputError` (a ``ValueError``) for a
    malformed line, an unknown or repeated key or a duplicate output name,
    :class:`vton.VtonFileNotFoundError` for a missing file (``check_files=False`` skips
    that check, e.g. for paths only the cluster's nodes can see).
    """
    path = os.fspath(path)
    base = os.path.dirname(os.path.abspath(path))
    try:
        with open(path, encoding="utf-8") as f:
            lines = f.read().splitlines()
    except FileNotFoundError as e:
        raise VtonFileNotFoundError(f"pairs file not found: {path}") from e
    except (OSError, UnicodeDecodeError) as e:
        raise InvalidInputError(f"cannot read pairs file {path}: {e}") from e

    def resolve(p: str) -> str:
        return os.path.normpath(os.path.join(base, os.path.expanduser(p)))

    def label(p: Pair) -> str:
        return f"{path}: line {p.line}"

    pairs: List[Pair] = []
    for n, raw in enumerate(lines, start=1):
        text = raw.strip()
        if not text or text.startswith("#"):
            continue
        where = f"{path}: line {n}"
        fields = text.split()
        if len(fields) < 2 or "=" in fields[0] or "=" in fields[1]:
            raise InvalidInputError(f"{where}: expected PERSON GARMENT [key=PATH ...], got {text!r}")
        extra: Dict[str, str] = {}
        for tok in fields[2:]:
            key, eq, value = tok.partition("=")
            if not eq:
                raise InvalidInputError(f"{where}: {tok!r} is not key=PATH (keys: {', '.join(OPTIONAL_KEYS)})")
            if key not in OPTIONAL_KEYS:
                raise InvalidInputError(f"{where}: unknown key {key!r} (keys: {', '.join(OPTIONAL_KEYS)})")
            if key in extra:
                raise InvalidInputError(f"{where}: key {key!r} given twice")
            if not value:
                raise InvalidInputError(f"{where}: key {key!r} has an empty path")
            extra[key] = resolve(value)
        pair = Pair(person=resolve(fields[0]), garment=resolve(fields[1]), line=n, **extra)
        if check_files:
            _check_files(pair, label)
        pairs.append(pair)
    _check_outputs(pairs, label)
    return pairs


def pairs_from_records(records: Iterable[Mapping[str, Any]], base_dir: Optional[_PathLike] = None,
                       check_files: bool = True) -> List[Pair]:
    """Pairs from dicts with the :data:`COLUMNS` keys (``None`` or "" = not given); relative
    paths are relative to ``base_dir`` (default: the working directory). Errors name the
    index as ``pairs[i]``."""
    base = os.path.abspath(os.fspath(base_dir) if base_dir is not None else os.getcwd())

    def label(p: Pair) -> str:
        return f"pairs[{p.line}]"

    pairs: List[Pair] = []
    for i, rec in enumerate(records):
        if not isinstance(rec, Mapping):
            raise InvalidInputError(f"pairs[{i}]: expected a dict with keys {', '.join(COLUMNS)}, "
                                    f"got {type(rec).__name__}")
        unknown = sorted(set(rec) - set(COLUMNS) - {"line"})
        if unknown:
            raise InvalidInputError(f"pairs[{i}]: unknown key(s) {', '.join(map(repr, unknown))} "
                                    f"(keys: {', '.join(COLUMNS)})")
        vals: Dict[str, Optional[str]] = {}
        for k in COLUMNS:
            v = rec.get(k)
            if v is None or (isinstance(v, str) and v == ""):
                if k in ("person", "garment"):
                    raise InvalidInputError(f"pairs[{i}]: {k} is required")
                vals[k] = None
                continue
            if not isinstance(v, (str, os.PathLike)):
                raise InvalidInputError(f"pairs[{i}]: {k} must be a path, got {type(v).__name__}")
            vals[k] = os.path.normpath(os.path.join(base, os.fspath(v)))
        pair = Pair(line=i, **vals)  # type: ignore[arg-type]
        if check_files:
            _check_files(pair, label)
        pairs.append(pair)
    _check_outputs(pairs, label)
    return pairs


def _to_u8(img: np.ndarray) -> np.ndarray:
    """[0, 1] float to 8 bits as vton's PNG writer does: ``round(clamp(v, 0, 1) * 255)``,
    halves away from zero (the product in float32, as in Rust)."""
    v = np.clip(np.asarray(img, dtype=np.float32), 0.0, 1.0) * np.float32(255.0)
    return np.floor(v.astype(np.float64) + 0.5).astype(np.uint8)


def write_png_atomic(path: _PathLike, image: np.ndarray) -> None:
    """Writes an (H, W, 3) [0, 1] float (or uint8) image as a PNG: a temporary file in the
    same folder, then ``os.replace``, so that a killed run never leaves a partial file."""
    from PIL import Image

    path = os.fspath(path)
    arr = image if image.dtype == np.uint8 else _to_u8(image)
    folder = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(prefix=".tmp-", suffix=".png", dir=folder)
    try:
        with os.fdopen(fd, "wb") as f:
            Image.fromarray(arr).save(f, format="PNG")
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise


def _resize(img: np.ndarray, height: int, width: int) -> np.ndarray:
    """Half-pixel bilinear resize of an (H, W[, C]) float32 image, as vton-core's io resize."""
    sh, sw = img.shape[:2]
    if (sh, sw) == (height, width):
        return np.ascontiguousarray(img, dtype=np.float32)
    fy = np.clip((np.arange(height, dtype=np.float32) + 0.5) * np.float32(sh / height) - 0.5, 0, sh - 1)
    fx = np.clip((np.arange(width, dtype=np.float32) + 0.5) * np.float32(sw / width) - 0.5, 0, sw - 1)
    y0 = np.floor(fy).astype(np.int64)
    x0 = np.floor(fx).astype(np.int64)
    y1, x1 = np.minimum(y0 + 1, sh - 1), np.minimum(x0 + 1, sw - 1)
    wy = (fy - y0).astype(np.float32)
    wx = (fx - x0).astype(np.float32)
    a = img.astype(np.float32)
    if a.ndim == 3:
        wy, wx = wy[:, None, None], wx[None, :, None]
    else:
        wy, wx = wy[:, None], wx[None, :]
    top = a[y0][:, x0] * (1 - wx) + a[y0][:, x1] * wx
    bot = a[y1][:, x0] * (1 - wx) + a[y1][:, x1] * wx
    return np.ascontiguousarray(top * (1 - wy) + bot * wy, dtype=np.float32)


def _fit_padded(img: np.ndarray, height: int, width: int) -> np.ndarray:
    """Aspect-kept fit centred on white (how CatVTON lays a garment out at the person's size)."""
    h0, w0 = img.shape[:2]
    s = min(width / w0, height / h0)
    w = min(max(int(round(w0 * s)), 1), width)
    h = min(max(int(round(h0 * s)), 1), height)
    out = np.ones((height, width, 3), dtype=np.float32)
    oy, ox = (height - h) // 2, (width - w) // 2
    out[oy:oy + h, ox:ox + w] = _resize(img, h, w)
    return out


def _read_rgb(path: str, what: str) -> np.ndarray:
    """An RGB image file as (H, W, 3) float32 in [0, 1] (as vton's loaders read it)."""
    from PIL import Image

    try:
        with Image.open(path) as im:
            return np.asarray(im.convert("RGB"), dtype=np.float32) / np.float32(255.0)
    except FileNotFoundError as e:
        raise VtonFileNotFoundError(f"file not found: {path}") from e
    except OSError as e:
        raise InvalidInputError(f"{what}: cannot decode {path}: {e}") from e


def _nchw(img: np.ndarray) -> np.ndarray:
    a = img[..., None] if img.ndim == 2 else img
    return np.ascontiguousarray(a.transpose(2, 0, 1)[None], dtype=np.float32)


def _first(folder: str, names: Sequence[str], what: str) -> str:
    for n in names:
        p = os.path.join(folder, n)
        if os.path.isfile(p):
            return p
    raise VtonFileNotFoundError(f"{what}: none of {', '.join(names)} in {folder}")


def gpu_device() -> str:
    """The device name an actor that Ray gave one GPU computes on: ``"cuda"`` (device 0 of
    the ``CUDA_VISIBLE_DEVICES`` Ray set) when the wheel has the cuda backend, else
    ``"wgpu"`` (the default adapter) when it has wgpu. A wheel with neither raises
    :class:`vton.UnsupportedError`."""
    backends = compiled_backends()
    if "cuda" in backends:
        return "cuda"
    if "wgpu" in backends:
        return "wgpu"
    raise UnsupportedError(
        "GPU actors (num_gpus_per_actor > 0, or an actor Ray gave a GPU) need a vton wheel with a GPU backend, "
        f"but this one has none (backends in this build: {', '.join(backends)}); build the wheel with "
        "`maturin build --release --features cuda` (or `--features wgpu`), or pass device=\"cpu\" to compute on "
        "the CPU with the GPUs reserved")


def _resolve_device(device: Optional[str], num_gpus: float) -> str:
    """The canonical device of the actors: ``device`` when given (checked, so a bad name
    fails on the driver), else :func:`gpu_device` when GPUs are reserved, else ``"cpu"``."""
    if device is None:
        device = gpu_device() if num_gpus and num_gpus > 0 else "cpu"
    if not isinstance(device, str):
        raise InvalidInputError(f"device must be a string such as 'cpu' or 'cuda', got {type(device).__name__}")
    return str(_vton._device_name(device))


def _actor_gpus() -> List[Any]:
    """The GPU ids Ray assigned to the current worker ([] outside Ray or on the driver)."""
    try:
        return list(ray.get_gpu_ids()) if ray.is_initialized() else []
    except Exception:  # pragma: no cover - Ray internals unavailable
        return []


class TryOnActor:
    """A ``map_batches`` callable class: loads the model once, then runs and writes each pair.

    Use it as ``ds.map_batches(TryOnActor, compute=ray.data.ActorPoolStrategy(size=n),
    fn_constructor_kwargs=dict(out_dir=..., method=...), batch_format="numpy")`` over rows
    with the :data:`COLUMNS` (strings, "" = not given) and ``line``. Each output row is
    ``line, person, garment, output, status`` (``done`` / ``skipped`` / ``failed``) and
    ``error`` (the message of a failure, else ""). It also works without Ray: call it on a
    dict of arrays.

    Methods: ``geometric`` (weight-free, :func:`vton.try_on`; ``parser``: an SCHP
    checkpoint for a parse map), ``cpvton`` (``weights``: a folder with gmm_final.pth and
    tom_final.pth; needs keypoints and a garment mask; the result is at the model's size),
    ``catvton`` and ``inpaint`` (``weights``: a diffusers inpainting pipeline folder;
    ``attn_checkpoint`` for CatVTON; ``steps``, ``guidance``, ``seed``, ``strength``,
    ``size``: the working (height, width), default the person's size rounded down to
    multiples of 64).

    ``device``: where the model (and the parser) is loaded and every pair computes
    (``"cpu"``, ``"cuda[:N]"``, ``"wgpu[:N]"``; the ``device`` attribute holds the canonical
    name). ``None``: :func:`gpu_device` in a Ray worker that was given a GPU (an
    :class:`vton.UnsupportedError` when the wheel has no GPU backend), else ``"cpu"``.
    """

    def __init__(self, out_dir: _PathLike, method: str = "geometric", weights: Optional[_PathLike] = None,
                 resume: bool = True, parser: Optional[_PathLike] = None, attn_checkpoint: Optional[_PathLike] = None,
                 steps: int = 50, guidance: float = 2.5, seed: int = 0, strength: Optional[float] = None,
                 size: Optional[Tuple[int, int]] = None, device: Optional[str] = None) -> None:
        self.out_dir = os.fspath(out_dir)
        self.method = method
        self.resume = bool(resume)
        self.steps, self.guidance, self.seed, self.strength = int(steps), float(guidance), int(seed), strength
        self.size = None if size is None else (int(size[0]), int(size[1]))
        _check_method(method, weights)
        self.device = _resolve_device(device, 1 if device is None and _actor_gpus() else 0)
        dev = self.device
        self._parser = None if parser is None else HumanParser.from_checkpoint(parser, device=dev)
        self._pipe: Any = None
        if method == "cpvton":
            w = os.fspath(weights)  # type: ignore[arg-type]
            self._pipe = CPVTONPipeline.from_checkpoints(_first(w, ("gmm_final.pth", "gmm.pth"), "cpvton GMM"),
                                                         _first(w, ("tom_final.pth", "tom.pth"), "cpvton TOM"),
                                                         device=dev)
        elif method == "catvton":
            self._pipe = CatVTONPipeline.from_pretrained(
                os.fspath(weights), None if attn_checkpoint is None else os.fspath(attn_checkpoint),  # type: ignore
                device=dev)
        elif method == "inpaint":
            if attn_checkpoint is not None:
                raise InvalidInputError("attn_checkpoint: only the catvton method loads an attention checkpoint")
            self._pipe = InpaintTryOnPipeline.from_pretrained(os.fspath(weights), device=dev)  # type: ignore[arg-type]

    def run_pair(self, row: Mapping[str, Any]) -> np.ndarray:
        """The (H, W, 3) float32 result of one pair (paths as in a Dataset row)."""
        get = lambda k: (row.get(k) or None)  # noqa: E731
        person, garment = row["person"], row["garment"]
        if self.method == "cpvton":
            if get("keypoints") is None or get("garment_mask") is None:
                raise InvalidInputError("cpvton needs keypoints= and garment_mask= on the pair")
            return self._pipe(person, garment, get("keypoints"), get("garment_mask"),
                              person_mask=get("person_mask"), parse=get("parse")).image
        geo = try_on(person, garment, keypoints=get("keypoints"), person_mask=get("person_mask"),
                     garment_mask=get("garment_mask"), parse=get("parse"), parser=self._parser, device=self.device)
        if self.method == "geometric":
            return geo.image
        p = _read_rgb(person, "person")
        ph, pw = p.shape[:2]
        if self.size is not None:
            h, w = self.size
            if h <= 0 or w <= 0:
                raise InvalidInputError(f"size {self.size} has a zero side")
        else:
            h, w = ph // 64 * 64, pw // 64 * 64
            if h == 0 or w == 0:
                raise InvalidInputError("person is smaller than 64x64 pixels")
        person_t = _nchw(_resize(p, h, w))
        mask_t = _nchw((_resize(geo.agnostic_mask, h, w) >= 0.5).astype(np.float32))
        if self.method == "catvton":
            garment_t = _nchw(_fit_padded(_read_rgb(garment, "garment"), h, w))
            out = self._pipe(person_t, garment_t, mask_t, steps=self.steps, guidance=self.guidance, seed=self.seed)
        else:
            out = self._pipe(person_t, mask_t, _nchw(_resize(geo.warped_garment, h, w)),
                             _nchw((_resize(geo.warped_mask, h, w) >= 0.5).astype(np.float32)), steps=self.steps,
                             guidance=self.guidance, seed=self.seed, strength=self.strength)
        return _resize(np.asarray(out)[0].transpose(1, 2, 0), ph, pw)

    def __call__(self, batch: Dict[str, np.ndarray]) -> Dict[str, np.ndarray]:
        n = len(batch["person"])
        cols: Dict[str, List[Any]] = {k: [] for k in ("line", "person", "garment", "output", "status", "error")}
        for i in range(n):
            row = {k: _cell(batch, k, i) for k in COLUMNS}
            line = int(batch["line"][i]) if "line" in batch else -1
            status, err, name = "done", "", ""
            try:
                if not row["person"] or not row["garment"]:
                    raise InvalidInputError("person and garment are required")
                name = output_name(row["person"], row["garment"])
                dest = os.path.join(self.out_dir, name)
                if self.resume and os.path.exists(dest):
                    status = "skipped"
                else:
                    write_png_atomic(dest, self.run_pair(row))
            except Exception as e:  # a failing pair is recorded, the run goes on
                status, err = "failed", f"{type(e).__name__}: {e}"
            for k, v in (("line", line), ("person", row["person"]), ("garment", row["garment"]),
                         ("output", name), ("status", status), ("error", err)):
                cols[k].append(v)
        return {"line": np.asarray(cols["line"], dtype=np.int64),
                **{k: np.asarray(cols[k], dtype=object) for k in ("person", "garment", "output", "status", "error")}}


def _cell(batch: Mapping[str, np.ndarray], key: str, i: int) -> str:
    if key not in batch:
        return ""
    v = batch[key][i]
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return ""
    return os.fspath(v) if isinstance(v, (str, os.PathLike)) else str(v)


def _check_method(method: str, weights: Optional[_PathLike]) -> None:
    if method == "hrviton":
        raise UnsupportedError("method hrviton is not supported by vton.ray (it needs HR-VITON's preprocessed "
                               "parse-agnostic, DensePose and agnostic images, which the catalogue has no keys for); "
                               f"supported: {', '.join(SUPPORTED_METHODS)}")
    if method not in SUPPORTED_METHODS:
        raise UnsupportedError(f"method {method!r} is not supported; supported: {', '.join(SUPPORTED_METHODS)}")
    if method == "geometric":
        if weights is not None:
            raise InvalidInputError("weights: the geometric method takes no weights")
    elif weights is None:
        raise InvalidInputError(f"weights: method {method} needs a weights folder")
    elif not os.path.isdir(os.fspath(weights)):
        raise VtonFileNotFoundError(f"weights folder not found: {os.fspath(weights)}")


def run_catalogue(pairs: Union[_PathLike, Sequence[Mapping[str, Any]], "ray.data.Dataset"], out_dir: _PathLike,
                  method: str = "geometric", weights: Optional[_PathLike] = None, num_actors: Optional[int] = None,
                  batch_size: int = 1, num_cpus_per_actor: float = 1, num_gpus_per_actor: float = 0,
                  resume: bool = True, base_dir: Optional[_PathLike] = None, check_files: bool = True,
                  device: Optional[str] = None, **method_options: Any) -> RunSummary:
    """Runs every pair of a catalogue on the connected Ray cluster and writes the results.

    ``pairs``: a catalogue file, a list of dicts with the :data:`COLUMNS` keys (relative
    paths against ``base_dir``), or a ``ray.data.Dataset`` with those columns (read as
    it is, lazily: its rows are neither checked for missing files nor for duplicate
    outputs up front; a missing file is that pair's failure). ``num_actors``: the size of
    the actor pool (default: the cluster's CPUs / ``num_cpus_per_actor``, or its GPUs /
    ``num_gpus_per_actor`` when that is set), each actor holding one loaded model;
    ``batch_size`` pairs per call. ``resume=True`` skips pairs whose output exists;
    ``False`` recomputes and replaces them. ``method_options`` go to :class:`TryOnActor`
    (``parser``, ``attn_checkpoint``, ``steps``, ``guidance``, ``seed``, ``strength``,
    ``size``). Per-pair failures are counted, listed in the summary and written to
    ``errors.jsonl`` in ``out_dir`` (replaced each run; empty when none failed).

    ``device``: where every actor loads its model (see :class:`TryOnActor`). By default
    ``"cpu"``, or with ``num_gpus_per_actor > 0`` the GPU Ray reserves for each actor
    (:func:`gpu_device`: ``"cuda"``, device 0 of the actor's ``CUDA_VISIBLE_DEVICES``); a
    wheel without a GPU backend then raises :class:`vton.UnsupportedError` here, before
    Ray is started or any actor made. A given ``device`` is checked here too.

    Calls ``ray.init()`` (a local cluster, or the one ``RAY_ADDRESS`` names) when Ray is
    not initialised yet.
    """
    t0 = time.perf_counter()
    _check_method(method, weights)
    device = _resolve_device(device, float(num_gpus_per_actor or 0))
    unknown = sorted(set(method_options) - {"parser", "attn_checkpoint", "steps", "guidance", "seed", "strength",
                                             "size"})
    if unknown:
        raise InvalidInputError(f"unknown option(s) {', '.join(unknown)}")
    if int(batch_size) < 1:
        raise InvalidInputError(f"batch_size must be >= 1, got {batch_size}")
    out = os.path.abspath(os.fspath(out_dir))
    os.makedirs(out, exist_ok=True)
    summary = RunSummary()

    ds: "ray.data.Dataset"
    if isinstance(pairs, ray.data.Dataset):
        ds = pairs
        n_rows: Optional[int] = None
    else:
        if isinstance(pairs, (str, os.PathLike)):
            plist = parse_pairs(pairs, check_files=check_files)
        else:
            plist = pairs_from_records(pairs, base_dir=base_dir, check_files=check_files)
        todo = []
        for p in plist:
            if resume and os.path.exists(os.path.join(out, p.output_name)):
                summary.skipped += 1
            else:
                todo.append(p)
        n_rows = len(todo)
        if not todo:
            _write_errors(out, [])
            summary.seconds = time.perf_counter() - t0
            return summary
    if not ray.is_initialized():
        ray.init()
    if num_actors is None:
        res = ray.cluster_resources()
        if num_gpus_per_actor:
            num_actors = int(res.get("GPU", 0) // num_gpus_per_actor)
        else:
            num_actors = int(res.get("CPU", 1) // max(num_cpus_per_actor, 1e-9))
        num_actors = max(1, num_actors)
    if int(num_actors) < 1:
        raise InvalidInputError(f"num_actors must be >= 1, got {num_actors}")
    num_actors = int(num_actors)
    if n_rows is not None:
        num_actors = min(num_actors, n_rows)
        ds = ray.data.from_items([p.as_row() for p in todo],
                                 override_num_blocks=max(1, min(n_rows, math.ceil(n_rows / int(batch_size)))))

    ctor = dict(out_dir=out, method=method, weights=None if weights is None else os.fspath(weights), resume=resume,
                device=device, **method_options)
    results = ds.map_batches(
        TryOnActor,
        fn_constructor_kwargs=ctor,
        batch_size=int(batch_size),
        batch_format="numpy",
        compute=ray.data.ActorPoolStrategy(size=num_actors),
        num_cpus=num_cpus_per_actor,
        num_gpus=num_gpus_per_actor or None,
    ).take_all()
    errors = []
    for r in sorted(results, key=lambda r: (int(r["line"]), str(r["output"]))):
        st = str(r["status"])
        if st == "done":
            summary.done += 1
        elif st == "skipped":
            summary.skipped += 1
        else:
            summary.failed += 1
            errors.append({"line": None if int(r["line"]) < 0 else int(r["line"]), "person": str(r["person"]),
                           "garment": str(r["garment"]), "output": str(r["output"]), "error": str(r["error"])})
    summary.errors = errors
    _write_errors(out, errors)
    summary.seconds = time.perf_counter() - t0
    return summary


def _write_errors(out_dir: str, errors: List[Dict[str, Any]]) -> None:
    fd, tmp = tempfile.mkstemp(prefix=".tmp-", suffix=".jsonl", dir=out_dir)
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        for e in errors:
            f.write(json.dumps(e) + "\n")
    os.replace(tmp, os.path.join(out_dir, ERRORS_FILE))


__all__ = ["COLUMNS", "OPTIONAL_KEYS", "SUPPORTED_METHODS", "ERRORS_FILE", "Pair", "RunSummary", "TryOnActor",
           "gpu_device", "output_name", "parse_pairs", "pairs_from_records", "run_catalogue", "write_png_atomic"]
