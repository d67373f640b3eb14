//! Latent diffusion from Python, with diffusers' names: `AutoencoderKL`,
//! `UNet2DConditionModel`, the schedulers (wrapped by `python/vton/diffusion.py`) and the
//! try-on pipelines. Arrays are float32 NCHW numpy arrays; the GIL is released while
//! tensors are computed and taken again only to call a progress callback. Every object
//! keeps the device it was loaded on (`device="cpu"` by default) and computes there.

use std::sync::Mutex;

use numpy::{PyArrayDyn, PyReadonlyArrayDyn};
use pyo3::prelude::*;
use vton_core::burn::tensor::{Device, Tensor, TensorData};
use vton_core::io::image::tensor_to_vec;
use vton_core::models::{
    AutoencoderKL as CoreVae, DiagonalGaussian as CoreGaussian, Timesteps,
    UNet2DConditionModel as CoreUNet,
};
use vton_core::pipelines::diffusion::{
    CatVTONPipeline as CorePipe, Control, InpaintInputs, InpaintTryOnPipeline as CoreInpaint,
    Progress, SamplingOptions,
};
use vton_core::schedulers::{scheduler_from_config, Scheduler as CoreScheduler};
use vton_core::weights::{LoadOptions, ParamBytes, WeightDtype};
use vton_core::VtonError;

use crate::{bad, dyn_out, shape_of, tensor4, to_py_err, to_vec, PyDevice};

type Out<'py> = PyResult<Bound<'py, PyArrayDyn<f32>>>;

fn out4<'py>(py: Python<'py>, t: Tensor<4>) -> Out<'py> {
    let shape = t.dims().to_vec();
    dyn_out(py, shape, tensor_to_vec(t).map_err(to_py_err)?)
}

fn tensor3(name: &str, a: &PyReadonlyArrayDyn<'_, f32>, device: &Device) -> PyResult<Tensor<3>> {
    let s = shape_of(a);
    if s.len() != 3 {
        return Err(bad(format!(
            "{name} must be 3-D (B, seq, dim), got shape {s:?}"
        )));
    }
    Ok(Tensor::from_data(
        TensorData::new(to_vec(a), [s[0], s[1], s[2]]),
        device,
    ))
}

/// diffusers' `torch_dtype=` and `variant=`: the dtype as a name (`"float16"`,
/// `"bfloat16"`, `"torch.float16"`) or any object whose `str()` is one (`torch.float16`);
/// `None` is float32.
fn load_options(
    torch_dtype: Option<&Bound<'_, PyAny>>,
    variant: Option<String>,
) -> PyResult<LoadOptions> {
    let dtype = match torch_dtype {
        None => WeightDtype::F32,
        Some(d) => {
            let name: String = match d.extract::<String>() {
                Ok(s) => s,
                Err(_) => d.str()?.to_string(),
            };
            WeightDtype::from_arg("torch_dtype", &name).map_err(to_py_err)?
        }
    };
    Ok(LoadOptions::dtype(dtype).with_variant(variant.as_deref()))
}

/// The element type a model's layer weights are kept in, by torch's name.
fn weights_dtype<M: vton_core::burn::module::Module>(m: &M) -> &'static str {
    let b = ParamBytes::of(m);
    if b.bf16 > 0 {
        "bfloat16"
    } else if b.f16 > 0 {
        "float16"
    } else {
        "float32"
    }
}

fn lock<T>(m: &Mutex<T>) -> PyResult<std::sync::MutexGuard<'_, T>> {
    m.lock()
        .map_err(|_| bad("a previous call panicked while holding this object".into()))
}

/// diffusers `AutoencoderKL`.
#[pyclass(name = "AutoencoderKL", module = "vton", frozen)]
struct AutoencoderKL {
    inner: CoreVae,
    device: PyDevice,
}

