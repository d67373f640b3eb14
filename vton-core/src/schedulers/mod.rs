//! Diffusion schedulers with diffusers' semantics: [`DDPMScheduler`], [`DDIMScheduler`] and
//! the multistep [`DPMSolverMultistepScheduler`] (DPM-Solver++ 2M, what try-on demos use
//! for 20-30 steps). Configs are read from the `scheduler/scheduler_config.json` diffusers
//! writes; unknown keys are ignored and missing keys take diffusers' defaults.
//!
//! Schedules are computed as diffusers computes them in float32 (`torch.linspace` in
//! float32, `squaredcos_cap_v2` in float64 then cast, `1 - beta` cumulative products),
//! and step coefficients are float32 scalars applied to burn tensors.

pub mod dci_viton;
mod ddim;
mod ddpm;
mod dpm;

use std::path::Path;

use burn::tensor::Tensor;
use serde::Deserialize;

pub use ddim::DDIMScheduler;
pub use ddpm::DDPMScheduler;
pub use dpm::DPMSolverMultistepScheduler;

use crate::error::{Result, VtonError};

/// What the denoiser predicts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum PredictionType {
    #[default]
    Epsilon,
    VPrediction,
    Sample,
}

/// How inference timesteps are spread over the training range.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum TimestepSpacing {
    #[default]
    Leading,
    Trailing,
    Linspace,
}

/// The result of one scheduler step.
#[derive(Debug, Clone)]
pub struct StepOutput {
    /// `x_{t-1}`.
    pub prev_sample: Tensor<4>,
    /// The model's estimate of `x_0` at this step (what `clip_sample` clamps).
    pub pred_original_sample: Tensor<4>,
}

/// The interface pipelines drive.
pub trait Scheduler: Send + Sync {
    /// Chooses `n` inference timesteps.
    fn set_timesteps(&mut self, n: usize) -> Result<()>;
    /// The inference timesteps, first (noisiest) first.
    fn timesteps(&self) -> &[i64];
    /// One denoising step. `variance_noise` is used by stochastic steps (DDIM with
    /// `eta > 0`, DDPM at `t > 0`); when it is `None` such steps draw it from `seed`.
    fn step(
        &mut self,
        model_output: Tensor<4>,
        timestep: i64,
        sample: Tensor<4>,
        eta: f32,
        variance_noise: Option<Tensor<4>>,
        seed: u64,
    ) -> Result<StepOutput>;
    /// Noises clean samples to the given timesteps (one per batch element).
    fn add_noise(
        &self,
        original: Tensor<4>,
        noise: Tensor<4>,
        timesteps: &[i64],
    ) -> Result<Tensor<4>>;
    /// The standard deviation of the initial noise.
    fn init_noise_sigma(&self) -> f32 {
        1.0
    }
    /// Scales the denoiser input (identity for these schedulers).
    fn scale_model_input(&self, sample: Tensor<4>, _timestep: i64) -> Tensor<4> {
        sample
    }
    /// The scheduler's class name, as in `_class_name`.
    fn name(&self) -> &'static str;
}

/// Loads any supported scheduler from a `scheduler_config.json` (or a folder holding one,
/// or a pipeline folder with `scheduler/`), choosing the class by `_class_name`.
pub fn scheduler_from_pretrained(path: impl AsRef<Path>) -> Result<Box<dyn Scheduler>> {
    scheduler_from_config(&read_config_json(path.as_ref())?)
}

/// The JSON of `scheduler_config.json` found from `path` (Python's `Infinity` accepted).
pub(crate) fn read_config_json(path: &Path) -> Result<serde_json::Value> {
    let file = find_config(path)?;
    let text = std::fs::read_to_string(&file).map_err(|e| VtonError::io(&file, e))?;
    serde_json::from_str(&crate::models::pretrained::python_json(&text)).map_err(|e| {
        VtonError::Json {
            what: file.display().to_string(),
            message: e.to_string(),
        }
    })
}

/// Builds a scheduler from a config value, choosing the class by `_class_name`
/// (`DDIMScheduler`, `DDPMScheduler`, `DPMSolverMultistepScheduler`).
pub fn scheduler_from_config(v: &serde_json::Value) -> Result<Box<dyn Scheduler>> {
    match v.get("_class_name").and_then(|c| c.as_str()) {
        Some("DDIMScheduler") => Ok(Box::new(DDIMScheduler::from_config(v)?)),
        Some("DDPMScheduler") => Ok(Box::new(DDPMScheduler::from_config(v)?)),
        Some("DPMSolverMultistepScheduler") => {
            Ok(Box::new(DPMSolverMultistepScheduler::from_config(v)?))
        }
        Some(other) => Err(VtonError::Unsupported {
            what: format!("scheduler class {other} (supported: DDIMScheduler, DDPMScheduler, DPMSolverMultistepScheduler)"),
        }),
        None => Err(VtonError::config("scheduler", "config has no _class_name")),
    }
}

