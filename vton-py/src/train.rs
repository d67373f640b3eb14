//! Training for Python (`vton.train`): one native trainer class over
//! [`vton_core::train::drive::build_trainer`] (every kind the drive knows) and the whole
//! loop ([`vton_core::train::run::run`] over [`drive::open_data`]). Re-exported by
//! `python/vton/train.py`, which converts options and weights; this layer takes:
//!
//! - options as one JSON object (the original scripts' names; the drive refuses unknown
//!   ones);
//! - weights as a path or a dict of float32 numpy arrays under the original keys;
//! - batches as dicts of float32 numpy arrays under the dataset class's keys, NCHW.
//!
//! The trainer object stays on the thread that made it (`unsendable`); heavy work runs
//! with the GIL released on that same thread. Every core error goes through
//! [`crate::to_py_err`].

use std::collections::BTreeMap;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;

use numpy::ndarray::{ArrayD, IxDyn};
use numpy::{IntoPyArray, PyArrayDyn, PyArrayMethods, PyUntypedArrayMethods};
use pyo3::prelude::*;
use pyo3::types::{PyBool, PyDict, PyList};
use serde_json::{Map, Value};
use vton_core::burn::tensor::{Device, Tensor, TensorData};
use vton_core::train::checkpoint::{
    complete_checkpoints, load_latest, SaveOptions, StateData, TrainingState,
};
use vton_core::train::drive::{self, DataSpec, TrainKind, TrainSetup};
use vton_core::train::run::{self as core_run, Batch, Event, RunConfig, Trainer};
use vton_core::weights::Checkpoint;
use vton_core::VtonError;

use crate::{bad, to_py_err, PyDevice};

/// An `InvalidInputError` about the argument `name`.
fn invalid(name: &str, msg: String) -> PyErr {
    to_py_err(VtonError::invalid(name, msg))
}

/// Tensors as plain data `(key, shape, values)`, sendable to the thread-free section.
type HostWeights = Vec<(String, Vec<usize>, Vec<f32>)>;

/// What a [`TrainSetup`] is made from, as plain data.
struct SetupArgs {
    kind: TrainKind,
    weights: Option<PathBuf>,
    weights_mem: Option<HostWeights>,
    discriminator: Option<PathBuf>,
    discriminator_mem: Option<HostWeights>,
    vgg: Option<PathBuf>,
    options: Map<String, Value>,
    seed: u64,
}

impl SetupArgs {
    fn build(self) -> vton_core::Result<TrainSetup> {
        let mem = |what: &str, w: Option<HostWeights>| {
            w.map(|t| Checkpoint::from_f32_tensors(what, t)).transpose()
        };
        Ok(TrainSetup {
            kind: self.kind,
            weights: self.weights,
            discriminator: self.discriminator,
            vgg: self.vgg,
            options: self.options,
            seed: self.seed,
            weights_checkpoint: mem("weights (dict of arrays)", self.weights_mem)?,
            discriminator_checkpoint: mem(
                "discriminator (dict of arrays)",
                self.discriminator_mem,
            )?,
        })
    }
}

fn parse_options(json: &str) -> PyResult<Map<String, Value>> {
    match serde_json::from_str::<Value>(json) {
        Ok(Value::Object(m)) => Ok(m),
        Ok(other) => Err(invalid(
            "options",
            format!("options must be a JSON object, got {other}"),
        )),
        Err(e) => Err(to_py_err(VtonError::Json {
            what: "options".into(),
            message: e.to_string(),
        })),
    }
}

fn dtype_name(obj: &Bound<'_, PyAny>) -> String {
    obj.getattr("dtype")
        .and_then(|d| d.str())
        .map(|s| s.to_string())
        .unwrap_or_else(|_| {
            obj.get_type()
                .name()
                .map(|n| n.to_string())
                .unwrap_or_default()
        })
}

/// The float32 array of `obj`, else an error naming what it is.
fn f32_array<'py>(
    arg: &str,
    what: &str,
    obj: &Bound<'py, PyAny>,
) -> PyResult<Bound<'py, PyArrayDyn<f32>>> {
    obj.cast::<PyArrayDyn<f32>>().cloned().map_err(|_| {
        invalid(
            arg,
            format!(
                "{what} must be a float32 numpy array, got {} (convert with .astype(np.float32))",
                dtype_name(obj)
            ),
        )
    })
}

