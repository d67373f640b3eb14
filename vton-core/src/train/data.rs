//! Training data: the CP-VTON+ and HR-VITON dataset classes (`cp_dataset.py` of
//! minar09/cp-vton-plus and sangyun884/HR-VITON) and a batch loader that decodes on
//! worker threads.
//!
//! A dataset reads its pair list at [`CpvtonDataset::open`] / [`HrVitonDataset::open`]
//! and checks that every folder the stage needs exists; [`CpvtonDataset::get`] /
//! [`HrVitonDataset::get`] decode one pair into a [`Sample`]: named CHW `f32` arrays under
//! the original class's keys, composed as the original does (images `ToTensor` +
//! `Normalize(0.5, 0.5)` to `[-1, 1]`, masks `{0, 1}`, PIL's resize filters reproduced
//! in 8-bit fixed point). [`collate`] stacks samples to NCHW tensors; [`BatchLoader`]
//! is `CPDataLoader`: seeded shuffling per epoch, a few batches decoded ahead on worker
//! threads, batch order independent of worker timing, epoch rollover for step-based
//! training, and bad samples either returned as errors or skipped and recorded.
//!
//! Layouts ([`DataLayout::detect`]): `ROOT/train_pairs.txt` with the folders in
//! `ROOT/train/` (the original `dataroot/datamode`), or `ROOT/test_pairs.txt` with
//! `ROOT/test/`, or either pairs file with the folders directly in `ROOT` — which is
//! what `vton preprocess --layout vitonhd` writes (`image/`, `cloth/`, `cloth-mask/`,
//! `openpose_json/`, `agnostic-v3.2/`, with a parser `image-parse-v3/` and
//! `image-parse-agnostic-v3.2/`; no DensePose, no rendered pose images).
//!
//! CP-VTON+ also reads the VITON-HD folder names: parse maps from `image-parse-new/`,
//! else `image-parse/`, else `image-parse-v3/`; keypoints from `pose/`, else
//! `openpose_json/` (BODY_25 files are reduced to the 18 COCO joints the model takes);
//! the body shape from `image-mask/` (CP-VTON+), else `parse > 0` (CP-VTON's rule).

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::path::{Path, PathBuf};
use std::sync::mpsc::{sync_channel, Receiver};
use std::sync::Arc;
use std::thread::JoinHandle;

use burn::tensor::{Device, Tensor, TensorData};

use crate::error::{Result, VtonError};
use crate::io::pil::{decode, pil_resize_bilinear, pil_resize_nearest, U8Image};
use crate::io::pose::COCO18_TO_BODY25;
use crate::io::HRVITON_GROUPS;
use crate::rng::Rng;

// ---------------------------------------------------------------------------------------
// Arrays, samples, batches
// ---------------------------------------------------------------------------------------

/// A CHW `f32` array, row-major.
#[derive(Debug, Clone, PartialEq)]
pub struct Chw {
    pub channels: usize,
    pub height: usize,
    pub width: usize,
    pub data: Vec<f32>,
}

impl Chw {
    fn zeros(channels: usize, height: usize, width: usize) -> Self {
        Chw {
            channels,
            height,
            width,
            data: vec![0.0; channels * height * width],
        }
    }

    /// `[channels, height, width]`.
    pub fn shape(&self) -> [usize; 3] {
        [self.channels, self.height, self.width]
    }

    /// Smallest and largest value.
    pub fn min_max(&self) -> (f32, f32) {
        self.data
            .iter()
            .fold((f32::INFINITY, f32::NEG_INFINITY), |(a, b), &v| {
                (a.min(v), b.max(v))
            })
    }

    /// Channels `from..to` as a new array.
    fn slice(&self, from: usize, to: usize) -> Chw {
        let n = self.height * self.width;
        Chw {
            channels: to - from,
            height: self.height,
            width: self.width,
            data: self.data[from * n..to * n].to_vec(),
        }
    }

    /// The channels of several arrays of one size, in order (`torch.cat(dim=0)`).
    fn cat(parts: &[&Chw]) -> Chw {
        let (h, w) = (parts[0].height, parts[0].width);
        let mut data = Vec::new();
        for p in parts {
            data.extend_from_slice(&p.data);
        }
        Chw {
            channels: parts.iter().map(|p| p.channels).sum(),
            height: h,
            width: w,
            data,
        }
    }
}

/// One decoded pair: CHW arrays under the original dataset class's keys.
#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    /// Index in the pair list.
    pub index: usize,
    /// Person image name (`im_name`), as in the pair list.
    pub im_name: String,
    /// Garment name (`c_name`) the sample used.
    pub c_name: String,
    pub arrays: BTreeMap<String, Chw>,
}

impl Sample {
    /// The array under `key`.
    pub fn get(&self, key: &str) -> Option<&Chw> {
        self.arrays.get(key)
    }

    /// The keys, sorted.
    pub fn keys(&self) -> Vec<&str> {
        self.arrays.keys().map(|k| k.as_str()).collect()
    }
}

/// A host NCHW `f32` array, row-major.
#[derive(Debug, Clone, PartialEq)]
pub struct Nchw {
    pub shape: [usize; 4],
    pub data: Vec<f32>,
}

impl Nchw {
    /// The array as a tensor on `device`.
    pub fn to_tensor(&self, device: &Device) -> Tensor<4> {
        Tensor::from_data(TensorData::new(self.data.clone(), self.shape), device)
    }
}

/// Stacks samples key by key into NCHW host arrays; every sample must hold the same
/// keys with the same shapes.
pub fn collate_host(samples: &[Sample]) -> Result<BTreeMap<String, Nchw>> {
    let first = samples
        .first()
        .ok_or_else(|| VtonError::invalid("samples", "cannot collate an empty batch"))?;
    let mut out = BTreeMap::new();
    for (key, a) in &first.arrays {
        let mut data = Vec::with_capacity(a.data.len() * samples.len());
        for s in samples {
            let b = s.arrays.get(key).ok_or_else(|| {
                VtonError::invalid(
                    "samples",
                    format!("sample {} ({}) has no {key:?}", s.index, s.im_name),
                )
            })?;
            if b.shape() != a.shape() {
                return Err(VtonError::Shape {
                    what: format!("{key:?} of sample {} ({})", s.index, s.im_name),
                    expected: format!("{:?}", a.shape()),
                    actual: b.shape().to_vec(),
                });
            }
            data.extend_from_slice(&b.data);
        }
        out.insert(
            key.clone(),
            Nchw {
                shape: [samples.len(), a.channels, a.height, a.width],
                data,
            },
        );
    }
    for s in samples {
        if s.arrays.len() != first.arrays.len() {
            return Err(VtonError::invalid(
                "samples",
                format!(
                    "sample {} has keys {:?}, sample {} has {:?}",
                    s.index,
                    s.keys(),
                    first.index,
                    first.keys()
                ),
            ));
        }
    }
    Ok(out)
}

/// Stacks samples into NCHW tensors on `device` (the `DataLoader`'s default collate).
pub fn collate(samples: &[Sample], device: &Device) -> Result<BTreeMap<String, Tensor<4>>> {
    Ok(collate_host(samples)?
        .into_iter()
        .map(|(k, v)| (k, v.to_tensor(device)))
        .collect())
}

