//! `vton preprocess`: keypoints, landmarks, person masks (and parse maps with SCHP
//! weights) for person photos, masks for garment photos; flat or in the VITON-HD layout.

use std::path::{Path, PathBuf};

use clap::Args;
use indicatif::{ProgressBar, ProgressStyle};
use vton_core::io::{read_image, write_atomic, PersonSelection, RgbImage};
use vton_core::pipelines::parsing::HumanParser;
use vton_core::pipelines::preprocess::{landmarks_json, vitonhd_person, Preprocessor};
use vton_core::{device_from_name, Result, VtonError};

/// `vton preprocess`.
#[derive(Args)]
pub struct PreprocessArgs {
    /// A person photo or a folder of them (PNG / JPEG).
    #[arg(long)]
    pub person: Option<PathBuf>,
    /// A garment product photo or a folder of them.
    #[arg(long)]
    pub garment: Option<PathBuf>,
    /// Output folder.
    #[arg(long)]
    pub out: PathBuf,
    /// SCHP checkpoint (exp-schp-201908261155-lip.pth): also write LIP parse maps.
    #[arg(long)]
    pub parser: Option<PathBuf>,
    /// flat (<stem>_keypoints.json, <stem>_landmarks.json, <stem>_mask.png,
    /// <stem>_parse.png) or vitonhd (image/, cloth/, cloth-mask/, openpose_json/,
    /// image-parse-v3/, agnostic-v3.2/, image-parse-agnostic-v3.2/, test_pairs.txt).
    #[arg(long, default_value = "flat")]
    pub layout: String,
    /// Which person when a photo shows several: the largest (default) or this index.
    #[arg(long)]
    pub person_index: Option<usize>,
    /// Recompute files that already exist (default: skip photos whose outputs all exist).
    #[arg(long)]
    pub overwrite: bool,
    /// Device: cpu (default), wgpu, cuda[:N] (when built with those features).
    #[arg(long, default_value = "cpu")]
    pub device: String,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Layout {
    Flat,
    VitonHd,
}

fn is_image(p: &Path) -> bool {
    matches!(
        p.extension()
            .and_then(|e| e.to_str())
            .map(|e| e.to_ascii_lowercase())
            .as_deref(),
        Some("png" | "jpg" | "jpeg")
    )
}

/// A file, or the images of a folder (sorted; masks `*_mask.*` skipped).
fn list_images(path: &Path) -> Result<Vec<PathBuf>> {
    if path.is_file() {
        return Ok(vec![path.to_path_buf()]);
    }
    if !path.is_dir() {
        return Err(VtonError::FileNotFound {
            path: path.to_path_buf(),
        });
    }
    let rd = std::fs::read_dir(path).map_err(|e| VtonError::Io {
        path: path.to_path_buf(),
        source: e,
    })?;
    let mut out: Vec<PathBuf> = rd
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.is_file() && is_image(p))
        .filter(|p| !stem(p).ends_with("_mask") && !stem(p).ends_with("_parse"))
        .collect();
    out.sort();
    Ok(out)
}

fn stem(p: &Path) -> String {
    p.file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default()
}

