//! CP-VTON+ and HR-VITON in the command line: `vton try-on --method cpvton|hrviton` and
//! `vton run-dataset` over a VITON-HD-layout test set (progress bar, paired/unpaired,
//! resumes by skipping results already written).
//!
//! `vton run-dataset --model cpvton --stage gmm` is CP-VTON+'s `test.py --stage GMM`: the
//! GMM alone over a training or test folder, read by the training dataset class (so the
//! GMM sees what it was trained on), writing `warp-cloth/<person>` and
//! `warp-mask/<person>` as `save_images` does: `(x + 1) / 2 * 255` clamped and truncated
//! to 8 bits (the mask saved as `2 m - 1`, i.e. `m * 255`), encoded by the person name's
//! extension (JPEG at PIL's default quality 75 for `.jpg`, PNG for `.png`). By default
//! the folders go into the data folder itself, where `vton train tom` reads them.

use std::path::{Path, PathBuf};

use clap::Args;
use indicatif::{ProgressBar, ProgressStyle};
use vton_core::burn::tensor::Device;
use vton_core::io::vitonhd::{PairMode, VitonHdDataset};
use vton_core::io::{read_image, read_mask, Mask, ParseMap, PersonSelection, RgbImage};
use vton_core::masks::{agnostic_from_parse, agnostic_image, parse_agnostic, GarmentCategory};
use vton_core::models::cpvton::{Gmm, GmmConfig, TomConfig};
use vton_core::models::hrviton::{ConditionGeneratorConfig, HRVitonGeneratorConfig, SpadeNoise};
use vton_core::pipelines::cpvton::{CPVTONPipeline, CpvtonOptions, CpvtonPerson};
use vton_core::pipelines::geometric::TryOnInputs;
use vton_core::pipelines::hrviton::{HRVitonImages, HRVitonOptions, HRVitonPipeline};
use vton_core::pipelines::parsing::HumanParser;
use vton_core::pipelines::preprocess::{PartialInputs, Preprocessor};
use vton_core::train::data::{collate, CpvtonDataset, CpvtonStage, DataLayout};
use vton_core::warp::{grid_sample, GridSampleOptions, PaddingMode, SampleMode};
use vton_core::weights::Checkpoint;
use vton_core::{device_from_name, Result, VtonError};

/// Model options shared by `try-on` and `run-dataset`.
#[derive(Args, Clone, Debug)]
pub struct GanArgs {
    /// CP-VTON+ GMM checkpoint (default: gmm_final.pth found in --weights).
    #[arg(long)]
    pub gmm: Option<PathBuf>,
    /// CP-VTON+ TOM checkpoint (default: tom_final.pth found in --weights).
    #[arg(long)]
    pub tom: Option<PathBuf>,
    /// HR-VITON condition generator (default: mtviton.pth / tocg*.pth found in --weights).
    #[arg(long)]
    pub tocg: Option<PathBuf>,
    /// HR-VITON generator (default: gen.pth found in --weights).
    #[arg(long)]
    pub generator: Option<PathBuf>,
    /// TOM / HR-VITON generator ngf (released: 64).
    #[arg(long, default_value_t = 64)]
    pub ngf: usize,
    /// HR-VITON condition generator ngf (released: 96).
    #[arg(long, default_value_t = 96)]
    pub tocg_ngf: usize,
    /// Fine size HEIGHTxWIDTH (default: 256x192 for cpvton, 1024x768 for hrviton).
    #[arg(long)]
    pub fine_size: Option<String>,
    /// CP-VTON+ warp convention: true = torch 0.4.1 (the released checkpoints), false =
    /// torch >= 1.3.
    #[arg(long, default_value_t = true, action = clap::ArgAction::Set)]
    pub align_corners: bool,
    /// HR-VITON generator noise seed ("none" drops the noise).
    #[arg(long, default_value = "0")]
    pub noise_seed: String,
}

