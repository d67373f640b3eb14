//! DanMenCas/DCI-VITON's noise schedule (`diffusionmodel.py` `NoiseScheduler`) and the
//! sampling loop of its `viton_pipeline.py` (`VitonPipeline.__call__`), computed in the
//! same float32 / float64 mix as the original.
//!
//! The schedule is plain DDPM: betas from `torch.linspace(1e-4, 0.02, T)` (float32) or the
//! cosine schedule of Nichol & Dhariwal (every operation in float32, clipped to
//! `[1e-4, 0.999]`), `alphas = 1 - betas`, `alphas_cumprod` a cumulative product, and the
//! two square-root tables. Precision notes, checked against torch 2.15 (CPU, AVX-512):
//!
//! * `torch.linspace` in float32 fills the first half as `start + step * i` and the second
//!   as `end - step * (n - 1 - i)`, and the CPU kernel fuses each into one FMA: computed
//!   here with [`f32::mul_add`], bit-identical (a separate multiply and add would differ in
//!   about 200 of the 1000 linear betas by one ulp).
//! * `torch.cumprod` of float32 on the CPU accumulates in float64 and rounds every output
//!   to float32; so does this (bit-identical).
//! * `torch.sqrt` (the two square-root tables) is torch's vectorised float32 square root,
//!   which here rounds a handful of the 1000 linear-schedule entries one ulp away from
//!   the correctly rounded [`f32::sqrt`] used here (6 and 5 entries).
//! * The cosine schedule's `torch.cos` is torch's vectorised float32 cosine, which is not
//!   correctly rounded; here the cosine is correctly rounded (float64, then float32), so 51
//!   of the 1001 cosine values differ by one ulp and the cosine betas by up to a few 1e-7
//!   (the tests state the bounds: betas 3e-7 absolute, the other tables 1e-6).
//!
//! The sampler ([`DciVitonSampler`]) is the loop of `VitonPipeline.__call__`: timesteps
//! `torch.linspace(T - 1, 0, n).long()` (n = 200 in the original), the start latent
//! `get_noisy_image(z_cond, timesteps[0], noise)`, then per step
//! `eps = unet(cat([x, z_cond, mask]), t)`, `x0 = (x - sqrt(1 - ab_t) eps) / sqrt(ab_t)`,
//! `x = clamp(sqrt(ab_prev) x0 + sqrt(1 - ab_prev) eps, -1, 1)` with `ab_prev` the next
//! timestep's (`alphas_cumprod[0]` at the last step). The coefficients are Python floats
//! there (`math.sqrt` of `alphas_cumprod[t].item()`, float64); multiplying a float32 tensor
//! by a Python float rounds the scalar to float32 first, which is what happens here.
//!
//! The original decodes `x0` with the VAE after every step and returns the last decode
//! (`clamp(vae.decode(x0 / 0.18215), -1, 1)`); only that one survives, so the sampler
//! returns the final `x0` latent and the caller decodes it once: the same result.

use burn::tensor::{Tensor, TensorData};

use crate::error::{Result, VtonError};
use crate::pipelines::diffusion::{Control, Progress};

use super::ddim::DDIMConfig;
use super::dpm::DPMSolverConfig;
use super::{BetaConfig, DDIMScheduler, DPMSolverMultistepScheduler, Scheduler, TimestepSpacing};

/// The beta schedule of `NoiseScheduler(beta_schedule=...)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum DciBetaSchedule {
    /// `"linear"`: `torch.linspace(1e-4, 0.02, T)` (the pipeline's choice).
    #[default]
    Linear,
    /// `"cosine"`: `1 - abar[t+1] / abar[t]` with `abar = cos(((t/T + s) / (1 + s)) pi/2)^2`,
    /// s = 0.008, clipped to `[1e-4, 0.999]`.
    Cosine,
}

