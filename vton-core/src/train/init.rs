//! Fresh weights for training from scratch, under the original keys and with the
//! original initialisation: CP-VTON+'s `networks.py` applies `weights_init_normal` to the
//! GMM's feature extractors (conv weights N(0, 0.02), BatchNorm weight N(1, 0.02) and
//! bias 0; conv biases keep PyTorch's default) and leaves everything else (the GMM's
//! regression, the TOM U-Net) at PyTorch's default initialisation: weights and biases
//! U(-1/sqrt(fan_in), 1/sqrt(fan_in)) (`kaiming_uniform_(a=sqrt(5))`), BatchNorm weight
//! 1, bias 0, running mean 0, running variance 1. Draws come from vton's seeded
//! generator, so a seed gives the same model every time (not PyTorch's numbers).
//!
//! HR-VITON's `train_condition.py` builds the condition generator (tocg) with no
//! re-initialisation at all (every conv at PyTorch's default, its BatchNorms at 1 / 0),
//! and the discriminator through `define_D`, which applies `weights_init`: every
//! `Conv2d` weight N(0, 0.02), biases left at the default uniform (its InstanceNorms
//! have no parameters). With `--spectral` the middle convolutions are spectral-normalised
//! before `weights_init` runs; the `weight` it draws into shares storage with
//! `weight_orig`, so `weight_orig` is N(0, 0.02), and `weight_u` / `weight_v` are
//! `spectral_norm`'s initial vectors: standard normal, then scaled to unit length.

use crate::error::{Result, VtonError};
use crate::models::cpvton::GmmConfig;
use crate::rng::Rng;
use crate::train::hrviton::ConditionTrainOptions;
use crate::weights::Checkpoint;

#[derive(Clone, Copy)]
enum Init {
    /// PyTorch's default for conv / linear weights and biases: U(-b, b), b = 1/sqrt(fan_in).
    DefaultUniform {
        fan_in: usize,
    },
    Normal {
        mean: f32,
        std: f32,
    },
    Const(f32),
    /// Standard normal, then divided by its L2 norm (`spectral_norm`'s `u`, `v`; eps 1e-12).
    UnitNormal,
}

struct Spec {
    tensors: Vec<(String, Vec<usize>, Init)>,
}

impl Spec {
    fn new() -> Self {
        Spec {
            tensors: Vec::new(),
        }
    }

    fn conv(
        &mut self,
        key: &str,
        cin: usize,
        cout: usize,
        k: usize,
        bias: bool,
        normal_weight: bool,
    ) {
        let fan_in = cin * k * k;
        let w = if normal_weight {
            Init::Normal {
                mean: 0.0,
                std: 0.02,
            }
        } else {
            Init::DefaultUniform { fan_in }
        };
        self.tensors
            .push((format!("{key}.weight"), vec![cout, cin, k, k], w));
        if bias {
            self.tensors.push((
                format!("{key}.bias"),
                vec![cout],
                Init::DefaultUniform { fan_in },
            ));
        }
    }

    fn batch_norm(&mut self, key: &str, c: usize, normal_weight: bool) {
        let w = if normal_weight {
            Init::Normal {
                mean: 1.0,
                std: 0.02,
            }
        } else {
            Init::Const(1.0)
        };
        self.tensors.push((format!("{key}.weight"), vec![c], w));
        self.tensors
            .push((format!("{key}.bias"), vec![c], Init::Const(0.0)));
        self.tensors
            .push((format!("{key}.running_mean"), vec![c], Init::Const(0.0)));
        self.tensors
            .push((format!("{key}.running_var"), vec![c], Init::Const(1.0)));
        self.tensors.push((
            format!("{key}.num_batches_tracked"),
            vec![],
            Init::Const(0.0),
        ));
    }

