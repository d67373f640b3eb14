//! Time per optimiser step of vton's trainers, for scripts/bench/train_compare.sh (the
//! PyTorch side is scripts/bench/train_reference.py, same shapes, same thread count).
//!
//!     RAYON_NUM_THREADS=2 cargo run --release -p vton-core --example train_step_timing -- \
//!         WHAT BATCH DIR [STEPS] [WARMUP] [NGF]
//!
//! WHAT: `gmm` (CP-VTON+ GMM, fresh weights with the original init, ngf 64), `tom`
//! (CP-VTON+ TOM U-Net 26->4, 6 downs, ngf 64, + VGG19 loss from DIR/vgg19_random.pth),
//! `tocg` (HR-VITON condition generator DIR/tocg_random_ngf<NGF>.pth + discriminator
//! DIR/d_random.pth + VGG19, one `train_condition.py` step). 256x192, one random batch of
//! the dataset's shapes and value ranges reused every step. `unet`: the diffusers
//! inpainting U-Net in DIR (or DIR/unet), one AdamW fine-tuning step on random latents of
//! LATENT_H x LATENT_W (the next two arguments; default 32 x 24) with zero 77-token text
//! states. Prints one JSON line: the median step time after WARMUP steps, every step
//! time, the process's peak RSS.

use std::time::Instant;

use vton_core::burn::tensor::Device;
use vton_core::burn::tensor::{Tensor, TensorData};
use vton_core::models::cpvton::GmmConfig;
use vton_core::models::unet::PerBlock;
use vton_core::rng::Rng;
use vton_core::train::cpvton::{CpvtonTrainOptions, GmmBatch, GmmTrainer, TomBatch, TomTrainer};
use vton_core::train::diffusion::{UNetBatch, UNetTrainOptions, UNetTrainer};
use vton_core::train::hrviton::{ConditionBatch, ConditionGeneratorTrainer, ConditionTrainOptions};
use vton_core::train::init;
use vton_core::train::losses::VggLossConfig;
use vton_core::weights::Checkpoint;
use vton_core::{default_device, Result, VtonError};

fn peak_rss_mib() -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines().find(|l| l.starts_with("VmHWM:")).and_then(|l| {
                l.split_whitespace()
                    .nth(1)
                    .and_then(|v| v.parse::<f64>().ok())
            })
        })
        .map_or(f64::NAN, |kb| kb / 1024.0)
}

/// Random batch tensors: values in [-1, 1], {0, 1} masks, one-hot maps, class indices.
struct Gen {
    rng: Rng,
    dev: Device,
    b: usize,
    h: usize,
    w: usize,
}

impl Gen {
    fn uniform(&mut self) -> f32 {
        (self.rng.next_u32() as f64 / u32::MAX as f64) as f32
    }

    fn tensor(&self, c: usize, v: Vec<f32>) -> Tensor<4> {
        Tensor::from_data(TensorData::new(v, [self.b, c, self.h, self.w]), &self.dev)
    }

    fn signed(&mut self, c: usize) -> Tensor<4> {
        let n = self.b * c * self.h * self.w;
        let v = (0..n).map(|_| self.uniform() * 2.0 - 1.0).collect();
        self.tensor(c, v)
    }

    fn mask(&mut self) -> Tensor<4> {
        let n = self.b * self.h * self.w;
        let v = (0..n)
            .map(|_| if self.uniform() > 0.5 { 1.0 } else { 0.0 })
            .collect();
        self.tensor(1, v)
    }

    /// Class indices `[B, 1, H, W]` and their one-hot `[B, classes, H, W]`.
    fn labels(&mut self, classes: usize) -> (Tensor<4>, Tensor<4>) {
        let hw = self.h * self.w;
        let idx: Vec<usize> = (0..self.b * hw)
            .map(|_| (self.rng.next_u32() as usize) % classes)
            .collect();
        let mut onehot = vec![0f32; self.b * classes * hw];
        for (i, &k) in idx.iter().enumerate() {
            let (bi, p) = (i / hw, i % hw);
            onehot[(bi * classes + k) * hw + p] = 1.0;
        }
        let idx = idx.into_iter().map(|k| k as f32).collect();
        (self.tensor(1, idx), self.tensor(classes, onehot))
    }
}

fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let what = args.get(1).map_or("gmm", |s| s.as_str()).to_string();
    let num = |i: usize, default: usize| -> Result<usize> {
        match args.get(i) {
            None => Ok(default),
            Some(s) => s
                .parse()
                .map_err(|_| VtonError::invalid("argument", format!("'{s}' is not a number"))),
        }
    };
    let b = num(2, 4)?;
    let dir = args
        .get(3)
        .map_or("target/bench", |s| s.as_str())
        .to_string();
    let (steps, warmup) = (num(4, 5)?, num(5, 1)?);
    let dev = default_device();
    let (mut h, mut w) = (256usize, 192usize);
    let mut g = Gen {
        rng: Rng::new(1),
        dev: dev.clone(),
        b,
        h,
        w,
    };
    let mut step: Box<dyn FnMut() -> Result<f64>> = match what.as_str() {
        "gmm" => {
            let ngf = num(6, 64)?;
            let ck = init::gmm_fresh(GmmConfig::default(), ngf, 0)?;
            let mut t = GmmTrainer::from_loaded(&ck, CpvtonTrainOptions::default(), &dev)?;
            let batch = GmmBatch {
                agnostic: g.signed(22),
                cloth_mask: g.mask(),
                cloth: g.signed(3),
                parse_cloth: g.signed(3),
            };
            Box::new(move || Ok(t.step(&batch, false)?.losses["total"]))
        }
        "tom" => {
            let ngf = num(6, 64)?;
            let ck = init::tom_fresh(26, 4, 6, ngf, 0)?;
            let vgg = Checkpoint::open(format!("{dir}/vgg19_random.pth"))?;
            let mut t = TomTrainer::from_loaded(
                &ck,
                &vgg,
                VggLossConfig::cpvton(),
                CpvtonTrainOptions::default(),
                &dev,
            )?;
            let batch = TomBatch {
                agnostic: g.signed(22),
                cloth: g.signed(3),
                cloth_mask: g.mask(),
                image: g.signed(3),
                parse_cloth_mask: g.mask(),
            };
            Box::new(move || Ok(t.step(&batch, false)?.losses["total"]))
        }
        "tocg" => {
            let ngf = num(6, 96)?;
            let mut t = ConditionGeneratorTrainer::from_checkpoints(
                format!("{dir}/tocg_random_ngf{ngf}.pth"),
                format!("{dir}/d_random.pth"),
                format!("{dir}/vgg19_random.pth"),
                ConditionTrainOptions::default(),
                &dev,
            )?;
            let cloth = g.signed(3);
            let cloth_mask = g.mask();
            let (_, parse_agnostic) = g.labels(13);
            let densepose = g.signed(3);
            let (parse_onehot, parse) = g.labels(13);
            let batch = ConditionBatch {
                cloth,
                cloth_mask,
                parse_agnostic,
                densepose,
                parse_onehot,
                parse,
                pcm: g.mask(),
                parse_cloth: g.signed(3),
            };
            Box::new(move || Ok(t.step(&batch, None)?.losses["G"]))
        }
        "unet" => {
            // A diffusers inpainting U-Net folder (DIR/unet or DIR itself), fine-tuned as
            // diffusers' scripts do (AdamW, clip 1.0, epsilon target); latents of
            // LATENT_H x LATENT_W (args 6, 7; default 32 x 24), zero text states.
            let lh = num(6, 32)?;
            let lw = num(7, 24)?;
            let folder = std::path::Path::new(&dir).join("unet");
            let folder = if folder.is_dir() {
                folder
            } else {
                dir.clone().into()
            };
            let mut t = UNetTrainer::from_pretrained(&folder, UNetTrainOptions::default(), &dev)?;
            let cfg = t.model().config.clone();
            let c = cfg.out_channels;
            let cross = match &cfg.cross_attention_dim {
                PerBlock::One(d) => *d,
                PerBlock::Each(v) => v.first().copied().unwrap_or(768),
            };
            let mut lg = Gen {
                rng: Rng::new(2),
                dev: dev.clone(),
                b,
                h: lh,
                w: lw,
            };
            let batch = UNetBatch {
                latents: lg.signed(c),
                masked_latents: Some(lg.signed(cfg.in_channels - c - 1)),
                mask: Some(lg.mask()),
                noise: lg.signed(c),
                timesteps: (0..b as i64).map(|i| 100 + 300 * i).collect(),
                encoder_hidden_states: Some(Tensor::zeros([b, 77, cross], &dev)),
            };
            h = lh;
            w = lw;
            Box::new(move || Ok(t.step(&batch, false)?.loss))
        }
        other => {
            return Err(VtonError::invalid(
                "what",
                format!("'{other}' is not gmm, tom, tocg or unet"),
            ))
        }
    };
    let mut times = Vec::new();
    let mut last = f64::NAN;
    for i in 0..warmup + steps {
        let t0 = Instant::now();
        last = step()?;
        let dt = t0.elapsed().as_secs_f64();
        if i >= warmup {
            times.push(dt);
        }
        eprintln!("{what} step {i}: {dt:.3} s, loss {last:.4}");
    }
    let mut sorted = times.clone();
    sorted.sort_by(|a, b| a.total_cmp(b));
    let median = if sorted.is_empty() {
        f64::NAN
    } else if sorted.len() % 2 == 1 {
        sorted[sorted.len() / 2]
    } else {
        (sorted[sorted.len() / 2 - 1] + sorted[sorted.len() / 2]) / 2.0
    };
    println!(
        "{{\"impl\": \"vton\", \"what\": \"{what}\", \"batch_size\": {b}, \"height\": {h}, \"width\": {w}, \
         \"threads\": \"{}\", \"median_s\": {median}, \"times_s\": {times:?}, \"peak_rss_mib\": {}, \"last_loss\": {last}}}",
        std::env::var("RAYON_NUM_THREADS").unwrap_or_else(|_| "all".into()),
        peak_rss_mib()
    );
    Ok(())
}
