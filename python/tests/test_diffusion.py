"""The diffusion surface of vton against the diffusers fixtures (tests/fixtures)."""
import json
import pathlib

import numpy as np
import pytest

import vton
from test_vton import _read_safetensors

ROOT = pathlib.Path(__file__).resolve().parents[2]
FIX = ROOT / "tests" / "fixtures"
TINY = FIX / "tiny_inpaint_pipeline"


def close(got, want, atol=1e-4, rtol=1e-4):
    np.testing.assert_allclose(got, want, atol=atol, rtol=rtol)


def test_autoencoder_kl_matches_diffusers():
    t = _read_safetensors(FIX / "diffusers_vae.safetensors")
    vae = vton.AutoencoderKL.from_pretrained(FIX / "diffusers_vae_pretrained")
    post = vae.encode(t["input.x"])
    close(post.mean, t["output.posterior_mean"])
    close(post.std, t["output.posterior_std"])
    close(post.mode(), t["output.posterior_mean"])
    z = post.sample(noise=t["input.sample_noise"])
    close(z, t["output.posterior_sample"])
    close(vae.decode(z), t["output.decoded_sample"])
    assert vae.scaling_factor == pytest.approx(0.18215)
    np.testing.assert_array_equal(post.sample(seed=3), post.sample(seed=3))
    with pytest.raises(ValueError):
        vae.encode(np.zeros((1, 3, 63, 64), np.float32))


def test_unet_matches_diffusers():
    t = _read_safetensors(FIX / "diffusers_unet_inpaint.safetensors")
    unet = vton.UNet2DConditionModel.from_pretrained(FIX / "diffusers_unet_inpaint_pretrained")
    ehs = t["input.encoder_hidden_states"]
    close(unet(t["input.sample"], 999, encoder_hidden_states=ehs), t["output.sample_t999"])
    close(unet(t["input.sample"], t["input.timesteps_vec"], ehs), t["output.sample_tvec"])
    assert unet(t["input.sample"], 1).shape == (2, 4, 16, 16)
    with pytest.raises(vton.InvalidInputError):
        unet(np.zeros((2, 3, 16, 16), np.float32), 1)


def test_schedulers_match_diffusers_traces():
    t = _read_safetensors(FIX / "diffusers_schedulers.safetensors")
    meta = json.loads((FIX / "diffusers_schedulers.json").read_text())
    for variant in ["ddim.sd15", "ddim.linear.v_prediction", "ddpm.sd15"]:
        cls = vton.DDIMScheduler if variant.startswith("ddim") else vton.DDPMScheduler
        s = cls.from_pretrained(FIX / "diffusers_schedulers_pretrained" / variant)
        s.set_timesteps(20)
        np.testing.assert_array_equal(s.timesteps, t[f"output.{variant}.n20.timesteps"])
        window = "n20.first.eta1" if variant.startswith("ddim") else "n20.first"
        x = t["input.sample"]
        for k, ts in enumerate(meta["variants"][variant]["steps"][window]):
            eta = 1.0 if window.endswith("eta1") else 0.0
            x = s.step(t[f"input.model_output.{k}"], ts, x, eta=eta, variance_noise=t[f"input.variance_noise.{k}"])
            close(x, t[f"output.{variant}.{window}.step{k}.prev_sample"], 1e-5, 1e-5)
        got = s.add_noise(t["input.add_noise.original_samples"], t["input.add_noise.noise"],
                          t["input.add_noise.timesteps"])
        close(got, t[f"output.{variant}.add_noise"], 1e-5, 1e-5)
    dpm = vton.DPMSolverMultistepScheduler.from_config({"beta_schedule": "scaled_linear", "beta_start": 0.00085,
                                                         "beta_end": 0.012})
    dpm.set_timesteps(25)
    assert dpm.timesteps[0] == 999 and len(dpm.timesteps) == 25
    with pytest.raises(vton.UnsupportedError):
        vton.DDIMScheduler(beta_schedule="sigmoid")


def test_catvton_pipeline_matches_reference_and_cancels():
    t = _read_safetensors(FIX / "catvton_reference.safetensors")
    pipe = vton.CatVTONPipeline.from_pretrained(TINY, attn_checkpoint=FIX / "catvton_attention")
    seen = []
    img = pipe(t["input.person"], t["input.garment"], t["input.mask"], steps=4, guidance=2.5,
               noise=t["input.noise"], keep_unmasked=False, callback=lambda s, n, ts: seen.append((s, n)))
    close(img, t["output.pipeline_image"])
    assert seen == [(1, 4), (2, 4), (3, 4), (4, 4)]
    a = pipe(t["input.person"], t["input.garment"], t["input.mask"], steps=2, seed=5)
    b = pipe(t["input.person"], t["input.garment"], t["input.mask"], steps=2, seed=5)
    np.testing.assert_array_equal(a, b)
    outside = t["input.mask"][0, 0] < 0.5
    np.testing.assert_array_equal(a[0][:, outside], t["input.person"][0][:, outside])
    with pytest.raises(vton.CancelledError):
        pipe(t["input.person"], t["input.garment"], t["input.mask"], steps=3, callback=lambda s, n, ts: s < 2)

    def boom(step, total, ts):
        raise KeyError("from the callback")
    with pytest.raises(KeyError):
        pipe(t["input.person"], t["input.garment"], t["input.mask"], steps=3, callback=boom)


