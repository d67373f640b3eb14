//! CP-VTON+ and HR-VITON from Python, with the original constructor argument names:
//! `GMM`, `TOM`, `ConditionGenerator`, `HRVitonGenerator` and the two pipelines.
//! Arrays are float32 NCHW; grids and flows NHWC `(x, y)`. Every loader takes a keyword
//! `device="cpu"`; the object keeps it and computes there.

use numpy::{PyArrayDyn, PyReadonlyArrayDyn};
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyList, PyTuple};
use vton_core::burn::tensor::Tensor;
use vton_core::io::image::tensor_to_vec;
use vton_core::io::{Mask, ParseMap, Pose, RgbImage};
use vton_core::models::cpvton::{Gmm, GmmConfig, Tom, TomConfig};
use vton_core::models::hrviton::{
    ConditionGenerator as CoreTocg, ConditionGeneratorConfig, HRVitonGenerator as CoreGen,
    HRVitonGeneratorConfig, NormG, SpadeNoise,
};
use vton_core::nn::NormKind;
use vton_core::pipelines::cpvton::{CPVTONPipeline as CoreCp, CpvtonOptions, CpvtonPerson};
use vton_core::pipelines::hrviton::{
    HRVitonImages, HRVitonInputs, HRVitonOptions, HRVitonPipeline as CoreHr,
};

use crate::{
    bad, dyn_out, image_from, image_to_py, mask_from, mask_to_py, shape_of, tensor4, to_py_err,
    to_vec, PyDevice,
};

type Out<'py> = PyResult<Bound<'py, PyArrayDyn<f32>>>;

fn out<'py>(py: Python<'py>, t: Tensor<4>) -> Out<'py> {
    let shape = t.dims().to_vec();
    dyn_out(py, shape, tensor_to_vec(t).map_err(to_py_err)?)
}

fn noise(seed: Option<u64>) -> SpadeNoise {
    seed.map(SpadeNoise::seeded).unwrap_or(SpadeNoise::Zero)
}

fn gmm_config(grid_size: usize, fine_height: usize, fine_width: usize) -> GmmConfig {
    GmmConfig {
        grid_size,
        fine_height,
        fine_width,
    }
}

fn tom_config(
    input_nc: usize,
    output_nc: usize,
    num_downs: usize,
    ngf: usize,
    norm_layer: &str,
) -> PyResult<TomConfig> {
    Ok(TomConfig {
        input_nc,
        output_nc,
        num_downs,
        ngf,
        norm_layer: NormKind::from_name(norm_layer).map_err(to_py_err)?,
    })
}

#[allow(clippy::too_many_arguments)]
fn tocg_config(
    input1_nc: usize,
    input2_nc: usize,
    output_nc: usize,
    ngf: usize,
    norm_layer: &str,
    warp_feature: &str,
    out_layer: &str,
    upsample: &str,
) -> PyResult<ConditionGeneratorConfig> {
    ConditionGeneratorConfig {
        input1_nc,
        input2_nc,
        output_nc,
        ngf,
        ..ConditionGeneratorConfig::default()
    }
    .with_names(norm_layer, warp_feature, out_layer, upsample)
    .map_err(to_py_err)
}

#[allow(clippy::too_many_arguments)]
fn gen_config(
    input_nc: usize,
    ngf: usize,
    norm_g: &str,
    num_upsampling_layers: &str,
    gen_semantic_nc: usize,
    fine_height: usize,
    fine_width: usize,
) -> PyResult<HRVitonGeneratorConfig> {
    Ok(HRVitonGeneratorConfig {
        input_nc,
        ngf,
        norm_g: NormG::parse(norm_g).map_err(to_py_err)?,
        num_up_layers: HRVitonGeneratorConfig::num_up_layers_from_name(num_upsampling_layers)
            .map_err(to_py_err)?,
        gen_semantic_nc,
        fine_height,
        fine_width,
    })
}

/// CP-VTON+ Geometric Matching Module.
#[pyclass(name = "GMM", module = "vton", frozen)]
struct GMM {
    inner: Gmm,
    device: PyDevice,
}

#[pymethods]
impl GMM {
    /// The device the model is on and computes on (canonical name).
    #[getter]
    fn device(&self) -> String {
        self.device.name.clone()
    }

