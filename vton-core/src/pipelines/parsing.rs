//! Human parsing with SCHP at test time, as its `simple_extractor.py` runs it
//! (GoGoDuck912/Self-Correction-Human-Parsing; `datasets/simple_extractor_dataset.py`,
//! `utils/transforms.py`):
//!
//! 1. the person box is the whole photo `[0, 0, w - 1, h - 1]`; its centre and a scale
//!    widened to the input's aspect ratio (`_xywh2cs`) give an affine map of the photo
//!    onto the network input (`get_affine_transform`, 473x473 for LIP);
//! 2. the photo, in BGR order as `cv2.imread` gives it, is warped with that map
//!    (`cv2.warpAffine`, bilinear, black border) and normalised with
//!    `ToTensor` + `Normalize(mean=[0.406, 0.456, 0.485], std=[0.225, 0.224, 0.229])`;
//! 3. the network's `output[0][-1]` (fusion logits at 1/4 size) is upsampled bilinearly
//!    with `align_corners=True` to the input size;
//! 4. `transform_logits` warps every class plane back onto the photo with the inverse map
//!    (`cv2.warpAffine`, bilinear, border 0), and the label is the argmax per pixel.
//!
//! `cv2.warpAffine` is reproduced as OpenCV >= 4.11 / 5 computes it (floating-point
//! source coordinates and weights, 8-bit results rounded); OpenCV <= 4.10 quantised the
//! source position to 1/32 pixel, which moves 8-bit values by a few levels.
//!
//! Optionally (`flip`), the input and its mirror image run as one batch and the mirrored
//! logits, with LIP's left/right labels swapped, are averaged in, as `evaluate.py --flip`
//! does; `simple_extractor.py` does not.
//!
//! The second parser is SegFormer ([`HumanParser::from_pretrained`], a Hugging Face folder
//! such as `yolo12138/segformer-b2-human-parse-24`), run as DCI-VITON's `parsehuman.py`
//! runs it: `SegformerImageProcessor` (PIL resize to the configured size, rescale,
//! normalise), the network, `F.interpolate(logits, (h, w), bilinear, align_corners=False)`
//! to the photo size and the argmax. Its labels are the checkpoint's own (`id2label`);
//! [`HumanParser::parse_lip`] maps the 24-label human-parse set to LIP
//! ([`SEGFORMER24_TO_LIP`], the mapping of `parsehuman.py`'s palette).

use std::path::Path;

use burn::tensor::{Device, Int, Tensor, TensorData};

use crate::error::{Result, VtonError};
use crate::io::image::tensor_to_vec;
use crate::io::parse::LIP_LABELS;
use crate::io::{ParseMap, RgbImage};
use crate::models::schp::{resize_bilinear_align_corners, AugmentCE2P};
use crate::models::segformer::{
    upsample_logits, SegformerForSemanticSegmentation, SegformerImageProcessor,
};

/// The 24 labels of `yolo12138/segformer-b2-human-parse-24` (its `config.json` `id2label`,
/// spelling included: "right_patns").
pub const SEGFORMER24_LABELS: [&str; 24] = [
    "background",
    "hat",
    "hair",
    "glove",
    "glasses",
    "upper_only_torso_region",
    "dresses_only_torso_region",
    "coat_only_torso_region",
    "socks",
    "left_pants",
    "right_patns",
    "skin_around_neck_region",
    "scarf",
    "skirts",
    "face",
    "left_arm",
    "right_arm",
    "left_leg",
    "right_leg",
    "left_shoe",
    "right_shoe",
    "left_sleeve_for_upper",
    "right_sleeve_for_upper",
    "bag",
];

/// The LIP / VITON-HD label of each of the 24 labels, as DCI-VITON's `parsehuman.py`
/// palette assigns them: both pant legs -> pants (9), the skin around the neck -> 10
/// (VITON-HD's neck), sleeves of the upper garment -> upper-clothes (5), bag ->
/// background (0); every other label has its LIP namesake (glasses -> sunglasses 4,
/// skirts -> skirt 12, face 13, arms 14/15, legs 16/17, shoes 18/19).
pub const SEGFORMER24_TO_LIP: [u8; 24] = [
    0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 5, 5, 0,
];

