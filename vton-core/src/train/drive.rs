//! From a command line or a notebook to a running trainer: the trainer kinds, their
//! options under the original scripts' names, and the [`Trainer`] implementations the
//! loop in [`crate::train::run`] drives (saving and restoring through
//! [`TrainingState`]).

use std::collections::BTreeMap;
use std::path::PathBuf;

use burn::tensor::{Device, Tensor};
use serde_json::{Map, Value};

use crate::error::{Result, VtonError};
use crate::models::cpvton::GmmConfig;
use crate::train::checkpoint::{MomentState, OptimizerState, StateTensor, TrainingState};
use crate::train::cpvton::{
    CpvtonTrainOptions, GmmBatch, GmmTrainer, TomBatch, TomTrainer, TrainerState,
};
use crate::train::data::{
    BatchLoader, CpvtonDataset, CpvtonStage, DataLayout, Dataset, HrVitonDataset,
};
use crate::train::hrviton::{
    ConditionBatch, ConditionGeneratorTrainer, ConditionTrainOptions, HostAdamState,
};
use crate::train::losses::VggLossConfig;
use crate::train::params::HostTensor;
use crate::train::run::{Batch, BatchSource, LossTerms, Trainer, Validation};
use crate::weights::Checkpoint;

/// What `vton train` trains.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TrainKind {
    Gmm,
    Tom,
    Tocg,
    Unet,
    /// DanMenCas/DCI-VITON's warping network (`Train_WarpingNetwork.ipynb`).
    DciWarp,
    /// DanMenCas/DCI-VITON's diffusion U-Net (`Train_DiffusionModel.ipynb`).
    DciUnet,
}

impl TrainKind {
    pub fn name(self) -> &'static str {
        match self {
            TrainKind::Gmm => "gmm",
            TrainKind::Tom => "tom",
            TrainKind::Tocg => "tocg",
            TrainKind::Unet => "unet",
            TrainKind::DciWarp => crate::train::dci_viton_warp::KIND,
            TrainKind::DciUnet => crate::train::dci_viton_unet::DCI_UNET_KIND,
        }
    }

    pub fn from_name(name: &str) -> Result<Self> {
        match name.trim().to_ascii_lowercase().as_str() {
            "gmm" => Ok(TrainKind::Gmm),
            "tom" => Ok(TrainKind::Tom),
            "tocg" | "condition" => Ok(TrainKind::Tocg),
            "unet" => Ok(TrainKind::Unet),
            "dci-viton-warp" | "dci_viton_warp" => Ok(TrainKind::DciWarp),
            "dci-viton-unet" | "dci_viton_unet" => Ok(TrainKind::DciUnet),
            other => Err(VtonError::invalid(
                "kind",
                format!(
                    "'{other}' is not one of gmm, tom, tocg, unet, dci-viton-warp, dci-viton-unet"
                ),
            )),
        }
    }
}

/// How to build a trainer.
#[derive(Debug, Clone)]
pub struct TrainSetup {
    pub kind: TrainKind,
    /// Initial weights (none: gmm / tom / tocg start from the original initialisation).
    pub weights: Option<PathBuf>,
    /// tocg: the discriminator (none: the original initialisation).
    pub discriminator: Option<PathBuf>,
    /// tom / tocg: torchvision VGG19 for the perceptual loss.
    pub vgg: Option<PathBuf>,
    /// Options by the original scripts' names.
    pub options: Map<String, Value>,
    /// Initialisation seed.
    pub seed: u64,
    /// Initial weights already in memory (a notebook's dict of arrays); used instead of
    /// `weights` when set.
    pub weights_checkpoint: Option<Checkpoint>,
    /// tocg: the discriminator's weights in memory (instead of `discriminator`).
    pub discriminator_checkpoint: Option<Checkpoint>,
}

impl TrainSetup {
    /// A setup with no weights given (fresh initialisation where the kind allows it).
    pub fn new(kind: TrainKind) -> Self {
        TrainSetup {
            kind,
            weights: None,
            discriminator: None,
            vgg: None,
            options: Map::new(),
            seed: 0,
            weights_checkpoint: None,
            discriminator_checkpoint: None,
        }
    }

    /// The initial weights: the in-memory checkpoint, else the file, else `None`.
    pub fn initial_weights(&self, root_probe: &str) -> Result<Option<Checkpoint>> {
        if let Some(c) = &self.weights_checkpoint {
            return Ok(Some(c.clone().rooted_at(root_probe)));
        }
        match &self.weights {
            Some(p) => Ok(Some(Checkpoint::open(p)?.rooted_at(root_probe))),
            None => Ok(None),
        }
    }
}