impl DciBetaSchedule {
    /// `"linear"` / `"cosine"`, as the original's `beta_schedule` argument.
    pub fn from_name(name: &str) -> Result<Self> {
        match name {
            "linear" => Ok(DciBetaSchedule::Linear),
            "cosine" => Ok(DciBetaSchedule::Cosine),
            other => Err(VtonError::invalid(
                "beta_schedule",
                format!("unknown beta schedule {other:?} (linear, cosine)"),
            )),
        }
    }
}

/// `torch.linspace(start, end, n, dtype=float32)` as torch's CPU kernel computes it (one
/// FMA per value, filled from both ends).
pub fn torch_linspace_f32(start: f32, end: f32, n: usize) -> Vec<f32> {
    match n {
        0 => Vec::new(),
        1 => vec![start],
        _ => {
            let step = (end - start) / (n - 1) as f32;
            let half = n / 2;
            (0..n)
                .map(|i| {
                    if i < half {
                        step.mul_add(i as f32, start)
                    } else {
                        (-step).mul_add((n - 1 - i) as f32, end)
                    }
                })
                .collect()
        }
    }
}

/// `NoiseScheduler(timesteps, beta_schedule)`: the tables, in float32.
#[derive(Debug, Clone, PartialEq)]
pub struct DciVitonScheduler {
    pub num_timesteps: usize,
    pub schedule: DciBetaSchedule,
    pub betas: Vec<f32>,
    pub alphas: Vec<f32>,
    pub alphas_cumprod: Vec<f32>,
    pub sqrt_alphas_cumprod: Vec<f32>,
    pub sqrt_one_minus_alphas_cumprod: Vec<f32>,
}

impl Default for DciVitonScheduler {
    /// `NoiseScheduler(timesteps=1000, beta_schedule="linear")`, as the pipeline builds it.
    fn default() -> Self {
        Self::new(1000, DciBetaSchedule::Linear).expect("1000 timesteps is valid")
    }
}

fn cosine_betas(t: usize) -> Vec<f32> {
    let s = 0.008f64;
    let tf = t as f32;
    let one_plus_s = (1.0 + s) as f32;
    let pi = std::f64::consts::PI as f32;
    // f_t = cos(((t / T) + s) / (1 + s) * pi / 2) ** 2, every step in float32.
    let f: Vec<f32> = (0..=t)
        .map(|i| {
            let a = (i as f32 / tf + s as f32) / one_plus_s * pi / 2.0;
            let c = (a as f64).cos() as f32;
            c * c
        })
        .collect();
    let f0 = f[0];
    let abar: Vec<f32> = f.iter().map(|v| v / f0).collect();
    let (lo, hi) = (0.0001f64 as f32, 0.999f64 as f32);
    abar.windows(2)
        .map(|w| (1.0f32 - w[1] / w[0]).clamp(lo, hi))
        .collect()
}

impl DciVitonScheduler {
    /// The tables of `NoiseScheduler(timesteps, beta_schedule)`.
    pub fn new(timesteps: usize, schedule: DciBetaSchedule) -> Result<Self> {
        if timesteps == 0 {
            return Err(VtonError::invalid("timesteps", "must be at least 1"));
        }
        let betas = match schedule {
            DciBetaSchedule::Linear => {
                torch_linspace_f32(0.0001f64 as f32, 0.02f64 as f32, timesteps)
            }
            DciBetaSchedule::Cosine => cosine_betas(timesteps),
        };
        let alphas: Vec<f32> = betas.iter().map(|b| 1.0f32 - b).collect();
        let mut acc = 1f64;
        let alphas_cumprod: Vec<f32> = alphas
            .iter()
            .map(|&a| {
                acc *= a as f64;
                acc as f32
            })
            .collect();
        let sqrt_alphas_cumprod = alphas_cumprod.iter().map(|a| a.sqrt()).collect();
        let sqrt_one_minus_alphas_cumprod =
            alphas_cumprod.iter().map(|a| (1.0f32 - a).sqrt()).collect();
        Ok(DciVitonScheduler {
            num_timesteps: timesteps,
            schedule,
            betas,
            alphas,
            alphas_cumprod,
            sqrt_alphas_cumprod,
            sqrt_one_minus_alphas_cumprod,
        })
    }