/// The LIP label of a segformer-b2-human-parse-24 label (`None` past 23).
pub fn segformer24_to_lip(label: u8) -> Option<u8> {
    SEGFORMER24_TO_LIP.get(label as usize).copied()
}

/// A 24-label map (segformer-b2-human-parse-24) as a 20-label LIP map.
pub fn segformer24_map_to_lip(map: &ParseMap) -> Result<ParseMap> {
    if map.num_labels != 24 {
        return Err(VtonError::invalid(
            "parse map",
            format!(
                "has {} labels; the SegFormer human-parse set has 24",
                map.num_labels
            ),
        ));
    }
    let labels = map
        .labels
        .iter()
        .map(|&l| SEGFORMER24_TO_LIP[l as usize])
        .collect();
    ParseMap::new(map.width, map.height, labels, 20)
}

/// `transforms.Normalize` of `simple_extractor.py`, in BGR order.
pub const SCHP_MEAN_BGR: [f32; 3] = [0.406, 0.456, 0.485];
pub const SCHP_STD_BGR: [f32; 3] = [0.225, 0.224, 0.229];

/// LIP label pairs swapped when a mirrored prediction is folded back (`evaluate.py`:
/// arms 14/15, legs 16/17, shoes 18/19).
pub const LIP_FLIP_PAIRS: [(usize, usize); 3] = [(14, 15), (16, 17), (18, 19)];

/// Test-time options.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HumanParserOptions {
    /// Network input size (`input_size = [h, w]`; LIP: 473x473, ATR and Pascal: 512x512).
    pub input_height: usize,
    pub input_width: usize,
    /// Average with the mirrored prediction (`evaluate.py --flip`; LIP labels only).
    pub flip: bool,
}

impl Default for HumanParserOptions {
    /// `simple_extractor.py --dataset lip`: 473x473, no flip.
    fn default() -> Self {
        HumanParserOptions {
            input_height: 473,
            input_width: 473,
            flip: false,
        }
    }
}

/// Where the photo sits in the network input: SCHP's person centre and scale and the two
/// affine maps (row-major 2x3, `[a, b, c, d, e, f]`: `x' = a x + b y + c`,
/// `y' = d x + e y + f`).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PersonTransform {
    pub center: [f32; 2],
    pub scale: [f32; 2],
    /// Photo -> network input (`get_affine_transform(c, s, 0, input_size)`).
    pub trans: [f64; 6],
    /// Network input -> photo (`inv=1`).
    pub trans_inv: [f64; 6],
    pub photo_width: usize,
    pub photo_height: usize,
    pub input_width: usize,
    pub input_height: usize,
}

impl PersonTransform {
    /// The whole-photo box of `SimpleFolderDataset` for a `width` x `height` photo.
    pub fn new(width: usize, height: usize, input_width: usize, input_height: usize) -> Self {
        // _box2cs([0, 0, w - 1, h - 1]) -> _xywh2cs: float32 centre, aspect-widened scale.
        let (bw, bh) = (
            width.saturating_sub(1) as f64,
            height.saturating_sub(1) as f64,
        );
        let center = [(bw * 0.5) as f32, (bh * 0.5) as f32];
        let aspect = input_width as f64 / input_height as f64;
        let (mut sw, mut sh) = (bw, bh);
        if sw > aspect * sh {
            sh = sw / aspect;
        } else if sw < aspect * sh {
            sw = sh * aspect;
        }
        let scale = [sw as f32, sh as f32];
        // get_affine_transform(center, scale, rot=0, output_size=[h, w]): three point
        // pairs in float32, solved in double as cv2.getAffineTransform does.
        let src_w = scale[0];
        let (dst_w, dst_h) = (input_width as f32, input_height as f32);
        let s0 = center;
        let s1 = [center[0], (center[1] as f64 + (src_w * -0.5) as f64) as f32];
        let s2 = third_point(s0, s1);
        let d0 = [(dst_w - 1.0) * 0.5, (dst_h - 1.0) * 0.5];
        let d1 = [d0[0], d0[1] + (dst_w - 1.0) * -0.5];
        let d2 = third_point(d0, d1);
        let src = [s0, s1, s2];
        let dst = [d0, d1, d2];
        PersonTransform {
            center,
            scale,
            trans: affine_from_points(&src, &dst),
            trans_inv: affine_from_points(&dst, &src),
            photo_width: width,
            photo_height: height,
            input_width,
            input_height,
        }
    }
}

