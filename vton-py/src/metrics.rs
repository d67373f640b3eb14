//! Image-quality metrics for Python (`vton.metrics`): PSNR, SSIM, MS-SSIM on host
//! images, LPIPS, FID and KID on burn devices, and the Fréchet distance / KID on given
//! statistics and features. Re-exported by `python/vton/metrics.py`, which converts PIL
//! images, paths and lists; this layer takes numpy arrays only:
//!
//! - pixel metrics: `uint8` (exact 0..255 values) or `float64` arrays, `(H, W, C)` for one
//!   image, `(N, H, W, C)` for a batch;
//! - LPIPS: float32 `(N, 3, H, W)` in `[-1, 1]`; FID / KID: float32 `(N, 3, H, W)` in `[0, 1]`.
//!
//! LPIPS, FID and KID load their networks on the keyword `device="cpu"` given to
//! `from_checkpoint` and compute there. Every core error goes through [`crate::to_py_err`].

use std::path::{Path, PathBuf};
use std::sync::Mutex;

use numpy::ndarray::{Array1, Array2};
use numpy::{IntoPyArray, PyArrayDyn, PyArrayMethods, PyReadonlyArrayDyn, PyUntypedArrayMethods};
use pyo3::prelude::*;
use vton_core::burn::tensor::{Device, Tensor};
use vton_core::io::image::tensor_to_vec;
use vton_core::metrics::{
    self as vm, Fid as CoreFid, KidOptions, Lpips as CoreLpips, LpipsNet, LpipsNormalization,
    MetricImage, MsSsimOptions, SsimConvention,
};
use vton_core::models::inception::FidInceptionV3;
use vton_core::VtonError;

use crate::{bad, shape_of, tensor4, to_py_err, to_vec, PyDevice};

// ---------------------------------------------------------------------------------------
// Pixel metrics

/// `(N, H, W, C)` of an image array: 3-D is one image, 4-D a batch.
fn nhwc(name: &str, s: &[usize]) -> PyResult<(usize, usize, usize, usize)> {
    let d = match s.len() {
        3 => (1, s[0], s[1], s[2]),
        4 => (s[0], s[1], s[2], s[3]),
        _ => {
            return Err(bad(format!(
                "{name} must be an (H, W, C) image or an (N, H, W, C) batch, got shape {s:?}"
            )))
        }
    };
    if d.0 == 0 {
        return Err(bad(format!("{name} is an empty batch (shape {s:?})")));
    }
    Ok(d)
}

/// The images of a uint8 or float64 `(H, W, C)` / `(N, H, W, C)` array.
fn metric_images(name: &str, obj: &Bound<'_, PyAny>) -> PyResult<Vec<MetricImage>> {
    if let Ok(a) = obj.cast::<PyArrayDyn<u8>>() {
        let r = a.readonly();
        let (n, h, w, c) = nhwc(name, r.shape())?;
        let data: Vec<u8> = r.as_array().iter().copied().collect();
        let per = h * w * c;
        (0..n)
            .map(|i| MetricImage::from_u8_hwc(h, w, c, &data[i * per..(i + 1) * per]))
            .collect::<vton_core::Result<Vec<_>>>()
            .map_err(to_py_err)
    } else if let Ok(a) = obj.cast::<PyArrayDyn<f64>>() {
        let r = a.readonly();
        let (n, h, w, c) = nhwc(name, r.shape())?;
        let data: Vec<f64> = r.as_array().iter().copied().collect();
        let (plane, per) = (h * w, h * w * c);
        (0..n)
            .map(|i| {
                let src = &data[i * per..(i + 1) * per];
                let mut planar = vec![0f64; per];
                for (p, px) in src.chunks_exact(c.max(1)).enumerate() {
                    for (ch, &v) in px.iter().enumerate() {
                        planar[ch * plane + p] = v;
                    }
                }
                MetricImage::from_planar(c, h, w, planar)
            })
            .collect::<vton_core::Result<Vec<_>>>()
            .map_err(to_py_err)
    } else {
        Err(bad(format!(
            "{name} must be a uint8 or float64 numpy array, got {}",
            obj.get_type()
                .name()
                .map(|n| n.to_string())
                .unwrap_or_default()
        )))
    }
}

