//! Loss functions as the reference training scripts define them, on burn tensors (they
//! differentiate under autodiff).

use std::path::Path;

use burn::module::Module;
use burn::tensor::{Device, Tensor};

use crate::error::{Result, VtonError};
use crate::models::torchvision::{Backbone, TorchvisionFeatures};
use crate::weights::Checkpoint;

/// `nn.L1Loss()` (mean absolute difference).
pub fn l1<const D: usize>(x: Tensor<D>, y: Tensor<D>) -> Tensor<1> {
    (x - y).abs().mean()
}

/// `nn.MSELoss()` (mean squared difference).
pub fn mse<const D: usize>(x: Tensor<D>, y: Tensor<D>) -> Tensor<1> {
    (x - y).square().mean()
}

/// CP-VTON+'s `GicLoss` (grid-interval consistency) on a sampling grid `[B, H, W, 2]`:
/// the sum over the batch and the interior pixels of
/// `| |Gx[i,j-1]-Gx[i,j]| - |Gx[i,j+1]-Gx[i,j]| | + | |Gy[i-1,j]-Gy[i,j]| - |Gy[i+1,j]-Gy[i,j]| |`
/// (x only along rows, y only along columns). Returns the raw sum; the script divides it
/// by `B * H * W`.
pub fn grid_interval_consistency(grid: Tensor<4>) -> Tensor<1> {
    let [b, h, w, _] = grid.dims();
    let gx = grid
        .clone()
        .slice([0..b, 0..h, 0..w, 0..1])
        .reshape([b, h, w]);
    let gy = grid.slice([0..b, 0..h, 0..w, 1..2]).reshape([b, h, w]);
    let (ri, ci) = (1..h - 1, 1..w - 1);
    let centre_x = gx.clone().slice([0..b, ri.clone(), ci.clone()]);
    let left = gx.clone().slice([0..b, ri.clone(), 0..w - 2]);
    let right = gx.slice([0..b, ri.clone(), 2..w]);
    let dx = ((left - centre_x.clone()).abs() - (right - centre_x).abs()).abs();
    let centre_y = gy.clone().slice([0..b, ri.clone(), ci.clone()]);
    let up = gy.clone().slice([0..b, 0..h - 2, ci.clone()]);
    let down = gy.slice([0..b, 2..h, ci]);
    let dy = ((up - centre_y.clone()).abs() - (down - centre_y).abs()).abs();
    dx.sum() + dy.sum()
}

/// Total variation of a flow `[B, H, W, 2]` (NHWC, as HR-VITON keeps flows):
/// `mean |f[:, 1:] - f[:, :-1]| + mean |f[:, :, 1:] - f[:, :, :-1]|`.
pub fn total_variation_nhwc(flow: Tensor<4>) -> Tensor<1> {
    let [b, h, w, c] = flow.dims();
    let dy = flow.clone().slice([0..b, 1..h, 0..w, 0..c])
        - flow.clone().slice([0..b, 0..h - 1, 0..w, 0..c]);
    let dx =
        flow.clone().slice([0..b, 0..h, 1..w, 0..c]) - flow.slice([0..b, 0..h, 0..w - 1, 0..c]);
    dy.abs().mean() + dx.abs().mean()
}

/// How images are scaled before they enter the VGG of a [`VggLoss`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VggInputNorm {
    /// The images enter as they are (CP-VTON+ and HR-VITON feed `[-1, 1]` images).
    None,
    /// `(x - mean) / std` with ImageNet's mean `(0.485, 0.456, 0.406)` and std
    /// `(0.229, 0.224, 0.225)`, for images in `[0, 1]`.
    ImageNet,
    /// Images in `[-1, 1]` mapped to `[0, 1]` (`(x + 1) / 2`), then [`VggInputNorm::ImageNet`].
    ImageNetFromSigned,
}

/// Which VGG19 slices a [`VggLoss`] compares, and how much each counts.
#[derive(Debug, Clone, PartialEq)]
pub struct VggLossConfig {
    /// torchvision `features` indices at which the slices end (`features[..=end]`),
    /// strictly increasing; each must be a ReLU or a max pool.
    pub ends: Vec<usize>,
    /// The weight of each slice's L1 term (as many as `ends`).
    pub weights: Vec<f64>,
    pub input_norm: VggInputNorm,
}

