//! CP-VTON+ (minar09/cp-vton-plus): the Geometric Matching Module (GMM) and the Try-On
//! Module (TOM, a U-Net generator), loaded from the released `gmm_final.pth` /
//! `tom_final.pth` state dicts under their original keys.
//!
//! Widths the original hard-codes (GMM's 64/512 feature widths, the regression's
//! 512/256/128/64) are read from the checkpoint's tensor shapes, so width-reduced
//! checkpoints load as well as the released ones.

use std::path::Path;

use crate::nn::Conv2d;
use crate::nn::Linear;
use burn::module::Module;
use burn::tensor::{Device, Tensor};

use crate::error::{Result, VtonError};
use crate::nn::{check_channels, leaky_relu, Norm2d, NormKind};
use crate::nn::{conv2d, linear, out_channels, relu, up2_bilinear, weight_shape, BatchNorm2d};
use crate::warp::tps::TpsGridGen;
use crate::weights::{Checkpoint, Loader};

/// `networks.FeatureExtraction`: four 4x4 stride-2 convolutions then two 3x3, each
/// Conv -> ReLU -> BatchNorm (norm after the activation), the last Conv -> ReLU.
#[derive(Module, Debug)]
pub struct FeatureExtraction {
    convs: Vec<Conv2d>,
    norms: Vec<BatchNorm2d>,
    #[module(skip)]
    in_channels: usize,
}

impl FeatureExtraction {
    /// Layer indices inside `model` (ReLUs sit between, without keys).
    const CONVS: [(usize, usize, usize, usize); 6] = [
        (0, 4, 2, 1),
        (3, 4, 2, 1),
        (6, 4, 2, 1),
        (9, 4, 2, 1),
        (12, 3, 1, 1),
        (15, 3, 1, 1),
    ];

    pub fn load(l: &Loader) -> Result<Self> {
        let l = l.sub("model");
        let in_channels = weight_shape(&l, "0")?.get(1).copied().unwrap_or(0);
        let mut cin = in_channels;
        let (mut convs, mut norms) = (Vec::new(), Vec::new());
        for (i, (idx, k, stride, pad)) in Self::CONVS.into_iter().enumerate() {
            let name = idx.to_string();
            let cout = out_channels(&l, &name)?;
            convs.push(conv2d(&l, &name, cin, cout, k, stride, pad, true)?);
            if i < 5 {
                norms.push(BatchNorm2d::load(&l, &(idx + 2).to_string(), cout, 1e-5)?);
            }
            cin = cout;
        }
        Ok(FeatureExtraction {
            convs,
            norms,
            in_channels,
        })
    }

    pub fn out_channels(&self) -> usize {
        self.convs[5].weight.dims()[0]
    }

    pub fn forward(&self, mut x: Tensor<4>) -> Tensor<4> {
        for (i, conv) in self.convs.iter().enumerate() {
            x = relu(conv.forward(x));
            if let Some(bn) = self.norms.get(i) {
                x = bn.forward(x);
            }
        }
        x
    }
}

/// `FeatureL2Norm`: `x / sqrt(sum_c x^2 + 1e-6)`.
pub fn feature_l2norm(x: Tensor<4>) -> Tensor<4> {
    let n = x.clone().square().sum_dim(1).add_scalar(1e-6).sqrt();
    x / n
}

/// `FeatureCorrelation` of CP-VTON: `out[b, k, i, j] = sum_c B[b,c,i,j] A[b,c,k%h,k/h]`
/// (A's positions enumerated column-major), shape `[B, h*w, h, w]`.
pub fn feature_correlation(a: Tensor<4>, b: Tensor<4>) -> Tensor<4> {
    let [n, c, h, w] = a.dims();
    let a_cols = a.swap_dims(2, 3).reshape([n, c, h * w]); // k = x*h + y
    let b_rows = b.reshape([n, c, h * w]).swap_dims(1, 2); // [n, hw(i*w+j), c]
    b_rows
        .matmul(a_cols) // [n, hw, k]
        .reshape([n, h, w, h * w])
        .permute([0, 3, 1, 2])
}