/// A dict of float32 arrays as host tensors (weights given in memory).
fn host_weights(what: &str, d: &Bound<'_, PyDict>) -> PyResult<HostWeights> {
    let mut out = Vec::with_capacity(d.len());
    for (k, v) in d.iter() {
        let key: String = k
            .extract()
            .map_err(|_| invalid(what, format!("{what}: keys must be strings, got {k}")))?;
        let a = f32_array(what, &format!("{what}[{key:?}]"), &v)?;
        let r = a.readonly();
        out.push((
            key,
            r.shape().to_vec(),
            r.as_array().iter().copied().collect(),
        ));
    }
    Ok(out)
}

/// How a non-4-D U-Net batch entry is laid out in the 4-D batch map: `timesteps [B]` as
/// `[B, 1, 1, 1]`, `encoder_hidden_states [B, S, D]` as `[B, 1, S, D]`.
fn unet_shape4(key: &str, s: &[usize]) -> Option<[usize; 4]> {
    match (key, s.len()) {
        (_, 4) => Some([s[0], s[1], s[2], s[3]]),
        ("timesteps", 1) => Some([s[0], 1, 1, 1]),
        ("encoder_hidden_states", 3) => Some([s[0], 1, s[1], s[2]]),
        _ => None,
    }
}

/// A Python batch dict as the loop's [`Batch`]: float32 arrays, finite, non-empty, one
/// batch size (a U-Net's single shared timestep excepted), NCHW; for the image trainers
/// one height x width (U-Net: see [`unet_shape4`]).
fn batch_from(kind: TrainKind, d: &Bound<'_, PyDict>, device: &Device) -> PyResult<Batch> {
    let mut batch = Batch::new();
    let mut first_n: Option<(String, usize)> = None;
    let mut first_hw: Option<(String, [usize; 2])> = None;
    for (k, v) in d.iter() {
        let key: String = k
            .extract()
            .map_err(|_| invalid("batch", format!("batch keys must be strings, got {k}")))?;
        let what = format!("batch[{key:?}]");
        let a = f32_array("batch", &what, &v)?;
        let r = a.readonly();
        let s = r.shape().to_vec();
        let shape = if kind == TrainKind::Unet {
            unet_shape4(&key, &s)
        } else if s.len() == 4 {
            Some([s[0], s[1], s[2], s[3]])
        } else {
            None
        };
        let shape = shape.ok_or_else(|| {
            invalid(
                "batch",
                format!(
                    "{what} must be a 4-D (N, C, H, W) array{}, got shape {s:?}",
                    if kind == TrainKind::Unet {
                        " (timesteps may be (N,), encoder_hidden_states (N, S, D))"
                    } else {
                        ""
                    }
                ),
            )
        })?;
        if shape.contains(&0) {
            return Err(invalid("batch", format!("{what} is empty (shape {s:?})")));
        }
        // U-Net: one timestep may serve the whole batch (`UNetBatch`).
        let shared = kind == TrainKind::Unet && key == "timesteps" && s == [1];
        match &first_n {
            _ if shared => {}
            Some((k0, n0)) if *n0 != shape[0] => {
                return Err(to_py_err(VtonError::SizeMismatch {
                    what: format!("the batch size of {what} and batch[{k0:?}]"),
                    expected: n0.to_string(),
                    actual: shape[0].to_string(),
                }))
            }
            Some(_) => {}
            None => first_n = Some((key.clone(), shape[0])),
        }
        // The dataset classes of the image trainers return every key at the fine size.
        if kind != TrainKind::Unet {
            match &first_hw {
                Some((k0, hw)) if *hw != [shape[2], shape[3]] => {
                    return Err(to_py_err(VtonError::SizeMismatch {
                        what: format!("the height x width of {what} and batch[{k0:?}]"),
                        expected: format!("{}x{}", hw[0], hw[1]),
                        actual: format!("{}x{}", shape[2], shape[3]),
                    }))
                }
                Some(_) => {}
                None => first_hw = Some((key.clone(), [shape[2], shape[3]])),
            }
        }
        let data: Vec<f32> = r.as_array().iter().copied().collect();
        if let Some((i, x)) = data.iter().enumerate().find(|(_, x)| !x.is_finite()) {
            return Err(invalid(
                "batch",
                format!("{what} holds {x} (first at flat index {i}): batches must be finite"),
            ));
        }
        batch.insert(key, Tensor::from_data(TensorData::new(data, shape), device));
    }
    if batch.is_empty() {
        return Err(invalid("batch", "the batch is empty (no arrays)".into()));
    }
    Ok(batch)
}