fn parse_size(s: &str, what: &str) -> Result<(usize, usize)> {
    let bad = || VtonError::invalid(what, format!("'{s}' is not HEIGHTxWIDTH"));
    let (h, w) = s.split_once('x').ok_or_else(bad)?;
    Ok((h.parse().map_err(|_| bad())?, w.parse().map_err(|_| bad())?))
}

/// `explicit`, else the first of `names` in `dir` or its sub-folders (one level).
fn find_checkpoint(
    explicit: &Option<PathBuf>,
    dir: Option<&Path>,
    names: &[&str],
    flag: &str,
) -> Result<PathBuf> {
    if let Some(p) = explicit {
        return Ok(p.clone());
    }
    let dir =
        dir.ok_or_else(|| VtonError::invalid(flag, "give it, or --weights DIR holding it"))?;
    if !dir.is_dir() {
        return Err(VtonError::FileNotFound {
            path: dir.to_path_buf(),
        });
    }
    let mut dirs = vec![dir.to_path_buf()];
    if let Ok(rd) = std::fs::read_dir(dir) {
        let mut subs: Vec<PathBuf> = rd
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.is_dir())
            .collect();
        subs.sort();
        dirs.extend(subs);
    }
    for d in &dirs {
        for n in names {
            let p = d.join(n);
            if p.is_file() {
                return Ok(p);
            }
        }
    }
    Err(VtonError::invalid(
        flag,
        format!(
            "none of {} found in {} (or its sub-folders)",
            names.join(", "),
            dir.display()
        ),
    ))
}

fn noise(a: &GanArgs) -> Result<SpadeNoise> {
    if a.noise_seed == "none" {
        return Ok(SpadeNoise::Zero);
    }
    a.noise_seed.parse().map(SpadeNoise::seeded).map_err(|_| {
        VtonError::invalid(
            "--noise-seed",
            format!("'{}' is not a number or none", a.noise_seed),
        )
    })
}

/// `--fine-size` for CP-VTON+ (default 256x192).
fn cpvton_fine_size(a: &GanArgs) -> Result<(usize, usize)> {
    Ok(a.fine_size
        .as_deref()
        .map(|s| parse_size(s, "--fine-size"))
        .transpose()?
        .unwrap_or((256, 192)))
}

/// The GMM's configuration at fine size `h x w`, the TPS grid size read from the
/// checkpoint (`regression.linear` outputs `2 grid_size^2` offsets; 5 in the released
/// model, `--opt grid_size=N` in `vton train gmm`).
fn gmm_config(path: &Path, h: usize, w: usize) -> Result<GmmConfig> {
    let key = "regression.linear.weight";
    let ckpt = Checkpoint::open(path)?.rooted_at("extractionA.model.0.weight");
    let out = ckpt
        .shape(key)
        .and_then(|s| s.first().copied())
        .ok_or_else(|| VtonError::MissingWeights {
            source_name: ckpt.name().to_string(),
            count: 1,
            keys: key.into(),
        })?;
    let g = (1..=out).find(|g| 2 * g * g >= out).unwrap_or(0);
    if g == 0 || 2 * g * g != out {
        return Err(VtonError::WeightShape {
            key: key.into(),
            expected: vec![2 * GmmConfig::default().grid_size.pow(2)],
            found: vec![out],
        });
    }
    Ok(GmmConfig {
        grid_size: g,
        fine_height: h,
        fine_width: w,
    })
}

pub fn load_cpvton(a: &GanArgs, weights: Option<&Path>, device: &Device) -> Result<CPVTONPipeline> {
    let gmm = find_checkpoint(&a.gmm, weights, &["gmm_final.pth", "gmm.pth"], "--gmm")?;
    let tom = find_checkpoint(&a.tom, weights, &["tom_final.pth", "tom.pth"], "--tom")?;
    let (h, w) = cpvton_fine_size(a)?;
    let gmm_config = gmm_config(&gmm, h, w)?;
    CPVTONPipeline::from_checkpoints(
        gmm,
        tom,
        gmm_config,
        TomConfig {
            ngf: a.ngf,
            ..TomConfig::default()
        },
        CpvtonOptions {
            align_corners: a.align_corners,
            ..CpvtonOptions::default()
        },
        device,
    )
}