    /// Loads `gmm_final.pth` (state dict under the original keys; `module.` prefixes and
    /// the legacy format accepted). Widths come from the checkpoint.
    #[staticmethod]
    #[pyo3(signature = (path, grid_size=5, fine_height=256, fine_width=192, *, device="cpu"))]
    fn from_checkpoint(
        py: Python<'_>,
        path: std::path::PathBuf,
        grid_size: usize,
        fine_height: usize,
        fine_width: usize,
        device: &str,
    ) -> PyResult<Self> {
        let device = PyDevice::parse(device)?;
        let cfg = gmm_config(grid_size, fine_height, fine_width);
        let inner = py
            .detach(|| Gmm::from_checkpoint(&path, cfg, &device.device))
            .map_err(to_py_err)?;
        Ok(GMM { inner, device })
    }

    /// `gmm(agnostic (N, 22, H, W), cloth_mask (N, 1, H, W))` -> `(grid (N, H, W, 2), theta (N, 2 * grid_size**2))`.
    fn __call__<'py>(
        &self,
        py: Python<'py>,
        agnostic: PyReadonlyArrayDyn<'py, f32>,
        cloth_mask: PyReadonlyArrayDyn<'py, f32>,
    ) -> PyResult<Bound<'py, PyTuple>> {
        let dev = &self.device.device;
        let (a, m) = (
            tensor4("agnostic", &agnostic, dev)?,
            tensor4("cloth_mask", &cloth_mask, dev)?,
        );
        let o = py.detach(|| self.inner.forward(a, m)).map_err(to_py_err)?;
        let [b, t] = o.theta.dims();
        let theta = dyn_out(py, vec![b, t], tensor_to_vec(o.theta).map_err(to_py_err)?)?;
        PyTuple::new(py, [out(py, o.grid)?.into_any(), theta.into_any()])
    }

    fn __repr__(&self) -> String {
        let c = self.inner.config();
        format!(
            "GMM(grid_size={}, fine_height={}, fine_width={})",
            c.grid_size, c.fine_height, c.fine_width
        )
    }
}

/// CP-VTON+ Try-On Module (U-Net generator).
#[pyclass(name = "TOM", module = "vton", frozen)]
struct TOM {
    inner: Tom,
    device: PyDevice,
}

#[pymethods]
impl TOM {
    /// The device the model is on and computes on (canonical name).
    #[getter]
    fn device(&self) -> String {
        self.device.name.clone()
    }

    /// Loads `tom_final.pth` with `UnetGenerator`'s arguments.
    #[staticmethod]
    #[allow(clippy::too_many_arguments)]
    #[pyo3(signature = (path, input_nc=26, output_nc=4, num_downs=6, ngf=64, norm_layer="instance", *, device="cpu"))]
    fn from_checkpoint(
        py: Python<'_>,
        path: std::path::PathBuf,
        input_nc: usize,
        output_nc: usize,
        num_downs: usize,
        ngf: usize,
        norm_layer: &str,
        device: &str,
    ) -> PyResult<Self> {
        let device = PyDevice::parse(device)?;
        let cfg = tom_config(input_nc, output_nc, num_downs, ngf, norm_layer)?;
        let inner = py
            .detach(|| Tom::from_checkpoint(&path, cfg, &device.device))
            .map_err(to_py_err)?;
        Ok(TOM { inner, device })
    }

    /// `tom(agnostic, warped_cloth, warped_mask)` -> `(p_rendered, m_composite, p_tryon)`.
    fn __call__<'py>(
        &self,
        py: Python<'py>,
        agnostic: PyReadonlyArrayDyn<'py, f32>,
        warped_cloth: PyReadonlyArrayDyn<'py, f32>,
        warped_mask: PyReadonlyArrayDyn<'py, f32>,
    ) -> PyResult<Bound<'py, PyTuple>> {
        let dev = &self.device.device;
        let a = tensor4("agnostic", &agnostic, dev)?;
        let c = tensor4("warped_cloth", &warped_cloth, dev)?;
        let m = tensor4("warped_mask", &warped_mask, dev)?;
        let o = py
            .detach(|| self.inner.forward(a, c, m))
            .map_err(to_py_err)?;
        PyTuple::new(
            py,
            [
                out(py, o.p_rendered)?,
                out(py, o.m_composite)?,
                out(py, o.p_tryon)?,
            ],
        )
    }

    fn __repr__(&self) -> String {
        let c = self.inner.config();
        format!(
            "TOM(input_nc={}, output_nc={}, num_downs={}, ngf={})",
            c.input_nc, c.output_nc, c.num_downs, c.ngf
        )
    }
}

