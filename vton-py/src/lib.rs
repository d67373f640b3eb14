//! Python bindings of vton: the native module `vton._vton`, re-exported by `python/vton`.
//!
//! Conversions from PIL images and paths happen in Python; this layer takes float32
//! numpy arrays, validates them once, releases the GIL for compute, and maps every
//! `VtonError` to the exception hierarchy of `vton.errors` in one place ([`to_py_err`]).

use numpy::ndarray::{Array, Array2, Array3, IxDyn};
use numpy::{IntoPyArray, PyArrayDyn, PyReadonlyArrayDyn, PyUntypedArrayMethods};
use pyo3::prelude::*;
use pyo3::types::PyDict;
use vton_core::io::{image::tensor_to_vec, Mask, ParseMap, PersonSelection, Pose, RgbImage};
use vton_core::pipelines::geometric::{GeometricTryOn, TryOnInputs};
use vton_core::pipelines::parsing::HumanParser;
use vton_core::pipelines::preprocess::{PartialInputs, Preprocessor};
use vton_core::warp::{grid_sample as core_grid_sample, GridSampleOptions, TpsGridGen as CoreTps};
use vton_core::{device_from_name, VtonError};

use vton_core::burn::tensor::{Device, Tensor, TensorData};

mod dci;
mod diffusion;
mod estimate;
mod gan;
mod metrics;
mod train;

/// Maps a core error to `vton.errors.*` (the one mapping place).
pub(crate) fn to_py_err(e: VtonError) -> PyErr {
    let class = match &e {
        VtonError::FileNotFound { .. } => "VtonFileNotFoundError",
        VtonError::Io { .. } => "VtonIOError",
        VtonError::Unsupported { .. } => "UnsupportedError",
        VtonError::Numerical { .. } | VtonError::Backend { .. } => "VtonRuntimeError",
        VtonError::Checkpoint { .. }
        | VtonError::MissingWeights { .. }
        | VtonError::UnexpectedWeights { .. }
        | VtonError::WeightShape { .. }
        | VtonError::Config { .. }
        | VtonError::TfliteFormat { .. } => "CheckpointError",
        VtonError::Cancelled { .. } => "CancelledError",
        _ => "InvalidInputError",
    };
    let msg = e.to_string();
    Python::attach(
        |py| match py.import("vton.errors").and_then(|m| m.getattr(class)) {
            Ok(cls) => match cls.call1((msg.clone(),)) {
                Ok(inst) => PyErr::from_value(inst),
                Err(err) => err,
            },
            Err(err) => err,
        },
    )
}

/// The backends this build of the extension can run on, probed through
/// [`device_from_name`] (a backend that was not compiled in is `VtonError::Unsupported`;
/// building a GPU device handle is lazy, so nothing is initialised here).
pub(crate) fn backends() -> Vec<&'static str> {
    let mut out = vec!["cpu"];
    for kind in ["wgpu", "cuda"] {
        if !matches!(device_from_name(kind), Err(VtonError::Unsupported { .. })) {
            out.push(kind);
        }
    }
    out
}

/// The canonical name of a device name `device_from_name` accepted: `cpu` (also for
/// `flex`), `wgpu` (the default adapter) or `wgpu:N`, `cuda:N` (`cuda` is `cuda:0`).
fn canonical_device_name(name: &str) -> String {
    let lower = name.trim().to_ascii_lowercase();
    let (kind, index) = match lower.split_once(':') {
        Some((k, i)) => (k.to_string(), i.parse::<usize>().ok()),
        None => (lower.clone(), None),
    };
    match (kind.as_str(), index) {
        ("cpu" | "flex", _) => "cpu".into(),
        ("wgpu", None) => "wgpu".into(),
        ("cuda", None) => "cuda:0".into(),
        (k, Some(i)) => format!("{k}:{i}"),
        (k, None) => k.into(),
    }
}

/// A compute device chosen by name (the names of the CLI's `--device`), kept by every
/// binding object: `device` is where its model lives and where the tensors made from
/// numpy arrays go, `name` its canonical name (the `device` property).
#[derive(Clone)]
pub(crate) struct PyDevice {
    pub(crate) device: Device,
    pub(crate) name: String,
}

