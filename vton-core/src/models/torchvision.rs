//! torchvision's `features` backbones as LPIPS taps them: `alexnet`, `vgg16` (any VGG
//! without batch norm: the layer sequence is read from the checkpoint keys) and
//! `squeezenet1_1` with its Fire modules. Loaded from the torchvision checkpoints
//! (`alexnet-owt-7be5be79.pth`, `vgg16-397923af.pth`, `squeezenet1_1-b8a52dc0.pth`) under
//! their own keys `features.N.*`, N being the index in torchvision's `nn.Sequential`;
//! `classifier.*` is not used.
//!
//! The architecture (from torchvision's `alexnet.py`, `vgg.py`, `squeezenet.py`), by
//! `features` index; every ReLU follows the layer before it:
//!
//! | net | layers | LPIPS taps (ends of lpips' slices) |
//! |---|---|---|
//! | alexnet | 0 conv 11x11 s4 p2, 2 max pool 3 s2, 3 conv 5x5 p2, 5 max pool 3 s2, 6 / 8 / 10 conv 3x3 p1 (12 max pool, unused) | ReLU 1, 4, 7, 9, 11 (slices [0:2], [2:5], [5:8], [8:10], [10:12]) |
//! | vgg | conv 3x3 p1 at N, ReLU at N+1; a max pool 2 s2 at N+2 where the next conv is at N+3 | the last ReLU of every stage: vgg16 3, 8, 15, 22, 29 ([0:4], [4:9], [9:16], [16:23], [23:30]) |
//! | squeezenet1_1 | 0 conv 3x3 s2 p0, 2 / 5 / 8 max pool 3 s2 `ceil_mode=True`, Fire at 3, 4, 6, 7, 9, 10, 11, 12 | ReLU 1, Fire 4, 7, 9, 10, 11, 12 ([0:2], [2:5], [5:8], [8:10], [10], [11], [12]) |
//!
//! A Fire module is `squeeze` (1x1) + ReLU, then `expand1x1` (1x1) and `expand3x3`
//! (3x3, padding 1), each + ReLU, concatenated in that order. Every width (conv output
//! channels, Fire squeeze / expand planes) is read from the checkpoint's tensor shapes;
//! input widths and kernel sizes are checked against what the architecture feeds each
//! layer, so a checkpoint of another network fails with [`VtonError::WeightShape`] or
//! [`VtonError::MissingWeights`], and stray `features.*` keys with
//! [`VtonError::UnexpectedWeights`].

use crate::nn::Conv2d;
use burn::module::Module;
use burn::nn::pool::{MaxPool2d, MaxPool2dConfig};
use burn::tensor::{Device, Tensor};

use crate::error::{Result, VtonError};
use crate::nn::{conv2d, relu, weight_shape};
use crate::weights::{Checkpoint, Loader};

/// Which torchvision network a [`TorchvisionFeatures`] is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Backbone {
    /// `torchvision.models.alexnet`.
    AlexNet,
    /// `torchvision.models.vgg16` (or another VGG without batch norm).
    Vgg,
    /// `torchvision.models.squeezenet1_1`.
    SqueezeNet1_1,
}

impl Backbone {
    /// torchvision's name: `alexnet`, `vgg`, `squeezenet1_1`.
    pub fn name(self) -> &'static str {
        match self {
            Backbone::AlexNet => "alexnet",
            Backbone::Vgg => "vgg",
            Backbone::SqueezeNet1_1 => "squeezenet1_1",
        }
    }
}

/// torchvision's `Fire` module (squeezenet).
#[derive(Module, Debug)]
pub struct Fire {
    pub squeeze: Conv2d,
    pub expand1x1: Conv2d,
    pub expand3x3: Conv2d,
}

impl Fire {
    fn load(l: &Loader, cin: usize) -> Result<Self> {
        let squeeze = conv(l, "squeeze", cin, 1, 1, 0)?;
        let planes = out_of(&squeeze);
        let expand1x1 = conv(l, "expand1x1", planes, 1, 1, 0)?;
        let expand3x3 = conv(l, "expand3x3", planes, 3, 1, 1)?;
        Ok(Fire {
            squeeze,
            expand1x1,
            expand3x3,
        })
    }

