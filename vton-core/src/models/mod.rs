//! Learned models, loaded from the checkpoints their authors publish.
//!
//! * [`vae::AutoencoderKL`] and [`unet::UNet2DConditionModel`]: diffusers' latent
//!   diffusion models, from diffusers folders (`config.json` + safetensors / bin).

pub mod attention;
pub mod blocks;
pub mod pretrained;
pub mod unet;
pub mod vae;

pub use attention::{AttentionProcessor, AttnKind, AttnSite, DefaultProcessor};
pub use unet::{Timesteps, UNet2DConditionConfig, UNet2DConditionModel};
pub use vae::{AutoencoderKL, AutoencoderKLConfig, DiagonalGaussian};
pub mod cpvton;
pub mod dci_viton;
pub mod hrviton;
pub mod hrviton_discriminator;
pub mod inception;
pub mod schp;
pub mod segformer;
pub mod torchvision;