pub fn load_hrviton(
    a: &GanArgs,
    weights: Option<&Path>,
    device: &Device,
) -> Result<HRVitonPipeline> {
    let tocg = find_checkpoint(
        &a.tocg,
        weights,
        &["mtviton.pth", "tocg.pth", "tocg_final.pth"],
        "--tocg",
    )?;
    let gen = find_checkpoint(
        &a.generator,
        weights,
        &["gen.pth", "gen_final.pth"],
        "--generator",
    )?;
    let (h, w) = a
        .fine_size
        .as_deref()
        .map(|s| parse_size(s, "--fine-size"))
        .transpose()?
        .unwrap_or((1024, 768));
    HRVitonPipeline::from_checkpoints(
        tocg,
        gen,
        ConditionGeneratorConfig {
            ngf: a.tocg_ngf,
            ..ConditionGeneratorConfig::default()
        },
        HRVitonGeneratorConfig {
            ngf: a.ngf,
            fine_height: h,
            fine_width: w,
            ..HRVitonGeneratorConfig::default()
        },
        HRVitonOptions::default(),
        device,
    )
}

/// What `try-on --method cpvton|hrviton` needs from the command line.
pub struct TryOnFiles<'a> {
    pub person: Option<&'a Path>,
    pub keypoints: Option<&'a Path>,
    pub person_mask: Option<&'a Path>,
    pub parse: Option<&'a Path>,
    pub garment: Option<&'a Path>,
    pub garment_mask: Option<&'a Path>,
    pub parse_agnostic: Option<&'a Path>,
    pub densepose: Option<&'a Path>,
    pub agnostic: Option<&'a Path>,
    /// SCHP checkpoint or SegFormer folder: estimate the parse map when none is given.
    pub parser: Option<&'a Path>,
    /// Which person of a photo or keypoint file.
    pub selection: PersonSelection,
}

impl TryOnFiles<'_> {
    /// The person-side inputs given as files (absent ones are estimated later).
    pub(crate) fn partial(&self, person: &Path, method: &str) -> Result<PartialInputs> {
        PartialInputs::from_paths(
            person,
            self.keypoints,
            self.person_mask,
            self.parse,
            need(self.garment, "--garment", method)?,
            self.garment_mask,
            self.selection,
        )
    }

    /// The estimators: bundled pose models, SCHP when --parser is given.
    pub(crate) fn preprocessor(&self, device: &Device) -> Result<Preprocessor> {
        let mut pre = Preprocessor::bundled(device)?.with_selection(self.selection);
        if let Some(p) = self.parser {
            // A folder: a Hugging Face SegFormer; a file: an SCHP checkpoint.
            let parser = if p.is_dir() {
                HumanParser::from_pretrained(p, device)?
            } else {
                HumanParser::from_checkpoint(p, device)?
            };
            pre = pre.with_parser(parser);
        }
        Ok(pre)
    }
}

pub(crate) fn need<'a>(p: Option<&'a Path>, flag: &str, method: &str) -> Result<&'a Path> {
    p.ok_or_else(|| VtonError::invalid(flag, format!("is required by --method {method}")))
}