/// `FeatureRegression`: Conv-BN-ReLU x4 on the correlation, flatten (C, H, W), Linear, tanh.
#[derive(Module, Debug)]
pub struct FeatureRegression {
    convs: Vec<Conv2d>,
    norms: Vec<BatchNorm2d>,
    linear: Linear,
}

impl FeatureRegression {
    const CONVS: [(usize, usize, usize, usize); 4] =
        [(0, 4, 2, 1), (3, 4, 2, 1), (6, 3, 1, 1), (9, 3, 1, 1)];

    /// `in_channels` = h*w of the feature maps; `out_dim` = 2 grid_size^2;
    /// `spatial` = the conv stack's output h*w (the Linear's input is C_last * spatial).
    pub fn load(l: &Loader, in_channels: usize, out_dim: usize, spatial: usize) -> Result<Self> {
        let lc = l.sub("conv");
        let mut cin = in_channels;
        let (mut convs, mut norms) = (Vec::new(), Vec::new());
        for (idx, k, stride, pad) in Self::CONVS {
            let cout = out_channels(&lc, &idx.to_string())?;
            convs.push(conv2d(
                &lc,
                &idx.to_string(),
                cin,
                cout,
                k,
                stride,
                pad,
                true,
            )?);
            norms.push(BatchNorm2d::load(&lc, &(idx + 1).to_string(), cout, 1e-5)?);
            cin = cout;
        }
        let linear = linear(l, "linear", cin * spatial, out_dim, true)?;
        Ok(FeatureRegression {
            convs,
            norms,
            linear,
        })
    }

    pub fn forward(&self, mut x: Tensor<4>) -> Tensor<2> {
        for (conv, bn) in self.convs.iter().zip(&self.norms) {
            x = relu(bn.forward(conv.forward(x)));
        }
        let [b, c, h, w] = x.dims();
        self.linear.forward(x.reshape([b, c * h * w])).tanh()
    }
}

/// The GMM's options, named as CP-VTON+'s `opt` fields.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GmmConfig {
    pub grid_size: usize,
    pub fine_height: usize,
    pub fine_width: usize,
}

impl Default for GmmConfig {
    fn default() -> Self {
        GmmConfig {
            grid_size: 5,
            fine_height: 256,
            fine_width: 192,
        }
    }
}

/// What the GMM returns, with the intermediates CP-VTON's code computes on the way.
#[derive(Debug, Clone)]
pub struct GmmOutput {
    /// TPS sampling grid `[B, fine_height, fine_width, 2]`, `(x, y)` normalised.
    pub grid: Tensor<4>,
    /// `[B, 2 grid_size^2]`: X offsets of the control points, then Y offsets.
    pub theta: Tensor<2>,
    /// `extractionA(agnostic)` and `extractionB(cloth_mask)` before L2 normalisation.
    pub feature_a: Tensor<4>,
    pub feature_b: Tensor<4>,
    pub correlation: Tensor<4>,
}

/// CP-VTON+ `GMM`: `gmm(agnostic, cloth_mask) -> (grid, theta)`.
#[derive(Module, Debug)]
pub struct Gmm {
    extraction_a: FeatureExtraction,
    extraction_b: FeatureExtraction,
    regression: FeatureRegression,
    #[module(skip)]
    tps: TpsGridGen,
    #[module(skip)]
    config: GmmConfig,
}

impl Gmm {
    /// Loads `gmm_final.pth` (or any file [`Checkpoint::open`] reads); strict, like the
    /// original `load_state_dict`.
    pub fn from_checkpoint(
        path: impl AsRef<Path>,
        config: GmmConfig,
        device: &Device,
    ) -> Result<Self> {
        let ckpt = Checkpoint::open(path)?.rooted_at("extractionA.model.0.weight");
        let l = Loader::new(&ckpt, device, false);
        let m = Self::load(&l, config)?;
        l.finish(true)?;
        Ok(m)
    }

