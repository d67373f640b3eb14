//! HR-VITON at test time, as its `test_generator.py` runs it between the two networks:
//! the condition generator at a fixed 256x192, cloth-mask composition of its
//! segmentation, Gaussian blur and argmax to a 7-label parse at full resolution, the
//! final flow upsampled to full resolution to warp the cloth, occlusion removal where
//! the predicted body parts lie in front of the cloth, and the image generator.

use std::path::Path;

use burn::tensor::module::conv2d;
use burn::tensor::ops::ConvOptions;
use burn::tensor::{Device, Int, Tensor, TensorData};

use crate::error::{Result, VtonError};
use crate::io::{Mask, ParseMap, RgbImage, ValueRange};
use crate::models::hrviton::{
    hr_grid_sample, make_grid, normalize_flow, ConditionGenerator, ConditionGeneratorConfig,
    ConditionOutput, HRVitonGenerator, HRVitonGeneratorConfig, SpadeNoise,
};
use crate::nn::{resize_bilinear, resize_nearest};

/// How the condition generator's segmentation is combined with its warped cloth mask
/// (`opt.clothmask_composition`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClothMaskComposition {
    /// `'warp_grad'` / `'detach'` (identical at test time): the cloth channel (3) of the
    /// segmentation is multiplied by the warped cloth mask.
    WarpGrad,
    /// `'no_composition'`.
    None,
}

/// Test-time options of HR-VITON (`test_generator.py` defaults).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct HRVitonOptions {
    /// Size the condition generator runs at (hard-coded 256x192 in the original).
    pub tocg_height: usize,
    pub tocg_width: usize,
    pub composition: ClothMaskComposition,
    /// `opt.occlusion`: remove cloth where body parts are predicted in front of it.
    pub occlusion: bool,
}

impl Default for HRVitonOptions {
    fn default() -> Self {
        HRVitonOptions {
            tocg_height: 256,
            tocg_width: 192,
            composition: ClothMaskComposition::WarpGrad,
            occlusion: true,
        }
    }
}

/// The documented inputs, as tensors at the generator's fine size.
#[derive(Debug, Clone)]
pub struct HRVitonInputs {
    /// `[B, 3, H, W]` in [-1, 1].
    pub cloth: Tensor<4>,
    /// `[B, 1, H, W]`; binarised at 0.5, as the original does.
    pub cloth_mask: Tensor<4>,
    /// `[B, 13, H, W]` one-hot of HR-VITON's 13 groups (`image-parse-agnostic-v3.2`).
    pub parse_agnostic: Tensor<4>,
    /// `[B, 3, H, W]` DensePose image in [-1, 1].
    pub densepose: Tensor<4>,
    /// `[B, 3, H, W]` agnostic person image in [-1, 1] (`agnostic-v3.2`).
    pub agnostic: Tensor<4>,
}

/// Everything the test procedure computes on the way to the image.
#[derive(Debug, Clone)]
pub struct HRVitonOutputs {
    /// `[B, 3, H', W']` in [-1, 1] (H', W' = fine size rounded down to the generator's
    /// multiple, i.e. the fine size for 1024x768).
    pub output: Tensor<4>,
    /// Condition generator outputs at its own size.
    pub tocg: ConditionOutput,
    /// Composed, upsampled and blurred segmentation `[B, 13, H, W]`.
    pub fake_parse_gauss: Tensor<4>,
    /// Its argmax `[B, 1, H, W]` (labels 0..12 as floats).
    pub fake_parse: Tensor<4>,
    /// The generator's 7-label one-hot parse `[B, 7, H, W]`.
    pub parse: Tensor<4>,
    pub warped_cloth: Tensor<4>,
    pub warped_clothmask: Tensor<4>,
    pub warped_clothmask_before_occlusion: Tensor<4>,
}

/// HR-VITON's 13 groups merged into the generator's 7 labels (`test_generator.py`).
pub const GEN_LABELS: [&[usize]; 7] = [
    &[0],
    &[2, 4, 7, 8, 9, 10, 11],
    &[3],
    &[1],
    &[5],
    &[6],
    &[12],
];

/// torchgeometry's `GaussianBlur((15, 15), (3, 3))`: a normalised separable kernel applied
/// as one 15x15 depthwise convolution with zero padding.
pub fn gaussian_blur(x: Tensor<4>, ksize: usize, sigma: f64) -> Tensor<4> {
    let [_, c, _, _] = x.dims();
    let half = (ksize / 2) as f64;
    let g: Vec<f32> = (0..ksize)
        .map(|i| (-((i as f64 - half).powi(2)) / (2.0 * sigma * sigma)).exp() as f32)
        .collect();
    let sum: f32 = g.iter().sum();
    let g: Vec<f32> = g.iter().map(|v| v / sum).collect();
    let mut k = Vec::with_capacity(c * ksize * ksize);
    for _ in 0..c {
        for a in &g {
            for b in &g {
                k.push(a * b);
            }
        }
    }
    let weight = Tensor::<4>::from_data(TensorData::new(k, [c, 1, ksize, ksize]), &x.device());
    let p = ksize / 2;
    conv2d(x, weight, None, ConvOptions::new([1, 1], [p, p], [1, 1], c))
}

