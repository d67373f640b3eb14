//! Raw-photo analysis for Python: pose estimation and person masks (the bundled MediaPipe
//! models, loaded once per process and device), selfie segmentation, `.tflite` models and
//! SCHP human parsing. Re-exported by `python/vton` (`estimate_pose`, `segment_person`,
//! `TFLiteModel`, `HumanParser`), where images are converted.

use std::sync::{Arc, Mutex};

use numpy::ndarray::{Array2, IxDyn};
use numpy::{IntoPyArray, PyReadonlyArrayDyn};
use pyo3::prelude::*;
use pyo3::types::PyDict;
use vton_core::estimate::SelfieSegmenter;
use vton_core::io::PersonSelection;
use vton_core::pipelines::parsing::{HumanParser as CoreParser, HumanParserOptions};
use vton_core::pipelines::preprocess::Preprocessor;
use vton_core::tflite::{HostTensor, TfliteModel};
use vton_core::VtonError;

use crate::{bad, image_from, mask_to_py, shape_of, to_py_err, to_vec, PyDevice};

/// Models built once per device (keyed by the canonical device name).
type PerDevice<T> = Mutex<Vec<(String, Arc<T>)>>;

/// Returns the value of `cache` for `device`, building it on first use on that device. A
/// failed build is not cached (the next call tries again); two threads racing may both
/// build, one value is kept.
fn cached<T>(
    cache: &'static PerDevice<T>,
    device: &PyDevice,
    make: impl FnOnce() -> vton_core::Result<T>,
) -> vton_core::Result<Arc<T>> {
    let lookup = || -> vton_core::Result<Option<Arc<T>>> {
        let guard = cache.lock().map_err(|_| VtonError::Backend {
            operation: "model cache".into(),
            message: "a previous call panicked while holding the cache".into(),
        })?;
        Ok(guard
            .iter()
            .find(|(k, _)| *k == device.name)
            .map(|(_, v)| v.clone()))
    };
    if let Some(v) = lookup()? {
        return Ok(v);
    }
    let v = Arc::new(make()?);
    let mut guard = cache.lock().map_err(|_| VtonError::Backend {
        operation: "model cache".into(),
        message: "a previous call panicked while holding the cache".into(),
    })?;
    if let Some((_, kept)) = guard.iter().find(|(k, _)| *k == device.name) {
        return Ok(kept.clone());
    }
    guard.push((device.name.clone(), v.clone()));
    Ok(v)
}

/// The process-wide preprocessor on the bundled pose models (no parser) for `device`, used
/// by `estimate_pose` and by `try_on` when keypoints or masks are missing.
pub(crate) fn preprocessor(device: &PyDevice) -> vton_core::Result<Arc<Preprocessor>> {
    static CACHE: PerDevice<Preprocessor> = Mutex::new(Vec::new());
    cached(&CACHE, device, || Preprocessor::bundled(&device.device))
}

fn segmenter(landscape: bool, device: &PyDevice) -> vton_core::Result<Arc<SelfieSegmenter>> {
    static GENERAL: PerDevice<SelfieSegmenter> = Mutex::new(Vec::new());
    static LANDSCAPE: PerDevice<SelfieSegmenter> = Mutex::new(Vec::new());
    let cache = if landscape { &LANDSCAPE } else { &GENERAL };
    cached(cache, device, || {
        SelfieSegmenter::bundled(&device.device, landscape)
    })
}

fn selection(person: Option<i64>) -> PyResult<PersonSelection> {
    match person {
        None => Ok(PersonSelection::Largest),
        Some(i) => usize::try_from(i)
            .map(PersonSelection::Index)
            .map_err(|_| bad(format!("person must be None or an index >= 0, got {i}"))),
    }
}

/// One person's pose: MediaPipe's 33 landmarks, the OpenPose BODY_25 keypoints derived
/// from them and the image-sized person probability mask.
#[pyclass(name = "PoseEstimate", module = "vton", frozen)]
pub(crate) struct PyPoseEstimate {
    landmarks: Vec<f32>,
    keypoints: Vec<f32>,
    mask: Vec<f32>,
    width: usize,
    height: usize,
    score: f32,
}