    /// `alphas_cumprod[t]`.
    pub fn alpha_bar(&self, t: i64) -> Result<f32> {
        usize::try_from(t)
            .ok()
            .and_then(|i| self.alphas_cumprod.get(i).copied())
            .ok_or_else(|| {
                VtonError::invalid(
                    "timestep",
                    format!("{t} is outside 0..{}", self.alphas_cumprod.len()),
                )
            })
    }

    /// Per-sample `(sqrt(ab), sqrt(1 - ab))` columns `[B, 1, 1, 1]` (float32, as
    /// `torch.sqrt` of the indexed table).
    fn coefficient_columns(
        &self,
        x: &Tensor<4>,
        t: &[i64],
        what: &str,
    ) -> Result<(Tensor<4>, Tensor<4>)> {
        let b = x.dims()[0];
        let ts: Vec<i64> = match t.len() {
            1 => vec![t[0]; b],
            n if n == b => t.to_vec(),
            n => {
                return Err(VtonError::Shape {
                    what: format!("{what} timesteps"),
                    expected: format!("1 or {b} (the batch)"),
                    actual: vec![n],
                })
            }
        };
        let mut sa = Vec::with_capacity(b);
        let mut sb = Vec::with_capacity(b);
        for &ti in &ts {
            let ab = self.alpha_bar(ti)?;
            sa.push(ab.sqrt());
            sb.push((1.0f32 - ab).sqrt());
        }
        let dev = x.device();
        let col = |v: Vec<f32>| Tensor::<4>::from_data(TensorData::new(v, [b, 1, 1, 1]), &dev);
        Ok((col(sa), col(sb)))
    }

    /// `get_noisy_image(x_0, t, noise)[0]`: `sqrt(ab_t) x_0 + sqrt(1 - ab_t) noise`. `t`
    /// holds one timestep (a 0-dim or one-element `t`) or one per batch element.
    pub fn get_noisy_image(
        &self,
        x0: &Tensor<4>,
        t: &[i64],
        noise: &Tensor<4>,
    ) -> Result<Tensor<4>> {
        same_shape("noise", noise, x0)?;
        let (sa, sb) = self.coefficient_columns(x0, t, "get_noisy_image")?;
        Ok(x0.clone() * sa + noise.clone() * sb)
    }

    /// `denoise_image(x_t, t, eps)`: `(x_t - sqrt(1 - ab_t) eps) / sqrt(ab_t)`.
    pub fn denoise_image(&self, x_t: &Tensor<4>, t: &[i64], eps: &Tensor<4>) -> Result<Tensor<4>> {
        same_shape("noise prediction", eps, x_t)?;
        let (sa, sb) = self.coefficient_columns(x_t, t, "denoise_image")?;
        Ok((x_t.clone() - eps.clone() * sb) / sa)
    }

    /// `torch.linspace(T - 1, 0, n).long()`: float32 values truncated toward zero.
    pub fn sampling_timesteps(&self, n: usize) -> Result<Vec<i64>> {
        if n == 0 {
            return Err(VtonError::invalid("steps", "must be at least 1"));
        }
        Ok(torch_linspace_f32((self.num_timesteps - 1) as f32, 0.0, n)
            .into_iter()
            .map(|v| v as i64)
            .collect())
    }
}

fn same_shape(what: &str, a: &Tensor<4>, like: &Tensor<4>) -> Result<()> {
    if a.dims() != like.dims() {
        return Err(VtonError::Shape {
            what: what.into(),
            expected: format!("{:?}", like.dims()),
            actual: a.dims().to_vec(),
        });
    }
    Ok(())
}

/// The sampling loop of `VitonPipeline.__call__`, with its step count.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DciVitonSampler {
    /// Number of timesteps (the original: 200).
    pub steps: usize,
}

