//! SCHP, Self-Correction Human Parsing (GoGoDuck912/Self-Correction-Human-Parsing,
//! `networks/AugmentCE2P.py`): the ResNet-101 parser with PSP context encoding, an edge
//! branch, a decoder and a fusion head, the LIP parser CatVTON, OOTDiffusion and IDM-VTON
//! use. Loaded from the released `exp-schp-201908261155-lip.pth` under its own keys
//! (`module.` is stripped by [`Checkpoint`]).
//!
//! Layout of the original, by key:
//!
//! | keys | module |
//! |---|---|
//! | `conv1` `bn1` `conv2` `bn2` `conv3` `bn3` | deep stem: 3x3 s2, 3x3, 3x3 convs, each BN + ReLU, then max-pool 3x3 s2 |
//! | `layer{1..4}.{i}.conv{1,2,3}` `.bn{1,2,3}` `.downsample.{0,1}` | Bottleneck blocks; layer2/3 stride 2, layer4 stride 1 dilation 2 |
//! | `context_encoding.stages.{0..3}.{1,2}` | PSP: adaptive average pool to 1, 2, 3, 6, 1x1 conv, ABN |
//! | `context_encoding.bottleneck.{0,1}` | 3x3 conv over the concatenation, ABN |
//! | `decoder.conv1.{0,1}` `decoder.conv2.{0,1}` `decoder.conv3.{0..3}` `decoder.conv4` | parsing decoder |
//! | `edge.conv{1,2,3}.{0,1}` `edge.conv4` `edge.conv5` | edge branch |
//! | `fushion.{0,1,3}` | fusion head (`.2` is a dropout) |
//!
//! The backbone's norms are `InPlaceABNSync(activation='none')` (batch norm only), every
//! other one `InPlaceABNSync` = batch norm then leaky ReLU (slope 0.01); eval mode, eps
//! 1e-5. Every width, the number of blocks per stage and the number of classes are read
//! from the checkpoint's tensor shapes; strides, dilations and pooling sizes are the
//! architecture's.

use std::path::Path;

use crate::nn::Conv2d;
use burn::module::Module;
use burn::nn::PaddingConfig2d;
use burn::tensor::module::{adaptive_avg_pool2d, interpolate, max_pool2d};
use burn::tensor::ops::{InterpolateMode, InterpolateOptions, MaxPoolOptions};
use burn::tensor::{Device, Tensor};

use crate::error::{Result, VtonError};
use crate::nn::{check_channels, leaky_relu, relu, weight_shape, BatchNorm2d};
use crate::weights::{Checkpoint, Loader};

/// `InPlaceABNSync`'s eps and leaky ReLU slope (its defaults, used throughout SCHP).
const ABN_EPS: f64 = 1e-5;
const ABN_SLOPE: f64 = 0.01;
/// PSP pooling sizes (`PSPModule(sizes=(1, 2, 3, 6))`).
const PSP_SIZES: [usize; 4] = [1, 2, 3, 6];

/// `F.interpolate(x, (h, w), mode='bilinear', align_corners=True)`.
pub fn resize_bilinear_align_corners(x: Tensor<4>, h: usize, w: usize) -> Tensor<4> {
    let [_, _, ih, iw] = x.dims();
    if (ih, iw) == (h, w) {
        return x;
    }
    interpolate(
        x,
        InterpolateOptions::new(InterpolateMode::Bilinear)
            .with_align_corners(true)
            .with_output_size([h, w]),
    )
}

