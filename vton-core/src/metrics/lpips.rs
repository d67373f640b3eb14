//! LPIPS, the learned perceptual image patch similarity of Zhang et al. (2018), as the
//! `lpips` package 0.1.4 computes it with `lpips.LPIPS(net=..., version='0.1')` (the
//! older PerceptualSimilarity `PerceptualLoss(model='net-lin')` that HR-VITON and
//! StableVITON use is the same computation):
//!
//! 1. inputs `N x 3 x H x W` in `[-1, 1]` (lpips' `normalize=True` is `2x - 1` of `[0, 1]`
//!    images; feeding `[0, 1]` images without it is a common mistake that gives other
//!    values, and is not detected, as lpips does not detect it);
//! 2. the ScalingLayer, `(x - shift) / scale` with shift `(-0.030, -0.088, -0.188)` and
//!    scale `(0.458, 0.448, 0.450)` (or the checkpoint's `scaling_layer.*`);
//! 3. the torchvision backbone's taps after the ReLUs ([`TorchvisionFeatures`]): alex 5,
//!    squeeze 7, vgg 5;
//! 4. per tap, every spatial feature vector is unit-normalised over channels,
//!    `f / (sqrt(sum f^2) + 1e-10)` ([`LpipsNormalization::Lpips`]; torchmetrics >= 1.3 uses
//!    `f / sqrt(sum f^2 + 1e-8)`, [`LpipsNormalization::Torchmetrics`], which differs by up
//!    to ~1e-5 where a tap has few channels), then `(f0 - f1)^2`, weighted over channels by
//!    the tap's linear layer (`lin<k>.model.1.weight`, 1 x C x 1 x 1, no bias), averaged
//!    over H, W;
//! 5. the sum over taps, one value per image.
//!
//! torchmetrics' `LearnedPerceptualImagePatchSimilarity` averages that over the batch and
//! rejects inputs outside `[-1, 1]`; here the per-image values are returned and any input
//! range is accepted, as lpips does.
//!
//! The linear layers: the lpips 0.1.4 wheel's `lpips/weights/v0.1/{alex,squeeze,vgg}.pth`
//! (BSD-2-Clause, Richard Zhang et al.) ship inside vton (`vton-core/models/lpips/`, as
//! the original `.pth` and a safetensors copy with the same keys and float32 values,
//! which is what is embedded; `scripts/extract-lpips-weights.sh` re-creates both and
//! checks their sha256). They are built for the full-width torchvision backbones
//! (alexnet-owt-7be5be79, squeezenet1_1-b8a52dc0, vgg16-397923af), which are not bundled:
//! pass the torchvision checkpoint. Every width is read from the checkpoints; lin layers
//! whose widths do not match the backbone's taps are an error.

use std::path::Path;
use std::str::FromStr;

use burn::module::Module;
use burn::tensor::{Device, Tensor, TensorData};

use crate::error::{Result, VtonError};
use crate::models::torchvision::{Backbone, TorchvisionFeatures};
use crate::weights::{list_keys, Checkpoint};

/// lpips' ScalingLayer constants (`lpips.ScalingLayer`: shift and scale per RGB channel).
pub const SCALING_SHIFT: [f32; 3] = [-0.030, -0.088, -0.188];
/// See [`SCALING_SHIFT`].
pub const SCALING_SCALE: [f32; 3] = [0.458, 0.448, 0.450];

/// `lpips.normalize_tensor`'s eps, added to the norm.
const LPIPS_EPS: f64 = 1e-10;
/// torchmetrics' `_normalize_tensor` eps, added to the squared norm.
const TORCHMETRICS_EPS: f64 = 1e-8;

const BUNDLED_ALEX: &[u8] = include_bytes!("../../models/lpips/alex.safetensors");
const BUNDLED_SQUEEZE: &[u8] = include_bytes!("../../models/lpips/squeeze.safetensors");
const BUNDLED_VGG: &[u8] = include_bytes!("../../models/lpips/vgg.safetensors");