/// The trainer behind a lock (the class is also `unsendable`: pyo3 keeps it on the thread
/// that made it; the lock lets the closures that use it run with the GIL released).
struct Confined(Mutex<Box<dyn Trainer>>);

impl Confined {
    fn new(t: Box<dyn Trainer>) -> Self {
        Confined(Mutex::new(t))
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Box<dyn Trainer>> {
        // A panic inside a step is caught by `guarded`; the trainer stays usable.
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// A payload a caught panic carried, as text.
fn panic_message(p: Box<dyn std::any::Any + Send>) -> String {
    p.downcast_ref::<String>()
        .cloned()
        .or_else(|| p.downcast_ref::<&str>().map(|s| s.to_string()))
        .unwrap_or_else(|| "unknown panic".into())
}

/// Runs `f`, turning a panic of the backend (a shape the model does not take) into an
/// error instead of tearing the interpreter's call down.
fn guarded<T>(what: &str, f: impl FnOnce() -> vton_core::Result<T>) -> vton_core::Result<T> {
    catch_unwind(AssertUnwindSafe(f)).unwrap_or_else(|p| {
        Err(VtonError::Backend {
            operation: what.into(),
            message: format!(
                "{} (check the batch's shapes against the model)",
                panic_message(p)
            ),
        })
    })
}

/// A state-dict tensor as a numpy array of its dtype (f16 / bf16 widened to float32).
fn state_to_py<'py>(
    py: Python<'py>,
    t: vton_core::train::checkpoint::StateTensor,
) -> PyResult<Bound<'py, PyAny>> {
    let shape = IxDyn(t.shape());
    let err = |e: numpy::ndarray::ShapeError| bad(e.to_string());
    Ok(match t.data() {
        StateData::F32(_) | StateData::BF16(_) | StateData::F16(_) => {
            let v = t.to_f32_vec();
            ArrayD::from_shape_vec(shape, v)
                .map_err(err)?
                .into_pyarray(py)
                .into_any()
        }
        StateData::F64(_) => {
            let StateData::F64(v) = t.into_data() else {
                unreachable!()
            };
            ArrayD::from_shape_vec(shape, v)
                .map_err(err)?
                .into_pyarray(py)
                .into_any()
        }
        StateData::I64(_) => {
            let StateData::I64(v) = t.into_data() else {
                unreachable!()
            };
            ArrayD::from_shape_vec(shape, v)
                .map_err(err)?
                .into_pyarray(py)
                .into_any()
        }
    })
}

/// A checkpoint folder (`state.json` in it) or a run folder (its newest complete
/// checkpoint).
fn load_state(path: &std::path::Path) -> vton_core::Result<(PathBuf, TrainingState)> {
    if path.join("state.json").is_file() {
        return Ok((path.to_path_buf(), TrainingState::load(path)?));
    }
    if !path.exists() {
        return Err(VtonError::FileNotFound {
            path: path.to_path_buf(),
        });
    }
    match load_latest(path)? {
        Some(found) => Ok((found.dir, found.state)),
        None => Err(VtonError::invalid(
            "path",
            format!(
                "{} is neither a checkpoint folder (state.json) nor a run folder with a complete checkpoint",
                path.display()
            ),
        )),
    }
}

/// A trainer of one kind, stepped by hand (`vton.train.*Trainer`).
#[pyclass(name = "_Trainer", module = "vton._vton", unsendable)]
struct PyTrainer {
    trainer: Confined,
    kind: TrainKind,
    device: Device,
    device_name: String,
}

#[pymethods]
impl PyTrainer {
    #[new]
    #[pyo3(signature = (kind, weights_path=None, weights=None, discriminator_path=None, discriminator=None, vgg=None, options="{}", seed=0, device="cpu"))]
    #[allow(clippy::too_many_arguments)]
    fn new(
        py: Python<'_>,
        kind: &str,
        weights_path: Option<PathBuf>,
        weights: Option<Bound<'_, PyDict>>,
        discriminator_path: Option<PathBuf>,
        discriminator: Option<Bound<'_, PyDict>>,
        vgg: Option<PathBuf>,
        options: &str,
        seed: u64,
        device: &str,
    ) -> PyResult<Self> {
        let kind = TrainKind::from_name(kind).map_err(to_py_err)?;
        let PyDevice {
            device: dev,
            name: device_name,
        } = PyDevice::parse(device)?;
        let args = SetupArgs {
            kind,
            weights: weights_path,
            weights_mem: weights
                .as_ref()
                .map(|d| host_weights("weights", d))
                .transpose()?,
            discriminator: discriminator_path,
            discriminator_mem: discriminator
                .as_ref()
                .map(|d| host_weights("discriminator", d))
                .transpose()?,
            vgg,
            options: parse_options(options)?,
            seed,
        };
        let d = dev.clone();
        let trainer = py
            .detach(move || {
                guarded("building the trainer", || {
                    let setup = args.build()?;
                    drive::build_trainer(&setup, &d).map(Confined::new)
                })
            })
            .map_err(to_py_err)?;
        Ok(PyTrainer {
            trainer,
            kind,
            device: dev,
            device_name,
        })
    }