/// Where the data is and how to batch it.
#[derive(Debug, Clone)]
pub struct DataSpec {
    pub root: PathBuf,
    pub batch_size: usize,
    pub seed: u64,
    pub workers: usize,
    pub skip_bad: bool,
    pub options: Map<String, Value>,
    /// Batches already trained on (a resumed run continues the same sample order there).
    pub start_batch: usize,
}

/// Reads options by name, failing on unknown names and wrong types.
pub struct Opts<'a> {
    map: &'a Map<String, Value>,
    used: std::cell::RefCell<Vec<String>>,
}

impl<'a> Opts<'a> {
    pub fn new(map: &'a Map<String, Value>) -> Self {
        Opts {
            map,
            used: Default::default(),
        }
    }

    fn get(&self, name: &str) -> Option<&'a Value> {
        self.used.borrow_mut().push(name.to_string());
        self.map.get(name)
    }

    pub fn f64(&self, name: &str, default: f64) -> Result<f64> {
        match self.get(name) {
            None => Ok(default),
            Some(v) => v
                .as_f64()
                .ok_or_else(|| VtonError::invalid(name, format!("{v} is not a number"))),
        }
    }

    pub fn usize(&self, name: &str, default: usize) -> Result<usize> {
        match self.get(name) {
            None => Ok(default),
            Some(v) => v
                .as_u64()
                .map(|x| x as usize)
                .ok_or_else(|| VtonError::invalid(name, format!("{v} is not a whole number"))),
        }
    }

    pub fn bool(&self, name: &str, default: bool) -> Result<bool> {
        match self.get(name) {
            None => Ok(default),
            Some(Value::Bool(b)) => Ok(*b),
            Some(Value::Number(n)) if n.as_u64().is_some_and(|x| x <= 1) => {
                Ok(n.as_u64() == Some(1))
            }
            Some(v) => Err(VtonError::invalid(name, format!("{v} is not true/false"))),
        }
    }

    pub fn string(&self, name: &str, default: &str) -> Result<String> {
        match self.get(name) {
            None => Ok(default.to_string()),
            Some(Value::String(s)) => Ok(s.clone()),
            Some(v) => Err(VtonError::invalid(name, format!("{v} is not a string"))),
        }
    }

    /// A list of numbers (`[0.9, 0.999]` or `"0.9,0.999"`).
    pub fn f64_list(&self, name: &str, default: &[f64]) -> Result<Vec<f64>> {
        match self.get(name) {
            None => Ok(default.to_vec()),
            Some(Value::Array(a)) => a
                .iter()
                .map(|v| {
                    v.as_f64()
                        .ok_or_else(|| VtonError::invalid(name, format!("{v} is not a number")))
                })
                .collect(),
            Some(Value::String(s)) => s
                .split(',')
                .map(|p| {
                    p.trim()
                        .parse::<f64>()
                        .map_err(|_| VtonError::invalid(name, format!("'{p}' is not a number")))
                })
                .collect(),
            Some(v) => Err(VtonError::invalid(
                name,
                format!("{v} is not a list of numbers"),
            )),
        }
    }

    /// Fails on options no reader asked for (a misspelt name would otherwise be ignored).
    /// `also` lists names consumed elsewhere (the data loader's).
    pub fn finish(&self, what: &str, also: &[&str]) -> Result<()> {
        let used = self.used.borrow();
        let unknown: Vec<&String> = self
            .map
            .keys()
            .filter(|k| !used.contains(k) && !also.contains(&k.as_str()))
            .collect();
        if unknown.is_empty() {
            Ok(())
        } else {
            Err(VtonError::invalid(
                "options",
                format!(
                    "{what} has no option {}",
                    unknown
                        .iter()
                        .map(|s| format!("'{s}'"))
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            ))
        }
    }
}

/// Option names the data loader reads (accepted by every trainer).
pub const DATA_OPTIONS: &[&str] = &[
    "radius",
    "datamode",
    "data_list",
    "semantic_nc",
    "shuffle",
    "val_list",
    "val_count",
];

/// The data options of a run: the setup's options, plus, for the U-Net, the weights
/// folder as `pretrained_model_name_or_path` (where the data source finds the VAE) unless
/// the options name a VAE or a folder already.
pub fn data_options(setup: &TrainSetup) -> Map<String, Value> {
    let mut o = setup.options.clone();
    if setup.kind == TrainKind::Unet
        && !o.contains_key("vae")
        && !o.contains_key("pretrained_model_name_or_path")
    {
        if let Some(w) = &setup.weights {
            o.insert(
                "pretrained_model_name_or_path".into(),
                Value::String(w.to_string_lossy().into_owned()),
            );
        }
    }
    o
}