/// The backbone network of an LPIPS model (lpips' `net=` argument).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum LpipsNet {
    /// `alex`: torchvision alexnet, 5 taps (the lpips default).
    Alex,
    /// `squeeze`: torchvision squeezenet1_1, 7 taps (torchmetrics' default is alex too;
    /// CatVTON uses squeeze).
    Squeeze,
    /// `vgg`: torchvision vgg16, 5 taps.
    Vgg,
}

impl LpipsNet {
    /// lpips' name: `alex`, `squeeze`, `vgg`.
    pub fn name(self) -> &'static str {
        match self {
            LpipsNet::Alex => "alex",
            LpipsNet::Squeeze => "squeeze",
            LpipsNet::Vgg => "vgg",
        }
    }

    /// From lpips' name (`alex`, `squeeze`, `vgg`; also torchvision's `alexnet`,
    /// `squeezenet1_1`, `vgg16`), case-insensitive.
    pub fn from_name(name: &str) -> Result<Self> {
        match name.trim().to_ascii_lowercase().as_str() {
            "alex" | "alexnet" => Ok(LpipsNet::Alex),
            "squeeze" | "squeezenet" | "squeezenet1_1" => Ok(LpipsNet::Squeeze),
            "vgg" | "vgg16" => Ok(LpipsNet::Vgg),
            _ => Err(VtonError::invalid(
                "net",
                format!("'{name}' is not one of 'alex', 'squeeze', 'vgg'"),
            )),
        }
    }

    /// Every net, in lpips' order.
    pub fn all() -> [LpipsNet; 3] {
        [LpipsNet::Alex, LpipsNet::Squeeze, LpipsNet::Vgg]
    }

    /// The torchvision backbone.
    pub fn backbone(self) -> Backbone {
        match self {
            LpipsNet::Alex => Backbone::AlexNet,
            LpipsNet::Squeeze => Backbone::SqueezeNet1_1,
            LpipsNet::Vgg => Backbone::Vgg,
        }
    }

    /// The lpips 0.1.4 `weights/v0.1/<net>.pth` linear layers that ship with vton (keys
    /// `lin<k>.model.1.weight`, full-width shapes: alex 64, 192, 384, 256, 256).
    pub fn bundled_lin(self) -> Result<Checkpoint> {
        let bytes = match self {
            LpipsNet::Alex => BUNDLED_ALEX,
            LpipsNet::Squeeze => BUNDLED_SQUEEZE,
            LpipsNet::Vgg => BUNDLED_VGG,
        };
        Checkpoint::from_safetensors_bytes(
            &format!("bundled lpips 0.1.4 v0.1 {} lin layers", self.name()),
            bytes,
        )
    }
}

impl FromStr for LpipsNet {
    type Err = VtonError;

    fn from_str(s: &str) -> Result<Self> {
        LpipsNet::from_name(s)
    }
}

impl std::fmt::Display for LpipsNet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// Where the eps goes when the tap features are unit-normalised over channels.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum LpipsNormalization {
    /// lpips' `normalize_tensor`: `f / (sqrt(sum f^2) + 1e-10)`.
    #[default]
    Lpips,
    /// torchmetrics >= 1.3 `_normalize_tensor`: `f / sqrt(sum f^2 + 1e-8)`.
    Torchmetrics,
}

/// An LPIPS model: a torchvision backbone, one linear layer per tap, the ScalingLayer.
#[derive(Module, Debug)]
pub struct Lpips {
    /// The backbone (`net` in lpips).
    pub backbone: TorchvisionFeatures,
    /// `lin<k>.model.1.weight` as `[1, C, 1, 1]`.
    pub lins: Vec<Tensor<4>>,
    /// The ScalingLayer's shift and scale, `[1, 3, 1, 1]`.
    pub shift: Tensor<4>,
    pub scale: Tensor<4>,
    #[module(skip)]
    net: LpipsNet,
    #[module(skip)]
    normalization: LpipsNormalization,
}

/// `net.slice<k>.<N>.rest` (a whole `lpips.LPIPS` state dict) -> `features.<N>.rest`;
/// `scaling_layer.*` is kept, everything else dropped.
fn lpips_net_key(key: &str) -> Option<String> {
    if key.starts_with("scaling_layer.") {
        return Some(key.to_string());
    }
    let rest = key.strip_prefix("net.slice")?;
    let (_, inner) = rest.split_once('.')?;
    Some(format!("features.{inner}"))
}