def test_inpaint_pipeline_and_bad_checkpoints(tmp_path):
    t = _read_safetensors(FIX / "catvton_reference.safetensors")
    pipe = vton.InpaintTryOnPipeline.from_pretrained(TINY)
    out = pipe(t["input.person"], t["input.mask"], t["input.garment"], t["input.mask"], steps=4, strength=0.5)
    assert out.shape == (1, 3, 64, 48)
    with pytest.raises(vton.VtonFileNotFoundError):
        vton.UNet2DConditionModel.from_pretrained(tmp_path)
    (tmp_path / "config.json").write_text(json.dumps({"block_out_channels": [16, 32]}))
    (tmp_path / "diffusion_pytorch_model.safetensors").write_bytes(b"\x08\x00\x00\x00\x00\x00\x00\x00{bad json")
    with pytest.raises(vton.CheckpointError):
        vton.UNet2DConditionModel.from_pretrained(tmp_path)


def test_half_precision_weights_as_diffusers_torch_dtype_and_variant():
    """torch_dtype= / variant= as diffusers spells them; the same rounded-weight references
    as vton-core/tests/half_weights.rs (diffusers on the rounded weights, float32 compute)."""
    h = _read_safetensors(FIX / "half_weights.safetensors")
    x, ehs = h["unet.input.sample"], h["unet.input.encoder_hidden_states"]
    unet = vton.UNet2DConditionModel.from_pretrained(FIX / "diffusers_unet_inpaint_fp16",
                                                     torch_dtype="float16", variant="fp16")
    assert unet.dtype == "float16"
    close(unet(x, 999, encoder_hidden_states=ehs), h["unet.f16"])

    class TorchLikeDtype:  # torch.bfloat16 prints as "torch.bfloat16"
        def __str__(self):
            return "torch.bfloat16"
    unet = vton.UNet2DConditionModel.from_pretrained(FIX / "diffusers_unet_inpaint_pretrained",
                                                     torch_dtype=TorchLikeDtype())
    assert unet.dtype == "bfloat16"
    close(unet(x, 999, encoder_hidden_states=ehs), h["unet.bf16"])
    vae = vton.AutoencoderKL.from_pretrained(FIX / "diffusers_vae_fp16", torch_dtype="fp16", variant="fp16")
    assert vae.dtype == "float16"
    close(vae.encode(h["vae.input.x"]).mean, h["vae.mean.f16"])
    assert vton.AutoencoderKL.from_pretrained(FIX / "diffusers_vae_pretrained").dtype == "float32"

    # The pipelines take the same keywords; bf16 weights move the image only a little.
    t = _read_safetensors(FIX / "catvton_reference.safetensors")
    args = (t["input.person"], t["input.garment"], t["input.mask"])
    full = vton.CatVTONPipeline.from_pretrained(TINY, attn_checkpoint=FIX / "catvton_attention")(*args, steps=2, seed=1)
    half = vton.CatVTONPipeline.from_pretrained(TINY, attn_checkpoint=FIX / "catvton_attention",
                                                torch_dtype="bfloat16")(*args, steps=2, seed=1)
    err = np.linalg.norm(half - full) / np.linalg.norm(full)
    assert 0 < err < 0.03, err
    inp = vton.InpaintTryOnPipeline.from_pretrained(TINY, torch_dtype="float16")
    assert inp(t["input.person"], t["input.mask"], t["input.garment"], t["input.mask"], steps=2).shape == (1, 3, 64, 48)

    with pytest.raises(vton.InvalidInputError, match="int8"):
        vton.UNet2DConditionModel.from_pretrained(FIX / "diffusers_unet_inpaint_pretrained", torch_dtype="int8")
    with pytest.raises(vton.CheckpointError, match="variant"):
        vton.UNet2DConditionModel.from_pretrained(FIX / "diffusers_unet_inpaint_fp16")
    with pytest.raises(vton.VtonError, match="fp16"):
        vton.InpaintTryOnPipeline.from_pretrained(TINY, variant="fp16")
