//! diffusers `DPMSolverMultistepScheduler` (DPM-Solver++, Lu et al. 2022), orders 1 and 2,
//! `midpoint` and `heun` second-order updates, deterministic (`dpmsolver++` and
//! `dpmsolver`) algorithms.

use std::path::Path;

use burn::tensor::Tensor;
use serde::Deserialize;

use super::*;

/// `scheduler_config.json` of a `DPMSolverMultistepScheduler`.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(default)]
pub struct DPMSolverConfig {
    #[serde(flatten)]
    pub betas: BetaConfig,
    pub solver_order: usize,
    pub prediction_type: PredictionType,
    pub thresholding: bool,
    pub algorithm_type: String,
    pub solver_type: String,
    pub lower_order_final: bool,
    pub euler_at_final: bool,
    pub use_karras_sigmas: bool,
    pub use_exponential_sigmas: bool,
    pub use_beta_sigmas: bool,
    pub use_lu_lambdas: bool,
    pub use_flow_sigmas: bool,
    pub final_sigmas_type: String,
    pub lambda_min_clipped: Option<f64>,
    pub variance_type: Option<String>,
    pub timestep_spacing: TimestepSpacing,
    pub steps_offset: i64,
}

impl Default for DPMSolverConfig {
    fn default() -> Self {
        DPMSolverConfig {
            betas: BetaConfig::default(),
            solver_order: 2,
            prediction_type: PredictionType::Epsilon,
            thresholding: false,
            algorithm_type: "dpmsolver++".into(),
            solver_type: "midpoint".into(),
            lower_order_final: true,
            euler_at_final: false,
            use_karras_sigmas: false,
            use_exponential_sigmas: false,
            use_beta_sigmas: false,
            use_lu_lambdas: false,
            use_flow_sigmas: false,
            final_sigmas_type: "zero".into(),
            lambda_min_clipped: None,
            variance_type: None,
            timestep_spacing: TimestepSpacing::Linspace,
            steps_offset: 0,
        }
    }
}

/// Multistep DPM-Solver as diffusers implements it.
#[derive(Debug, Clone)]
pub struct DPMSolverMultistepScheduler {
    pub config: DPMSolverConfig,
    pub betas: Vec<f32>,
    pub alphas_cumprod: Vec<f32>,
    /// `sqrt((1 - abar) / abar)` at the inference timesteps, plus the final sigma.
    pub sigmas: Vec<f32>,
    timesteps: Vec<i64>,
    model_outputs: Vec<Option<Tensor<4>>>,
    lower_order_nums: usize,
    step_index: Option<usize>,
}

fn alpha_sigma(sigma: f32) -> (f32, f32) {
    let alpha = 1.0 / (sigma * sigma + 1.0).sqrt();
    (alpha, sigma * alpha)
}

impl DPMSolverMultistepScheduler {
    pub fn new(config: DPMSolverConfig) -> Result<Self> {
        let unsupported = |what: String| Err(VtonError::Unsupported { what });
        if config.algorithm_type != "dpmsolver++" && config.algorithm_type != "dpmsolver" {
            return unsupported(format!(
                "DPMSolverMultistepScheduler algorithm_type {} (supported: dpmsolver++, dpmsolver)",
                config.algorithm_type
            ));
        }
        let mut config = config;
        if ["logrho", "bh1", "bh2"].contains(&config.solver_type.as_str()) {
            // diffusers maps UniPC's solver types onto midpoint.
            config.solver_type = "midpoint".into();
        }
        if config.algorithm_type == "dpmsolver" && config.final_sigmas_type == "zero" {
            return Err(VtonError::config(
                "final_sigmas_type",
                "'zero' needs algorithm_type dpmsolver++ (diffusers refuses it too); use sigma_min",
            ));
        }
        if config.solver_type != "midpoint" && config.solver_type != "heun" {
            return unsupported(format!("DPM-Solver solver_type {}", config.solver_type));
        }
        if config.solver_order == 0 || config.solver_order > 2 {
            return unsupported(format!(
                "DPM-Solver solver_order {} (supported: 1, 2)",
                config.solver_order
            ));
        }
        let sigma_schedules = [
            config.use_karras_sigmas,
            config.use_exponential_sigmas,
            config.use_beta_sigmas,
            config.use_lu_lambdas,
            config.use_flow_sigmas,
        ];
        if sigma_schedules.iter().any(|&b| b) || config.thresholding {
            return unsupported(
                "DPM-Solver karras/exponential/beta/lu/flow sigmas or thresholding".into(),
            );
        }
        if config.final_sigmas_type != "zero" && config.final_sigmas_type != "sigma_min" {
            return unsupported(format!("final_sigmas_type {}", config.final_sigmas_type));
        }
        let s = config.betas.schedule()?;
        let t = config.betas.num_train_timesteps as i64;
        Ok(DPMSolverMultistepScheduler {
            model_outputs: vec![None; config.solver_order],
            config,
            betas: s.betas,
            alphas_cumprod: s.alphas_cumprod,
            sigmas: Vec::new(),
            timesteps: (0..t).rev().collect(),
            lower_order_nums: 0,
            step_index: None,
        })
    }

