"""Reference for vton's CatVTON support, computed with diffusers on the tiny random models
in tests/fixtures/tiny_inpaint_pipeline (copies of the shared diffusers fixtures).

Run by hand (needs torch + diffusers + pillow; never a dependency of vton or CI):
    python scripts/reference/gen_catvton_fixture.py
Writes tests/fixtures/catvton_attention/attention/model.safetensors (an attention-only
checkpoint saved the way CatVTON saves it: the ModuleList of every module named *attn1*,
with CatVTON-style nn.Module processors, via safetensors' save_model) and
tests/fixtures/catvton_reference.safetensors with:
  unet_skip: U-Net output with those weights and no encoder states, cross-attention
    processors returning their input (CatVTON's SkipAttnProcessor);
  pipeline: CatVTON's sampling procedure (masked person and garment encoded, concatenated
    along height, 9-channel U-Net, DDIM eta 0, guidance 2.5, 4 steps, explicit noise),
    person half decoded, in [0, 1] (before pasting the person back).
The posterior MEAN is used for encoding (CatVTON draws a random sample there).
"""
import numpy as np
import torch
from diffusers import AutoencoderKL, DDIMScheduler, UNet2DConditionModel
from PIL import Image
from safetensors.torch import save_file, save_model

root = "tests/fixtures"
base = f"{root}/tiny_inpaint_pipeline"
torch.manual_seed(7)


class SelfAttnProcessor(torch.nn.Module):
    """diffusers' scaled-dot-product attention, registered as a module (as CatVTON's is)."""

    def __call__(self, attn, hidden_states, encoder_hidden_states=None, attention_mask=None, temb=None, **kw):
        b, n, _ = hidden_states.shape
        ctx = hidden_states if encoder_hidden_states is None else encoder_hidden_states
        q, k, v = attn.to_q(hidden_states), attn.to_k(ctx), attn.to_v(ctx)
        d = k.shape[-1] // attn.heads
        q, k, v = (t.view(b, -1, attn.heads, d).transpose(1, 2) for t in (q, k, v))
        out = torch.nn.functional.scaled_dot_product_attention(q, k, v)
        out = out.transpose(1, 2).reshape(b, -1, attn.heads * d)
        return attn.to_out[1](attn.to_out[0](out))


class Skip(torch.nn.Module):
    def __call__(self, attn, hidden_states, *a, **kw):
        return hidden_states


unet = UNet2DConditionModel.from_pretrained(f"{base}/unet").eval()
procs = {name: (SelfAttnProcessor() if name.endswith("attn1.processor") else Skip())
         for name in unet.attn_processors}
unet.set_attn_processor(procs)
with torch.no_grad():
    for name, p in unet.named_parameters():
        if "attn1" in name:
            p.mul_(1.25).add_(0.05 * torch.randn_like(p))
attn_modules = torch.nn.ModuleList([m for n, m in unet.named_modules() if "attn1" in n])
import os
os.makedirs(f"{root}/catvton_attention/attention", exist_ok=True)
save_model(attn_modules, f"{root}/catvton_attention/attention/model.safetensors")

out = {}
from safetensors.torch import load_file
ref_in = load_file(f"{root}/diffusers_unet_inpaint.safetensors")
with torch.no_grad():
    out["input.unet_sample"] = ref_in["input.sample"]
    out["output.unet_skip_t999"] = unet(ref_in["input.sample"], 999, encoder_hidden_states=None).sample

vae = AutoencoderKL.from_pretrained(f"{base}/vae").eval()
sched = DDIMScheduler.from_pretrained(f"{base}/scheduler")


def load(path, mode, size=(48, 64)):
    im = Image.open(path).convert(mode).resize(size, Image.BILINEAR)
    a = np.asarray(im, dtype=np.float32) / 255.0
    return torch.from_numpy(a.transpose(2, 0, 1) if a.ndim == 3 else a[None])[None]


person = load("examples/person/openvto_ai_avatar1_upper.png", "RGB")
garment = load("examples/garment/openvto_shirt2_front.png", "RGB")
mask = torch.zeros(1, 1, 64, 48)
mask[:, :, 20:52, 8:40] = 1.0
steps, guidance = 4, 2.5
with torch.no_grad():
    def enc(x01):
        return vae.encode(x01 * 2 - 1).latent_dist.mode() * vae.config.scaling_factor

    masked_latent = enc(person * (mask < 0.5))
    cond_latent = enc(garment)
    mask_latent = torch.nn.functional.interpolate(mask, size=masked_latent.shape[-2:], mode="nearest")
    mlc = torch.cat([masked_latent, cond_latent], dim=-2)
    mkc = torch.cat([mask_latent, torch.zeros_like(mask_latent)], dim=-2)
    noise = torch.randn(mlc.shape, generator=torch.Generator().manual_seed(11))
    latents = noise * sched.init_noise_sigma
    mlc = torch.cat([torch.cat([masked_latent, torch.zeros_like(cond_latent)], dim=-2), mlc])
    mkc = torch.cat([mkc] * 2)
    sched.set_timesteps(steps)
    for t in sched.timesteps:
        x = sched.scale_model_input(torch.cat([latents] * 2), t)
        pred = unet(torch.cat([x, mkc, mlc], dim=1), t, encoder_hidden_states=None).sample
        u, c = pred.chunk(2)
        latents = sched.step(u + guidance * (c - u), t, latents, eta=0.0).prev_sample
    latents = latents.split(latents.shape[-2] // 2, dim=-2)[0]
    image = (vae.decode(latents / vae.config.scaling_factor).sample / 2 + 0.5).clamp(0, 1)
out.update({"input.person": person, "input.garment": garment, "input.mask": mask,
            "input.noise": noise, "output.pipeline_image": image})
save_file({k: v.contiguous() for k, v in out.items()}, f"{root}/catvton_reference.safetensors")
print({k: tuple(v.shape) for k, v in out.items()})