    /// The device the trainer computes on (canonical name).
    #[getter]
    fn device(&self) -> String {
        self.device_name.clone()
    }

    #[getter]
    fn kind(&self) -> &'static str {
        self.kind.name()
    }

    /// Optimiser steps done.
    #[getter]
    fn steps(&self) -> usize {
        self.trainer.lock().steps_done()
    }

    /// The learning rate of the next step.
    #[getter]
    fn lr(&self) -> f64 {
        self.trainer.lock().current_lr()
    }

    /// One optimiser step; returns every loss term.
    fn step<'py>(
        &mut self,
        py: Python<'py>,
        batch: Bound<'py, PyDict>,
    ) -> PyResult<BTreeMap<String, f64>> {
        let batch = batch_from(self.kind, &batch, &self.device)?;
        let t = &mut self.trainer;
        py.detach(|| guarded("the training step", || t.lock().train_step(&batch)))
            .map_err(to_py_err)
    }

    /// The names of the models in the trainer's state (`model`; the GAN's two).
    fn model_names(&self, py: Python<'_>) -> PyResult<Vec<String>> {
        let t = &self.trainer;
        let state = py
            .detach(|| guarded("exporting the state", || t.lock().training_state()))
            .map_err(to_py_err)?;
        Ok(state.models.keys().cloned().collect())
    }

    /// One model's state dict under the original keys (None: the only model).
    #[pyo3(signature = (name=None))]
    fn state_dict<'py>(
        &self,
        py: Python<'py>,
        name: Option<String>,
    ) -> PyResult<Bound<'py, PyDict>> {
        let t = &self.trainer;
        let mut state = py
            .detach(|| guarded("exporting the state", || t.lock().training_state()))
            .map_err(to_py_err)?;
        let names: Vec<String> = state.models.keys().cloned().collect();
        let key = match name {
            Some(n) => n,
            None if names.len() == 1 => names[0].clone(),
            None => {
                return Err(invalid(
                    "name",
                    format!(
                        "this trainer holds several models ({}): name one",
                        names.join(", ")
                    ),
                ))
            }
        };
        let sd = state.models.remove(&key).ok_or_else(|| {
            invalid(
                "name",
                format!(
                    "no model {key:?} in this trainer (it has {})",
                    names.join(", ")
                ),
            )
        })?;
        let d = PyDict::new(py);
        for (k, v) in sd {
            d.set_item(k, state_to_py(py, v)?)?;
        }
        Ok(d)
    }

    /// Saves the whole training state under the run folder `path`
    /// (`path/checkpoints/step_<steps>/`, as `vton train --out path` does); returns the
    /// checkpoint folder.
    fn save(&self, py: Python<'_>, path: PathBuf) -> PyResult<PathBuf> {
        let t = &self.trainer;
        py.detach(|| {
            guarded("saving", || {
                let state = t.lock().training_state()?;
                state.save_with(
                    &path,
                    &SaveOptions {
                        pth: true,
                        keep_last: None,
                    },
                )
            })
        })
        .map_err(to_py_err)
    }

    /// Restores a checkpoint folder, or a run folder's newest complete checkpoint;
    /// returns the folder read.
    fn load(&mut self, py: Python<'_>, path: PathBuf) -> PyResult<PathBuf> {
        let kind = self.kind;
        let t = &mut self.trainer;
        py.detach(move || {
            guarded("loading", || {
                let (dir, state) = load_state(&path)?;
                if let Some(k) = state.extra.get("kind").and_then(Value::as_str) {
                    if TrainKind::from_name(k).ok() != Some(kind) {
                        return Err(VtonError::Config {
                            what: dir.display().to_string(),
                            message: format!(
                                "a {k} checkpoint cannot be loaded into a {} trainer",
                                kind.name()
                            ),
                        });
                    }
                }
                t.lock().restore(state)?;
                Ok(dir)
            })
        })
        .map_err(to_py_err)
    }

    fn __repr__(&self) -> String {
        let (steps, lr) = {
            let t = self.trainer.lock();
            (t.steps_done(), t.current_lr())
        };
        format!(
            "_Trainer(kind={:?}, steps={steps}, lr={lr})",
            self.kind.name()
        )
    }
}