impl Lpips {
    /// Loads LPIPS from a backbone checkpoint and optional linear layers.
    ///
    /// `backbone`: the torchvision file (`alexnet-owt-*.pth`, `squeezenet1_1-*.pth`,
    /// `vgg16-*.pth`: keys `features.N.*`; `classifier.*` is ignored), or a whole
    /// `lpips.LPIPS` state dict (keys `net.slice<k>.<N>.*`, `lin<k>.model.1.weight`,
    /// `scaling_layer.*`). `lin`: a file with `lin<k>.model.1.weight` keys (lpips'
    /// `weights/v0.1/<net>.pth` layout, at the root or under one prefix). With `None`, the
    /// backbone file's own lin layers are used when it has them (an `lpips.LPIPS` state
    /// dict, or both parts under prefixes), else the bundled lpips 0.1.4 v0.1 layers for
    /// `net`.
    pub fn from_checkpoint(
        backbone: impl AsRef<Path>,
        net: LpipsNet,
        lin: Option<&Path>,
        device: &Device,
    ) -> Result<Self> {
        const LIN_PROBE: &str = "lin0.model.1.weight";
        let ck = Checkpoint::open(backbone)?;
        let lin_ck = match lin {
            // lin layers stored under a prefix (`<model>.lin.lin0.*`) are found too
            Some(path) => Checkpoint::open(path)?.rooted_at(LIN_PROBE),
            None => {
                // the backbone file's own lin layers (a whole lpips.LPIPS state dict, or a
                // file holding both parts under prefixes), else the bundled ones
                let own = ck.clone().rooted_at(LIN_PROBE);
                if own.contains(LIN_PROBE) || own.contains("lins.0.model.1.weight") {
                    own
                } else {
                    net.bundled_lin()?
                }
            }
        };
        let backbone_ck = if ck.keys().any(|k| k.starts_with("net.slice")) {
            ck
        } else {
            // a backbone stored under a prefix (`<model>.backbone.features.*`) is found
            ck.rooted_at("features.0.weight")
        };
        Self::from_checkpoints(&backbone_ck, &lin_ck, net, device)
    }

