//! DanMenCas/DCI-VITON from Python: `DCIVITONWarping` (`WarpingProcess`), `DCIVITONUNet`
//! (`diffusionmodel.UNet`), `DCIVITONScheduler` (`NoiseScheduler`) and the composed
//! pipeline (`WarpingCloth` then `VitonPipeline.__call__`, wrapped by `python/vton`).
//!
//! Arrays are float32 NCHW (flows NHWC `(x, y)`), as the original's tensors. Widths come
//! from the checkpoints: a width keyword left at `None` is read from the weights, a given
//! one must agree with them (a `CheckpointError` naming both otherwise). Every object keeps
//! the device it was loaded on (`device="cpu"` by default) and computes there.

use numpy::ndarray::{Array1, Array2};
use numpy::{IntoPyArray, PyArrayDyn, PyReadonlyArrayDyn};
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyList, PyTuple};
use vton_core::burn::tensor::Tensor;
use vton_core::io::image::tensor_to_vec;
use vton_core::io::{ParseMap, PersonSelection, Pose};
use vton_core::masks::{estimate_garment_mask, GarmentMaskOptions};
use vton_core::models::dci_viton::{DciVitonUNet, DciVitonUNetOptions, DciVitonWarping};
use vton_core::models::Timesteps;
use vton_core::pipelines::dci_viton::{DciVitonInputs, DciVitonOptions, DciVitonPipeline};
use vton_core::pipelines::diffusion::{Control, Progress};
use vton_core::schedulers::dci_viton::{DciBetaSchedule, DciSampler, DciVitonScheduler};
use vton_core::VtonError;

use crate::estimate::{preprocessor, PyHumanParser};
use crate::{
    bad, dyn_out, image_from, image_to_py, mask_from, mask_to_py, shape_of, tensor4, to_py_err,
    to_vec, PyDevice,
};

type Out<'py> = PyResult<Bound<'py, PyArrayDyn<f32>>>;

fn out<'py>(py: Python<'py>, t: Tensor<4>) -> Out<'py> {
    let shape = t.dims().to_vec();
    dyn_out(py, shape, tensor_to_vec(t).map_err(to_py_err)?)
}

fn table<'py>(py: Python<'py>, v: &[f32]) -> Bound<'py, PyAny> {
    Array1::from(v.to_vec()).into_pyarray(py).into_any()
}

/// A width keyword against the checkpoint: `None` accepts what the weights say.
fn expect_width(
    model: &str,
    name: &str,
    given: Option<usize>,
    found: usize,
    key: &str,
) -> PyResult<()> {
    match given {
        Some(g) if g != found => Err(to_py_err(VtonError::Config {
            what: format!("{model} {name}"),
            message: format!(
                "{name}={g} was given, but the checkpoint has {name}={found} (read from {key}); \
                 leave it unset to take the checkpoint's"
            ),
        })),
        _ => Ok(()),
    }
}

/// Timesteps as the original indexes with them: a Python / numpy integer (one for the
/// batch) or a 1-D integer array (one per sample, or one).
fn int_timesteps(t: &Bound<'_, PyAny>, name: &str) -> PyResult<(Vec<i64>, bool)> {
    if !t.is_instance_of::<pyo3::types::PyFloat>() {
        if let Ok(v) = t.extract::<i64>() {
            return Ok((vec![v], true));
        }
    }
    let err = || {
        bad(format!(
            "{name} must be an int or a 1-D integer array, got {}",
            t.get_type()
                .name()
                .map(|n| n.to_string())
                .unwrap_or_else(|_| "?".into())
        ))
    };
    let np = t.py().import("numpy")?;
    let arr = np.call_method1("asarray", (t,)).map_err(|_| err())?;
    let ndim: usize = arr.getattr("ndim")?.extract()?;
    let kind: String = arr.getattr("dtype")?.getattr("kind")?.extract()?;
    if ndim > 1 || !matches!(kind.as_str(), "i" | "u") {
        return Err(err());
    }
    let v: Vec<i64> = arr
        .call_method1("astype", ("int64",))?
        .call_method0("ravel")?
        .call_method0("tolist")?
        .extract()?;
    if v.is_empty() {
        return Err(bad(format!("{name} is empty")));
    }
    Ok((v, ndim == 0))
}

