"""Tests of vton.metrics against the reference values in tests/fixtures/metrics (computed by
scikit-image, pytorch-msssim, torchmetrics, lpips, pytorch-fid and torch-fidelity on the
stored images with the stored width-reduced weights; see the README there)."""
import json
import pathlib

import numpy as np
import pytest

import vton
from vton import metrics
from vton.errors import CheckpointError, InvalidInputError, VtonFileNotFoundError

ROOT = pathlib.Path(__file__).resolve().parents[2]
FIX = ROOT / "tests" / "fixtures" / "metrics"
LPIPS_ALEX = FIX / "metrics_weights_lpips_alex.safetensors"
INCEPTION = FIX / "metrics_weights_fid_inception.safetensors"

_DTYPES = {"F64": "<f8", "F32": "<f4", "F16": "<f2", "I64": "<i8", "I32": "<i4", "U8": "u1", "BOOL": "?"}


def read_safetensors(path):
    """{key: array} of a safetensors file (8-byte little-endian header size, JSON header, data)."""
    raw = pathlib.Path(path).read_bytes()
    n = int.from_bytes(raw[:8], "little")
    header = json.loads(raw[8:8 + n])
    data = memoryview(raw)[8 + n:]
    out = {}
    for key, info in header.items():
        if key == "__metadata__":
            continue
        start, end = info["data_offsets"]
        out[key] = np.frombuffer(data[start:end], dtype=_DTYPES[info["dtype"]]).reshape(info["shape"])
    return out


def write_safetensors(path, tensors):
    """Writes float32 tensors {key: array} as safetensors."""
    header, blobs, offset = {}, [], 0
    for key, a in tensors.items():
        b = np.ascontiguousarray(a, dtype="<f4").tobytes()
        header[key] = {"dtype": "F32", "shape": list(a.shape), "data_offsets": [offset, offset + len(b)]}
        blobs.append(b)
        offset += len(b)
    h = json.dumps(header).encode()
    h += b" " * (-len(h) % 8)
    pathlib.Path(path).write_bytes(len(h).to_bytes(8, "little") + h + b"".join(blobs))


@pytest.fixture(scope="module")
def pairs():
    return json.loads((FIX / "metrics_pairs.json").read_text())["pairs"]


@pytest.fixture(scope="module")
def pair_tensors():
    return read_safetensors(FIX / "metrics_pairs.safetensors")


@pytest.fixture(scope="module")
def fid_json():
    return json.loads((FIX / "metrics_fid.json").read_text())


@pytest.fixture(scope="module")
def fid_tensors():
    return read_safetensors(FIX / "metrics_fid.safetensors")


def u8(t, i, kind=""):
    return t[f"pair.{i}.a{kind}_u8"], t[f"pair.{i}.b{kind}_u8"]


def close(got, want, atol, rtol=0.0):
    assert abs(got - want) <= atol + rtol * abs(want), (got, want, got - want)


# ---------------------------------------------------------------------------------------
# PSNR, SSIM, MS-SSIM


def test_psnr_matches_skimage_on_uint8(pairs, pair_tensors):
    for p in pairs:
        a, b = u8(pair_tensors, p["index"])
        got = metrics.psnr(a, b)
        assert isinstance(got, float)
        close(got, p["metrics"]["psnr.skimage_u8_dr255"], 1e-4)
        # float [0, 1] images with data_range=1
        close(metrics.psnr(a.astype(np.float32) / 255, b.astype(np.float32) / 255, data_range=1.0),
              p["metrics"]["psnr.skimage_f32_dr1"], 1e-4)


def test_psnr_identical_images_is_inf(pair_tensors):
    a, _ = u8(pair_tensors, 6)
    assert metrics.psnr(a, a.copy()) == float("inf")


def test_ssim_gaussian_and_uniform_match_skimage(pairs, pair_tensors):
    for p in pairs:
        a, b = u8(pair_tensors, p["index"])
        m = p["metrics"]
        close(metrics.ssim(a, b), m["ssim.skimage_gaussian_rgb_u8_dr255"], 1e-8)
        close(metrics.ssim(a, b, data_range=255, window="gaussian"), m["ssim.skimage_gaussian_rgb_u8_dr255"], 1e-8)
        close(metrics.ssim(a, b, window="uniform"), m["ssim.skimage_default_rgb_u8"], 1e-8)
        # float64 [0, 1] images with data_range=1 (the same computation, scaled)
        af, bf = a.astype(np.float64) / 255, b.astype(np.float64) / 255
        close(metrics.ssim(af, bf, data_range=1.0), m["ssim.skimage_gaussian_rgb_f64_dr1"], 1e-8)