/// A convolution whose output width is read from the checkpoint; the input width and
/// kernel size are checked against what the architecture feeds it.
fn conv(
    l: &Loader,
    name: &str,
    cin: usize,
    k: usize,
    stride: usize,
    dilation: usize,
    bias: bool,
) -> Result<Conv2d> {
    let shape = weight_shape(l, name)?;
    let cout = match shape.as_slice() {
        [cout, _, _, _] => *cout,
        _ => {
            return Err(VtonError::WeightShape {
                key: l.key(&format!("{name}.weight")),
                expected: vec![0, cin, k, k],
                found: shape,
            })
        }
    };
    if cout == 0 {
        return Err(VtonError::WeightShape {
            key: l.key(&format!("{name}.weight")),
            expected: vec![1, cin, k, k],
            found: shape,
        });
    }
    let s = l.sub(name);
    let weight = s.param("weight", [cout, cin, k, k])?;
    let bias = if bias {
        Some(s.param("bias", [cout])?)
    } else {
        None
    };
    let pad = dilation * (k / 2);
    Ok(Conv2d {
        weight,
        bias,
        stride: [stride, stride],
        kernel_size: [k, k],
        dilation: [dilation, dilation],
        groups: 1,
        padding: PaddingConfig2d::Explicit(pad, pad, pad, pad),
    })
}

fn out_of(c: &Conv2d) -> usize {
    c.weight.dims()[0]
}

/// `nn.Sequential(Conv2d(bias=False), InPlaceABNSync(c))`: conv, batch norm, leaky ReLU.
/// Keys `<name>.<conv>` and `<name>.<conv + 1>`.
#[derive(Module, Debug)]
pub struct ConvAbn {
    pub conv: Conv2d,
    pub bn: BatchNorm2d,
}

impl ConvAbn {
    fn load(l: &Loader, conv_key: &str, bn_key: &str, cin: usize, k: usize) -> Result<Self> {
        let conv = conv(l, conv_key, cin, k, 1, 1, false)?;
        let bn = BatchNorm2d::load(l, bn_key, out_of(&conv), ABN_EPS)?;
        Ok(ConvAbn { conv, bn })
    }

    pub fn out_channels(&self) -> usize {
        out_of(&self.conv)
    }

    pub fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        leaky_relu(self.bn.forward(self.conv.forward(x)), ABN_SLOPE)
    }
}

/// `Bottleneck` (expansion 4): 1x1, 3x3 (stride, dilation), 1x1, each with batch norm,
/// ReLU after the first two and after the residual sum.
#[derive(Module, Debug)]
pub struct Bottleneck {
    pub conv1: Conv2d,
    pub bn1: BatchNorm2d,
    pub conv2: Conv2d,
    pub bn2: BatchNorm2d,
    pub conv3: Conv2d,
    pub bn3: BatchNorm2d,
    /// `downsample.0` (1x1 conv, stride) and `downsample.1` (batch norm).
    pub downsample: Option<(Conv2d, BatchNorm2d)>,
}

impl Bottleneck {
    fn load(l: &Loader, cin: usize, stride: usize, dilation: usize) -> Result<Self> {
        let conv1 = conv(l, "conv1", cin, 1, 1, 1, false)?;
        let planes = out_of(&conv1);
        let bn1 = BatchNorm2d::load(l, "bn1", planes, ABN_EPS)?;
        let conv2 = conv(l, "conv2", planes, 3, stride, dilation, false)?;
        let mid = out_of(&conv2);
        let bn2 = BatchNorm2d::load(l, "bn2", mid, ABN_EPS)?;
        let conv3 = conv(l, "conv3", mid, 1, 1, 1, false)?;
        let cout = out_of(&conv3);
        let bn3 = BatchNorm2d::load(l, "bn3", cout, ABN_EPS)?;
        let downsample = if l.contains("downsample.0.weight") {
            let d = l.sub("downsample");
            let c = conv(&d, "0", cin, 1, stride, 1, false)?;
            if out_of(&c) != cout {
                return Err(VtonError::WeightShape {
                    key: d.key("0.weight"),
                    expected: vec![cout, cin, 1, 1],
                    found: c.weight.dims().to_vec(),
                });
            }
            let bn = BatchNorm2d::load(&d, "1", cout, ABN_EPS)?;
            Some((c, bn))
        } else {
            if stride != 1 || cin != cout {
                return Err(VtonError::MissingWeights {
                    source_name: l.checkpoint().name().to_string(),
                    count: 1,
                    keys: format!(
                        "{} (the block maps {cin} to {cout} channels with stride {stride})",
                        l.key("downsample.0.weight")
                    ),
                });
            }
            None
        };
        Ok(Bottleneck {
            conv1,
            bn1,
            conv2,
            bn2,
            conv3,
            bn3,
            downsample,
        })
    }