    pub fn load(l: &Loader, config: GmmConfig) -> Result<Self> {
        let GmmConfig {
            grid_size,
            fine_height: h,
            fine_width: w,
        } = config;
        if h % 16 != 0 || w % 16 != 0 || h < 64 || w < 64 {
            return Err(VtonError::invalid(
                "fine_height/fine_width",
                format!(
                    "{h}x{w}: GMM needs multiples of 16 (four stride-2 convolutions), at least 64"
                ),
            ));
        }
        let extraction_a = FeatureExtraction::load(&l.sub("extractionA"))?;
        let extraction_b = FeatureExtraction::load(&l.sub("extractionB"))?;
        if extraction_a.out_channels() != extraction_b.out_channels() {
            return Err(VtonError::WeightShape {
                key: l.key("extractionB.model.15.weight"),
                expected: vec![extraction_a.out_channels()],
                found: vec![extraction_b.out_channels()],
            });
        }
        let (fh, fw) = (h / 16, w / 16);
        // Two 4x4 stride-2 convolutions with padding 1 in the regression.
        let down = |n: usize| (n - 2) / 2 + 1;
        let regression = FeatureRegression::load(
            &l.sub("regression"),
            fh * fw,
            2 * grid_size * grid_size,
            down(down(fh)) * down(down(fw)),
        )?;
        let tps = TpsGridGen::new(h, w, grid_size, l.device())?;
        Ok(Gmm {
            extraction_a,
            extraction_b,
            regression,
            tps,
            config,
        })
    }

    pub fn config(&self) -> GmmConfig {
        self.config
    }

    /// Channels of the agnostic input (22 for CP-VTON+) and of the cloth mask (1).
    pub fn input_channels(&self) -> (usize, usize) {
        (self.extraction_a.in_channels, self.extraction_b.in_channels)
    }

    /// Runs the GMM on `agnostic [B, 22, H, W]` and `cloth_mask [B, 1, H, W]` at the
    /// configured fine size.
    pub fn forward(&self, agnostic: Tensor<4>, cloth_mask: Tensor<4>) -> Result<GmmOutput> {
        let (ca, cb) = self.input_channels();
        check_channels("GMM agnostic", &agnostic, ca)?;
        check_channels("GMM cloth mask", &cloth_mask, cb)?;
        let (da, db) = (agnostic.dims(), cloth_mask.dims());
        let want = [self.config.fine_height, self.config.fine_width];
        for (what, d) in [("GMM agnostic", da), ("GMM cloth mask", db)] {
            if [d[2], d[3]] != want || d[0] != da[0] {
                return Err(VtonError::SizeMismatch {
                    what: what.into(),
                    expected: format!("batch {}, size {}x{}", da[0], want[0], want[1]),
                    actual: format!("{}x{}x{}x{}", d[0], d[1], d[2], d[3]),
                });
            }
        }
        let feature_a = self.extraction_a.forward(agnostic);
        let feature_b = self.extraction_b.forward(cloth_mask);
        let correlation = feature_correlation(
            feature_l2norm(feature_a.clone()),
            feature_l2norm(feature_b.clone()),
        );
        let theta = self.regression.forward(correlation.clone());
        let grid = self.tps.forward(theta.clone())?;
        Ok(GmmOutput {
            grid,
            theta,
            feature_a,
            feature_b,
            correlation,
        })
    }
}

/// One `UnetSkipConnectionBlock`.
#[derive(Module, Debug)]
struct UnetBlock {
    down: Conv2d,
    down_norm: Option<Norm2d>,
    up: Conv2d,
    up_norm: Norm2d,
    #[module(skip)]
    outermost: bool,
}

#[derive(Clone, Copy, PartialEq)]
enum Level {
    Outermost,
    Middle,
    Innermost,
}