/// `train.py`'s options for GMM / TOM.
pub fn cpvton_options(o: &Opts) -> Result<CpvtonTrainOptions> {
    let d = CpvtonTrainOptions::default();
    Ok(CpvtonTrainOptions {
        fine_height: o.usize("fine_height", d.fine_height)?,
        fine_width: o.usize("fine_width", d.fine_width)?,
        grid_size: o.usize("grid_size", d.grid_size)?,
        lr: o.f64("lr", d.lr)?,
        keep_step: o.usize("keep_step", d.keep_step)?,
        decay_step: o.usize("decay_step", d.decay_step)?,
        step_scheduler: o.bool("step_scheduler", d.step_scheduler)?,
        gic_weight: o.f64("gic_weight", d.gic_weight)?,
    })
}

/// The default number of steps of a run (`keep_step + decay_step` for CP-VTON+).
pub fn default_steps(setup: &TrainSetup) -> usize {
    let o = Opts::new(&setup.options);
    match setup.kind {
        TrainKind::Gmm | TrainKind::Tom => cpvton_options(&o)
            .map(|c| c.total_steps())
            .unwrap_or(200_000),
        TrainKind::Tocg => o.usize("keep_step", 300_000).unwrap_or(300_000),
        TrainKind::Unet => o.usize("max_train_steps", 10_000).unwrap_or(10_000),
        // The notebooks: 31 epochs over 3000 pairs (warping), 301 over 2000 (U-Net).
        TrainKind::DciWarp => 31 * 3000,
        TrainKind::DciUnet => 301 * 2000,
    }
}

fn need<'a>(p: &'a Option<PathBuf>, what: &str, kind: TrainKind) -> Result<&'a PathBuf> {
    p.as_ref()
        .ok_or_else(|| VtonError::invalid(what, format!("training {} needs --{what}", kind.name())))
}

/// Builds the trainer a setup describes.
pub fn build_trainer(setup: &TrainSetup, device: &Device) -> Result<Box<dyn Trainer>> {
    match setup.kind {
        TrainKind::Gmm => Ok(Box::new(GmmDrive::new(setup, device)?)),
        TrainKind::Tom => Ok(Box::new(TomDrive::new(setup, device)?)),
        TrainKind::Tocg => Ok(Box::new(TocgDrive::new(setup, device)?)),
        TrainKind::Unet => crate::train::drive_unet::build_unet_trainer(setup, device),
        TrainKind::DciWarp => Ok(Box::new(
            crate::train::dci_viton_warp::DciWarpTrainer::from_setup(setup, device, &[])?,
        )),
        TrainKind::DciUnet => crate::train::dci_viton_unet::build_dci_unet_trainer(setup, device),
    }
}

fn batch_get(batch: &Batch, key: &str) -> Result<Tensor<4>> {
    batch.get(key).cloned().ok_or_else(|| {
        VtonError::invalid(
            "batch",
            format!(
                "no '{key}' in the batch (it has {})",
                batch.keys().cloned().collect::<Vec<_>>().join(", ")
            ),
        )
    })
}

/// A state dict (PyTorch layout) plus BatchNorm counters as checkpoint tensors.
fn state_tensors(
    sd: BTreeMap<String, HostTensor>,
    counters: &BTreeMap<String, i64>,
) -> Result<BTreeMap<String, StateTensor>> {
    let mut out = BTreeMap::new();
    for (k, h) in sd {
        out.insert(k, StateTensor::from_host(&h)?);
    }
    for (k, &n) in counters {
        out.insert(k.clone(), StateTensor::scalar_i64(n));
    }
    Ok(out)
}

fn checkpoint_of(name: &str, sd: &BTreeMap<String, StateTensor>) -> Result<Checkpoint> {
    Checkpoint::from_f32_tensors(
        name,
        sd.iter()
            .map(|(k, t)| (k.clone(), t.shape().to_vec(), t.to_f32_vec())),
    )
}

/// The CP-VTON+ trainers' `<param>.exp_avg|exp_avg_sq|step` map <-> [`OptimizerState`].
fn to_optimizer_state(flat: BTreeMap<String, HostTensor>, config: Value) -> Result<OptimizerState> {
    let mut state = BTreeMap::new();
    let keys: Vec<String> = flat
        .keys()
        .filter_map(|k| k.strip_suffix(".exp_avg").map(str::to_string))
        .collect();
    for p in keys {
        let get = |s: &str| {
            flat.get(&format!("{p}.{s}")).ok_or_else(|| {
                VtonError::config(format!("{p}.{s}"), "missing from the optimiser state")
            })
        };
        let step = get("step")?.data.first().copied().unwrap_or(0.0) as u64;
        state.insert(
            p.clone(),
            MomentState {
                exp_avg: StateTensor::from_host(get("exp_avg")?)?,
                exp_avg_sq: StateTensor::from_host(get("exp_avg_sq")?)?,
                step,
            },
        );
    }
    Ok(OptimizerState { state, config })
}