/// One-hot of the argmax of `x [B, C, H, W]` merged into groups: `[B, groups, H, W]`.
fn grouped_one_hot(labels: &Tensor<4, Int>, groups: &[&[usize]]) -> Tensor<4> {
    let planes: Vec<Tensor<4>> = groups
        .iter()
        .map(|g| {
            g.iter()
                .map(|&l| labels.clone().equal_elem(l as i64).float())
                .reduce(|a, b| a + b)
                .expect("non-empty group")
        })
        .collect();
    Tensor::cat(planes, 1)
}

fn check4(what: &str, t: &Tensor<4>, c: usize, b: usize, h: usize, w: usize) -> Result<()> {
    let d = t.dims();
    if d != [b, c, h, w] {
        return Err(VtonError::Shape {
            what: what.into(),
            expected: format!("[{b}, {c}, {h}, {w}]"),
            actual: d.to_vec(),
        });
    }
    Ok(())
}

/// The whole HR-VITON chain.
#[derive(Debug)]
pub struct HRVitonPipeline {
    pub tocg: ConditionGenerator,
    pub generator: HRVitonGenerator,
    pub options: HRVitonOptions,
}

impl HRVitonPipeline {
    /// Loads `mtviton.pth` and `gen.pth`.
    pub fn from_checkpoints(
        tocg_path: impl AsRef<Path>,
        gen_path: impl AsRef<Path>,
        tocg_config: ConditionGeneratorConfig,
        gen_config: HRVitonGeneratorConfig,
        options: HRVitonOptions,
        device: &Device,
    ) -> Result<Self> {
        let (tocg, _) = ConditionGenerator::from_checkpoint(tocg_path, tocg_config, device)?;
        let generator = HRVitonGenerator::from_checkpoint(gen_path, gen_config, device)?;
        Ok(HRVitonPipeline {
            tocg,
            generator,
            options,
        })
    }

    /// Fine size `(height, width)` the inputs must have.
    pub fn fine_size(&self) -> (usize, usize) {
        let c = self.generator.config();
        (c.fine_height, c.fine_width)
    }

    /// Runs the test procedure on a batch at the fine size.
    pub fn run(&self, inputs: &HRVitonInputs, noise: &mut SpadeNoise) -> Result<HRVitonOutputs> {
        let (fh, fw) = self.fine_size();
        let b = inputs.cloth.dims()[0];
        let tc = self.tocg.config();
        check4("cloth", &inputs.cloth, tc.input1_nc - 1, b, fh, fw)?;
        check4("cloth_mask", &inputs.cloth_mask, 1, b, fh, fw)?;
        let n_parse = tc.input2_nc.saturating_sub(3);
        check4("parse_agnostic", &inputs.parse_agnostic, n_parse, b, fh, fw)?;
        check4("densepose", &inputs.densepose, 3, b, fh, fw)?;
        check4("agnostic", &inputs.agnostic, 3, b, fh, fw)?;
        if tc.output_nc != 13 {
            return Err(VtonError::invalid(
                "output_nc",
                format!(
                    "{} (the test procedure maps 13 segmentation labels)",
                    tc.output_nc
                ),
            ));
        }
        let o = self.options;
        let (th, tw) = (o.tocg_height, o.tocg_width);
        let dev = inputs.cloth.device();

        let pre_mask = inputs.cloth_mask.clone().greater_elem(0.5).float();
        let cloth_down = resize_bilinear(inputs.cloth.clone(), th, tw);
        let mask_down = resize_nearest(pre_mask.clone(), th, tw);
        let parse_down = resize_nearest(inputs.parse_agnostic.clone(), th, tw);
        let dense_down = resize_bilinear(inputs.densepose.clone(), th, tw);
        let input1 = Tensor::cat(vec![cloth_down, mask_down], 1);
        let input2 = Tensor::cat(vec![parse_down, dense_down], 1);
        let tocg = self.tocg.forward(input1, input2)?;

        let mut fake_segmap = tocg.fake_segmap.clone();
        if o.composition == ClothMaskComposition::WarpGrad {
            let [_, c, h, w] = fake_segmap.dims();
            let ones_lo = Tensor::<4>::ones([b, 3, h, w], &dev);
            let ones_hi = Tensor::<4>::ones([b, c - 4, h, w], &dev);
            let m = Tensor::cat(vec![ones_lo, tocg.warped_cloth_mask.clone(), ones_hi], 1);
            fake_segmap = fake_segmap * m;
        }
        let fake_parse_gauss = gaussian_blur(resize_bilinear(fake_segmap, fh, fw), 15, 3.0);
        let labels = fake_parse_gauss.clone().argmax(1); // [B, 1, H, W]
        let parse = grouped_one_hot(&labels, &GEN_LABELS);
        let fake_parse = labels.float();

        // Full-resolution warp: HR-VITON divides by the 96x128 flow size of a 256x192
        // condition generator run, whatever the fine size.
        // (The flow's own size, 128x96 at the default tocg size.)
        let last = tocg.flow_list.last().expect("five flows").clone();
        let [_, fl_h, fl_w, _] = last.dims();
        let flow = resize_bilinear(last.permute([0, 3, 1, 2]), fh, fw).permute([0, 2, 3, 1]);
        let grid =
            make_grid(b, fh, fw, &dev) + normalize_flow(flow, 2.0 * fl_w as f64, 2.0 * fl_h as f64);
        let warped_cloth = hr_grid_sample(inputs.cloth.clone(), grid.clone())?;
        let warped_before = hr_grid_sample(pre_mask, grid)?;

        let mut warped_clothmask = warped_before.clone();
        let mut cloth_out = warped_cloth;
        if o.occlusion {
            let seg = burn::tensor::activation::softmax(fake_parse_gauss.clone(), 1);
            let [_, c, h, w] = seg.dims();
            let body = seg.clone().slice([0..b, 1..3, 0..h, 0..w]).sum_dim(1)
                + seg.slice([0..b, 5..c, 0..h, 0..w]).sum_dim(1);
            warped_clothmask = warped_clothmask.clone() - body * warped_clothmask;
            cloth_out = cloth_out * warped_clothmask.clone()
                + (warped_clothmask.clone().neg().add_scalar(1.0));
        }
        let x = Tensor::cat(
            vec![
                inputs.agnostic.clone(),
                inputs.densepose.clone(),
                cloth_out.clone(),
            ],
            1,
        );
        let output = self.generator.forward(x, parse.clone(), noise)?;
        Ok(HRVitonOutputs {
            output,
            tocg,
            fake_parse_gauss,
            fake_parse,
            parse,
            warped_cloth: cloth_out,
            warped_clothmask,
            warped_clothmask_before_occlusion: warped_before,
        })
    }
}