#[pymethods]
impl PyPoseEstimate {
    /// (33, 5) float32: x, y in pixels, z (pixel scale), visibility, presence.
    #[getter]
    fn landmarks<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        let a = Array2::from_shape_vec((self.landmarks.len() / 5, 5), self.landmarks.clone())
            .map_err(|e| bad(e.to_string()))?;
        Ok(a.into_pyarray(py).into_any())
    }

    /// (25, 3) float32 BODY_25 keypoints: x, y in pixels, confidence (0 = missing).
    #[getter]
    fn keypoints<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        let a = Array2::from_shape_vec((self.keypoints.len() / 3, 3), self.keypoints.clone())
            .map_err(|e| bad(e.to_string()))?;
        Ok(a.into_pyarray(py).into_any())
    }

    /// (H, W) float32 person probability in [0, 1].
    #[getter]
    fn mask<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        let a = Array2::from_shape_vec((self.height, self.width), self.mask.clone())
            .map_err(|e| bad(e.to_string()))?;
        Ok(a.into_pyarray(py).into_any())
    }

    /// The detector's score for this person.
    #[getter]
    fn score(&self) -> f32 {
        self.score
    }

    /// (height, width) of the image the pose was estimated on.
    #[getter]
    fn image_size(&self) -> (usize, usize) {
        (self.height, self.width)
    }

    fn __repr__(&self) -> String {
        format!(
            "PoseEstimate(image_size=({}, {}), score={:.3})",
            self.height, self.width, self.score
        )
    }
}

/// Estimates the pose and person mask of one person in an (H, W, 3) float32 RGB array,
/// with the bundled models on `device` (loaded once per device).
#[pyfunction]
#[pyo3(signature = (image, person=None, *, device="cpu"))]
fn estimate_pose(
    py: Python<'_>,
    image: PyReadonlyArrayDyn<'_, f32>,
    person: Option<i64>,
    device: &str,
) -> PyResult<PyPoseEstimate> {
    let dev = PyDevice::parse(device)?;
    let sel = selection(person)?;
    let img = image_from("image", &image)?;
    let est = py
        .detach(|| preprocessor(&dev)?.pose_estimator().estimate_one(&img, sel))
        .map_err(to_py_err)?;
    let mask = est.mask.clone().ok_or_else(|| {
        to_py_err(VtonError::Numerical {
            operation: "pose estimation".into(),
            message: "the pose estimator produced no person mask".into(),
        })
    })?;
    Ok(PyPoseEstimate {
        landmarks: est.landmarks_array().into_iter().flatten().collect(),
        keypoints: est.to_body25().to_flat(),
        width: mask.width,
        height: mask.height,
        mask: mask.data,
        score: est.score,
    })
}

/// MediaPipe selfie segmentation of an (H, W, 3) float32 RGB array -> (H, W) in [0, 1],
/// on `device` (the model loaded once per device).
#[pyfunction]
#[pyo3(signature = (image, landscape=false, *, device="cpu"))]
fn segment_person<'py>(
    py: Python<'py>,
    image: PyReadonlyArrayDyn<'py, f32>,
    landscape: bool,
    device: &str,
) -> PyResult<Bound<'py, PyAny>> {
    let dev = PyDevice::parse(device)?;
    let img = image_from("image", &image)?;
    let m = py
        .detach(|| segmenter(landscape, &dev)?.segment(&img))
        .map_err(to_py_err)?;
    mask_to_py(py, m)
}

/// A `.tflite` model (the operator set of MediaPipe's pose and selfie models).
#[pyclass(name = "_TFLiteModel", module = "vton", frozen)]
struct PyTfliteModel {
    inner: TfliteModel,
    device: PyDevice,
}

#[pymethods]
impl PyTfliteModel {
    #[new]
    #[pyo3(signature = (path, *, device="cpu"))]
    fn new(py: Python<'_>, path: std::path::PathBuf, device: &str) -> PyResult<Self> {
        let device = PyDevice::parse(device)?;
        let inner = py
            .detach(|| TfliteModel::from_file(&path, &device.device))
            .map_err(to_py_err)?;
        Ok(Self { inner, device })
    }

    /// The device the graph runs on (canonical name).
    #[getter]
    fn device(&self) -> String {
        self.device.name.clone()
    }

    #[getter]
    fn input_names(&self) -> Vec<String> {
        self.inner.input_names()
    }

    #[getter]
    fn output_names(&self) -> Vec<String> {
        self.inner.output_names()
    }

    #[getter]
    fn input_shapes(&self) -> Vec<Vec<usize>> {
        self.inner.input_shapes()
    }