impl Default for DciVitonSampler {
    fn default() -> Self {
        DciVitonSampler { steps: 200 }
    }
}

/// What [`DciVitonSampler::run`] returns.
#[derive(Debug, Clone)]
pub struct DciSamplerOutput {
    /// The last step's `x0` prediction, a latent: the original returns
    /// `clamp(vae.decode(x0 / 0.18215).sample, -1, 1)` of it. Not clamped.
    pub x0_pred: Tensor<4>,
    /// `x_current` after the last step (updated and clamped as the original does, unused).
    pub x_last: Tensor<4>,
    /// The timesteps that were run.
    pub timesteps: Vec<i64>,
}

impl DciVitonSampler {
    /// A sampler with `steps` timesteps.
    pub fn new(steps: usize) -> Self {
        DciVitonSampler { steps }
    }

    /// `torch.linspace(T - 1, 0, steps).long()`.
    pub fn timesteps(&self, scheduler: &DciVitonScheduler) -> Result<Vec<i64>> {
        scheduler.sampling_timesteps(self.steps)
    }

    /// The start latent: `get_noisy_image(z_cond, timesteps[0], noise)` (the original draws
    /// `noise` with `torch.randn_like`).
    pub fn initial_latent(
        &self,
        scheduler: &DciVitonScheduler,
        z_cond: &Tensor<4>,
        noise: &Tensor<4>,
    ) -> Result<Tensor<4>> {
        let t0 = self.timesteps(scheduler)?[0];
        scheduler.get_noisy_image(z_cond, &[t0], noise)
    }

    /// Runs the loop from `x_init` (`[B, C, h, w]`, see [`DciVitonSampler::initial_latent`]).
    /// `z_cond` is the conditioning latent (`[B, Cz, h, w]`, 4 channels in the original:
    /// the VAE latent of the warped input times 0.18215) and `mask` the latent-size agnostic
    /// mask (`[B, 1, h, w]`; the original's values are -1 / 1 after `Normalize(0.5, 0.5)`).
    /// `predict_noise` gets the U-Net input `cat([x, z_cond, mask], 1)` and the timestep and
    /// returns the noise prediction (`[B, C, h, w]`); `progress` is called after every step
    /// and may cancel ([`VtonError::Cancelled`]).
    pub fn run<F, P>(
        &self,
        scheduler: &DciVitonScheduler,
        x_init: Tensor<4>,
        z_cond: &Tensor<4>,
        mask: &Tensor<4>,
        mut predict_noise: F,
        mut progress: P,
    ) -> Result<DciSamplerOutput>
    where
        F: FnMut(&Tensor<4>, i64) -> Result<Tensor<4>>,
        P: FnMut(Progress) -> Control,
    {
        let [b, _, h, w] = x_init.dims();
        let zd = z_cond.dims();
        if zd[0] != b || zd[2] != h || zd[3] != w {
            return Err(VtonError::Shape {
                what: "z_cond".into(),
                expected: format!("[{b}, C, {h}, {w}] (the latent's batch and size)"),
                actual: zd.to_vec(),
            });
        }
        if mask.dims() != [b, 1, h, w] {
            return Err(VtonError::Shape {
                what: "mask".into(),
                expected: format!("[{b}, 1, {h}, {w}]"),
                actual: mask.dims().to_vec(),
            });
        }
        let ts = self.timesteps(scheduler)?;
        // Check every timestep once, before any model call.
        for &t in &ts {
            scheduler.alpha_bar(t)?;
        }
        let total = ts.len();
        let mut x = x_init;
        let mut x0 = None;
        for (i, &t) in ts.iter().enumerate() {
            let t_prev = if i + 1 < total { ts[i + 1] } else { 0 };
            let input = Tensor::cat(vec![x.clone(), z_cond.clone(), mask.clone()], 1);
            let eps = predict_noise(&input, t)?;
            same_shape("noise prediction", &eps, &x)?;
            // Python floats: alphas_cumprod[t].item() (exact), math.sqrt in float64; the
            // tensor ops round them to float32.
            let ab = scheduler.alpha_bar(t)? as f64;
            let ab_prev = scheduler.alpha_bar(t_prev)? as f64;
            let pred =
                (x - eps.clone().mul_scalar((1.0 - ab).sqrt() as f32)).div_scalar(ab.sqrt() as f32);
            x = (pred.clone().mul_scalar(ab_prev.sqrt() as f32)
                + eps.mul_scalar((1.0 - ab_prev).sqrt() as f32))
            .clamp(-1.0, 1.0);
            x0 = Some(pred);
            if progress(Progress {
                step: i + 1,
                total,
                timestep: t,
            }) == Control::Cancel
            {
                return Err(VtonError::Cancelled { step: i + 1, total });
            }
        }
        Ok(DciSamplerOutput {
            x0_pred: x0.expect("at least one step"),
            x_last: x,
            timesteps: ts,
        })
    }
}