    fn build(self, name: &str, seed: u64) -> Result<Checkpoint> {
        let mut rng = Rng::new(seed);
        let mut out = Vec::new();
        for (k, shape, init) in self.tensors {
            let n: usize = shape.iter().product::<usize>().max(1);
            let v: Vec<f32> = match init {
                Init::DefaultUniform { fan_in } => {
                    let b = 1.0 / (fan_in as f64).sqrt();
                    (0..n)
                        .map(|_| ((rng.next_u32() as f64 / u32::MAX as f64) * 2.0 - 1.0) * b)
                        .map(|x| x as f32)
                        .collect()
                }
                Init::Normal { mean, std } => rng
                    .normal_vec(n)
                    .into_iter()
                    .map(|x| mean + std * x)
                    .collect(),
                Init::Const(c) => vec![c; n],
                Init::UnitNormal => {
                    let v = rng.normal_vec(n);
                    let norm = v
                        .iter()
                        .map(|&x| (x as f64) * (x as f64))
                        .sum::<f64>()
                        .sqrt();
                    let d = norm.max(1e-12);
                    v.into_iter().map(|x| (x as f64 / d) as f32).collect()
                }
            };
            out.push((k, shape, v));
        }
        Checkpoint::from_f32_tensors(name, out)
    }
}

/// A freshly initialised CP-VTON+ GMM (`GMM(opt)` with `ngf` = 64 in the original;
/// feature widths capped at `8 ngf` = 512 as the original caps them).
pub fn gmm_fresh(config: GmmConfig, ngf: usize, seed: u64) -> Result<Checkpoint> {
    let GmmConfig {
        grid_size,
        fine_height: h,
        fine_width: w,
    } = config;
    if ngf == 0 || h % 64 != 0 || w % 64 != 0 {
        return Err(VtonError::invalid(
            "fine_height/fine_width",
            format!("{h}x{w}: a fresh GMM needs multiples of 64 and ngf > 0"),
        ));
    }
    let cap = 8 * ngf;
    let mut s = Spec::new();
    for (name, cin0) in [("extractionA", 22usize), ("extractionB", 1usize)] {
        let key = |i: usize| format!("{name}.model.{i}");
        s.conv(&key(0), cin0, ngf, 4, true, true);
        s.batch_norm(&key(2), ngf, true);
        let mut c = ngf;
        for (i, idx) in [3usize, 6, 9].into_iter().enumerate() {
            let cin = (ngf << i).min(cap);
            let cout = if (ngf << i) < cap {
                ngf << (i + 1)
            } else {
                cap
            };
            let cout = cout.min(cap);
            s.conv(&key(idx), cin, cout, 4, true, true);
            s.batch_norm(&key(idx + 2), cout, true);
            c = cout;
        }
        s.conv(&key(12), c, cap, 3, true, true);
        s.batch_norm(&key(14), cap, true);
        s.conv(&key(15), cap, cap, 3, true, true);
    }
    // FeatureRegression(input_nc = (H/16)(W/16)): widths 512/256/128/64 scale with ngf.
    let input_nc = (h / 16) * (w / 16);
    let widths = [8 * ngf, 4 * ngf, 2 * ngf, ngf];
    let mut cin = input_nc;
    for (i, (&cout, k)) in widths.iter().zip([4usize, 4, 3, 3]).enumerate() {
        let idx = 3 * i;
        s.conv(&format!("regression.conv.{idx}"), cin, cout, k, true, false);
        s.batch_norm(&format!("regression.conv.{}", idx + 1), cout, false);
        cin = cout;
    }
    let spatial = (h / 64) * (w / 64);
    let din = widths[3] * spatial;
    let dout = 2 * grid_size * grid_size;
    s.tensors.push((
        "regression.linear.weight".into(),
        vec![dout, din],
        Init::DefaultUniform { fan_in: din },
    ));
    s.tensors.push((
        "regression.linear.bias".into(),
        vec![dout],
        Init::DefaultUniform { fan_in: din },
    ));
    s.build("fresh GMM", seed)
}

