"""The ``device=`` keyword of the Python API: ``device="cpu"`` is the default (same
results, bit for bit), every object reports its canonical device, a bad name is an
``InvalidInputError`` naming the accepted names and the compiled backends, and a backend
this wheel lacks is an ``UnsupportedError`` (not a panic)."""
import json
import pathlib

import numpy as np
import pytest

import vton
from vton import metrics
from test_vton import _read_safetensors

ROOT = pathlib.Path(__file__).resolve().parents[2]
EX = ROOT / "examples"
FIX = ROOT / "tests" / "fixtures"
GAN = FIX / "gan"
TINY = FIX / "tiny_inpaint_pipeline"
LPIPS_ALEX = FIX / "metrics" / "metrics_weights_lpips_alex.safetensors"
INCEPTION = FIX / "metrics" / "metrics_weights_fid_inception.safetensors"
MODELS = ROOT / "vton-core" / "models" / "mediapipe"
P = EX / "person" / "openvto_ai_avatar1_upper"
G = EX / "garment" / "openvto_shirt2_front"
BACKENDS = vton.compiled_backends()


def test_compiled_backends():
    assert BACKENDS[0] == "cpu"
    assert set(BACKENDS) <= {"cpu", "wgpu", "cuda"} and len(set(BACKENDS)) == len(BACKENDS)


def test_geometric_try_on_on_cpu_equals_default():
    args = (f"{P}.png", f"{G}.png", f"{P}_keypoints.json")
    kw = dict(person_mask=f"{P}_mask.png", garment_mask=f"{G}_mask.png")
    a = vton.try_on(*args, **kw)
    b = vton.try_on(*args, **kw, device="cpu")
    for field in ("image", "agnostic_mask", "warped_garment", "warped_mask"):
        np.testing.assert_array_equal(getattr(b, field), getattr(a, field), err_msg=field)
    tps = vton.TpsGridGen(32, 24, grid_size=3, device="flex")
    assert tps.device == "cpu"
    theta = np.random.default_rng(0).normal(0, 0.1, (1, 18)).astype(np.float32)
    np.testing.assert_array_equal(tps(theta), vton.TpsGridGen(32, 24, grid_size=3)(theta))
    x = np.random.default_rng(1).random((1, 2, 5, 6), dtype=np.float32)
    grid = tps(theta)
    np.testing.assert_array_equal(vton.grid_sample(x, grid, device=" CPU "), vton.grid_sample(x, grid))


def test_diffusion_pipeline_on_cpu_equals_default():
    t = _read_safetensors(FIX / "catvton_reference.safetensors")
    default = vton.InpaintTryOnPipeline.from_pretrained(TINY)
    cpu = vton.InpaintTryOnPipeline.from_pretrained(TINY, device="cpu")
    assert (default.device, cpu.device) == ("cpu", "cpu")
    args = (t["input.person"], t["input.mask"], t["input.garment"], t["input.mask"])
    a = default(*args, steps=2, seed=3, strength=0.5)
    b = cpu(*args, steps=2, seed=3, strength=0.5)
    assert a.shape == (1, 3, 64, 48)
    np.testing.assert_array_equal(a, b)
    vae = vton.AutoencoderKL.from_pretrained(TINY / "vae", device="cpu")
    post = vae.encode(t["input.person"] * 2 - 1)
    assert vae.device == post.device == "cpu"
    np.testing.assert_array_equal(post.mean, vton.AutoencoderKL.from_pretrained(TINY / "vae").encode(
        t["input.person"] * 2 - 1).mean)
    assert vton.UNet2DConditionModel.from_pretrained(TINY / "unet", device="cpu").device == "cpu"
    assert vton.CatVTONPipeline.from_pretrained(TINY, attn_checkpoint=FIX / "catvton_attention",
                                                device="cpu").device == "cpu"
    s1 = vton.DDIMScheduler.from_pretrained(TINY, device="cpu")
    s2 = vton.DDIMScheduler.from_pretrained(TINY)
    assert s1.device == s2.device == "cpu" and "device" not in s1.config
    s1.set_timesteps(4)
    s2.set_timesteps(4)
    z = np.random.default_rng(2).normal(size=(1, 4, 8, 6)).astype(np.float32)
    np.testing.assert_array_equal(s1.step(z, int(s1.timesteps[0]), z), s2.step(z, int(s2.timesteps[0]), z))