/// The two image sets of a pair metric, as many images in each.
fn image_pairs(
    a: &Bound<'_, PyAny>,
    b: &Bound<'_, PyAny>,
) -> PyResult<(Vec<MetricImage>, Vec<MetricImage>)> {
    let (x, y) = (metric_images("a", a)?, metric_images("b", b)?);
    if x.len() != y.len() {
        return Err(to_py_err(VtonError::SizeMismatch {
            what: "the batches a and b".into(),
            expected: format!("{} images", x.len()),
            actual: format!("{} images", y.len()),
        }));
    }
    Ok((x, y))
}

fn per_pair(
    py: Python<'_>,
    x: Vec<MetricImage>,
    y: Vec<MetricImage>,
    f: impl Fn(&MetricImage, &MetricImage) -> vton_core::Result<f64> + Send + Sync,
) -> PyResult<Vec<f64>> {
    py.detach(|| {
        x.iter()
            .zip(&y)
            .map(|(a, b)| f(a, b))
            .collect::<vton_core::Result<Vec<f64>>>()
    })
    .map_err(to_py_err)
}

/// PSNR per image pair (scikit-image's `peak_signal_noise_ratio`, float64 MSE).
#[pyfunction]
fn _psnr(
    py: Python<'_>,
    a: &Bound<'_, PyAny>,
    b: &Bound<'_, PyAny>,
    data_range: f64,
) -> PyResult<Vec<f64>> {
    let (x, y) = image_pairs(a, b)?;
    per_pair(py, x, y, |a, b| vm::psnr(a, b, data_range))
}

/// SSIM per image pair under a named convention (`SsimConvention::from_name`).
#[pyfunction]
fn _ssim(
    py: Python<'_>,
    a: &Bound<'_, PyAny>,
    b: &Bound<'_, PyAny>,
    data_range: f64,
    convention: &str,
) -> PyResult<Vec<f64>> {
    let conv = SsimConvention::from_name(convention).map_err(to_py_err)?;
    let (x, y) = image_pairs(a, b)?;
    per_pair(py, x, y, |a, b| vm::ssim(a, b, conv, data_range))
}

/// The name of an SSIM convention (canonical form of `name`).
#[pyfunction]
fn _ssim_convention_name(name: &str) -> PyResult<&'static str> {
    Ok(SsimConvention::from_name(name).map_err(to_py_err)?.name())
}

/// MS-SSIM per image pair (pytorch-msssim 1.0), optionally with other scale weights.
#[pyfunction]
#[pyo3(signature = (a, b, data_range, weights=None))]
fn _ms_ssim(
    py: Python<'_>,
    a: &Bound<'_, PyAny>,
    b: &Bound<'_, PyAny>,
    data_range: f64,
    weights: Option<Vec<f64>>,
) -> PyResult<Vec<f64>> {
    let mut opts = MsSsimOptions::new(data_range);
    if let Some(w) = weights {
        if w.is_empty() || w.len() > 16 || w.iter().any(|v| !v.is_finite()) {
            return Err(bad(format!(
                "weights must be 1 to 16 finite numbers (one per scale), got {w:?}"
            )));
        }
        opts.weights = w;
    }
    let (x, y) = image_pairs(a, b)?;
    per_pair(py, x, y, |a, b| vm::ms_ssim(a, b, &opts))
}

// ---------------------------------------------------------------------------------------
// LPIPS

/// Opens LPIPS weights. `backbone`: torchvision `features.N.*` keys (at the root or under
/// one prefix) or a whole `lpips.LPIPS` state dict. `lin`: a file with `lin<k>.model.1.weight`
/// (at the root or under one prefix, e.g. `lpips_alex.lin.`). Without `lin`, the backbone
/// file's own lin layers are used when it has them (also under a prefix), else the lpips
/// 0.1.4 v0.1 layers bundled with vton.
fn load_lpips(
    backbone: &Path,
    net: LpipsNet,
    lin: Option<&Path>,
    device: &Device,
) -> vton_core::Result<CoreLpips> {
    CoreLpips::from_checkpoint(backbone, net, lin, device)
}

fn normalization_from(name: &str) -> PyResult<LpipsNormalization> {
    match name.trim().to_ascii_lowercase().as_str() {
        "lpips" => Ok(LpipsNormalization::Lpips),
        "torchmetrics" => Ok(LpipsNormalization::Torchmetrics),
        other => Err(to_py_err(VtonError::invalid(
            "normalization",
            format!("'{other}' is not one of 'lpips', 'torchmetrics'"),
        ))),
    }
}

fn normalization_name(n: LpipsNormalization) -> &'static str {
    match n {
        LpipsNormalization::Lpips => "lpips",
        LpipsNormalization::Torchmetrics => "torchmetrics",
    }
}

