"""Random-weight Stable Diffusion 1.5 VAE and 1.5-inpainting U-Net, saved in diffusers'
format, so vton and diffusers benchmark the same weights.

Needs torch + diffusers (never a dependency of vton or CI). Usage:
    python scripts/bench/make_sd15_random.py target/bench
Configs are those published with runwayml/stable-diffusion-v1-5 (vae) and
runwayml/stable-diffusion-inpainting (unet); weights are diffusers' default init, seed 0.
"""
import os
import sys

import torch
from diffusers import AutoencoderKL, UNet2DConditionModel

out = sys.argv[1] if len(sys.argv) > 1 else "target/bench"
torch.manual_seed(0)
vae = AutoencoderKL(
    in_channels=3, out_channels=3, latent_channels=4, sample_size=512, layers_per_block=2,
    block_out_channels=[128, 256, 512, 512], norm_num_groups=32, act_fn="silu",
    down_block_types=["DownEncoderBlock2D"] * 4, up_block_types=["UpDecoderBlock2D"] * 4)
vae.save_pretrained(os.path.join(out, "sd15_vae"))
unet = UNet2DConditionModel(
    sample_size=64, in_channels=9, out_channels=4, layers_per_block=2,
    block_out_channels=[320, 640, 1280, 1280], cross_attention_dim=768, attention_head_dim=8,
    down_block_types=["CrossAttnDownBlock2D"] * 3 + ["DownBlock2D"],
    up_block_types=["UpBlock2D"] + ["CrossAttnUpBlock2D"] * 3)
unet.save_pretrained(os.path.join(out, "sd15_inpaint_unet"))
print("wrote", out)