    /// Output channels: expand1x1's plus expand3x3's.
    pub fn out_channels(&self) -> usize {
        out_of(&self.expand1x1) + out_of(&self.expand3x3)
    }

    pub fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        let s = relu(self.squeeze.forward(x));
        Tensor::cat(
            vec![
                relu(self.expand1x1.forward(s.clone())),
                relu(self.expand3x3.forward(s)),
            ],
            1,
        )
    }
}

/// One entry of a `features` sequence (a ReLU is merged into the layer before it).
// A Fire holds three convs, a pool nothing: a handful of layers, boxing gains nothing.
#[allow(clippy::large_enum_variant)]
#[derive(Module, Debug)]
pub enum Layer {
    /// `Conv2d` followed by `ReLU`.
    ConvRelu(Conv2d),
    /// A squeezenet `Fire` module (its ReLUs are inside).
    Fire(Fire),
    /// `MaxPool2d` (no padding).
    MaxPool(MaxPool2d),
}

impl Layer {
    pub fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        match self {
            Layer::ConvRelu(c) => relu(c.forward(x)),
            Layer::Fire(f) => f.forward(x),
            Layer::MaxPool(p) => p.forward(x),
        }
    }

    /// The output length along one spatial dimension for an input of length `n`, with
    /// PyTorch's formulas; `None` where PyTorch refuses the input as too small.
    pub fn output_len(&self, n: usize) -> Option<usize> {
        match self {
            Layer::ConvRelu(c) => {
                let pad = match c.padding {
                    burn::nn::PaddingConfig2d::Explicit(top, ..) => top,
                    _ => 0,
                };
                (n + 2 * pad)
                    .checked_sub(c.kernel_size[0])
                    .map(|v| v / c.stride[0] + 1)
            }
            Layer::Fire(_) => Some(n),
            Layer::MaxPool(p) => pool_len(n, p.kernel_size[0], p.stride[0], p.ceil_mode),
        }
    }
}

/// `MaxPool2d(k, s, padding=0, ceil_mode)` output length, as PyTorch computes it:
/// floor((n - k + (ceil ? s - 1 : 0)) / s) + 1, minus the last window in ceil mode when
/// it would start past the input; at least 1.
fn pool_len(n: usize, k: usize, s: usize, ceil_mode: bool) -> Option<usize> {
    let (n, k, s) = (n as i64, k as i64, s as i64);
    let mut out = (n - k + if ceil_mode { s - 1 } else { 0 }).div_euclid(s) + 1;
    if ceil_mode && (out - 1) * s >= n {
        out -= 1;
    }
    (out >= 1).then_some(out as usize)
}

/// A torchvision `features` backbone that returns LPIPS' taps.
#[derive(Module, Debug)]
pub struct TorchvisionFeatures {
    /// The layers in `features` order.
    pub layers: Vec<Layer>,
    /// The torchvision index of each layer (for messages and key maps).
    #[module(skip)]
    indices: Vec<usize>,
    /// For each tap, how many layers run before it is taken.
    #[module(skip)]
    taps: Vec<usize>,
    #[module(skip)]
    tap_channels: Vec<usize>,
    #[module(skip)]
    backbone: Backbone,
}

/// A convolution whose output width is read from the checkpoint; input width and kernel
/// size are the architecture's and checked.
fn conv(l: &Loader, name: &str, cin: usize, k: usize, stride: usize, pad: usize) -> Result<Conv2d> {
    let shape = weight_shape(l, name)?;
    let cout = match shape.as_slice() {
        [cout, _, _, _] if *cout > 0 => *cout,
        _ => {
            return Err(VtonError::WeightShape {
                key: l.key(&format!("{name}.weight")),
                expected: vec![shape.first().copied().unwrap_or(1).max(1), cin, k, k],
                found: shape,
            })
        }
    };
    conv2d(l, name, cin, cout, k, stride, pad, true)
}

fn out_of(c: &Conv2d) -> usize {
    c.weight.dims()[0]
}

