//! Image-quality metrics as try-on papers report them: PSNR, SSIM, MS-SSIM, LPIPS, FID
//! and KID, each under a named convention so that a figure from vton can be put next to
//! the package (and so the paper) it comes from.
//!
//! | metric | function / type | conventions |
//! |---|---|---|
//! | PSNR | [`psnr`] | scikit-image (`peak_signal_noise_ratio`, float64 MSE per image), torchmetrics' pooled batch MSE ([`psnr_pooled`]) |
//! | SSIM | [`ssim`] with [`SsimConvention`] | scikit-image Gaussian (= pytorch-msssim), scikit-image default 7x7 uniform, torchmetrics 1.9 and up to 1.4.1 |
//! | MS-SSIM | [`ms_ssim`] | pytorch-msssim 1.0 |
//! | LPIPS | [`lpips::Lpips`] | lpips 0.1.4 v0.1 (alex, squeeze, vgg); torchmetrics' eps placement as an option |
//! | FID | [`fid::Fid`], [`fid::frechet_distance`] | pytorch-fid 0.3.0 (its InceptionV3, its resize, `np.cov`, the trace of the principal square root) |
//! | KID | [`kid::Kid`], [`kid::kid`] | torch-fidelity 0.4.0 (cubic polynomial kernel, unbiased MMD², subsets drawn by `RandomState(2020)`) |
//!
//! PSNR, SSIM and MS-SSIM are computed on the host in float64 from [`MetricImage`]s
//! (uint8 images are exact there; float images are widened); LPIPS and the Inception
//! features run on a burn [`Device`](burn::tensor::Device) in float32, and FID / KID
//! statistics are accumulated in float64.
//!
//! ```no_run
//! use vton_core::metrics::*;
//! # fn main() -> vton_core::Result<()> {
//! let device = vton_core::default_device();
//! let (pred, gt) = (MetricImage::read("pred/00001_00.png")?, MetricImage::read("gt/00001_00.jpg")?);
//! let s = ssim(&pred, &gt, SsimConvention::SkimageGaussian, 255.0)?;
//! let p = psnr(&pred, &gt, 255.0)?;
//! let lpips = Lpips::from_checkpoint("alexnet-owt-7be5be79.pth", LpipsNet::Alex, None, &device)?;
//! let x0 = MetricImage::batch_tensor(&[&pred], 2.0 / 255.0, -1.0, &device)?; // [-1, 1]
//! let x1 = MetricImage::batch_tensor(&[&gt], 2.0 / 255.0, -1.0, &device)?;
//! let d = lpips.distance(x0, x1)?[0];
//! let mut fid = Fid::from_checkpoint("pt_inception-2015-12-05-6726825d.pth", &device)?;
//! fid.update(MetricImage::batch_tensor(&[&gt], 1.0 / 255.0, 0.0, &device)?, true)?; // [0, 1]
//! fid.update(MetricImage::batch_tensor(&[&pred], 1.0 / 255.0, 0.0, &device)?, false)?;
//! // (FID needs at least two images per set)
//! println!("SSIM {s:.4}  PSNR {p:.2} dB  LPIPS {d:.4}  FID {:.2}", fid.compute()?.value);
//! # Ok(()) }
//! ```

pub mod fid;
pub mod image;
pub mod kid;
pub mod linalg;
pub mod lpips;
pub mod ssim;

pub use fid::{frechet_distance, FeatureStatistics, Fid, FrechetDistance};
pub use image::{MetricImage, PilFilter};
pub use kid::{kid, Kid, KidOptions, KidResult};
pub use lpips::{Lpips, LpipsNet, LpipsNormalization};
pub use ssim::{
    ms_ssim, psnr, psnr_pooled, ssim, MsSsimOptions, SsimConvention, SsimOptions, SsimWindow,
};