/// `path` itself, `path/scheduler_config.json` or `path/scheduler/scheduler_config.json`.
pub(crate) fn find_config(path: &Path) -> Result<std::path::PathBuf> {
    for p in [
        path.to_path_buf(),
        path.join("scheduler_config.json"),
        path.join("scheduler").join("scheduler_config.json"),
    ] {
        if p.is_file() {
            return Ok(p);
        }
    }
    Err(VtonError::FileNotFound {
        path: path.join("scheduler_config.json"),
    })
}

pub(crate) fn parse<T: serde::de::DeserializeOwned>(
    v: &serde_json::Value,
    what: &str,
) -> Result<T> {
    serde_json::from_value(v.clone()).map_err(|e| VtonError::Json {
        what: what.into(),
        message: e.to_string(),
    })
}

/// The training noise schedule shared by the three schedulers.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(default)]
pub struct BetaConfig {
    pub num_train_timesteps: usize,
    pub beta_start: f64,
    pub beta_end: f64,
    pub beta_schedule: String,
    pub trained_betas: Option<Vec<f64>>,
    pub rescale_betas_zero_snr: bool,
}

impl Default for BetaConfig {
    fn default() -> Self {
        BetaConfig {
            num_train_timesteps: 1000,
            beta_start: 0.0001,
            beta_end: 0.02,
            beta_schedule: "linear".into(),
            trained_betas: None,
            rescale_betas_zero_snr: false,
        }
    }
}

/// `torch.linspace(start, end, n, dtype=float32)`: float32 arithmetic, filled from both
/// ends as PyTorch's CPU kernel does.
pub(crate) fn linspace_f32(start: f32, end: f32, n: usize) -> Vec<f32> {
    if n == 1 {
        return vec![start];
    }
    let step = (end - start) / (n - 1) as f32;
    let half = n / 2;
    (0..n)
        .map(|i| {
            if i < half {
                start + step * i as f32
            } else {
                end - step * (n - i - 1) as f32
            }
        })
        .collect()
}

/// The schedule: `betas` and `alphas_cumprod`, in float32.
#[derive(Debug, Clone)]
pub(crate) struct Schedule {
    pub betas: Vec<f32>,
    pub alphas_cumprod: Vec<f32>,
}

impl BetaConfig {
    pub(crate) fn schedule(&self) -> Result<Schedule> {
        let t = self.num_train_timesteps;
        if t == 0 {
            return Err(VtonError::config("num_train_timesteps", "must be positive"));
        }
        let betas: Vec<f32> = if let Some(tb) = &self.trained_betas {
            if tb.len() != t {
                return Err(VtonError::config(
                    "trained_betas",
                    format!("has {} values for num_train_timesteps {t}", tb.len()),
                ));
            }
            tb.iter().map(|&b| b as f32).collect()
        } else {
            match self.beta_schedule.as_str() {
                "linear" => linspace_f32(self.beta_start as f32, self.beta_end as f32, t),
                "scaled_linear" => linspace_f32(
                    self.beta_start.sqrt() as f32,
                    self.beta_end.sqrt() as f32,
                    t,
                )
                .into_iter()
                .map(|b| b * b)
                .collect(),
                "squaredcos_cap_v2" => {
                    // Computed in floating point (f64), as diffusers does in Python.
                    let abar = |x: f64| ((x + 0.008) / 1.008 * std::f64::consts::FRAC_PI_2).cos().powi(2);
                    (0..t)
                        .map(|i| {
                            let t1 = i as f64 / t as f64;
                            let t2 = (i + 1) as f64 / t as f64;
                            (1.0 - abar(t2) / abar(t1)).min(0.999) as f32
                        })
                        .collect()
                }
                other => {
                    return Err(VtonError::Unsupported {
                        what: format!("beta_schedule {other} (supported: linear, scaled_linear, squaredcos_cap_v2, trained_betas)"),
                    })
                }
            }
        };
        let betas = if self.rescale_betas_zero_snr {
            rescale_zero_terminal_snr(&betas)
        } else {
            betas
        };
        let mut acc = 1f64;
        let alphas_cumprod = betas
            .iter()
            .map(|&b| {
                acc *= (1.0f32 - b) as f64;
                acc as f32
            })
            .collect();
        Ok(Schedule {
            betas,
            alphas_cumprod,
        })
    }
}