impl UnetBlock {
    /// Loads the block whose `nn.Sequential` is `l.model`, then its sub-blocks into
    /// `out` (outermost first); `depth` levels remain below it (0 = innermost).
    /// `input_nc` / `outer_nc`: channels in and out of the block.
    fn load(
        out: &mut Vec<UnetBlock>,
        l: &Loader,
        level: Level,
        depth: usize,
        input_nc: usize,
        outer_nc: usize,
        norm: NormKind,
    ) -> Result<()> {
        let l = l.sub("model");
        let bias = norm.conv_bias();
        // Indices of downconv / submodule / upconv / upnorm in the Sequential.
        let (i_down, i_sub, i_up) = match level {
            Level::Outermost => (0, 1, 4),
            Level::Middle => (1, 3, 6),
            Level::Innermost => (1, usize::MAX, 4),
        };
        let inner_nc = out_channels(&l, &i_down.to_string())?;
        let down = conv2d(&l, &i_down.to_string(), input_nc, inner_nc, 4, 2, 1, bias)?;
        let down_norm = if level == Level::Middle {
            Some(norm.load(&l, "2", inner_nc)?)
        } else {
            None
        };
        let up_in = if level == Level::Innermost {
            inner_nc
        } else {
            2 * inner_nc
        };
        let up = conv2d(&l, &i_up.to_string(), up_in, outer_nc, 3, 1, 1, bias)?;
        let up_norm = norm.load(&l, &(i_up + 1).to_string(), outer_nc)?;
        out.push(UnetBlock {
            down,
            down_norm,
            up,
            up_norm,
            outermost: level == Level::Outermost,
        });
        if level != Level::Innermost {
            let next = if depth == 1 {
                Level::Innermost
            } else {
                Level::Middle
            };
            UnetBlock::load(
                out,
                &l.sub(i_sub),
                next,
                depth - 1,
                inner_nc,
                inner_nc,
                norm,
            )?;
        }
        Ok(())
    }

    /// This block on `x`, with `inner` the blocks below it.
    fn forward(&self, x: Tensor<4>, inner: &[UnetBlock]) -> Tensor<4> {
        let mut y = if self.outermost {
            x.clone()
        } else {
            leaky_relu(x.clone(), 0.2)
        };
        y = self.down.forward(y);
        if let Some(n) = &self.down_norm {
            y = n.forward(y);
        }
        if let Some((sub, rest)) = inner.split_first() {
            y = sub.forward(y, rest);
        }
        y = self.up_norm.forward(self.up.forward(up2_bilinear(relu(y))));
        if self.outermost {
            y
        } else {
            // The original's in-place LeakyReLU turns the skip into leaky(x); the parent
            // applies ReLU right after this concat, so relu(leaky(x)) == relu(x).
            Tensor::cat(vec![x, y], 1)
        }
    }
}

/// TOM's options, named as `UnetGenerator`'s constructor arguments.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TomConfig {
    pub input_nc: usize,
    pub output_nc: usize,
    pub num_downs: usize,
    pub ngf: usize,
    pub norm_layer: NormKind,
}

impl Default for TomConfig {
    fn default() -> Self {
        TomConfig {
            input_nc: 26,
            output_nc: 4,
            num_downs: 6,
            ngf: 64,
            norm_layer: NormKind::Instance,
        }
    }
}

/// What TOM returns, as CP-VTON+'s `test.py` computes it.
#[derive(Debug, Clone)]
pub struct TomOutput {
    /// Raw network output `[B, output_nc, H, W]`.
    pub outputs: Tensor<4>,
    /// `tanh(outputs[:, :3])`.
    pub p_rendered: Tensor<4>,
    /// `sigmoid(outputs[:, 3:4])`.
    pub m_composite: Tensor<4>,
    /// `warped_cloth * m + p_rendered * (1 - m)`.
    pub p_tryon: Tensor<4>,
}

/// CP-VTON+ TOM: `UnetGenerator(input_nc, output_nc, num_downs, ngf, norm_layer)`.
#[derive(Module, Debug)]
pub struct Tom {
    /// The `UnetSkipConnectionBlock`s, outermost first.
    blocks: Vec<UnetBlock>,
    #[module(skip)]
    config: TomConfig,
}