fn path_str(p: &std::path::Path) -> String {
    p.to_string_lossy().into_owned()
}

/// One loop event as a dict for the callback (paths as `str`).
fn event_dict<'py>(py: Python<'py>, e: &Event) -> PyResult<Bound<'py, PyDict>> {
    let d = PyDict::new(py);
    match e {
        Event::Started {
            step,
            total,
            resumed_from,
        } => {
            d.set_item("type", "started")?;
            d.set_item("step", step)?;
            d.set_item("total", total)?;
            d.set_item("resumed_from", resumed_from.as_ref().map(|p| path_str(p)))?;
        }
        Event::Step {
            step,
            total,
            losses,
            lr,
            seconds,
        } => {
            d.set_item("type", "step")?;
            d.set_item("step", step)?;
            d.set_item("total", total)?;
            d.set_item("losses", losses.clone())?;
            d.set_item("lr", lr)?;
            d.set_item("seconds", seconds)?;
        }
        Event::Validated {
            step,
            ssim,
            psnr,
            panel,
        } => {
            d.set_item("type", "validated")?;
            d.set_item("step", step)?;
            d.set_item("ssim", ssim)?;
            d.set_item("psnr", psnr)?;
            d.set_item("panel", path_str(panel))?;
        }
        Event::Saved { step, dir } => {
            d.set_item("type", "saved")?;
            d.set_item("step", step)?;
            d.set_item("dir", path_str(dir))?;
        }
        Event::Stopped { step, cancelled } => {
            d.set_item("type", "stopped")?;
            d.set_item("step", step)?;
            d.set_item("cancelled", cancelled)?;
        }
    }
    Ok(d)
}