/// HR-VITON's try-on condition generator.
#[pyclass(name = "ConditionGenerator", module = "vton", frozen)]
struct ConditionGenerator {
    inner: CoreTocg,
    device: PyDevice,
}

#[pymethods]
impl ConditionGenerator {
    /// The device the model is on and computes on (canonical name).
    #[getter]
    fn device(&self) -> String {
        self.device.name.clone()
    }

    /// Loads `mtviton.pth` with the constructor's and `opt`'s names.
    #[staticmethod]
    #[allow(clippy::too_many_arguments)]
    #[pyo3(signature = (path, input1_nc=4, input2_nc=16, output_nc=13, ngf=96, norm_layer="batch",
                        warp_feature="T1", out_layer="relu", upsample="bilinear", *, device="cpu"))]
    fn from_checkpoint(
        py: Python<'_>,
        path: std::path::PathBuf,
        input1_nc: usize,
        input2_nc: usize,
        output_nc: usize,
        ngf: usize,
        norm_layer: &str,
        warp_feature: &str,
        out_layer: &str,
        upsample: &str,
        device: &str,
    ) -> PyResult<Self> {
        let device = PyDevice::parse(device)?;
        let cfg = tocg_config(
            input1_nc,
            input2_nc,
            output_nc,
            ngf,
            norm_layer,
            warp_feature,
            out_layer,
            upsample,
        )?;
        let (inner, _) = py
            .detach(|| CoreTocg::from_checkpoint(&path, cfg, &device.device))
            .map_err(to_py_err)?;
        Ok(ConditionGenerator { inner, device })
    }

    /// `tocg(input1, input2)` -> `(flow_list, fake_segmap, warped_cloth, warped_cloth_mask)`.
    fn __call__<'py>(
        &self,
        py: Python<'py>,
        input1: PyReadonlyArrayDyn<'py, f32>,
        input2: PyReadonlyArrayDyn<'py, f32>,
    ) -> PyResult<Bound<'py, PyTuple>> {
        let dev = &self.device.device;
        let (a, b) = (
            tensor4("input1", &input1, dev)?,
            tensor4("input2", &input2, dev)?,
        );
        let o = py.detach(|| self.inner.forward(a, b)).map_err(to_py_err)?;
        let flows = o
            .flow_list
            .into_iter()
            .map(|f| out(py, f))
            .collect::<PyResult<Vec<_>>>()?;
        let flows = PyList::new(py, flows)?;
        PyTuple::new(
            py,
            [
                flows.into_any(),
                out(py, o.fake_segmap)?.into_any(),
                out(py, o.warped_cloth)?.into_any(),
                out(py, o.warped_cloth_mask)?.into_any(),
            ],
        )
    }
}

/// HR-VITON's SPADE/ALIAS image generator.
#[pyclass(name = "HRVitonGenerator", module = "vton", frozen)]
struct HRVitonGenerator {
    inner: CoreGen,
    device: PyDevice,
}

#[pymethods]
impl HRVitonGenerator {
    /// The device the model is on and computes on (canonical name).
    #[getter]
    fn device(&self) -> String {
        self.device.name.clone()
    }

    /// Loads `gen.pth` (released key names or renamed ones) with `opt`'s names.
    #[staticmethod]
    #[allow(clippy::too_many_arguments)]
    #[pyo3(signature = (path, input_nc=9, ngf=64, norm_G="spectralaliasinstance",
                        num_upsampling_layers="most", gen_semantic_nc=7, fine_height=1024, fine_width=768, *, device="cpu"))]
    fn from_checkpoint(
        py: Python<'_>,
        path: std::path::PathBuf,
        input_nc: usize,
        ngf: usize,
        #[allow(non_snake_case)] norm_G: &str,
        num_upsampling_layers: &str,
        gen_semantic_nc: usize,
        fine_height: usize,
        fine_width: usize,
        device: &str,
    ) -> PyResult<Self> {
        let device = PyDevice::parse(device)?;
        let cfg = gen_config(
            input_nc,
            ngf,
            norm_G,
            num_upsampling_layers,
            gen_semantic_nc,
            fine_height,
            fine_width,
        )?;
        let inner = py
            .detach(|| CoreGen::from_checkpoint(&path, cfg, &device.device))
            .map_err(to_py_err)?;
        Ok(HRVitonGenerator { inner, device })
    }

    /// `gen(x, seg)` -> image `(N, 3, H, W)` in [-1, 1]. The norms' noise is drawn from
    /// vton's generator with `seed`; `seed=None` drops it.
    #[pyo3(signature = (x, seg, seed=Some(0)))]
    fn __call__<'py>(
        &self,
        py: Python<'py>,
        x: PyReadonlyArrayDyn<'py, f32>,
        seg: PyReadonlyArrayDyn<'py, f32>,
        seed: Option<u64>,
    ) -> Out<'py> {
        let dev = &self.device.device;
        let (x, s) = (tensor4("x", &x, dev)?, tensor4("seg", &seg, dev)?);
        let o = py
            .detach(|| self.inner.forward(x, s, &mut noise(seed)))
            .map_err(to_py_err)?;
        out(py, o)
    }
}

