//! Adversarial losses and the segmentation cross-entropy of the GAN training scripts.
//!
//! * [`gan_loss`]: pix2pixHD's `GANLoss` over a multi-scale discriminator's outputs
//!   (one loss per scale, **summed**): LSGAN (`use_lsgan=True`, `MSELoss` against a
//!   tensor of 1.0 / 0.0, what HR-VITON trains with) or hinge (SPADE's `gan_mode='hinge'`:
//!   for D `mean(relu(1 - x))` on real, `mean(relu(1 + x))` on fake; for G `-mean(x)`).
//! * [`cross_entropy2d`]: HR-VITON's `utils.cross_entropy2d` (`F.cross_entropy` over
//!   every pixel, `ignore_index=250`, input resized bilinearly with `align_corners=True`
//!   when its size differs from the target's).

use burn::tensor::activation::log_softmax;
use burn::tensor::{Int, Tensor, TensorData};

use crate::error::{Result, VtonError};
use crate::nn::relu;

/// The adversarial objective.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GanMode {
    /// Least squares: `mean((x - t)^2)`, `t = 1` (real) or `0` (fake), for G and D alike.
    Lsgan,
    /// Hinge: D `mean(relu(1 - x))` (real) / `mean(relu(1 + x))` (fake); G `-mean(x)`.
    Hinge,
}

impl GanMode {
    /// `"lsgan"` / `"ls"` or `"hinge"`.
    pub fn from_name(name: &str) -> Result<Self> {
        match name.to_ascii_lowercase().as_str() {
            "lsgan" | "ls" | "mse" => Ok(GanMode::Lsgan),
            "hinge" => Ok(GanMode::Hinge),
            _ => Err(VtonError::invalid(
                "gan_mode",
                format!("{name:?} is not one of \"lsgan\", \"hinge\""),
            )),
        }
    }
}

/// The loss of one prediction map.
fn one_scale(
    pred: Tensor<4>,
    target_is_real: bool,
    for_discriminator: bool,
    mode: GanMode,
) -> Tensor<1> {
    match mode {
        GanMode::Lsgan => {
            let t = if target_is_real { 1.0 } else { 0.0 };
            pred.sub_scalar(t).square().mean()
        }
        GanMode::Hinge => {
            if for_discriminator {
                if target_is_real {
                    relu(pred.neg().add_scalar(1.0)).mean()
                } else {
                    relu(pred.add_scalar(1.0)).mean()
                }
            } else {
                pred.mean().neg()
            }
        }
    }
}

/// `GANLoss` over the outputs of every discriminator scale, summed in order
/// (`loss = 0; loss += l_j`). `for_discriminator` only matters for the hinge loss (the
/// generator's hinge term ignores `target_is_real`, which must then be `true`).
pub fn gan_loss(
    preds: &[Tensor<4>],
    target_is_real: bool,
    for_discriminator: bool,
    mode: GanMode,
) -> Result<Tensor<1>> {
    let per = gan_loss_per_scale(preds, target_is_real, for_discriminator, mode)?;
    let mut it = per.into_iter();
    let first = it.next().expect("non-empty, checked");
    Ok(it.fold(first, |acc, l| acc + l))
}

/// The per-scale terms of [`gan_loss`].
pub fn gan_loss_per_scale(
    preds: &[Tensor<4>],
    target_is_real: bool,
    for_discriminator: bool,
    mode: GanMode,
) -> Result<Vec<Tensor<1>>> {
    if preds.is_empty() {
        return Err(VtonError::invalid(
            "discriminator outputs",
            "no prediction to compute a GAN loss on",
        ));
    }
    if mode == GanMode::Hinge && !for_discriminator && !target_is_real {
        return Err(VtonError::invalid(
            "target_is_real",
            "the generator's hinge loss is defined for real targets only",
        ));
    }
    Ok(preds
        .iter()
        .map(|p| one_scale(p.clone(), target_is_real, for_discriminator, mode))
        .collect())
}