/// How [`crate::pipelines::dci_viton::DciVitonPipeline`] samples the U-Net.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub enum DciSampler {
    /// `viton_pipeline.py`'s loop ([`DciVitonSampler`]): deterministic, the latent
    /// clamped to `[-1, 1]` between steps, the last `x0` prediction decoded.
    #[default]
    Original,
    /// diffusers' `DDIMScheduler` on the same betas ([`DciVitonScheduler::ddim`]); `eta`
    /// above 0 adds DDIM's stochastic term (drawn from the run's seed).
    Ddim { eta: f32 },
    /// diffusers' `DPMSolverMultistepScheduler` (DPM-Solver++, `order` 1 or 2) on the same
    /// betas ([`DciVitonScheduler::dpm_solver`]).
    DpmSolver { order: usize },
}

impl DciSampler {
    /// `original`, `ddim`, `dpm` / `dpm++` / `dpmsolver` (order 2), as the CLI and the
    /// bindings name them.
    pub fn from_name(name: &str, eta: f32) -> Result<Self> {
        match name.trim().to_ascii_lowercase().as_str() {
            "original" | "dci" | "dci-viton" => Ok(DciSampler::Original),
            "ddim" => Ok(DciSampler::Ddim { eta }),
            "dpm" | "dpm++" | "dpmsolver" | "dpm-solver" => Ok(DciSampler::DpmSolver { order: 2 }),
            other => Err(VtonError::invalid(
                "sampler",
                format!("'{other}' is not one of original, ddim, dpm"),
            )),
        }
    }

    /// The vton scheduler for this choice (`None` for [`DciSampler::Original`]).
    pub fn scheduler(&self, schedule: &DciVitonScheduler) -> Result<Option<Box<dyn Scheduler>>> {
        Ok(match *self {
            DciSampler::Original => None,
            DciSampler::Ddim { eta } => {
                if !(eta.is_finite() && eta >= 0.0) {
                    return Err(VtonError::invalid("eta", format!("{eta} (must be >= 0)")));
                }
                Some(Box::new(schedule.ddim()?))
            }
            DciSampler::DpmSolver { order } => Some(Box::new(schedule.dpm_solver(order)?)),
        })
    }

    /// DDIM's `eta` (0 for the deterministic samplers).
    pub fn eta(&self) -> f32 {
        match *self {
            DciSampler::Ddim { eta } => eta,
            _ => 0.0,
        }
    }
}

impl DciVitonScheduler {
    /// These betas as a diffusers schedule (`trained_betas`), so vton's DDIM / DDPM / DPM
    /// schedulers see exactly the tables the U-Net was trained with (the cumulative
    /// product is computed the same way, so `alphas_cumprod` agree bit for bit).
    pub fn beta_config(&self) -> BetaConfig {
        BetaConfig {
            num_train_timesteps: self.num_timesteps,
            trained_betas: Some(self.betas.iter().map(|&b| b as f64).collect()),
            ..BetaConfig::default()
        }
    }