def test_ssim_grey_images_hrviton(pairs, pair_tensors):
    from PIL import Image
    for i in (0, 4, 6):
        m = pairs[i]["metrics"]
        ga, gb = u8(pair_tensors, i, "_gray")
        close(metrics.ssim(ga, gb), m["ssim.skimage_gaussian_gray_hrviton"], 1e-8)
        close(metrics.ssim(ga, gb, window="uniform"), m["ssim.skimage_default_gray_u8"], 1e-8)
        # PIL 'L' images stay grey; convert('L') of the RGB image is the stored grey image
        a, b = u8(pair_tensors, i)
        la, lb = Image.fromarray(a).convert("L"), Image.fromarray(b).convert("L")
        close(metrics.ssim(la, lb), m["ssim.skimage_gaussian_gray_hrviton"], 1e-8)


def test_ssim_other_conventions(pairs, pair_tensors):
    for p in pairs:
        a, b = u8(pair_tensors, p["index"])
        m = p["metrics"]
        close(metrics.ssim(a, b, convention="pytorch-msssim"), m["ssim.pytorch_msssim_dr255"], 5e-5)
        af, bf = a.astype(np.float32) / 255, b.astype(np.float32) / 255
        close(metrics.ssim(af, bf, data_range=1.0, convention="torchmetrics"), m["ssim.torchmetrics_1_9_dr1"], 5e-5)
        close(metrics.ssim(af, bf, data_range=1.0, convention="torchmetrics-1.4.1"),
              m["ssim.torchmetrics_le_1_4_1_dr1"], 5e-5)
        close(metrics.ssim(a, b, convention="skimage-default"), m["ssim.skimage_default_rgb_u8"], 1e-8)
        close(metrics.ssim(a, b, window="uniform", convention="uniform"), m["ssim.skimage_default_rgb_u8"], 1e-8)


def test_ms_ssim_matches_pytorch_msssim(pairs, pair_tensors):
    applicable = [p for p in pairs if p["msssim_applicable"]]
    assert len(applicable) >= 2
    for p in applicable:
        a, b = u8(pair_tensors, p["index"])
        got = metrics.ms_ssim(a, b)
        assert isinstance(got, float)
        close(got, p["metrics"]["msssim.pytorch_msssim_dr255"], 5e-5)
        close(metrics.ms_ssim(a.astype(np.float32) / 255, b.astype(np.float32) / 255, data_range=1.0),
              p["metrics"]["msssim.pytorch_msssim_dr1"], 5e-5)
    # one scale with weight 1 is the SSIM of pytorch-msssim's valid map
    p = applicable[0]
    a, b = u8(pair_tensors, p["index"])
    close(metrics.ms_ssim(a, b, weights=[1.0]), p["metrics"]["ssim.pytorch_msssim_dr255"], 5e-5)


def test_batches_lists_pil_and_paths(pairs, pair_tensors, tmp_path):
    from PIL import Image
    a, b = u8(pair_tensors, 0)
    m = pairs[0]["metrics"]
    batch = metrics.psnr(np.stack([a, b]), np.stack([b, b]))
    assert isinstance(batch, np.ndarray) and batch.shape == (2,) and batch.dtype == np.float64
    close(batch[0], m["psnr.skimage_u8_dr255"], 1e-4)
    assert batch[1] == float("inf")
    s = metrics.ssim(np.stack([a, a]), np.stack([b, b]))
    assert s.shape == (2,)
    close(s[0], m["ssim.skimage_gaussian_rgb_u8_dr255"], 1e-8)
    close(s[1], m["ssim.skimage_gaussian_rgb_u8_dr255"], 1e-8)
    # a list of pairs of different sizes
    a6, b6 = u8(pair_tensors, 6)
    got = metrics.ssim([a, a6], [b, b6])
    np.testing.assert_allclose(got, [m["ssim.skimage_gaussian_rgb_u8_dr255"],
                                     pairs[6]["metrics"]["ssim.skimage_gaussian_rgb_u8_dr255"]], atol=1e-8)
    # PIL images and paths (PNG keeps the 8-bit values)
    pa, pb = tmp_path / "a.png", tmp_path / "b.png"
    Image.fromarray(a).save(pa)
    Image.fromarray(b).save(pb)
    close(metrics.psnr(pa, str(pb)), m["psnr.skimage_u8_dr255"], 1e-4)
    close(metrics.ssim(Image.open(pa), Image.open(pb)), m["ssim.skimage_gaussian_rgb_u8_dr255"], 1e-8)
    close(metrics.ms_ssim(pa, Image.fromarray(b)), m["msssim.pytorch_msssim_dr255"], 5e-5)
    assert vton.metrics is metrics