/// The documented inputs as files give them (VITON-HD / HR-VITON preprocessing): cloth
/// photo and mask, the parse-agnostic label map (LIP labels), the DensePose image and
/// the agnostic person image. OpenPose output is not an input of the networks.
#[derive(Debug, Clone)]
pub struct HRVitonImages {
    pub cloth: RgbImage,
    pub cloth_mask: Mask,
    pub parse_agnostic: ParseMap,
    pub densepose: RgbImage,
    pub agnostic: RgbImage,
}

impl HRVitonImages {
    /// Tensors at `height x width`: images resized bilinearly to [-1, 1], the cloth mask
    /// binarised (>= 0.5), the parse map resized by nearest label and one-hot encoded in
    /// HR-VITON's 13 groups.
    pub fn to_inputs(&self, height: usize, width: usize, device: &Device) -> Result<HRVitonInputs> {
        let img = |i: &RgbImage| {
            i.resize(width, height)
                .to_tensor(device, ValueRange::MinusOneOne)
        };
        let parse13 = match self.parse_agnostic.num_labels {
            13 => self.parse_agnostic.clone(),
            _ => self.parse_agnostic.to_hrviton13()?,
        }
        .resize_nearest(width, height);
        Ok(HRVitonInputs {
            cloth: img(&self.cloth),
            cloth_mask: self
                .cloth_mask
                .resize(width, height)
                .binarized()
                .to_tensor(device),
            parse_agnostic: Tensor::from_data(
                TensorData::new(parse13.one_hot(), [1, 13, height, width]),
                device,
            ),
            densepose: img(&self.densepose),
            agnostic: img(&self.agnostic),
        })
    }
}

/// The try-on on images, at the generator's output size.
#[derive(Debug, Clone)]
pub struct HRVitonResult {
    pub image: RgbImage,
    pub warped_cloth: RgbImage,
    pub warped_mask: Mask,
}

impl HRVitonPipeline {
    /// Runs on file-level inputs, resized to the fine size.
    pub fn try_on(
        &self,
        images: &HRVitonImages,
        noise: &mut SpadeNoise,
        device: &Device,
    ) -> Result<HRVitonResult> {
        let (h, w) = self.fine_size();
        let inputs = images.to_inputs(h, w, device)?;
        let out = self.run(&inputs, noise)?;
        let clamp = |t: Tensor<4>| t.clamp(-1.0, 1.0);
        Ok(HRVitonResult {
            image: RgbImage::from_tensor(clamp(out.output), ValueRange::MinusOneOne)?,
            warped_cloth: RgbImage::from_tensor(clamp(out.warped_cloth), ValueRange::MinusOneOne)?,
            warped_mask: Mask::from_tensor(out.warped_clothmask.clamp(0.0, 1.0))?,
        })
    }
}