def test_gan_model_on_cpu_equals_default():
    t = _read_safetensors(GAN / "cpvton_gmm.safetensors")
    default = vton.GMM.from_checkpoint(GAN / "cpvton_gmm.pth", grid_size=5, fine_height=256, fine_width=192)
    cpu = vton.GMM.from_checkpoint(GAN / "cpvton_gmm.pth", grid_size=5, fine_height=256, fine_width=192,
                                   device="cpu")
    assert (default.device, cpu.device) == ("cpu", "cpu")
    for x, y in zip(default(t["input.agnostic"], t["input.cm"]), cpu(t["input.agnostic"], t["input.cm"])):
        np.testing.assert_array_equal(x, y)
    tom = vton.TOM.from_checkpoint(GAN / "cpvton_tom.pth", ngf=8, device="cpu")
    assert tom.device == "cpu"
    cp = vton.CPVTONPipeline.from_checkpoints(GAN / "cpvton_gmm.pth", GAN / "cpvton_tom.pth", ngf=8, device="cpu")
    assert cp.device == "cpu"


def test_metric_on_cpu_equals_default():
    rng = np.random.default_rng(4)
    x0 = rng.uniform(-1, 1, (2, 3, 40, 36)).astype(np.float32)
    x1 = rng.uniform(-1, 1, (2, 3, 40, 36)).astype(np.float32)
    default = metrics.LPIPS.from_checkpoint(LPIPS_ALEX, net="alex", lin=LPIPS_ALEX)
    cpu = metrics.LPIPS.from_checkpoint(LPIPS_ALEX, net="alex", lin=LPIPS_ALEX, device="cpu")
    assert (default.device, cpu.device) == ("cpu", "cpu")
    a, b = default(x0, x1), cpu(x0, x1)
    assert a.shape == (2,) and np.all(a > 0)
    np.testing.assert_array_equal(a, b)
    assert metrics.FID.from_checkpoint(INCEPTION, device="cpu").device == "cpu"
    assert metrics.KID.from_checkpoint(INCEPTION, subsets=2, subset_size=2, device="cpu").device == "cpu"


def test_estimation_objects_report_their_device():
    seg = vton.TFLiteModel(MODELS / "selfie_segmentation.tflite", device="cpu")
    assert seg.device == "cpu"
    np.testing.assert_array_equal(vton.segment_person(f"{P}.png", device="cpu"), vton.segment_person(f"{P}.png"))
    schp = FIX / "schp"
    spec = json.loads((schp / "schp_lip.json").read_text())["e2e"]["cases"]["e2e_121x97"]
    parser = vton.HumanParser.from_checkpoint(schp / "schp_lip.pth", input_size=tuple(spec["input_size_hw"]),
                                              device="cpu")
    assert parser.device == "cpu"


