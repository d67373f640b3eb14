//! Latent-diffusion U-Net fine-tuning (diffusers' training loop).