/// `get_3rd_point(a, b)`: `b + [-(a - b)[1], (a - b)[0]]`, in float32.
fn third_point(a: [f32; 2], b: [f32; 2]) -> [f32; 2] {
    let d = [a[0] - b[0], a[1] - b[1]];
    [b[0] - d[1], b[1] + d[0]]
}

/// `cv2.getAffineTransform(src, dst)`: the 2x3 map taking the three `src` points to `dst`.
fn affine_from_points(src: &[[f32; 2]; 3], dst: &[[f32; 2]; 3]) -> [f64; 6] {
    let p = |i: usize| (src[i][0] as f64, src[i][1] as f64);
    let ((x0, y0), (x1, y1), (x2, y2)) = (p(0), p(1), p(2));
    let det = x0 * (y1 - y2) - y0 * (x1 - x2) + (x1 * y2 - x2 * y1);
    if det == 0.0 {
        return [0.0; 6];
    }
    // Rows of the inverse of [[x0, y0, 1], [x1, y1, 1], [x2, y2, 1]] (adjugate / det).
    let inv = [
        [(y1 - y2) / det, (y2 - y0) / det, (y0 - y1) / det],
        [(x2 - x1) / det, (x0 - x2) / det, (x1 - x0) / det],
        [
            (x1 * y2 - x2 * y1) / det,
            (x2 * y0 - x0 * y2) / det,
            (x0 * y1 - x1 * y0) / det,
        ],
    ];
    let mut m = [0f64; 6];
    for r in 0..2 {
        let q = [dst[0][r] as f64, dst[1][r] as f64, dst[2][r] as f64];
        for c in 0..3 {
            m[r * 3 + c] = inv[c][0] * q[0] + inv[c][1] * q[1] + inv[c][2] * q[2];
        }
    }
    m
}

/// `cv2.invertAffineTransform`, as `cv2.warpAffine` applies it to its matrix.
fn invert_affine(m: &[f64; 6]) -> [f64; 6] {
    let d = m[0] * m[4] - m[1] * m[3];
    let d = if d != 0.0 { 1.0 / d } else { 0.0 };
    let (a11, a22, a12, a21) = (m[4] * d, m[0] * d, -m[1] * d, -m[3] * d);
    let b1 = -a11 * m[2] - a12 * m[5];
    let b2 = -a21 * m[2] - a22 * m[5];
    [a11, a12, b1, a21, a22, b2]
}

/// `cv2.warpAffine(src, m, (dw, dh), INTER_LINEAR, BORDER_CONSTANT 0)` as OpenCV >= 4.11
/// computes it: the inverted matrix in float32, source coordinates
/// `fma(m0, x, y m1 + m2)`, bilinear weights in float32 (`fma(a, p1 - p0, p0)` along x
/// then y), a destination pixel whose 2x2 neighbourhood lies wholly outside the source
/// is the border value, taps outside the source read the border value.
struct WarpAffine {
    m: [f32; 6],
}

impl WarpAffine {
    fn new(m: &[f64; 6]) -> Self {
        WarpAffine {
            m: invert_affine(m).map(|v| v as f32),
        }
    }