    /// Loads LPIPS from opened checkpoints: `backbone` with torchvision's `features.N.*`
    /// keys (or lpips' `net.slice<k>.<N>.*`), `lin` with `lin<k>.model.1.weight`. The
    /// ScalingLayer comes from `scaling_layer.{shift,scale}` of `lin`, else of `backbone`,
    /// else lpips' constants. Keys of `lin` other than `lin<k>.*` and `scaling_layer.*`
    /// are ignored (so one file may hold both parts).
    pub fn from_checkpoints(
        backbone: &Checkpoint,
        lin: &Checkpoint,
        net: LpipsNet,
        device: &Device,
    ) -> Result<Self> {
        let mapped;
        let backbone_ck = if backbone.keys().any(|k| k.starts_with("net.slice")) {
            mapped = backbone.clone().map_keys(lpips_net_key);
            &mapped
        } else {
            backbone
        };
        // lpips.LPIPS also registers its lin layers as `lins.<k>` (an nn.ModuleList).
        let lins_mapped;
        let lin = if !lin.contains("lin0.model.1.weight") && lin.contains("lins.0.model.1.weight") {
            lins_mapped = lin.clone().map_keys(|k| {
                Some(match k.strip_prefix("lins.") {
                    Some(rest) => format!("lin{rest}"),
                    None => k.to_string(),
                })
            });
            &lins_mapped
        } else {
            lin
        };
        let features = TorchvisionFeatures::load(net.backbone(), backbone_ck, device)?;
        let taps = features.tap_channels().to_vec();

        // The lin layers: exactly one per tap, each [1, C_k, 1, 1].
        let lin_count = (0..)
            .take_while(|k| lin.contains(&format!("lin{k}.model.1.weight")))
            .count();
        let stray: Vec<String> = lin
            .keys()
            .filter(|k| {
                k.strip_prefix("lin")
                    .and_then(|r| r.split_once('.'))
                    .is_some_and(|(n, rest)| {
                        n.parse::<usize>().is_ok_and(|n| n >= lin_count)
                            || (rest != "model.1.weight" && n.parse::<usize>().is_ok())
                    })
            })
            .map(str::to_string)
            .collect();
        if lin_count == 0 {
            return Err(VtonError::MissingWeights {
                source_name: lin.name().to_string(),
                count: taps.len(),
                keys: (0..taps.len())
                    .map(|k| format!("lin{k}.model.1.weight"))
                    .collect::<Vec<_>>()
                    .join(", "),
            });
        }
        let lin_widths: Vec<Option<usize>> = (0..lin_count)
            .map(|k| match lin.shape(&format!("lin{k}.model.1.weight")) {
                Some([1, c, 1, 1]) => Some(*c),
                _ => None,
            })
            .collect();
        for (k, w) in lin_widths.iter().enumerate() {
            if w.is_none() {
                let key = format!("lin{k}.model.1.weight");
                return Err(VtonError::WeightShape {
                    expected: vec![1, taps.get(k).copied().unwrap_or(0), 1, 1],
                    found: lin.shape(&key).map(<[usize]>::to_vec).unwrap_or_default(),
                    key,
                });
            }
        }
        let lin_widths: Vec<usize> = lin_widths.into_iter().flatten().collect();
        if lin_widths != taps || !stray.is_empty() {
            let hint = if lin_widths.len() != taps.len() {
                format!(
                    "{} lin layers for the {} taps of {}: lin layers of another net?",
                    lin_widths.len(),
                    taps.len(),
                    net.name()
                )
            } else {
                "lin layers made for another width of the backbone (the bundled lpips \
                 v0.1 layers fit the full-width torchvision checkpoints only; pass the lin \
                 layers trained for this backbone)"
                    .to_string()
            };
            let stray = if stray.is_empty() {
                String::new()
            } else {
                format!("; unexpected lin keys: {}", list_keys(&stray))
            };
            return Err(VtonError::Config {
                what: format!("LPIPS {} lin layers", net.name()),
                message: format!(
                    "{} holds lin layers of widths {lin_widths:?}, but the backbone in {} has \
                     taps of widths {taps:?}: {hint}{stray}",
                    lin.name(),
                    backbone.name(),
                ),
            });
        }
        let lins = taps
            .iter()
            .enumerate()
            .map(|(k, &c)| {
                let v = lin.read_f32(&format!("lin{k}.model.1.weight"))?;
                Ok(Tensor::from_data(TensorData::new(v, [1, c, 1, 1]), device))
            })
            .collect::<Result<Vec<_>>>()?;

        let constant = |name: &str, default: [f32; 3]| -> Result<Tensor<4>> {
            let key = format!("scaling_layer.{name}");
            let source = [lin, backbone].into_iter().find(|c| c.contains(&key));
            let values = match source {
                Some(c) => {
                    let shape = c.shape(&key).map(<[usize]>::to_vec).unwrap_or_default();
                    if shape.iter().product::<usize>() != 3 || shape.len() > 4 {
                        return Err(VtonError::WeightShape {
                            key,
                            expected: vec![1, 3, 1, 1],
                            found: shape,
                        });
                    }
                    c.read_f32(&key)?
                }
                None => default.to_vec(),
            };
            Ok(Tensor::from_data(
                TensorData::new(values, [1, 3, 1, 1]),
                device,
            ))
        };
        let shift = constant("shift", SCALING_SHIFT)?;
        let scale = constant("scale", SCALING_SCALE)?;
        Ok(Lpips {
            backbone: features,
            lins,
            shift,
            scale,
            net,
            normalization: LpipsNormalization::default(),
        })
    }

    /// The same model with another feature normalisation.
    pub fn with_normalization(mut self, normalization: LpipsNormalization) -> Self {
        self.normalization = normalization;
        self
    }

    /// The feature normalisation in use.
    pub fn normalization(&self) -> LpipsNormalization {
        self.normalization
    }

    /// The backbone network.
    pub fn net(&self) -> LpipsNet {
        self.net
    }

    /// The channel count of every tap (= every lin layer's C).
    pub fn tap_channels(&self) -> Vec<usize> {
        self.backbone.tap_channels().to_vec()
    }