    #[getter]
    fn output_shapes(&self) -> Vec<Vec<usize>> {
        self.inner.output_shapes()
    }

    /// Runs the graph on a list of float32 arrays (one per input, declared shapes);
    /// returns {output name: array}.
    fn run<'py>(
        &self,
        py: Python<'py>,
        inputs: Vec<PyReadonlyArrayDyn<'py, f32>>,
    ) -> PyResult<Bound<'py, PyDict>> {
        let host = inputs
            .iter()
            .map(|a| HostTensor::new(shape_of(a), to_vec(a)))
            .collect::<vton_core::Result<Vec<_>>>()
            .map_err(to_py_err)?;
        let outs = py.detach(|| self.inner.run(&host)).map_err(to_py_err)?;
        let d = PyDict::new(py);
        for (name, t) in self.inner.output_names().into_iter().zip(outs) {
            let a = numpy::ndarray::Array::from_shape_vec(IxDyn(&t.shape), t.data)
                .map_err(|e| bad(e.to_string()))?;
            d.set_item(name, a.into_pyarray(py))?;
        }
        Ok(d)
    }

    fn __repr__(&self) -> String {
        format!(
            "TFLiteModel(inputs={:?}, outputs={:?})",
            self.inner.input_names(),
            self.inner.output_names()
        )
    }
}

/// SCHP human parsing (LIP labels), loaded from the released checkpoint's keys.
#[pyclass(name = "_HumanParser", module = "vton", frozen)]
pub(crate) struct PyHumanParser {
    pub(crate) inner: CoreParser,
    device: PyDevice,
}

#[pymethods]
impl PyHumanParser {
    #[staticmethod]
    #[pyo3(signature = (path, input_height=473, input_width=473, flip=false, *, device="cpu"))]
    fn from_checkpoint(
        py: Python<'_>,
        path: std::path::PathBuf,
        input_height: usize,
        input_width: usize,
        flip: bool,
        device: &str,
    ) -> PyResult<Self> {
        let device = PyDevice::parse(device)?;
        let inner = py
            .detach(|| {
                CoreParser::from_checkpoint(&path, &device.device)?.with_options(
                    HumanParserOptions {
                        input_height,
                        input_width,
                        flip,
                    },
                )
            })
            .map_err(to_py_err)?;
        Ok(Self { inner, device })
    }

    /// A SegFormer folder (`config.json`, `model.safetensors` or `pytorch_model.bin`,
    /// optional `preprocessor_config.json`), e.g. `segformer-b2-human-parse-24`; `parse`
    /// returns its own labels.
    #[staticmethod]
    #[pyo3(signature = (path, *, device="cpu"))]
    fn from_pretrained(py: Python<'_>, path: std::path::PathBuf, device: &str) -> PyResult<Self> {
        let device = PyDevice::parse(device)?;
        let inner = py
            .detach(|| CoreParser::from_pretrained(&path, &device.device))
            .map_err(to_py_err)?;
        Ok(Self { inner, device })
    }

    /// The device the network runs on (canonical name).
    #[getter]
    fn device(&self) -> String {
        self.device.name.clone()
    }

    #[getter]
    fn num_labels(&self) -> usize {
        self.inner.num_labels()
    }

    #[getter]
    fn input_size(&self) -> (usize, usize) {
        let o = self.inner.options();
        (o.input_height, o.input_width)
    }

    #[getter]
    fn flip(&self) -> bool {
        self.inner.options().flip
    }

    /// (H, W, 3) float32 RGB in [0, 1] -> (H, W) uint8 label map.
    fn parse<'py>(
        &self,
        py: Python<'py>,
        image: PyReadonlyArrayDyn<'py, f32>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let img = image_from("image", &image)?;
        let map = py.detach(|| self.inner.parse(&img)).map_err(to_py_err)?;
        let a = Array2::from_shape_vec((map.height, map.width), map.labels)
            .map_err(|e| bad(e.to_string()))?;
        Ok(a.into_pyarray(py).into_any())
    }
}

pub(crate) fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_function(wrap_pyfunction!(estimate_pose, m)?)?;
    m.add_function(wrap_pyfunction!(segment_person, m)?)?;
    m.add_class::<PyPoseEstimate>()?;
    m.add_class::<PyTfliteModel>()?;
    m.add_class::<PyHumanParser>()?;
    Ok(())
}