    pub fn out_channels(&self) -> usize {
        out_of(&self.conv3)
    }

    pub fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        let out = relu(self.bn1.forward(self.conv1.forward(x.clone())));
        let out = relu(self.bn2.forward(self.conv2.forward(out)));
        let out = self.bn3.forward(self.conv3.forward(out));
        let residual = match &self.downsample {
            Some((c, bn)) => bn.forward(c.forward(x)),
            None => x,
        };
        relu(out + residual)
    }
}

/// `PSPModule`: pooled 1x1 conv + ABN branches at sizes 1, 2, 3, 6, upsampled
/// (bilinear, align_corners True), concatenated with the input, 3x3 conv + ABN.
#[derive(Module, Debug)]
pub struct PSPModule {
    /// `stages.{i}.1` (conv) and `stages.{i}.2` (ABN); `.0` is the pooling.
    pub stages: Vec<ConvAbn>,
    /// `bottleneck.0` (3x3 conv) and `bottleneck.1` (ABN).
    pub bottleneck: ConvAbn,
}

impl PSPModule {
    fn load(l: &Loader, features: usize) -> Result<Self> {
        let count = (0..)
            .take_while(|i| l.contains(&format!("stages.{i}.1.weight")))
            .count();
        if count != PSP_SIZES.len() {
            return Err(VtonError::config(
                l.key("stages"),
                format!(
                    "{count} pyramid stages found, the PSP module has {} (sizes {PSP_SIZES:?})",
                    PSP_SIZES.len()
                ),
            ));
        }
        let mut stages = Vec::with_capacity(count);
        let mut cat = features;
        for i in 0..count {
            let s = l.sub(format!("stages.{i}"));
            let stage = ConvAbn::load(&s, "1", "2", features, 1)?;
            cat += stage.out_channels();
            stages.push(stage);
        }
        let b = l.sub("bottleneck");
        let bottleneck = ConvAbn::load(&b, "0", "1", cat, 3)?;
        Ok(PSPModule { stages, bottleneck })
    }

    pub fn forward(&self, feats: Tensor<4>) -> Tensor<4> {
        let [_, _, h, w] = feats.dims();
        let mut priors: Vec<Tensor<4>> = self
            .stages
            .iter()
            .zip(PSP_SIZES)
            .map(|(stage, size)| {
                let pooled = adaptive_avg_pool2d(feats.clone(), [size, size]);
                resize_bilinear_align_corners(stage.forward(pooled), h, w)
            })
            .collect();
        priors.push(feats);
        self.bottleneck.forward(Tensor::cat(priors, 1))
    }
}

/// `Edge_Module`: 1x1 conv + ABN on layer1..3 features, a shared 3x3 conv to edge logits,
/// everything upsampled to layer1's size, a 1x1 conv fusing the three edge maps.
#[derive(Module, Debug)]
pub struct EdgeModule {
    pub conv1: ConvAbn,
    pub conv2: ConvAbn,
    pub conv3: ConvAbn,
    pub conv4: Conv2d,
    pub conv5: Conv2d,
}

impl EdgeModule {
    fn load(l: &Loader, in_fea: [usize; 3]) -> Result<Self> {
        let conv1 = ConvAbn::load(&l.sub("conv1"), "0", "1", in_fea[0], 1)?;
        let mid = conv1.out_channels();
        let conv2 = ConvAbn::load(&l.sub("conv2"), "0", "1", in_fea[1], 1)?;
        let conv3 = ConvAbn::load(&l.sub("conv3"), "0", "1", in_fea[2], 1)?;
        for (name, c) in [("conv2", &conv2), ("conv3", &conv3)] {
            if c.out_channels() != mid {
                return Err(VtonError::WeightShape {
                    key: l.key(&format!("{name}.0.weight")),
                    expected: vec![mid, in_fea[1], 1, 1],
                    found: c.conv.weight.dims().to_vec(),
                });
            }
        }
        let conv4 = conv(l, "conv4", mid, 3, 1, 1, true)?;
        let out_fea = out_of(&conv4);
        let conv5 = conv(l, "conv5", out_fea * 3, 1, 1, 1, true)?;
        Ok(EdgeModule {
            conv1,
            conv2,
            conv3,
            conv4,
            conv5,
        })
    }