fn from_optimizer_state(o: &OptimizerState) -> BTreeMap<String, HostTensor> {
    let mut flat = BTreeMap::new();
    for (p, m) in &o.state {
        flat.insert(format!("{p}.exp_avg"), m.exp_avg.to_host());
        flat.insert(format!("{p}.exp_avg_sq"), m.exp_avg_sq.to_host());
        flat.insert(
            format!("{p}.step"),
            HostTensor::new(vec![], vec![m.step as f32]),
        );
    }
    flat
}

fn counters_of(sd: &BTreeMap<String, StateTensor>) -> BTreeMap<String, i64> {
    sd.iter()
        .filter(|(k, _)| k.ends_with(".num_batches_tracked"))
        .map(|(k, t)| {
            (
                k.clone(),
                t.to_f32_vec().first().copied().unwrap_or(0.0) as i64,
            )
        })
        .collect()
}

fn model_state(state: &TrainingState, name: &str) -> Result<BTreeMap<String, StateTensor>> {
    state
        .models
        .get(name)
        .cloned()
        .ok_or_else(|| VtonError::config(name.to_string(), "the checkpoint has no such model"))
}

/// A CP-VTON+ trainer's state (model `model`, optimiser `adam`) for a checkpoint.
fn cpvton_training_state(
    kind: &str,
    st: TrainerState,
    state_dict: BTreeMap<String, HostTensor>,
    lr: f64,
    raw_options: &Map<String, Value>,
) -> Result<TrainingState> {
    let mut models = BTreeMap::new();
    models.insert(
        "model".to_string(),
        state_tensors(state_dict, &st.num_batches_tracked)?,
    );
    let mut optimizers = BTreeMap::new();
    optimizers.insert(
        "adam".to_string(),
        to_optimizer_state(
            st.optimizer,
            serde_json::json!({"class": "Adam", "betas": [0.5, 0.999], "eps": 1e-8, "lr": lr}),
        )?,
    );
    Ok(TrainingState {
        global_step: st.step as u64,
        models,
        optimizers,
        lr_step: st.step as u64,
        rng: BTreeMap::new(),
        options: Value::Object(raw_options.clone()),
        extra: serde_json::json!({ "kind": kind }),
    })
}

/// `vton train gmm`.
pub struct GmmDrive {
    trainer: GmmTrainer,
    devices: Vec<Device>,
    options: CpvtonTrainOptions,
    raw_options: Map<String, Value>,
    device: Device,
}

impl GmmDrive {
    pub fn new(setup: &TrainSetup, device: &Device) -> Result<Self> {
        let o = Opts::new(&setup.options);
        let options = cpvton_options(&o)?;
        let ngf = o.usize("ngf", 64)?;
        o.finish("gmm", DATA_OPTIONS)?;
        let ckpt = match setup.initial_weights("extractionA.model.0.weight")? {
            Some(c) => c,
            None => crate::train::init::gmm_fresh(
                GmmConfig {
                    grid_size: options.grid_size,
                    fine_height: options.fine_height,
                    fine_width: options.fine_width,
                },
                ngf,
                setup.seed,
            )?,
        };
        let trainer = GmmTrainer::from_loaded(&ckpt, options.clone(), device)?;
        Ok(GmmDrive {
            trainer,
            devices: Vec::new(),
            options,
            raw_options: setup.options.clone(),
            device: device.clone(),
        })
    }

    pub fn trainer(&self) -> &GmmTrainer {
        &self.trainer
    }

    fn batch(batch: &Batch) -> Result<GmmBatch> {
        Ok(GmmBatch {
            agnostic: batch_get(batch, "agnostic")?,
            cloth_mask: batch_get(batch, "cloth_mask")?,
            cloth: batch_get(batch, "cloth")?,
            parse_cloth: batch_get(batch, "parse_cloth")?,
        })
    }
}

