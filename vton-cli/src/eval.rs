//! `vton eval`: paired metrics (SSIM, MS-SSIM, PSNR, LPIPS) between predictions and
//! ground truth matched by file name, and FID / KID between the two sets.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use clap::Args;
use indicatif::{ProgressBar, ProgressStyle};
use serde_json::json;
use vton_core::burn::tensor::Device;
use vton_core::metrics::kid::Kid;
use vton_core::metrics::{
    ms_ssim, psnr, ssim, Fid, KidOptions, Lpips, LpipsNet, LpipsNormalization, MetricImage,
    MsSsimOptions, PilFilter, SsimConvention,
};
use vton_core::models::inception::FidInceptionV3;
use vton_core::{device_from_name, Result, VtonError};

/// `vton eval`.
#[derive(Args)]
pub struct EvalArgs {
    /// Folder of generated images (PNG / JPEG).
    #[arg(long)]
    pub pred: PathBuf,
    /// Folder of ground-truth images; files are matched to --pred by name (the extension
    /// may differ: a.png matches a.jpg).
    #[arg(long)]
    pub gt: PathBuf,
    /// Comma-separated: ssim, ms-ssim, psnr, lpips, fid, kid. Default: ssim and psnr,
    /// plus lpips with --lpips-backbone and fid, kid with --inception.
    #[arg(long, value_delimiter = ',')]
    pub metrics: Option<Vec<String>>,
    /// torchvision backbone for LPIPS (alexnet-owt-*.pth, squeezenet1_1-*.pth,
    /// vgg16-*.pth).
    #[arg(long)]
    pub lpips_backbone: Option<PathBuf>,
    /// LPIPS network: alex, squeeze or vgg (default: from the backbone's file name,
    /// else alex).
    #[arg(long)]
    pub lpips_net: Option<String>,
    /// LPIPS linear layers (lpips' weights/v0.1/<net>.pth); default: the bundled v0.1
    /// layers.
    #[arg(long)]
    pub lpips_lin: Option<PathBuf>,
    /// Where LPIPS puts its eps when it unit-normalises features: lpips (default,
    /// f / (|f| + 1e-10)) or torchmetrics (f / sqrt(|f|^2 + 1e-8), CatVTON's and
    /// LaDI-VTON's LPIPS).
    #[arg(long, default_value = "lpips")]
    pub lpips_eps: String,
    /// Resize both images to WxH with PIL's bilinear filter before LPIPS (HR-VITON's
    /// evaluate.py: 128x128); default: full size.
    #[arg(long)]
    pub lpips_size: Option<String>,
    /// pytorch-fid's Inception weights (pt_inception-2015-12-05-*.pth) for FID and KID.
    #[arg(long)]
    pub inception: Option<PathBuf>,
    /// SSIM convention: skimage-gaussian (default; = pytorch-msssim), skimage-default,
    /// pytorch-msssim, torchmetrics, torchmetrics-1.4.1.
    #[arg(long, default_value = "skimage-gaussian")]
    pub ssim_convention: String,
    /// Compute SSIM on PIL grey images (convert('L')), as HR-VITON's evaluate.py does.
    #[arg(long)]
    pub ssim_gray: bool,
    /// Ground truth of another size than its prediction: none (an error, default), or
    /// resize the ground truth to the prediction's size with PIL's bilinear (HR-VITON),
    /// bicubic or lanczos (CatVTON) filter.
    #[arg(long, default_value = "none")]
    pub resize: String,
    /// KID subsets and subset size (torch-fidelity: 100 and 1000; the size is capped at
    /// the smaller set, as clean-fid does, and the cap is reported).
    #[arg(long, default_value_t = 100)]
    pub kid_subsets: usize,
    #[arg(long, default_value_t = 1000)]
    pub kid_subset_size: usize,
    /// Evaluate the matched pairs when some files have no counterpart (they are listed);
    /// without it, unmatched files are an error for the paired metrics. FID and KID
    /// always use every image of each folder.
    #[arg(long)]
    pub allow_unmatched: bool,
    /// Images per network batch (LPIPS, Inception).
    #[arg(long, default_value_t = 8)]
    pub batch_size: usize,
    /// Write every figure, the conventions and the per-image values as JSON.
    #[arg(long)]
    pub json: Option<PathBuf>,
    /// Device: cpu (default), wgpu, cuda[:N] (when built with those features).
    #[arg(long, default_value = "cpu")]
    pub device: String,
}

