//! Training: the original scripts' training steps on burn autodiff, with PyTorch's
//! optimisers and the original state-dict keys.
//!
//! - [`params`]: parameters named by checkpoint key (gradients, values, state dicts).
//! - [`optim`]: Adam / AdamW, global-norm clipping and learning-rate schedules.
//! - [`losses`], [`gan`]: the reference scripts' losses.
//! - [`cpvton`], [`hrviton`], [`diffusion`]: one trainer per family.
//! - [`checkpoint`], [`data`]: what a training run reads and writes.
//! - [`run`]: the loop (log, validation, checkpoints, resume, cancel).

pub mod checkpoint;
pub mod cpvton;
pub mod data;
pub mod dci_viton_unet;
pub mod dci_viton_warp;
pub mod diffusion;
pub mod drive;
pub mod drive_unet;
pub mod gan;
pub mod hrviton;
pub mod init;
pub mod losses;
pub mod optim;
pub mod params;
pub mod run;

pub use optim::{clip_grad_norm, Adam, AdamConfig, AdamState, LrSchedule};
pub use params::{HostTensor, NamedParams};