    /// `(edge, edge_fea)`.
    pub fn forward(&self, x1: Tensor<4>, x2: Tensor<4>, x3: Tensor<4>) -> (Tensor<4>, Tensor<4>) {
        let [_, _, h, w] = x1.dims();
        let f1 = self.conv1.forward(x1);
        let e1 = self.conv4.forward(f1.clone());
        let f2 = self.conv2.forward(x2);
        let e2 = self.conv4.forward(f2.clone());
        let f3 = self.conv3.forward(x3);
        let e3 = self.conv4.forward(f3.clone());
        let f2 = resize_bilinear_align_corners(f2, h, w);
        let f3 = resize_bilinear_align_corners(f3, h, w);
        let e2 = resize_bilinear_align_corners(e2, h, w);
        let e3 = resize_bilinear_align_corners(e3, h, w);
        let edge = self.conv5.forward(Tensor::cat(vec![e1, e2, e3], 1));
        (edge, Tensor::cat(vec![f1, f2, f3], 1))
    }
}

/// `Decoder_Module`: context features reduced and upsampled to layer1's size,
/// concatenated with reduced layer1 features, two 1x1 conv + ABN, the class conv.
#[derive(Module, Debug)]
pub struct DecoderModule {
    pub conv1: ConvAbn,
    pub conv2: ConvAbn,
    /// `conv3.0`/`conv3.1` and `conv3.2`/`conv3.3`.
    pub conv3: (ConvAbn, ConvAbn),
    pub conv4: Conv2d,
}

impl DecoderModule {
    fn load(l: &Loader, context: usize, low: usize) -> Result<Self> {
        let conv1 = ConvAbn::load(&l.sub("conv1"), "0", "1", context, 1)?;
        let conv2 = ConvAbn::load(&l.sub("conv2"), "0", "1", low, 1)?;
        let c3 = l.sub("conv3");
        let a = ConvAbn::load(
            &c3,
            "0",
            "1",
            conv1.out_channels() + conv2.out_channels(),
            1,
        )?;
        let b = ConvAbn::load(&c3, "2", "3", a.out_channels(), 1)?;
        let conv4 = conv(l, "conv4", b.out_channels(), 1, 1, 1, true)?;
        Ok(DecoderModule {
            conv1,
            conv2,
            conv3: (a, b),
            conv4,
        })
    }

    /// `(seg, x)`: class logits and the features before the class conv.
    pub fn forward(&self, xt: Tensor<4>, xl: Tensor<4>) -> (Tensor<4>, Tensor<4>) {
        let [_, _, h, w] = xl.dims();
        let xt = resize_bilinear_align_corners(self.conv1.forward(xt), h, w);
        let xl = self.conv2.forward(xl);
        let x = self
            .conv3
            .1
            .forward(self.conv3.0.forward(Tensor::cat(vec![xt, xl], 1)));
        (self.conv4.forward(x.clone()), x)
    }
}

/// The fusion head `fushion` (sic): 1x1 conv + ABN, dropout (identity in eval), class conv.
#[derive(Module, Debug)]
pub struct Fusion {
    /// `fushion.0` / `fushion.1`.
    pub block: ConvAbn,
    /// `fushion.3`.
    pub classifier: Conv2d,
}

/// The network's three outputs, as `[[parsing_result, fusion_result], [edge_result]]`.
#[derive(Debug, Clone)]
pub struct SchpOutput {
    /// `output[0][-1]`, the fusion branch's class logits at 1/4 of the input size: what
    /// `simple_extractor.py` uses.
    pub parsing: Tensor<4>,
    /// `output[0][0]`, the decoder's class logits.
    pub parsing_result: Tensor<4>,
    /// `output[1][0]`, the edge logits (2 channels).
    pub edge: Tensor<4>,
}