/// One batch of a [`BatchLoader`].
#[derive(Debug, Clone)]
pub struct Batch {
    /// Epoch the batch belongs to (batches never span two epochs).
    pub epoch: usize,
    /// Number of the batch within its epoch.
    pub index_in_epoch: usize,
    /// Pair-list indices of the samples, in batch order.
    pub indices: Vec<usize>,
    pub im_names: Vec<String>,
    pub c_names: Vec<String>,
    /// NCHW arrays by key.
    pub arrays: BTreeMap<String, Nchw>,
}

impl Batch {
    /// Number of samples.
    pub fn len(&self) -> usize {
        self.indices.len()
    }

    pub fn is_empty(&self) -> bool {
        self.indices.is_empty()
    }

    /// Every array as a tensor on `device`.
    pub fn to_tensors(&self, device: &Device) -> BTreeMap<String, Tensor<4>> {
        self.arrays
            .iter()
            .map(|(k, v)| (k.clone(), v.to_tensor(device)))
            .collect()
    }

    /// The array under `key` as a tensor on `device`.
    pub fn tensor(&self, key: &str, device: &Device) -> Result<Tensor<4>> {
        self.arrays
            .get(key)
            .map(|a| a.to_tensor(device))
            .ok_or_else(|| {
                VtonError::invalid(
                    "batch key",
                    format!(
                        "{key:?} is not one of {:?}",
                        self.arrays.keys().collect::<Vec<_>>()
                    ),
                )
            })
    }
}

// ---------------------------------------------------------------------------------------
// Layout and pair list
// ---------------------------------------------------------------------------------------

/// Where a dataset's pair list and folders are.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DataLayout {
    /// The pairs file ("person cloth" per line).
    pub pairs_file: PathBuf,
    /// The folder holding `image/`, `cloth/`, ...
    pub data: PathBuf,
}

impl DataLayout {
    /// An explicit pairs file and data folder.
    pub fn new(pairs_file: impl Into<PathBuf>, data: impl Into<PathBuf>) -> Self {
        DataLayout {
            pairs_file: pairs_file.into(),
            data: data.into(),
        }
    }

    /// `ROOT/train_pairs.txt` (else `ROOT/test_pairs.txt`) with the folders in
    /// `ROOT/train/` (`ROOT/test/`) when that holds `image/`, else in `ROOT`.
    pub fn detect(root: impl AsRef<Path>) -> Result<Self> {
        let root = root.as_ref();
        if !root.is_dir() {
            return Err(VtonError::FileNotFound {
                path: root.to_path_buf(),
            });
        }
        for mode in ["train", "test"] {
            let pairs = root.join(format!("{mode}_pairs.txt"));
            if pairs.is_file() {
                let sub = root.join(mode);
                let data = if sub.join("image").is_dir() {
                    sub
                } else {
                    root.to_path_buf()
                };
                return Ok(DataLayout::new(pairs, data));
            }
        }
        Err(VtonError::invalid(
            root.display().to_string(),
            "no train_pairs.txt or test_pairs.txt in the dataset root",
        ))
    }
}

fn read_pairs(path: &Path) -> Result<Vec<(String, String)>> {
    let bytes = std::fs::read(path).map_err(|e| VtonError::io(path, e))?;
    parse_pairs(&bytes, &path.display().to_string())
}

/// Parses a pair list (`train_pairs.txt`): one `person cloth` pair of file names per
/// line, separated by white space; blank lines are skipped. `what` names the list in
/// messages. Names are relative to the dataset's folders: an absolute path or a `..`
/// component (a name reaching outside the dataset) is refused, as is a list with no pair
/// or a file that is not UTF-8.
pub fn parse_pairs(bytes: &[u8], what: &str) -> Result<Vec<(String, String)>> {
    let text = std::str::from_utf8(bytes)
        .map_err(|e| VtonError::invalid(what, format!("the pairs file is not UTF-8 text: {e}")))?;
    let mut pairs = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() {
            continue;
        }
        let parts: Vec<&str> = line.split_whitespace().collect();
        if parts.len() != 2 {
            return Err(VtonError::invalid(
                what,
                format!("line {}: expected \"person cloth\", got {line:?}", i + 1),
            ));
        }
        for name in &parts {
            let p = Path::new(name);
            let escapes = p.is_absolute()
                || p.components().any(|c| {
                    use std::path::Component as C;
                    matches!(c, C::ParentDir | C::RootDir | C::Prefix(_))
                });
            if escapes {
                return Err(VtonError::invalid(
                    what,
                    format!(
                        "line {}: {name:?} is not a file name inside the dataset folders",
                        i + 1
                    ),
                ));
            }
        }
        pairs.push((parts[0].to_string(), parts[1].to_string()));
    }
    if pairs.is_empty() {
        return Err(VtonError::invalid(what, "the pairs file lists no pair"));
    }
    Ok(pairs)
}

fn stem(name: &str) -> &str {
    Path::new(name)
        .file_stem()
        .and_then(|s| s.to_str())
        .unwrap_or(name)
}

fn require_dir(data: &Path, folder: &str, why: &str) -> Result<()> {
    let p = data.join(folder);
    if p.is_dir() {
        Ok(())
    } else {
        Err(VtonError::invalid(
            format!("dataset {}", data.display()),
            format!(
                "{why} needs the folder {folder}/, and {} does not exist",
                p.display()
            ),
        ))
    }
}