    /// The smallest image height and width the backbone accepts (alex 31, vgg 16,
    /// squeeze 17).
    pub fn min_input_size(&self) -> usize {
        self.backbone.min_input_size()
    }

    fn check_input(&self, what: &str, x: &Tensor<4>) -> Result<()> {
        let d = x.dims();
        if d[1] != 3 || d.contains(&0) {
            return Err(VtonError::Shape {
                what: format!("LPIPS input {what}"),
                expected: "[N, 3, H, W] (RGB in [-1, 1])".into(),
                actual: d.to_vec(),
            });
        }
        self.backbone
            .check_input_size(&format!("LPIPS input {what}"), d[2], d[3])
    }

    fn check_pair(&self, x0: &Tensor<4>, x1: &Tensor<4>) -> Result<()> {
        self.check_input("x0", x0)?;
        self.check_input("x1", x1)?;
        if x0.dims() != x1.dims() {
            return Err(VtonError::SizeMismatch {
                what: "LPIPS inputs x0 and x1".into(),
                expected: format!("{:?}", x0.dims()),
                actual: format!("{:?}", x1.dims()),
            });
        }
        Ok(())
    }

    fn taps(&self, x: Tensor<4>) -> Vec<Tensor<4>> {
        let x = (x - self.shift.clone()) / self.scale.clone();
        self.backbone.forward(x)
    }

    fn normalize(&self, f: Tensor<4>) -> Tensor<4> {
        let sq = (f.clone() * f.clone()).sum_dim(1);
        let norm = match self.normalization {
            LpipsNormalization::Lpips => sq.sqrt().add_scalar(LPIPS_EPS),
            LpipsNormalization::Torchmetrics => sq.add_scalar(TORCHMETRICS_EPS).sqrt(),
        };
        f / norm
    }

    /// The backbone's tap features of `x` (`N x 3 x H x W` in `[-1, 1]`), after the
    /// ScalingLayer and before the unit normalisation: one `N x C_k x H_k x W_k` per tap.
    pub fn features(&self, x: Tensor<4>) -> Result<Vec<Tensor<4>>> {
        self.check_input("x", &x)?;
        Ok(self.taps(x))
    }

    /// The per-tap terms, `N x L` (L = 5 for alex and vgg, 7 for squeeze): the spatial
    /// means of the weighted squared differences; [`Self::distance`] is their sum.
    pub fn distance_per_layer(&self, x0: Tensor<4>, x1: Tensor<4>) -> Result<Vec<Vec<f32>>> {
        self.check_pair(&x0, &x1)?;
        let n = x0.dims()[0];
        // Both images through the backbone in one batch; every op is per image.
        let feats = self.taps(Tensor::cat(vec![x0, x1], 0));
        let mut terms = vec![Vec::with_capacity(feats.len()); n];
        for (f, w) in feats.into_iter().zip(&self.lins) {
            let [_, c, h, wd] = f.dims();
            let f = self.normalize(f);
            let d = f.clone().narrow(0, 0, n) - f.narrow(0, n, n);
            let weighted = (d.clone() * d * w.clone()).sum_dim(1);
            let mean = weighted.reshape([n, h * wd]).mean_dim(1);
            let values = mean
                .into_data()
                .convert::<f32>()
                .try_into_vec::<f32>()
                .map_err(|e| VtonError::Backend {
                    operation: format!("LPIPS tap with {c} channels"),
                    message: format!("{e:?}"),
                })?;
            for (row, v) in terms.iter_mut().zip(values) {
                row.push(v);
            }
        }
        Ok(terms)
    }

    /// The LPIPS distance of every image pair: `x0`, `x1` are `N x 3 x H x W` in `[-1, 1]`
    /// (the same shape; lpips does not check the range and neither does this); returns N
    /// values. Images smaller than the backbone allows ([`Self::min_input_size`]) are an
    /// [`VtonError::InvalidArgument`].
    pub fn distance(&self, x0: Tensor<4>, x1: Tensor<4>) -> Result<Vec<f32>> {
        // lpips adds the taps in order, starting from 0, in float32.
        Ok(self
            .distance_per_layer(x0, x1)?
            .into_iter()
            .map(|row| row.into_iter().fold(0f32, |acc, v| acc + v))
            .collect())
    }
}