/// Runs one try-on; returns (result, garment, warped garment) for saving.
pub fn try_on(
    method: &str,
    f: &TryOnFiles,
    a: &GanArgs,
    weights: Option<&Path>,
    device: &Device,
) -> Result<(RgbImage, RgbImage, RgbImage)> {
    match method {
        "cpvton" => {
            // Keypoints, person mask, parse (with --parser) and garment mask are
            // estimated when not given; given files take precedence.
            let partial = f.partial(need(f.person, "--person", method)?, method)?;
            let needs_parse = f.parser.is_some() && partial.parse.is_none();
            let inputs = if partial.needs_pose() || needs_parse || partial.garment_mask.is_none() {
                let pre = f.preprocessor(device)?;
                let mut inputs = pre.complete(partial)?;
                if inputs.garment_mask.is_none() {
                    inputs.garment_mask = Some(pre.garment_mask(&inputs.garment)?);
                }
                inputs
            } else {
                partial.into_inputs()?
            };
            let TryOnInputs {
                person,
                pose,
                person_mask: pmask,
                parse,
                garment,
                garment_mask,
                ..
            } = inputs;
            let gmask = garment_mask.ok_or_else(|| {
                VtonError::invalid("--garment-mask", "no garment mask given or estimated")
            })?;
            let pipe = load_cpvton(a, weights, device)?;
            let (h, w) = pipe.fine_size();
            let p = CpvtonPerson::prepare(&person, &pose, parse.as_ref(), pmask.as_ref(), w, h)?;
            let r = pipe.try_on(&p, &garment, &gmask, device)?;
            Ok((r.image, garment, r.warped_cloth))
        }
        "hrviton" => {
            let cloth = read_image(need(f.garment, "--garment", method)?)?;
            let densepose = read_image(need(f.densepose, "--densepose", method)?)?;
            // Estimators are loaded only when an input has to be estimated.
            let pre =
                if f.garment_mask.is_none() || f.parse_agnostic.is_none() || f.agnostic.is_none() {
                    Some(f.preprocessor(device)?)
                } else {
                    None
                };
            let cloth_mask = match (f.garment_mask, &pre) {
                (Some(m), _) => read_mask(m)?,
                (None, Some(p)) => p.garment_mask(&cloth)?,
                (None, None) => return Err(VtonError::invalid("--garment-mask", "missing")),
            };
            // The parse-agnostic map and the agnostic image are made from the person
            // photo (keypoints and parse given or estimated) when not given.
            let (parse_agnostic, agnostic) = match (f.parse_agnostic, f.agnostic) {
                (Some(pa), Some(ag)) => (ParseMap::read(pa)?, read_image(ag)?),
                (pa, ag) => {
                    let person = f.person.ok_or_else(|| {
                        VtonError::invalid(
                            "--parse-agnostic",
                            "give --parse-agnostic and --agnostic, or --person with --parse or \
                             --parser to make them",
                        )
                    })?;
                    let partial = f.partial(person, method)?;
                    let Some(p) = &pre else {
                        return Err(VtonError::invalid("--parse-agnostic", "missing"));
                    };
                    let inputs = p.complete(partial)?;
                    let parse = inputs.parse.as_ref().ok_or_else(|| {
                        VtonError::invalid(
                            "--parser",
                            "HR-VITON's parse-agnostic input needs a LIP parse: give --parse \
                             or an SCHP checkpoint with --parser",
                        )
                    })?;
                    let pa = match pa {
                        Some(pa) => ParseMap::read(pa)?,
                        None => parse_agnostic(parse, &inputs.pose)?,
                    };
                    let ag = match ag {
                        Some(ag) => read_image(ag)?,
                        None => agnostic_image(
                            &inputs.person,
                            &agnostic_from_parse(parse, &inputs.pose, GarmentCategory::UpperBody)?,
                        )?,
                    };
                    (pa, ag)
                }
            };
            let images = HRVitonImages {
                cloth,
                cloth_mask,
                parse_agnostic,
                densepose,
                agnostic,
            };
            let pipe = load_hrviton(a, weights, device)?;
            let r = pipe.try_on(&images, &mut noise(a)?, device)?;
            Ok((r.image, images.cloth, r.warped_cloth))
        }
        other => Err(VtonError::invalid(
            "--method",
            format!("unknown method {other:?}"),
        )),
    }
}

