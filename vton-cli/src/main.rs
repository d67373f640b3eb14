//! `vton`: the command-line front end.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};
use vton_core::io::PersonSelection;
use vton_core::io::RgbImage;
use vton_core::masks::GarmentCategory;
use vton_core::pipelines::geometric::GeometricTryOn;
use vton_core::pipelines::parsing::HumanParser;
use vton_core::pipelines::preprocess::{PartialInputs, Preprocessor};
use vton_core::{device_from_name, Result, VtonError};

mod dci;
mod diffusion;
mod eval;
mod gan;
mod preprocess;
mod run_batch;
mod serve;
mod train;

#[derive(Parser)]
#[command(
    name = "vton",
    version,
    about = "Virtual try-on: put a garment photo onto a person photo"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Try a garment on a person (with no input arguments: the bundled example).
    TryOn(TryOnArgs),
    /// Run CP-VTON+ or HR-VITON over a VITON-HD-layout test set.
    RunDataset(gan::RunDatasetArgs),
    /// Estimate keypoints, landmarks, person masks (and parse maps with --parser) of
    /// person photos and masks of garment photos, flat or as a VITON-HD folder.
    Preprocess(preprocess::PreprocessArgs),
    /// Evaluate generated images against ground truth: SSIM, MS-SSIM, PSNR, LPIPS (paired
    /// by file name), FID and KID (over the two sets), each under a named convention.
    Eval(eval::EvalArgs),
    /// Train GMM, TOM (CP-VTON+), the HR-VITON condition generator or a diffusion U-Net
    /// as the original scripts do, with checkpoints, resume and validation.
    Train(train::TrainArgs),
    /// Serve try-on over HTTP (REST API: health, try-on, OpenAPI, Prometheus metrics).
    Serve(serve::ServeArgs),
    /// Try on a catalogue of pairs (`PERSON GARMENT [key=PATH ...]` a line) into a
    /// folder, resumable: the same try-on as `vton serve`, on this machine.
    RunBatch(run_batch::RunBatchArgs),
}

#[derive(Args)]
struct TryOnArgs {
    /// Person photo (PNG or JPEG).
    #[arg(long)]
    person: Option<PathBuf>,
    /// OpenPose JSON of the person (BODY_25 or COCO-18); estimated from the photo with
    /// the bundled MediaPipe pose models when absent.
    #[arg(long)]
    keypoints: Option<PathBuf>,
    /// Person mask (grey PNG, person = white); estimated when absent (and no --parse).
    #[arg(long)]
    person_mask: Option<PathBuf>,
    /// SCHP checkpoint (exp-schp-201908261155-lip.pth): estimate the parse map when no
    /// --parse is given.
    #[arg(long)]
    parser: Option<PathBuf>,
    /// Which person when the photo or keypoint file has several: the largest (default)
    /// or this index.
    #[arg(long)]
    person_index: Option<usize>,
    /// LIP / VITON-HD label map of the person (PNG); used for the agnostic mask when given.
    #[arg(long)]
    parse: Option<PathBuf>,
    /// Garment product photo.
    #[arg(long)]
    garment: Option<PathBuf>,
    /// Garment mask (estimated from the photo's background when absent).
    #[arg(long)]
    garment_mask: Option<PathBuf>,
    /// Garment category: upper_body (lower_body and dresses are not implemented yet).
    #[arg(long, default_value = "upper_body")]
    category: String,
    /// Output image.
    #[arg(long, default_value = "out/tryon.png")]
    out: PathBuf,
    /// Also write agnostic_mask.png, warped_garment.png and warped_mask.png here.
    #[arg(long)]
    save_intermediates: Option<PathBuf>,
    /// Also write person | garment | result side by side to this file.
    #[arg(long)]
    panel: Option<PathBuf>,
    /// geometric (no weights), catvton or inpaint (diffusers inpainting pipeline folder
    /// in --weights), cpvton (gmm_final.pth + tom_final.pth) or hrviton (mtviton.pth +
    /// gen.pth), dci-viton (DanMenCas/DCI-VITON: the warping and U-Net checkpoints and a
    /// vae/ folder; needs --densepose and a parse).
    #[arg(long, default_value = "geometric")]
    method: String,
    /// Weights: a diffusers inpainting pipeline folder (vae/, unet/, scheduler/), or the
    /// folder holding the CP-VTON+ / HR-VITON checkpoints.
    #[arg(long)]
    weights: Option<PathBuf>,
    /// HR-VITON: parse-agnostic label map (image-parse-agnostic-v3.2).
    #[arg(long)]
    parse_agnostic: Option<PathBuf>,
    /// HR-VITON: DensePose image (image-densepose).
    #[arg(long)]
    densepose: Option<PathBuf>,
    /// HR-VITON: agnostic person image (agnostic-v3.2).
    #[arg(long)]
    agnostic: Option<PathBuf>,
    #[command(flatten)]
    gan: gan::GanArgs,
    #[command(flatten)]
    dci: dci::DciArgs,
    /// CatVTON's attention checkpoint (file or folder), loaded on top of --weights' U-Net.
    #[arg(long)]
    attn_checkpoint: Option<PathBuf>,
    /// catvton / inpaint: a fine-tuned U-Net in place of --weights' unet/ (a `vton train
    /// unet` checkpoint's unet.safetensors / unet.pth, read with --weights' unet/config.json,
    /// or a diffusers U-Net folder).
    #[arg(long)]
    unet: Option<PathBuf>,
    /// catvton / inpaint: the element type the U-Net and VAE weights are kept in: float32
    /// (default), float16 or bfloat16 (torch's names; half the weights' memory, computation
    /// stays float32).
    #[arg(long)]
    dtype: Option<String>,
    /// catvton / inpaint: the diffusers weight-file variant to read (fp16 reads
    /// diffusion_pytorch_model.fp16.safetensors, as diffusers' variant="fp16").
    #[arg(long)]
    variant: Option<String>,
    /// Denoising steps (default: 50; dci-viton: 200, as the original).
    #[arg(long)]
    steps: Option<usize>,
    /// Classifier-free guidance scale.
    #[arg(long, default_value_t = 2.5)]
    guidance: f32,
    /// Seed of the initial noise (same seed, same result).
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Inpaint method: start from the noised warped composite with this strength (0-1].
    #[arg(long)]
    strength: Option<f32>,
    /// Working resolution HEIGHTxWIDTH for diffusion methods (default: the person's size
    /// rounded down to multiples of 64).
    #[arg(long)]
    size: Option<String>,
    /// Device: cpu (default), wgpu, cuda[:N] (when built with those features).
    #[arg(long, default_value = "cpu")]
    device: String,
}