def test_pixel_metric_errors(pair_tensors):
    a, b = u8(pair_tensors, 0)
    a6, _ = u8(pair_tensors, 6)
    for f in (metrics.psnr, metrics.ssim, metrics.ms_ssim):
        with pytest.raises(InvalidInputError):
            f(a, a6)  # sizes differ
        with pytest.raises(InvalidInputError):
            f(np.stack([a, a]), np.stack([b, b, b]))  # batch lengths differ
        with pytest.raises(InvalidInputError):
            f(a[None, None], b[None, None])  # 5-D
        with pytest.raises(InvalidInputError):
            f(a, b, data_range=0)
        with pytest.raises(InvalidInputError):
            f(a, b, data_range="full")
        with pytest.raises(InvalidInputError):
            f(np.array(["x"]), b)
        with pytest.raises(VtonFileNotFoundError):
            f(a, "/nonexistent/image.png")
        with pytest.raises(InvalidInputError):
            f([a, a], [b])
    with pytest.raises(InvalidInputError):
        metrics.ssim(a, b, window="box")
    with pytest.raises(InvalidInputError):
        metrics.ssim(a, b, window=7)
    with pytest.raises(InvalidInputError):
        metrics.ssim(a, b, convention="matlab")
    with pytest.raises(InvalidInputError):
        metrics.ssim(a, b, window="uniform", convention="torchmetrics")
    with pytest.raises(InvalidInputError):
        metrics.ssim(a6[:5, :5], a6[:5, :5])  # smaller than the 11x11 window
    with pytest.raises(InvalidInputError):
        metrics.ms_ssim(a6, a6)  # 64x48: MS-SSIM needs more than 160 px
    with pytest.raises(InvalidInputError):
        metrics.ms_ssim(a, b, weights=[])
    with pytest.raises(InvalidInputError):
        metrics.ms_ssim(a, b, weights=["x"])


# ---------------------------------------------------------------------------------------
# LPIPS


@pytest.fixture(scope="module")
def lpips_alex():
    return metrics.LPIPS.from_checkpoint(LPIPS_ALEX, net="alex", lin=LPIPS_ALEX)


def lpips_close(got, want):
    close(got, want, 1e-6, 1e-4)


def test_lpips_alex_matches_lpips(lpips_alex, pairs, pair_tensors):
    assert lpips_alex.net == "alex" and lpips_alex.normalization == "lpips"
    assert lpips_alex.tap_channels == [8, 24, 48, 32, 32]
    assert lpips_alex.min_input_size == 31
    for i in (6, 1):
        a, b = u8(pair_tensors, i)
        want = pairs[i]["metrics"]["lpips.alex.m1p1"]
        got = lpips_alex(a, b)
        assert isinstance(got, float)
        lpips_close(got, want)
        # float NCHW / CHW in [-1, 1] (ToTensor * 2 - 1), and [0, 1] with normalize=True
        ta = a.astype(np.float32).transpose(2, 0, 1) / 255
        tb = b.astype(np.float32).transpose(2, 0, 1) / 255
        lpips_close(lpips_alex(ta * 2 - 1, tb * 2 - 1), want)
        lpips_close(lpips_alex(ta, tb, normalize=True), want)
        lpips_close(float(lpips_alex(ta[None] * 2 - 1, tb[None] * 2 - 1)[0]), want)
        # the trap: [0, 1] images without normalize give another value (as in lpips)
        if i == 6:
            lpips_close(lpips_alex(ta, tb), pairs[i]["metrics"]["lpips.alex.01_without_normalize_trap"])
        per_layer = lpips_alex.distance_per_layer(a, b)
        assert per_layer.shape == (1, 5)
        lpips_close(float(per_layer.sum()), want)


