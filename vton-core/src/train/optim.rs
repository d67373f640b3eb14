//! Optimisers and learning-rate schedules with PyTorch's arithmetic, over parameters
//! named by their checkpoint keys.
//!
//! burn-optim's Adam is not used: the reference scripts need PyTorch's exact update
//! (bias corrections applied to the step size and to `sqrt(v)` separately, the first
//! moment as a `lerp`), its global-norm gradient clipping (`clip_grad_norm_` over all
//! parameters at once; burn clips per tensor), parameters without a gradient skipped
//! (`grad is None`), and optimiser state that is saved and restored under the original
//! keys beside the checkpoint. The update runs as tensor operations on the model's device.

use std::collections::BTreeMap;

use burn::tensor::Tensor;

use crate::error::{Result, VtonError};

/// `torch.optim.Adam` / `AdamW` settings.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct AdamConfig {
    pub betas: (f64, f64),
    pub eps: f64,
    pub weight_decay: f64,
    /// AdamW: decoupled weight decay (`p *= 1 - lr * weight_decay` before the update);
    /// otherwise Adam's L2 term (`g += weight_decay * p`).
    pub decoupled: bool,
}

impl AdamConfig {
    /// `torch.optim.Adam(betas, eps)` without weight decay.
    pub fn adam(beta1: f64, beta2: f64, eps: f64) -> Self {
        AdamConfig {
            betas: (beta1, beta2),
            eps,
            weight_decay: 0.0,
            decoupled: false,
        }
    }

    /// `torch.optim.AdamW(betas, weight_decay, eps)`.
    pub fn adamw(beta1: f64, beta2: f64, weight_decay: f64, eps: f64) -> Self {
        AdamConfig {
            betas: (beta1, beta2),
            eps,
            weight_decay,
            decoupled: true,
        }
    }

    pub fn validate(&self) -> Result<()> {
        let (b1, b2) = self.betas;
        if !(0.0..1.0).contains(&b1) || !(0.0..1.0).contains(&b2) {
            return Err(VtonError::invalid(
                "betas",
                format!("({b1}, {b2}): each beta must lie in [0, 1)"),
            ));
        }
        if !(self.eps >= 0.0) || !(self.weight_decay >= 0.0) {
            return Err(VtonError::invalid(
                "eps / weight_decay",
                "must be non-negative numbers",
            ));
        }
        Ok(())
    }
}

/// One parameter's Adam state (`exp_avg`, `exp_avg_sq`, `step`), flat in burn's layout.
#[derive(Debug, Clone)]
pub struct AdamState {
    pub exp_avg: Tensor<1>,
    pub exp_avg_sq: Tensor<1>,
    pub step: u64,
}

/// Adam / AdamW with per-key state.
#[derive(Debug, Clone)]
pub struct Adam {
    pub config: AdamConfig,
    pub state: BTreeMap<String, AdamState>,
}

impl Adam {
    pub fn new(config: AdamConfig) -> Result<Self> {
        config.validate()?;
        Ok(Adam {
            config,
            state: BTreeMap::new(),
        })
    }

    /// One `optimizer.step()` at learning rate `lr`: updates `params` in place for every
    /// key that has a gradient (keys without one are untouched and get no state, as
    /// PyTorch skips `grad is None`). Tensors are flat; params and grads must share shapes.
    pub fn step(
        &mut self,
        lr: f64,
        params: &mut BTreeMap<String, Tensor<1>>,
        grads: &BTreeMap<String, Tensor<1>>,
    ) -> Result<()> {
        let AdamConfig {
            betas: (b1, b2),
            eps,
            weight_decay: wd,
            decoupled,
        } = self.config;
        for (key, g) in grads {
            let Some(p) = params.get(key) else {
                return Err(VtonError::config(
                    key.clone(),
                    "gradient for an unknown parameter",
                ));
            };
            let mut p = p.clone().inner();
            let mut g = g.clone().inner();
            if p.dims() != g.dims() {
                return Err(VtonError::WeightShape {
                    key: key.clone(),
                    expected: p.dims().to_vec(),
                    found: g.dims().to_vec(),
                });
            }
            if wd != 0.0 {
                if decoupled {
                    p = p.mul_scalar(1.0 - lr * wd);
                } else {
                    g = g + p.clone().mul_scalar(wd);
                }
            }
            let st = self.state.entry(key.clone()).or_insert_with(|| AdamState {
                exp_avg: p.zeros_like(),
                exp_avg_sq: p.zeros_like(),
                step: 0,
            });
            st.step += 1;
            // exp_avg.lerp_(g, 1 - b1): PyTorch's lerp switches formula at weight 0.5.
            let w = 1.0 - b1;
            let m = if w < 0.5 {
                st.exp_avg.clone() + (g.clone() - st.exp_avg.clone()).mul_scalar(w)
            } else {
                g.clone() - (g.clone() - st.exp_avg.clone()).mul_scalar(1.0 - w)
            };
            let v = st.exp_avg_sq.clone().mul_scalar(b2) + (g.clone() * g).mul_scalar(1.0 - b2);
            let t = st.step as i32;
            let bc1 = 1.0 - b1.powi(t);
            let bc2 = 1.0 - b2.powi(t);
            let step_size = lr / bc1;
            let denom = v.clone().sqrt().div_scalar(bc2.sqrt()).add_scalar(eps);
            let p = p - (m.clone() / denom).mul_scalar(step_size);
            st.exp_avg = m;
            st.exp_avg_sq = v;
            params.insert(key.clone(), p);
        }
        Ok(())
    }
}

/// `torch.nn.utils.clip_grad_norm_(params, max_norm)` (L2, global over every tensor):
/// scales the gradients by `min(1, max_norm / (total + 1e-6))` and returns the total
/// norm before clipping.
pub fn clip_grad_norm(grads: &mut BTreeMap<String, Tensor<1>>, max_norm: f64) -> Result<f64> {
    if !(max_norm > 0.0) {
        return Err(VtonError::invalid("max_grad_norm", "must be positive"));
    }
    let mut sq = 0f64;
    for g in grads.values() {
        // torch: the norm of each tensor (float32), then the norm of the norms.
        let n = g.clone().inner().square().sum().sqrt().into_scalar::<f32>() as f64;
        sq += n * n;
    }
    let total = sq.sqrt();
    if !total.is_finite() {
        return Err(VtonError::Numerical {
            operation: "clip_grad_norm".into(),
            message: format!("the gradient norm is {total}"),
        });
    }
    let coef = (max_norm / (total + 1e-6)).min(1.0);
    for g in grads.values_mut() {
        *g = g.clone().inner().mul_scalar(coef as f32);
    }
    Ok(total)
}

/// A learning-rate schedule: the multiplier of the base learning rate at a step.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum LrSchedule {
    Constant,
    /// CP-VTON+'s `LambdaLR`: `1 - max(0, step - keep_step) / (decay_step + 1)`.
    LinearDecay {
        keep_step: usize,
        decay_step: usize,
    },
}

impl LrSchedule {
    /// The learning rate after `scheduler.step()` was called `step` times.
    pub fn lr(&self, base: f64, step: usize) -> f64 {
        match *self {
            LrSchedule::Constant => base,
            LrSchedule::LinearDecay {
                keep_step,
                decay_step,
            } => {
                let over = step.saturating_sub(keep_step) as f64;
                base * (1.0 - over / (decay_step as f64 + 1.0))
            }
        }
    }
}