#[pymethods]
impl AutoencoderKL {
    /// Loads a diffusers folder (`config.json` + weights) or a pipeline folder with `vae/`
    /// onto `device`; `torch_dtype` (float16 / bfloat16) keeps the convolution and linear
    /// weights in half precision (computation stays float32); `variant="fp16"` reads
    /// `diffusion_pytorch_model.fp16.*`.
    #[staticmethod]
    #[pyo3(signature = (path, *, device="cpu", torch_dtype=None, variant=None))]
    fn from_pretrained(
        py: Python<'_>,
        path: std::path::PathBuf,
        device: &str,
        torch_dtype: Option<&Bound<'_, PyAny>>,
        variant: Option<String>,
    ) -> PyResult<Self> {
        let device = PyDevice::parse(device)?;
        let options = load_options(torch_dtype, variant)?;
        let inner = py
            .detach(|| CoreVae::from_pretrained_with(&path, &options, &device.device))
            .map_err(to_py_err)?;
        Ok(AutoencoderKL { inner, device })
    }

    /// The element type the layer weights are kept in (`"float32"`, `"float16"`,
    /// `"bfloat16"`).
    #[getter]
    fn dtype(&self) -> &'static str {
        weights_dtype(&self.inner)
    }

    /// The device the model is on (canonical name).
    #[getter]
    fn device(&self) -> String {
        self.device.name.clone()
    }

    /// Image `(N, C, H, W)` in `[-1, 1]` -> the posterior (scaling_factor not applied).
    fn encode(&self, py: Python<'_>, x: PyReadonlyArrayDyn<'_, f32>) -> PyResult<DiagonalGaussian> {
        let x = tensor4("x", &x, &self.device.device)?;
        let inner = py.detach(|| self.inner.encode(x)).map_err(to_py_err)?;
        Ok(DiagonalGaussian {
            inner,
            device: self.device.clone(),
        })
    }

    /// Latents (unscaled) -> image in about `[-1, 1]`.
    fn decode<'py>(&self, py: Python<'py>, z: PyReadonlyArrayDyn<'py, f32>) -> Out<'py> {
        let z = tensor4("z", &z, &self.device.device)?;
        let out = py.detach(|| self.inner.decode(z)).map_err(to_py_err)?;
        out4(py, out)
    }

    #[getter]
    fn scaling_factor(&self) -> f64 {
        self.inner.config.scaling_factor
    }

    #[getter]
    fn shift_factor(&self) -> Option<f64> {
        self.inner.config.shift_factor
    }

    #[getter]
    fn latent_channels(&self) -> usize {
        self.inner.config.latent_channels
    }

    fn __repr__(&self) -> String {
        format!(
            "AutoencoderKL(block_out_channels={:?}, latent_channels={})",
            self.inner.config.block_out_channels, self.inner.config.latent_channels
        )
    }
}

/// The posterior `encode` returns.
#[pyclass(name = "DiagonalGaussianDistribution", module = "vton", frozen)]
struct DiagonalGaussian {
    inner: CoreGaussian,
    device: PyDevice,
}

#[pymethods]
impl DiagonalGaussian {
    /// The device of the posterior's tensors (the autoencoder's).
    #[getter]
    fn device(&self) -> String {
        self.device.name.clone()
    }

    #[getter]
    fn mean<'py>(&self, py: Python<'py>) -> Out<'py> {
        out4(py, self.inner.mean.clone())
    }

    #[getter]
    fn logvar<'py>(&self, py: Python<'py>) -> Out<'py> {
        out4(py, self.inner.logvar.clone())
    }

    #[getter]
    fn std<'py>(&self, py: Python<'py>) -> Out<'py> {
        out4(py, self.inner.std())
    }

    #[getter]
    fn var<'py>(&self, py: Python<'py>) -> Out<'py> {
        out4(py, self.inner.var())
    }

    fn mode<'py>(&self, py: Python<'py>) -> Out<'py> {
        out4(py, self.inner.mode())
    }

    /// `mean + std * noise`: noise from `seed` (vton's generator), or given.
    #[pyo3(signature = (seed=0, noise=None))]
    fn sample<'py>(
        &self,
        py: Python<'py>,
        seed: u64,
        noise: Option<PyReadonlyArrayDyn<'py, f32>>,
    ) -> Out<'py> {
        let t = match noise {
            Some(n) => self
                .inner
                .sample_with(tensor4("noise", &n, &self.device.device)?)
                .map_err(to_py_err)?,
            None => self.inner.sample(seed),
        };
        out4(py, t)
    }
}