impl Trainer for GmmDrive {
    fn kind(&self) -> &'static str {
        "gmm"
    }

    fn train_step(&mut self, batch: &Batch) -> Result<LossTerms> {
        let b = Self::batch(batch)?;
        if self.devices.len() > 1 {
            return Ok(self.trainer.step_data_parallel(&b, &self.devices)?.losses);
        }
        Ok(self.trainer.step(&b, false)?.losses)
    }

    fn set_devices(&mut self, devices: Vec<Device>) -> Result<()> {
        self.devices = devices;
        Ok(())
    }

    fn steps_done(&self) -> usize {
        self.trainer.step_count()
    }

    fn current_lr(&self) -> f64 {
        self.trainer.lr()
    }

    fn validate(&self, batch: &Batch) -> Result<Validation> {
        let b = Self::batch(batch)?;
        let out = self
            .trainer
            .model()
            .forward(b.agnostic.clone(), b.cloth_mask.clone())?;
        let warped = crate::warp::grid::grid_sample(
            b.cloth.clone(),
            out.grid.clone().inner(),
            crate::warp::grid::GridSampleOptions::new(
                crate::warp::grid::SampleMode::Bilinear,
                crate::warp::grid::PaddingMode::Border,
                false,
            ),
        )?
        .inner();
        let mut panel = vec![
            ("cloth".to_string(), b.cloth.clone()),
            ("warped cloth".to_string(), warped.clone()),
            ("target (parse cloth)".to_string(), b.parse_cloth.clone()),
        ];
        if let Some(im) = batch.get("image") {
            panel.push(("person".into(), im.clone()));
        }
        Ok(Validation {
            prediction: warped,
            target: b.parse_cloth,
            panel,
        })
    }

    fn training_state(&self) -> Result<TrainingState> {
        let t = &self.trainer;
        cpvton_training_state(
            "gmm",
            t.trainer_state()?,
            t.state_dict()?,
            self.options.lr,
            &self.raw_options,
        )
    }

    fn restore(&mut self, state: TrainingState) -> Result<()> {
        let sd = model_state(&state, "model")?;
        let ckpt = checkpoint_of("checkpoint model", &sd)?;
        let mut trainer = GmmTrainer::from_loaded(&ckpt, self.options.clone(), &self.device)?;
        let adam = state
            .optimizers
            .get("adam")
            .ok_or_else(|| VtonError::config("adam", "the checkpoint has no optimiser state"))?;
        trainer.load_trainer_state(&TrainerState {
            step: state.global_step as usize,
            optimizer: from_optimizer_state(adam),
            num_batches_tracked: counters_of(&sd),
        })?;
        self.trainer = trainer;
        Ok(())
    }
}

/// `vton train tom`.
pub struct TomDrive {
    trainer: TomTrainer,
    devices: Vec<Device>,
    options: CpvtonTrainOptions,
    raw_options: Map<String, Value>,
    vgg: Checkpoint,
    vgg_config: VggLossConfig,
    device: Device,
}

fn vgg_config(o: &Opts) -> Result<VggLossConfig> {
    match o.string("vgg_layers", "cpvton")?.as_str() {
        "cpvton" => Ok(VggLossConfig::cpvton()),
        "relu_x_2" => Ok(VggLossConfig::relu_x_2()),
        other => Err(VtonError::invalid(
            "vgg_layers",
            format!("'{other}' is not one of cpvton, relu_x_2"),
        )),
    }
}

impl TomDrive {
    pub fn new(setup: &TrainSetup, device: &Device) -> Result<Self> {
        let o = Opts::new(&setup.options);
        let options = cpvton_options(&o)?;
        let ngf = o.usize("ngf", 64)?;
        let vgg_config = vgg_config(&o)?;
        o.finish("tom", DATA_OPTIONS)?;
        let vgg_path = need(&setup.vgg, "vgg", setup.kind)?;
        let vgg = Checkpoint::open(vgg_path)?;
        let ckpt = match setup.initial_weights("model.model.0.weight")? {
            Some(c) => c,
            None => crate::train::init::tom_fresh(26, 4, 6, ngf, setup.seed)?,
        };
        let trainer =
            TomTrainer::from_loaded(&ckpt, &vgg, vgg_config.clone(), options.clone(), device)?;
        Ok(TomDrive {
            trainer,
            devices: Vec::new(),
            options,
            raw_options: setup.options.clone(),
            vgg,
            vgg_config,
            device: device.clone(),
        })
    }

    pub fn trainer(&self) -> &TomTrainer {
        &self.trainer
    }

    fn batch(batch: &Batch) -> Result<TomBatch> {
        Ok(TomBatch {
            agnostic: batch_get(batch, "agnostic")?,
            cloth: batch_get(batch, "cloth")?,
            cloth_mask: batch_get(batch, "cloth_mask")?,
            image: batch_get(batch, "image")?,
            parse_cloth_mask: batch_get(batch, "parse_cloth_mask")?,
        })
    }
}