/// Rescales betas to zero terminal SNR (Lin et al. 2023), in float32 as diffusers does.
fn rescale_zero_terminal_snr(betas: &[f32]) -> Vec<f32> {
    let mut acc = 1f64;
    let mut sqrt_bar: Vec<f32> = betas
        .iter()
        .map(|&b| {
            acc *= (1.0f32 - b) as f64;
            (acc as f32).sqrt()
        })
        .collect();
    let a0 = sqrt_bar[0];
    let at = sqrt_bar[sqrt_bar.len() - 1];
    let k = a0 / (a0 - at);
    for v in sqrt_bar.iter_mut() {
        *v = (*v - at) * k;
    }
    let bar: Vec<f32> = sqrt_bar.iter().map(|v| v * v).collect();
    let mut alphas = vec![bar[0]];
    alphas.extend(bar.windows(2).map(|w| w[1] / w[0]));
    alphas.iter().map(|a| 1.0 - a).collect()
}

/// numpy's `round` (half to even).
pub(crate) fn round_even(x: f64) -> i64 {
    x.round_ties_even() as i64
}

/// Inference timesteps for DDIM / DDPM (`n` of them).
pub(crate) fn spaced_timesteps(
    spacing: TimestepSpacing,
    train: usize,
    n: usize,
    steps_offset: i64,
) -> Result<Vec<i64>> {
    if n == 0 || n > train {
        return Err(VtonError::invalid(
            "num_inference_steps",
            format!("{n} must be between 1 and num_train_timesteps ({train})"),
        ));
    }
    Ok(match spacing {
        TimestepSpacing::Leading => {
            let ratio = (train / n) as i64;
            (0..n as i64)
                .rev()
                .map(|i| i * ratio + steps_offset)
                .collect()
        }
        TimestepSpacing::Trailing => {
            // np.round(np.arange(T, 0, -T / n)) - 1. For some n (61, 103, ...) numpy's
            // arange yields n + 1 values, the last rounding to -1, which diffusers then
            // uses as an index from the end; vton keeps the n valid ones.
            let ratio = train as f64 / n as f64;
            (0..n)
                .map(|i| round_even(train as f64 - i as f64 * ratio) - 1)
                .collect()
        }
        TimestepSpacing::Linspace => {
            // np.linspace(0, T - 1, n): i * step, the end point exact.
            let last = (train - 1) as f64;
            let step = if n > 1 { last / (n - 1) as f64 } else { 0.0 };
            (0..n)
                .rev()
                .map(|i| {
                    round_even(if i + 1 == n && n > 1 {
                        last
                    } else {
                        i as f64 * step
                    })
                })
                .collect()
        }
    })
}

/// `x0` and `eps` from a model output, as float32 tensor arithmetic in diffusers' order.
pub(crate) fn predict(
    kind: PredictionType,
    model_output: Tensor<4>,
    sample: Tensor<4>,
    alpha_prod_t: f32,
) -> (Tensor<4>, Tensor<4>) {
    let beta_prod_t = 1.0 - alpha_prod_t;
    let sa = alpha_prod_t.sqrt();
    let sb = beta_prod_t.sqrt();
    match kind {
        PredictionType::Epsilon => {
            let x0 = (sample - model_output.clone().mul_scalar(sb)).div_scalar(sa);
            (x0, model_output)
        }
        PredictionType::Sample => {
            let eps = (sample - model_output.clone().mul_scalar(sa)).div_scalar(sb);
            (model_output, eps)
        }
        PredictionType::VPrediction => {
            let x0 = sample.clone().mul_scalar(sa) - model_output.clone().mul_scalar(sb);
            let eps = model_output.mul_scalar(sa) + sample.mul_scalar(sb);
            (x0, eps)
        }
    }
}

/// `sqrt(abar_t) * x0 + sqrt(1 - abar_t) * noise`, one timestep per batch element.
pub(crate) fn add_noise_with(
    alphas_cumprod: &[f32],
    original: Tensor<4>,
    noise: Tensor<4>,
    timesteps: &[i64],
) -> Result<Tensor<4>> {
    let (a, b) = noise_coefficients(alphas_cumprod, &original, &noise, timesteps)?;
    Ok(original * a + noise * b)
}