/// diffusers `UNet2DConditionModel`.
#[pyclass(name = "UNet2DConditionModel", module = "vton", frozen)]
struct UNet2DConditionModel {
    inner: CoreUNet,
    device: PyDevice,
}

fn timesteps_from(t: &Bound<'_, PyAny>) -> PyResult<Timesteps> {
    if let Ok(v) = t.extract::<f64>() {
        return Ok(Timesteps::Scalar(v));
    }
    if let Ok(v) = t.extract::<Vec<f64>>() {
        return Ok(Timesteps::PerSample(v));
    }
    let np = t.py().import("numpy")?;
    let arr = np.call_method1("asarray", (t, "float64"))?;
    let v: Vec<f64> = arr
        .call_method0("ravel")?
        .call_method0("tolist")?
        .extract()?;
    Ok(if v.len() == 1 {
        Timesteps::Scalar(v[0])
    } else {
        Timesteps::PerSample(v)
    })
}

#[pymethods]
impl UNet2DConditionModel {
    /// Loads a diffusers folder (`config.json` + weights) or a pipeline folder with `unet/`
    /// onto `device`; `torch_dtype` and `variant` as for `AutoencoderKL.from_pretrained`.
    #[staticmethod]
    #[pyo3(signature = (path, *, device="cpu", torch_dtype=None, variant=None))]
    fn from_pretrained(
        py: Python<'_>,
        path: std::path::PathBuf,
        device: &str,
        torch_dtype: Option<&Bound<'_, PyAny>>,
        variant: Option<String>,
    ) -> PyResult<Self> {
        let device = PyDevice::parse(device)?;
        let options = load_options(torch_dtype, variant)?;
        let inner = py
            .detach(|| CoreUNet::from_pretrained_with(&path, &options, &device.device))
            .map_err(to_py_err)?;
        Ok(UNet2DConditionModel { inner, device })
    }

    /// The element type the layer weights are kept in (`"float32"`, `"float16"`,
    /// `"bfloat16"`).
    #[getter]
    fn dtype(&self) -> &'static str {
        weights_dtype(&self.inner)
    }

    /// The device the model is on (canonical name).
    #[getter]
    fn device(&self) -> String {
        self.device.name.clone()
    }

    /// `unet(sample, timestep, encoder_hidden_states=None)` -> the prediction
    /// `(B, out_channels, h, w)`; `timestep` is a number or one per sample.
    #[pyo3(signature = (sample, timestep, encoder_hidden_states=None))]
    fn __call__<'py>(
        &self,
        py: Python<'py>,
        sample: PyReadonlyArrayDyn<'py, f32>,
        timestep: &Bound<'py, PyAny>,
        encoder_hidden_states: Option<PyReadonlyArrayDyn<'py, f32>>,
    ) -> Out<'py> {
        let dev = &self.device.device;
        let x = tensor4("sample", &sample, dev)?;
        let t = timesteps_from(timestep)?;
        let e = match encoder_hidden_states {
            Some(e) => Some(tensor3("encoder_hidden_states", &e, dev)?),
            None => None,
        };
        let out = py
            .detach(|| self.inner.forward(x, t, e.as_ref()))
            .map_err(to_py_err)?;
        out4(py, out)
    }

    #[getter]
    fn in_channels(&self) -> usize {
        self.inner.config.in_channels
    }

    fn __repr__(&self) -> String {
        format!(
            "UNet2DConditionModel(in_channels={}, block_out_channels={:?})",
            self.inner.config.in_channels, self.inner.config.block_out_channels
        )
    }
}