/// The bundled example, relative to the workspace root (compile-time path, so
/// `cargo run` works from any directory of the checkout).
fn example_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .join("examples")
}

fn panel(images: &[&RgbImage], height: usize) -> RgbImage {
    let scaled: Vec<RgbImage> = images
        .iter()
        .map(|im| im.resize((im.width * height / im.height).max(1), height))
        .collect();
    let width: usize = scaled.iter().map(|s| s.width).sum();
    let mut out = RgbImage::filled(width, height, [1.0, 1.0, 1.0]);
    let mut x0 = 0;
    for s in &scaled {
        for y in 0..height {
            for x in 0..s.width {
                let (src, dst) = ((y * s.width + x) * 3, (y * width + x0 + x) * 3);
                out.data[dst..dst + 3].copy_from_slice(&s.data[src..src + 3]);
            }
        }
        x0 += s.width;
    }
    out
}

fn try_on_gan(args: &TryOnArgs) -> Result<()> {
    let files = gan::TryOnFiles {
        person: args.person.as_deref(),
        keypoints: args.keypoints.as_deref(),
        person_mask: args.person_mask.as_deref(),
        parse: args.parse.as_deref(),
        garment: args.garment.as_deref(),
        garment_mask: args.garment_mask.as_deref(),
        parse_agnostic: args.parse_agnostic.as_deref(),
        densepose: args.densepose.as_deref(),
        agnostic: args.agnostic.as_deref(),
        parser: args.parser.as_deref(),
        selection: match args.person_index {
            Some(i) => PersonSelection::Index(i),
            None => PersonSelection::Largest,
        },
    };
    let device = device_from_name(&args.device)?;
    let (image, garment, warped) = if args.method == "dci-viton" {
        dci::try_on(
            &files,
            &args.dci,
            args.weights.as_deref(),
            args.steps.unwrap_or(200),
            args.seed,
            &device,
        )?
    } else {
        gan::try_on(
            &args.method,
            &files,
            &args.gan,
            args.weights.as_deref(),
            &device,
        )?
    };
    image.save_png(&args.out)?;
    println!("wrote {}", args.out.display());
    if let Some(dir) = &args.save_intermediates {
        warped.save_png(dir.join("warped_garment.png"))?;
        println!("wrote intermediates to {}", dir.display());
    }
    if let Some(p) = &args.panel {
        panel(&[&garment, &image], image.height).save_png(p)?;
        println!("wrote {}", p.display());
    }
    Ok(())
}