/// LPIPS (lpips 0.1.4, version 0.1) on float32 NCHW batches in [-1, 1].
#[pyclass(name = "_LPIPS", module = "vton._vton", frozen)]
struct PyLpips {
    inner: CoreLpips,
    device: PyDevice,
}

#[pymethods]
impl PyLpips {
    #[staticmethod]
    #[pyo3(signature = (backbone, net="alex", lin=None, normalization="lpips", *, device="cpu"))]
    fn from_checkpoint(
        py: Python<'_>,
        backbone: PathBuf,
        net: &str,
        lin: Option<PathBuf>,
        normalization: &str,
        device: &str,
    ) -> PyResult<Self> {
        let device = PyDevice::parse(device)?;
        let net = LpipsNet::from_name(net).map_err(to_py_err)?;
        let norm = normalization_from(normalization)?;
        let inner = py
            .detach(|| load_lpips(&backbone, net, lin.as_deref(), &device.device))
            .map_err(to_py_err)?
            .with_normalization(norm);
        Ok(Self { inner, device })
    }

    /// The device the network is on (canonical name).
    #[getter]
    fn device(&self) -> String {
        self.device.name.clone()
    }

    #[getter]
    fn net(&self) -> &'static str {
        self.inner.net().name()
    }

    #[getter]
    fn normalization(&self) -> &'static str {
        normalization_name(self.inner.normalization())
    }

    #[getter]
    fn tap_channels(&self) -> Vec<usize> {
        self.inner.tap_channels()
    }

    #[getter]
    fn min_input_size(&self) -> usize {
        self.inner.min_input_size()
    }

    /// One distance per image pair of `x0`, `x1` (`(N, 3, H, W)` float32 in [-1, 1]).
    fn distance(
        &self,
        py: Python<'_>,
        x0: PyReadonlyArrayDyn<'_, f32>,
        x1: PyReadonlyArrayDyn<'_, f32>,
    ) -> PyResult<Vec<f32>> {
        let dev = &self.device.device;
        let (a, b) = (tensor4("x0", &x0, dev)?, tensor4("x1", &x1, dev)?);
        py.detach(|| self.inner.distance(a, b)).map_err(to_py_err)
    }

    /// The per-tap terms, `(N, L)` float32 (their sum over L is the distance).
    fn distance_per_layer<'py>(
        &self,
        py: Python<'py>,
        x0: PyReadonlyArrayDyn<'py, f32>,
        x1: PyReadonlyArrayDyn<'py, f32>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let dev = &self.device.device;
        let (a, b) = (tensor4("x0", &x0, dev)?, tensor4("x1", &x1, dev)?);
        let rows = py
            .detach(|| self.inner.distance_per_layer(a, b))
            .map_err(to_py_err)?;
        let (n, l) = (rows.len(), rows.first().map_or(0, Vec::len));
        let arr = Array2::from_shape_vec((n, l), rows.into_iter().flatten().collect())
            .map_err(|e| bad(e.to_string()))?;
        Ok(arr.into_pyarray(py).into_any())
    }

    fn __repr__(&self) -> String {
        format!(
            "LPIPS(net='{}', normalization='{}', taps={:?})",
            self.inner.net().name(),
            normalization_name(self.inner.normalization()),
            self.inner.tap_channels()
        )
    }
}

// ---------------------------------------------------------------------------------------
// FID and KID

fn locked<T, R>(
    m: &Mutex<T>,
    f: impl FnOnce(&mut T) -> vton_core::Result<R>,
) -> vton_core::Result<R> {
    let mut guard = m.lock().map_err(|_| VtonError::Backend {
        operation: "metric state".into(),
        message: "a previous call panicked while holding this object".into(),
    })?;
    f(&mut guard)
}

/// `(N, D)` float32 features as a row-major vector and `D`.
fn features_from(name: &str, a: &PyReadonlyArrayDyn<'_, f32>) -> PyResult<(Vec<f32>, usize)> {
    let s = shape_of(a);
    if s.len() != 2 {
        return Err(bad(format!(
            "{name} must be an (N, D) feature array, got shape {s:?}"
        )));
    }
    Ok((to_vec(a), s[1]))
}

fn check_feature_dim(name: &str, got: usize, want: usize) -> PyResult<()> {
    if got != want {
        return Err(to_py_err(VtonError::SizeMismatch {
            what: name.to_string(),
            expected: format!("{want}-wide features (the network's)"),
            actual: format!("{got}-wide"),
        }));
    }
    Ok(())
}