/// A scheduler (DDIM, DDPM or DPM-Solver multistep) built from a diffusers config given as
/// JSON text; `python/vton/diffusion.py` gives it diffusers' class names.
#[pyclass(name = "_Scheduler", module = "vton._vton", frozen)]
struct Scheduler {
    inner: Mutex<Box<dyn CoreScheduler>>,
    device: PyDevice,
}

#[pymethods]
impl Scheduler {
    #[new]
    #[pyo3(signature = (config_json, *, device="cpu"))]
    fn new(config_json: &str, device: &str) -> PyResult<Self> {
        let device = PyDevice::parse(device)?;
        let text = vton_core::models::pretrained::python_json(config_json);
        let v: serde_json::Value = serde_json::from_str(&text).map_err(|e| {
            to_py_err(VtonError::Json {
                what: "scheduler config".into(),
                message: e.to_string(),
            })
        })?;
        Ok(Scheduler {
            inner: Mutex::new(scheduler_from_config(&v).map_err(to_py_err)?),
            device,
        })
    }

    /// The device the steps compute on (canonical name).
    #[getter]
    fn device(&self) -> String {
        self.device.name.clone()
    }

    fn set_timesteps(&self, n: usize) -> PyResult<()> {
        lock(&self.inner)?.set_timesteps(n).map_err(to_py_err)
    }

    fn timesteps(&self) -> PyResult<Vec<i64>> {
        Ok(lock(&self.inner)?.timesteps().to_vec())
    }

    fn init_noise_sigma(&self) -> PyResult<f32> {
        Ok(lock(&self.inner)?.init_noise_sigma())
    }

    #[pyo3(signature = (model_output, timestep, sample, eta=0.0, variance_noise=None, seed=0))]
    fn step<'py>(
        &self,
        py: Python<'py>,
        model_output: PyReadonlyArrayDyn<'py, f32>,
        timestep: i64,
        sample: PyReadonlyArrayDyn<'py, f32>,
        eta: f32,
        variance_noise: Option<PyReadonlyArrayDyn<'py, f32>>,
        seed: u64,
    ) -> Out<'py> {
        let dev = &self.device.device;
        let m = tensor4("model_output", &model_output, dev)?;
        let s = tensor4("sample", &sample, dev)?;
        let v = match variance_noise {
            Some(v) => Some(tensor4("variance_noise", &v, dev)?),
            None => None,
        };
        let mut guard = lock(&self.inner)?;
        let sch: &mut Box<dyn CoreScheduler> = &mut guard;
        let out = py
            .detach(|| sch.step(m, timestep, s, eta, v, seed))
            .map_err(to_py_err)?;
        out4(py, out.prev_sample)
    }

    fn add_noise<'py>(
        &self,
        py: Python<'py>,
        original: PyReadonlyArrayDyn<'py, f32>,
        noise: PyReadonlyArrayDyn<'py, f32>,
        timesteps: Vec<i64>,
    ) -> Out<'py> {
        let dev = &self.device.device;
        let o = tensor4("original_samples", &original, dev)?;
        let n = tensor4("noise", &noise, dev)?;
        let out = lock(&self.inner)?
            .add_noise(o, n, &timesteps)
            .map_err(to_py_err)?;
        out4(py, out)
    }
}

/// Runs a pipeline with the GIL released, taking it back for each callback.
fn run_with_callback<T: Send>(
    py: Python<'_>,
    callback: Option<Py<PyAny>>,
    f: impl FnOnce(&mut dyn FnMut(Progress) -> Control) -> vton_core::Result<T> + Send,
) -> PyResult<T> {
    let mut cb_err: Option<PyErr> = None;
    let result = py.detach(|| {
        let mut cb = |p: Progress| -> Control {
            let Some(cb) = &callback else {
                return Control::Continue;
            };
            Python::attach(|py| match cb.call1(py, (p.step, p.total, p.timestep)) {
                Ok(v) => {
                    // `False` cancels; None / True / anything else continues.
                    if v.bind(py).extract::<bool>().ok() == Some(false) {
                        Control::Cancel
                    } else {
                        Control::Continue
                    }
                }
                Err(e) => {
                    cb_err = Some(e);
                    Control::Cancel
                }
            })
        };
        f(&mut cb)
    });
    if let Some(e) = cb_err {
        return Err(e);
    }
    result.map_err(to_py_err)
}