# Every loader, with arguments that would otherwise succeed: the device is checked first
# or the model fails to load on it; either way the typed exception, no object.
LOADERS = {
    "try_on": lambda d: vton.try_on(f"{P}.png", f"{G}.png", f"{P}_keypoints.json", person_mask=f"{P}_mask.png",
                                    garment_mask=f"{G}_mask.png", device=d),
    "grid_sample": lambda d: vton.grid_sample(np.zeros((1, 1, 2, 2), np.float32), np.zeros((1, 2, 2, 2), np.float32),
                                              device=d),
    "TpsGridGen": lambda d: vton.TpsGridGen(8, 6, device=d),
    "estimate_pose": lambda d: vton.estimate_pose(f"{P}.png", device=d),
    "segment_person": lambda d: vton.segment_person(f"{P}.png", device=d),
    "TFLiteModel": lambda d: vton.TFLiteModel(MODELS / "selfie_segmentation.tflite", device=d),
    "HumanParser": lambda d: vton.HumanParser.from_checkpoint(FIX / "schp" / "schp_lip.pth", device=d),
    "GMM": lambda d: vton.GMM.from_checkpoint(GAN / "cpvton_gmm.pth", device=d),
    "TOM": lambda d: vton.TOM.from_checkpoint(GAN / "cpvton_tom.pth", ngf=8, device=d),
    "ConditionGenerator": lambda d: vton.ConditionGenerator.from_checkpoint(GAN / "hrviton_tocg.pth", ngf=8, device=d),
    "HRVitonGenerator": lambda d: vton.HRVitonGenerator.from_checkpoint(GAN / "hrviton_gen.pth", device=d),
    "CPVTONPipeline": lambda d: vton.CPVTONPipeline.from_checkpoints(GAN / "cpvton_gmm.pth", GAN / "cpvton_tom.pth",
                                                                     ngf=8, device=d),
    "HRVitonPipeline": lambda d: vton.HRVitonPipeline.from_checkpoints(GAN / "hrviton_tocg.pth",
                                                                       GAN / "hrviton_gen.pth", device=d),
    "AutoencoderKL": lambda d: vton.AutoencoderKL.from_pretrained(TINY / "vae", device=d),
    "UNet2DConditionModel": lambda d: vton.UNet2DConditionModel.from_pretrained(TINY / "unet", device=d),
    "DDIMScheduler": lambda d: vton.DDIMScheduler.from_pretrained(TINY, device=d),
    "DPMSolverMultistepScheduler": lambda d: vton.DPMSolverMultistepScheduler(device=d),
    "CatVTONPipeline": lambda d: vton.CatVTONPipeline.from_pretrained(TINY, device=d),
    "InpaintTryOnPipeline": lambda d: vton.InpaintTryOnPipeline.from_pretrained(TINY, device=d),
    "LPIPS": lambda d: metrics.LPIPS.from_checkpoint(LPIPS_ALEX, lin=LPIPS_ALEX, device=d),
    "FID": lambda d: metrics.FID.from_checkpoint(INCEPTION, device=d),
    "KID": lambda d: metrics.KID.from_checkpoint(INCEPTION, device=d),
    "GMMTrainer": lambda d: vton.train.GMMTrainer(None, fine_height=64, fine_width=48, device=d),
}


@pytest.mark.parametrize("name", sorted(LOADERS))
def test_unknown_device_is_invalid_input_naming_the_choices(name):
    with pytest.raises(vton.InvalidInputError) as e:
        LOADERS[name]("nonsense")
    msg = str(e.value)
    assert isinstance(e.value, ValueError)
    assert "'nonsense'" in msg
    for choice in ("'cpu'", "'wgpu'", "'cuda'", "'cuda:N'"):
        assert choice in msg, msg
    assert f"backends in this build: {', '.join(BACKENDS)}" in msg, msg


@pytest.mark.parametrize("name", sorted(LOADERS))
def test_missing_gpu_backend_is_unsupported(name):
    if "cuda" in BACKENDS:
        pytest.skip("this wheel has the cuda backend")
    with pytest.raises(vton.UnsupportedError) as e:
        LOADERS[name]("cuda")
    msg = str(e.value)
    assert "no cuda backend" in msg and "--features cuda" in msg, msg
    assert f"backends in this build: {', '.join(BACKENDS)}" in msg, msg


def test_device_names():
    if "wgpu" not in BACKENDS:
        with pytest.raises(vton.UnsupportedError, match="no wgpu backend"):
            vton.TpsGridGen(8, 6, device="wgpu:1")
    with pytest.raises(vton.InvalidInputError, match="index after ':' must be a number"):
        vton.TpsGridGen(8, 6, device="cuda:x")
    for name in ("cpu", "CPU", " flex ", "cpu:0"):
        assert vton.TpsGridGen(8, 6, device=name).device == "cpu"
    with pytest.raises(TypeError):
        vton.TpsGridGen(8, 6, device=0)  # type: ignore[arg-type]


def test_device_is_keyword_only_and_read_only():
    with pytest.raises(TypeError):
        vton.TpsGridGen(8, 6, 5, "cpu")  # type: ignore[misc]
    with pytest.raises(TypeError):
        vton.GMM.from_checkpoint(GAN / "cpvton_gmm.pth", 5, 256, 192, "cpu")  # type: ignore[misc]
    gmm = vton.GMM.from_checkpoint(GAN / "cpvton_gmm.pth")
    with pytest.raises(AttributeError):
        gmm.device = "cuda"  # type: ignore[misc]
    cp = vton.CPVTONPipeline.from_checkpoints(GAN / "cpvton_gmm.pth", GAN / "cpvton_tom.pth", ngf=8)
    with pytest.raises(AttributeError):
        cp.device = "cuda"  # type: ignore[misc]