    /// Calls `f(x, y, taps)` for every destination pixel that is not wholly outside the
    /// source; `taps` = source indices (None = border) of p00, p01, p10, p11 and the
    /// fractional offsets (ax, ay).
    fn for_each(
        &self,
        sw: usize,
        sh: usize,
        dw: usize,
        dh: usize,
        mut f: impl FnMut(usize, [Option<usize>; 4], f32, f32),
    ) {
        let m = &self.m;
        for y in 0..dh {
            let mx = y as f32 * m[1] + m[2];
            let my = y as f32 * m[4] + m[5];
            for x in 0..dw {
                let sx = m[0].mul_add(x as f32, mx);
                let sy = m[3].mul_add(x as f32, my);
                let (fx, fy) = (sx.floor(), sy.floor());
                let (ix, iy) = (fx as i64, fy as i64);
                if ix < -1 || iy < -1 || ix >= sw as i64 || iy >= sh as i64 {
                    continue;
                }
                let at = |dx: i64, dy: i64| {
                    let (px, py) = (ix + dx, iy + dy);
                    (px >= 0 && py >= 0 && px < sw as i64 && py < sh as i64)
                        .then(|| py as usize * sw + px as usize)
                };
                f(
                    y * dw + x,
                    [at(0, 0), at(1, 0), at(0, 1), at(1, 1)],
                    sx - fx,
                    sy - fy,
                );
            }
        }
    }
}

/// The float32 bilinear blend of OpenCV's warp kernels.
fn blend(p: [f32; 4], ax: f32, ay: f32) -> f32 {
    let v0 = ax.mul_add(p[1] - p[0], p[0]);
    let v1 = ax.mul_add(p[3] - p[2], p[2]);
    ay.mul_add(v1 - v0, v0)
}

/// `cv2.warpAffine` of an 8-bit image with `channels` interleaved channels.
fn warp_affine_u8(
    src: &[u8],
    sw: usize,
    sh: usize,
    channels: usize,
    m: &[f64; 6],
    dw: usize,
    dh: usize,
) -> Vec<u8> {
    let mut out = vec![0u8; dw * dh * channels];
    WarpAffine::new(m).for_each(sw, sh, dw, dh, |o, taps, ax, ay| {
        for c in 0..channels {
            let p = taps.map(|t| t.map_or(0.0, |i| src[i * channels + c] as f32));
            out[o * channels + c] = blend(p, ax, ay).round_ties_even().clamp(0.0, 255.0) as u8;
        }
    });
    out
}

/// Class logits on the photo, HWC (`logits_result` of `simple_extractor.py --logits`).
#[derive(Debug, Clone, PartialEq)]
pub struct ParseLogits {
    pub width: usize,
    pub height: usize,
    pub channels: usize,
    /// Row-major `[height, width, channels]`.
    pub data: Vec<f32>,
}

impl ParseLogits {
    /// The label map: `np.argmax(logits, axis=2)` (the first maximum wins).
    pub fn argmax(&self) -> Result<ParseMap> {
        if !(1..=255).contains(&self.channels)
            || self.data.len() != self.width * self.height * self.channels
        {
            return Err(VtonError::Shape {
                what: "parse logits".into(),
                expected: "1..=255 channels, width * height * channels values".into(),
                actual: vec![self.height, self.width, self.channels, self.data.len()],
            });
        }
        let labels = self
            .data
            .chunks_exact(self.channels)
            .map(|px| {
                let mut best = 0;
                for (i, &v) in px.iter().enumerate() {
                    if v > px[best] {
                        best = i;
                    }
                }
                best as u8
            })
            .collect();
        ParseMap::new(self.width, self.height, labels, self.channels as u8)
    }
}

/// SegFormer with its image processor, as DCI-VITON's `parsehuman.py` runs it.
#[derive(Debug, Clone)]
pub struct SegformerParser {
    pub model: SegformerForSemanticSegmentation,
    pub processor: SegformerImageProcessor,
}

impl SegformerParser {
    /// A Hugging Face folder: `config.json`, weights, `preprocessor_config.json` when
    /// present (transformers' processor defaults otherwise).
    pub fn from_pretrained(path: impl AsRef<Path>, device: &Device) -> Result<Self> {
        let path = path.as_ref();
        let model = SegformerForSemanticSegmentation::from_pretrained(path, device)?;
        let processor = SegformerImageProcessor::from_pretrained(path)?;
        Ok(SegformerParser { model, processor })
    }