/// Runs `f` with the GIL released, taking it back for each progress callback
/// `progress(step, total, timestep)`; `False` cancels (`CancelledError`), an exception in
/// the callback cancels and is re-raised.
fn with_progress<T: Send>(
    py: Python<'_>,
    progress: Option<Py<PyAny>>,
    f: impl FnOnce(&mut dyn FnMut(Progress) -> Control) -> vton_core::Result<T> + Send,
) -> PyResult<T> {
    let mut cb_err: Option<PyErr> = None;
    let result = py.detach(|| {
        let mut cb = |p: Progress| -> Control {
            let Some(cb) = &progress else {
                return Control::Continue;
            };
            Python::attach(|py| match cb.call1(py, (p.step, p.total, p.timestep)) {
                Ok(v) if v.bind(py).extract::<bool>().ok() == Some(false) => Control::Cancel,
                Ok(_) => Control::Continue,
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

/// `WarpingProcess(oc)`: the multi-scale flow-warping network.
#[pyclass(name = "DCIVITONWarping", module = "vton", frozen)]
struct Warping {
    inner: DciVitonWarping,
    device: PyDevice,
}

#[pymethods]
impl Warping {
    /// Loads a warping checkpoint as the repository saves it (`{'model_state_dict': ...,
    /// 'optimizer_state_dict': ...}`), a bare state dict or safetensors. `oc` (the
    /// original's 96) is read from the weights; given, it must agree.
    #[staticmethod]
    #[pyo3(signature = (path, oc=None, *, device="cpu"))]
    fn from_checkpoint(
        py: Python<'_>,
        path: std::path::PathBuf,
        oc: Option<usize>,
        device: &str,
    ) -> PyResult<Self> {
        let device = PyDevice::parse(device)?;
        let inner = py
            .detach(|| DciVitonWarping::from_checkpoint(&path, &device.device))
            .map_err(to_py_err)?;
        expect_width(
            "DCI-VITON warping",
            "oc",
            oc,
            inner.config().oc,
            "clothingencoder.resnet1.scale.weight",
        )?;
        Ok(Warping { inner, device })
    }

    /// The device the model is on and computes on (canonical name).
    #[getter]
    fn device(&self) -> String {
        self.device.name.clone()
    }

    #[getter]
    fn oc(&self) -> usize {
        self.inner.config().oc
    }

    #[getter]
    fn input_1_channels(&self) -> usize {
        self.inner.config().input_1_channels
    }

    #[getter]
    fn input_2_channels(&self) -> usize {
        self.inner.config().input_2_channels
    }

    /// `warp(input_1 (B, 4, S, S), input_2 (B, 6, S, S))` -> `(warped_c, warped_cm,
    /// flow_list)`; `S` square, a multiple of 32, at least 64.
    fn __call__<'py>(
        &self,
        py: Python<'py>,
        input_1: PyReadonlyArrayDyn<'py, f32>,
        input_2: PyReadonlyArrayDyn<'py, f32>,
    ) -> PyResult<Bound<'py, PyTuple>> {
        let dev = &self.device.device;
        let (a, b) = (
            tensor4("input_1", &input_1, dev)?,
            tensor4("input_2", &input_2, dev)?,
        );
        let (wc, wcm, flows) = py.detach(|| self.inner.forward(a, b)).map_err(to_py_err)?;
        warp_tuple(py, wc, wcm, flows)
    }

    fn __repr__(&self) -> String {
        let c = self.inner.config();
        format!(
            "DCIVITONWarping(oc={}, input_1_channels={}, input_2_channels={}, device='{}')",
            c.oc, c.input_1_channels, c.input_2_channels, self.device.name
        )
    }
}

fn warp_tuple<'py>(
    py: Python<'py>,
    wc: Tensor<4>,
    wcm: Tensor<4>,
    flows: Vec<Tensor<4>>,
) -> PyResult<Bound<'py, PyTuple>> {
    let flows = flows
        .into_iter()
        .map(|f| out(py, f))
        .collect::<PyResult<Vec<_>>>()?;
    PyTuple::new(
        py,
        [
            out(py, wc)?.into_any(),
            out(py, wcm)?.into_any(),
            PyList::new(py, flows)?.into_any(),
        ],
    )
}

/// `diffusionmodel.UNet`: the AdaGN / squeeze-excitation noise predictor.
#[pyclass(name = "DCIVITONUNet", module = "vton", frozen)]
struct UNet {
    inner: DciVitonUNet,
    device: PyDevice,
}

#[pymethods]
impl UNet {
    /// Loads a U-Net checkpoint (`{'model_state_dict': ..., 'optimizer_state_dict': ...}`,
    /// a bare state dict or safetensors). The widths (the original's defaults: 9, 4, 64,
    /// 256) are read from the weights; given, they must agree. `num_groups` (the
    /// original's literal 8) is not in the checkpoint; `se_reduction` (16) is read from
    /// the SE weights when not given.
    #[staticmethod]
    #[allow(clippy::too_many_arguments)]
    #[pyo3(signature = (path, input_channels=None, output_channels=None, hidden_channels=None,
                        time_emb_dim=None, num_groups=8, se_reduction=None, *, device="cpu"))]
    fn from_checkpoint(
        py: Python<'_>,
        path: std::path::PathBuf,
        input_channels: Option<usize>,
        output_channels: Option<usize>,
        hidden_channels: Option<usize>,
        time_emb_dim: Option<usize>,
        num_groups: usize,
        se_reduction: Option<usize>,
        device: &str,
    ) -> PyResult<Self> {
        let device = PyDevice::parse(device)?;
        let opts = DciVitonUNetOptions {
            num_groups,
            se_reduction,
        };
        let inner = py
            .detach(|| DciVitonUNet::from_checkpoint(&path, &opts, &device.device))
            .map_err(to_py_err)?;
        let c = inner.config();
        let m = "DCI-VITON UNet";
        let (up, down, t1) = (
            "upfeature.conv.weight",
            "downfeature.conv.weight",
            "time_mlp.1.weight",
        );
        expect_width(m, "input_channels", input_channels, c.input_channels, up)?;
        expect_width(
            m,
            "output_channels",
            output_channels,
            c.output_channels,
            down,
        )?;
        expect_width(m, "hidden_channels", hidden_channels, c.hidden_channels, up)?;
        expect_width(m, "time_emb_dim", time_emb_dim, c.time_emb_dim, t1)?;
        Ok(UNet { inner, device })
    }

    /// The device the model is on and computes on (canonical name).
    #[getter]
    fn device(&self) -> String {
        self.device.name.clone()
    }

    #[getter]
    fn input_channels(&self) -> usize {
        self.inner.config().input_channels
    }

    #[getter]
    fn output_channels(&self) -> usize {
        self.inner.config().output_channels
    }

    #[getter]
    fn hidden_channels(&self) -> usize {
        self.inner.config().hidden_channels
    }

    #[getter]
    fn time_emb_dim(&self) -> usize {
        self.inner.config().time_emb_dim
    }

    #[getter]
    fn num_groups(&self) -> usize {
        self.inner.options.num_groups
    }

    /// The SE reduction given at loading (`None`: every bottleneck read from its weights).
    #[getter]
    fn se_reduction(&self) -> Option<usize> {
        self.inner.options.se_reduction
    }

    /// `unet(x (B, input_channels, H, W), t)` -> the noise prediction `(B,
    /// output_channels, H, W)`; `t` an int (the whole batch) or a 1-D integer array (one
    /// per sample, or one).
    fn __call__<'py>(
        &self,
        py: Python<'py>,
        x: PyReadonlyArrayDyn<'py, f32>,
        t: &Bound<'py, PyAny>,
    ) -> Out<'py> {
        let x = tensor4("x", &x, &self.device.device)?;
        let (ts, scalar) = int_timesteps(t, "t")?;
        let ts = if scalar {
            Timesteps::Scalar(ts[0] as f64)
        } else {
            Timesteps::PerSample(ts.into_iter().map(|v| v as f64).collect())
        };
        let o = py.detach(|| self.inner.forward(x, ts)).map_err(to_py_err)?;
        out(py, o)
    }

    fn __repr__(&self) -> String {
        let c = self.inner.config();
        format!(
            "DCIVITONUNet(input_channels={}, output_channels={}, hidden_channels={}, \
             time_emb_dim={}, num_groups={}, device='{}')",
            c.input_channels,
            c.output_channels,
            c.hidden_channels,
            c.time_emb_dim,
            self.inner.options.num_groups,
            self.device.name
        )
    }
}