/// `sqrt(abar_t) * noise - sqrt(1 - abar_t) * sample` (diffusers' `get_velocity`).
pub(crate) fn velocity_with(
    alphas_cumprod: &[f32],
    sample: Tensor<4>,
    noise: Tensor<4>,
    timesteps: &[i64],
) -> Result<Tensor<4>> {
    let (a, b) = noise_coefficients(alphas_cumprod, &sample, &noise, timesteps)?;
    Ok(noise * a - sample * b)
}

fn noise_coefficients(
    alphas_cumprod: &[f32],
    x: &Tensor<4>,
    noise: &Tensor<4>,
    timesteps: &[i64],
) -> Result<(Tensor<4>, Tensor<4>)> {
    let b = x.dims()[0];
    if noise.dims() != x.dims() {
        return Err(VtonError::Shape {
            what: "noise".into(),
            expected: format!("{:?}", x.dims()),
            actual: noise.dims().to_vec(),
        });
    }
    let ts: Vec<i64> = match timesteps.len() {
        1 => vec![timesteps[0]; b],
        n if n == b => timesteps.to_vec(),
        n => {
            return Err(VtonError::Shape {
                what: "timesteps".into(),
                expected: format!("1 or {b}"),
                actual: vec![n],
            })
        }
    };
    let mut sa = Vec::with_capacity(b);
    let mut sb = Vec::with_capacity(b);
    for &t in &ts {
        let ac = *usize::try_from(t)
            .ok()
            .and_then(|i| alphas_cumprod.get(i))
            .ok_or_else(|| {
                VtonError::invalid(
                    "timesteps",
                    format!("{t} is outside 0..{}", alphas_cumprod.len()),
                )
            })?;
        sa.push(ac.sqrt());
        sb.push((1.0 - ac).sqrt());
    }
    let dev = x.device();
    let col =
        |v: Vec<f32>| Tensor::<4>::from_data(burn::tensor::TensorData::new(v, [b, 1, 1, 1]), &dev);
    Ok((col(sa), col(sb)))
}

/// Checks that a step's tensors agree.
pub(crate) fn check_step(model_output: &Tensor<4>, sample: &Tensor<4>) -> Result<()> {
    if model_output.dims() != sample.dims() {
        return Err(VtonError::Shape {
            what: "model_output".into(),
            expected: format!("the sample's shape {:?}", sample.dims()),
            actual: model_output.dims().to_vec(),
        });
    }
    Ok(())
}

/// Variance noise: the caller's, checked, or drawn from `seed`.
pub(crate) fn noise_for(
    sample: &Tensor<4>,
    given: Option<Tensor<4>>,
    seed: u64,
) -> Result<Tensor<4>> {
    match given {
        Some(n) if n.dims() == sample.dims() => Ok(n),
        Some(n) => Err(VtonError::Shape {
            what: "variance_noise".into(),
            expected: format!("{:?}", sample.dims()),
            actual: n.dims().to_vec(),
        }),
        None => Ok(crate::rng::randn(sample.dims(), seed, &sample.device())),
    }
}

pub(crate) fn alpha_at(alphas_cumprod: &[f32], t: i64) -> Result<f32> {
    usize::try_from(t)
        .ok()
        .and_then(|i| alphas_cumprod.get(i).copied())
        .ok_or_else(|| {
            VtonError::invalid(
                "timestep",
                format!("{t} is outside 0..{}", alphas_cumprod.len()),
            )
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn trailing_and_linspace_spacing() {
        // diffusers: trailing for T=1000, N=3 -> [999, 666, 332] (np.round(1000, 666.67, 333.33) - 1).
        assert_eq!(
            spaced_timesteps(TimestepSpacing::Trailing, 1000, 3, 0).unwrap(),
            vec![999, 666, 332]
        );
        assert_eq!(
            spaced_timesteps(TimestepSpacing::Linspace, 1000, 4, 0).unwrap(),
            vec![999, 666, 333, 0]
        );
        assert!(spaced_timesteps(TimestepSpacing::Leading, 1000, 0, 0).is_err());
        assert!(spaced_timesteps(TimestepSpacing::Leading, 10, 11, 0).is_err());
    }

    #[test]
    fn squaredcos_is_not_integer_division() {
        let s = BetaConfig {
            beta_schedule: "squaredcos_cap_v2".into(),
            ..Default::default()
        }
        .schedule()
        .unwrap();
        assert!(s.betas[0] > 0.0 && s.betas[0] < 1e-4, "{}", s.betas[0]);
        assert!((s.betas[999] - 0.999).abs() < 1e-6);
    }
}