    /// Network logits `[1, labels, h, w]` of a photo (processor + model).
    pub fn logits(&self, image: &RgbImage, device: &Device) -> Result<Tensor<4>> {
        HumanParser::check_image(image)?;
        let x = self.processor.preprocess(image, device)?;
        self.model.forward(x)
    }

    /// Logits upsampled to the photo (bilinear, align_corners False), HWC.
    pub fn parse_logits(&self, image: &RgbImage, device: &Device) -> Result<ParseLogits> {
        let logits = self.logits(image, device)?;
        let c = logits.dims()[1];
        let up = upsample_logits(logits, image.height, image.width).permute([0, 2, 3, 1]);
        Ok(ParseLogits {
            width: image.width,
            height: image.height,
            channels: c,
            data: tensor_to_vec(up)?,
        })
    }
}

#[derive(Debug, Clone)]
enum Backend {
    Schp(AugmentCE2P),
    Segformer(SegformerParser),
}

/// Human parsing of a person photo: SCHP (LIP labels) or SegFormer (the checkpoint's
/// labels).
#[derive(Debug, Clone)]
pub struct HumanParser {
    backend: Backend,
    options: HumanParserOptions,
    device: Device,
}

impl HumanParser {
    /// Loads the released checkpoint (`exp-schp-201908261155-lip.pth`, or any file with
    /// the same keys) with the default options (473x473, no flip).
    pub fn from_checkpoint(path: impl AsRef<Path>, device: &Device) -> Result<Self> {
        Self::new(
            AugmentCE2P::from_checkpoint(path, device)?,
            device,
            HumanParserOptions::default(),
        )
    }

    /// A parser around a loaded network.
    pub fn new(network: AugmentCE2P, device: &Device, options: HumanParserOptions) -> Result<Self> {
        let parser = HumanParser {
            backend: Backend::Schp(network),
            options: HumanParserOptions::default(),
            device: device.clone(),
        };
        parser.with_options(options)
    }

    /// A SegFormer parser from a Hugging Face folder (`config.json`, `model.safetensors` or
    /// `pytorch_model.bin`, optional `preprocessor_config.json`), e.g. a download of
    /// `yolo12138/segformer-b2-human-parse-24`. Its options report the processor's size.
    pub fn from_pretrained(path: impl AsRef<Path>, device: &Device) -> Result<Self> {
        Ok(Self::from_segformer(
            SegformerParser::from_pretrained(path, device)?,
            device,
        ))
    }

    /// A parser around a loaded SegFormer and processor.
    pub fn from_segformer(parser: SegformerParser, device: &Device) -> Self {
        let (h, w) = parser.processor.size;
        HumanParser {
            backend: Backend::Segformer(parser),
            options: HumanParserOptions {
                input_height: h,
                input_width: w,
                flip: false,
            },
            device: device.clone(),
        }
    }

    /// The same parser with other options (checked). For SegFormer the input size is the
    /// processor's resize size; flip averaging is SCHP's only.
    pub fn with_options(mut self, options: HumanParserOptions) -> Result<Self> {
        for (name, v) in [
            ("input_height", options.input_height),
            ("input_width", options.input_width),
        ] {
            if !(32..=4096).contains(&v) {
                return Err(VtonError::invalid(
                    name,
                    format!("{v} is outside 32..=4096 (SCHP's LIP setting is 473)"),
                ));
            }
        }
        match &mut self.backend {
            Backend::Schp(net) => {
                if options.flip && net.num_classes() != 20 {
                    return Err(VtonError::Unsupported {
                        what: format!(
                            "flip averaging swaps LIP's 20 labels; this checkpoint has {} classes",
                            net.num_classes()
                        ),
                    });
                }
            }
            Backend::Segformer(p) => {
                if options.flip {
                    return Err(VtonError::Unsupported {
                        what: "flip averaging with SegFormer (parsehuman.py does none)".into(),
                    });
                }
                p.processor.size = (options.input_height, options.input_width);
            }
        }
        self.options = options;
        Ok(self)
    }

    pub fn options(&self) -> &HumanParserOptions {
        &self.options
    }