fn max_pool(k: usize, s: usize, ceil_mode: bool) -> Layer {
    Layer::MaxPool(
        MaxPool2dConfig::new([k, k])
            .with_strides([s, s])
            .with_ceil_mode(ceil_mode)
            .init(),
    )
}

/// The torchvision indices N that have a `features.N.<suffix>` key.
fn feature_indices(l: &Loader, suffix: &str) -> Vec<usize> {
    let prefix = l.key("");
    let mut out: Vec<usize> = l
        .checkpoint()
        .keys()
        .filter_map(|k| k.strip_prefix(&prefix))
        .filter_map(|rest| rest.strip_suffix(suffix))
        .filter_map(|n| n.parse::<usize>().ok())
        .collect();
    out.sort_unstable();
    out.dedup();
    out
}

/// Builds the layer list from `(index, layer)` pairs and the indices whose output is a tap.
struct Builder {
    layers: Vec<Layer>,
    indices: Vec<usize>,
    taps: Vec<usize>,
    tap_channels: Vec<usize>,
    channels: usize,
}

impl Builder {
    fn new() -> Self {
        Builder {
            layers: Vec::new(),
            indices: Vec::new(),
            taps: Vec::new(),
            tap_channels: Vec::new(),
            channels: 3,
        }
    }

    fn push(&mut self, index: usize, layer: Layer) {
        match &layer {
            Layer::ConvRelu(c) => self.channels = out_of(c),
            Layer::Fire(f) => self.channels = f.out_channels(),
            Layer::MaxPool(_) => {}
        }
        self.layers.push(layer);
        self.indices.push(index);
    }

    fn tap(&mut self) {
        self.taps.push(self.layers.len());
        self.tap_channels.push(self.channels);
    }

    fn finish(self, backbone: Backbone) -> TorchvisionFeatures {
        TorchvisionFeatures {
            layers: self.layers,
            indices: self.indices,
            taps: self.taps,
            tap_channels: self.tap_channels,
            backbone,
        }
    }
}

impl TorchvisionFeatures {
    /// Loads `backbone` from a checkpoint with torchvision's keys (`features.N.*`;
    /// `classifier.*` and keys outside `features.` are ignored, unknown `features.*` keys
    /// are an error).
    pub fn load(backbone: Backbone, ck: &Checkpoint, device: &Device) -> Result<Self> {
        let root = Loader::new(ck, device, false);
        let l = root.sub("features");
        let net = match backbone {
            Backbone::AlexNet => Self::alexnet(&l)?,
            Backbone::Vgg => Self::vgg(&l)?,
            Backbone::SqueezeNet1_1 => Self::squeezenet1_1(&l)?,
        };
        l.finish(true)?;
        Ok(net)
    }

    /// `alexnet().features` from a loader at the `features` prefix.
    pub fn alexnet(l: &Loader) -> Result<Self> {
        let mut b = Builder::new();
        b.push(0, Layer::ConvRelu(conv(l, "0", 3, 11, 4, 2)?));
        b.tap(); // [0:2]
        b.push(2, max_pool(3, 2, false));
        b.push(3, Layer::ConvRelu(conv(l, "3", b.channels, 5, 1, 2)?));
        b.tap(); // [2:5]
        b.push(5, max_pool(3, 2, false));
        b.push(6, Layer::ConvRelu(conv(l, "6", b.channels, 3, 1, 1)?));
        b.tap(); // [5:8]
        b.push(8, Layer::ConvRelu(conv(l, "8", b.channels, 3, 1, 1)?));
        b.tap(); // [8:10]
        b.push(10, Layer::ConvRelu(conv(l, "10", b.channels, 3, 1, 1)?));
        b.tap(); // [10:12]
        Ok(b.finish(Backbone::AlexNet))
    }

