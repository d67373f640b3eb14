//! The VITON-HD / HR-VITON test-set layout:
//!
//! ```text
//! DIR/test_pairs.txt              "person.jpg cloth.jpg" per line
//! DIR/[test/]image/               person photos
//! DIR/[test/]cloth/, cloth-mask/  garment photos and masks (same names)
//! DIR/[test/]image-parse-v3/      LIP label maps (person name, .png)
//! DIR/[test/]image-parse-agnostic-v3.2/
//! DIR/[test/]openpose_img/, openpose_json/   (<stem>_rendered.png, <stem>_keypoints.json)
//! DIR/[test/]image-densepose/, agnostic-v3.2/
//! ```
//!
//! The folders may sit directly in DIR or in DIR/test (HR-VITON's `dataroot/datamode`).
//! Paired mode takes each person's own garment (`cloth/<person name>`), unpaired mode
//! the garment the pairs file names.

use std::path::{Path, PathBuf};

use crate::error::{Result, VtonError};
use crate::io::{
    read_image, read_keypoints, read_mask, Mask, ParseMap, PersonSelection, Pose, RgbImage,
};
use crate::pipelines::hrviton::HRVitonImages;

/// Which garment goes with each person.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PairMode {
    Paired,
    Unpaired,
}

impl PairMode {
    pub fn from_name(name: &str) -> Result<Self> {
        match name {
            "paired" => Ok(PairMode::Paired),
            "unpaired" => Ok(PairMode::Unpaired),
            o => Err(VtonError::invalid(
                "mode",
                format!("{o:?} is not one of \"paired\", \"unpaired\""),
            )),
        }
    }
}

/// One (person, garment) pair of the test list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pair {
    pub person: String,
    pub cloth: String,
}

impl Pair {
    /// `<person stem>_<cloth stem>.png`, the name results are saved under.
    pub fn output_name(&self) -> String {
        format!("{}_{}.png", stem(&self.person), stem(&self.cloth))
    }
}

fn stem(name: &str) -> &str {
    Path::new(name)
        .file_stem()
        .and_then(|s| s.to_str())
        .unwrap_or(name)
}

/// What CP-VTON+ needs of one pair.
#[derive(Debug, Clone)]
pub struct CpvtonSample {
    pub person: RgbImage,
    pub pose: Pose,
    pub parse: ParseMap,
    pub cloth: RgbImage,
    pub cloth_mask: Mask,
}

/// A VITON-HD-layout test set.
#[derive(Debug, Clone)]
pub struct VitonHdDataset {
    /// Folder holding `image/`, `cloth/`, ...
    pub data: PathBuf,
    /// The pairs file's lines, in order.
    pub pairs: Vec<Pair>,
}

impl VitonHdDataset {
    /// Opens `dir` with its `test_pairs.txt` (or `pairs_file`, relative to `dir`).
    pub fn open(dir: impl AsRef<Path>, pairs_file: Option<&str>) -> Result<Self> {
        let dir = dir.as_ref();
        if !dir.is_dir() {
            return Err(VtonError::FileNotFound {
                path: dir.to_path_buf(),
            });
        }
        let list = dir.join(pairs_file.unwrap_or("test_pairs.txt"));
        let text = std::fs::read_to_string(&list).map_err(|e| VtonError::io(&list, e))?;
        let mut pairs = Vec::new();
        for (i, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() {
                continue;
            }
            let parts: Vec<&str> = line.split_whitespace().collect();
            if parts.len() != 2 {
                return Err(VtonError::invalid(
                    list.display().to_string(),
                    format!("line {}: expected \"person cloth\", got {line:?}", i + 1),
                ));
            }
            pairs.push(Pair {
                person: parts[0].to_string(),
                cloth: parts[1].to_string(),
            });
        }
        if pairs.is_empty() {
            return Err(VtonError::invalid(
                list.display().to_string(),
                "the pairs file lists no pair",
            ));
        }
        let data = if dir.join("test").join("image").is_dir() {
            dir.join("test")
        } else {
            dir.to_path_buf()
        };
        if !data.join("image").is_dir() {
            return Err(VtonError::FileNotFound {
                path: data.join("image"),
            });
        }
        Ok(VitonHdDataset { data, pairs })
    }

    /// The pairs for a mode: unpaired as listed, paired with each person's own garment.
    pub fn pairs(&self, mode: PairMode) -> Vec<Pair> {
        self.pairs
            .iter()
            .map(|p| match mode {
                PairMode::Unpaired => p.clone(),
                PairMode::Paired => Pair {
                    person: p.person.clone(),
                    cloth: p.person.clone(),
                },
            })
            .collect()
    }

    fn file(&self, folder: &str, name: &str) -> PathBuf {
        self.data.join(folder).join(name)
    }

    fn png(&self, folder: &str, name: &str) -> PathBuf {
        self.file(folder, &format!("{}.png", stem(name)))
    }

    fn with_ext(&self, folder: &str, name: &str) -> PathBuf {
        // VITON-HD ships densepose and agnostic images as .jpg; accept .png too.
        let p = self.file(folder, name);
        if p.exists() {
            return p;
        }
        self.png(folder, name)
    }

    /// Keypoints of a person (`openpose_json/<stem>_keypoints.json`).
    pub fn pose(&self, person: &str) -> Result<Pose> {
        read_keypoints(
            self.file("openpose_json", &format!("{}_keypoints.json", stem(person))),
            PersonSelection::Largest,
        )
    }

    /// HR-VITON's inputs for a pair.
    pub fn hrviton_sample(&self, pair: &Pair) -> Result<HRVitonImages> {
        Ok(HRVitonImages {
            cloth: read_image(self.file("cloth", &pair.cloth))?,
            cloth_mask: read_mask(self.with_ext("cloth-mask", &pair.cloth))?,
            parse_agnostic: ParseMap::read(self.png("image-parse-agnostic-v3.2", &pair.person))?,
            densepose: read_image(self.with_ext("image-densepose", &pair.person))?,
            agnostic: read_image(self.with_ext("agnostic-v3.2", &pair.person))?,
        })
    }

    /// CP-VTON+'s inputs for a pair (photo, keypoints, parse, garment and mask).
    pub fn cpvton_sample(&self, pair: &Pair) -> Result<CpvtonSample> {
        Ok(CpvtonSample {
            person: read_image(self.file("image", &pair.person))?,
            pose: self.pose(&pair.person)?,
            parse: ParseMap::read(self.png("image-parse-v3", &pair.person))?,
            cloth: read_image(self.file("cloth", &pair.cloth))?,
            cloth_mask: read_mask(self.with_ext("cloth-mask", &pair.cloth))?,
        })
    }
}