/// `NoiseScheduler(timesteps, beta_schedule)`: DCI-VITON's DDPM tables.
#[pyclass(name = "DCIVITONScheduler", module = "vton", frozen)]
struct Scheduler {
    inner: DciVitonScheduler,
    device: PyDevice,
}

#[pymethods]
impl Scheduler {
    #[new]
    #[pyo3(signature = (timesteps=1000, beta_schedule="linear", *, device="cpu"))]
    fn new(timesteps: usize, beta_schedule: &str, device: &str) -> PyResult<Self> {
        let device = PyDevice::parse(device)?;
        let schedule = DciBetaSchedule::from_name(beta_schedule).map_err(to_py_err)?;
        let inner = DciVitonScheduler::new(timesteps, schedule).map_err(to_py_err)?;
        Ok(Scheduler { inner, device })
    }

    /// The device the arithmetic runs on (canonical name).
    #[getter]
    fn device(&self) -> String {
        self.device.name.clone()
    }

    /// The number of timesteps (the original's `timesteps` attribute).
    #[getter]
    fn timesteps(&self) -> usize {
        self.inner.num_timesteps
    }

    #[getter]
    fn beta_schedule(&self) -> &'static str {
        match self.inner.schedule {
            DciBetaSchedule::Linear => "linear",
            DciBetaSchedule::Cosine => "cosine",
        }
    }

    #[getter]
    fn betas<'py>(&self, py: Python<'py>) -> Bound<'py, PyAny> {
        table(py, &self.inner.betas)
    }

    #[getter]
    fn alphas<'py>(&self, py: Python<'py>) -> Bound<'py, PyAny> {
        table(py, &self.inner.alphas)
    }

    #[getter]
    fn alphas_cumprod<'py>(&self, py: Python<'py>) -> Bound<'py, PyAny> {
        table(py, &self.inner.alphas_cumprod)
    }

    #[getter]
    fn sqrt_alphas_cumprod<'py>(&self, py: Python<'py>) -> Bound<'py, PyAny> {
        table(py, &self.inner.sqrt_alphas_cumprod)
    }

    #[getter]
    fn sqrt_one_minus_alphas_cumprod<'py>(&self, py: Python<'py>) -> Bound<'py, PyAny> {
        table(py, &self.inner.sqrt_one_minus_alphas_cumprod)
    }

    /// `get_noisy_image(x_0, t, noise=None)` -> `(x_t, noise)`: `sqrt(ab_t) x_0 + sqrt(1 -
    /// ab_t) noise`. Without `noise`, standard-normal noise is drawn from vton's generator
    /// with `seed` (the original draws `torch.randn_like`).
    #[pyo3(signature = (x_0, t, noise=None, *, seed=0))]
    fn get_noisy_image<'py>(
        &self,
        py: Python<'py>,
        x_0: PyReadonlyArrayDyn<'py, f32>,
        t: &Bound<'py, PyAny>,
        noise: Option<PyReadonlyArrayDyn<'py, f32>>,
        seed: u64,
    ) -> PyResult<Bound<'py, PyTuple>> {
        let dev = &self.device.device;
        let x0 = tensor4("x_0", &x_0, dev)?;
        let (ts, _) = int_timesteps(t, "t")?;
        let noise = match noise {
            Some(n) => tensor4("noise", &n, dev)?,
            None => vton_core::rng::randn(x0.dims(), seed, dev),
        };
        let xt = py
            .detach(|| self.inner.get_noisy_image(&x0, &ts, &noise))
            .map_err(to_py_err)?;
        PyTuple::new(py, [out(py, xt)?, out(py, noise)?])
    }

    /// `denoise_image(x_t, t, noise_unet)` -> `x_0 = (x_t - sqrt(1 - ab_t) noise_unet) /
    /// sqrt(ab_t)`.
    fn denoise_image<'py>(
        &self,
        py: Python<'py>,
        x_t: PyReadonlyArrayDyn<'py, f32>,
        t: &Bound<'py, PyAny>,
        noise_unet: PyReadonlyArrayDyn<'py, f32>,
    ) -> Out<'py> {
        let dev = &self.device.device;
        let (x, e) = (
            tensor4("x_t", &x_t, dev)?,
            tensor4("noise_unet", &noise_unet, dev)?,
        );
        let (ts, _) = int_timesteps(t, "t")?;
        let x0 = py
            .detach(|| self.inner.denoise_image(&x, &ts, &e))
            .map_err(to_py_err)?;
        out(py, x0)
    }

    /// The pipeline's timesteps `torch.linspace(T - 1, 0, n).long()`.
    fn sampling_timesteps(&self, n: usize) -> PyResult<Vec<i64>> {
        self.inner.sampling_timesteps(n).map_err(to_py_err)
    }

    fn __repr__(&self) -> String {
        format!(
            "DCIVITONScheduler(timesteps={}, beta_schedule='{}')",
            self.inner.num_timesteps,
            self.beta_schedule()
        )
    }
}

