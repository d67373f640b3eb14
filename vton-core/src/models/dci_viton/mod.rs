//! DanMenCas/DCI-VITON (a try-on system trained from scratch on VITON-HD; not the
//! DCI-VTON model of the paper it cites): its multi-scale flow-warping network
//! ([`warping`], `warpingnetwork.py`) and its AdaGN/SE diffusion U-Net ([`unet`],
//! `diffusionmodel.py`). Field names are the original module names, so the
//! `torch.save` checkpoints load as saved.

pub mod files;
pub mod unet;
pub mod warping;
pub use files::{find_checkpoints, resolve_checkpoints, DciVitonFileOverrides, DciVitonFiles};
pub use unet::{DciVitonUNet, DciVitonUNetConfig, DciVitonUNetOptions};
pub use warping::{DciVitonWarping, DciVitonWarpingConfig};