    /// A VGG `features` without batch norm (`vgg16`, `vgg19`, ...) from a loader at the
    /// `features` prefix: convolutions where the checkpoint has `N.weight`, a max pool
    /// between two convolutions three indices apart, a tap at the end of every stage.
    pub fn vgg(l: &Loader) -> Result<Self> {
        let convs = feature_indices(l, ".weight");
        if let Some(&n) = feature_indices(l, ".running_mean").first() {
            return Err(VtonError::Unsupported {
                what: format!(
                    "{} in {} is a batch norm: VGG with batch norm (vgg*_bn) is not the \
                     network LPIPS uses",
                    l.key(&n.to_string()),
                    l.checkpoint().name()
                ),
            });
        }
        if convs.first() != Some(&0) {
            return Err(VtonError::MissingWeights {
                source_name: l.checkpoint().name().to_string(),
                count: 1,
                keys: l.key("0.weight"),
            });
        }
        let mut b = Builder::new();
        for (i, &n) in convs.iter().enumerate() {
            b.push(
                n,
                Layer::ConvRelu(conv(l, &n.to_string(), b.channels, 3, 1, 1)?),
            );
            match convs.get(i + 1).map(|next| next - n) {
                Some(2) => {}
                Some(3) => {
                    b.tap();
                    b.push(n + 2, max_pool(2, 2, false));
                }
                None => b.tap(),
                Some(_) => {
                    return Err(VtonError::Checkpoint {
                        path: l.checkpoint().name().into(),
                        message: format!(
                            "{} is followed by {}: a VGG has a ReLU after every conv and at \
                             most one max pool before the next conv",
                            l.key(&format!("{n}.weight")),
                            l.key(&format!("{}.weight", convs[i + 1]))
                        ),
                    })
                }
            }
        }
        Ok(b.finish(Backbone::Vgg))
    }

    /// `squeezenet1_1().features` from a loader at the `features` prefix.
    pub fn squeezenet1_1(l: &Loader) -> Result<Self> {
        let mut b = Builder::new();
        let fire = |b: &mut Builder, n: usize| -> Result<()> {
            let f = Fire::load(&l.sub(n), b.channels)?;
            b.push(n, Layer::Fire(f));
            Ok(())
        };
        b.push(0, Layer::ConvRelu(conv(l, "0", 3, 3, 2, 0)?));
        b.tap(); // [0:2]
        b.push(2, max_pool(3, 2, true));
        fire(&mut b, 3)?;
        fire(&mut b, 4)?;
        b.tap(); // [2:5]
        b.push(5, max_pool(3, 2, true));
        fire(&mut b, 6)?;
        fire(&mut b, 7)?;
        b.tap(); // [5:8]
        b.push(8, max_pool(3, 2, true));
        fire(&mut b, 9)?;
        b.tap(); // [8:10]
        for n in [10, 11, 12] {
            fire(&mut b, n)?;
            b.tap(); // [10], [11], [12]
        }
        Ok(b.finish(Backbone::SqueezeNet1_1))
    }

    /// The same network tapped at other places: `ends` are torchvision `features`
    /// indices at which a slice `features[..=end]` ends, strictly increasing (VGG
    /// perceptual losses: vgg19's relu1_1..relu5_1 are 1, 6, 11, 20, 29). An end must be
    /// a ReLU (a conv's index + 1) or a max pool; a conv's output before its ReLU is not
    /// available (the ReLU is merged into the conv). Layers after the last end are kept
    /// but not run.
    pub fn with_taps_at(mut self, ends: &[usize]) -> Result<Self> {
        if ends.is_empty() {
            return Err(VtonError::invalid(
                "feature taps",
                "give at least one index",
            ));
        }
        if ends.windows(2).any(|w| w[0] >= w[1]) {
            return Err(VtonError::invalid(
                "feature taps",
                format!("{ends:?} must be strictly increasing"),
            ));
        }
        let mut taps = Vec::with_capacity(ends.len());
        let mut tap_channels = Vec::with_capacity(ends.len());
        let mut channels = 3;
        let mut want = ends.iter().peekable();
        for (i, (layer, &n)) in self.layers.iter().zip(&self.indices).enumerate() {
            let last = match layer {
                Layer::ConvRelu(c) => {
                    channels = out_of(c);
                    n + 1
                }
                Layer::Fire(f) => {
                    channels = f.out_channels();
                    n
                }
                Layer::MaxPool(_) => n,
            };
            while let Some(&&e) = want.peek() {
                if e > last {
                    break;
                }
                if e != last {
                    return Err(VtonError::Unsupported {
                        what: format!(
                            "a {} slice ending at features.{e} (the output of a conv before \
                             its ReLU); end at the ReLU features.{} instead",
                            self.backbone.name(),
                            e + 1
                        ),
                    });
                }
                taps.push(i + 1);
                tap_channels.push(channels);
                want.next();
            }
        }
        if let Some(&e) = want.next() {
            return Err(VtonError::invalid(
                "feature taps",
                format!(
                    "features.{e} is past the last layer of the checkpoint (features.{})",
                    self.indices.last().map_or(0, |n| n + 1)
                ),
            ));
        }
        self.taps = taps;
        self.tap_channels = tap_channels;
        Ok(self)
    }