fn options(
    steps: usize,
    guidance: f32,
    seed: u64,
    eta: f32,
    noise: Option<PyReadonlyArrayDyn<'_, f32>>,
    keep_unmasked: bool,
    device: &Device,
) -> PyResult<SamplingOptions> {
    Ok(SamplingOptions {
        steps,
        guidance_scale: guidance,
        seed,
        eta,
        initial_noise: match noise {
            Some(n) => Some(tensor4("noise", &n, device)?),
            None => None,
        },
        keep_unmasked,
    })
}

/// CatVTON's concatenation try-on.
#[pyclass(name = "CatVTONPipeline", module = "vton", frozen)]
struct CatVTONPipeline {
    inner: Mutex<CorePipe>,
    device: PyDevice,
}

#[pymethods]
impl CatVTONPipeline {
    /// `base_path`: a diffusers inpainting pipeline folder (`vae/`, `unet/`, `scheduler/`);
    /// `attn_checkpoint`: CatVTON's attention weights (file or folder); `device`: where the
    /// models are loaded and every call computes; `torch_dtype` / `variant` as diffusers'
    /// (half-precision weights, float32 computation; `variant="fp16"` files).
    #[staticmethod]
    #[pyo3(signature = (base_path, attn_checkpoint=None, *, device="cpu", torch_dtype=None, variant=None))]
    fn from_pretrained(
        py: Python<'_>,
        base_path: std::path::PathBuf,
        attn_checkpoint: Option<std::path::PathBuf>,
        device: &str,
        torch_dtype: Option<&Bound<'_, PyAny>>,
        variant: Option<String>,
    ) -> PyResult<Self> {
        let device = PyDevice::parse(device)?;
        let options = load_options(torch_dtype, variant)?;
        let inner = py
            .detach(|| {
                CorePipe::from_pretrained_with_options(
                    &base_path,
                    None,
                    attn_checkpoint.as_deref(),
                    &options,
                    &device.device,
                )
            })
            .map_err(to_py_err)?;
        Ok(CatVTONPipeline {
            inner: Mutex::new(inner),
            device,
        })
    }

    /// The device the pipeline's models are on (canonical name).
    #[getter]
    fn device(&self) -> String {
        self.device.name.clone()
    }

    /// `person`, `garment` `(B, 3, H, W)` and `mask` `(B, 1, H, W)` in `[0, 1]`.
    #[pyo3(signature = (person, garment, mask, steps=50, guidance=2.5, seed=0, callback=None, eta=0.0, noise=None, keep_unmasked=true))]
    #[allow(clippy::too_many_arguments)]
    fn __call__<'py>(
        &self,
        py: Python<'py>,
        person: PyReadonlyArrayDyn<'py, f32>,
        garment: PyReadonlyArrayDyn<'py, f32>,
        mask: PyReadonlyArrayDyn<'py, f32>,
        steps: usize,
        guidance: f32,
        seed: u64,
        callback: Option<Py<PyAny>>,
        eta: f32,
        noise: Option<PyReadonlyArrayDyn<'py, f32>>,
        keep_unmasked: bool,
    ) -> Out<'py> {
        let dev = &self.device.device;
        let (p, g, m) = (
            tensor4("person", &person, dev)?,
            tensor4("garment", &garment, dev)?,
            tensor4("mask", &mask, dev)?,
        );
        let opts = options(steps, guidance, seed, eta, noise, keep_unmasked, dev)?;
        let mut guard = lock(&self.inner)?;
        let pipe: &mut CorePipe = &mut guard;
        let out = run_with_callback(py, callback, |cb| pipe.run(p, g, m, &opts, cb))?;
        out4(py, out)
    }
}