/// LSGAN (`GANLoss(use_lsgan=True)`), summed over scales.
pub fn lsgan_loss(preds: &[Tensor<4>], target_is_real: bool) -> Result<Tensor<1>> {
    gan_loss(preds, target_is_real, true, GanMode::Lsgan)
}

/// Hinge loss for the discriminator, summed over scales.
pub fn hinge_d_loss(preds: &[Tensor<4>], target_is_real: bool) -> Result<Tensor<1>> {
    gan_loss(preds, target_is_real, true, GanMode::Hinge)
}

/// Hinge loss for the generator (`-mean(D(fake))`), summed over scales.
pub fn hinge_g_loss(preds: &[Tensor<4>]) -> Result<Tensor<1>> {
    gan_loss(preds, true, false, GanMode::Hinge)
}

/// The label `cross_entropy2d` ignores.
pub const IGNORE_INDEX: i64 = 250;

/// HR-VITON's `cross_entropy2d(input, target, weight, size_average)`: `input` logits
/// `[N, C, H, W]`, `target` class indices `[N, Ht, Wt]` (0..C, or 250 = ignored). When
/// the sizes differ the input is resized to the target's with bilinear,
/// `align_corners=True`. With `size_average` the result is the (class-weighted) mean
/// over the pixels not ignored (`sum w[t] * nll / sum w[t]`), else the sum.
pub fn cross_entropy2d(
    input: Tensor<4>,
    target: Tensor<3, Int>,
    weight: Option<&[f32]>,
    size_average: bool,
) -> Result<Tensor<1>> {
    let [n, c, h, w] = input.dims();
    let [nt, ht, wt] = target.dims();
    if nt != n || c == 0 {
        return Err(VtonError::SizeMismatch {
            what: "cross_entropy2d target batch".into(),
            expected: format!("{n}"),
            actual: format!("{nt}"),
        });
    }
    if let Some(wv) = weight {
        if wv.len() != c {
            return Err(VtonError::invalid(
                "cross_entropy2d weight",
                format!("{} class weights for {c} classes", wv.len()),
            ));
        }
    }
    let input = if (h, w) != (ht, wt) {
        use burn::tensor::ops::{InterpolateMode, InterpolateOptions};
        burn::tensor::module::interpolate(
            input,
            InterpolateOptions::new(InterpolateMode::Bilinear)
                .with_align_corners(true)
                .with_output_size([ht, wt]),
        )
    } else {
        input
    };
    let dev = input.device();
    let labels: Vec<i64> = target
        .into_data()
        .convert::<i64>()
        .try_into_vec::<i64>()
        .map_err(|e| VtonError::Numerical {
            operation: "cross_entropy2d".into(),
            message: format!("reading the target: {e:?}"),
        })?;
    let mut idx = Vec::with_capacity(labels.len());
    let mut wpix = Vec::with_capacity(labels.len());
    for &t in &labels {
        if t == IGNORE_INDEX {
            idx.push(0i64);
            wpix.push(0f32);
        } else if t < 0 || t as usize >= c {
            return Err(VtonError::invalid(
                "cross_entropy2d target",
                format!("label {t} is outside 0..{c} (and not the ignored {IGNORE_INDEX})"),
            ));
        } else {
            idx.push(t);
            wpix.push(weight.map_or(1.0, |wv| wv[t as usize]));
        }
    }
    let denom: f64 = wpix.iter().map(|&v| v as f64).sum();
    let idx = Tensor::<4, Int>::from_data(TensorData::new(idx, [n, 1, ht, wt]), &dev);
    let wt4 = Tensor::<4>::from_data(TensorData::new(wpix, [n, 1, ht, wt]), &dev);
    let nll = log_softmax(input, 1).gather(1, idx).neg();
    let weighted = if weight.is_none() && denom as usize == labels.len() {
        nll
    } else {
        nll * wt4
    };
    let sum = weighted.sum();
    Ok(if size_average {
        // F.cross_entropy's mean: sum / sum of weights (NaN when every pixel is ignored).
        if weight.is_none() && denom as usize == labels.len() {
            sum.div_scalar(labels.len() as f64)
        } else {
            sum.div_scalar(denom)
        }
    } else {
        sum
    })
}