    pub fn from_config(v: &serde_json::Value) -> Result<Self> {
        Self::new(parse(v, "DPMSolverMultistepScheduler config")?)
    }

    /// Reads `scheduler_config.json` (a file, its folder or a pipeline folder).
    pub fn from_pretrained(path: impl AsRef<Path>) -> Result<Self> {
        Self::from_config(&read_config_json(path.as_ref())?)
    }

    fn lambda(&self, sigma: f32) -> f32 {
        let (a, s) = alpha_sigma(sigma);
        a.ln() - s.ln()
    }

    fn index_for(&self, t: i64) -> Result<usize> {
        let hits: Vec<usize> = self
            .timesteps
            .iter()
            .enumerate()
            .filter(|(_, &x)| x == t)
            .map(|(i, _)| i)
            .collect();
        match hits.len() {
            0 => Err(VtonError::invalid(
                "timestep",
                format!("{t} is not in the scheduler's timesteps"),
            )),
            1 => Ok(hits[0]),
            _ => Ok(hits[1]),
        }
    }

    /// x0 (dpmsolver++) or epsilon (dpmsolver) from the model output.
    fn convert(&self, model_output: Tensor<4>, sample: Tensor<4>, i: usize) -> Tensor<4> {
        let (alpha, sigma) = alpha_sigma(self.sigmas[i]);
        let pt = self.config.prediction_type;
        if self.config.algorithm_type == "dpmsolver++" {
            match pt {
                PredictionType::Epsilon => {
                    (sample - model_output.mul_scalar(sigma)).div_scalar(alpha)
                }
                PredictionType::Sample => model_output,
                PredictionType::VPrediction => {
                    sample.mul_scalar(alpha) - model_output.mul_scalar(sigma)
                }
            }
        } else {
            match pt {
                PredictionType::Epsilon => model_output,
                PredictionType::Sample => {
                    (sample - model_output.mul_scalar(alpha)).div_scalar(sigma)
                }
                PredictionType::VPrediction => {
                    model_output.mul_scalar(alpha) + sample.mul_scalar(sigma)
                }
            }
        }
    }
}

