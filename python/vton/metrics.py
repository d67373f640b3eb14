"""Image-quality metrics as virtual try-on papers report them, each under the convention
of the package it comes from: PSNR and SSIM (scikit-image, pytorch-msssim, torchmetrics),
MS-SSIM (pytorch-msssim), LPIPS (lpips 0.1.4), FID (pytorch-fid 0.3.0) and KID
(torch-fidelity 0.4.0).

Images for :func:`psnr`, :func:`ssim` and :func:`ms_ssim` are numpy arrays ``(H, W, C)``
(``(H, W)`` is grey) or batches ``(N, H, W, C)``, PIL images or paths (read as 8-bit RGB;
PIL grey images, modes ``'L'``, ``'I'``, ``'I;16'``, ``'F'``, stay one channel), or lists
of these. ``uint8`` values are used exactly (0..255); any other numeric array is taken as
it is (float64), so ``data_range`` is the caller's: 255 for 8-bit values, 1.0 for
``[0, 1]`` floats. One pair gives a float, a batch or a list an array of one value per
pair.

Bad input raises the exceptions of :mod:`vton.errors` (:class:`~vton.errors.InvalidInputError`
for shapes, sizes and values).
"""
from __future__ import annotations

import operator
import os
from typing import Any, Callable, Iterator, List, Optional, Sequence, Tuple, Union

import numpy as np

from . import _vton
from .errors import InvalidInputError, VtonFileNotFoundError

PathLike = Union[str, "os.PathLike[str]"]

# Images converted per network call (FID / KID); features are kept, images are not.
_CHUNK = 32


def _is_pil(x: Any) -> bool:
    return not isinstance(x, np.ndarray) and hasattr(x, "convert") and hasattr(x, "size") and hasattr(x, "mode")


def _is_image(x: Any) -> bool:
    return isinstance(x, (np.ndarray, str, os.PathLike)) or _is_pil(x)


def _is_image_list(x: Any) -> bool:
    """A list or tuple of images (arrays, PIL images, paths), not a nested list of numbers."""
    return isinstance(x, (list, tuple)) and len(x) > 0 and all(_is_image(i) for i in x)


def _read_rgb(path: PathLike, what: str) -> np.ndarray:
    """An image file as (H, W, 3) uint8 RGB (PIL ``convert('RGB')``)."""
    p = os.fspath(path)
    if not os.path.exists(p):
        raise VtonFileNotFoundError(f"file not found: {p}")
    try:
        from PIL import Image
    except ImportError as e:  # pragma: no cover
        raise InvalidInputError(f"{what}: reading image files needs Pillow (pip install pillow)") from e
    try:
        with Image.open(p) as im:
            return np.asarray(im.convert("RGB"))
    except OSError as e:
        raise InvalidInputError(f"{what}: cannot decode {p}: {e}") from e


def _rgb_u8(x: Any, what: str) -> np.ndarray:
    """A path or PIL image as (H, W, 3) uint8 RGB."""
    if isinstance(x, (str, os.PathLike)):
        return _read_rgb(x, what)
    return np.asarray(x.convert("RGB"))


def _array(x: Any, what: str) -> np.ndarray:
    try:
        return np.asarray(x)
    except (TypeError, ValueError) as e:
        raise InvalidInputError(f"{what}: not convertible to a numpy array: {e}") from e


def _number(v: Any, name: str) -> float:
    try:
        return float(v)
    except (TypeError, ValueError) as e:
        raise InvalidInputError(f"{name} must be a number, got {v!r}") from e


def _count(v: Any, name: str, upper: int = 2**63) -> int:
    try:
        n = operator.index(v)
    except TypeError as e:
        raise InvalidInputError(f"{name} must be an integer, got {v!r}") from e
    if not 0 <= n < upper:
        raise InvalidInputError(f"{name} must be in 0..{upper - 1}, got {n}")
    return n


# ---------------------------------------------------------------------------------------
# PSNR, SSIM, MS-SSIM

# PIL modes kept as one channel (values as they are); every other mode is converted to RGB.
_GREY_MODES = ("L", "I", "I;16", "F")