    /// Which network this is.
    pub fn backbone(&self) -> Backbone {
        self.backbone
    }

    /// The channel count of every tap.
    pub fn tap_channels(&self) -> &[usize] {
        &self.tap_channels
    }

    /// The torchvision `features` index of every layer run (ReLUs not listed).
    pub fn layer_indices(&self) -> &[usize] {
        &self.indices
    }

    /// The spatial length of every tap for an input of length `n` along one dimension
    /// (height or width), or `None` where a layer gets an input too small for it.
    pub fn tap_lengths(&self, n: usize) -> Option<Vec<usize>> {
        let last = self.taps.last().copied().unwrap_or(0);
        let mut len = n;
        let mut out = Vec::with_capacity(self.taps.len());
        let mut taps = self.taps.iter().peekable();
        for (i, layer) in self.layers.iter().enumerate().take(last) {
            len = layer.output_len(len)?;
            if len == 0 {
                return None;
            }
            while taps.peek().is_some_and(|&&t| t == i + 1) {
                out.push(len);
                taps.next();
            }
        }
        (n > 0).then_some(out)
    }

    /// The smallest input height (and width) the taps can be computed for: 31 for
    /// alexnet (its second max pool needs 3 rows), 16 for vgg16, 17 for squeezenet1_1.
    pub fn min_input_size(&self) -> usize {
        (1..=1 << 16)
            .find(|&n| self.tap_lengths(n).is_some())
            .unwrap_or(usize::MAX)
    }

    /// Checks that an input of `h` x `w` pixels is large enough.
    pub fn check_input_size(&self, what: &str, h: usize, w: usize) -> Result<()> {
        if self.tap_lengths(h).is_none() || self.tap_lengths(w).is_none() {
            let min = self.min_input_size();
            return Err(VtonError::invalid(
                what,
                format!(
                    "the {} backbone needs images of at least {min}x{min} pixels (a smaller \
                     input leaves a pooling layer before the last tap with no output), got \
                     {h}x{w}",
                    self.backbone.name()
                ),
            ));
        }
        Ok(())
    }

    /// The tap feature maps of `x` (`N x 3 x H x W`, already scaled as the network
    /// expects); the caller checks the size ([`Self::check_input_size`]).
    pub fn forward(&self, x: Tensor<4>) -> Vec<Tensor<4>> {
        let mut out = Vec::with_capacity(self.taps.len());
        let mut x = x;
        let mut done = 0;
        for &t in &self.taps {
            for layer in &self.layers[done..t] {
                x = layer.forward(x);
            }
            done = t;
            out.push(x.clone());
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::pool_len;

    #[test]
    fn pool_lengths_follow_pytorch() {
        // floor mode
        assert_eq!(pool_len(7, 3, 2, false), Some(3));
        assert_eq!(pool_len(3, 3, 2, false), Some(1));
        assert_eq!(pool_len(2, 3, 2, false), None);
        // ceil mode: one more window where one starts inside the input
        assert_eq!(pool_len(8, 3, 2, true), Some(4));
        assert_eq!(pool_len(7, 3, 2, true), Some(3));
        assert_eq!(pool_len(4, 3, 2, true), Some(2));
        assert_eq!(pool_len(2, 3, 2, true), Some(1));
        assert_eq!(pool_len(1, 3, 2, true), None);
        assert_eq!(pool_len(5, 2, 2, false), Some(2));
    }
}