    /// diffusers' `DDIMScheduler(trained_betas=betas, clip_sample=False,
    /// set_alpha_to_one=False, steps_offset=1)` with `"leading"` spacing: Stable
    /// Diffusion's DDIM settings for latents.
    pub fn ddim(&self) -> Result<DDIMScheduler> {
        DDIMScheduler::new(DDIMConfig {
            betas: self.beta_config(),
            clip_sample: false,
            set_alpha_to_one: false,
            steps_offset: 1,
            timestep_spacing: TimestepSpacing::Leading,
            ..DDIMConfig::default()
        })
    }

    /// diffusers' `DPMSolverMultistepScheduler(trained_betas=betas,
    /// algorithm_type="dpmsolver++", solver_order=order)` with `"linspace"` spacing.
    pub fn dpm_solver(&self, order: usize) -> Result<DPMSolverMultistepScheduler> {
        DPMSolverMultistepScheduler::new(DPMSolverConfig {
            betas: self.beta_config(),
            solver_order: order,
            ..DPMSolverConfig::default()
        })
    }
}

/// Samples the DCI-VITON U-Net with a vton scheduler: `steps` inference timesteps, the
/// start latent `add_noise(z_cond, noise, timesteps[0])` (the original also starts from
/// the noised condition latent, not from pure noise), then per timestep
/// `eps = predict_noise(cat([x, z_cond, mask], 1), t)` and `x = step(eps, t, x)`. Returns
/// the final latent (the caller decodes it). No clamp between steps: that is the
/// original loop's rule, not DDIM's or DPM-Solver's.
#[allow(clippy::too_many_arguments)]
pub fn sample_with_scheduler<F, P>(
    scheduler: &mut dyn Scheduler,
    steps: usize,
    z_cond: &Tensor<4>,
    mask: &Tensor<4>,
    noise: &Tensor<4>,
    eta: f32,
    seed: u64,
    mut predict_noise: F,
    mut progress: P,
) -> Result<Tensor<4>>
where
    F: FnMut(&Tensor<4>, i64) -> Result<Tensor<4>>,
    P: FnMut(Progress) -> Control,
{
    if steps == 0 {
        return Err(VtonError::invalid("steps", "must be at least 1"));
    }
    same_shape("noise", noise, z_cond)?;
    let [b, _, h, w] = z_cond.dims();
    if mask.dims() != [b, 1, h, w] {
        return Err(VtonError::Shape {
            what: "mask".into(),
            expected: format!("[{b}, 1, {h}, {w}]"),
            actual: mask.dims().to_vec(),
        });
    }
    scheduler.set_timesteps(steps)?;
    let ts = scheduler.timesteps().to_vec();
    let total = ts.len();
    let mut x = scheduler.add_noise(z_cond.clone(), noise.clone(), &vec![ts[0]; b])?;
    for (i, &t) in ts.iter().enumerate() {
        let input = Tensor::cat(vec![x.clone(), z_cond.clone(), mask.clone()], 1);
        let eps = predict_noise(&input, t)?;
        same_shape("noise prediction", &eps, &x)?;
        x = scheduler
            .step(eps, t, x, eta, None, seed.wrapping_add(i as u64))?
            .prev_sample;
        if progress(Progress {
            step: i + 1,
            total,
            timestep: t,
        }) == Control::Cancel
        {
            return Err(VtonError::Cancelled { step: i + 1, total });
        }
    }
    Ok(x)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timesteps_truncate() {
        let s = DciVitonScheduler::default();
        assert_eq!(
            s.sampling_timesteps(5).unwrap(),
            vec![999, 749, 499, 249, 0]
        );
        assert_eq!(s.sampling_timesteps(1).unwrap(), vec![999]);
        let t200 = s.sampling_timesteps(200).unwrap();
        assert_eq!(&t200[..3], &[999, 993, 988]);
        assert_eq!(t200[199], 0);
        assert!(s.sampling_timesteps(0).is_err());
        assert!(DciBetaSchedule::from_name("quadratic").is_err());
    }
}