def _pixels(x: Any, what: str) -> np.ndarray:
    """uint8 (exact) or float64 pixels, (H, W, C) or (N, H, W, C)."""
    if isinstance(x, (str, os.PathLike)):
        arr = _read_rgb(x, what)
    elif _is_pil(x):
        arr = np.asarray(x if x.mode in _GREY_MODES else x.convert("RGB"))
    else:
        arr = _array(x, what)
    if arr.dtype == np.uint8:
        pass
    elif arr.dtype != bool and (np.issubdtype(arr.dtype, np.integer) or np.issubdtype(arr.dtype, np.floating)):
        arr = arr.astype(np.float64)
    else:
        raise InvalidInputError(f"{what}: unsupported array dtype {arr.dtype} (uint8 or a float type)")
    if arr.ndim == 2:
        arr = arr[:, :, None]
    if arr.ndim not in (3, 4):
        raise InvalidInputError(f"{what} must be an (H, W), (H, W, C) image or an (N, H, W, C) batch, "
                                f"got shape {arr.shape}")
    return np.ascontiguousarray(arr)


def _pair_metric(fn: Callable[..., List[float]], a: Any, b: Any, *args: Any) -> Union[float, np.ndarray]:
    if _is_image_list(a) or _is_image_list(b):
        if not (_is_image_list(a) and _is_image_list(b)):
            raise InvalidInputError("a and b must both be lists of images (or both images / batches)")
        if len(a) != len(b):
            raise InvalidInputError(f"a holds {len(a)} images but b {len(b)}")
        return np.concatenate([np.atleast_1d(_pair_metric(fn, x, y, *args)) for x, y in zip(a, b)])
    pa, pb = _pixels(a, "a"), _pixels(b, "b")
    values = fn(pa, pb, *args)
    if pa.ndim == 4 or pb.ndim == 4:
        return np.asarray(values, dtype=np.float64)
    return float(values[0])


def psnr(a: Any, b: Any, data_range: float = 255) -> Union[float, np.ndarray]:
    """PSNR in dB as scikit-image's ``peak_signal_noise_ratio(a, b, data_range=...)``:
    ``10 log10(L^2 / MSE)`` with the MSE in float64 over every value. Identical images give
    ``inf``. A batch gives one value per pair (torchmetrics pools one MSE over the batch
    instead)."""
    return _pair_metric(_vton._psnr, a, b, _number(data_range, "data_range"))


_WINDOWS = ("gaussian", "uniform")


def ssim(a: Any, b: Any, data_range: float = 255, window: str = "gaussian", *,
         convention: Optional[str] = None) -> Union[float, np.ndarray]:
    """SSIM, the mean over channels of each channel's mean SSIM.

    ``window="gaussian"``: scikit-image's ``structural_similarity(a, b, channel_axis=-1,
    data_range=..., gaussian_weights=True, sigma=1.5, use_sample_covariance=False)``, the
    common try-on setting (equal to pytorch-msssim's ``ssim`` on images of 11 px and more).
    ``window="uniform"``: scikit-image's defaults (7x7 uniform window, sample covariance).

    ``convention`` names another package's computation instead: ``"skimage-gaussian"``,
    ``"skimage-default"``, ``"pytorch-msssim"`` (dimensions under 11 px left unfiltered),
    ``"torchmetrics"`` (>= 1.4.2: reflect padding, mean over the full map, as CatVTON and
    LaDI-VTON report it) or ``"torchmetrics-1.4.1"`` (the map cropped by 5 px). torchmetrics
    users pass ``data_range=1.0`` with ``[0, 1]`` float images.
    """
    if not isinstance(window, str) or window.strip().lower() not in _WINDOWS:
        raise InvalidInputError(f"window must be 'gaussian' or 'uniform', got {window!r}")
    w = window.strip().lower()
    if convention is None:
        name = w
    else:
        if not isinstance(convention, str):
            raise InvalidInputError(f"convention must be a string, got {convention!r}")
        name = _vton._ssim_convention_name(convention)
        if w == "uniform" and name != "skimage-default":
            raise InvalidInputError(f"window='uniform' contradicts convention={convention!r} "
                                    "(give one of them)")
    return _pair_metric(_vton._ssim, a, b, _number(data_range, "data_range"), name)