impl Trainer for TomDrive {
    fn kind(&self) -> &'static str {
        "tom"
    }

    fn set_devices(&mut self, devices: Vec<Device>) -> Result<()> {
        self.devices = devices;
        Ok(())
    }

    fn train_step(&mut self, batch: &Batch) -> Result<LossTerms> {
        let b = Self::batch(batch)?;
        let mut l = if self.devices.len() > 1 {
            self.trainer.step_data_parallel(&b, &self.devices)?.losses
        } else {
            self.trainer.step(&b, false)?.losses
        };
        l.retain(|k, _| !k.starts_with("vgg_layer_l1."));
        Ok(l)
    }

    fn steps_done(&self) -> usize {
        self.trainer.step_count()
    }

    fn current_lr(&self) -> f64 {
        self.trainer.lr()
    }

    fn validate(&self, batch: &Batch) -> Result<Validation> {
        let b = Self::batch(batch)?;
        let out = self.trainer.model().forward(
            b.agnostic.clone(),
            b.cloth.clone(),
            b.cloth_mask.clone(),
        )?;
        let tryon = out.p_tryon.inner();
        Ok(Validation {
            prediction: tryon.clone(),
            target: b.image.clone(),
            panel: vec![
                ("warped cloth".into(), b.cloth.clone()),
                ("rendered".into(), out.p_rendered.inner()),
                (
                    "composition mask".into(),
                    out.m_composite.inner().mul_scalar(2.0).sub_scalar(1.0),
                ),
                ("try-on".into(), tryon),
                ("target".into(), b.image),
            ],
        })
    }

    fn training_state(&self) -> Result<TrainingState> {
        let t = &self.trainer;
        cpvton_training_state(
            "tom",
            t.trainer_state()?,
            t.state_dict()?,
            self.options.lr,
            &self.raw_options,
        )
    }

    fn restore(&mut self, state: TrainingState) -> Result<()> {
        let sd = model_state(&state, "model")?;
        let ckpt = checkpoint_of("checkpoint model", &sd)?;
        let mut trainer = TomTrainer::from_loaded(
            &ckpt,
            &self.vgg,
            self.vgg_config.clone(),
            self.options.clone(),
            &self.device,
        )?;
        let adam = state
            .optimizers
            .get("adam")
            .ok_or_else(|| VtonError::config("adam", "the checkpoint has no optimiser state"))?;
        trainer.load_trainer_state(&TrainerState {
            step: state.global_step as usize,
            optimizer: from_optimizer_state(adam),
            num_batches_tracked: counters_of(&sd),
        })?;
        self.trainer = trainer;
        Ok(())
    }
}

/// A [`BatchLoader`] as the loop's batch source, tensors on one device.
pub struct LoaderSource {
    pub loader: BatchLoader,
    pub device: Device,
}

impl BatchSource for LoaderSource {
    fn next_batch(&mut self) -> Result<Batch> {
        Ok(self.loader.next_batch()?.to_tensors(&self.device))
    }

    fn skipped(&self) -> Vec<(String, String)> {
        self.loader
            .bad_samples()
            .into_iter()
            .map(|(i, p, m)| (format!("#{i} {}", p.display()), m))
            .collect()
    }
}

/// [`open_data`]'s result: the training source and, when there is one, the validation
/// source.
pub type DataSources = (Box<dyn BatchSource>, Option<Box<dyn BatchSource>>);

/// The training batches of a kind (shuffled, seeded) and a validation source (the same
/// pairs in order), read from `spec.root` in the layout the original dataset class reads.
pub fn open_data(kind: TrainKind, spec: &DataSpec, device: &Device) -> Result<DataSources> {
    let o = Opts::new(&spec.options);
    let shuffle = o.bool("shuffle", true)?;
    let dataset: Dataset = match kind {
        TrainKind::Gmm | TrainKind::Tom => {
            let c = cpvton_options(&o)?;
            let stage = if kind == TrainKind::Gmm {
                CpvtonStage::Gmm
            } else {
                CpvtonStage::Tom
            };
            let radius = o.f64("radius", 5.0)? as f32;
            CpvtonDataset::open(&spec.root, stage, c.fine_height, c.fine_width, radius)?.into()
        }
        TrainKind::Tocg => {
            let h = o.usize("fine_height", 256)?;
            let w = o.usize("fine_width", 192)?;
            let nc = o.usize("semantic_nc", 13)?;
            HrVitonDataset::open_layout(
                DataLayout::detect(&spec.root)?,
                h,
                w,
                nc,
                &HrVitonDataset::CONDITION_KEYS,
            )?
            .into()
        }
        TrainKind::Unet => {
            return crate::train::drive_unet::open_unet_data(spec, &spec.options, device)
        }
        TrainKind::DciWarp => {
            return crate::train::dci_viton_warp::open_dci_warp_data_with(
                &spec.root,
                &spec.options,
                spec.batch_size,
                spec.seed,
                spec.skip_bad,
                spec.start_batch,
                device,
            )
        }
        TrainKind::DciUnet => {
            return crate::train::dci_viton_unet::open_dci_unet_data(spec, &spec.options, device)
        }
    };
    let val_count = o.usize("val_count", 4)?.min(dataset.len()).max(1);
    let train = BatchLoader::resumed(
        dataset.clone(),
        spec.batch_size,
        shuffle,
        spec.seed,
        false,
        spec.workers,
        spec.skip_bad,
        spec.start_batch,
    )?;
    let val = BatchLoader::new(dataset, val_count, false, spec.seed, false, 0, true)?;
    Ok((
        Box::new(LoaderSource {
            loader: train,
            device: device.clone(),
        }),
        Some(Box::new(LoaderSource {
            loader: val,
            device: device.clone(),
        })),
    ))
}