/// The first of `candidates` that is a folder of `data`.
fn first_dir(data: &Path, candidates: &[&'static str], why: &str) -> Result<&'static str> {
    candidates
        .iter()
        .copied()
        .find(|c| data.join(c).is_dir())
        .ok_or_else(|| {
            VtonError::invalid(
                format!("dataset {}", data.display()),
                format!(
                    "{why} needs one of the folders {} (none exists)",
                    candidates
                        .iter()
                        .map(|c| format!("{c}/"))
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            )
        })
}

/// `folder/name`, or the same name with `.png` / `.jpg` when only that exists (VITON-HD
/// ships masks and DensePose as `.jpg`, `vton preprocess` some as `.png`).
fn file_any_ext(data: &Path, folder: &str, name: &str) -> PathBuf {
    let p = data.join(folder).join(name);
    if p.exists() {
        return p;
    }
    for ext in ["png", "jpg"] {
        let q = data.join(folder).join(format!("{}.{ext}", stem(name)));
        if q.exists() {
            return q;
        }
    }
    p
}

// ---------------------------------------------------------------------------------------
// 8-bit label maps
// ---------------------------------------------------------------------------------------

/// A label PNG: palette indices or grey values (as `np.array(Image.open(p))`), decoded
/// by [`crate::io::parse::decode_label_png`] (which bounds the size before allocating).
fn read_labels(path: &Path) -> Result<U8Image> {
    let bytes = std::fs::read(path).map_err(|e| VtonError::io(path, e))?;
    let (width, height, data) =
        crate::io::parse::decode_label_png(&bytes, &path.display().to_string())?;
    Ok(U8Image {
        width,
        height,
        channels: 1,
        data,
    })
}

/// torchvision `Resize(size)` with an int: the shorter edge becomes `size`, the other
/// `int(size * long / short)`. Returns `(width, height)`.
fn torchvision_short_edge(width: usize, height: usize, size: usize) -> (usize, usize) {
    if width <= height {
        (size, (size as f64 * height as f64 / width as f64) as usize)
    } else {
        ((size as f64 * width as f64 / height as f64) as usize, size)
    }
}

/// `Normalize((0.5,)*3, (0.5,)*3)(ToTensor()(img))`: `(v / 255 - 0.5) / 0.5` per channel.
fn to_pm1(img: &U8Image) -> Chw {
    let (h, w, c) = (img.height, img.width, img.channels);
    let mut out = Chw::zeros(c, h, w);
    for p in 0..h * w {
        for ch in 0..c {
            let v = img.data[p * c + ch] as f32 / 255.0;
            out.data[ch * h * w + p] = (v - 0.5) / 0.5;
        }
    }
    out
}

/// `(mask >= 128)` as a 1-channel `{0, 1}` array.
fn threshold128(img: &U8Image) -> Chw {
    Chw {
        channels: 1,
        height: img.height,
        width: img.width,
        data: img
            .data
            .iter()
            .map(|&v| if v >= 128 { 1.0 } else { 0.0 })
            .collect(),
    }
}

/// `1` where the label is one of `labels`.
fn label_mask(parse: &U8Image, labels: &[u8]) -> Vec<f32> {
    parse
        .data
        .iter()
        .map(|l| if labels.contains(l) { 1.0 } else { 0.0 })
        .collect()
}

fn check_size(path: &Path, img: &U8Image, width: usize, height: usize) -> Result<()> {
    if img.width != width || img.height != height {
        return Err(VtonError::SizeMismatch {
            what: path.display().to_string(),
            expected: format!("{width}x{height}"),
            actual: format!("{}x{}", img.width, img.height),
        });
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------
// OpenPose JSON as the dataset classes read it
// ---------------------------------------------------------------------------------------

/// `people[0]`'s keypoints as `(x, y)` rows, from `pose_keypoints_2d` (or the old
/// OpenPose key `pose_keypoints` CP-VTON's files use).
fn read_pose_rows(path: &Path) -> Result<Vec<[f32; 2]>> {
    let bytes = std::fs::read(path).map_err(|e| VtonError::io(path, e))?;
    parse_pose_rows(&bytes, &path.display().to_string())
}

/// The keypoints of an OpenPose JSON document held in memory (`what` names it in
/// messages), as the dataset classes read them: `people[0]`'s keypoints as `(x, y)` rows, from `pose_keypoints_2d` (or the old
/// OpenPose key `pose_keypoints`); any number of whole `x, y, c` triples.
pub fn parse_pose_rows(bytes: &[u8], what: &str) -> Result<Vec<[f32; 2]>> {
    let json_err = |m: String| VtonError::Json {
        what: what.to_string(),
        message: m,
    };
    let doc: serde_json::Value =
        serde_json::from_slice(bytes).map_err(|e| json_err(e.to_string()))?;
    let person = doc
        .get("people")
        .and_then(|p| p.as_array())
        .and_then(|p| p.first())
        .ok_or_else(|| json_err("no people[0]".into()))?;
    let flat = person
        .get("pose_keypoints_2d")
        .or_else(|| person.get("pose_keypoints"))
        .and_then(|v| v.as_array())
        .ok_or_else(|| json_err("people[0] has no pose_keypoints_2d array".into()))?;
    let vals: Option<Vec<f32>> = flat.iter().map(|v| v.as_f64().map(|f| f as f32)).collect();
    let vals =
        vals.ok_or_else(|| json_err("people[0].pose_keypoints_2d has a non-number".into()))?;
    if vals.len() % 3 != 0 || vals.is_empty() {
        return Err(json_err(format!(
            "pose_keypoints_2d has {} numbers, not a multiple of 3",
            vals.len()
        )));
    }
    Ok(vals.chunks_exact(3).map(|c| [c[0], c[1]]).collect())
}

/// The 18 COCO joints of a keypoint list (COCO-18 as is, BODY_25 reduced).
fn coco18(rows: &[[f32; 2]], path: &Path) -> Result<Vec<[f32; 2]>> {
    match rows.len() {
        18 => Ok(rows.to_vec()),
        25 => Ok(COCO18_TO_BODY25.iter().map(|&b| rows[b]).collect()),
        n => Err(VtonError::Json {
            what: path.display().to_string(),
            message: format!("expected 18 (COCO) or 25 (BODY_25) keypoints, got {n}"),
        }),
    }
}

/// BODY_25 rows (COCO-18 files mapped; MidHip and the feet left at 0).
fn body25(rows: &[[f32; 2]], path: &Path) -> Result<Vec<[f32; 2]>> {
    match rows.len() {
        25 => Ok(rows.to_vec()),
        18 => {
            let mut b = vec![[0.0; 2]; 25];
            for (c, &i) in COCO18_TO_BODY25.iter().enumerate() {
                b[i] = rows[c];
            }
            Ok(b)
        }
        n => Err(VtonError::Json {
            what: path.display().to_string(),
            message: format!("expected 25 (BODY_25) or 18 (COCO) keypoints, got {n}"),
        }),
    }
}

// ---------------------------------------------------------------------------------------
// CP-VTON+
// ---------------------------------------------------------------------------------------

/// CP-VTON+'s two stages.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CpvtonStage {
    /// Geometric matching: the garment from `cloth/`, `cloth-mask/`.
    Gmm,
    /// Try-on: the GMM's warped garment from `warp-cloth/`, `warp-mask/` (person name).
    Tom,
}

/// CP-VTON+'s `CPDataset` (minar09/cp-vton-plus `cp_dataset.py`).
///
/// Keys: `cloth` (3, `[-1, 1]`), `cloth_mask` (1, `{0, 1}`), `image` (3), `agnostic`
/// (`1 + 3 + 18` = shape, head, pose map), `parse_cloth` (3, garment region of the
/// image, 1 elsewhere), `shape` (1, body shape down- and up-sampled by 16, `[-1, 1]`),
/// `shape_ori` (1), `head` (3, head region, -1 elsewhere), `pose_image` (1, all
/// keypoint squares, `{-1, 1}`), `parse_cloth_mask` (1, `{0, 1}`). The visualisation-only
/// `grid_image` is not produced.
#[derive(Debug, Clone)]
pub struct CpvtonDataset {
    pub layout: DataLayout,
    pub stage: CpvtonStage,
    pub fine_height: usize,
    pub fine_width: usize,
    /// Half side of the keypoint squares (`opt.radius`, 3 in CP-VTON+'s scripts).
    pub radius: f32,
    pairs: Vec<(String, String)>,
    parse_dir: &'static str,
    pose_dir: &'static str,
    body_mask: bool,
}

impl CpvtonDataset {
    /// Opens `root` ([`DataLayout::detect`]) for a stage.
    pub fn open(
        root: impl AsRef<Path>,
        stage: CpvtonStage,
        fine_height: usize,
        fine_width: usize,
        radius: f32,
    ) -> Result<Self> {
        Self::open_layout(
            DataLayout::detect(root)?,
            stage,
            fine_height,
            fine_width,
            radius,
        )
    }

    /// Opens an explicit layout.
    pub fn open_layout(
        layout: DataLayout,
        stage: CpvtonStage,
        fine_height: usize,
        fine_width: usize,
        radius: f32,
    ) -> Result<Self> {
        if fine_height < 16 || fine_width < 16 {
            return Err(VtonError::invalid(
                "fine size",
                format!("{fine_width}x{fine_height}: CP-VTON+ downsamples the shape by 16, both sides must be >= 16"),
            ));
        }
        if !(radius.is_finite() && radius >= 0.0) {
            return Err(VtonError::invalid(
                "radius",
                format!("{radius} is not >= 0"),
            ));
        }
        let pairs = read_pairs(&layout.pairs_file)?;
        let d = &layout.data;
        let why = match stage {
            CpvtonStage::Gmm => "CP-VTON+ GMM",
            CpvtonStage::Tom => "CP-VTON+ TOM",
        };
        require_dir(d, "image", why)?;
        match stage {
            CpvtonStage::Gmm => {
                require_dir(d, "cloth", why)?;
                require_dir(d, "cloth-mask", why)?;
            }
            CpvtonStage::Tom => {
                require_dir(d, "warp-cloth", "CP-VTON+ TOM (the GMM's warped garments)")?;
                require_dir(d, "warp-mask", "CP-VTON+ TOM (the GMM's warped masks)")?;
            }
        }
        let parse_dir = first_dir(
            d,
            &["image-parse-new", "image-parse", "image-parse-v3"],
            &format!("{why} (parse maps)"),
        )?;
        let pose_dir = first_dir(d, &["pose", "openpose_json"], &format!("{why} (keypoints)"))?;
        Ok(CpvtonDataset {
            body_mask: d.join("image-mask").is_dir(),
            layout,
            stage,
            fine_height,
            fine_width,
            radius,
            pairs,
            parse_dir,
            pose_dir,
        })
    }

    pub fn len(&self) -> usize {
        self.pairs.len()
    }

    pub fn is_empty(&self) -> bool {
        self.pairs.is_empty()
    }

    /// `(im_name, c_name)` of each pair.
    pub fn pairs(&self) -> &[(String, String)] {
        &self.pairs
    }

    /// The folders the parse maps and keypoints are read from.
    pub fn sources(&self) -> (&'static str, &'static str, bool) {
        (self.parse_dir, self.pose_dir, self.body_mask)
    }

    /// Decodes pair `index`.
    pub fn get(&self, index: usize) -> Result<Sample> {
        let (im_name, c_name) = self.pairs.get(index).ok_or_else(|| {
            VtonError::invalid(
                "index",
                format!("{index} is out of range for {} pairs", self.pairs.len()),
            )
        })?;
        let d = &self.layout.data;
        let (fw, fh) = (self.fine_width, self.fine_height);
        let (c_path, cm_path) = match self.stage {
            CpvtonStage::Gmm => (
                d.join("cloth").join(c_name),
                file_any_ext(d, "cloth-mask", c_name),
            ),
            CpvtonStage::Tom => (
                d.join("warp-cloth").join(im_name),
                file_any_ext(d, "warp-mask", im_name),
            ),
        };
        // The original reads images already at the fine size; other sizes are resized
        // here (bilinear for photos, nearest for masks and labels).
        let c = pil_resize_bilinear(&decode(&c_path, 3)?, fw, fh);
        let cm = pil_resize_nearest(&decode(&cm_path, 1)?, fw, fh);
        let im_path = d.join("image").join(im_name);
        let im_big = decode(&im_path, 3)?;
        let (src_w, src_h) = (im_big.width, im_big.height);
        let im = to_pm1(&pil_resize_bilinear(&im_big, fw, fh));

        let parse_path = d
            .join(self.parse_dir)
            .join(format!("{}.png", stem(im_name)));
        let parse_big = read_labels(&parse_path)?;
        check_size(&parse_path, &parse_big, src_w, src_h)?;
        let shape_big = if self.body_mask {
            let p = file_any_ext(d, "image-mask", &format!("{}.png", stem(im_name)));
            let m = decode(&p, 1)?;
            check_size(&p, &m, src_w, src_h)?;
            m
        } else {
            parse_big.clone()
        };
        let parse = pil_resize_nearest(&parse_big, fw, fh);
        // parse_shape: (mask > 0) as 0 / 255 at the photo's size.
        let shape_u8 = U8Image {
            data: shape_big
                .data
                .iter()
                .map(|&v| if v > 0 { 255 } else { 0 })
                .collect(),
            ..shape_big
        };
        let small = pil_resize_bilinear(&shape_u8, fw / 16, fh / 16);
        let shape = to_pm1(&pil_resize_bilinear(&small, fw, fh));
        let shape_ori = to_pm1(&pil_resize_bilinear(&shape_u8, fw, fh));

        let head_labels: &[u8] = match self.stage {
            CpvtonStage::Gmm => &[1, 4, 13],
            CpvtonStage::Tom => &[1, 2, 4, 9, 12, 13, 16, 17],
        };
        let phead = label_mask(&parse, head_labels);
        let pcm = label_mask(&parse, &[5, 6, 7]);
        let n = fw * fh;
        let mut im_c = Chw::zeros(3, fh, fw);
        let mut im_h = Chw::zeros(3, fh, fw);
        for ch in 0..3 {
            for p in 0..n {
                let v = im.data[ch * n + p];
                im_c.data[ch * n + p] = v * pcm[p] + (1.0 - pcm[p]);
                im_h.data[ch * n + p] = v * phead[p] - (1.0 - phead[p]);
            }
        }

        let pose_path = d
            .join(self.pose_dir)
            .join(format!("{}_keypoints.json", stem(im_name)));
        let joints = coco18(&read_pose_rows(&pose_path)?, &pose_path)?;
        let (sx, sy) = (fw as f32 / src_w as f32, fh as f32 / src_h as f32);
        let mut pose_map = Chw {
            channels: joints.len(),
            height: fh,
            width: fw,
            data: vec![-1.0; joints.len() * n],
        };
        let mut pose_image = Chw {
            channels: 1,
            height: fh,
            width: fw,
            data: vec![-1.0; n],
        };
        let r = self.radius;
        for (i, j) in joints.iter().enumerate() {
            let (x, y) = (j[0] * sx, j[1] * sy);
            if x > 1.0 && y > 1.0 {
                // PIL's rectangle: corners truncated to integers, both ends inclusive.
                let (x0, y0, x1, y1) = (
                    ((x - r) as i64).max(0),
                    ((y - r) as i64).max(0),
                    ((x + r) as i64).min(fw as i64 - 1),
                    ((y + r) as i64).min(fh as i64 - 1),
                );
                for yy in y0..=y1 {
                    for xx in x0..=x1 {
                        let p = yy as usize * fw + xx as usize;
                        pose_map.data[i * n + p] = 1.0;
                        pose_image.data[p] = 1.0;
                    }
                }
            }
        }
        let agnostic = Chw::cat(&[&shape, &im_h, &pose_map]);
        let one = |data: Vec<f32>| Chw {
            channels: 1,
            height: fh,
            width: fw,
            data,
        };
        let mut arrays = BTreeMap::new();
        arrays.insert("cloth".into(), to_pm1(&c));
        arrays.insert("cloth_mask".into(), threshold128(&cm));
        arrays.insert("image".into(), im);
        arrays.insert("agnostic".into(), agnostic);
        arrays.insert("parse_cloth".into(), im_c);
        arrays.insert("shape".into(), shape);
        arrays.insert("shape_ori".into(), shape_ori);
        arrays.insert("head".into(), im_h);
        arrays.insert("pose_image".into(), pose_image);
        arrays.insert("parse_cloth_mask".into(), one(pcm));
        Ok(Sample {
            index,
            im_name: im_name.clone(),
            c_name: match self.stage {
                CpvtonStage::Gmm => c_name.clone(),
                CpvtonStage::Tom => im_name.clone(),
            },
            arrays,
        })
    }
}

// ---------------------------------------------------------------------------------------
// HR-VITON
// ---------------------------------------------------------------------------------------

/// HR-VITON's `CPDataset` (sangyun884/HR-VITON `cp_dataset.py`), paired garments.
///
/// Keys: `cloth` (3, `[-1, 1]`; the original's `cloth['paired']`), `cloth_mask` (1,
/// `{0, 1}`), `image` (3), `parse_agnostic` (`semantic_nc`, one-hot of the 13 groups),
/// `parse` (`semantic_nc`), `parse_onehot` (1, group index as float), `pcm` (1, the
/// upper-clothes group), `parse_cloth` (3), `densepose` (3), `pose` (3, the rendered
/// OpenPose image), `agnostic` (3, `get_agnostic` on the full-size photo, then resized).
#[derive(Debug, Clone)]
pub struct HrVitonDataset {
    pub layout: DataLayout,
    pub fine_height: usize,
    pub fine_width: usize,
    pub semantic_nc: usize,
    pairs: Vec<(String, String)>,
    keys: BTreeSet<String>,
}

impl HrVitonDataset {
    /// Every key the original produces.
    pub const ALL_KEYS: [&'static str; 11] = [
        "agnostic",
        "cloth",
        "cloth_mask",
        "densepose",
        "image",
        "parse",
        "parse_agnostic",
        "parse_cloth",
        "parse_onehot",
        "pcm",
        "pose",
    ];
    /// What `train_condition.py` reads (`pose` is loaded there but unused).
    pub const CONDITION_KEYS: [&'static str; 9] = [
        "cloth",
        "cloth_mask",
        "densepose",
        "image",
        "parse",
        "parse_agnostic",
        "parse_cloth",
        "parse_onehot",
        "pcm",
    ];
    /// What `train_generator.py` reads.
    pub const GENERATOR_KEYS: [&'static str; 9] = [
        "agnostic",
        "cloth",
        "cloth_mask",
        "densepose",
        "image",
        "parse",
        "parse_agnostic",
        "parse_cloth",
        "pcm",
    ];

    /// Opens `root` ([`DataLayout::detect`]) producing every key.
    pub fn open(
        root: impl AsRef<Path>,
        fine_height: usize,
        fine_width: usize,
        semantic_nc: usize,
    ) -> Result<Self> {
        Self::open_layout(
            DataLayout::detect(root)?,
            fine_height,
            fine_width,
            semantic_nc,
            &Self::ALL_KEYS,
        )
    }

    /// Opens a layout producing only `keys`; only the folders those keys need must exist.
    pub fn open_layout(
        layout: DataLayout,
        fine_height: usize,
        fine_width: usize,
        semantic_nc: usize,
        keys: &[&str],
    ) -> Result<Self> {
        if semantic_nc < HRVITON_GROUPS.len() {
            return Err(VtonError::invalid(
                "semantic_nc",
                format!(
                    "{semantic_nc} < {}: the label merging fills {} groups",
                    HRVITON_GROUPS.len(),
                    HRVITON_GROUPS.len()
                ),
            ));
        }
        if fine_height == 0 || fine_width == 0 {
            return Err(VtonError::invalid("fine size", "must be positive"));
        }
        let mut set = BTreeSet::new();
        for k in keys {
            if !Self::ALL_KEYS.contains(k) {
                return Err(VtonError::invalid(
                    "keys",
                    format!("{k:?} is not one of {:?}", Self::ALL_KEYS),
                ));
            }
            set.insert(k.to_string());
        }
        if set.is_empty() {
            return Err(VtonError::invalid("keys", "no key requested"));
        }
        let pairs = read_pairs(&layout.pairs_file)?;
        let d = &layout.data;
        let has = |k: &str| set.contains(k);
        let why = |k: &str| format!("HR-VITON's {k:?}");
        require_dir(d, "image", "HR-VITON")?;
        if has("cloth") {
            require_dir(d, "cloth", &why("cloth"))?;
        }
        if has("cloth_mask") {
            require_dir(d, "cloth-mask", &why("cloth_mask"))?;
        }
        for k in ["parse", "parse_onehot", "pcm", "parse_cloth", "agnostic"] {
            if has(k) {
                require_dir(d, "image-parse-v3", &why(k))?;
            }
        }
        if has("parse_agnostic") {
            require_dir(d, "image-parse-agnostic-v3.2", &why("parse_agnostic"))?;
        }
        if has("densepose") {
            require_dir(
                d,
                "image-densepose",
                "HR-VITON's \"densepose\" (DensePose renderings; vton preprocess does not write them)",
            )?;
        }
        if has("pose") {
            require_dir(
                d,
                "openpose_img",
                "HR-VITON's \"pose\" (rendered OpenPose images; vton preprocess does not write them)",
            )?;
        }
        if has("agnostic") {
            require_dir(d, "openpose_json", &why("agnostic"))?;
        }
        Ok(HrVitonDataset {
            layout,
            fine_height,
            fine_width,
            semantic_nc,
            pairs,
            keys: set,
        })
    }

    pub fn len(&self) -> usize {
        self.pairs.len()
    }

    pub fn is_empty(&self) -> bool {
        self.pairs.is_empty()
    }

    pub fn pairs(&self) -> &[(String, String)] {
        &self.pairs
    }

    /// The keys [`HrVitonDataset::get`] produces.
    pub fn keys(&self) -> Vec<&str> {
        self.keys.iter().map(|k| k.as_str()).collect()
    }

    /// An image file resized as `transforms.Resize(fine_width, interpolation)`.
    fn load_resized(&self, path: &Path, channels: usize, nearest: bool) -> Result<U8Image> {
        let img = decode(path, channels)?;
        self.resize(path, &img, nearest)
    }

    fn resize(&self, path: &Path, img: &U8Image, nearest: bool) -> Result<U8Image> {
        let (w, h) = torchvision_short_edge(img.width, img.height, self.fine_width);
        if (w, h) != (self.fine_width, self.fine_height) {
            return Err(VtonError::SizeMismatch {
                what: format!(
                    "{} resized to width {} (short edge, as transforms.Resize({}))",
                    path.display(),
                    self.fine_width,
                    self.fine_width
                ),
                expected: format!(
                    "{}x{} (fine_width x fine_height)",
                    self.fine_width, self.fine_height
                ),
                actual: format!("{w}x{h} from {}x{}", img.width, img.height),
            });
        }
        Ok(if nearest {
            pil_resize_nearest(img, w, h)
        } else {
            pil_resize_bilinear(img, w, h)
        })
    }

    /// The 13-group planes (`semantic_nc` channels, extra ones zero) and the group index.
    fn groups(&self, labels: &U8Image, path: &Path) -> Result<(Chw, Vec<f32>)> {
        let (h, w) = (labels.height, labels.width);
        let n = h * w;
        let mut lut = [0u8; 20];
        for (g, (_, members)) in HRVITON_GROUPS.iter().enumerate() {
            for &m in *members {
                lut[m as usize] = g as u8;
            }
        }
        let mut planes = Chw::zeros(self.semantic_nc, h, w);
        let mut index = vec![0f32; n];
        for (p, &l) in labels.data.iter().enumerate() {
            if l >= 20 {
                return Err(VtonError::Image {
                    what: path.display().to_string(),
                    message: format!("label {l} is outside the 20-label LIP scheme"),
                });
            }
            let g = lut[l as usize] as usize;
            planes.data[g * n + p] = 1.0;
            index[p] = g as f32;
        }
        Ok((planes, index))
    }

    /// Decodes pair `index` (paired: the person's own garment).
    pub fn get(&self, index: usize) -> Result<Sample> {
        let (im_name, _) = self.pairs.get(index).ok_or_else(|| {
            VtonError::invalid(
                "index",
                format!("{index} is out of range for {} pairs", self.pairs.len()),
            )
        })?;
        let d = &self.layout.data;
        let has = |k: &str| self.keys.contains(k);
        let (fw, fh) = (self.fine_width, self.fine_height);
        let n = fw * fh;
        let mut arrays = BTreeMap::new();
        let c_name = im_name.clone();
        if has("cloth") {
            let p = d.join("cloth").join(&c_name);
            arrays.insert("cloth".into(), to_pm1(&self.load_resized(&p, 3, false)?));
        }
        if has("cloth_mask") {
            let p = file_any_ext(d, "cloth-mask", &c_name);
            arrays.insert(
                "cloth_mask".into(),
                threshold128(&self.load_resized(&p, 1, true)?),
            );
        }
        let im_path = d.join("image").join(im_name);
        let im_big = decode(&im_path, 3)?;
        let im = to_pm1(&self.resize(&im_path, &im_big, false)?);
        let parse_keys = ["parse", "parse_onehot", "pcm", "parse_cloth", "agnostic"];
        if parse_keys.iter().any(|k| has(k)) {
            let parse_path = d
                .join("image-parse-v3")
                .join(format!("{}.png", stem(im_name)));
            let parse_big = read_labels(&parse_path)?;
            let parse = self.resize(&parse_path, &parse_big, true)?;
            let (planes, group_index) = self.groups(&parse, &parse_path)?;
            let pcm = planes.slice(3, 4);
            if has("parse_cloth") {
                let mut im_c = Chw::zeros(3, fh, fw);
                for ch in 0..3 {
                    for p in 0..n {
                        let m = pcm.data[p];
                        im_c.data[ch * n + p] = im.data[ch * n + p] * m + (1.0 - m);
                    }
                }
                arrays.insert("parse_cloth".into(), im_c);
            }
            if has("parse_onehot") {
                arrays.insert(
                    "parse_onehot".into(),
                    Chw {
                        channels: 1,
                        height: fh,
                        width: fw,
                        data: group_index,
                    },
                );
            }
            if has("pcm") {
                arrays.insert("pcm".into(), pcm);
            }
            if has("parse") {
                arrays.insert("parse".into(), planes);
            }
            if has("agnostic") {
                let pose_path = d
                    .join("openpose_json")
                    .join(format!("{}_keypoints.json", stem(im_name)));
                let pose = body25(&read_pose_rows(&pose_path)?, &pose_path)?;
                check_size(&parse_path, &parse_big, im_big.width, im_big.height)?;
                let agn = hrviton_agnostic(&im_big, &parse_big, &pose).map_err(|e| match e {
                    VtonError::MissingKeypoints { operation, missing } => {
                        VtonError::MissingKeypoints {
                            operation: format!("{operation} ({})", pose_path.display()),
                            missing,
                        }
                    }
                    other => other,
                })?;
                arrays.insert(
                    "agnostic".into(),
                    to_pm1(&self.resize(&im_path, &agn, false)?),
                );
            }
        }
        if has("parse_agnostic") {
            let p = d
                .join("image-parse-agnostic-v3.2")
                .join(format!("{}.png", stem(im_name)));
            let labels = self.resize(&p, &read_labels(&p)?, true)?;
            arrays.insert("parse_agnostic".into(), self.groups(&labels, &p)?.0);
        }
        if has("densepose") {
            let p = file_any_ext(d, "image-densepose", im_name);
            arrays.insert(
                "densepose".into(),
                to_pm1(&self.load_resized(&p, 3, false)?),
            );
        }
        if has("pose") {
            let p = d
                .join("openpose_img")
                .join(format!("{}_rendered.png", stem(im_name)));
            arrays.insert("pose".into(), to_pm1(&self.load_resized(&p, 3, false)?));
        }
        if has("image") {
            arrays.insert("image".into(), im);
        }
        Ok(Sample {
            index,
            im_name: im_name.clone(),
            c_name,
            arrays,
        })
    }
}

/// HR-VITON's `get_agnostic` on the full-size photo: torso, neck and arms drawn grey
/// (PIL's `'gray'`, 128) from the BODY_25 keypoints with `r = int(|LShoulder -
/// RShoulder| / 16) + 1`, hips rescaled about their centre to the shoulder width; then
/// the arm pixels outside the arm drawing, the face (4, 13) and the lower body (9, 12,
/// 16-19) pasted back from the photo.
fn hrviton_agnostic(im: &U8Image, parse: &U8Image, pose: &[[f32; 2]]) -> Result<U8Image> {
    let q = |i: usize| (pose[i][0], pose[i][1]);
    let body = crate::masks::viton_hd::AgnosticBody {
        r_shoulder: q(2),
        r_elbow: q(3),
        r_wrist: q(4),
        l_shoulder: q(5),
        l_elbow: q(6),
        l_wrist: q(7),
        r_hip: q(9),
        l_hip: q(12),
        neck: q(1),
    };
    let shapes =
        crate::masks::viton_hd::agnostic_shapes(im.width, im.height, &body, "HR-VITON agnostic")?;
    let keep = shapes.kept(&parse.data, &[4, 13, 9, 12, 16, 17, 18, 19]);
    let mut out = im.clone();
    for (k, (&g, &kp)) in shapes.grey.data.iter().zip(&keep).enumerate() {
        if g >= 0.5 && !kp {
            for ch in 0..3 {
                out.data[k * 3 + ch] = 128;
            }
        }
    }
    Ok(out)
}

// ---------------------------------------------------------------------------------------
// Dataset enum and batch loader
// ---------------------------------------------------------------------------------------

/// Either dataset, for [`BatchLoader`].
#[derive(Debug, Clone)]
pub enum Dataset {
    Cpvton(CpvtonDataset),
    HrViton(HrVitonDataset),
}

impl From<CpvtonDataset> for Dataset {
    fn from(d: CpvtonDataset) -> Self {
        Dataset::Cpvton(d)
    }
}

impl From<HrVitonDataset> for Dataset {
    fn from(d: HrVitonDataset) -> Self {
        Dataset::HrViton(d)
    }
}

impl Dataset {
    pub fn len(&self) -> usize {
        match self {
            Dataset::Cpvton(d) => d.len(),
            Dataset::HrViton(d) => d.len(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub fn get(&self, index: usize) -> Result<Sample> {
        match self {
            Dataset::Cpvton(d) => d.get(index),
            Dataset::HrViton(d) => d.get(index),
        }
    }

    /// The person image of a pair (what a bad sample is reported under when its error
    /// names no file).
    fn person_path(&self, index: usize) -> PathBuf {
        let (layout, pairs) = match self {
            Dataset::Cpvton(d) => (&d.layout, &d.pairs),
            Dataset::HrViton(d) => (&d.layout, &d.pairs),
        };
        pairs
            .get(index)
            .map(|p| layout.data.join("image").join(&p.0))
            .unwrap_or_else(|| layout.data.clone())
    }
}

/// The sample order of an epoch: `0..len`, or a seeded Fisher-Yates permutation (vton's
/// PCG stream, not torch's `RandomSampler` numbers). Same seed and epoch, same order.
pub fn epoch_order(len: usize, shuffle: bool, seed: u64, epoch: usize) -> Vec<usize> {
    let mut order: Vec<usize> = (0..len).collect();
    if shuffle && len > 1 {
        let mut rng = Rng::new(seed ^ (epoch as u64 + 1).wrapping_mul(0x9e37_79b9_7f4a_7c15));
        for i in (1..len).rev() {
            // Uniform in 0..=i by rejection (no modulo bias).
            let bound = i as u64 + 1;
            let zone = (1u64 << 32) - ((1u64 << 32) % bound);
            let j = loop {
                let v = rng.next_u32() as u64;
                if v < zone {
                    break (v % bound) as usize;
                }
            };
            order.swap(i, j);
        }
    }
    order
}

type Decoded = (usize, Result<Sample>);

/// `CPDataLoader`: batches of decoded samples, endlessly, epoch after epoch.
///
/// Samples form one stream in epoch order (epoch 0's order, then epoch 1's, ...); with
/// `workers > 0`, worker `k` decodes stream positions `k, k + workers, ...` into its own
/// bounded channel (about two batches ahead in all) and the loader reads the channels
/// round-robin, so batches are the same whatever the workers' timing, and the same as
/// with `workers = 0` (decoding on the calling thread). A batch never spans two epochs;
/// an epoch's last, short batch is dropped with `drop_last`.
///
/// A sample that fails to decode is an error naming the file; the batch being filled is
/// dropped and the next call continues after that sample. With `skip_bad` it is left out
/// (the batch is filled from the next samples) and recorded in
/// [`BatchLoader::bad_samples`].
#[derive(Debug)]
pub struct BatchLoader {
    dataset: Arc<Dataset>,
    batch_size: usize,
    shuffle: bool,
    seed: u64,
    drop_last: bool,
    skip_bad: bool,
    workers: usize,
    receivers: Vec<Receiver<Decoded>>,
    handles: Vec<JoinHandle<()>>,
    next_seq: usize,
    order: (usize, Vec<usize>),
    epoch_batches: (usize, usize),
    bad: Vec<(usize, PathBuf, String)>,
    bad_seen: HashSet<usize>,
}

impl BatchLoader {
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        dataset: impl Into<Dataset>,
        batch_size: usize,
        shuffle: bool,
        seed: u64,
        drop_last: bool,
        workers: usize,
        skip_bad: bool,
    ) -> Result<Self> {
        Self::resumed(
            dataset, batch_size, shuffle, seed, drop_last, workers, skip_bad, 0,
        )
    }

    /// A loader positioned after `batches_done` batches (a resumed run): the same
    /// epoch orders, continuing at the batch that would come next when no sample was
    /// skipped, without decoding the batches before it.
    #[allow(clippy::too_many_arguments)]
    pub fn resumed(
        dataset: impl Into<Dataset>,
        batch_size: usize,
        shuffle: bool,
        seed: u64,
        drop_last: bool,
        workers: usize,
        skip_bad: bool,
        batches_done: usize,
    ) -> Result<Self> {
        let dataset = Arc::new(dataset.into());
        let len = dataset.len();
        if batch_size == 0 {
            return Err(VtonError::invalid("batch_size", "must be at least 1"));
        }
        if len == 0 {
            return Err(VtonError::invalid("dataset", "has no sample"));
        }
        if drop_last && batch_size > len {
            return Err(VtonError::invalid(
                "batch_size",
                format!("{batch_size} > {len} samples with drop_last: no batch would ever be full"),
            ));
        }
        let per_epoch = if drop_last {
            len / batch_size
        } else {
            len.div_ceil(batch_size)
        };
        let start = (batches_done / per_epoch) * len + (batches_done % per_epoch) * batch_size;
        let mut receivers = Vec::new();
        let mut handles = Vec::new();
        if workers > 0 {
            let cap = (2 * batch_size).div_ceil(workers).max(1);
            for k in 0..workers {
                let (tx, rx) = sync_channel::<Decoded>(cap);
                let ds = Arc::clone(&dataset);
                let h = std::thread::Builder::new()
                    .name(format!("vton-data-{k}"))
                    .spawn(move || {
                        let mut order: (usize, Vec<usize>) = (usize::MAX, Vec::new());
                        // The first position >= start this worker serves (seq % workers == k).
                        let mut seq = start + (k + workers - start % workers) % workers;
                        loop {
                            let epoch = seq / len;
                            if order.0 != epoch {
                                order = (epoch, epoch_order(len, shuffle, seed, epoch));
                            }
                            let index = order.1[seq % len];
                            let r = ds.get(index);
                            if tx.send((index, r)).is_err() {
                                break;
                            }
                            seq += workers;
                        }
                    })
                    .map_err(|e| VtonError::Backend {
                        operation: "starting a data worker thread".into(),
                        message: e.to_string(),
                    })?;
                receivers.push(rx);
                handles.push(h);
            }
        }
        Ok(BatchLoader {
            order: (start / len, epoch_order(len, shuffle, seed, start / len)),
            dataset,
            batch_size,
            shuffle,
            seed,
            drop_last,
            skip_bad,
            workers,
            receivers,
            handles,
            next_seq: start,
            epoch_batches: (start / len, batches_done % per_epoch),
            bad: Vec::new(),
            bad_seen: HashSet::new(),
        })
    }

    /// The dataset.
    pub fn dataset(&self) -> &Dataset {
        &self.dataset
    }

    /// Full-length batches per epoch (`len(DataLoader)`), ignoring skipped samples.
    pub fn batches_per_epoch(&self) -> usize {
        let n = self.dataset.len();
        if self.drop_last {
            n / self.batch_size
        } else {
            n.div_ceil(self.batch_size)
        }
    }

    /// The epoch the next sample belongs to.
    pub fn epoch(&self) -> usize {
        self.next_seq / self.dataset.len()
    }

    /// Every sample skipped so far (once each): pair index, file, message.
    pub fn bad_samples(&self) -> Vec<(usize, PathBuf, String)> {
        self.bad.clone()
    }

    fn fetch(&mut self, seq: usize) -> Result<Decoded> {
        let len = self.dataset.len();
        if self.workers == 0 {
            let epoch = seq / len;
            if self.order.0 != epoch {
                self.order = (epoch, epoch_order(len, self.shuffle, self.seed, epoch));
            }
            let index = self.order.1[seq % len];
            return Ok((index, self.dataset.get(index)));
        }
        let k = seq % self.workers;
        self.receivers[k].recv().map_err(|_| VtonError::Backend {
            operation: "data loading".into(),
            message: format!("data worker {k} stopped (it panicked)"),
        })
    }

    fn record(&mut self, index: usize, e: &VtonError) {
        if self.bad_seen.insert(index) {
            let path = error_path(e).unwrap_or_else(|| self.dataset.person_path(index));
            self.bad.push((index, path, e.to_string()));
        }
    }

    /// The next batch (rolling over to the next epoch at the end of one).
    pub fn next_batch(&mut self) -> Result<Batch> {
        let len = self.dataset.len();
        let mut samples: Vec<Sample> = Vec::with_capacity(self.batch_size);
        let mut since_batch = 0usize;
        let mut bad_run = 0usize;
        loop {
            let seq = self.next_seq;
            let (epoch, pos) = (seq / len, seq % len);
            let (index, r) = self.fetch(seq)?;
            self.next_seq += 1;
            since_batch += 1;
            match r {
                Ok(s) => {
                    bad_run = 0;
                    samples.push(s);
                }
                Err(e) => {
                    if !self.skip_bad {
                        return Err(e);
                    }
                    self.record(index, &e);
                    bad_run += 1;
                    if bad_run >= len {
                        return Err(VtonError::invalid(
                            "dataset",
                            format!("every one of its {len} samples failed to load; first: {e}"),
                        ));
                    }
                }
            }
            let epoch_end = pos + 1 == len;
            if samples.len() == self.batch_size
                || (epoch_end && !self.drop_last && !samples.is_empty())
            {
                if self.epoch_batches.0 != epoch {
                    self.epoch_batches = (epoch, 0);
                }
                let index_in_epoch = self.epoch_batches.1;
                self.epoch_batches.1 += 1;
                let arrays = collate_host(&samples)?;
                return Ok(Batch {
                    epoch,
                    index_in_epoch,
                    indices: samples.iter().map(|s| s.index).collect(),
                    im_names: samples.iter().map(|s| s.im_name.clone()).collect(),
                    c_names: samples.iter().map(|s| s.c_name.clone()).collect(),
                    arrays,
                });
            }
            if epoch_end {
                samples.clear();
            }
            if since_batch > 2 * len + self.batch_size {
                return Err(VtonError::invalid(
                    "dataset",
                    format!(
                        "too few good samples ({} bad of {len}) to fill a batch of {}",
                        self.bad.len(),
                        self.batch_size
                    ),
                ));
            }
        }
    }
}

impl Drop for BatchLoader {
    fn drop(&mut self) {
        // Dropping the receivers makes every worker's next send fail, which ends it.
        self.receivers.clear();
        for h in self.handles.drain(..) {
            let _ = h.join();
        }
    }
}

/// The file an error is about, when it names one.
fn error_path(e: &VtonError) -> Option<PathBuf> {
    match e {
        VtonError::Io { path, .. } | VtonError::FileNotFound { path } => Some(path.clone()),
        VtonError::Image { what, .. } | VtonError::Json { what, .. } => Some(PathBuf::from(what)),
        VtonError::SizeMismatch { what, .. } => {
            Some(PathBuf::from(what.split(" resized").next().unwrap_or(what)))
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn grid(w: usize, h: usize, f: impl Fn(usize, usize) -> u8) -> U8Image {
        let mut data = Vec::with_capacity(w * h);
        for y in 0..h {
            for x in 0..w {
                data.push(f(x, y));
            }
        }
        U8Image {
            width: w,
            height: h,
            channels: 1,
            data,
        }
    }

    /// Expected values printed by Pillow 13.0 (`Image.fromarray(a).resize(...)`) for the
    /// same synthetic 29x37 images.
    #[test]
    fn resize_equals_pillow() {
        let a = grid(29, 37, |x, y| {
            if (x * 7 + y * 13 + (x * y) % 11) % 5 > 1 {
                255
            } else {
                0
            }
        });
        let b = pil_resize_bilinear(&a, 7, 9);
        let expect: Vec<u8> = vec![
            178, 175, 153, 118, 140, 174, 167, 178, 155, 161, 131, 132, 156, 162, 190, 172, 158,
            127, 119, 157, 163, 171, 119, 132, 181, 179, 130, 118, 115, 132, 150, 173, 166, 145,
            145, 115, 164, 179, 169, 154, 141, 149, 129, 195, 178, 153, 109, 161, 160, 181, 154,
            133, 103, 158, 176, 172, 175, 155, 128, 142, 178, 186, 138,
        ];
        assert_eq!(b.data, expect);
        let g = grid(29, 37, |x, y| ((x * 37 + y * 11 + x * y * 3) % 256) as u8);
        let c = pil_resize_nearest(&g, 11, 13);
        let expect: Vec<u8> = vec![
            51, 131, 251, 115, 195, 59, 179, 3, 123, 243, 67, 93, 191, 82, 229, 71, 218, 109, 207,
            98, 245, 87, 135, 251, 169, 87, 203, 121, 39, 155, 73, 247, 107, 163, 35, 227, 163, 35,
            227, 163, 35, 227, 163, 35, 205, 95, 58, 21, 167, 130, 93, 239, 202, 165, 55, 247, 155,
            145, 135, 43, 33, 23, 187, 177, 167, 75, 33, 215, 232, 249, 175, 192, 209, 135, 152,
            169, 95, 75, 19, 63, 107, 51, 95, 139, 83, 127, 171, 115, 117, 79, 150, 221, 183, 254,
            69, 31, 102, 173, 135, 159, 139, 237, 79, 59, 157, 255, 235, 77, 175, 155, 187, 179,
            39, 155, 147, 7, 123, 115, 231, 91, 83, 229, 239, 126, 13, 23, 166, 53, 63, 206, 93,
            103, 15, 43, 213, 127, 155, 69, 239, 11, 181, 95, 123,
        ];
        assert_eq!(c.data, expect);
        // Upsampling in x, downsampling in y.
        let d = pil_resize_bilinear(&g, 50, 20);
        let sum: u64 = d.data.iter().map(|&v| v as u64).sum();
        assert_eq!(sum, 126629);
        // (Vertical pass first there: its intermediate 29x20 is smaller than 50x37.)
        assert_eq!(
            &d.data[7 * 50..7 * 50 + 12],
            &[147, 175, 220, 129, 53, 98, 143, 187, 138, 56, 80, 110]
        );
    }

    #[test]
    fn short_edge_rule_and_shuffle() {
        assert_eq!(torchvision_short_edge(768, 1024, 192), (192, 256));
        assert_eq!(torchvision_short_edge(1024, 768, 192), (256, 192));
        assert_eq!(torchvision_short_edge(384, 512, 100), (100, 133));
        let a = epoch_order(50, true, 3, 0);
        let mut s = a.clone();
        s.sort();
        assert_eq!(s, (0..50).collect::<Vec<_>>());
        assert_eq!(a, epoch_order(50, true, 3, 0));
        assert_ne!(a, epoch_order(50, true, 3, 1));
        assert_ne!(a, epoch_order(50, true, 4, 0));
        assert_eq!(epoch_order(5, false, 3, 7), vec![0, 1, 2, 3, 4]);
    }
}