/// A freshly initialised CP-VTON+ TOM: `UnetGenerator(input_nc, output_nc, num_downs,
/// ngf, norm_layer=InstanceNorm2d)` (train.py: 26, 4, 6, 64), every conv with a bias.
pub fn tom_fresh(
    input_nc: usize,
    output_nc: usize,
    num_downs: usize,
    ngf: usize,
    seed: u64,
) -> Result<Checkpoint> {
    if num_downs < 5 || ngf == 0 {
        return Err(VtonError::invalid(
            "num_downs",
            format!("{num_downs}: the U-Net needs at least 5 levels and ngf > 0"),
        ));
    }
    // Levels from the outermost: (outer_nc, inner_nc).
    let mut levels = vec![
        (output_nc, ngf),
        (ngf, 2 * ngf),
        (2 * ngf, 4 * ngf),
        (4 * ngf, 8 * ngf),
    ];
    for _ in 0..num_downs - 5 {
        levels.push((8 * ngf, 8 * ngf));
    }
    levels.push((8 * ngf, 8 * ngf)); // innermost
    let mut s = Spec::new();
    let mut prefix = "model".to_string();
    let last = levels.len() - 1;
    for (i, &(outer, inner)) in levels.iter().enumerate() {
        let m = format!("{prefix}.model");
        if i == 0 {
            s.conv(&format!("{m}.0"), input_nc, inner, 4, true, false);
            s.conv(&format!("{m}.4"), 2 * inner, outer, 3, true, false);
            prefix = format!("{m}.1");
        } else if i == last {
            s.conv(&format!("{m}.1"), outer, inner, 4, true, false);
            s.conv(&format!("{m}.4"), inner, outer, 3, true, false);
        } else {
            s.conv(&format!("{m}.1"), outer, inner, 4, true, false);
            s.conv(&format!("{m}.6"), 2 * inner, outer, 3, true, false);
            prefix = format!("{m}.3");
        }
    }
    s.build("fresh TOM", seed)
}

/// The `nn.BatchNorm2d`-normed `ResBlock` of HR-VITON's `networks.py` (default init; the
/// down / block convolutions have no bias since the norm is not InstanceNorm2d).
fn res_block(s: &mut Spec, key: &str, cin: usize, cout: usize, scale: &str) {
    match scale {
        "down" => s.conv(&format!("{key}.scale"), cin, cout, 3, false, false),
        "up" => s.conv(&format!("{key}.scale.1"), cin, cout, 1, true, false),
        _ => s.conv(&format!("{key}.scale"), cin, cout, 1, true, false),
    }
    s.conv(&format!("{key}.block.0"), cout, cout, 3, false, false);
    s.batch_norm(&format!("{key}.block.1"), cout, false);
    s.conv(&format!("{key}.block.3"), cout, cout, 3, false, false);
    s.batch_norm(&format!("{key}.block.4"), cout, false);
}

/// A freshly initialised HR-VITON condition generator as `train_condition.py` builds it:
/// `ConditionGenerator(opt, input1_nc=4, input2_nc=semantic_nc + 3, output_nc,
/// ngf=96, norm_layer=nn.BatchNorm2d)`, `warp_feature` and `out_layer` from `options`,
/// PyTorch's default initialisation throughout (the script applies none of its own).
/// `ngf` is 96 in the original.
pub fn tocg_fresh(options: &ConditionTrainOptions, ngf: usize, seed: u64) -> Result<Checkpoint> {
    if ngf == 0 {
        return Err(VtonError::invalid("ngf", "a fresh tocg needs ngf > 0"));
    }
    if options.semantic_nc == 0 || options.output_nc == 0 {
        return Err(VtonError::invalid(
            "semantic_nc / output_nc",
            format!(
                "{} / {}: a fresh tocg needs both > 0",
                options.semantic_nc, options.output_nc
            ),
        ));
    }
    let decoder_in: [usize; 5] = match options.warp_feature.as_str() {
        // in_nc = x (+ skip) + the warped T1 feature (4 ngf).
        "T1" => [8, 12, 12, 8, 6],
        "encoder" => [8, 12, 12, 6, 3],
        other => {
            return Err(VtonError::invalid(
                "warp_feature",
                format!("{other:?} is not one of \"T1\", \"encoder\""),
            ))
        }
    };
    if !matches!(options.out_layer.as_str(), "relu" | "conv") {
        return Err(VtonError::invalid(
            "out_layer",
            format!("{:?} is not one of \"relu\", \"conv\"", options.out_layer),
        ));
    }
    let in1 = 4;
    let in2 = options.semantic_nc + 3;
    let enc = [
        (ngf, ngf),
        (ngf, 2 * ngf),
        (2 * ngf, 4 * ngf),
        (4 * ngf, 4 * ngf),
        (4 * ngf, 4 * ngf),
    ];
    let mut s = Spec::new();
    for (name, cin0) in [("ClothEncoder", in1), ("PoseEncoder", in2)] {
        for (i, &(cin, cout)) in enc.iter().enumerate() {
            let cin = if i == 0 { cin0 } else { cin };
            res_block(&mut s, &format!("{name}.{i}"), cin, cout, "down");
        }
    }
    res_block(&mut s, "conv", 4 * ngf, 8 * ngf, "same");
    let decoder_out = [4 * ngf, 4 * ngf, 2 * ngf, ngf, ngf];
    for (i, (&cin, &cout)) in decoder_in.iter().zip(&decoder_out).enumerate() {
        res_block(&mut s, &format!("SegDecoder.{i}"), cin * ngf, cout, "up");
    }
    let head_in = ngf + in1 + in2;
    if options.out_layer == "relu" {
        res_block(&mut s, "out_layer", head_in, options.output_nc, "same");
    } else {
        res_block(&mut s, "out_layer.0", head_in, ngf, "same");
        s.conv("out_layer.1", ngf, options.output_nc, 1, true, false);
    }
    for name in ["conv1", "conv2"] {
        for (i, cin) in [ngf, 2 * ngf, 4 * ngf, 4 * ngf].into_iter().enumerate() {
            s.conv(&format!("{name}.{i}"), cin, 4 * ngf, 1, true, false);
        }
    }
    for i in 0..5 {
        s.conv(&format!("flow_conv.{i}"), 8 * ngf, 2, 3, true, false);
    }
    for (i, cin) in [4 * ngf, 4 * ngf, 2 * ngf, ngf].into_iter().enumerate() {
        s.conv(&format!("bottleneck.{i}.0"), cin, 4 * ngf, 3, true, false);
    }
    s.build("fresh tocg", seed)
}