    /// The SCHP network (`None` for a SegFormer parser).
    pub fn network(&self) -> Option<&AugmentCE2P> {
        match &self.backend {
            Backend::Schp(n) => Some(n),
            Backend::Segformer(_) => None,
        }
    }

    /// The SegFormer model and processor (`None` for an SCHP parser).
    pub fn segformer(&self) -> Option<&SegformerParser> {
        match &self.backend {
            Backend::Segformer(p) => Some(p),
            Backend::Schp(_) => None,
        }
    }

    fn schp(&self, what: &str) -> Result<&AugmentCE2P> {
        self.network().ok_or_else(|| VtonError::Unsupported {
            what: format!("{what} is SCHP's; this parser is SegFormer"),
        })
    }

    /// Number of labels of the checkpoint (20 for LIP, 24 for segformer-b2-human-parse-24).
    pub fn num_labels(&self) -> usize {
        match &self.backend {
            Backend::Schp(n) => n.num_classes(),
            Backend::Segformer(p) => p.model.num_labels(),
        }
    }

    /// The names of the labels [`Self::parse`] returns, by id: SegFormer's `id2label`;
    /// LIP's names for a 20-class SCHP checkpoint, `class_<i>` for ATR / Pascal ones.
    pub fn label_names(&self) -> Vec<String> {
        match &self.backend {
            Backend::Segformer(p) => p.model.config().id2label.clone(),
            Backend::Schp(n) if n.num_classes() == 20 => {
                LIP_LABELS.iter().map(|s| s.to_string()).collect()
            }
            Backend::Schp(n) => (0..n.num_classes()).map(|i| format!("class_{i}")).collect(),
        }
    }

    fn check_image(image: &RgbImage) -> Result<()> {
        if image.width < 2 || image.height < 2 || image.data.len() != image.width * image.height * 3
        {
            return Err(VtonError::Shape {
                what: "person image".into(),
                expected: "at least 2x2 pixels, width * height * 3 values".into(),
                actual: vec![image.height, image.width, image.data.len()],
            });
        }
        Ok(())
    }

    /// Steps 1-2: the person transform and the normalised BGR network input
    /// `[1, 3, input_height, input_width]`.
    pub fn preprocess(&self, image: &RgbImage) -> Result<(Tensor<4>, PersonTransform)> {
        self.schp("the SCHP affine preprocessing")?;
        Self::check_image(image)?;
        let (w, h) = (image.width, image.height);
        let (iw, ih) = (self.options.input_width, self.options.input_height);
        let t = PersonTransform::new(w, h, iw, ih);
        // The 8-bit BGR photo cv2.imread would give.
        let bgr: Vec<u8> = image
            .data
            .chunks_exact(3)
            .flat_map(|px| {
                [px[2], px[1], px[0]].map(|v| (v * 255.0).round().clamp(0.0, 255.0) as u8)
            })
            .collect();
        let warped = warp_affine_u8(&bgr, w, h, 3, &t.trans, iw, ih);
        let n = iw * ih;
        let mut chw = vec![0f32; 3 * n];
        for (p, px) in warped.chunks_exact(3).enumerate() {
            for c in 0..3 {
                let v = px[c] as f32 / 255.0;
                chw[c * n + p] = (v - SCHP_MEAN_BGR[c]) / SCHP_STD_BGR[c];
            }
        }
        let x = Tensor::from_data(TensorData::new(chw, [1, 3, ih, iw]), &self.device);
        Ok((x, t))
    }

    /// Step 3 without the upsampling: `output[0][-1]` for a normalised input
    /// `[B, 3, H, W]`, flip-averaged when asked: `[B, classes, ~H/4, ~W/4]`.
    pub fn network_logits(&self, x: Tensor<4>) -> Result<Tensor<4>> {
        let network = match &self.backend {
            Backend::Schp(n) => n,
            // pixel_values -> logits at 1/4 (no flip for SegFormer).
            Backend::Segformer(p) => return p.model.forward(x),
        };
        AugmentCE2P::check_input(&x)?;
        if !self.options.flip {
            return Ok(network.forward(x).parsing);
        }
        let b = x.dims()[0];
        let both = Tensor::cat(vec![x.clone(), x.flip([3])], 0);
        let out = network.forward(both).parsing;
        let [_, c, h, w] = out.dims();
        let mut perm: Vec<i64> = (0..c as i64).collect();
        for (a, b) in LIP_FLIP_PAIRS {
            perm.swap(a, b);
        }
        let idx = Tensor::<1, Int>::from_data(TensorData::new(perm, [c]), &self.device);
        let direct = out.clone().slice([0..b, 0..c, 0..h, 0..w]);
        let mirrored = out
            .slice([b..2 * b, 0..c, 0..h, 0..w])
            .select(1, idx)
            .flip([3]);
        Ok((direct + mirrored).mul_scalar(0.5))
    }