impl VggLossConfig {
    /// CP-VTON+'s / pix2pixHD's `VGGLoss`: relu1_1, relu2_1, relu3_1, relu4_1, relu5_1
    /// (indices 1, 6, 11, 20, 29) weighted 1/32, 1/16, 1/8, 1/4, 1, no input normalisation.
    pub fn cpvton() -> Self {
        VggLossConfig {
            ends: vec![1, 6, 11, 20, 29],
            weights: vec![1.0 / 32.0, 1.0 / 16.0, 1.0 / 8.0, 1.0 / 4.0, 1.0],
            input_norm: VggInputNorm::None,
        }
    }

    /// relu1_2, relu2_2, relu3_2, relu4_2 of VGG19 (indices 3, 8, 13, 22), weight 1 each,
    /// no input normalisation (set `weights` / `input_norm` as the recipe wants).
    pub fn relu_x_2() -> Self {
        VggLossConfig {
            ends: vec![3, 8, 13, 22],
            weights: vec![1.0; 4],
            input_norm: VggInputNorm::None,
        }
    }

    pub fn validate(&self) -> Result<()> {
        if self.ends.is_empty() || self.ends.len() != self.weights.len() {
            return Err(VtonError::invalid(
                "VGG loss layers",
                format!(
                    "{} slice ends and {} weights: give one weight per slice (at least one)",
                    self.ends.len(),
                    self.weights.len()
                ),
            ));
        }
        if let Some(w) = self.weights.iter().find(|w| !w.is_finite()) {
            return Err(VtonError::invalid("VGG loss weights", format!("{w}")));
        }
        Ok(())
    }
}

impl Default for VggLossConfig {
    fn default() -> Self {
        Self::cpvton()
    }
}

/// A VGG perceptual loss on a frozen torchvision-layout VGG (`vgg19-dcbb9e9d.pth`, keys
/// `features.<idx>.weight|bias`, every width read from the shapes):
/// `sum_i w_i * mean |vgg_i(x) - vgg_i(y)|`, the target's features detached. The VGG's
/// parameters never require gradients (no optimiser sees them); the gradient flows
/// through it to `x` when `x` is tracked.
#[derive(Debug)]
pub struct VggLoss {
    features: TorchvisionFeatures,
    config: VggLossConfig,
}

impl VggLoss {
    /// From a torchvision VGG checkpoint (any format [`Checkpoint::open`] reads; the
    /// `features.*` tensors may sit under one prefix).
    pub fn from_checkpoint(
        path: impl AsRef<Path>,
        config: VggLossConfig,
        device: &Device,
    ) -> Result<Self> {
        let ck = Checkpoint::open(path)?;
        Self::from_loaded(&ck, config, device)
    }

    /// From an opened checkpoint. Put the VGG on the device the loss is computed on (an
    /// autodiff device to train through it).
    pub fn from_loaded(ckpt: &Checkpoint, config: VggLossConfig, device: &Device) -> Result<Self> {
        config.validate()?;
        let ck = ckpt.clone().rooted_at("features.0.weight");
        let features = TorchvisionFeatures::load(Backbone::Vgg, &ck, device)?
            .with_taps_at(&config.ends)?
            .no_grad();
        Ok(VggLoss { features, config })
    }

    /// The same VGG on another device (a data-parallel replica).
    pub fn fork(&self, device: &Device) -> Self {
        use burn::module::Module;
        VggLoss {
            features: self.features.clone().fork(device),
            config: self.config.clone(),
        }
    }

    pub fn config(&self) -> &VggLossConfig {
        &self.config
    }

    /// The channel count of every slice output.
    pub fn tap_channels(&self) -> &[usize] {
        self.features.tap_channels()
    }

    fn normalise(&self, x: Tensor<4>) -> Tensor<4> {
        let dev = x.device();
        let x = match self.config.input_norm {
            VggInputNorm::None => return x,
            VggInputNorm::ImageNet => x,
            VggInputNorm::ImageNetFromSigned => x.add_scalar(1.0).mul_scalar(0.5),
        };
        let mean = Tensor::<1>::from_floats([0.485f32, 0.456, 0.406], &dev).reshape([1, 3, 1, 1]);
        let std = Tensor::<1>::from_floats([0.229f32, 0.224, 0.225], &dev).reshape([1, 3, 1, 1]);
        (x - mean) / std
    }