/// A freshly initialised HR-VITON discriminator as `train_condition.py` builds it:
/// `define_D(input_nc = 4 + (semantic_nc + 3) + output_nc, ndf, n_layers_D, num_D,
/// Ddropout, spectral)` (norm `instance`: InstanceNorm2d without parameters), then
/// `weights_init`: conv weights (`weight_orig` when spectral-normalised) N(0, 0.02),
/// biases PyTorch's default U(-1/sqrt(fan_in), 1/sqrt(fan_in)), spectral `weight_u` /
/// `weight_v` random unit vectors. Widths double from `ndf` up to 512 (the original's
/// cap); `ndf` is `define_D`'s default 64 in the original. `Ddownx2` adds no weights.
/// The draws come from a stream derived from `seed` that differs from [`tocg_fresh`]'s,
/// so both can take the run's seed.
pub fn discriminator_fresh(
    options: &ConditionTrainOptions,
    ndf: usize,
    seed: u64,
) -> Result<Checkpoint> {
    if ndf == 0 || options.n_layers_D == 0 || options.num_D == 0 {
        return Err(VtonError::invalid(
            "ndf / n_layers_D / num_D",
            format!(
                "{ndf} / {} / {}: a fresh discriminator needs all three > 0",
                options.n_layers_D, options.num_D
            ),
        ));
    }
    let input_nc = 4 + options.semantic_nc + 3 + options.output_nc;
    let k = 4;
    let normal = Init::Normal {
        mean: 0.0,
        std: 0.02,
    };
    let mut s = Spec::new();
    let conv = |s: &mut Spec, key: String, cin: usize, cout: usize, spectral: bool| {
        let fan_in = cin * k * k;
        let wname = if spectral { "weight_orig" } else { "weight" };
        s.tensors
            .push((format!("{key}.{wname}"), vec![cout, cin, k, k], normal));
        s.tensors.push((
            format!("{key}.bias"),
            vec![cout],
            Init::DefaultUniform { fan_in },
        ));
        if spectral {
            s.tensors
                .push((format!("{key}.weight_u"), vec![cout], Init::UnitNormal));
            s.tensors
                .push((format!("{key}.weight_v"), vec![fan_in], Init::UnitNormal));
        }
    };
    for d in 0..options.num_D {
        let key = |idx: usize| format!("layer{d}.{idx}");
        conv(&mut s, key(0), input_nc, ndf, false);
        let mut nf = ndf;
        let mut idx = 2;
        for _ in 1..options.n_layers_D {
            let prev = nf;
            nf = (2 * nf).min(512);
            conv(&mut s, key(idx), prev, nf, options.spectral);
            idx += if options.Ddropout { 4 } else { 3 };
        }
        let prev = nf;
        nf = (2 * nf).min(512);
        conv(&mut s, key(idx), prev, nf, false);
        conv(&mut s, key(idx + 3), nf, 1, false);
    }
    // Its own stream: G and D built from one seed must not share draws.
    s.build("fresh discriminator", seed ^ 0x44_6973_6372_696d)
}