/// `vton run-dataset`.
#[derive(Args)]
pub struct RunDatasetArgs {
    /// hrviton or cpvton.
    #[arg(long)]
    pub model: String,
    /// Folder with the checkpoints (or give them one by one).
    #[arg(long)]
    pub weights: Option<PathBuf>,
    /// VITON-HD-layout test set (test_pairs.txt, [test/]image/, cloth/, ...).
    #[arg(long)]
    pub data: PathBuf,
    /// Output folder; results are <person>_<cloth>.png. With --stage gmm: where
    /// warp-cloth/ and warp-mask/ go (default: the data folder, beside image/, where
    /// `vton train tom` reads them).
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// unpaired (the pairs file's garments; the default) or paired (each person's own
    /// garment). --stage gmm warps the pairs file's garments, as test.py does.
    #[arg(long)]
    pub mode: Option<String>,
    /// Pairs file inside --data (default: test_pairs.txt; with --stage gmm the one
    /// `vton train` picks: train_pairs.txt, else test_pairs.txt).
    #[arg(long)]
    pub pairs: Option<String>,
    /// cpvton: all (GMM then TOM, the try-on) or gmm (the GMM alone, as CP-VTON+'s
    /// test.py --stage GMM: writes warp-cloth/ and warp-mask/ for `vton train tom`).
    #[arg(long, default_value = "all")]
    pub stage: String,
    /// Redo pairs whose result already exists (default: skip them, i.e. resume).
    #[arg(long)]
    pub overwrite: bool,
    /// Stop after this many pairs.
    #[arg(long)]
    pub limit: Option<usize>,
    /// Device: cpu (default), wgpu, cuda[:N].
    #[arg(long, default_value = "cpu")]
    pub device: String,
    #[command(flatten)]
    pub gan: GanArgs,
}

enum Loaded {
    Cp(CPVTONPipeline),
    Hr(HRVitonPipeline),
}