/// Pool3 features `(N, D)` float32 of `(N, 3, H, W)` float32 images in [0, 1], computed
/// by `run` (given the network) with the GIL released.
fn inception_features<'py>(
    py: Python<'py>,
    images: &PyReadonlyArrayDyn<'py, f32>,
    device: &Device,
    run: impl FnOnce(Tensor<4>) -> vton_core::Result<Tensor<2>> + Send,
) -> PyResult<Bound<'py, PyAny>> {
    let t = tensor4("images", images, device)?;
    let (n, d, v) = py
        .detach(|| -> vton_core::Result<(usize, usize, Vec<f32>)> {
            let f = run(t)?;
            let [n, d] = f.dims();
            Ok((n, d, tensor_to_vec(f)?))
        })
        .map_err(to_py_err)?;
    let arr = Array2::from_shape_vec((n, d), v).map_err(|e| bad(e.to_string()))?;
    Ok(arr.into_pyarray(py).into_any())
}

/// FID (pytorch-fid 0.3.0) with streaming statistics. Python extracts the features of
/// every batch first (`features`) and adds them in one call (`update_features`), so that
/// a failing input adds nothing.
#[pyclass(name = "_FID", module = "vton._vton", frozen)]
struct PyFid {
    inner: Mutex<CoreFid>,
    dim: usize,
    device: PyDevice,
}

#[pymethods]
impl PyFid {
    #[staticmethod]
    #[pyo3(signature = (path, *, device="cpu"))]
    fn from_checkpoint(py: Python<'_>, path: PathBuf, device: &str) -> PyResult<Self> {
        let device = PyDevice::parse(device)?;
        let inception = py
            .detach(|| FidInceptionV3::from_checkpoint(&path, &device.device))
            .map_err(to_py_err)?;
        let dim = inception.feature_dim();
        Ok(Self {
            inner: Mutex::new(CoreFid::new(inception)),
            dim,
            device,
        })
    }

    /// The device the Inception network is on (canonical name).
    #[getter]
    fn device(&self) -> String {
        self.device.name.clone()
    }

    #[getter]
    fn feature_dim(&self) -> usize {
        self.dim
    }

    /// (real, generated) image counts.
    #[getter]
    fn counts(&self, py: Python<'_>) -> PyResult<(usize, usize)> {
        py.detach(|| {
            locked(&self.inner, |f| {
                Ok((f.real_statistics().count(), f.fake_statistics().count()))
            })
        })
        .map_err(to_py_err)
    }

    fn features<'py>(
        &self,
        py: Python<'py>,
        images: PyReadonlyArrayDyn<'py, f32>,
    ) -> PyResult<Bound<'py, PyAny>> {
        inception_features(py, &images, &self.device.device, |t| {
            locked(&self.inner, |f| f.inception().features(t))
        })
    }

    /// Adds `(N, D)` float32 features to the real or the generated set.
    fn update_features(
        &self,
        py: Python<'_>,
        features: PyReadonlyArrayDyn<'_, f32>,
        real: bool,
    ) -> PyResult<()> {
        let (v, d) = features_from("features", &features)?;
        check_feature_dim("features", d, self.dim)?;
        py.detach(|| locked(&self.inner, |f| f.update_features(&v, real)))
            .map_err(to_py_err)
    }

    /// (mean `(D,)`, covariance `(D, D)`) float64 of the real or the generated set.
    fn statistics<'py>(
        &self,
        py: Python<'py>,
        real: bool,
    ) -> PyResult<(Bound<'py, PyAny>, Bound<'py, PyAny>)> {
        let d = self.dim;
        let (mean, cov) = py
            .detach(|| {
                locked(&self.inner, |f| {
                    let s = if real {
                        f.real_statistics()
                    } else {
                        f.fake_statistics()
                    };
                    Ok((s.mean().to_vec(), s.covariance()?))
                })
            })
            .map_err(to_py_err)?;
        let cov = Array2::from_shape_vec((d, d), cov).map_err(|e| bad(e.to_string()))?;
        Ok((
            Array1::from_vec(mean).into_pyarray(py).into_any(),
            cov.into_pyarray(py).into_any(),
        ))
    }

    fn compute(&self, py: Python<'_>) -> PyResult<f64> {
        py.detach(|| locked(&self.inner, |f| f.compute()))
            .map(|r| r.value)
            .map_err(to_py_err)
    }

    fn reset(&self, py: Python<'_>) -> PyResult<()> {
        py.detach(|| {
            locked(&self.inner, |f| {
                f.reset();
                Ok(())
            })
        })
        .map_err(to_py_err)
    }
}