/// Backbone and context features, for inspection.
#[derive(Debug, Clone)]
pub struct SchpFeatures {
    pub layer1: Tensor<4>,
    pub layer2: Tensor<4>,
    pub layer3: Tensor<4>,
    pub layer4: Tensor<4>,
    pub context_encoding: Tensor<4>,
}

/// `networks.AugmentCE2P.ResNet` as `resnet101(num_classes)` builds it (Bottleneck,
/// `[3, 4, 23, 3]` for the released checkpoints; block counts are read from the keys).
#[derive(Module, Debug)]
pub struct AugmentCE2P {
    pub conv1: Conv2d,
    pub bn1: BatchNorm2d,
    pub conv2: Conv2d,
    pub bn2: BatchNorm2d,
    pub conv3: Conv2d,
    pub bn3: BatchNorm2d,
    pub layer1: Vec<Bottleneck>,
    pub layer2: Vec<Bottleneck>,
    pub layer3: Vec<Bottleneck>,
    pub layer4: Vec<Bottleneck>,
    pub context_encoding: PSPModule,
    pub edge: EdgeModule,
    pub decoder: DecoderModule,
    pub fushion: Fusion,
    #[module(skip)]
    num_classes: usize,
}

impl AugmentCE2P {
    /// Opens a checkpoint (the released `.pth`, or safetensors) and loads the network
    /// strictly: missing, unexpected or mis-shaped tensors are errors.
    pub fn from_checkpoint(path: impl AsRef<Path>, device: &Device) -> Result<Self> {
        let ck = Checkpoint::open(path)?.rooted_at("fushion.3.weight");
        Self::load(&ck, device)
    }

    /// Loads from an opened checkpoint whose keys are the original's (`conv1.weight`, ...).
    pub fn load(ck: &Checkpoint, device: &Device) -> Result<Self> {
        let l = Loader::new(ck, device, false);
        let net = Self::load_from(&l)?;
        l.finish(true)?;
        Ok(net)
    }

    fn load_from(l: &Loader) -> Result<Self> {
        let conv1 = conv(l, "conv1", 3, 3, 2, 1, false)?;
        let bn1 = BatchNorm2d::load(l, "bn1", out_of(&conv1), ABN_EPS)?;
        let conv2 = conv(l, "conv2", out_of(&conv1), 3, 1, 1, false)?;
        let bn2 = BatchNorm2d::load(l, "bn2", out_of(&conv2), ABN_EPS)?;
        let conv3 = conv(l, "conv3", out_of(&conv2), 3, 1, 1, false)?;
        let bn3 = BatchNorm2d::load(l, "bn3", out_of(&conv3), ABN_EPS)?;

        let mut cin = out_of(&conv3);
        let mut layers: Vec<Vec<Bottleneck>> = Vec::with_capacity(4);
        let mut widths = Vec::with_capacity(4);
        // (stride, dilation) of layer1..4: `_make_layer(..., stride=2)` for layer2/3 and
        // `stride=1, dilation=2, multi_grid=(1, 1, 1)` for layer4.
        for (i, (stride, dilation)) in [(1, 1), (2, 1), (2, 1), (1, 2)].into_iter().enumerate() {
            let ll = l.sub(format!("layer{}", i + 1));
            let blocks = (0..)
                .take_while(|b| ll.contains(&format!("{b}.conv1.weight")))
                .count();
            if blocks == 0 {
                return Err(VtonError::MissingWeights {
                    source_name: l.checkpoint().name().to_string(),
                    count: 1,
                    keys: ll.key("0.conv1.weight"),
                });
            }
            let mut layer = Vec::with_capacity(blocks);
            for b in 0..blocks {
                let (s, d) = if b == 0 {
                    (stride, dilation)
                } else {
                    (1, dilation)
                };
                let block = Bottleneck::load(&ll.sub(b), cin, s, d)?;
                cin = block.out_channels();
                layer.push(block);
            }
            widths.push(cin);
            layers.push(layer);
        }
        let context_encoding = PSPModule::load(&l.sub("context_encoding"), widths[3])?;
        let context = context_encoding.bottleneck.out_channels();
        let edge = EdgeModule::load(&l.sub("edge"), [widths[0], widths[1], widths[2]])?;
        let decoder = DecoderModule::load(&l.sub("decoder"), context, widths[0])?;
        let num_classes = out_of(&decoder.conv4);

        let f = l.sub("fushion");
        let edge_fea = 3 * edge.conv1.out_channels();
        let block = ConvAbn::load(&f, "0", "1", decoder.conv3.1.out_channels() + edge_fea, 1)?;
        let classifier = conv(&f, "3", block.out_channels(), 1, 1, 1, true)?;
        if out_of(&classifier) != num_classes {
            return Err(VtonError::WeightShape {
                key: f.key("3.weight"),
                expected: vec![num_classes, block.out_channels(), 1, 1],
                found: classifier.weight.dims().to_vec(),
            });
        }
        let mut layers = layers.into_iter();
        let mut next = || layers.next().unwrap_or_default();
        Ok(AugmentCE2P {
            conv1,
            bn1,
            conv2,
            bn2,
            conv3,
            bn3,
            layer1: next(),
            layer2: next(),
            layer3: next(),
            layer4: next(),
            context_encoding,
            edge,
            decoder,
            fushion: Fusion { block, classifier },
            num_classes,
        })
    }