fn parse_map(a: &PyReadonlyArrayDyn<'_, f32>) -> PyResult<ParseMap> {
    let s = shape_of(a);
    if s.len() != 2 {
        return Err(bad(format!(
            "parse must be an (H, W) LIP label array, got shape {s:?}"
        )));
    }
    let labels: Option<Vec<u8>> = a
        .as_array()
        .iter()
        .map(|&v| ((0.0..20.0).contains(&v) && v.fract() == 0.0).then_some(v as u8))
        .collect();
    let labels =
        labels.ok_or_else(|| bad("parse labels must be integers in 0..20 (LIP)".into()))?;
    ParseMap::new(s[1], s[0], labels, 20).map_err(to_py_err)
}

fn pose_from(a: &PyReadonlyArrayDyn<'_, f32>) -> PyResult<Pose> {
    let s = shape_of(a);
    if s.len() != 2 || s[1] != 3 {
        return Err(bad(format!(
            "keypoints must be a (25, 3) or (18, 3) array, got shape {s:?}"
        )));
    }
    Pose::from_flat(&to_vec(a)).map_err(to_py_err)
}

/// The DCI-VITON pipeline; `python/vton` wraps it as `DCIVITONPipeline`.
#[pyclass(name = "_DCIVITONPipeline", module = "vton", frozen)]
struct Pipeline {
    inner: DciVitonPipeline,
    device: PyDevice,
}