/// KID (torch-fidelity 0.4.0); keeps the features of both sets (`D` float32 per image).
#[pyclass(name = "_KID", module = "vton._vton", frozen)]
struct PyKid {
    inception: FidInceptionV3,
    options: KidOptions,
    /// (real, generated) features, row-major `n x D`.
    sets: Mutex<(Vec<f32>, Vec<f32>)>,
    device: PyDevice,
}

#[pymethods]
impl PyKid {
    #[staticmethod]
    #[pyo3(signature = (path, subsets=100, subset_size=1000, seed=2020, *, device="cpu"))]
    fn from_checkpoint(
        py: Python<'_>,
        path: PathBuf,
        subsets: usize,
        subset_size: usize,
        seed: u32,
        device: &str,
    ) -> PyResult<Self> {
        let device = PyDevice::parse(device)?;
        let options = KidOptions {
            subsets,
            subset_size,
            seed,
            ..KidOptions::default()
        };
        let inception = py
            .detach(|| FidInceptionV3::from_checkpoint(&path, &device.device))
            .map_err(to_py_err)?;
        Ok(Self {
            inception,
            options,
            sets: Mutex::new((Vec::new(), Vec::new())),
            device,
        })
    }

    /// The device the Inception network is on (canonical name).
    #[getter]
    fn device(&self) -> String {
        self.device.name.clone()
    }

    #[getter]
    fn feature_dim(&self) -> usize {
        self.inception.feature_dim()
    }

    /// (subsets, subset_size, seed).
    #[getter]
    fn options(&self) -> (usize, usize, u32) {
        let o = &self.options;
        (o.subsets, o.subset_size, o.seed)
    }

    #[getter]
    fn counts(&self, py: Python<'_>) -> PyResult<(usize, usize)> {
        let d = self.inception.feature_dim();
        py.detach(|| locked(&self.sets, |(r, f)| Ok((r.len() / d, f.len() / d))))
            .map_err(to_py_err)
    }

    fn features<'py>(
        &self,
        py: Python<'py>,
        images: PyReadonlyArrayDyn<'py, f32>,
    ) -> PyResult<Bound<'py, PyAny>> {
        inception_features(py, &images, &self.device.device, |t| {
            self.inception.features(t)
        })
    }

    fn update_features(
        &self,
        py: Python<'_>,
        features: PyReadonlyArrayDyn<'_, f32>,
        real: bool,
    ) -> PyResult<()> {
        let (v, d) = features_from("features", &features)?;
        check_feature_dim("features", d, self.inception.feature_dim())?;
        if v.iter().any(|x| !x.is_finite()) {
            return Err(to_py_err(VtonError::Numerical {
                operation: "KID features".into(),
                message: "a feature is NaN or infinite".into(),
            }));
        }
        py.detach(|| {
            locked(&self.sets, |(r, f)| {
                if real { r } else { f }.extend_from_slice(&v);
                Ok(())
            })
        })
        .map_err(to_py_err)
    }

    /// (mean, std) of the per-subset MMD² (`kid::kid` on the features seen so far).
    fn compute(&self, py: Python<'_>) -> PyResult<(f64, f64)> {
        let d = self.inception.feature_dim();
        py.detach(|| locked(&self.sets, |(r, f)| vm::kid(r, f, d, &self.options)))
            .map(|k| (k.mean, k.std))
            .map_err(to_py_err)
    }

    fn reset(&self, py: Python<'_>) -> PyResult<()> {
        py.detach(|| {
            locked(&self.sets, |(r, f)| {
                r.clear();
                f.clear();
                Ok(())
            })
        })
        .map_err(to_py_err)
    }
}

// ---------------------------------------------------------------------------------------
// Statistics and features

fn vector64(name: &str, a: &PyReadonlyArrayDyn<'_, f64>) -> PyResult<Vec<f64>> {
    let s = a.shape();
    if s.len() != 1 {
        return Err(bad(format!("{name} must be a 1-D mean, got shape {s:?}")));
    }
    Ok(a.as_array().iter().copied().collect())
}

