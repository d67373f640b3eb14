//! Fresh weights for training from scratch, under the original keys and with the
//! original initialisation: CP-VTON+'s `networks.py` applies `weights_init_normal` to the
//! GMM's feature extractors (conv weights N(0, 0.02), BatchNorm weight N(1, 0.02) and
//! bias 0; conv biases keep PyTorch's default) and leaves everything else (the GMM's
//! regression, the TOM U-Net) at PyTorch's default initialisation: weights and biases
//! U(-1/sqrt(fan_in), 1/sqrt(fan_in)) (`kaiming_uniform_(a=sqrt(5))`), BatchNorm weight
//! 1, bias 0, running mean 0, running variance 1. Draws come from vton's seeded
//! generator, so a seed gives the same model every time (not PyTorch's numbers).

use crate::error::{Result, VtonError};
use crate::models::cpvton::GmmConfig;
use crate::rng::Rng;
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