impl PyDevice {
    /// Parses a `device=` argument once. An unknown name is `InvalidInputError` and a
    /// backend this build lacks `UnsupportedError` (through [`to_py_err`]), both naming the
    /// accepted names and the backends compiled in.
    pub(crate) fn parse(name: &str) -> PyResult<Self> {
        let compiled = backends().join(", ");
        let accepted = "'cpu' (alias 'flex'), 'wgpu', 'wgpu:N', 'cuda', 'cuda:N'";
        let canonical = canonical_device_name(name);
        let device = device_from_name(name).map_err(|e| {
            to_py_err(match e {
                VtonError::InvalidArgument { message, .. } => VtonError::invalid(
                    "device",
                    format!("{message}; accepted: {accepted}; backends in this build: {compiled}"),
                ),
                VtonError::Unsupported { .. } => {
                    let kind = canonical.split(':').next().unwrap_or_default();
                    VtonError::Unsupported {
                        what: format!(
                            "device '{name}': this build of vton has no {kind} backend (backends \
                             in this build: {compiled}; build the extension with `maturin build \
                             --release --features {kind}`)"
                        ),
                    }
                }
                other => other,
            })
        })?;
        Ok(PyDevice {
            device,
            name: canonical,
        })
    }
}

/// The backends compiled into this build: `["cpu"]`, plus `"wgpu"` / `"cuda"` for a wheel
/// built with those features.
#[pyfunction]
fn compiled_backends() -> Vec<&'static str> {
    backends()
}

/// The canonical name of a device (`"cuda"` -> `"cuda:0"`, `"flex"` -> `"cpu"`); raises
/// like every `device=` argument for a name this build cannot use.
#[pyfunction]
fn _device_name(device: &str) -> PyResult<String> {
    Ok(PyDevice::parse(device)?.name)
}

pub(crate) fn bad(msg: String) -> PyErr {
    to_py_err(VtonError::InvalidArgument {
        name: "argument".into(),
        message: msg,
    })
}

pub(crate) fn shape_of(a: &PyReadonlyArrayDyn<'_, f32>) -> Vec<usize> {
    a.shape().to_vec()
}

pub(crate) fn to_vec(a: &PyReadonlyArrayDyn<'_, f32>) -> Vec<f32> {
    a.as_array().iter().copied().collect()
}

pub(crate) fn image_from(name: &str, a: &PyReadonlyArrayDyn<'_, f32>) -> PyResult<RgbImage> {
    let s = shape_of(a);
    if s.len() != 3 || s[2] != 3 {
        return Err(bad(format!(
            "{name} must be an (H, W, 3) RGB array, got shape {s:?}"
        )));
    }
    RgbImage::from_f32(s[1], s[0], to_vec(a)).map_err(to_py_err)
}

pub(crate) fn mask_from(name: &str, a: &PyReadonlyArrayDyn<'_, f32>) -> PyResult<Mask> {
    let s = shape_of(a);
    if s.len() != 2 {
        return Err(bad(format!(
            "{name} must be an (H, W) array, got shape {s:?}"
        )));
    }
    Mask::from_f32(s[1], s[0], to_vec(a)).map_err(to_py_err)
}

pub(crate) fn image_to_py<'py>(py: Python<'py>, img: RgbImage) -> PyResult<Bound<'py, PyAny>> {
    let arr = Array3::from_shape_vec((img.height, img.width, 3), img.data)
        .map_err(|e| bad(e.to_string()))?;
    Ok(arr.into_pyarray(py).into_any())
}

pub(crate) fn mask_to_py<'py>(py: Python<'py>, m: Mask) -> PyResult<Bound<'py, PyAny>> {
    let arr =
        Array2::from_shape_vec((m.height, m.width), m.data).map_err(|e| bad(e.to_string()))?;
    Ok(arr.into_pyarray(py).into_any())
}

/// Reads an OpenPose JSON file; returns the chosen person's (25, 3) BODY_25 array.
#[pyfunction]
#[pyo3(signature = (path, person=None))]
fn read_keypoints<'py>(
    py: Python<'py>,
    path: std::path::PathBuf,
    person: Option<usize>,
) -> PyResult<Bound<'py, PyAny>> {
    let sel = person
        .map(PersonSelection::Index)
        .unwrap_or(PersonSelection::Largest);
    let pose = py
        .detach(|| vton_core::io::read_keypoints(&path, sel))
        .map_err(to_py_err)?;
    let arr = Array2::from_shape_vec((25, 3), pose.to_flat()).map_err(|e| bad(e.to_string()))?;
    Ok(arr.into_pyarray(py).into_any())
}