#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Debug)]
enum Metric {
    Ssim,
    MsSsim,
    Psnr,
    Lpips,
    Fid,
    Kid,
}

impl Metric {
    fn parse(s: &str) -> Result<Self> {
        match s.trim().to_ascii_lowercase().as_str() {
            "ssim" => Ok(Metric::Ssim),
            "ms-ssim" | "ms_ssim" | "msssim" => Ok(Metric::MsSsim),
            "psnr" => Ok(Metric::Psnr),
            "lpips" => Ok(Metric::Lpips),
            "fid" => Ok(Metric::Fid),
            "kid" => Ok(Metric::Kid),
            other => Err(VtonError::invalid(
                "--metrics",
                format!("'{other}' is not one of ssim, ms-ssim, psnr, lpips, fid, kid"),
            )),
        }
    }
    fn name(self) -> &'static str {
        match self {
            Metric::Ssim => "ssim",
            Metric::MsSsim => "ms-ssim",
            Metric::Psnr => "psnr",
            Metric::Lpips => "lpips",
            Metric::Fid => "fid",
            Metric::Kid => "kid",
        }
    }
}

fn is_image(p: &Path) -> bool {
    matches!(
        p.extension()
            .and_then(|e| e.to_str())
            .map(|e| e.to_ascii_lowercase())
            .as_deref(),
        Some("png" | "jpg" | "jpeg")
    )
}

/// The images of a folder by stem; two files with one stem are an error.
fn list(dir: &Path, what: &str) -> Result<BTreeMap<String, PathBuf>> {
    if !dir.is_dir() {
        return Err(if dir.exists() {
            VtonError::invalid(what, format!("{} is not a folder", dir.display()))
        } else {
            VtonError::FileNotFound {
                path: dir.to_path_buf(),
            }
        });
    }
    let rd = std::fs::read_dir(dir).map_err(|e| VtonError::Io {
        path: dir.to_path_buf(),
        source: e,
    })?;
    let mut out = BTreeMap::new();
    for entry in rd.filter_map(|e| e.ok()) {
        let p = entry.path();
        if !p.is_file() || !is_image(&p) {
            continue;
        }
        let stem = p
            .file_stem()
            .and_then(|s| s.to_str())
            .unwrap_or_default()
            .to_string();
        if let Some(prev) = out.insert(stem.clone(), p.clone()) {
            return Err(VtonError::invalid(
                what,
                format!(
                    "{} and {} have the same name: cannot tell which to match",
                    prev.display(),
                    p.display()
                ),
            ));
        }
    }
    if out.is_empty() {
        return Err(VtonError::invalid(
            what,
            format!("{} holds no PNG or JPEG images", dir.display()),
        ));
    }
    Ok(out)
}

fn net_from_file(path: &Path) -> LpipsNet {
    let name = path
        .file_name()
        .and_then(|s| s.to_str())
        .unwrap_or_default()
        .to_ascii_lowercase();
    if name.contains("squeeze") {
        LpipsNet::Squeeze
    } else if name.contains("vgg") {
        LpipsNet::Vgg
    } else {
        LpipsNet::Alex
    }
}

fn style(bar: &ProgressBar, what: &str) {
    bar.set_style(
        ProgressStyle::with_template(&format!(
            "{what} [{{bar:30}}] {{pos}}/{{len}} {{elapsed}} (eta {{eta}}) {{msg}}"
        ))
        .unwrap_or_else(|_| ProgressStyle::default_bar())
        .progress_chars("=> "),
    );
}