def ms_ssim(a: Any, b: Any, data_range: float = 255,
            weights: Optional[Sequence[float]] = None) -> Union[float, np.ndarray]:
    """MS-SSIM as pytorch-msssim 1.0's ``ms_ssim``: five scales with the weights
    (0.0448, 0.2856, 0.3001, 0.2363, 0.1333) unless ``weights`` gives others (one per
    scale). The shorter image side must exceed 160 px with five scales."""
    w = None
    if weights is not None:
        try:
            w = [float(v) for v in weights]
        except (TypeError, ValueError) as e:
            raise InvalidInputError(f"weights must be a sequence of numbers, got {weights!r}") from e
    return _pair_metric(_vton._ms_ssim, a, b, _number(data_range, "data_range"), w)


# ---------------------------------------------------------------------------------------
# LPIPS


def _u8_to_float(u8: np.ndarray, m1p1: bool) -> np.ndarray:
    """(N, H, W, 3) uint8 -> (N, 3, H, W) float32 as ToTensor (and then 2x - 1)."""
    t = u8.astype(np.float32) / np.float32(255.0)
    if m1p1:
        t = t * np.float32(2.0) - np.float32(1.0)
    return np.ascontiguousarray(t.transpose(0, 3, 1, 2))


def _u8_batch(arr: np.ndarray, what: str) -> np.ndarray:
    if arr.ndim == 3:
        arr = arr[None]
    if arr.ndim != 4 or arr.shape[-1] != 3:
        raise InvalidInputError(f"{what}: uint8 images must be (H, W, 3) or (N, H, W, 3) RGB, got shape {arr.shape}")
    return arr


def _float_batch(arr: np.ndarray, what: str) -> np.ndarray:
    if arr.ndim == 3:
        arr = arr[None]
    if arr.ndim != 4 or arr.shape[1] != 3:
        hint = " (channels last? float images are channels first, (3, H, W))" if arr.shape[-1] == 3 else ""
        raise InvalidInputError(f"{what}: float images must be (3, H, W) or (N, 3, H, W), got shape "
                                f"{arr.shape}{hint}")
    return np.ascontiguousarray(arr, dtype=np.float32)


def _kind(arr: np.ndarray, what: str) -> str:
    if arr.dtype == np.uint8:
        return "u8"
    if np.issubdtype(arr.dtype, np.floating):
        return "float"
    raise InvalidInputError(f"{what}: unsupported array dtype {arr.dtype} (uint8 (H, W, 3) images or "
                            "float (3, H, W) images)")


def _lpips_input(x: Any, what: str, normalize: bool) -> Tuple[np.ndarray, bool]:
    """(N, 3, H, W) float32 in [-1, 1] and whether the input was a batch."""
    if _is_image_list(x):
        parts = [_lpips_input(item, f"{what}[{k}]", normalize)[0] for k, item in enumerate(x)]
        if len({p.shape[1:] for p in parts}) != 1:
            raise InvalidInputError(f"{what}: the images of a list must have one size, got "
                                    f"{sorted({p.shape[2:] for p in parts})}")
        return np.concatenate(parts), True
    if isinstance(x, (str, os.PathLike)) or _is_pil(x):
        return _u8_to_float(_rgb_u8(x, what)[None], True), False
    arr = _array(x, what)
    batched = arr.ndim == 4
    if _kind(arr, what) == "u8":
        return _u8_to_float(_u8_batch(arr, what), True), batched
    t = _float_batch(arr, what)
    if normalize:
        t = t * np.float32(2.0) - np.float32(1.0)
    return t, batched