def test_lpips_batches_pil_and_paths(lpips_alex, pairs, pair_tensors, tmp_path):
    from PIL import Image
    a, b = u8(pair_tensors, 6)
    want = pairs[6]["metrics"]["lpips.alex.m1p1"]
    batch = lpips_alex(np.stack([a, b]), np.stack([b, b]))
    assert isinstance(batch, np.ndarray) and batch.shape == (2,)
    lpips_close(float(batch[0]), want)
    assert abs(float(batch[1])) < 1e-7
    lpips_close(float(lpips_alex([a, a], [b, b])[1]), want)
    pa, pb = tmp_path / "a.png", tmp_path / "b.png"
    Image.fromarray(a).save(pa)
    Image.fromarray(b).save(pb)
    lpips_close(lpips_alex(pa, Image.open(pb)), want)
    # HR-VITON: PIL bilinear 128x128 (stored), ToTensor, Normalize(0.5, 0.5)
    a128, b128 = u8(pair_tensors, 6, "_128")
    lpips_close(lpips_alex(a128, b128), pairs[6]["metrics"]["lpips.alex.hrviton_128"])


def test_lpips_loads_the_fixture_file_and_split_files(pairs, pair_tensors, tmp_path):
    a, b = u8(pair_tensors, 6)
    want = pairs[6]["metrics"]["lpips.alex.m1p1"]
    # one file, no lin argument: its own lin layers (under lpips_alex.lin.) are used
    lpips_close(metrics.LPIPS.from_checkpoint(LPIPS_ALEX)(a, b), want)
    # the two parts as separate files with the original keys
    w = read_safetensors(LPIPS_ALEX)
    backbone = {k[len("lpips_alex.backbone."):]: v for k, v in w.items() if k.startswith("lpips_alex.backbone.")}
    lin = {k[len("lpips_alex.lin."):]: v for k, v in w.items() if k.startswith("lpips_alex.lin.")}
    assert "features.0.weight" in backbone and "lin0.model.1.weight" in lin
    write_safetensors(tmp_path / "alexnet.safetensors", backbone)
    write_safetensors(tmp_path / "alex_lin.safetensors", lin)
    model = metrics.LPIPS.from_checkpoint(tmp_path / "alexnet.safetensors", "alex", tmp_path / "alex_lin.safetensors")
    lpips_close(model(a, b), want)
    tm = metrics.LPIPS.from_checkpoint(tmp_path / "alexnet.safetensors", "alex",
                                       str(tmp_path / "alex_lin.safetensors"), normalization="torchmetrics")
    assert tm.normalization == "torchmetrics"
    lpips_close(tm(a, b), pairs[6]["metrics"]["lpips.alex.torchmetrics_1_9_m1p1"])
    # the reduced backbone with the bundled full-width lin layers does not fit
    with pytest.raises(CheckpointError):
        metrics.LPIPS.from_checkpoint(tmp_path / "alexnet.safetensors", "alex")


def test_lpips_errors(lpips_alex, pair_tensors):
    a, b = u8(pair_tensors, 6)
    a1, _ = u8(pair_tensors, 1)
    with pytest.raises(InvalidInputError):
        lpips_alex(a, a1)  # sizes differ
    with pytest.raises(InvalidInputError):
        lpips_alex(a[:20, :20], b[:20, :20])  # below alexnet's 31 px
    with pytest.raises(InvalidInputError):
        lpips_alex(a.astype(np.float32) / 255, b.astype(np.float32) / 255)  # float HWC, not CHW
    with pytest.raises(InvalidInputError):
        lpips_alex(a[..., :2], b[..., :2])
    with pytest.raises(InvalidInputError):
        lpips_alex(a.astype(np.int64), b.astype(np.int64))
    with pytest.raises(InvalidInputError):
        metrics.LPIPS.from_checkpoint(LPIPS_ALEX, net="resnet")
    with pytest.raises(InvalidInputError):
        metrics.LPIPS.from_checkpoint(LPIPS_ALEX, normalization="mean")
    with pytest.raises(VtonFileNotFoundError):
        metrics.LPIPS.from_checkpoint("/nonexistent/alexnet.pth")
    with pytest.raises(CheckpointError):
        metrics.LPIPS.from_checkpoint(INCEPTION, net="alex", lin=LPIPS_ALEX)  # not an alexnet


# ---------------------------------------------------------------------------------------
# FID and KID


