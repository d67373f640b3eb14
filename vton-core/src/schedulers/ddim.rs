//! diffusers `DDIMScheduler`.

use std::path::Path;

use burn::tensor::Tensor;
use serde::Deserialize;

use super::*;

/// `scheduler_config.json` of a `DDIMScheduler`.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(default)]
pub struct DDIMConfig {
    #[serde(flatten)]
    pub betas: BetaConfig,
    pub clip_sample: bool,
    pub clip_sample_range: f32,
    pub set_alpha_to_one: bool,
    pub steps_offset: i64,
    pub prediction_type: PredictionType,
    pub thresholding: bool,
    pub timestep_spacing: TimestepSpacing,
}

impl Default for DDIMConfig {
    fn default() -> Self {
        DDIMConfig {
            betas: BetaConfig::default(),
            clip_sample: true,
            clip_sample_range: 1.0,
            set_alpha_to_one: true,
            steps_offset: 0,
            prediction_type: PredictionType::Epsilon,
            thresholding: false,
            timestep_spacing: TimestepSpacing::Leading,
        }
    }
}

/// Denoising diffusion implicit models (Song et al. 2021), as diffusers implements them.
#[derive(Debug, Clone)]
pub struct DDIMScheduler {
    pub config: DDIMConfig,
    pub betas: Vec<f32>,
    pub alphas_cumprod: Vec<f32>,
    pub final_alpha_cumprod: f32,
    timesteps: Vec<i64>,
    num_inference_steps: Option<usize>,
}

impl DDIMScheduler {
    pub fn new(config: DDIMConfig) -> Result<Self> {
        if config.thresholding {
            return Err(VtonError::Unsupported {
                what: "DDIMScheduler thresholding (dynamic thresholding)".into(),
            });
        }
        let s = config.betas.schedule()?;
        let final_alpha_cumprod = if config.set_alpha_to_one {
            1.0
        } else {
            s.alphas_cumprod[0]
        };
        let t = config.betas.num_train_timesteps as i64;
        Ok(DDIMScheduler {
            config,
            betas: s.betas,
            alphas_cumprod: s.alphas_cumprod,
            final_alpha_cumprod,
            timesteps: (0..t).rev().collect(),
            num_inference_steps: None,
        })
    }

    pub fn from_config(v: &serde_json::Value) -> Result<Self> {
        Self::new(parse(v, "DDIMScheduler config")?)
    }

    /// Reads `scheduler_config.json` (a file, its folder or a pipeline folder).
    pub fn from_pretrained(path: impl AsRef<Path>) -> Result<Self> {
        Self::from_config(&read_config_json(path.as_ref())?)
    }

    /// `add_noise` with diffusers' `get_velocity` companion.
    pub fn get_velocity(
        &self,
        sample: Tensor<4>,
        noise: Tensor<4>,
        timesteps: &[i64],
    ) -> Result<Tensor<4>> {
        velocity_with(&self.alphas_cumprod, sample, noise, timesteps)
    }
}

impl Scheduler for DDIMScheduler {
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
        eta: f32,
        variance_noise: Option<Tensor<4>>,
        seed: u64,
    ) -> Result<StepOutput> {
        let n = self
            .num_inference_steps
            .ok_or_else(|| VtonError::invalid("DDIMScheduler.step", "call set_timesteps first"))?;
        check_step(&model_output, &sample)?;
        let prev = timestep - (self.config.betas.num_train_timesteps / n) as i64;
        let a_t = alpha_at(&self.alphas_cumprod, timestep)?;
        let a_prev = if prev >= 0 {
            alpha_at(&self.alphas_cumprod, prev)?
        } else {
            self.final_alpha_cumprod
        };
        let (mut x0, eps) = predict(self.config.prediction_type, model_output, sample, a_t);
        if self.config.clip_sample {
            let r = self.config.clip_sample_range;
            x0 = x0.clamp(-r, r);
        }
        let beta_t = 1.0 - a_t;
        let beta_prev = 1.0 - a_prev;
        let variance = (beta_prev / beta_t) * (1.0 - a_t / a_prev);
        let std = eta * variance.sqrt();
        let dir = eps.mul_scalar((1.0 - a_prev - std * std).sqrt());
        let mut prev_sample = x0.clone().mul_scalar(a_prev.sqrt()) + dir;
        if eta > 0.0 {
            let noise = noise_for(&prev_sample, variance_noise, seed)?;
            prev_sample = prev_sample + noise.mul_scalar(std);
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
        "DDIMScheduler"
    }
}