/// `train_condition.py`'s options (its own names: `G_lr`, `CElamda`, `Ddownx2`, ...;
/// `lr` sets both learning rates).
pub fn condition_options(o: &Opts) -> Result<ConditionTrainOptions> {
    let d = ConditionTrainOptions::default();
    let lr = o.f64("lr", d.G_lr)?;
    Ok(ConditionTrainOptions {
        fine_height: o.usize("fine_height", d.fine_height)?,
        fine_width: o.usize("fine_width", d.fine_width)?,
        semantic_nc: o.usize("semantic_nc", d.semantic_nc)?,
        output_nc: o.usize("output_nc", d.output_nc)?,
        warp_feature: o.string("warp_feature", &d.warp_feature)?,
        out_layer: o.string("out_layer", &d.out_layer)?,
        G_lr: o.f64("G_lr", lr)?,
        D_lr: o.f64("D_lr", lr)?,
        CElamda: o.f64("CElamda", d.CElamda)?,
        GANlambda: o.f64("GANlambda", d.GANlambda)?,
        tvlambda: o.f64("tvlambda", d.tvlambda)?,
        upsample: o.string("upsample", &d.upsample)?,
        clothmask_composition: o.string("clothmask_composition", &d.clothmask_composition)?,
        edgeawaretv: o.string("edgeawaretv", &d.edgeawaretv)?,
        add_lasttv: o.bool("add_lasttv", d.add_lasttv)?,
        lasttvonly: o.bool("lasttvonly", d.lasttvonly)?,
        interflowloss: o.bool("interflowloss", d.interflowloss)?,
        occlusion: o.bool("occlusion", d.occlusion)?,
        no_GAN_loss: o.bool("no_GAN_loss", d.no_GAN_loss)?,
        G_D_seperate: o.bool("G_D_seperate", d.G_D_seperate)?,
        Ddownx2: o.bool("Ddownx2", d.Ddownx2)?,
        Ddropout: o.bool("Ddropout", d.Ddropout)?,
        spectral: o.bool("spectral", d.spectral)?,
        num_D: o.usize("num_D", d.num_D)?,
        n_layers_D: o.usize("n_layers_D", d.n_layers_D)?,
    })
}

/// `vton train tocg`: HR-VITON's condition generator and its discriminator. The Dropout
/// masks of a step are drawn from a generator seeded by (seed, step), so a resumed run
/// draws what the uninterrupted one would.
pub struct TocgDrive {
    trainer: ConditionGeneratorTrainer,
    /// Data-parallel over these when more than one (see
    /// [`ConditionGeneratorTrainer::step_data_parallel`]).
    devices: Vec<Device>,
    options: ConditionTrainOptions,
    raw_options: Map<String, Value>,
    vgg: Checkpoint,
    seed: u64,
    device: Device,
}

fn to_moments(m: BTreeMap<String, HostAdamState>, config: Value) -> Result<OptimizerState> {
    let mut state = BTreeMap::new();
    for (k, s) in m {
        state.insert(
            k,
            MomentState {
                exp_avg: StateTensor::from_host(&s.exp_avg)?,
                exp_avg_sq: StateTensor::from_host(&s.exp_avg_sq)?,
                step: s.step,
            },
        );
    }
    Ok(OptimizerState { state, config })
}

fn from_moments(o: &OptimizerState) -> BTreeMap<String, HostAdamState> {
    o.state
        .iter()
        .map(|(k, m)| {
            (
                k.clone(),
                HostAdamState {
                    exp_avg: m.exp_avg.to_host(),
                    exp_avg_sq: m.exp_avg_sq.to_host(),
                    step: m.step,
                },
            )
        })
        .collect()
}

impl TocgDrive {
    pub fn new(setup: &TrainSetup, device: &Device) -> Result<Self> {
        let o = Opts::new(&setup.options);
        let options = condition_options(&o)?;
        // Widths of a fresh start (train_condition.py: ngf=96, define_D's ndf=64).
        let ngf = o.usize("ngf", 96)?;
        let ndf = o.usize("ndf", 64)?;
        o.finish("tocg", DATA_OPTIONS)?;
        let vgg =
            Checkpoint::open(need(&setup.vgg, "vgg", setup.kind)?)?.rooted_at("features.0.weight");
        // Without weights, train_condition.py's own initialisation (seeded).
        let g = match setup.initial_weights("ClothEncoder.0.scale.weight")? {
            Some(c) => c,
            None => crate::train::init::tocg_fresh(&options, ngf, setup.seed)?,
        };
        let d = match (&setup.discriminator_checkpoint, &setup.discriminator) {
            (Some(c), _) => c.clone().rooted_at("layer0.0.weight"),
            (None, Some(p)) => Checkpoint::open(p)?.rooted_at("layer0.0.weight"),
            (None, None) => crate::train::init::discriminator_fresh(&options, ndf, setup.seed)?,
        };
        let trainer =
            ConditionGeneratorTrainer::from_loaded(&g, &d, &vgg, options.clone(), device)?;
        Ok(TocgDrive {
            trainer,
            devices: Vec::new(),
            options,
            raw_options: setup.options.clone(),
            vgg,
            seed: setup.seed,
            device: device.clone(),
        })
    }