    /// The slice outputs of `x` (`[B, 3, H, W]`).
    pub fn features(&self, x: Tensor<4>) -> Result<Vec<Tensor<4>>> {
        let [_, c, h, w] = x.dims();
        if c != 3 {
            return Err(VtonError::invalid(
                "VGG loss input",
                format!("{c} channels (an RGB image has 3)"),
            ));
        }
        self.features.check_input_size("VGG loss input", h, w)?;
        Ok(self.features.forward(self.normalise(x)))
    }

    /// The loss and each slice's unweighted L1 term.
    pub fn forward_terms(&self, x: Tensor<4>, y: Tensor<4>) -> Result<(Tensor<1>, Vec<Tensor<1>>)> {
        if x.dims() != y.dims() {
            return Err(VtonError::SizeMismatch {
                what: "VGG loss inputs".into(),
                expected: format!("{:?}", x.dims()),
                actual: format!("{:?}", y.dims()),
            });
        }
        let fx = self.features(x)?;
        let fy = self.features(y.detach())?;
        let mut terms = Vec::with_capacity(fx.len());
        let mut total: Option<Tensor<1>> = None;
        for ((a, b), &w) in fx.into_iter().zip(fy).zip(&self.config.weights) {
            let t = l1(a, b.detach());
            let wt = t.clone().mul_scalar(w);
            total = Some(match total {
                None => wt,
                Some(s) => s + wt,
            });
            terms.push(t);
        }
        let total = total.ok_or_else(|| VtonError::invalid("VGG loss layers", "none"))?;
        Ok((total, terms))
    }

    /// `sum_i w_i * mean |vgg_i(x) - vgg_i(y)|` (`y` is detached).
    pub fn forward(&self, x: Tensor<4>, y: Tensor<4>) -> Result<Tensor<1>> {
        Ok(self.forward_terms(x, y)?.0)
    }

    /// [`style_loss`] on this VGG's slices, with the slice weights of the config.
    pub fn style(&self, x: Tensor<4>, y: Tensor<4>) -> Result<Tensor<1>> {
        let fx = self.features(x)?;
        let fy = self.features(y.detach())?;
        style_loss(&fx, &fy, &self.config.weights)
    }
}

/// The Gram matrix of feature maps `[B, C, H, W]`: `G[b] = F[b] F[b]^T / (C H W)` with
/// `F[b]` the `[C, H*W]` features of sample `b`; returns `[B, C, C]`.
pub fn gram_matrix(f: Tensor<4>) -> Tensor<3> {
    let [b, c, h, w] = f.dims();
    let f = f.reshape([b, c, h * w]);
    let ft = f.clone().swap_dims(1, 2);
    f.matmul(ft).div_scalar((c * h * w) as f64)
}

/// A Gram-matrix style loss (EdgeConnect's / LaMa's convention):
/// `sum_i w_i * mean_{b, c, c'} |G(x_i) - G(y_i)|[b, c, c']` with [`gram_matrix`]'s
/// normalisation by `C H W`; the targets `y_i` are detached.
pub fn style_loss(x: &[Tensor<4>], y: &[Tensor<4>], weights: &[f64]) -> Result<Tensor<1>> {
    if x.is_empty() || x.len() != y.len() || x.len() != weights.len() {
        return Err(VtonError::invalid(
            "style loss",
            format!(
                "{} inputs, {} targets and {} weights: give the same number (at least one)",
                x.len(),
                y.len(),
                weights.len()
            ),
        ));
    }
    let mut total: Option<Tensor<1>> = None;
    for ((a, b), &w) in x.iter().zip(y).zip(weights) {
        if a.dims() != b.dims() {
            return Err(VtonError::SizeMismatch {
                what: "style loss features".into(),
                expected: format!("{:?}", a.dims()),
                actual: format!("{:?}", b.dims()),
            });
        }
        let t = l1(gram_matrix(a.clone()), gram_matrix(b.clone().detach())).mul_scalar(w);
        total = Some(match total {
            None => t,
            Some(s) => s + t,
        });
    }
    total.ok_or_else(|| VtonError::invalid("style loss", "no features"))
}