/// Warping first, diffusion second: inpainting around a pasted warped garment.
#[pyclass(name = "InpaintTryOnPipeline", module = "vton", frozen)]
struct InpaintTryOnPipeline {
    inner: Mutex<CoreInpaint>,
    device: PyDevice,
}

#[pymethods]
impl InpaintTryOnPipeline {
    /// `base_path`: a diffusers inpainting pipeline folder; `device`: where the models are
    /// loaded and every call computes; `torch_dtype` / `variant` as for `CatVTONPipeline`.
    #[staticmethod]
    #[pyo3(signature = (base_path, *, device="cpu", torch_dtype=None, variant=None))]
    fn from_pretrained(
        py: Python<'_>,
        base_path: std::path::PathBuf,
        device: &str,
        torch_dtype: Option<&Bound<'_, PyAny>>,
        variant: Option<String>,
    ) -> PyResult<Self> {
        let device = PyDevice::parse(device)?;
        let options = load_options(torch_dtype, variant)?;
        let inner = py
            .detach(|| CoreInpaint::from_pretrained_with(&base_path, &options, &device.device))
            .map_err(to_py_err)?;
        Ok(InpaintTryOnPipeline {
            inner: Mutex::new(inner),
            device,
        })
    }

    /// The device the pipeline's models are on (canonical name).
    #[getter]
    fn device(&self) -> String {
        self.device.name.clone()
    }

    /// `person` `(B, 3, H, W)`, `mask` `(B, 1, H, W)`, `warped_garment`, `warped_mask`;
    /// `strength` starts from the noised composite (DCI-VTON) instead of pure noise.
    #[pyo3(signature = (person, mask, warped_garment, warped_mask, steps=50, guidance=2.5, seed=0, callback=None, eta=0.0, strength=None, encoder_hidden_states=None, noise=None, keep_unmasked=true))]
    #[allow(clippy::too_many_arguments)]
    fn __call__<'py>(
        &self,
        py: Python<'py>,
        person: PyReadonlyArrayDyn<'py, f32>,
        mask: PyReadonlyArrayDyn<'py, f32>,
        warped_garment: PyReadonlyArrayDyn<'py, f32>,
        warped_mask: PyReadonlyArrayDyn<'py, f32>,
        steps: usize,
        guidance: f32,
        seed: u64,
        callback: Option<Py<PyAny>>,
        eta: f32,
        strength: Option<f32>,
        encoder_hidden_states: Option<PyReadonlyArrayDyn<'py, f32>>,
        noise: Option<PyReadonlyArrayDyn<'py, f32>>,
        keep_unmasked: bool,
    ) -> Out<'py> {
        let dev = &self.device.device;
        let inputs = InpaintInputs {
            person: tensor4("person", &person, dev)?,
            mask: tensor4("mask", &mask, dev)?,
            warped_garment: tensor4("warped_garment", &warped_garment, dev)?,
            warped_mask: tensor4("warped_mask", &warped_mask, dev)?,
            encoder_hidden_states: match encoder_hidden_states {
                Some(e) => Some(tensor3("encoder_hidden_states", &e, dev)?),
                None => None,
            },
            start_from_warped: strength,
        };
        let opts = options(steps, guidance, seed, eta, noise, keep_unmasked, dev)?;
        let mut guard = lock(&self.inner)?;
        let pipe: &mut CoreInpaint = &mut guard;
        let out = run_with_callback(py, callback, |cb| pipe.run(&inputs, &opts, cb))?;
        out4(py, out)
    }
}

pub(crate) fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<AutoencoderKL>()?;
    m.add_class::<DiagonalGaussian>()?;
    m.add_class::<UNet2DConditionModel>()?;
    m.add_class::<Scheduler>()?;
    m.add_class::<CatVTONPipeline>()?;
    m.add_class::<InpaintTryOnPipeline>()?;
    Ok(())
}
