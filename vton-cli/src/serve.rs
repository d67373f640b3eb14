//! `vton serve`: the flags, and the model loader handed to `vton_serve::run` (the same
//! loaders `vton try-on` uses: the diffusion try-on, `gan::load_cpvton` / `load_hrviton`).
//! [`ModelArgs`] and [`load_engine`] are shared with `vton run-batch`.

use std::path::PathBuf;
use std::time::Duration;

use clap::Args;
use vton_core::burn::tensor::Device;
use vton_core::pipelines::diffusion::{DiffusionMethod, DiffusionTryOn};
use vton_core::pipelines::geometric::GeometricTryOn;
use vton_core::pipelines::preprocess::Preprocessor;
use vton_core::{device_from_name, Result, VtonError};
use vton_serve::{Config, Engine, Model};

use crate::gan;

/// The model a server or a batch run loads: `vton serve`'s and `vton run-batch`'s
/// model-selection flags.
#[derive(Args)]
pub struct ModelArgs {
    /// geometric (no weights), catvton, inpaint, cpvton or hrviton.
    #[arg(long, default_value = "geometric")]
    pub method: String,
    /// Weights: a diffusers inpainting pipeline folder, or the folder holding the
    /// CP-VTON+ / HR-VITON checkpoints.
    #[arg(long)]
    pub weights: Option<PathBuf>,
    /// CatVTON's attention checkpoint, loaded on top of --weights' U-Net.
    #[arg(long)]
    pub attn_checkpoint: Option<PathBuf>,
    #[command(flatten)]
    pub gan: gan::GanArgs,
    /// Device: cpu (default), wgpu, cuda[:N] (when built with those features).
    #[arg(long, default_value = "cpu")]
    pub device: String,
}

const METHODS: &[&str] = &["geometric", "catvton", "inpaint", "cpvton", "hrviton"];

impl ModelArgs {
    /// `--method` is one of [`METHODS`].
    pub fn check_method(&self) -> Result<()> {
        if !METHODS.contains(&self.method.as_str()) {
            return Err(VtonError::invalid(
                "--method",
                format!("'{}' is not one of {}", self.method, METHODS.join(", ")),
            ));
        }
        Ok(())
    }

    /// A method other than geometric has weights (`--weights`, or `--gmm` / `--tocg`).
    pub fn check_weights(&self) -> Result<()> {
        if self.method != "geometric"
            && self.weights.is_none()
            && self.gan.gmm.is_none()
            && self.gan.tocg.is_none()
        {
            return Err(VtonError::invalid(
                "--weights",
                format!("method {} needs weights", self.method),
            ));
        }
        Ok(())
    }
}

/// Loads the engine `args` name on `device`: the model (the same loaders `vton try-on`
/// uses) and the bundled preprocessor.
pub fn load_engine(args: &ModelArgs, device: Device) -> Result<Engine> {
    args.check_method()?;
    let model = match args.method.as_str() {
        "geometric" => Model::Geometric(GeometricTryOn::default()),
        "catvton" | "inpaint" => {
            let weights = args
                .weights
                .as_deref()
                .ok_or_else(|| VtonError::invalid("--weights", "missing"))?;
            Model::Diffusion(std::sync::Mutex::new(DiffusionTryOn::load(
                DiffusionMethod::from_name(&args.method)?,
                weights,
                args.attn_checkpoint.as_deref(),
                &device,
            )?))
        }
        "cpvton" => Model::Cpvton(gan::load_cpvton(
            &args.gan,
            args.weights.as_deref(),
            &device,
        )?),
        _ => {
            let seed = match args.gan.noise_seed.as_str() {
                "none" => None,
                s => Some(s.parse().map_err(|_| {
                    VtonError::invalid("--noise-seed", format!("'{s}' is not a number or none"))
                })?),
            };
            Model::Hrviton(
                gan::load_hrviton(&args.gan, args.weights.as_deref(), &device)?,
                seed,
            )
        }
    };
    Ok(Engine {
        method: args.method.clone(),
        preprocessor: Preprocessor::bundled(&device)?,
        model,
        device,
    })
}

#[derive(Args)]
pub struct ServeArgs {
    /// Address to listen on; a non-loopback one needs --api-key-file.
    #[arg(long, default_value = "127.0.0.1")]
    host: String,
    /// Port (0: any free one; the bound address is the first line printed).
    #[arg(long, default_value_t = 8000)]
    port: u16,
    #[command(flatten)]
    model: ModelArgs,
    /// Try-ons running at once.
    #[arg(long, default_value_t = 1)]
    workers: usize,
    /// Try-ons waiting for a worker at most; beyond that 429.
    #[arg(long, default_value_t = 16)]
    queue: usize,
    /// Largest request body, bytes.
    #[arg(long, default_value_t = 20 * 1024 * 1024)]
    max_body: usize,
    /// Largest image, pixels (width x height, read from the header before decoding).
    #[arg(long, default_value_t = 4096 * 4096)]
    max_pixels: u64,
    /// Seconds a try-on may take, waiting included (0: no limit); past it 504.
    #[arg(long, default_value_t = 300.0)]
    timeout: f64,
    /// File holding the API key clients send as `Authorization: Bearer <key>`.
    #[arg(long)]
    api_key_file: Option<PathBuf>,
    /// Data folder of the batch jobs (job store, uploaded files).
    #[arg(long)]
    data_dir: Option<PathBuf>,
}

pub fn run(args: ServeArgs) -> Result<()> {
    args.model.check_method()?;
    if !(args.timeout.is_finite() && args.timeout >= 0.0) {
        return Err(VtonError::invalid(
            "--timeout",
            "must be a number of seconds >= 0",
        ));
    }
    let api_key = match &args.api_key_file {
        Some(p) => Some(
            std::fs::read_to_string(p)
                .map_err(|source| VtonError::Io {
                    path: p.clone(),
                    source,
                })?
                .trim()
                .to_string(),
        ),
        None => None,
    };
    // The device is checked now, so that a bad --device fails before listening.
    let device = device_from_name(&args.model.device)?;
    args.model.check_weights()?;
    let config = Config {
        host: args.host.clone(),
        port: args.port,
        method: args.model.method.clone(),
        gpu: !args.model.device.eq_ignore_ascii_case("cpu"),
        workers: args.workers,
        queue: args.queue,
        max_body: args.max_body,
        max_pixels: args.max_pixels,
        timeout: (args.timeout > 0.0).then(|| Duration::from_secs_f64(args.timeout)),
        api_key,
        data_dir: args.data_dir.clone(),
    };
    let model = args.model;
    let loader: vton_serve::Loader = Box::new(move || load_engine(&model, device));
    vton_serve::run(config, loader).map_err(|e| match e {
        vton_serve::ServeError::Config { name, message } => VtonError::invalid(name, message),
        other => VtonError::invalid("serve", other.to_string()),
    })
}