    pub fn trainer(&self) -> &ConditionGeneratorTrainer {
        &self.trainer
    }

    fn batch(batch: &Batch) -> Result<ConditionBatch> {
        Ok(ConditionBatch {
            cloth: batch_get(batch, "cloth")?,
            cloth_mask: batch_get(batch, "cloth_mask")?,
            parse_agnostic: batch_get(batch, "parse_agnostic")?,
            densepose: batch_get(batch, "densepose")?,
            parse_onehot: batch_get(batch, "parse_onehot")?,
            parse: batch_get(batch, "parse")?,
            pcm: batch_get(batch, "pcm")?,
            parse_cloth: batch_get(batch, "parse_cloth")?,
        })
    }
}

impl Trainer for TocgDrive {
    fn kind(&self) -> &'static str {
        "tocg"
    }

    fn train_step(&mut self, batch: &Batch) -> Result<LossTerms> {
        let step = self.trainer.step_count() as u64;
        self.trainer
            .set_dropout_seed(self.seed ^ step.wrapping_mul(0x9E37_79B9_7F4A_7C15));
        let b = Self::batch(batch)?;
        let out = if self.devices.len() > 1 {
            self.trainer.step_data_parallel(&b, &self.devices, None)?
        } else {
            self.trainer.step(&b, None)?
        };
        let mut l = out.losses;
        l.retain(|k, _| !k.starts_with("sub."));
        Ok(l)
    }

    fn set_devices(&mut self, devices: Vec<Device>) -> Result<()> {
        self.devices = devices;
        Ok(())
    }

    fn steps_done(&self) -> usize {
        self.trainer.step_count()
    }

    fn current_lr(&self) -> f64 {
        self.options.G_lr
    }

    fn validate(&self, batch: &Batch) -> Result<Validation> {
        let b = Self::batch(batch)?;
        let out = self.trainer.predict(&b)?;
        Ok(Validation {
            prediction: out.warped_cloth.clone(),
            target: b.parse_cloth.clone(),
            panel: vec![
                ("cloth".into(), b.cloth.clone()),
                ("warped cloth".into(), out.warped_cloth),
                ("target (parse cloth)".into(), b.parse_cloth),
            ],
        })
    }

    fn training_state(&self) -> Result<TrainingState> {
        let t = &self.trainer;
        let mut models = BTreeMap::new();
        models.insert(
            "tocg".to_string(),
            state_tensors(t.state_dict_g()?, t.num_batches_tracked())?,
        );
        models.insert(
            "discriminator".to_string(),
            state_tensors(t.state_dict_d()?, &BTreeMap::new())?,
        );
        let mut optimizers = BTreeMap::new();
        optimizers.insert(
            "g".to_string(),
            to_moments(
                t.optimizer_state_g()?,
                serde_json::json!({"class": "Adam", "betas": [0.5, 0.999], "lr": self.options.G_lr}),
            )?,
        );
        optimizers.insert(
            "d".to_string(),
            to_moments(
                t.optimizer_state_d()?,
                serde_json::json!({"class": "Adam", "betas": [0.5, 0.999], "lr": self.options.D_lr}),
            )?,
        );
        let step = t.step_count() as u64;
        Ok(TrainingState {
            global_step: step,
            models,
            optimizers,
            lr_step: step,
            rng: BTreeMap::new(),
            options: Value::Object(self.raw_options.clone()),
            extra: serde_json::json!({"kind": "tocg", "dropout_seed": self.seed}),
        })
    }

    fn restore(&mut self, state: TrainingState) -> Result<()> {
        let g = checkpoint_of("checkpoint tocg", &model_state(&state, "tocg")?)?;
        let d = checkpoint_of(
            "checkpoint discriminator",
            &model_state(&state, "discriminator")?,
        )?;
        let mut t = ConditionGeneratorTrainer::from_loaded(
            &g,
            &d,
            &self.vgg,
            self.options.clone(),
            &self.device,
        )?;
        let opt = |n: &str| {
            state.optimizers.get(n).ok_or_else(|| {
                VtonError::config(n.to_string(), "the checkpoint has no such optimiser")
            })
        };
        t.load_optimizer_state_g(&from_moments(opt("g")?))?;
        t.load_optimizer_state_d(&from_moments(opt("d")?))?;
        t.set_step_count(state.global_step as usize);
        self.trainer = t;
        Ok(())
    }
}