class LPIPS:
    """LPIPS as ``lpips.LPIPS(net=..., version='0.1')`` computes it.

    Load with :meth:`from_checkpoint`; ``lpips(x0, x1)`` gives a float for two images and
    a float32 array (one value per pair) for two batches or lists. Images: uint8
    ``(H, W, 3)`` / ``(N, H, W, 3)`` arrays, PIL images or paths (mapped to [-1, 1] as
    ``ToTensor() * 2 - 1``), or float ``(3, H, W)`` / ``(N, 3, H, W)`` arrays in [-1, 1]
    (in [0, 1] with ``normalize=True``, lpips' flag).
    """

    def __init__(self, inner: Any) -> None:
        self._inner = inner

    @classmethod
    def from_checkpoint(cls, backbone: PathLike, net: str = "alex", lin: Optional[PathLike] = None, *,
                        normalization: str = "lpips", device: str = "cpu") -> "LPIPS":
        """``backbone``: the torchvision checkpoint of ``net`` (``alexnet-owt-*.pth``,
        ``squeezenet1_1-*.pth``, ``vgg16-*.pth``; ``features.N.*`` keys, also under one
        prefix) or a whole ``lpips.LPIPS`` state dict. ``lin``: the linear layers
        (``lin<k>.model.1.weight``, lpips' ``weights/v0.1/<net>.pth``, also under one prefix).
        Without ``lin`` the backbone file's own lin layers are used when it holds them, else
        the lpips 0.1.4 v0.1 layers bundled with vton (which fit the full-width torchvision
        backbones only). ``normalization="torchmetrics"`` puts the eps of the feature
        normalisation where torchmetrics >= 1.3 does (differences ~1e-5 at most). ``device``:
        where the network is loaded and every distance is computed."""
        for name, v in (("net", net), ("normalization", normalization)):
            if not isinstance(v, str):
                raise InvalidInputError(f"{name} must be a string, got {v!r}")
        return cls(_vton._LPIPS.from_checkpoint(os.fspath(backbone), net,
                                                None if lin is None else os.fspath(lin), normalization,
                                                device=device))

    @property
    def device(self) -> str:
        """The device the network is on (canonical name)."""
        return str(self._inner.device)

    @property
    def net(self) -> str:
        return str(self._inner.net)

    @property
    def normalization(self) -> str:
        return str(self._inner.normalization)

    @property
    def tap_channels(self) -> "list[int]":
        """The channel count of each backbone tap (alex at full width: 64, 192, 384, 256, 256)."""
        return list(self._inner.tap_channels)

    @property
    def min_input_size(self) -> int:
        """The smallest height and width the backbone accepts (alex 31, squeeze 17, vgg 16)."""
        return int(self._inner.min_input_size)

    def _inputs(self, x0: Any, x1: Any, normalize: bool) -> Tuple[np.ndarray, np.ndarray, bool]:
        a, ba = _lpips_input(x0, "x0", bool(normalize))
        b, bb = _lpips_input(x1, "x1", bool(normalize))
        return a, b, ba or bb

    def __call__(self, x0: Any, x1: Any, normalize: bool = False) -> Union[float, np.ndarray]:
        a, b, batched = self._inputs(x0, x1, normalize)
        d = self._inner.distance(a, b)
        return np.asarray(d, dtype=np.float32) if batched else float(d[0])

    def distance_per_layer(self, x0: Any, x1: Any, normalize: bool = False) -> np.ndarray:
        """The per-tap terms, (N, L) float32 (L = 5 for alex and vgg, 7 for squeeze); their
        sum over L is the distance."""
        a, b, _ = self._inputs(x0, x1, normalize)
        return self._inner.distance_per_layer(a, b)

    def __repr__(self) -> str:
        return repr(self._inner)


# ---------------------------------------------------------------------------------------
# FID and KID


def _inception_batches(x: Any, what: str) -> Iterator[np.ndarray]:
    """(n, 3, H, W) float32 batches in [0, 1] (at most _CHUNK images, one size each)."""
    if _is_image_list(x):
        pending: List[np.ndarray] = []
        count = 0
        for k, item in enumerate(x):
            for batch in _inception_batches(item, f"{what}[{k}]"):
                if pending and (pending[0].shape[1:] != batch.shape[1:] or count + len(batch) > _CHUNK):
                    yield np.concatenate(pending)
                    pending, count = [], 0
                pending.append(batch)
                count += len(batch)
        if pending:
            yield np.concatenate(pending)
        return
    if isinstance(x, (str, os.PathLike)) or _is_pil(x):
        yield _u8_to_float(_rgb_u8(x, what)[None], False)
        return
    arr = _array(x, what)
    if _kind(arr, what) == "u8":
        arr = _u8_batch(arr, what)
        for i in range(0, len(arr), _CHUNK):
            yield _u8_to_float(arr[i:i + _CHUNK], False)
    else:
        arr = _float_batch(arr, what)
        for i in range(0, len(arr), _CHUNK):
            yield arr[i:i + _CHUNK]