/// Geometric try-on on float32 arrays in [0, 1]; returns a dict of arrays.
///
/// Keypoints and the person mask are estimated with the bundled pose models when not
/// given (given inputs take precedence); with a `parser`, a missing parse map is
/// estimated too. `device` runs the warp (and the pose models, cached per device) there.
#[pyfunction]
#[pyo3(signature = (person, garment, keypoints=None, person_mask=None, garment_mask=None, parse=None, parser=None, *, device="cpu"))]
#[allow(clippy::too_many_arguments)]
fn _try_on<'py>(
    py: Python<'py>,
    person: PyReadonlyArrayDyn<'py, f32>,
    garment: PyReadonlyArrayDyn<'py, f32>,
    keypoints: Option<PyReadonlyArrayDyn<'py, f32>>,
    person_mask: Option<PyReadonlyArrayDyn<'py, f32>>,
    garment_mask: Option<PyReadonlyArrayDyn<'py, f32>>,
    parse: Option<PyReadonlyArrayDyn<'py, f32>>,
    parser: Option<Bound<'py, estimate::PyHumanParser>>,
    device: &str,
) -> PyResult<Bound<'py, PyDict>> {
    let dev = PyDevice::parse(device)?;
    let pose = match keypoints {
        Some(k) => {
            let ks = shape_of(&k);
            if ks.len() != 2 || ks[1] != 3 {
                return Err(bad(format!(
                    "keypoints must be a (25, 3) or (18, 3) array, got shape {ks:?}"
                )));
            }
            Some(Pose::from_flat(&to_vec(&k)).map_err(to_py_err)?)
        }
        None => None,
    };
    let parse = match parse {
        Some(p) => {
            let s = shape_of(&p);
            if s.len() != 2 {
                return Err(bad(format!(
                    "parse must be an (H, W) label array, got shape {s:?}"
                )));
            }
            let labels: Option<Vec<u8>> = p
                .as_array()
                .iter()
                .map(|&v| ((0.0..256.0).contains(&v) && v.fract() == 0.0).then_some(v as u8))
                .collect();
            let labels =
                labels.ok_or_else(|| bad("parse labels must be integers in 0..20".into()))?;
            Some(ParseMap::new(s[1], s[0], labels, 20).map_err(to_py_err)?)
        }
        None => None,
    };
    let partial = PartialInputs {
        person: image_from("person", &person)?,
        pose,
        person_mask: person_mask
            .as_ref()
            .map(|m| mask_from("person_mask", m))
            .transpose()?,
        parse,
        garment: image_from("garment", &garment)?,
        garment_mask: garment_mask
            .as_ref()
            .map(|m| mask_from("garment_mask", m))
            .transpose()?,
        category: Default::default(),
    };
    let parser = parser.as_ref().map(|p| &p.get().inner);
    let out = py
        .detach(|| {
            let inputs = complete_inputs(partial, parser, &dev)?;
            GeometricTryOn::default().run(&inputs, &dev.device)
        })
        .map_err(to_py_err)?;
    let d = PyDict::new(py);
    d.set_item("image", image_to_py(py, out.image)?)?;
    d.set_item("agnostic_mask", mask_to_py(py, out.agnostic_mask)?)?;
    d.set_item("agnostic_image", image_to_py(py, out.agnostic_image)?)?;
    d.set_item("warped_garment", image_to_py(py, out.warped_garment)?)?;
    d.set_item("warped_mask", mask_to_py(py, out.warped_mask)?)?;
    d.set_item("garment_mask", mask_to_py(py, out.garment_mask)?)?;
    Ok(d)
}

/// Completes try-on inputs: keypoints and person mask from the bundled pose estimator
/// cached for `device` when missing (models load only then), a missing parse from `parser`.
fn complete_inputs(
    partial: PartialInputs,
    parser: Option<&HumanParser>,
    device: &PyDevice,
) -> vton_core::Result<TryOnInputs> {
    let mut inputs = if partial.needs_pose() {
        estimate::preprocessor(device)?.complete(partial)?
    } else {
        Preprocessor::complete_given(partial)?
    };
    if let (None, Some(p)) = (&inputs.parse, parser) {
        inputs.parse = Some(p.parse_lip(&inputs.person)?);
    }
    Ok(inputs)
}

/// A 4-D float32 array as a tensor on `device`.
pub(crate) fn tensor4(
    name: &str,
    a: &PyReadonlyArrayDyn<'_, f32>,
    device: &Device,
) -> PyResult<Tensor<4>> {
    let s = shape_of(a);
    if s.len() != 4 {
        return Err(bad(format!("{name} must be 4-D, got shape {s:?}")));
    }
    Ok(Tensor::from_data(
        TensorData::new(to_vec(a), [s[0], s[1], s[2], s[3]]),
        device,
    ))
}