fn bar(len: usize, what: &str) -> ProgressBar {
    let bar = ProgressBar::new(len as u64);
    bar.set_style(
        ProgressStyle::with_template("{msg} [{bar:30}] {pos}/{len} photos ({elapsed}, eta {eta})")
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    bar.set_message(what.to_string());
    bar
}

fn person_outputs(out: &Path, layout: Layout, s: &str, parser: bool) -> Vec<PathBuf> {
    match layout {
        Layout::Flat => {
            let mut v = vec![
                out.join(format!("{s}_keypoints.json")),
                out.join(format!("{s}_landmarks.json")),
                out.join(format!("{s}_mask.png")),
            ];
            if parser {
                v.push(out.join(format!("{s}_parse.png")));
            }
            v
        }
        Layout::VitonHd => {
            let mut v = vec![
                out.join("image").join(format!("{s}.jpg")),
                out.join("openpose_json")
                    .join(format!("{s}_keypoints.json")),
                out.join("agnostic-v3.2").join(format!("{s}.jpg")),
            ];
            if parser {
                v.push(out.join("image-parse-v3").join(format!("{s}.png")));
                v.push(
                    out.join("image-parse-agnostic-v3.2")
                        .join(format!("{s}.png")),
                );
            }
            v
        }
    }
}

fn process_person(pre: &Preprocessor, path: &Path, out: &Path, layout: Layout) -> Result<()> {
    let image = read_image(path)?;
    let s = stem(path);
    let a = pre.analyze_person(&image)?;
    match layout {
        Layout::Flat => {
            write_atomic(
                out.join(format!("{s}_keypoints.json")),
                vton_core::io::pose::openpose_json(std::slice::from_ref(&a.pose)).as_bytes(),
            )?;
            write_atomic(
                out.join(format!("{s}_landmarks.json")),
                landmarks_json(&a.estimate, image.width, image.height).as_bytes(),
            )?;
            a.mask.save_png(out.join(format!("{s}_mask.png")))?;
            if let Some(p) = &a.parse {
                p.save_png(out.join(format!("{s}_parse.png")))?;
            }
        }
        Layout::VitonHd => {
            let v = vitonhd_person(&image, &a)?;
            image.save_jpeg(out.join("image").join(format!("{s}.jpg")), 95)?;
            write_atomic(
                out.join("openpose_json")
                    .join(format!("{s}_keypoints.json")),
                v.openpose_json.as_bytes(),
            )?;
            v.agnostic
                .save_jpeg(out.join("agnostic-v3.2").join(format!("{s}.jpg")), 95)?;
            if let Some(p) = &v.parse {
                p.save_png(out.join("image-parse-v3").join(format!("{s}.png")))?;
            }
            if let Some(p) = &v.parse_agnostic {
                p.save_png(
                    out.join("image-parse-agnostic-v3.2")
                        .join(format!("{s}.png")),
                )?;
            }
        }
    }
    Ok(())
}

fn process_garment(pre: &Preprocessor, path: &Path, out: &Path, layout: Layout) -> Result<()> {
    let image: RgbImage = read_image(path)?;
    let s = stem(path);
    let mask = pre.garment_mask(&image)?;
    match layout {
        Layout::Flat => mask.save_png(out.join(format!("{s}_mask.png"))),
        Layout::VitonHd => {
            image.save_jpeg(out.join("cloth").join(format!("{s}.jpg")), 95)?;
            // VITON-HD names cloth masks like the cloth (.jpg). The content is a
            // lossless PNG: readers (vton, PIL) decode by content, not by extension.
            mask.save_png(out.join("cloth-mask").join(format!("{s}.jpg")))
        }
    }
}

/// Runs `vton preprocess`; photos that fail are reported and skipped, and the command
/// fails at the end when any did.
pub fn run(a: PreprocessArgs) -> Result<()> {
    let layout = match a.layout.as_str() {
        "flat" => Layout::Flat,
        "vitonhd" => Layout::VitonHd,
        other => {
            return Err(VtonError::invalid(
                "--layout",
                format!("{other:?} is not one of \"flat\", \"vitonhd\""),
            ))
        }
    };
    if a.person.is_none() && a.garment.is_none() {
        return Err(VtonError::invalid(
            "--person",
            "give --person and/or --garment (a file or a folder)",
        ));
    }
    let device = device_from_name(&a.device)?;
    let mut pre = Preprocessor::bundled(&device)?;
    if let Some(i) = a.person_index {
        pre = pre.with_selection(PersonSelection::Index(i));
    }
    if let Some(p) = &a.parser {
        pre = pre.with_parser(HumanParser::from_checkpoint(p, &device)?);
    }
    std::fs::create_dir_all(&a.out).map_err(|e| VtonError::Io {
        path: a.out.clone(),
        source: e,
    })?;
    let mut failures: Vec<String> = Vec::new();
    let mut persons_done: Vec<String> = Vec::new();
    if let Some(p) = &a.person {
        let files = list_images(p)?;
        let pb = bar(files.len(), "persons");
        for f in &files {
            let s = stem(f);
            let outs = person_outputs(&a.out, layout, &s, pre.has_parser());
            if !a.overwrite && outs.iter().all(|o| o.exists()) {
                persons_done.push(s);
                pb.inc(1);
                continue;
            }
            match process_person(&pre, f, &a.out, layout) {
                Ok(()) => persons_done.push(s),
                Err(e) => {
                    pb.println(format!("skipped {}: {e}", f.display()));
                    failures.push(format!("{}: {e}", f.display()));
                }
            }
            pb.inc(1);
        }
        pb.finish_with_message("persons done");
    }
    let mut garments_done: Vec<String> = Vec::new();
    if let Some(g) = &a.garment {
        let files = list_images(g)?;
        let pb = bar(files.len(), "garments");
        for f in &files {
            let s = stem(f);
            let done = match layout {
                Layout::Flat => a.out.join(format!("{s}_mask.png")).exists(),
                Layout::VitonHd => {
                    a.out.join("cloth").join(format!("{s}.jpg")).exists()
                        && a.out.join("cloth-mask").join(format!("{s}.jpg")).exists()
                }
            };
            if !a.overwrite && done {
                garments_done.push(s);
                pb.inc(1);
                continue;
            }
            match process_garment(&pre, f, &a.out, layout) {
                Ok(()) => garments_done.push(s),
                Err(e) => {
                    pb.println(format!("skipped {}: {e}", f.display()));
                    failures.push(format!("{}: {e}", f.display()));
                }
            }
            pb.inc(1);
        }
        pb.finish_with_message("garments done");
    }
    if layout == Layout::VitonHd && !persons_done.is_empty() && !garments_done.is_empty() {
        // Person i with garment i (cycling through the garments), VITON-HD's format.
        let lines: String = persons_done
            .iter()
            .enumerate()
            .map(|(i, p)| format!("{p}.jpg {}.jpg\n", garments_done[i % garments_done.len()]))
            .collect();
        write_atomic(a.out.join("test_pairs.txt"), lines.as_bytes())?;
    }
    println!(
        "preprocessed {} person photo(s) and {} garment photo(s) into {}",
        persons_done.len(),
        garments_done.len(),
        a.out.display()
    );
    if !failures.is_empty() {
        return Err(VtonError::invalid(
            "photos",
            format!(
                "{} photo(s) failed:\n  {}",
                failures.len(),
                failures.join("\n  ")
            ),
        ));
    }
    Ok(())
}