#[pymethods]
impl Pipeline {
    /// The warping and U-Net checkpoints and a diffusers VAE folder (`vae/` inside it is
    /// looked for too). `num_groups` and `se_reduction` as `DCIVITONUNet.from_checkpoint`.
    #[staticmethod]
    #[pyo3(signature = (warping, unet, vae, num_groups=8, se_reduction=None, *, device="cpu"))]
    fn from_checkpoints(
        py: Python<'_>,
        warping: std::path::PathBuf,
        unet: std::path::PathBuf,
        vae: std::path::PathBuf,
        num_groups: usize,
        se_reduction: Option<usize>,
        device: &str,
    ) -> PyResult<Self> {
        let device = PyDevice::parse(device)?;
        let opts = DciVitonUNetOptions {
            num_groups,
            se_reduction,
        };
        let inner = py
            .detach(|| {
                DciVitonPipeline::from_checkpoints(&warping, &unet, &vae, &opts, &device.device)
            })
            .map_err(to_py_err)?;
        Ok(Pipeline { inner, device })
    }

    /// The device the networks are on (canonical name).
    #[getter]
    fn device(&self) -> String {
        self.device.name.clone()
    }

    /// The try-on on photos (float32 arrays in [0, 1]); missing keypoints are estimated
    /// with the bundled pose models, a missing parse with `parser`, a missing garment mask
    /// from the product photo. Returns a dict of arrays.
    #[allow(clippy::too_many_arguments)]
    #[pyo3(signature = (person, garment, densepose, parse=None, keypoints=None, garment_mask=None,
                        parser=None, steps=200, seed=0, warp_size=256, image_size=512,
                        sampler="original", eta=0.0, progress=None))]
    fn try_on<'py>(
        &self,
        py: Python<'py>,
        person: PyReadonlyArrayDyn<'py, f32>,
        garment: PyReadonlyArrayDyn<'py, f32>,
        densepose: PyReadonlyArrayDyn<'py, f32>,
        parse: Option<PyReadonlyArrayDyn<'py, f32>>,
        keypoints: Option<PyReadonlyArrayDyn<'py, f32>>,
        garment_mask: Option<PyReadonlyArrayDyn<'py, f32>>,
        parser: Option<Bound<'py, PyHumanParser>>,
        steps: usize,
        seed: u64,
        warp_size: usize,
        image_size: usize,
        sampler: &str,
        eta: f32,
        progress: Option<Py<PyAny>>,
    ) -> PyResult<Bound<'py, PyDict>> {
        let person = image_from("person", &person)?;
        let garment = image_from("garment", &garment)?;
        let densepose = image_from("densepose", &densepose)?;
        let parse = parse.as_ref().map(parse_map).transpose()?;
        let pose = keypoints.as_ref().map(pose_from).transpose()?;
        let gmask = garment_mask
            .as_ref()
            .map(|m| mask_from("garment_mask", m))
            .transpose()?;
        let parser = parser.as_ref().map(|p| &p.get().inner);
        let opts = DciVitonOptions {
            warp_size,
            image_size,
            steps,
            seed,
            sampler: DciSampler::from_name(sampler, eta).map_err(to_py_err)?,
            ..Default::default()
        };
        let dev = &self.device;
        let r = with_progress(py, progress, |cb| {
            let parse = match (parse, parser) {
                (Some(p), _) => p,
                (None, Some(parser)) => parser.parse_lip(&person)?,
                (None, None) => {
                    return Err(VtonError::invalid(
                        "parse",
                        "DCI-VITON needs a LIP parse of the person: give parse= (an (H, W) \
                         label map) or parser= (a vton.HumanParser) to estimate it",
                    ))
                }
            };
            let pose = match pose {
                Some(p) => p,
                None => preprocessor(dev)?
                    .pose_estimator()
                    .estimate_one(&person, PersonSelection::Largest)?
                    .to_body25(),
            };
            let gmask = match gmask {
                Some(m) => m,
                None => estimate_garment_mask(&garment, &GarmentMaskOptions::default())?,
            };
            let inputs = DciVitonInputs {
                person: &person,
                parse: &parse,
                pose: &pose,
                densepose: &densepose,
                garment: &garment,
                garment_mask: &gmask,
            };
            self.inner.run(&inputs, &opts, cb)
        })?;
        let d = PyDict::new(py);
        d.set_item("image", image_to_py(py, r.image)?)?;
        d.set_item("warped", image_to_py(py, r.warped)?)?;
        d.set_item("agnostic", image_to_py(py, r.agnostic.agnostic)?)?;
        d.set_item("agnostic_mask", mask_to_py(py, r.agnostic.agnostic_mask)?)?;
        let pa = r.agnostic.parse_agnostic;
        let labels = Array2::from_shape_vec((pa.height, pa.width), pa.labels)
            .map_err(|e| bad(e.to_string()))?;
        d.set_item("parse_agnostic", labels.into_pyarray(py))?;
        Ok(d)
    }

    /// The warping network on `(input_1, input_2)` -> `(warped_c, warped_cm, flow_list)`.
    fn warp<'py>(
        &self,
        py: Python<'py>,
        input_1: PyReadonlyArrayDyn<'py, f32>,
        input_2: PyReadonlyArrayDyn<'py, f32>,
    ) -> PyResult<Bound<'py, PyTuple>> {
        let dev = &self.device.device;
        let (a, b) = (
            tensor4("input_1", &input_1, dev)?,
            tensor4("input_2", &input_2, dev)?,
        );
        let (wc, wcm, flows) = py
            .detach(|| self.inner.warping.forward(a, b))
            .map_err(to_py_err)?;
        warp_tuple(py, wc, wcm, flows)
    }

    /// `z_cond`: the composite `(1, 3, S, S)` in [0, 1] resized to `image_size`, mapped to
    /// [-1, 1], VAE-encoded, a posterior sample (`noise`, or drawn with `seed`) times
    /// 0.18215.
    #[pyo3(signature = (composite, image_size=512, noise=None, seed=0))]
    fn condition<'py>(
        &self,
        py: Python<'py>,
        composite: PyReadonlyArrayDyn<'py, f32>,
        image_size: usize,
        noise: Option<PyReadonlyArrayDyn<'py, f32>>,
        seed: u64,
    ) -> Out<'py> {
        let dev = &self.device.device;
        let c = tensor4("composite", &composite, dev)?;
        let noise = noise
            .as_ref()
            .map(|n| tensor4("noise", n, dev))
            .transpose()?;
        let z = py
            .detach(|| {
                if image_size == 0 || image_size % 8 != 0 {
                    return Err(VtonError::invalid(
                        "image_size",
                        format!("{image_size} is not a positive multiple of 8"),
                    ));
                }
                let mut bad_noise = None;
                let z = self.inner.condition(c, image_size, |dims| match noise {
                    Some(n) if n.dims() == dims => n,
                    Some(n) => {
                        bad_noise = Some(n.dims());
                        vton_core::rng::randn(dims, seed, dev)
                    }
                    None => vton_core::rng::randn(dims, seed, dev),
                })?;
                if let Some(d) = bad_noise {
                    return Err(VtonError::Shape {
                        what: "posterior noise".into(),
                        expected: format!("{:?} (the latent)", z.dims()),
                        actual: d.to_vec(),
                    });
                }
                Ok(z)
            })
            .map_err(to_py_err)?;
        out(py, z)
    }

    /// The sampler from `z_cond` noised with `noise` to the first timestep, with the
    /// latent-size mask (`(1, 1, h, w)` in [-1, 1]); the last `x0` decoded and clamped to
    /// [-1, 1] -> `(1, 3, H, W)`.
    #[allow(clippy::too_many_arguments)]
    #[pyo3(signature = (z_cond, mask, noise, steps=200, sampler="original", eta=0.0, seed=0, progress=None))]
    fn sample<'py>(
        &self,
        py: Python<'py>,
        z_cond: PyReadonlyArrayDyn<'py, f32>,
        mask: PyReadonlyArrayDyn<'py, f32>,
        noise: PyReadonlyArrayDyn<'py, f32>,
        steps: usize,
        sampler: &str,
        eta: f32,
        seed: u64,
        progress: Option<Py<PyAny>>,
    ) -> Out<'py> {
        let dev = &self.device.device;
        let z = tensor4("z_cond", &z_cond, dev)?;
        let m = tensor4("mask", &mask, dev)?;
        let n = tensor4("noise", &noise, dev)?;
        let sampler = DciSampler::from_name(sampler, eta).map_err(to_py_err)?;
        let img = with_progress(py, progress, |cb| {
            self.inner.sample_with(&z, &m, &n, steps, sampler, seed, cb)
        })?;
        out(py, img)
    }
}

pub(crate) fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<Warping>()?;
    m.add_class::<UNet>()?;
    m.add_class::<Scheduler>()?;
    m.add_class::<Pipeline>()?;
    Ok(())
}