    /// Number of classes (20 for LIP, 18 for ATR, 7 for Pascal-Person-Part).
    pub fn num_classes(&self) -> usize {
        self.num_classes
    }

    /// Checks a network input: `[B, 3, H, W]`, H and W at least 32.
    pub fn check_input(x: &Tensor<4>) -> Result<()> {
        check_channels("SCHP input", x, 3)?;
        let d = x.dims();
        if d[2] < 32 || d[3] < 32 {
            return Err(VtonError::Shape {
                what: "SCHP input".into(),
                expected: "[B, 3, H, W] with H, W >= 32".into(),
                actual: d.to_vec(),
            });
        }
        Ok(())
    }

    /// The forward pass on a normalised BGR input `[B, 3, H, W]` (see
    /// [`AugmentCE2P::check_input`]).
    pub fn forward(&self, x: Tensor<4>) -> SchpOutput {
        self.forward_with_features(x).0
    }

    /// The forward pass, also returning the backbone and context features.
    pub fn forward_with_features(&self, x: Tensor<4>) -> (SchpOutput, SchpFeatures) {
        let x = relu(self.bn1.forward(self.conv1.forward(x)));
        let x = relu(self.bn2.forward(self.conv2.forward(x)));
        let x = relu(self.bn3.forward(self.conv3.forward(x)));
        // Inputs are >= 0 after the ReLU, so the padding value cannot win the max.
        let x = max_pool2d(
            x,
            MaxPoolOptions::new([3, 3])
                .with_stride([2, 2])
                .with_padding([1, 1]),
        );
        let run = |layer: &[Bottleneck], x: Tensor<4>| layer.iter().fold(x, |x, b| b.forward(x));
        let x2 = run(&self.layer1, x);
        let x3 = run(&self.layer2, x2.clone());
        let x4 = run(&self.layer3, x3.clone());
        let x5 = run(&self.layer4, x4.clone());
        let ctx = self.context_encoding.forward(x5.clone());
        let (parsing_result, parsing_fea) = self.decoder.forward(ctx.clone(), x2.clone());
        let (edge, edge_fea) = self.edge.forward(x2.clone(), x3.clone(), x4.clone());
        let fused = self
            .fushion
            .block
            .forward(Tensor::cat(vec![parsing_fea, edge_fea], 1));
        let parsing = self.fushion.classifier.forward(fused);
        (
            SchpOutput {
                parsing,
                parsing_result,
                edge,
            },
            SchpFeatures {
                layer1: x2,
                layer2: x3,
                layer3: x4,
                layer4: x5,
                context_encoding: ctx,
            },
        )
    }
}
