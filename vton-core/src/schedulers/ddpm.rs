//! diffusers `DDPMScheduler`.

use std::path::Path;

use burn::tensor::Tensor;
use serde::Deserialize;

use super::*;

/// `scheduler_config.json` of a `DDPMScheduler`.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(default)]
pub struct DDPMConfig {
    #[serde(flatten)]
    pub betas: BetaConfig,
    pub variance_type: String,
    pub clip_sample: bool,
    pub clip_sample_range: f32,
    pub steps_offset: i64,
    pub prediction_type: PredictionType,
    pub thresholding: bool,
    pub timestep_spacing: TimestepSpacing,
}

impl Default for DDPMConfig {
    fn default() -> Self {
        DDPMConfig {
            betas: BetaConfig::default(),
            variance_type: "fixed_small".into(),
            clip_sample: true,
            clip_sample_range: 1.0,
            steps_offset: 0,
            prediction_type: PredictionType::Epsilon,
            thresholding: false,
            timestep_spacing: TimestepSpacing::Leading,
        }
    }
}

/// Denoising diffusion probabilistic models (Ho et al. 2020), as diffusers implements them.
#[derive(Debug, Clone)]
pub struct DDPMScheduler {
    pub config: DDPMConfig,
    pub betas: Vec<f32>,
    pub alphas_cumprod: Vec<f32>,
    timesteps: Vec<i64>,
    num_inference_steps: Option<usize>,
}

impl DDPMScheduler {
    pub fn new(config: DDPMConfig) -> Result<Self> {
        if config.thresholding {
            return Err(VtonError::Unsupported {
                what: "DDPMScheduler thresholding (dynamic thresholding)".into(),
            });
        }
        if config.variance_type != "fixed_small" && config.variance_type != "fixed_large" {
            return Err(VtonError::Unsupported {
                what: format!(
                    "DDPMScheduler variance_type {} (supported: fixed_small, fixed_large)",
                    config.variance_type
                ),
            });
        }
        let s = config.betas.schedule()?;
        let t = config.betas.num_train_timesteps as i64;
        Ok(DDPMScheduler {
            config,
            betas: s.betas,
            alphas_cumprod: s.alphas_cumprod,
            timesteps: (0..t).rev().collect(),
            num_inference_steps: None,
        })
    }

    pub fn from_config(v: &serde_json::Value) -> Result<Self> {
        Self::new(parse(v, "DDPMScheduler config")?)
    }

    /// Reads `scheduler_config.json` (a file, its folder or a pipeline folder).
    pub fn from_pretrained(path: impl AsRef<Path>) -> Result<Self> {
        Self::from_config(&read_config_json(path.as_ref())?)
    }

    /// diffusers' `get_velocity`.
    pub fn get_velocity(
        &self,
        sample: Tensor<4>,
        noise: Tensor<4>,
        timesteps: &[i64],
    ) -> Result<Tensor<4>> {
        velocity_with(&self.alphas_cumprod, sample, noise, timesteps)
    }

    /// The timestep after `t` in the schedule (-1 at the end); `t - 1` before
    /// `set_timesteps`.
    pub fn previous_timestep(&self, t: i64) -> Result<i64> {
        if self.num_inference_steps.is_none() {
            return Ok(t - 1);
        }
        let i = self.timesteps.iter().position(|&x| x == t).ok_or_else(|| {
            VtonError::invalid(
                "timestep",
                format!("{t} is not in the scheduler's timesteps"),
            )
        })?;
        Ok(self.timesteps.get(i + 1).copied().unwrap_or(-1))
    }
}

impl Scheduler for DDPMScheduler {
    fn set_timesteps(&mut self, n: usize) -> Result<()> {
        self.timesteps = spaced_timesteps(
            self.config.timestep_spacing,
            self.config.betas.num_train_timesteps,
            n,
            self.config.steps_offset,
        )?;
        self.num_inference_steps = Some(n);
        Ok(())
    }

    fn timesteps(&self) -> &[i64] {
        &self.timesteps
    }

    fn step(
        &mut self,
        model_output: Tensor<4>,
        timestep: i64,
        sample: Tensor<4>,
        _eta: f32,
        variance_noise: Option<Tensor<4>>,
        seed: u64,
    ) -> Result<StepOutput> {
        check_step(&model_output, &sample)?;
        let prev = self.previous_timestep(timestep)?;
        let a_t = alpha_at(&self.alphas_cumprod, timestep)?;
        let a_prev = if prev >= 0 {
            alpha_at(&self.alphas_cumprod, prev)?
        } else {
            1.0
        };
        let beta_t = 1.0 - a_t;
        let beta_prev = 1.0 - a_prev;
        let cur_alpha = a_t / a_prev;
        let cur_beta = 1.0 - cur_alpha;
        let (mut x0, _) = predict(
            self.config.prediction_type,
            model_output,
            sample.clone(),
            a_t,
        );
        if self.config.clip_sample {
            let r = self.config.clip_sample_range;
            x0 = x0.clamp(-r, r);
        }
        let c_x0 = (a_prev.sqrt() * cur_beta) / beta_t;
        let c_xt = cur_alpha.sqrt() * beta_prev / beta_t;
        let mut prev_sample = x0.clone().mul_scalar(c_x0) + sample.mul_scalar(c_xt);
        if timestep > 0 {
            let variance = match self.config.variance_type.as_str() {
                "fixed_large" => cur_beta,
                _ => ((1.0 - a_prev) / (1.0 - a_t) * cur_beta).max(1e-20),
            };
            let noise = noise_for(&prev_sample, variance_noise, seed)?;
            prev_sample = prev_sample + noise.mul_scalar(variance.sqrt());
        }
        Ok(StepOutput {
            prev_sample,
            pred_original_sample: x0,
        })
    }

    fn add_noise(
        &self,
        original: Tensor<4>,
        noise: Tensor<4>,
        timesteps: &[i64],
    ) -> Result<Tensor<4>> {
        add_noise_with(&self.alphas_cumprod, original, noise, timesteps)
    }

    fn name(&self) -> &'static str {
        "DDPMScheduler"
    }
}