fn square64(name: &str, a: &PyReadonlyArrayDyn<'_, f64>) -> PyResult<Vec<f64>> {
    let s = a.shape();
    if s.len() != 2 || s[0] != s[1] {
        return Err(bad(format!(
            "{name} must be a square (D, D) covariance, got shape {s:?}"
        )));
    }
    Ok(a.as_array().iter().copied().collect())
}

/// pytorch-fid's `calculate_frechet_distance` on float64 statistics.
#[pyfunction]
fn _frechet_distance(
    py: Python<'_>,
    mu1: PyReadonlyArrayDyn<'_, f64>,
    sigma1: PyReadonlyArrayDyn<'_, f64>,
    mu2: PyReadonlyArrayDyn<'_, f64>,
    sigma2: PyReadonlyArrayDyn<'_, f64>,
) -> PyResult<f64> {
    let (m1, s1) = (vector64("mu1", &mu1)?, square64("sigma1", &sigma1)?);
    let (m2, s2) = (vector64("mu2", &mu2)?, square64("sigma2", &sigma2)?);
    py.detach(|| vm::frechet_distance(&m1, &s1, &m2, &s2))
        .map(|r| r.value)
        .map_err(to_py_err)
}

fn subset_rows(name: &str, a: &PyReadonlyArrayDyn<'_, i64>) -> PyResult<Vec<Vec<usize>>> {
    let s = a.shape();
    if s.len() != 2 {
        return Err(bad(format!(
            "{name} must be a (subsets, subset_size) index array, got shape {s:?}"
        )));
    }
    let v: Vec<i64> = a.as_array().iter().copied().collect();
    if let Some(neg) = v.iter().find(|&&i| i < 0) {
        return Err(bad(format!("{name} holds a negative index ({neg})")));
    }
    Ok(v.chunks(s[1].max(1))
        .take(s[0])
        .map(|row| row.iter().map(|&i| i as usize).collect())
        .collect())
}

/// torch-fidelity's KID on two feature sets; returns (mean, std).
#[pyfunction]
#[pyo3(signature = (real, fake, subsets=100, subset_size=1000, seed=2020, indices1=None, indices2=None))]
#[allow(clippy::too_many_arguments)]
fn _kid(
    py: Python<'_>,
    real: PyReadonlyArrayDyn<'_, f32>,
    fake: PyReadonlyArrayDyn<'_, f32>,
    subsets: usize,
    subset_size: usize,
    seed: u32,
    indices1: Option<PyReadonlyArrayDyn<'_, i64>>,
    indices2: Option<PyReadonlyArrayDyn<'_, i64>>,
) -> PyResult<(f64, f64)> {
    let (r, d1) = features_from("features_real", &real)?;
    let (f, d2) = features_from("features_fake", &fake)?;
    if d1 != d2 {
        return Err(to_py_err(VtonError::SizeMismatch {
            what: "KID feature sets".into(),
            expected: format!("{d1}-wide features (features_real)"),
            actual: format!("{d2}-wide (features_fake)"),
        }));
    }
    let subset_indices = match (indices1, indices2) {
        (None, None) => None,
        (Some(a), Some(b)) => {
            let (a, b) = (
                subset_rows("subset_indices[0]", &a)?,
                subset_rows("subset_indices[1]", &b)?,
            );
            if a.len() != b.len() {
                return Err(bad(format!(
                    "subset_indices: {} subsets for set 1 but {} for set 2",
                    a.len(),
                    b.len()
                )));
            }
            Some(a.into_iter().zip(b).collect())
        }
        _ => return Err(bad("subset_indices needs index arrays for both sets".into())),
    };
    let opts = KidOptions {
        subsets,
        subset_size,
        seed,
        subset_indices,
        ..KidOptions::default()
    };
    py.detach(|| vm::kid(&r, &f, d1, &opts))
        .map(|k| (k.mean, k.std))
        .map_err(to_py_err)
}

pub(crate) fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_function(wrap_pyfunction!(_psnr, m)?)?;
    m.add_function(wrap_pyfunction!(_ssim, m)?)?;
    m.add_function(wrap_pyfunction!(_ssim_convention_name, m)?)?;
    m.add_function(wrap_pyfunction!(_ms_ssim, m)?)?;
    m.add_function(wrap_pyfunction!(_frechet_distance, m)?)?;
    m.add_function(wrap_pyfunction!(_kid, m)?)?;
    m.add_class::<PyLpips>()?;
    m.add_class::<PyFid>()?;
    m.add_class::<PyKid>()?;
    Ok(())
}