def test_frechet_distance_on_the_stored_statistics(fid_json, fid_tensors):
    t, r = fid_tensors, fid_json["results"]
    got = metrics.frechet_distance(t["fid.set1.mu"], t["fid.set1.sigma"], t["fid.set2.mu"], t["fid.set2.sigma"])
    assert isinstance(got, float)
    close(got, r["fid_pytorch_fid"], 1e-2, 1e-4)
    close(got, r["frechet_details"]["fid_exact_svd"], 1e-6, 1e-8)
    d64 = metrics.frechet_distance(t["frechet_d64.mu1"], t["frechet_d64.sigma1"], t["frechet_d64.mu2"],
                                   t["frechet_d64.sigma2"])
    close(d64, r["frechet_d64"]["fid_pytorch_fid"], 1e-6, 1e-8)
    with pytest.raises(InvalidInputError):
        metrics.frechet_distance(t["fid.set1.mu"], t["fid.set1.sigma"], t["frechet_d64.mu2"], t["frechet_d64.sigma2"])
    with pytest.raises(InvalidInputError):
        metrics.frechet_distance(t["fid.set1.mu"][None], t["fid.set1.sigma"], t["fid.set2.mu"], t["fid.set2.sigma"])
    with pytest.raises(InvalidInputError):
        metrics.frechet_distance(t["fid.set1.mu"], t["fid.set1.sigma"][:10], t["fid.set2.mu"], t["fid.set2.sigma"])


def test_kid_on_the_stored_features(fid_json, fid_tensors):
    t, k = fid_tensors, fid_json["results"]["kid"]
    f1, f2 = t["fid.set1.features"], t["fid.set2.features"]
    idx = (t["kid.subset_indices_set1"], t["kid.subset_indices_set2"])
    mean, std = metrics.kid(f1, f2, subset_indices=idx)
    close(mean, k["kid_mean_float32_features"], 1e-4, 1e-3)
    close(std, k["kid_std_float32_features"], 1e-4, 1e-3)
    # torch-fidelity's own draws: RandomState(2020) picks the stored subsets
    drawn = metrics.kid(f1, f2, subsets=k["kid_subsets"], subset_size=k["kid_subset_size"])
    np.testing.assert_allclose(drawn, (mean, std), rtol=1e-12)
    other = metrics.kid(f1, f2, subsets=10, subset_size=8, seed=1)
    assert other != drawn
    with pytest.raises(InvalidInputError):
        metrics.kid(f1, f2)  # subset_size 1000 > 12 images, as torch-fidelity raises
    with pytest.raises(InvalidInputError):
        metrics.kid(f1, f2[:, :100], subsets=2, subset_size=4)
    with pytest.raises(InvalidInputError):
        metrics.kid(f1, f2, subset_indices=(idx[0], idx[1][:50]))
    with pytest.raises(InvalidInputError):
        metrics.kid(f1, f2, subset_indices=(idx[0] + 100, idx[1]))
    with pytest.raises(InvalidInputError):
        metrics.kid(f1, f2, subset_indices=(idx[0].astype(np.float64), idx[1]))
    with pytest.raises(InvalidInputError):
        metrics.kid(f1, f2, subset_indices=idx[0])
    with pytest.raises(InvalidInputError):
        metrics.kid(f1, f2, subsets=-1, subset_size=8)
    with pytest.raises(InvalidInputError):
        metrics.kid(f1, f2, subsets=2, subset_size=8, seed=2**40)


@pytest.fixture(scope="module")
def fid_model():
    return metrics.FID.from_checkpoint(INCEPTION)


def test_fid_update_compute_on_the_stored_images(fid_model, fid_json, fid_tensors):
    t, r = fid_tensors, fid_json["results"]
    fid = fid_model
    fid.reset()
    assert fid.feature_dim == 256 and fid.counts == (0, 0)
    s1, s2 = t["fid.set1.images_u8"], t["fid.set2.images_u8"]
    # the features agree with pytorch-fid's
    feats = fid.features(s1)
    assert feats.shape == (12, 256) and feats.dtype == np.float32
    np.testing.assert_allclose(feats, t["fid.set1.features"], atol=2e-3, rtol=2e-3)
    fid.update(s1, real=True)
    fid.update(list(s2[:4]), real=False)  # a list of (H, W, 3) images
    fid.update(s2[4:], False)
    assert fid.counts == (12, 10)
    got = fid.compute()
    assert isinstance(got, float)
    close(got, r["fid_pytorch_fid"], 1e-2, 1e-4)
    mu, sigma = fid.statistics(real=True)
    assert mu.shape == (256,) and sigma.shape == (256, 256) and mu.dtype == np.float64
    np.testing.assert_allclose(mu, t["fid.set1.mu"], atol=2e-3, rtol=2e-3)
    # the stored features: pytorch-fid's value with the exact trace of the square root
    # (scipy's sqrtm is 1.2e-5 off on these singular statistics)
    fid.reset()
    fid.update_features(t["fid.set1.features"], real=True)
    fid.update_features(t["fid.set2.features"], real=False)
    close(fid.compute(), r["frechet_details"]["fid_exact_svd"], 1e-6, 1e-8)
    fid.reset()