pub fn run_dataset(a: RunDatasetArgs) -> Result<()> {
    match (a.stage.as_str(), a.model.as_str()) {
        ("all", _) => {}
        ("gmm", "cpvton") => return write_warps(&a),
        ("gmm", other) => {
            return Err(VtonError::invalid(
                "--stage",
                format!("gmm is a CP-VTON+ stage (--model cpvton), not {other:?}'s"),
            ))
        }
        (other, _) => {
            return Err(VtonError::invalid(
                "--stage",
                format!("{other:?} is not one of all, gmm"),
            ))
        }
    }
    let out = a
        .out
        .clone()
        .ok_or_else(|| VtonError::invalid("--out", "the results folder is required"))?;
    let device = device_from_name(&a.device)?;
    let mode = PairMode::from_name(a.mode.as_deref().unwrap_or("unpaired"))?;
    let ds = VitonHdDataset::open(
        &a.data,
        Some(a.pairs.as_deref().unwrap_or("test_pairs.txt")),
    )?;
    let model = match a.model.as_str() {
        "cpvton" => Loaded::Cp(load_cpvton(&a.gan, a.weights.as_deref(), &device)?),
        "hrviton" => Loaded::Hr(load_hrviton(&a.gan, a.weights.as_deref(), &device)?),
        o => {
            return Err(VtonError::invalid(
                "--model",
                format!("{o:?} is not one of hrviton, cpvton"),
            ))
        }
    };
    std::fs::create_dir_all(&out).map_err(|e| VtonError::Io {
        path: out.clone(),
        source: e,
    })?;
    let mut pairs = ds.pairs(mode);
    if let Some(n) = a.limit {
        pairs.truncate(n);
    }
    let todo: Vec<_> = pairs
        .iter()
        .filter(|p| a.overwrite || !out.join(p.output_name()).is_file())
        .cloned()
        .collect();
    let skipped = pairs.len() - todo.len();
    if skipped > 0 {
        println!(
            "resuming: {skipped} of {} results already in {}",
            pairs.len(),
            out.display()
        );
    }
    let bar = ProgressBar::new(todo.len() as u64);
    bar.set_style(
        ProgressStyle::with_template("{msg} [{bar:30}] {pos}/{len} pairs ({elapsed}, eta {eta})")
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    bar.set_message(a.model.clone());
    for pair in &todo {
        let image = match &model {
            Loaded::Cp(pipe) => {
                let s = ds.cpvton_sample(pair)?;
                let (h, w) = pipe.fine_size();
                let p = CpvtonPerson::prepare(&s.person, &s.pose, Some(&s.parse), None, w, h)?;
                pipe.try_on(&p, &s.cloth, &s.cloth_mask, &device)?.image
            }
            Loaded::Hr(pipe) => {
                let s = ds.hrviton_sample(pair)?;
                pipe.try_on(&s, &mut noise(&a.gan)?, &device)?.image
            }
        };
        // Written under a temporary name and renamed, so an interrupted run never leaves
        // a partial file that a resumed run would skip.
        let dst = out.join(pair.output_name());
        let tmp = out.join(format!(".{}.partial.png", pair.output_name()));
        image.save_png(&tmp)?;
        std::fs::rename(&tmp, &dst).map_err(|e| VtonError::Io {
            path: dst.clone(),
            source: e,
        })?;
        bar.inc(1);
    }
    bar.finish();
    println!(
        "{} written, {skipped} skipped, results in {}",
        todo.len(),
        out.display()
    );
    Ok(())
}

/// The data folder and pairs file of `--stage gmm`: `--pairs` inside `--data` with the
/// folders in `--data/<train|test>/` (from the pairs file's name) when that holds
/// `image/`, else in `--data`; without `--pairs`, [`DataLayout::detect`] (what
/// `vton train` opens).
fn warp_layout(a: &RunDatasetArgs) -> Result<DataLayout> {
    let Some(pairs) = &a.pairs else {
        return DataLayout::detect(&a.data);
    };
    let file = a.data.join(pairs);
    if !file.is_file() {
        return Err(VtonError::FileNotFound { path: file });
    }
    let mode = Path::new(pairs)
        .file_stem()
        .and_then(|s| s.to_str())
        .and_then(|s| s.strip_suffix("_pairs"))
        .filter(|m| !m.is_empty());
    let data = match mode {
        Some(m) if a.data.join(m).join("image").is_dir() => a.data.join(m),
        _ => a.data.clone(),
    };
    Ok(DataLayout::new(file, data))
}

/// `save_images`' 8-bit conversion: `((x + 1) * 0.5 * 255).clamp(0, 255)` truncated.
fn to_u8_like_save_images(x: f32) -> u8 {
    ((x + 1.0) * 0.5 * 255.0).clamp(0.0, 255.0) as u8
}

/// Writes an 8-bit image (`channels` 1 or 3, interleaved) as PIL's `Image.save` would by
/// the file name's extension: JPEG (quality 75, PIL's default) or PNG; atomically
/// (temporary file, rename), so an interrupted run never leaves a partial file that a
/// resumed run would skip. A grey JPEG is written with three equal channels (vton's
/// encoder has no grey JPEG; readers converting to grey, as `cp_dataset.py`'s
/// `.convert('L')`, get the same levels).
fn save_like_pil(
    path: &Path,
    width: usize,
    height: usize,
    channels: usize,
    px: &[u8],
) -> Result<()> {
    let name = path.display().to_string();
    let ext = path
        .extension()
        .and_then(|e| e.to_str())
        .map(|e| e.to_ascii_lowercase())
        .unwrap_or_default();
    let rgb = |px: &[u8]| -> Vec<u8> {
        if channels == 1 {
            px.iter().flat_map(|&v| [v, v, v]).collect()
        } else {
            px.to_vec()
        }
    };
    match ext.as_str() {
        "jpg" | "jpeg" => RgbImage::from_rgb8(width, height, &rgb(px))?.save_jpeg(path, 75),
        "png" if channels == 1 => Mask::from_u8(width, height, px)?.save_png(path),
        "png" => RgbImage::from_rgb8(width, height, px)?.save_png(path),
        _ => Err(VtonError::invalid(
            name,
            "the warped garment is saved under the person's name, which needs a .jpg, .jpeg \
             or .png extension",
        )),
    }
}

/// `[1, C, H, W]` in `[-1, 1]` to interleaved 8-bit pixels.
fn tensor_pixels(t: vton_core::burn::tensor::Tensor<4>) -> Result<(usize, usize, usize, Vec<u8>)> {
    let [_, c, h, w] = t.dims();
    let v = vton_core::io::image::tensor_to_vec(t)?;
    let n = h * w;
    let mut px = vec![0u8; c * n];
    for ch in 0..c {
        for p in 0..n {
            px[p * c + ch] = to_u8_like_save_images(v[ch * n + p]);
        }
    }
    Ok((c, h, w, px))
}

/// `vton run-dataset --model cpvton --stage gmm`.
fn write_warps(a: &RunDatasetArgs) -> Result<()> {
    if let Some(m) = a.mode.as_deref() {
        if m != "unpaired" {
            return Err(VtonError::invalid(
                "--mode",
                format!(
                    "{m:?}: --stage gmm warps the garments the pairs file names (test.py's \
                     data_list); give a paired list (train_pairs.txt is) with --pairs"
                ),
            ));
        }
    }
    let device = device_from_name(&a.device)?;
    let (h, w) = cpvton_fine_size(&a.gan)?;
    let gmm_path = find_checkpoint(
        &a.gan.gmm,
        a.weights.as_deref(),
        &["gmm_final.pth", "gmm.pth"],
        "--gmm",
    )?;
    let gmm = Gmm::from_checkpoint(&gmm_path, gmm_config(&gmm_path, h, w)?, &device)?;
    let layout = warp_layout(a)?;
    let out = a.out.clone().unwrap_or_else(|| layout.data.clone());
    // test.py's CPDataset with stage GMM (opt.radius 5, as CpvtonOptions).
    let radius = vton_core::pipelines::cpvton::CpvtonOptions::default().radius as f32;
    let ds = CpvtonDataset::open_layout(layout, CpvtonStage::Gmm, h, w, radius)?;
    let (cloth_dir, mask_dir) = (out.join("warp-cloth"), out.join("warp-mask"));
    let mut todo: Vec<usize> = (0..ds.len()).collect();
    if let Some(n) = a.limit {
        todo.truncate(n);
    }
    let total = todo.len();
    todo.retain(|&i| {
        let name = &ds.pairs()[i].0;
        a.overwrite || !(cloth_dir.join(name).is_file() && mask_dir.join(name).is_file())
    });
    let skipped = total - todo.len();
    if skipped > 0 {
        println!(
            "resuming: {skipped} of {total} warped garments already in {}",
            out.display()
        );
    }
    let bar = ProgressBar::new(todo.len() as u64);
    bar.set_style(
        ProgressStyle::with_template("{msg} [{bar:30}] {pos}/{len} pairs ({elapsed}, eta {eta})")
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    bar.set_message("cpvton gmm");
    let ac = a.gan.align_corners;
    for &i in &todo {
        let sample = ds.get(i)?;
        let name = sample.im_name.clone();
        let b = collate(&[sample], &device)?;
        let get = |k: &str| {
            b.get(k)
                .cloned()
                .ok_or_else(|| VtonError::invalid(k.to_string(), "missing from the GMM sample"))
        };
        let (agnostic, cloth, cm) = (get("agnostic")?, get("cloth")?, get("cloth_mask")?);
        let g = gmm.forward(agnostic, cm.clone())?;
        let warped_cloth = grid_sample(
            cloth,
            g.grid.clone(),
            GridSampleOptions::new(SampleMode::Bilinear, PaddingMode::Border, ac),
        )?;
        let warped_mask = grid_sample(
            cm,
            g.grid,
            GridSampleOptions::new(SampleMode::Bilinear, PaddingMode::Zeros, ac),
        )?;
        for (dir, t) in [
            (&cloth_dir, warped_cloth),
            (&mask_dir, warped_mask.mul_scalar(2.0).sub_scalar(1.0)),
        ] {
            let (c, hh, ww, px) = tensor_pixels(t)?;
            save_like_pil(&dir.join(&name), ww, hh, c, &px)?;
        }
        bar.inc(1);
    }
    bar.finish();
    println!(
        "{} written, {skipped} skipped, warp-cloth/ and warp-mask/ in {} ({w}x{h}, align_corners={ac})",
        todo.len(),
        out.display()
    );
    Ok(())
}