def _features_of(inner: Any, images: Any) -> np.ndarray:
    """The pool3 features (N, D) float32 of every image (nothing is added on an error)."""
    feats = [inner.features(b) for b in _inception_batches(images, "images")]
    if not feats:
        raise InvalidInputError("images: no images given")
    return np.concatenate(feats)


def _features_array(x: Any, what: str) -> np.ndarray:
    arr = _array(x, what)
    if arr.dtype == bool or not (np.issubdtype(arr.dtype, np.floating) or np.issubdtype(arr.dtype, np.integer)):
        raise InvalidInputError(f"{what}: unsupported array dtype {arr.dtype}")
    if arr.ndim != 2:
        raise InvalidInputError(f"{what} must be an (N, D) feature array, got shape {arr.shape}")
    return np.ascontiguousarray(arr, dtype=np.float32)


class _InceptionMetric:
    """Shared by :class:`FID` and :class:`KID`: pytorch-fid's InceptionV3 pool3 features."""

    def __init__(self, inner: Any) -> None:
        self._inner = inner

    @property
    def device(self) -> str:
        """The device the Inception network is on (canonical name)."""
        return str(self._inner.device)

    @property
    def feature_dim(self) -> int:
        """The width of the pool3 features (2048 for pytorch-fid's weights)."""
        return int(self._inner.feature_dim)

    @property
    def counts(self) -> "tuple[int, int]":
        """The number of (real, generated) images seen."""
        r, f = self._inner.counts
        return int(r), int(f)

    def features(self, images: Any) -> np.ndarray:
        """Pool3 features (N, D) float32 of images (resized to 299x299 inside, as pytorch-fid)."""
        return _features_of(self._inner, images)

    def update(self, images: Any, real: bool) -> None:
        """Adds images to the real (``real=True``) or the generated set: uint8 ``(H, W, 3)`` /
        ``(N, H, W, 3)`` arrays, PIL images, paths, lists of these (any sizes), or float
        ``(3, H, W)`` / ``(N, 3, H, W)`` arrays in [0, 1]. On an error nothing is added."""
        self._inner.update_features(_features_of(self._inner, images), bool(real))

    def update_features(self, features: Any, real: bool) -> None:
        """Adds (N, D) features computed elsewhere (e.g. by pytorch-fid's ``get_activations``)."""
        self._inner.update_features(_features_array(features, "features"), bool(real))

    def reset(self) -> None:
        """Forgets both sets."""
        self._inner.reset()


class FID(_InceptionMetric):
    """FID as pytorch-fid 0.3.0 computes it, used like torchmetrics'
    ``FrechetInceptionDistance``: :meth:`update` with ``real=True`` / ``False`` any number
    of times, then :meth:`compute`. Only the running mean and covariance of each set are
    kept (float64)."""

    @classmethod
    def from_checkpoint(cls, path: PathLike, *, device: str = "cpu") -> "FID":
        """pytorch-fid's ``pt_inception-2015-12-05-6726825d.pth`` (or a file with its keys,
        also under one prefix), loaded onto ``device``."""
        return cls(_vton._FID.from_checkpoint(os.fspath(path), device=device))

    def statistics(self, real: bool = True) -> "tuple[np.ndarray, np.ndarray]":
        """(mu (D,), sigma (D, D)) float64 of one set, as pytorch-fid's
        ``calculate_activation_statistics`` (``np.cov``, ddof 1; needs 2 images)."""
        mu, sigma = self._inner.statistics(bool(real))
        return mu, sigma

    def compute(self) -> float:
        """The FID between the sets seen so far (each needs at least 2 images)."""
        return float(self._inner.compute())

    def __repr__(self) -> str:
        r, f = self.counts
        return f"FID(feature_dim={self.feature_dim}, real={r}, generated={f})"


