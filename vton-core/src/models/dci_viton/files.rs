//! Where a DCI-VITON weights folder keeps its three parts: the warping network checkpoint
//! (the checkpoint whose file name contains "warping", case-insensitive), the diffusion
//! U-Net checkpoint (the one other checkpoint beside it) and the Stable Diffusion VAE (a
//! diffusers folder, `vae/`). Checkpoints are the files ending in `.pth`, `.pt`, `.bin`,
//! `.ckpt` or `.safetensors`; other files and folders are not looked at. The CLI
//! (`vton try-on --method dci-viton --weights DIR`) and the C API
//! (`vton_pipeline_load(VTON_METHOD_DCI_VITON, DIR, ...)`) share these rules.

use std::path::{Path, PathBuf};

use crate::error::{Result, VtonError};

/// The argument name of the errors about the warping checkpoint.
pub const WARPING_ARG: &str = "DCI-VITON warping checkpoint";
/// The argument name of the errors about the U-Net checkpoint.
pub const UNET_ARG: &str = "DCI-VITON U-Net checkpoint";
/// The argument name of the errors about the VAE folder.
pub const VAE_ARG: &str = "DCI-VITON VAE folder";

/// The three parts of a DCI-VITON model.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DciVitonFiles {
    /// The warping network checkpoint.
    pub warping: PathBuf,
    /// The diffusion U-Net checkpoint.
    pub unet: PathBuf,
    /// The VAE folder (a diffusers `AutoencoderKL` folder, or one holding `vae/`).
    pub vae: PathBuf,
}

/// Paths given explicitly; each replaces the search of its part.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DciVitonFileOverrides {
    pub warping: Option<PathBuf>,
    pub unet: Option<PathBuf>,
    pub vae: Option<PathBuf>,
}

fn is_checkpoint(p: &Path) -> bool {
    p.is_file()
        && matches!(
            p.extension().and_then(|e| e.to_str()),
            Some("pth" | "pt" | "bin" | "ckpt" | "safetensors")
        )
}

fn lower_name(p: &Path) -> String {
    p.file_name()
        .map(|n| n.to_string_lossy().to_lowercase())
        .unwrap_or_default()
}

/// The checkpoints directly inside `dir`, sorted by path.
fn checkpoints_in(dir: &Path) -> Result<Vec<PathBuf>> {
    if !dir.is_dir() {
        return Err(VtonError::FileNotFound {
            path: dir.to_path_buf(),
        });
    }
    let rd = std::fs::read_dir(dir).map_err(|e| VtonError::Io {
        path: dir.to_path_buf(),
        source: e,
    })?;
    let mut files: Vec<PathBuf> = rd
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| is_checkpoint(p))
        .collect();
    files.sort();
    Ok(files)
}

/// The three parts found in `dir` (see the module docs). Errors: `dir` missing
/// ([`VtonError::FileNotFound`]); no, or several, warping checkpoints; no, or several,
/// U-Net candidates; no `vae/` folder ([`VtonError::InvalidArgument`] named
/// [`WARPING_ARG`], [`UNET_ARG`] or [`VAE_ARG`]).
pub fn find_checkpoints(dir: &Path) -> Result<DciVitonFiles> {
    resolve_checkpoints(Some(dir), &DciVitonFileOverrides::default())
}

/// [`find_checkpoints`] with explicitly given paths taking precedence: a given warping
/// checkpoint is not searched for (and is not a U-Net candidate), a given U-Net is not
/// searched for, a given VAE folder replaces `dir/vae`. With no `dir`, every part must be
/// given. Given paths are returned as they are (loading reports a missing file).
pub fn resolve_checkpoints(
    dir: Option<&Path>,
    overrides: &DciVitonFileOverrides,
) -> Result<DciVitonFiles> {
    let files = match dir {
        Some(d) => checkpoints_in(d)?,
        None => Vec::new(),
    };
    let shown = |d: Option<&Path>| match d {
        Some(d) => d.display().to_string(),
        None => "the weights folder (none given)".to_string(),
    };
    let warping = match &overrides.warping {
        Some(p) => p.clone(),
        None => {
            let found: Vec<&PathBuf> = files
                .iter()
                .filter(|p| lower_name(p).contains("warping"))
                .collect();
            match found.as_slice() {
                [one] => (*one).clone(),
                [] => {
                    return Err(VtonError::invalid(
                        WARPING_ARG,
                        format!(
                            "no checkpoint (.pth, .pt, .bin, .ckpt, .safetensors) whose name \
                             contains \"warping\" in {}",
                            shown(dir)
                        ),
                    ))
                }
                _ => {
                    return Err(VtonError::invalid(
                        WARPING_ARG,
                        format!(
                            "several warping checkpoints in {}: {found:?}; pick one",
                            shown(dir)
                        ),
                    ))
                }
            }
        }
    };
    let unet = match &overrides.unet {
        Some(p) => p.clone(),
        None => {
            let found: Vec<&PathBuf> = files.iter().filter(|p| **p != warping).collect();
            match found.as_slice() {
                [one] => (*one).clone(),
                [] => {
                    return Err(VtonError::invalid(
                        UNET_ARG,
                        format!(
                            "no U-Net checkpoint beside the warping one in {}",
                            shown(dir)
                        ),
                    ))
                }
                _ => {
                    return Err(VtonError::invalid(
                        UNET_ARG,
                        format!(
                            "several candidate U-Net checkpoints in {}: {found:?}; pick one",
                            shown(dir)
                        ),
                    ))
                }
            }
        }
    };
    let vae = match (&overrides.vae, dir) {
        (Some(p), _) => p.clone(),
        (None, Some(d)) => {
            let v = d.join("vae");
            if !v.is_dir() {
                return Err(VtonError::invalid(
                    VAE_ARG,
                    format!(
                        "no vae/ folder (the Stable Diffusion VAE, a diffusers folder) in {}",
                        d.display()
                    ),
                ));
            }
            v
        }
        (None, None) => {
            return Err(VtonError::invalid(
                VAE_ARG,
                "no VAE folder given and no weights folder to find vae/ in",
            ))
        }
    };
    Ok(DciVitonFiles { warping, unet, vae })
}