fn try_on(args: TryOnArgs) -> Result<()> {
    if args.unet.is_some() && !matches!(args.method.as_str(), "catvton" | "inpaint") {
        return Err(VtonError::invalid(
            "--unet",
            format!(
                "only the catvton and inpaint methods take a U-Net, not {}",
                args.method
            ),
        ));
    }
    for (flag, given) in [
        ("--dtype", args.dtype.is_some()),
        ("--variant", args.variant.is_some()),
    ] {
        if given && !matches!(args.method.as_str(), "catvton" | "inpaint") {
            return Err(VtonError::invalid(
                flag,
                format!(
                    "only the catvton and inpaint methods take {flag}, not {}",
                    args.method
                ),
            ));
        }
    }
    if matches!(args.method.as_str(), "cpvton" | "hrviton" | "dci-viton") {
        return try_on_gan(&args);
    }
    let any_input = args.person.is_some() || args.garment.is_some() || args.keypoints.is_some();
    let (person, keypoints, person_mask, garment, garment_mask, panel_path) = if any_input {
        let need = |p: Option<PathBuf>, name: &str| {
            p.ok_or_else(|| vton_core::VtonError::InvalidArgument {
                name: name.into(),
                message: "is required when any input is given".into(),
            })
        };
        (
            need(args.person.clone(), "--person")?,
            args.keypoints.clone(),
            args.person_mask.clone(),
            need(args.garment.clone(), "--garment")?,
            args.garment_mask.clone(),
            args.panel.clone(),
        )
    } else {
        let ex = example_dir();
        println!(
            "no inputs given: using the bundled example in {}",
            ex.display()
        );
        // Two photos only: keypoints, person mask and garment mask are estimated.
        (
            ex.join("person/openvto_ai_avatar1_upper.png"),
            None,
            None,
            ex.join("garment/openvto_shirt2_front.png"),
            None,
            Some(
                args.panel
                    .clone()
                    .unwrap_or_else(|| args.out.with_file_name("panel.png")),
            ),
        )
    };
    let selection = match args.person_index {
        Some(i) => PersonSelection::Index(i),
        None => PersonSelection::Largest,
    };
    let mut partial = PartialInputs::from_paths(
        &person,
        keypoints.as_ref(),
        person_mask.as_ref(),
        args.parse.as_ref(),
        &garment,
        garment_mask.as_ref(),
        selection,
    )?;
    partial.category = GarmentCategory::from_name(&args.category)?;
    let device = device_from_name(&args.device)?;
    let inputs = if partial.needs_pose() || (args.parser.is_some() && partial.parse.is_none()) {
        let mut pre = Preprocessor::bundled(&device)?.with_selection(selection);
        if let Some(p) = &args.parser {
            pre = pre.with_parser(HumanParser::from_checkpoint(p, &device)?);
        }
        if partial.needs_pose() {
            println!("estimating keypoints and person mask with the bundled MediaPipe pose models");
        }
        pre.complete(partial)?
    } else {
        partial.into_inputs()?
    };
    let out = match args.method.as_str() {
        "geometric" => GeometricTryOn::default().run(&inputs, &device)?,
        _ => {
            let weights = args.weights.as_ref().ok_or_else(|| {
                VtonError::invalid(
                    "--weights",
                    format!("method {} needs a pipeline folder", args.method),
                )
            })?;
            diffusion::run(&args, weights, &inputs, &device)?
        }
    };
    out.image.save_png(&args.out)?;
    println!("wrote {}", args.out.display());
    if let Some(dir) = args.save_intermediates {
        out.agnostic_mask.save_png(dir.join("agnostic_mask.png"))?;
        out.warped_garment
            .save_png(dir.join("warped_garment.png"))?;
        out.warped_mask.save_png(dir.join("warped_mask.png"))?;
        println!("wrote intermediates to {}", dir.display());
    }
    if let Some(p) = panel_path {
        panel(
            &[&inputs.person, &inputs.garment, &out.image],
            inputs.person.height,
        )
        .save_png(&p)?;
        println!("wrote {}", p.display());
    }
    Ok(())
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::TryOn(args) => try_on(args),
        Command::RunDataset(args) => gan::run_dataset(args),
        Command::Preprocess(args) => preprocess::run(args),
        Command::Eval(args) => eval::run(args),
        Command::Train(args) => train::run_train(args),
        Command::Serve(args) => serve::run(args),
        Command::RunBatch(args) => run_batch::run(args),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}