fn mean(v: &[f64]) -> f64 {
    v.iter().sum::<f64>() / v.len().max(1) as f64
}

/// The figures of one run.
struct Row {
    metric: String,
    value: f64,
    extra: Option<String>,
    convention: String,
}

pub fn run(args: EvalArgs) -> Result<()> {
    let device = device_from_name(&args.device)?;
    let metrics: BTreeSet<Metric> = match &args.metrics {
        Some(list) => list
            .iter()
            .filter(|s| !s.trim().is_empty())
            .map(|s| Metric::parse(s))
            .collect::<Result<_>>()?,
        None => {
            let mut m = BTreeSet::from([Metric::Ssim, Metric::Psnr]);
            if args.lpips_backbone.is_some() {
                m.insert(Metric::Lpips);
            }
            if args.inception.is_some() {
                m.insert(Metric::Fid);
                m.insert(Metric::Kid);
            }
            m
        }
    };
    if metrics.is_empty() {
        return Err(VtonError::invalid("--metrics", "no metric named"));
    }
    if metrics.contains(&Metric::Lpips) && args.lpips_backbone.is_none() {
        return Err(VtonError::invalid(
            "--metrics",
            "lpips needs --lpips-backbone (torchvision's alexnet-owt-*.pth, squeezenet1_1-*.pth or vgg16-*.pth)",
        ));
    }
    if (metrics.contains(&Metric::Fid) || metrics.contains(&Metric::Kid))
        && args.inception.is_none()
    {
        return Err(VtonError::invalid(
            "--metrics",
            "fid and kid need --inception (pytorch-fid's pt_inception-2015-12-05-*.pth)",
        ));
    }
    if args.batch_size == 0 {
        return Err(VtonError::invalid("--batch-size", "must be at least 1"));
    }
    let convention = SsimConvention::from_name(&args.ssim_convention)?;
    let resize = match args.resize.trim().to_ascii_lowercase().as_str() {
        "none" => None,
        other => Some(PilFilter::from_name(other).map_err(|_| {
            VtonError::invalid(
                "--resize",
                format!("'{other}' is not one of none, bilinear, bicubic, lanczos"),
            )
        })?),
    };

    let pred = list(&args.pred, "--pred")?;
    let gt = list(&args.gt, "--gt")?;
    let missing: Vec<String> = gt
        .keys()
        .filter(|k| !pred.contains_key(*k))
        .cloned()
        .collect();
    let extra: Vec<String> = pred
        .keys()
        .filter(|k| !gt.contains_key(*k))
        .cloned()
        .collect();
    let matched: Vec<String> = pred
        .keys()
        .filter(|k| gt.contains_key(*k))
        .cloned()
        .collect();
    let paired = metrics.iter().any(|m| {
        matches!(
            m,
            Metric::Ssim | Metric::MsSsim | Metric::Psnr | Metric::Lpips
        )
    });
    if !missing.is_empty() || !extra.is_empty() {
        let show = |v: &[String]| {
            let head: Vec<&str> = v.iter().take(5).map(String::as_str).collect();
            let more = if v.len() > 5 {
                format!(", ... ({} in all)", v.len())
            } else {
                String::new()
            };
            format!("{}{more}", head.join(", "))
        };
        let mut msg = Vec::new();
        if !missing.is_empty() {
            msg.push(format!(
                "{} ground-truth image(s) have no prediction: {}",
                missing.len(),
                show(&missing)
            ));
        }
        if !extra.is_empty() {
            msg.push(format!(
                "{} prediction(s) have no ground truth: {}",
                extra.len(),
                show(&extra)
            ));
        }
        if paired && !args.allow_unmatched {
            return Err(VtonError::invalid(
                "--pred/--gt",
                format!(
                    "{} (pass --allow-unmatched to evaluate the {} matched pairs)",
                    msg.join("; "),
                    matched.len()
                ),
            ));
        }
        for m in &msg {
            eprintln!("warning: {m}");
        }
    }
    if paired && matched.is_empty() {
        return Err(VtonError::invalid(
            "--pred/--gt",
            "no file name is in both folders",
        ));
    }

    let lpips_norm = match args.lpips_eps.trim().to_ascii_lowercase().as_str() {
        "lpips" => LpipsNormalization::Lpips,
        "torchmetrics" => LpipsNormalization::Torchmetrics,
        other => {
            return Err(VtonError::invalid(
                "--lpips-eps",
                format!("'{other}' is not one of lpips, torchmetrics"),
            ))
        }
    };
    let lpips_size = match &args.lpips_size {
        None => None,
        Some(s) => {
            let parsed = s
                .split_once(['x', 'X'])
                .and_then(|(w, h)| {
                    Some((
                        w.trim().parse::<usize>().ok()?,
                        h.trim().parse::<usize>().ok()?,
                    ))
                })
                .filter(|&(w, h)| w > 0 && h > 0);
            Some(parsed.ok_or_else(|| {
                VtonError::invalid("--lpips-size", format!("'{s}' is not WxH, e.g. 128x128"))
            })?)
        }
    };
    let lpips = match (&args.lpips_backbone, metrics.contains(&Metric::Lpips)) {
        (Some(path), true) => {
            let net = match &args.lpips_net {
                Some(n) => LpipsNet::from_name(n)?,
                None => net_from_file(path),
            };
            Some(Lpips::from_checkpoint(
                path,
                net,
                args.lpips_lin.as_deref(),
                &device,
            )?)
        }
        _ => None,
    };
    let want_fid = metrics.contains(&Metric::Fid);
    let want_kid = metrics.contains(&Metric::Kid);
    let (mut fid, mut kid) = match (&args.inception, want_fid || want_kid) {
        (Some(path), true) => {
            let net = FidInceptionV3::from_checkpoint(path, &device)?;
            let kid_opts = KidOptions {
                subsets: args.kid_subsets,
                subset_size: args.kid_subset_size,
                ..KidOptions::default()
            };
            // one network, two consumers: FID keeps statistics, KID keeps features
            let fid = want_fid.then(|| Fid::new(net.clone()));
            let kid = want_kid.then(|| Kid::new(net, kid_opts));
            (fid, kid)
        }
        _ => (None, None),
    };

    // Paired metrics over the matched files; the same images feed FID / KID.
    let mut per_image: Vec<serde_json::Value> = Vec::new();
    let (mut ssims, mut msssims, mut psnrs, mut lpipss) = (vec![], vec![], vec![], vec![]);
    let mut resized = 0usize;
    let mut infinite_psnr = 0usize;
    let mut fid_batch: (Vec<MetricImage>, Vec<MetricImage>) = (vec![], vec![]);
    let bar = ProgressBar::new(matched.len() as u64);
    style(&bar, "pairs");
    let mut lpips_queue: Vec<(usize, MetricImage, MetricImage)> = Vec::new();
    let flush_lpips = |queue: &mut Vec<(usize, MetricImage, MetricImage)>,
                       per_image: &mut Vec<serde_json::Value>,
                       lpipss: &mut Vec<f64>|
     -> Result<()> {
        let Some(model) = &lpips else {
            queue.clear();
            return Ok(());
        };
        // one batch per image size
        while !queue.is_empty() {
            let (h, w) = (queue[0].1.height, queue[0].1.width);
            let take: Vec<(usize, MetricImage, MetricImage)> = {
                let mut same = Vec::new();
                let mut rest = Vec::new();
                for item in queue.drain(..) {
                    if (item.1.height, item.1.width) == (h, w) {
                        same.push(item);
                    } else {
                        rest.push(item);
                    }
                }
                *queue = rest;
                same
            };
            let p: Vec<&MetricImage> = take.iter().map(|t| &t.1).collect();
            let g: Vec<&MetricImage> = take.iter().map(|t| &t.2).collect();
            let x0 = MetricImage::batch_tensor(&p, 2.0 / 255.0, -1.0, &device)?;
            let x1 = MetricImage::batch_tensor(&g, 2.0 / 255.0, -1.0, &device)?;
            let d = model.distance(x0, x1)?;
            for ((idx, _, _), v) in take.iter().zip(d) {
                per_image[*idx]["lpips"] = json!(v);
                lpipss.push(v as f64);
            }
        }
        Ok(())
    };
    for name in &matched {
        bar.set_message(name.clone());
        let p = MetricImage::read(&pred[name])?;
        let mut g = MetricImage::read(&gt[name])?;
        if (g.height, g.width) != (p.height, p.width) {
            match resize {
                Some(filter) => {
                    g = g.resize_pil(p.width, p.height, filter)?;
                    resized += 1;
                }
                None => {
                    return Err(VtonError::SizeMismatch {
                        what: format!(
                            "{} against its ground truth {} (pass --resize bilinear|bicubic|lanczos \
                             to resize the ground truth with PIL's filter, as HR-VITON and CatVTON do)",
                            pred[name].display(),
                            gt[name].display()
                        ),
                        expected: format!("{} x {}", g.width, g.height),
                        actual: format!("{} x {}", p.width, p.height),
                    })
                }
            }
        }
        let mut row = json!({"name": name});
        if metrics.contains(&Metric::Ssim) {
            let v = if args.ssim_gray {
                ssim(&p.to_gray_pil()?, &g.to_gray_pil()?, convention, 255.0)?
            } else {
                ssim(&p, &g, convention, 255.0)?
            };
            row["ssim"] = json!(v);
            ssims.push(v);
        }
        if metrics.contains(&Metric::MsSsim) {
            let v = ms_ssim(&p, &g, &MsSsimOptions::new(255.0))?;
            row["ms_ssim"] = json!(v);
            msssims.push(v);
        }
        if metrics.contains(&Metric::Psnr) {
            let v = psnr(&p, &g, 255.0)?;
            if v.is_finite() {
                row["psnr"] = json!(v);
                psnrs.push(v);
            } else {
                row["psnr"] = json!("inf");
                infinite_psnr += 1;
            }
        }
        per_image.push(row);
        if fid.is_some() || kid.is_some() {
            fid_batch.0.push(p.clone());
            fid_batch.1.push(g.clone());
        }
        if lpips.is_some() {
            let (p, g) = match lpips_size {
                Some((w, h)) => (
                    p.resize_pil(w, h, PilFilter::Bilinear)?,
                    g.resize_pil(w, h, PilFilter::Bilinear)?,
                ),
                None => (p, g),
            };
            lpips_queue.push((per_image.len() - 1, p, g));
            if lpips_queue.len() >= args.batch_size {
                flush_lpips(&mut lpips_queue, &mut per_image, &mut lpipss)?;
            }
        }
        if fid_batch.0.len() >= args.batch_size {
            feed(&mut fid, &mut kid, &mut fid_batch.0, false, &device)?;
            feed(&mut fid, &mut kid, &mut fid_batch.1, true, &device)?;
        }
        bar.inc(1);
    }
    flush_lpips(&mut lpips_queue, &mut per_image, &mut lpipss)?;
    bar.finish_and_clear();
    if fid.is_some() || kid.is_some() {
        feed(&mut fid, &mut kid, &mut fid_batch.0, false, &device)?;
        feed(&mut fid, &mut kid, &mut fid_batch.1, true, &device)?;
        {
            // FID and KID use every image of each folder
            let rest: Vec<(&PathBuf, bool)> = extra
                .iter()
                .map(|k| (&pred[k], false))
                .chain(missing.iter().map(|k| (&gt[k], true)))
                .collect();
            let bar = ProgressBar::new(rest.len() as u64);
            style(&bar, "features");
            let (mut fake, mut real) = (vec![], vec![]);
            for (path, is_real) in rest {
                let img = MetricImage::read(path)?;
                if is_real {
                    real.push(img)
                } else {
                    fake.push(img)
                };
                if fake.len() >= args.batch_size {
                    feed(&mut fid, &mut kid, &mut fake, false, &device)?;
                }
                if real.len() >= args.batch_size {
                    feed(&mut fid, &mut kid, &mut real, true, &device)?;
                }
                bar.inc(1);
            }
            feed(&mut fid, &mut kid, &mut fake, false, &device)?;
            feed(&mut fid, &mut kid, &mut real, true, &device)?;
            bar.finish_and_clear();
        }
    }

    // The table and the JSON.
    let mut rows: Vec<Row> = Vec::new();
    let mut out = serde_json::Map::new();
    let n = matched.len();
    if metrics.contains(&Metric::Ssim) {
        let conv = format!(
            "{}{}; data range 255; mean over images",
            convention.name(),
            if args.ssim_gray {
                " on PIL grey (convert('L'))"
            } else {
                " on 8-bit RGB"
            },
        );
        rows.push(Row {
            metric: "SSIM".into(),
            value: mean(&ssims),
            extra: None,
            convention: format!("{} ({})", conv, convention.describe()),
        });
        out.insert("ssim".into(), json!({"value": mean(&ssims), "convention": convention.name(), "gray": args.ssim_gray, "description": convention.describe(), "data_range": 255, "images": n}));
    }
    if metrics.contains(&Metric::MsSsim) {
        rows.push(Row { metric: "MS-SSIM".into(), value: mean(&msssims), extra: None, convention: "pytorch-msssim 1.0 ms_ssim: 5 scales, weights 0.0448..0.1333, Gaussian 11 sigma 1.5, data range 255; mean over images".into() });
        out.insert("ms_ssim".into(), json!({"value": mean(&msssims), "convention": "pytorch-msssim", "data_range": 255, "images": n}));
    }
    if metrics.contains(&Metric::Psnr) {
        let note = if infinite_psnr > 0 {
            format!(" ({infinite_psnr} identical pair(s) with infinite PSNR left out of the mean)")
        } else {
            String::new()
        };
        rows.push(Row { metric: "PSNR".into(), value: mean(&psnrs), extra: Some("dB".into()), convention: format!("scikit-image peak_signal_noise_ratio, data range 255, float64 MSE per image; mean over images{note}") });
        out.insert("psnr".into(), json!({"value": mean(&psnrs), "unit": "dB", "convention": "skimage", "data_range": 255, "images": n, "infinite": infinite_psnr}));
    }
    if let Some(model) = &lpips {
        let conv = format!(
            "lpips 0.1.4 v0.1, net {}, inputs in [-1, 1] {}; {} eps; {} linear layers; mean over images",
            model.net().name(),
            match lpips_size {
                Some((w, h)) => format!("resized to {w}x{h} with PIL bilinear"),
                None => "at full size".to_string(),
            },
            match lpips_norm {
                LpipsNormalization::Lpips => "lpips'",
                _ => "torchmetrics'",
            },
            if args.lpips_lin.is_some() { "given" } else { "bundled v0.1" }
        );
        rows.push(Row {
            metric: "LPIPS".into(),
            value: mean(&lpipss),
            extra: None,
            convention: conv.clone(),
        });
        out.insert("lpips".into(), json!({"value": mean(&lpipss), "net": model.net().name(), "convention": conv, "images": n}));
    }
    if let Some(f) = &fid {
        let r = f.compute()?;
        let (nr, nf) = (f.real_statistics().count(), f.fake_statistics().count());
        let conv = format!(
            "pytorch-fid 0.3.0: InceptionV3 pool3 ({} features), bilinear resize to 299 inside the network, np.cov, trace of the principal square root; {nr} real, {nf} generated",
            f.inception().feature_dim()
        );
        rows.push(Row {
            metric: "FID".into(),
            value: r.value,
            extra: None,
            convention: conv.clone(),
        });
        out.insert("fid".into(), json!({"value": r.value, "convention": conv, "real": nr, "generated": nf, "mean_term": r.mean_term, "trace_real": r.trace1, "trace_generated": r.trace2, "trace_sqrt": r.trace_sqrt}));
    }
    if let Some(k) = &kid {
        let (nr, nf) = k.counts();
        let cap = nr.min(nf);
        let mut opts = k.options().clone();
        let capped = opts.subset_size > cap;
        if capped {
            opts.subset_size = cap;
        }
        let r = k.compute_with(&opts)?;
        let conv = format!(
            "torch-fidelity 0.4.0 kid: cubic polynomial kernel, unbiased MMD^2, {} subsets of {}{} drawn by RandomState(2020); mean (std {:.6}); paired sets bias KID low",
            opts.subsets,
            opts.subset_size,
            if capped { " (capped at the smaller set)" } else { "" },
            r.std
        );
        rows.push(Row {
            metric: "KID".into(),
            value: r.mean,
            extra: None,
            convention: conv.clone(),
        });
        out.insert("kid".into(), json!({"value": r.mean, "std": r.std, "subsets": opts.subsets, "subset_size": opts.subset_size, "capped": capped, "convention": conv}));
    }

    println!("{} pairs matched ({} ground truth resized with PIL {}), {} without prediction, {} without ground truth",
        n, resized, resize.map(|f| f.name()).unwrap_or("-"), missing.len(), extra.len());
    let w = rows
        .iter()
        .map(|r| r.metric.len())
        .max()
        .unwrap_or(6)
        .max(6);
    println!("{:<w$}  {:>12}  convention", "metric", "value");
    for r in &rows {
        let v = match &r.extra {
            Some(u) => format!("{:.4} {u}", r.value),
            None => format!("{:.6}", r.value),
        };
        println!("{:<w$}  {:>12}  {}", r.metric, v, r.convention);
    }
    if let Some(path) = &args.json {
        let doc = json!({
            "pred": args.pred.display().to_string(),
            "gt": args.gt.display().to_string(),
            "metrics_requested": metrics.iter().map(|m| m.name()).collect::<Vec<_>>(),
            "matched": n,
            "missing_predictions": missing,
            "missing_ground_truth": extra,
            "resize": resize.map(|f| f.name()),
            "resized": resized,
            "metrics": out,
            "per_image": per_image,
            "vton_version": env!("CARGO_PKG_VERSION"),
        });
        let text = serde_json::to_string_pretty(&doc).map_err(|e| VtonError::Json {
            what: path.display().to_string(),
            message: e.to_string(),
        })?;
        vton_core::io::write_atomic(path, text.as_bytes())?;
        println!("wrote {}", path.display());
    }
    Ok(())
}

/// Runs a batch of images (grouped by size) through the Inception network into FID / KID.
fn feed(
    fid: &mut Option<Fid>,
    kid: &mut Option<Kid>,
    images: &mut Vec<MetricImage>,
    real: bool,
    device: &Device,
) -> Result<()> {
    while !images.is_empty() {
        let (h, w) = (images[0].height, images[0].width);
        let (same, rest): (Vec<MetricImage>, Vec<MetricImage>) = images
            .drain(..)
            .partition(|i| (i.height, i.width) == (h, w));
        *images = rest;
        let refs: Vec<&MetricImage> = same.iter().collect();
        let x = MetricImage::batch_tensor(&refs, 1.0 / 255.0, 0.0, device)?;
        let net = match (fid.as_ref(), kid.as_ref()) {
            (Some(f), _) => f.inception(),
            (None, Some(k)) => k.inception(),
            (None, None) => return Ok(()),
        };
        let feats = vton_core::io::image::tensor_to_vec(net.features(x)?)?;
        if let Some(f) = fid {
            f.update_features(&feats, real)?;
        }
        if let Some(k) = kid {
            k.update_features(&feats, real)?;
        }
    }
    Ok(())
}