impl Scheduler for DPMSolverMultistepScheduler {
    fn set_timesteps(&mut self, n: usize) -> Result<()> {
        let train = self.config.betas.num_train_timesteps;
        if n == 0 || n > train {
            return Err(VtonError::invalid(
                "num_inference_steps",
                format!("{n} must be between 1 and num_train_timesteps ({train})"),
            ));
        }
        // Clip the high-noise end where lambda(t) < lambda_min_clipped (default: none).
        let clipped = match self.config.lambda_min_clipped {
            Some(lmin) if lmin.is_finite() => self
                .alphas_cumprod
                .iter()
                .rev()
                .take_while(|&&a| {
                    let l = 0.5 * (a.ln() - (1.0 - a).ln());
                    (l as f64) < lmin
                })
                .count(),
            _ => 0,
        };
        let last = (train - clipped) as f64;
        let ts: Vec<i64> = match self.config.timestep_spacing {
            TimestepSpacing::Linspace => {
                // np.linspace(0, last - 1, n + 1): i * step, the end point exact.
                let step = (last - 1.0) / n as f64;
                (0..=n)
                    .rev()
                    .map(|i| round_even(if i == n { last - 1.0 } else { i as f64 * step }))
                    .take(n)
                    .collect()
            }
            TimestepSpacing::Leading => {
                let ratio = (last as usize / (n + 1)) as i64;
                (0..=n as i64)
                    .rev()
                    .take(n)
                    .map(|i| i * ratio + self.config.steps_offset)
                    .collect()
            }
            TimestepSpacing::Trailing => {
                let ratio = train as f64 / n as f64;
                (0..n)
                    .map(|i| round_even(last - i as f64 * ratio) - 1)
                    .collect()
            }
        };
        let all: Vec<f64> = self
            .alphas_cumprod
            .iter()
            .map(|&a| (((1.0 - a) / a).sqrt()) as f64)
            .collect();
        // np.interp at integer timesteps is the table value.
        let mut sigmas: Vec<f32> = ts
            .iter()
            .map(|&t| all[(t.max(0) as usize).min(all.len() - 1)] as f32)
            .collect();
        let last_sigma = if self.config.final_sigmas_type == "sigma_min" {
            let a0 = self.alphas_cumprod[0];
            ((1.0 - a0) / a0).sqrt()
        } else {
            0.0
        };
        sigmas.push(last_sigma);
        self.sigmas = sigmas;
        self.timesteps = ts;
        self.model_outputs = vec![None; self.config.solver_order];
        self.lower_order_nums = 0;
        self.step_index = None;
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
        _variance_noise: Option<Tensor<4>>,
        _seed: u64,
    ) -> Result<StepOutput> {
        if self.sigmas.is_empty() {
            return Err(VtonError::invalid(
                "DPMSolverMultistepScheduler.step",
                "call set_timesteps first",
            ));
        }
        check_step(&model_output, &sample)?;
        let i = match self.step_index {
            Some(i) => i,
            None => self.index_for(timestep)?,
        };
        if i + 1 >= self.sigmas.len() {
            return Err(VtonError::invalid(
                "DPMSolverMultistepScheduler.step",
                "called more times than there are timesteps",
            ));
        }
        let n = self.timesteps.len();
        let lower_final = i == n - 1
            && (self.config.euler_at_final
                || (self.config.lower_order_final && n < 15)
                || self.config.final_sigmas_type == "zero");
        let m = self.convert(model_output, sample.clone(), i);
        let order = self.config.solver_order;
        self.model_outputs.rotate_left(1);
        self.model_outputs[order - 1] = Some(m.clone());

        let plus = self.config.algorithm_type == "dpmsolver++";
        let (alpha_t, sigma_t) = alpha_sigma(self.sigmas[i + 1]);
        let (alpha_s0, sigma_s0) = alpha_sigma(self.sigmas[i]);
        let lambda_t = alpha_t.ln() - sigma_t.ln();
        let lambda_s0 = alpha_s0.ln() - sigma_s0.ln();
        let h = lambda_t - lambda_s0;
        // With solver_order <= 2, diffusers' lower_order_second never changes the branch:
        // second order runs whenever a previous output exists and this is not the end.
        let first_order = order == 1 || self.lower_order_nums < 1 || lower_final;
        let prev_sample = if first_order {
            if plus {
                sample.mul_scalar(sigma_t / sigma_s0)
                    - m.clone().mul_scalar(alpha_t * ((-h).exp() - 1.0))
            } else {
                sample.mul_scalar(alpha_t / alpha_s0)
                    - m.clone().mul_scalar(sigma_t * (h.exp() - 1.0))
            }
        } else {
            let m1 = self.model_outputs[order - 2]
                .clone()
                .ok_or_else(|| VtonError::Backend {
                    operation: "DPM-Solver".into(),
                    message: "missing previous model output".into(),
                })?;
            let lambda_s1 = self.lambda(self.sigmas[i - 1]);
            let h0 = lambda_s0 - lambda_s1;
            let r0 = h0 / h;
            let d0 = m.clone();
            let d1 = (m.clone() - m1).mul_scalar(1.0 / r0);
            let midpoint = self.config.solver_type == "midpoint";
            if plus {
                let e = (-h).exp() - 1.0;
                let base = sample.mul_scalar(sigma_t / sigma_s0) - d0.mul_scalar(alpha_t * e);
                if midpoint {
                    base - d1.mul_scalar(0.5 * (alpha_t * e))
                } else {
                    base + d1.mul_scalar(alpha_t * (e / h + 1.0))
                }
            } else {
                let e = h.exp() - 1.0;
                let base = sample.mul_scalar(alpha_t / alpha_s0) - d0.mul_scalar(sigma_t * e);
                if midpoint {
                    base - d1.mul_scalar(0.5 * (sigma_t * e))
                } else {
                    base - d1.mul_scalar(sigma_t * (e / h - 1.0))
                }
            }
        };
        if self.lower_order_nums < order {
            self.lower_order_nums += 1;
        }
        self.step_index = Some(i + 1);
        Ok(StepOutput {
            prev_sample,
            pred_original_sample: m,
        })
    }

    fn add_noise(
        &self,
        original: Tensor<4>,
        noise: Tensor<4>,
        timesteps: &[i64],
    ) -> Result<Tensor<4>> {
        if self.sigmas.is_empty() {
            return add_noise_with(&self.alphas_cumprod, original, noise, timesteps);
        }
        // diffusers noises with the sigma of each timestep's position in the schedule.
        let b = original.dims()[0];
        let ts: Vec<i64> = if timesteps.len() == 1 {
            vec![timesteps[0]; b]
        } else {
            timesteps.to_vec()
        };
        if ts.len() != b || noise.dims() != original.dims() {
            return Err(VtonError::Shape {
                what: "add_noise inputs".into(),
                expected: format!("noise {:?} and 1 or {b} timesteps", original.dims()),
                actual: vec![ts.len()],
            });
        }
        let mut a = Vec::new();
        let mut s = Vec::new();
        for &t in &ts {
            let i = match self.step_index {
                Some(i) => i,
                None => self.index_for(t)?,
            };
            let (al, si) = alpha_sigma(self.sigmas[i]);
            a.push(al);
            s.push(si);
        }
        let dev = original.device();
        let col = |v: Vec<f32>| {
            Tensor::<4>::from_data(burn::tensor::TensorData::new(v, [b, 1, 1, 1]), &dev)
        };
        Ok(original * col(a) + noise * col(s))
    }

    fn name(&self) -> &'static str {
        "DPMSolverMultistepScheduler"
    }
}