/// CP-VTON+ end to end.
#[pyclass(name = "_CPVTONPipeline", module = "vton", frozen)]
struct CPVTONPipeline {
    inner: CoreCp,
    device: PyDevice,
}

fn parse_from(a: &PyReadonlyArrayDyn<'_, f32>) -> PyResult<ParseMap> {
    let s = shape_of(a);
    if s.len() != 2 {
        return Err(bad(format!(
            "parse must be an (H, W) label array, got shape {s:?}"
        )));
    }
    let labels: Option<Vec<u8>> = a
        .as_array()
        .iter()
        .map(|&v| (v >= 0.0 && v < 20.0 && v.fract() == 0.0).then_some(v as u8))
        .collect();
    let labels = labels.ok_or_else(|| bad("parse labels must be integers in 0..20".into()))?;
    ParseMap::new(s[1], s[0], labels, 20).map_err(to_py_err)
}

#[pymethods]
impl CPVTONPipeline {
    /// The device the model is on and computes on (canonical name).
    #[getter]
    fn device(&self) -> String {
        self.device.name.clone()
    }

    #[staticmethod]
    #[allow(clippy::too_many_arguments)]
    #[pyo3(signature = (gmm_path, tom_path, grid_size=5, fine_height=256, fine_width=192,
                        ngf=64, norm_layer="instance", align_corners=true, radius=5, *, device="cpu"))]
    fn from_checkpoints(
        py: Python<'_>,
        gmm_path: std::path::PathBuf,
        tom_path: std::path::PathBuf,
        grid_size: usize,
        fine_height: usize,
        fine_width: usize,
        ngf: usize,
        norm_layer: &str,
        align_corners: bool,
        radius: usize,
        device: &str,
    ) -> PyResult<Self> {
        let device = PyDevice::parse(device)?;
        let g = gmm_config(grid_size, fine_height, fine_width);
        let t = tom_config(26, 4, 6, ngf, norm_layer)?;
        let o = CpvtonOptions {
            align_corners,
            radius,
        };
        let inner = py
            .detach(|| CoreCp::from_checkpoints(&gmm_path, &tom_path, g, t, o, &device.device))
            .map_err(to_py_err)?;
        Ok(CPVTONPipeline { inner, device })
    }

    /// Images in [0, 1] (H, W, 3), masks (H, W), keypoints (25, 3) -> dict of arrays.
    #[allow(clippy::too_many_arguments)]
    #[pyo3(signature = (person, keypoints, cloth, cloth_mask, person_mask=None, parse=None))]
    fn try_on<'py>(
        &self,
        py: Python<'py>,
        person: PyReadonlyArrayDyn<'py, f32>,
        keypoints: PyReadonlyArrayDyn<'py, f32>,
        cloth: PyReadonlyArrayDyn<'py, f32>,
        cloth_mask: PyReadonlyArrayDyn<'py, f32>,
        person_mask: Option<PyReadonlyArrayDyn<'py, f32>>,
        parse: Option<PyReadonlyArrayDyn<'py, f32>>,
    ) -> PyResult<Bound<'py, PyDict>> {
        let person: RgbImage = image_from("person", &person)?;
        let pose = Pose::from_flat(&to_vec(&keypoints)).map_err(to_py_err)?;
        let cloth = image_from("cloth", &cloth)?;
        let cm: Mask = mask_from("cloth_mask", &cloth_mask)?;
        let pm = person_mask
            .as_ref()
            .map(|m| mask_from("person_mask", m))
            .transpose()?;
        let parse = parse.as_ref().map(parse_from).transpose()?;
        let (h, w) = self.inner.fine_size();
        let r = py
            .detach(|| {
                let p = CpvtonPerson::prepare(&person, &pose, parse.as_ref(), pm.as_ref(), w, h)?;
                self.inner.try_on(&p, &cloth, &cm, &self.device.device)
            })
            .map_err(to_py_err)?;
        let d = PyDict::new(py);
        d.set_item("image", image_to_py(py, r.image)?)?;
        d.set_item("warped_cloth", image_to_py(py, r.warped_cloth)?)?;
        d.set_item("warped_mask", mask_to_py(py, r.warped_mask)?)?;
        d.set_item("rendered", image_to_py(py, r.rendered)?)?;
        d.set_item("composition_mask", mask_to_py(py, r.composition_mask)?)?;
        Ok(d)
    }

    /// The chain on tensors -> dict (grid, theta, warped_cloth, warped_mask, p_rendered, m_composite, p_tryon).
    fn run<'py>(
        &self,
        py: Python<'py>,
        agnostic_gmm: PyReadonlyArrayDyn<'py, f32>,
        agnostic_tom: PyReadonlyArrayDyn<'py, f32>,
        cloth: PyReadonlyArrayDyn<'py, f32>,
        cloth_mask: PyReadonlyArrayDyn<'py, f32>,
    ) -> PyResult<Bound<'py, PyDict>> {
        let dev = &self.device.device;
        let ag = tensor4("agnostic_gmm", &agnostic_gmm, dev)?;
        let at = tensor4("agnostic_tom", &agnostic_tom, dev)?;
        let c = tensor4("cloth", &cloth, dev)?;
        let m = tensor4("cloth_mask", &cloth_mask, dev)?;
        let o = py
            .detach(|| self.inner.run(ag, at, c, m))
            .map_err(to_py_err)?;
        let d = PyDict::new(py);
        let [b, t] = o.theta.dims();
        d.set_item("grid", out(py, o.grid)?)?;
        d.set_item(
            "theta",
            dyn_out(py, vec![b, t], tensor_to_vec(o.theta).map_err(to_py_err)?)?,
        )?;
        d.set_item("warped_cloth", out(py, o.warped_cloth)?)?;
        d.set_item("warped_mask", out(py, o.warped_mask)?)?;
        d.set_item("p_rendered", out(py, o.p_rendered)?)?;
        d.set_item("m_composite", out(py, o.m_composite)?)?;
        d.set_item("p_tryon", out(py, o.p_tryon)?)?;
        Ok(d)
    }
}