    /// Steps 3-4 on network logits `[1, classes, h, w]`: upsampled to the input size
    /// (bilinear, align_corners True) and warped back onto the photo (`transform_logits`).
    pub fn logits_to_photo(&self, logits: Tensor<4>, t: &PersonTransform) -> Result<ParseLogits> {
        let [b, c, _, _] = logits.dims();
        if b != 1 || c == 0 || c > 255 {
            return Err(VtonError::Shape {
                what: "SCHP logits".into(),
                expected: "[1, classes <= 255, h, w]".into(),
                actual: logits.dims().to_vec(),
            });
        }
        let (iw, ih) = (t.input_width, t.input_height);
        if iw == 0 || ih == 0 || t.photo_width == 0 || t.photo_height == 0 {
            return Err(VtonError::invalid(
                "person transform",
                format!(
                    "input {iw}x{ih} and photo {}x{} must not be empty",
                    t.photo_width, t.photo_height
                ),
            ));
        }
        let up = tensor_to_vec(resize_bilinear_align_corners(logits, ih, iw))?;
        let (w, h) = (t.photo_width, t.photo_height);
        let plane = iw * ih;
        let mut data = vec![0f32; w * h * c];
        // transform_logits: cv2.warpAffine of every float32 class plane, border 0.
        WarpAffine::new(&t.trans_inv).for_each(iw, ih, w, h, |o, taps, ax, ay| {
            for (k, v) in data[o * c..(o + 1) * c].iter_mut().enumerate() {
                let p = taps.map(|t| t.map_or(0.0, |i| up[k * plane + i]));
                *v = blend(p, ax, ay);
            }
        });
        Ok(ParseLogits {
            width: w,
            height: h,
            channels: c,
            data,
        })
    }

    /// The class logits on the photo (`simple_extractor.py --logits`).
    pub fn parse_logits(&self, image: &RgbImage) -> Result<ParseLogits> {
        if let Backend::Segformer(p) = &self.backend {
            return p.parse_logits(image, &self.device);
        }
        let (x, t) = self.preprocess(image)?;
        let logits = self.network_logits(x)?;
        self.logits_to_photo(logits, &t)
    }

    /// The label map of the photo, at the photo's size, in the checkpoint's own labels
    /// ([`Self::label_names`]; LIP for the SCHP LIP checkpoint).
    pub fn parse(&self, image: &RgbImage) -> Result<ParseMap> {
        self.parse_logits(image)?.argmax()
    }

    /// The label map in LIP's 20 labels (what vton's pipelines read): SCHP's LIP
    /// checkpoint as it is, SegFormer's 24-label human-parse set through
    /// [`SEGFORMER24_TO_LIP`]; other label sets are [`VtonError::Unsupported`].
    pub fn parse_lip(&self, image: &RgbImage) -> Result<ParseMap> {
        let names = self.label_names();
        match &self.backend {
            Backend::Schp(n) if n.num_classes() == 20 => self.parse(image),
            Backend::Segformer(_) if names.iter().map(String::as_str).eq(SEGFORMER24_LABELS) => {
                segformer24_map_to_lip(&self.parse(image)?)
            }
            _ => Err(VtonError::Unsupported {
                what: format!(
                    "mapping this parser's {} labels to LIP (SCHP LIP and the SegFormer \
                     human-parse-24 label sets are mapped)",
                    names.len()
                ),
            }),
        }
    }
}