pub(crate) fn dyn_out<'py>(
    py: Python<'py>,
    shape: Vec<usize>,
    data: Vec<f32>,
) -> PyResult<Bound<'py, PyArrayDyn<f32>>> {
    let arr = Array::from_shape_vec(IxDyn(&shape), data).map_err(|e| bad(e.to_string()))?;
    Ok(arr.into_pyarray(py))
}

/// `torch.nn.functional.grid_sample` on NCHW float32 arrays, computed on `device`.
#[pyfunction]
#[pyo3(signature = (input, grid, mode="bilinear", padding_mode="zeros", align_corners=false, *, device="cpu"))]
fn grid_sample<'py>(
    py: Python<'py>,
    input: PyReadonlyArrayDyn<'py, f32>,
    grid: PyReadonlyArrayDyn<'py, f32>,
    mode: &str,
    padding_mode: &str,
    align_corners: bool,
    device: &str,
) -> PyResult<Bound<'py, PyArrayDyn<f32>>> {
    let dev = PyDevice::parse(device)?;
    let opts =
        GridSampleOptions::from_names(mode, padding_mode, align_corners).map_err(to_py_err)?;
    let (x, g) = (
        tensor4("input", &input, &dev.device)?,
        tensor4("grid", &grid, &dev.device)?,
    );
    let (shape, data) = py
        .detach(|| -> vton_core::Result<(Vec<usize>, Vec<f32>)> {
            let out = core_grid_sample(x, g, opts)?;
            let shape = out.dims().to_vec();
            Ok((shape, tensor_to_vec(out)?))
        })
        .map_err(to_py_err)?;
    dyn_out(py, shape, data)
}

/// CP-VTON's TPS grid generator: `TpsGridGen(height, width, grid_size=5, *, device="cpu")(theta)`.
#[pyclass(name = "TpsGridGen", module = "vton", frozen)]
struct TpsGridGen {
    inner: CoreTps,
    device: PyDevice,
}

#[pymethods]
impl TpsGridGen {
    #[new]
    #[pyo3(signature = (height, width, grid_size=5, *, device="cpu"))]
    fn new(height: usize, width: usize, grid_size: usize, device: &str) -> PyResult<Self> {
        let device = PyDevice::parse(device)?;
        Ok(TpsGridGen {
            inner: CoreTps::new(height, width, grid_size, &device.device).map_err(to_py_err)?,
            device,
        })
    }

    /// The device the grid is computed on (canonical name).
    #[getter]
    fn device(&self) -> String {
        self.device.name.clone()
    }

    #[getter]
    fn grid_size(&self) -> usize {
        self.inner.grid_size
    }

    /// `theta` (N, 2 * grid_size**2) -> grid (N, height, width, 2).
    fn __call__<'py>(
        &self,
        py: Python<'py>,
        theta: PyReadonlyArrayDyn<'py, f32>,
    ) -> PyResult<Bound<'py, PyArrayDyn<f32>>> {
        let s = shape_of(&theta);
        if s.len() != 2 {
            return Err(bad(format!(
                "theta must be (N, {}), got shape {s:?}",
                2 * self.inner.num_points()
            )));
        }
        let t = Tensor::<2>::from_data(
            TensorData::new(to_vec(&theta), [s[0], s[1]]),
            &self.device.device,
        );
        let (shape, data) = py
            .detach(|| -> vton_core::Result<(Vec<usize>, Vec<f32>)> {
                let g = self.inner.forward(t)?;
                let shape = g.dims().to_vec();
                Ok((shape, tensor_to_vec(g)?))
            })
            .map_err(to_py_err)?;
        dyn_out(py, shape, data)
    }

    fn __repr__(&self) -> String {
        format!(
            "TpsGridGen(height={}, width={}, grid_size={}, device='{}')",
            self.inner.out_h, self.inner.out_w, self.inner.grid_size, self.device.name
        )
    }
}

#[pymodule]
fn _vton(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_function(wrap_pyfunction!(read_keypoints, m)?)?;
    m.add_function(wrap_pyfunction!(_try_on, m)?)?;
    m.add_function(wrap_pyfunction!(grid_sample, m)?)?;
    m.add_function(wrap_pyfunction!(compiled_backends, m)?)?;
    m.add_function(wrap_pyfunction!(_device_name, m)?)?;
    m.add_class::<TpsGridGen>()?;
    dci::register(m)?;
    diffusion::register(m)?;
    gan::register(m)?;
    estimate::register(m)?;
    metrics::register(m)?;
    train::register(m)?;
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    Ok(())
}