class KID(_InceptionMetric):
    """KID as torch-fidelity 0.4.0 computes it (cubic polynomial kernel, unbiased MMD²,
    ``subsets`` subsets of ``subset_size`` drawn by ``np.random.RandomState(seed)``), on
    pytorch-fid's InceptionV3 features. :meth:`compute` returns (mean, std)."""

    @classmethod
    def from_checkpoint(cls, path: PathLike, subsets: int = 100, subset_size: int = 1000, *,
                        seed: int = 2020, device: str = "cpu") -> "KID":
        """pytorch-fid's Inception weights loaded onto ``device``; ``subsets``, ``subset_size``
        and ``seed`` as torch-fidelity's ``kid_subsets``, ``kid_subset_size``, ``rng_seed``."""
        return cls(_vton._KID.from_checkpoint(os.fspath(path), _count(subsets, "subsets"),
                                              _count(subset_size, "subset_size"), _count(seed, "seed", 2**32),
                                              device=device))

    @property
    def subsets(self) -> int:
        return int(self._inner.options[0])

    @property
    def subset_size(self) -> int:
        return int(self._inner.options[1])

    @property
    def seed(self) -> int:
        return int(self._inner.options[2])

    def compute(self) -> "tuple[float, float]":
        """(mean, std) of the per-subset MMD²; the subset size must not exceed either set."""
        m, s = self._inner.compute()
        return float(m), float(s)

    def __repr__(self) -> str:
        r, f = self.counts
        return (f"KID(feature_dim={self.feature_dim}, subsets={self.subsets}, subset_size={self.subset_size}, "
                f"real={r}, generated={f})")


# ---------------------------------------------------------------------------------------
# On statistics and features


def _f64(x: Any, what: str) -> np.ndarray:
    arr = _array(x, what)
    if arr.dtype == bool or not (np.issubdtype(arr.dtype, np.floating) or np.issubdtype(arr.dtype, np.integer)):
        raise InvalidInputError(f"{what}: unsupported array dtype {arr.dtype}")
    return np.ascontiguousarray(arr, dtype=np.float64)


def frechet_distance(mu1: Any, sigma1: Any, mu2: Any, sigma2: Any) -> float:
    """pytorch-fid's ``calculate_frechet_distance``: ``|mu1 - mu2|^2 + tr S1 + tr S2 -
    2 tr sqrt(S1 S2)`` on float64 means ``(D,)`` and covariances ``(D, D)``. The trace of
    the square root is computed exactly from symmetric eigen-decompositions."""
    return float(_vton._frechet_distance(_f64(mu1, "mu1"), _f64(sigma1, "sigma1"), _f64(mu2, "mu2"),
                                         _f64(sigma2, "sigma2")))


def _indices(x: Any, what: str) -> np.ndarray:
    arr = _array(x, what)
    if arr.dtype == bool or not np.issubdtype(arr.dtype, np.integer):
        raise InvalidInputError(f"{what} must be an integer array, got dtype {arr.dtype}")
    return np.ascontiguousarray(arr, dtype=np.int64)


def kid(features_real: Any, features_fake: Any, subsets: int = 100, subset_size: int = 1000,
        subset_indices: Optional[Tuple[Any, Any]] = None, seed: int = 2020) -> "tuple[float, float]":
    """torch-fidelity's ``kid_features_to_metric`` on two (N, D) feature sets: returns the
    (mean, std) over subsets of the unbiased MMD² with the kernel ``(x.y / D + 1)^3``.

    The subsets are torch-fidelity's draws (``np.random.RandomState(seed)``, per subset
    ``rng.choice(n1, subset_size, replace=False)`` then the same for set 2), or
    ``subset_indices``: a pair of integer arrays ``(subsets, size)`` with the rows of set 1
    and set 2 of each subset (``subsets``, ``subset_size`` and ``seed`` are then unused).
    """
    r = _features_array(features_real, "features_real")
    f = _features_array(features_fake, "features_fake")
    i1 = i2 = None
    if subset_indices is not None:
        try:
            first, second = subset_indices
        except (TypeError, ValueError) as e:
            raise InvalidInputError("subset_indices must be a pair (indices into set 1, indices into set 2)") from e
        i1, i2 = _indices(first, "subset_indices[0]"), _indices(second, "subset_indices[1]")
    m, s = _vton._kid(r, f, _count(subsets, "subsets"), _count(subset_size, "subset_size"),
                      _count(seed, "seed", 2**32), i1, i2)
    return float(m), float(s)


__all__ = ["psnr", "ssim", "ms_ssim", "LPIPS", "FID", "KID", "frechet_distance", "kid"]
