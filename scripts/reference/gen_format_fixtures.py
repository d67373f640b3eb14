"""Format fixtures: the diffusers VAE fixture as a torch.save .bin, and a single
safetensors file with a whole pipeline's models under vae./unet. prefixes. Run by hand
(needs torch): python scripts/reference/gen_format_fixtures.py"""
import torch, os, json
from safetensors.torch import load_file
sd = load_file("tests/fixtures/diffusers_vae_pretrained/diffusion_pytorch_model.safetensors")
os.makedirs("tests/fixtures/diffusers_vae_bin", exist_ok=True)
torch.save(sd, "tests/fixtures/diffusers_vae_bin/diffusion_pytorch_model.bin")
import shutil; shutil.copy("tests/fixtures/diffusers_vae_pretrained/config.json", "tests/fixtures/diffusers_vae_bin/config.json")
# A single file holding a whole pipeline's models under their subfolder prefixes.
from safetensors.torch import save_file
u = load_file("tests/fixtures/diffusers_unet_inpaint_pretrained/diffusion_pytorch_model.safetensors")
allk = {f"vae.{k}": v for k, v in sd.items()}
allk.update({f"unet.{k}": v for k, v in u.items()})
save_file(allk, "tests/fixtures/tiny_pipeline_single_file.safetensors")