/// `vton train` for Python: builds the trainer, opens the data, runs the loop. The
/// callback gets a dict per event (with the GIL); returning False raises the cancel flag
/// (the loop saves, then stops). An exception in the callback, or Ctrl-C, also stops the
/// loop (after the save) and is raised here.
#[pyfunction]
#[pyo3(signature = (kind, data, out, steps=None, batch_size=4, save_every=1000, val_every=0, keep_checkpoints=0, resume=false, weights_path=None, weights=None, vgg=None, discriminator_path=None, discriminator=None, seed=0, workers=2, skip_bad_samples=false, device="cpu", options="{}", callback=None))]
#[allow(clippy::too_many_arguments)]
fn _train_run<'py>(
    py: Python<'py>,
    kind: &str,
    data: PathBuf,
    out: PathBuf,
    steps: Option<usize>,
    batch_size: usize,
    save_every: usize,
    val_every: usize,
    keep_checkpoints: usize,
    resume: bool,
    weights_path: Option<PathBuf>,
    weights: Option<Bound<'py, PyDict>>,
    vgg: Option<PathBuf>,
    discriminator_path: Option<PathBuf>,
    discriminator: Option<Bound<'py, PyDict>>,
    seed: u64,
    workers: usize,
    skip_bad_samples: bool,
    device: &str,
    options: &str,
    callback: Option<Py<PyAny>>,
) -> PyResult<Bound<'py, PyDict>> {
    let kind = TrainKind::from_name(kind).map_err(to_py_err)?;
    if batch_size == 0 {
        return Err(invalid(
            "batch_size",
            "batch_size must be at least 1".into(),
        ));
    }
    let device = PyDevice::parse(device)?.device;
    let options = parse_options(options)?;
    let args = SetupArgs {
        kind,
        weights: weights_path,
        weights_mem: weights
            .as_ref()
            .map(|d| host_weights("weights", d))
            .transpose()?,
        discriminator: discriminator_path,
        discriminator_mem: discriminator
            .as_ref()
            .map(|d| host_weights("discriminator", d))
            .transpose()?,
        vgg,
        options: options.clone(),
        seed,
    };
    let cancel = AtomicBool::new(false);
    let raised: Mutex<Option<PyErr>> = Mutex::new(None);
    let stop_with = |e: PyErr| {
        cancel.store(true, Ordering::SeqCst);
        let mut slot = raised.lock().unwrap_or_else(|p| p.into_inner());
        if slot.is_none() {
            *slot = Some(e);
        }
    };
    let mut on_event = |e: &Event| {
        Python::attach(|py| {
            if let Err(err) = py.check_signals() {
                stop_with(err);
                return;
            }
            let Some(cb) = &callback else { return };
            match event_dict(py, e).and_then(|d| cb.call1(py, (d,))) {
                Ok(ret) => {
                    let ret = ret.bind(py);
                    if ret.is_instance_of::<PyBool>() && !ret.is_truthy().unwrap_or(true) {
                        cancel.store(true, Ordering::SeqCst);
                    }
                }
                Err(err) => stop_with(err),
            }
        })
    };
    let total_steps = steps;
    let result = py.detach(|| {
        guarded("the training run", || {
            let setup = args.build()?;
            let mut trainer = drive::build_trainer(&setup, &device)?;
            let steps = total_steps.unwrap_or_else(|| drive::default_steps(&setup));
            let spec = DataSpec {
                root: data,
                batch_size,
                seed,
                workers,
                skip_bad: skip_bad_samples,
                options: drive::data_options(&setup),
                // A resumed run continues the sample order after the batches already seen.
                start_batch: if resume {
                    complete_checkpoints(&out)?
                        .last()
                        .map(|(s, _)| *s as usize)
                        .unwrap_or(0)
                } else {
                    0
                },
            };
            let (mut train, mut val) = drive::open_data(kind, &spec, &device)?;
            let config = RunConfig {
                out_dir: out,
                steps,
                save_every,
                val_every,
                resume,
                keep_checkpoints,
            };
            let val_source: Option<&mut dyn core_run::BatchSource> = match val.as_mut() {
                Some(v) => Some(v.as_mut()),
                None => None,
            };
            core_run::run(
                trainer.as_mut(),
                train.as_mut(),
                val_source,
                &config,
                &cancel,
                &mut on_event,
            )
        })
    });
    if let Some(e) = raised.lock().unwrap_or_else(|p| p.into_inner()).take() {
        return Err(e);
    }
    let summary = result.map_err(to_py_err)?;
    let d = PyDict::new(py);
    d.set_item("steps_done", summary.steps_done)?;
    d.set_item("cancelled", summary.cancelled)?;
    d.set_item(
        "last_checkpoint",
        summary.last_checkpoint.as_deref().map(path_str),
    )?;
    let skipped = PyList::empty(py);
    for (what, why) in summary.skipped_samples {
        skipped.append((what, why))?;
    }
    d.set_item("skipped_samples", skipped)?;
    d.set_item("mean_step_seconds", summary.mean_step_seconds)?;
    Ok(d)
}

pub(crate) fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<PyTrainer>()?;
    m.add_function(wrap_pyfunction!(_train_run, m)?)?;
    Ok(())
}
