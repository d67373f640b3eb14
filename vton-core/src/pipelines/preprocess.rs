//! From raw photos to try-on inputs: keypoints and a person mask estimated with the
//! bundled MediaPipe models, a LIP parse with SCHP when the user supplies its weights,
//! garment masks from the product photo; and the VITON-HD folder files built from them.
//!
//! Whatever the caller already has takes precedence: estimation runs only for what is
//! missing ([`Preprocessor::complete`]).
//!
//! ```no_run
//! use vton_core::pipelines::preprocess::{PartialInputs, Preprocessor};
//! use vton_core::pipelines::geometric::GeometricTryOn;
//! use vton_core::io::read_image;
//! # fn main() -> vton_core::Result<()> {
//! let device = vton_core::default_device();
//! let pre = Preprocessor::bundled(&device)?;
//! let partial = PartialInputs::new(read_image("me.jpg")?, read_image("shirt.jpg")?);
//! let inputs = pre.complete(partial)?;
//! let out = GeometricTryOn::default().run(&inputs, &device)?;
//! # let _ = out; Ok(()) }
//! ```

use std::path::Path;

use burn::tensor::Device;

use crate::error::{Result, VtonError};
use crate::estimate::pose::LANDMARK_NAMES;
use crate::estimate::{PoseEstimate, PoseEstimator};
use crate::io::{
    read_image, read_keypoints, read_mask, Mask, ParseMap, PersonSelection, Pose, RgbImage,
};
use crate::masks::{
    agnostic_from_keypoints, agnostic_from_parse, agnostic_image, estimate_garment_mask,
    parse_agnostic, GarmentCategory, GarmentMaskOptions,
};
use crate::pipelines::geometric::TryOnInputs;
use crate::pipelines::parsing::HumanParser;

/// What vton estimates from one person photo.
#[derive(Debug, Clone)]
pub struct PersonAnalysis {
    /// MediaPipe's landmarks, world landmarks, detection and ROI.
    pub estimate: PoseEstimate,
    /// The same pose as OpenPose BODY_25 keypoints (pixels).
    pub pose: Pose,
    /// Person probability, image-sized, in `[0, 1]` (MediaPipe's pose segmentation).
    pub mask: Mask,
    /// LIP 20-label parse, when the preprocessor has a human parser.
    pub parse: Option<ParseMap>,
}

/// Try-on inputs of which only the two photos are required.
#[derive(Debug, Clone)]
pub struct PartialInputs {
    pub person: RgbImage,
    pub pose: Option<Pose>,
    pub person_mask: Option<Mask>,
    pub parse: Option<ParseMap>,
    pub garment: RgbImage,
    pub garment_mask: Option<Mask>,
    pub category: GarmentCategory,
}

impl PartialInputs {
    /// The two photos, nothing else.
    pub fn new(person: RgbImage, garment: RgbImage) -> Self {
        Self {
            person,
            pose: None,
            person_mask: None,
            parse: None,
            garment,
            garment_mask: None,
            category: GarmentCategory::UpperBody,
        }
    }

    /// Reads the files given (OpenPose JSON, grey masks, label PNG); absent ones are
    /// estimated later.
    pub fn from_paths(
        person: impl AsRef<Path>,
        keypoints: Option<impl AsRef<Path>>,
        person_mask: Option<impl AsRef<Path>>,
        parse: Option<impl AsRef<Path>>,
        garment: impl AsRef<Path>,
        garment_mask: Option<impl AsRef<Path>>,
        selection: PersonSelection,
    ) -> Result<Self> {
        Ok(Self {
            person: read_image(person)?,
            pose: keypoints
                .map(|k| read_keypoints(k, selection))
                .transpose()?,
            person_mask: person_mask.map(read_mask).transpose()?,
            parse: parse.map(ParseMap::read).transpose()?,
            garment: read_image(garment)?,
            garment_mask: garment_mask.map(read_mask).transpose()?,
            category: GarmentCategory::UpperBody,
        })
    }

    /// The inputs as they are, for a run that needs no estimation; a
    /// [`VtonError::MissingKeypoints`] when no keypoints were given.
    pub fn into_inputs(self) -> Result<TryOnInputs> {
        let pose = self.pose.ok_or_else(|| VtonError::MissingKeypoints {
            operation: "try-on".into(),
            missing: "all (no keypoints given or estimated)".into(),
        })?;
        Ok(TryOnInputs {
            person: self.person,
            pose,
            person_mask: self.person_mask,
            parse: self.parse,
            garment: self.garment,
            garment_mask: self.garment_mask,
            category: self.category,
        })
    }

    /// Whether a pose estimate is needed to complete these inputs.
    pub fn needs_pose(&self) -> bool {
        self.pose.is_none() || (self.person_mask.is_none() && self.parse.is_none())
    }
}

/// The estimators behind the raw-photo paths.
#[derive(Debug)]
pub struct Preprocessor {
    pose: PoseEstimator,
    parser: Option<HumanParser>,
    /// Which person to use when a photo shows several.
    pub selection: PersonSelection,
    /// How garment masks are estimated from product photos.
    pub garment_mask: GarmentMaskOptions,
}

impl Preprocessor {
    /// Pose and person mask from the bundled MediaPipe models; no parser.
    pub fn bundled(device: &Device) -> Result<Self> {
        Ok(Self::new(PoseEstimator::bundled(device)?))
    }

    /// A preprocessor on a given pose estimator.
    pub fn new(pose: PoseEstimator) -> Self {
        Self {
            pose,
            parser: None,
            selection: PersonSelection::Largest,
            garment_mask: GarmentMaskOptions::default(),
        }
    }