impl Tom {
    /// Loads `tom_final.pth`; strict.
    pub fn from_checkpoint(
        path: impl AsRef<Path>,
        config: TomConfig,
        device: &Device,
    ) -> Result<Self> {
        let ckpt = Checkpoint::open(path)?.rooted_at("model.model.0.weight");
        let l = Loader::new(&ckpt, device, false);
        let m = Self::load(&l, config)?;
        l.finish(true)?;
        Ok(m)
    }

    pub fn load(l: &Loader, config: TomConfig) -> Result<Self> {
        if config.num_downs < 2 {
            return Err(VtonError::invalid(
                "num_downs",
                format!("{} (a U-Net needs at least 2 levels)", config.num_downs),
            ));
        }
        if config.output_nc < 4 {
            return Err(VtonError::invalid(
                "output_nc",
                format!(
                    "{} (TOM splits 3 rendered channels and 1 mask)",
                    config.output_nc
                ),
            ));
        }
        let first = l.sub("model.model");
        let ngf = out_channels(&first, "0")?;
        if ngf != config.ngf {
            return Err(VtonError::WeightShape {
                key: first.key("0.weight"),
                expected: vec![config.ngf, config.input_nc, 4, 4],
                found: weight_shape(&first, "0")?,
            });
        }
        let mut blocks = Vec::new();
        UnetBlock::load(
            &mut blocks,
            &l.sub("model"),
            Level::Outermost,
            config.num_downs - 1,
            config.input_nc,
            config.output_nc,
            config.norm_layer,
        )?;
        Ok(Tom { blocks, config })
    }

    pub fn config(&self) -> TomConfig {
        self.config
    }

    /// The raw U-Net on `x [B, input_nc, H, W]` (H, W divisible by 2^num_downs).
    pub fn forward_raw(&self, x: Tensor<4>) -> Result<Tensor<4>> {
        check_channels("TOM input", &x, self.config.input_nc)?;
        let [_, _, h, w] = x.dims();
        let m = 1usize << self.config.num_downs;
        if h % m != 0 || w % m != 0 {
            return Err(VtonError::invalid(
                "TOM input size",
                format!("{h}x{w} is not divisible by 2^num_downs = {m}"),
            ));
        }
        Ok(self.blocks[0].forward(x, &self.blocks[1..]))
    }

    /// `tom(agnostic, warped_cloth, warped_mask)`: the network sees
    /// `cat([agnostic, warped_cloth, warped_mask], 1)`.
    pub fn forward(
        &self,
        agnostic: Tensor<4>,
        warped_cloth: Tensor<4>,
        warped_mask: Tensor<4>,
    ) -> Result<TomOutput> {
        check_channels("TOM warped cloth", &warped_cloth, 3)?;
        check_channels("TOM warped mask", &warped_mask, 1)?;
        let (a, c, m) = (agnostic.dims(), warped_cloth.dims(), warped_mask.dims());
        if [a[0], a[2], a[3]] != [c[0], c[2], c[3]] || [a[0], a[2], a[3]] != [m[0], m[2], m[3]] {
            return Err(VtonError::SizeMismatch {
                what: "TOM inputs (agnostic, warped cloth, warped mask)".into(),
                expected: format!("batch and size {}x{}x{}", a[0], a[2], a[3]),
                actual: format!("{c:?} and {m:?}"),
            });
        }
        let x = Tensor::cat(vec![agnostic, warped_cloth.clone(), warped_mask], 1);
        let outputs = self.forward_raw(x)?;
        let [b, _, h, w] = outputs.dims();
        let p_rendered = outputs.clone().slice([0..b, 0..3, 0..h, 0..w]).tanh();
        let m_composite =
            burn::tensor::activation::sigmoid(outputs.clone().slice([0..b, 3..4, 0..h, 0..w]));
        let p_tryon = warped_cloth * m_composite.clone()
            + p_rendered.clone() * (m_composite.clone().neg().add_scalar(1.0));
        Ok(TomOutput {
            outputs,
            p_rendered,
            m_composite,
            p_tryon,
        })
    }
}