/// HR-VITON end to end.
#[pyclass(name = "_HRVitonPipeline", module = "vton", frozen)]
struct HRVitonPipeline {
    inner: CoreHr,
    device: PyDevice,
}

#[pymethods]
impl HRVitonPipeline {
    /// The device the model is on and computes on (canonical name).
    #[getter]
    fn device(&self) -> String {
        self.device.name.clone()
    }

    #[staticmethod]
    #[allow(clippy::too_many_arguments)]
    #[pyo3(signature = (tocg_path, gen_path, tocg_ngf=96, ngf=64, fine_height=1024, fine_width=768,
                        norm_G="spectralaliasinstance", num_upsampling_layers="most", occlusion=true, *, device="cpu"))]
    fn from_checkpoints(
        py: Python<'_>,
        tocg_path: std::path::PathBuf,
        gen_path: std::path::PathBuf,
        tocg_ngf: usize,
        ngf: usize,
        fine_height: usize,
        fine_width: usize,
        #[allow(non_snake_case)] norm_G: &str,
        num_upsampling_layers: &str,
        occlusion: bool,
        device: &str,
    ) -> PyResult<Self> {
        let device = PyDevice::parse(device)?;
        let tc = ConditionGeneratorConfig {
            ngf: tocg_ngf,
            ..ConditionGeneratorConfig::default()
        };
        let gc = gen_config(
            9,
            ngf,
            norm_G,
            num_upsampling_layers,
            7,
            fine_height,
            fine_width,
        )?;
        let o = HRVitonOptions {
            occlusion,
            ..HRVitonOptions::default()
        };
        let inner = py
            .detach(|| CoreHr::from_checkpoints(&tocg_path, &gen_path, tc, gc, o, &device.device))
            .map_err(to_py_err)?;
        Ok(HRVitonPipeline { inner, device })
    }

    #[getter]
    fn fine_size(&self) -> (usize, usize) {
        self.inner.fine_size()
    }

    /// Images (H, W, 3) in [0, 1], cloth mask (H, W), LIP parse-agnostic labels (H, W).
    #[allow(clippy::too_many_arguments)]
    #[pyo3(signature = (cloth, cloth_mask, parse_agnostic, densepose, agnostic, seed=Some(0)))]
    fn try_on<'py>(
        &self,
        py: Python<'py>,
        cloth: PyReadonlyArrayDyn<'py, f32>,
        cloth_mask: PyReadonlyArrayDyn<'py, f32>,
        parse_agnostic: PyReadonlyArrayDyn<'py, f32>,
        densepose: PyReadonlyArrayDyn<'py, f32>,
        agnostic: PyReadonlyArrayDyn<'py, f32>,
        seed: Option<u64>,
    ) -> PyResult<Bound<'py, PyDict>> {
        let images = HRVitonImages {
            cloth: image_from("cloth", &cloth)?,
            cloth_mask: mask_from("cloth_mask", &cloth_mask)?,
            parse_agnostic: parse_from(&parse_agnostic)?,
            densepose: image_from("densepose", &densepose)?,
            agnostic: image_from("agnostic", &agnostic)?,
        };
        let r = py
            .detach(|| {
                self.inner
                    .try_on(&images, &mut noise(seed), &self.device.device)
            })
            .map_err(to_py_err)?;
        let d = PyDict::new(py);
        d.set_item("image", image_to_py(py, r.image)?)?;
        d.set_item("warped_cloth", image_to_py(py, r.warped_cloth)?)?;
        d.set_item("warped_mask", mask_to_py(py, r.warped_mask)?)?;
        Ok(d)
    }

    /// The test procedure on NCHW tensors at the fine size (parse_agnostic one-hot, 13 ch).
    #[allow(clippy::too_many_arguments)]
    #[pyo3(signature = (cloth, cloth_mask, parse_agnostic, densepose, agnostic, seed=Some(0)))]
    fn run<'py>(
        &self,
        py: Python<'py>,
        cloth: PyReadonlyArrayDyn<'py, f32>,
        cloth_mask: PyReadonlyArrayDyn<'py, f32>,
        parse_agnostic: PyReadonlyArrayDyn<'py, f32>,
        densepose: PyReadonlyArrayDyn<'py, f32>,
        agnostic: PyReadonlyArrayDyn<'py, f32>,
        seed: Option<u64>,
    ) -> PyResult<Bound<'py, PyDict>> {
        let dev = &self.device.device;
        let inputs = HRVitonInputs {
            cloth: tensor4("cloth", &cloth, dev)?,
            cloth_mask: tensor4("cloth_mask", &cloth_mask, dev)?,
            parse_agnostic: tensor4("parse_agnostic", &parse_agnostic, dev)?,
            densepose: tensor4("densepose", &densepose, dev)?,
            agnostic: tensor4("agnostic", &agnostic, dev)?,
        };
        let o = py
            .detach(|| self.inner.run(&inputs, &mut noise(seed)))
            .map_err(to_py_err)?;
        let d = PyDict::new(py);
        d.set_item("output", out(py, o.output)?)?;
        d.set_item("fake_parse", out(py, o.fake_parse)?)?;
        d.set_item("parse", out(py, o.parse)?)?;
        d.set_item("warped_cloth", out(py, o.warped_cloth)?)?;
        d.set_item("warped_clothmask", out(py, o.warped_clothmask)?)?;
        d.set_item(
            "warped_clothmask_before_occlusion",
            out(py, o.warped_clothmask_before_occlusion)?,
        )?;
        d.set_item("tocg_fake_segmap", out(py, o.tocg.fake_segmap)?)?;
        Ok(d)
    }
}

pub(crate) fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<GMM>()?;
    m.add_class::<TOM>()?;
    m.add_class::<ConditionGenerator>()?;
    m.add_class::<HRVitonGenerator>()?;
    m.add_class::<CPVTONPipeline>()?;
    m.add_class::<HRVitonPipeline>()?;
    Ok(())
}