    /// Adds a human parser (SCHP): parse maps are then estimated too.
    pub fn with_parser(mut self, parser: HumanParser) -> Self {
        self.parser = Some(parser);
        self
    }

    /// Chooses the person in photos of several people.
    pub fn with_selection(mut self, selection: PersonSelection) -> Self {
        self.selection = selection;
        self
    }

    /// The pose estimator.
    pub fn pose_estimator(&self) -> &PoseEstimator {
        &self.pose
    }

    /// Whether a human parser is configured.
    pub fn has_parser(&self) -> bool {
        self.parser.is_some()
    }

    /// Pose, BODY_25 keypoints, person mask (and parse, with a parser) of a photo.
    pub fn analyze_person(&self, image: &RgbImage) -> Result<PersonAnalysis> {
        let estimate = self.pose.estimate_one(image, self.selection)?;
        let pose = estimate.to_body25();
        let mask = match &estimate.mask {
            Some(m) => m.clone(),
            None => {
                return Err(VtonError::invalid(
                    "pose options",
                    "segmentation is disabled in the pose estimator: no person mask",
                ))
            }
        };
        let parse = self.parse(image)?;
        Ok(PersonAnalysis {
            estimate,
            pose,
            mask,
            parse,
        })
    }

    /// The LIP parse of a photo, when a parser is configured.
    pub fn parse(&self, image: &RgbImage) -> Result<Option<ParseMap>> {
        self.parser.as_ref().map(|p| p.parse_lip(image)).transpose()
    }

    /// The mask of a garment product photo (background estimated from the borders).
    pub fn garment_mask(&self, garment: &RgbImage) -> Result<Mask> {
        estimate_garment_mask(garment, &self.garment_mask)
    }

    /// Completes try-on inputs: keypoints and person mask estimated when not given (the
    /// parse map too, with a parser); given inputs are kept as they are.
    pub fn complete(&self, mut partial: PartialInputs) -> Result<TryOnInputs> {
        if partial.needs_pose() {
            let estimate = self.pose.estimate_one(&partial.person, self.selection)?;
            if partial.pose.is_none() {
                partial.pose = Some(estimate.to_body25());
            }
            if partial.person_mask.is_none() {
                partial.person_mask = estimate.mask;
            }
        }
        if partial.parse.is_none() {
            partial.parse = self.parse(&partial.person)?;
        }
        partial.into_inputs()
    }

    /// [`PartialInputs::into_inputs`]: inputs that need no estimation, no models used.
    pub fn complete_given(partial: PartialInputs) -> Result<TryOnInputs> {
        partial.into_inputs()
    }
}

/// `<stem>_landmarks.json`: the 33 landmarks in pixels with visibility and presence,
/// the world landmarks (metres), the detection score and the ROI.
pub fn landmarks_json(estimate: &PoseEstimate, image_width: usize, image_height: usize) -> String {
    let lm = |l: &crate::estimate::Landmark, name: &str| {
        serde_json::json!({
            "name": name, "x": l.x, "y": l.y, "z": l.z,
            "visibility": l.visibility, "presence": l.presence,
        })
    };
    let landmarks: Vec<_> = estimate
        .landmarks
        .iter()
        .zip(LANDMARK_NAMES)
        .map(|(l, n)| lm(l, n))
        .collect();
    let world: Vec<_> = estimate
        .world_landmarks
        .iter()
        .zip(LANDMARK_NAMES)
        .map(|(l, n)| lm(l, n))
        .collect();
    serde_json::json!({
        "format": "vton landmarks 1 (MediaPipe BlazePose 33; x, y, z in pixels of the photo)",
        "image_size": [image_width, image_height],
        "score": estimate.score,
        "pose_presence": estimate.pose_presence,
        "roi": {
            "x_center": estimate.roi.x_center, "y_center": estimate.roi.y_center,
            "width": estimate.roi.width, "height": estimate.roi.height,
            "rotation": estimate.roi.rotation,
        },
        "landmarks": landmarks,
        "world_landmarks": world,
    })
    .to_string()
}

/// The VITON-HD-layout files of one person photo (besides `image/` itself).
#[derive(Debug, Clone)]
pub struct VitonHdPerson {
    /// `openpose_json/<stem>_keypoints.json`.
    pub openpose_json: String,
    /// `image-parse-v3/<stem>.png` (with a parser).
    pub parse: Option<ParseMap>,
    /// `image-parse-agnostic-v3.2/<stem>.png` (with a parser).
    pub parse_agnostic: Option<ParseMap>,
    /// `agnostic-v3.2/<stem>.jpg`: the person with the garment region grey.
    pub agnostic: RgbImage,
}

/// Builds the VITON-HD files of a person from its analysis: the agnostic image follows
/// VITON-HD's `get_img_agnostic` with a parse, else vton's keypoint + person-mask
/// procedure.
pub fn vitonhd_person(image: &RgbImage, analysis: &PersonAnalysis) -> Result<VitonHdPerson> {
    let category = GarmentCategory::UpperBody;
    let (agnostic_mask, parse_agn) = match &analysis.parse {
        Some(p) => (
            agnostic_from_parse(p, &analysis.pose, category)?,
            Some(parse_agnostic(p, &analysis.pose)?),
        ),
        None => (
            agnostic_from_keypoints(&analysis.pose, &analysis.mask, category)?,
            None,
        ),
    };
    Ok(VitonHdPerson {
        openpose_json: crate::io::pose::openpose_json(std::slice::from_ref(&analysis.pose)),
        parse: analysis.parse.clone(),
        parse_agnostic: parse_agn,
        agnostic: agnostic_image(image, &agnostic_mask)?,
    })
}