def test_fid_float_pil_and_path_inputs(fid_model, fid_tensors, tmp_path):
    from PIL import Image
    s1 = fid_tensors["fid.set1.images_u8"][:2]
    want = fid_model.features(s1)
    f01 = s1.astype(np.float32).transpose(0, 3, 1, 2) / 255  # ToTensor
    np.testing.assert_allclose(fid_model.features(f01), want, atol=1e-5)
    np.testing.assert_allclose(fid_model.features(f01[0]), want[:1], atol=1e-5)
    paths = []
    for i, im in enumerate(s1):
        paths.append(tmp_path / f"{i}.png")
        Image.fromarray(im).save(paths[-1])
    np.testing.assert_allclose(fid_model.features(paths), want, atol=1e-5)
    np.testing.assert_allclose(fid_model.features([Image.open(paths[0]), str(paths[1])]), want, atol=1e-5)
    # images of other sizes in one list are fine (resized to 299 inside)
    mixed = fid_model.features([s1[0], s1[1][:200, :150]])
    assert mixed.shape == (2, 256)
    np.testing.assert_allclose(mixed[0], want[0], atol=1e-5)


def test_fid_errors(fid_model, fid_tensors):
    fid = fid_model
    fid.reset()
    s1 = fid_tensors["fid.set1.images_u8"]
    fid.update(s1[:1], real=True)
    with pytest.raises(InvalidInputError):
        fid.compute()  # one image: no covariance, no generated set
    with pytest.raises(InvalidInputError):
        fid.update(s1[0][..., :2], real=True)  # two channels
    with pytest.raises(VtonFileNotFoundError):
        fid.update([s1[0], "/nonexistent/x.png", s1[1]], real=True)
    assert fid.counts == (1, 0)  # a failing update adds nothing
    with pytest.raises(InvalidInputError):
        fid.update([], real=True)
    with pytest.raises(InvalidInputError):
        fid.update_features(np.zeros((3, 10), np.float32), real=True)
    with pytest.raises(InvalidInputError):
        fid.update_features(np.zeros(256, np.float32), real=True)
    with pytest.raises(InvalidInputError):
        fid.statistics(real=False)
    with pytest.raises(InvalidInputError):
        fid.update(np.zeros((2, 299, 299, 3), np.float32), real=True)  # float images are NCHW
    with pytest.raises(VtonFileNotFoundError):
        metrics.FID.from_checkpoint("/nonexistent/pt_inception.pth")
    with pytest.raises(CheckpointError):
        metrics.FID.from_checkpoint(LPIPS_ALEX)
    fid.reset()


def test_kid_update_compute_on_the_stored_images(fid_json, fid_tensors):
    t, k = fid_tensors, fid_json["results"]["kid"]
    kid = metrics.KID.from_checkpoint(INCEPTION, subsets=k["kid_subsets"], subset_size=k["kid_subset_size"])
    assert (kid.subsets, kid.subset_size, kid.seed) == (100, 8, 2020)
    kid.update(t["fid.set1.images_u8"], real=True)
    kid.update(t["fid.set2.images_u8"], real=False)
    assert kid.counts == (12, 10)
    mean, std = kid.compute()
    assert isinstance(mean, float) and isinstance(std, float)
    # features within 2e-3 of pytorch-fid's: KID within the fixture's tolerance
    close(mean, k["kid_mean_float32_features"], 1e-4, 1e-3)
    close(std, k["kid_std_float32_features"], 1e-4, 1e-3)
    kid.reset()
    kid.update_features(t["fid.set1.features"], real=True)
    kid.update_features(t["fid.set2.features"], real=False)
    mean, std = kid.compute()
    close(mean, k["kid_mean_float32_features"], 1e-6, 1e-5)
    big = metrics.KID.from_checkpoint(INCEPTION)  # subset_size 1000 > 12 images
    big.update_features(t["fid.set1.features"], real=True)
    big.update_features(t["fid.set2.features"], real=False)
    with pytest.raises(InvalidInputError):
        big.compute()
    with pytest.raises(InvalidInputError):
        metrics.KID.from_checkpoint(INCEPTION, subsets=-1)
