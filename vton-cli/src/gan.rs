//! CP-VTON+ and HR-VITON in the command line: `vton try-on --method cpvton|hrviton` and
//! `vton run-dataset` over a VITON-HD-layout test set (progress bar, paired/unpaired,
//! resumes by skipping results already written).

use std::path::{Path, PathBuf};

use clap::Args;
use indicatif::{ProgressBar, ProgressStyle};
use vton_core::burn::tensor::Device;
use vton_core::io::vitonhd::{PairMode, VitonHdDataset};
use vton_core::io::{read_image, read_mask, ParseMap, PersonSelection, RgbImage};
use vton_core::masks::{agnostic_from_parse, agnostic_image, parse_agnostic, GarmentCategory};
use vton_core::models::cpvton::{GmmConfig, TomConfig};
use vton_core::models::hrviton::{ConditionGeneratorConfig, HRVitonGeneratorConfig, SpadeNoise};
use vton_core::pipelines::cpvton::{CPVTONPipeline, CpvtonOptions, CpvtonPerson};
use vton_core::pipelines::geometric::TryOnInputs;
use vton_core::pipelines::hrviton::{HRVitonImages, HRVitonOptions, HRVitonPipeline};
use vton_core::pipelines::parsing::HumanParser;
use vton_core::pipelines::preprocess::{PartialInputs, Preprocessor};
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

pub fn load_cpvton(a: &GanArgs, weights: Option<&Path>, device: &Device) -> Result<CPVTONPipeline> {
    let gmm = find_checkpoint(&a.gmm, weights, &["gmm_final.pth", "gmm.pth"], "--gmm")?;
    let tom = find_checkpoint(&a.tom, weights, &["tom_final.pth", "tom.pth"], "--tom")?;
    let (h, w) = a
        .fine_size
        .as_deref()
        .map(|s| parse_size(s, "--fine-size"))
        .transpose()?
        .unwrap_or((256, 192));
    CPVTONPipeline::from_checkpoints(
        gmm,
        tom,
        GmmConfig {
            fine_height: h,
            fine_width: w,
            ..GmmConfig::default()
        },
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
    /// SCHP checkpoint: estimate the parse map when none is given.
    pub parser: Option<&'a Path>,
    /// Which person of a photo or keypoint file.
    pub selection: PersonSelection,
}

impl TryOnFiles<'_> {
    /// The person-side inputs given as files (absent ones are estimated later).
    fn partial(&self, person: &Path, method: &str) -> Result<PartialInputs> {
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
    fn preprocessor(&self, device: &Device) -> Result<Preprocessor> {
        let mut pre = Preprocessor::bundled(device)?.with_selection(self.selection);
        if let Some(p) = self.parser {
            pre = pre.with_parser(HumanParser::from_checkpoint(p, device)?);
        }
        Ok(pre)
    }
}

fn need<'a>(p: Option<&'a Path>, flag: &str, method: &str) -> Result<&'a Path> {
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
    /// Output folder; results are <person>_<cloth>.png.
    #[arg(long)]
    pub out: PathBuf,
    /// unpaired (the pairs file's garments) or paired (each person's own garment).
    #[arg(long, default_value = "unpaired")]
    pub mode: String,
    /// Pairs file inside --data.
    #[arg(long, default_value = "test_pairs.txt")]
    pub pairs: String,
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
    let device = device_from_name(&a.device)?;
    let mode = PairMode::from_name(&a.mode)?;
    let ds = VitonHdDataset::open(&a.data, Some(&a.pairs))?;
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
    std::fs::create_dir_all(&a.out).map_err(|e| VtonError::Io {
        path: a.out.clone(),
        source: e,
    })?;
    let mut pairs = ds.pairs(mode);
    if let Some(n) = a.limit {
        pairs.truncate(n);
    }
    let todo: Vec<_> = pairs
        .iter()
        .filter(|p| a.overwrite || !a.out.join(p.output_name()).is_file())
        .cloned()
        .collect();
    let skipped = pairs.len() - todo.len();
    if skipped > 0 {
        println!(
            "resuming: {skipped} of {} results already in {}",
            pairs.len(),
            a.out.display()
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
        let dst = a.out.join(pair.output_name());
        let tmp = a.out.join(format!(".{}.partial.png", pair.output_name()));
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
        a.out.display()
    );
    Ok(())
}
