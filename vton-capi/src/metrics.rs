//! Image-quality metrics through the C ABI: PSNR, SSIM and MS-SSIM on two interleaved
//! 8-bit images, LPIPS behind a `vton_lpips` handle, FID and KID behind one `vton_fid`
//! handle (one Inception network; the FID statistics and the KID features of both sets).
//!
//! Images are `height * width * channels` bytes, rows top to bottom, channels interleaved
//! (as C programs and numpy hold them), values 0..255. The conventions are vton-core's
//! (`vton_core::metrics`): scikit-image PSNR / SSIM, pytorch-msssim MS-SSIM, lpips 0.1.4,
//! pytorch-fid 0.3.0 and torch-fidelity 0.4.0.

use std::ffi::c_char;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::Path;

use vton_core::burn::tensor::Tensor;
use vton_core::default_device;
use vton_core::io::image::tensor_to_vec;
use vton_core::metrics::{
    self as vm, Fid, KidOptions, Lpips, LpipsNet, MetricImage, MsSsimOptions, SsimConvention,
};
use vton_core::models::inception::FidInceptionV3;

use crate::vton_status::*;
use crate::{core, guard, null, path_arg, vton_status};

type Failure = (vton_status, String);

/// The most KID draws (`subsets * subset_size`) one call makes: their indices are held in
/// memory (16 bytes a draw), so an absurd count is refused rather than exhausting memory.
/// torch-fidelity's default is 100 x 1000.
pub const VTON_KID_MAX_DRAWS: usize = 100_000_000;

fn invalid(msg: String) -> Failure {
    (VTON_STATUS_INVALID_ARGUMENT, msg)
}

/// The byte count of an `height x width x channels` image, checked (non-zero sizes,
/// 1 or 3 channels when `channels` is given, no overflow).
fn image_len(
    height: usize,
    width: usize,
    channels: usize,
    allowed: &[usize],
    name: &str,
) -> Result<usize, Failure> {
    if height == 0 || width == 0 {
        return Err(invalid(format!(
            "{name}: height and width must be positive, got {height} x {width}"
        )));
    }
    if !allowed.contains(&channels) {
        let list: Vec<String> = allowed.iter().map(|c| c.to_string()).collect();
        return Err(invalid(format!(
            "{name}: channels must be {}, got {channels}",
            list.join(" or ")
        )));
    }
    height
        .checked_mul(width)
        .and_then(|n| n.checked_mul(channels))
        .filter(|&n| n <= isize::MAX as usize)
        .ok_or_else(|| {
            invalid(format!(
                "{name}: {height} x {width} x {channels} bytes overflow"
            ))
        })
}

/// An interleaved 8-bit image of `channels` (1 or 3) channels.
unsafe fn image_arg(
    pixels: *const u8,
    height: usize,
    width: usize,
    channels: usize,
    name: &str,
) -> Result<MetricImage, Failure> {
    if pixels.is_null() {
        return Err(null(name));
    }
    let n = image_len(height, width, channels, &[1, 3], name)?;
    core(MetricImage::from_u8_hwc(
        height,
        width,
        channels,
        std::slice::from_raw_parts(pixels, n),
    ))
}

/// Both images of a pair metric and the out-parameter, checked in argument order.
unsafe fn pair_args<T>(
    a: *const u8,
    b: *const u8,
    height: usize,
    width: usize,
    channels: usize,
    out: *mut T,
) -> Result<(MetricImage, MetricImage), Failure> {
    let x = image_arg(a, height, width, channels, "a")?;
    let y = image_arg(b, height, width, channels, "b")?;
    if out.is_null() {
        return Err(null("out"));
    }
    Ok((x, y))
}

/// PSNR of two images as scikit-image's `peak_signal_noise_ratio(a, b, data_range)`
/// (float64 MSE over every value): `10 log10(data_range^2 / MSE)` in dB, `+inf` for
/// identical images. `data_range` is 255 for 8-bit images as scikit-image infers it.
#[no_mangle]
pub unsafe extern "C" fn vton_metrics_psnr(
    a: *const u8,
    b: *const u8,
    height: usize,
    width: usize,
    channels: usize,
    data_range: f64,
    out: *mut f64,
) -> vton_status {
    guard(|| {
        let (x, y) = pair_args(a, b, height, width, channels, out)?;
        *out = core(vm::psnr(&x, &y, data_range))?;
        Ok(())
    })
}

/// SSIM of two images under a named convention: `"skimage-gaussian"` (NULL; scikit-image
/// `gaussian_weights=True, sigma=1.5, use_sample_covariance=False`, the usual try-on
/// setting), `"skimage-default"` (7x7 uniform window, sample covariance),
/// `"pytorch-msssim"`, `"torchmetrics"` (>= 1.4.2), `"torchmetrics-1.4.1"`. The mean over
/// channels. Images smaller than the window (11 px, 7 for skimage-default) and unknown
/// conventions are `VTON_STATUS_INVALID_ARGUMENT`.
#[no_mangle]
#[allow(clippy::too_many_arguments)]
pub unsafe extern "C" fn vton_metrics_ssim(
    a: *const u8,
    b: *const u8,
    height: usize,
    width: usize,
    channels: usize,
    data_range: f64,
    convention: *const c_char,
    out: *mut f64,
) -> vton_status {
    guard(|| {
        let conv = if convention.is_null() {
            SsimConvention::SkimageGaussian
        } else {
            core(SsimConvention::from_name(&path_arg(
                convention,
                "convention",
            )?))?
        };
        let (x, y) = pair_args(a, b, height, width, channels, out)?;
        *out = core(vm::ssim(&x, &y, conv, data_range))?;
        Ok(())
    })
}

/// MS-SSIM of two images as pytorch-msssim 1.0 `ms_ssim` (five scales, Gaussian 11,
/// sigma 1.5): the shorter side must exceed 160 px (`VTON_STATUS_INVALID_ARGUMENT`
/// otherwise, where pytorch-msssim asserts).
#[no_mangle]
pub unsafe extern "C" fn vton_metrics_ms_ssim(
    a: *const u8,
    b: *const u8,
    height: usize,
    width: usize,
    channels: usize,
    data_range: f64,
    out: *mut f64,
) -> vton_status {
    guard(|| {
        let (x, y) = pair_args(a, b, height, width, channels, out)?;
        *out = core(vm::ms_ssim(&x, &y, &MsSsimOptions::new(data_range)))?;
        Ok(())
    })
}

/// A loaded LPIPS model (opaque); free with `vton_lpips_free`.
pub struct vton_lpips {
    inner: Lpips,
}

/// Opens LPIPS weights as vton's Python binding does: `backbone` with torchvision's
/// `features.N.*` keys (at the root or under one prefix) or a whole `lpips.LPIPS` state
/// dict; `lin` with `lin<k>.model.1.weight` (at the root or under one prefix). Without
/// `lin`, the backbone file's own lin layers when it has them, else the bundled ones.
fn load_lpips(backbone: &Path, net: LpipsNet, lin: Option<&Path>) -> vton_core::Result<Lpips> {
    Lpips::from_checkpoint(backbone, net, lin, &default_device())
}

/// Loads LPIPS (lpips 0.1.4, v0.1). `backbone`: the torchvision checkpoint
/// (`alexnet-owt-*.pth`, `squeezenet1_1-*.pth`, `vgg16-*.pth`; `features.N.*` keys, at the
/// root or under one prefix) or a whole `lpips.LPIPS` state dict. `net`: `"alex"`,
/// `"squeeze"` or `"vgg"` (NULL: `"alex"`, lpips' default). `lin`: a file with the linear
/// layers (`lin<k>.model.1.weight`, at the root or under one prefix); NULL takes the
/// backbone file's own lin layers when it has them, else the lpips 0.1.4 v0.1 layers
/// bundled with vton. Unknown nets are `VTON_STATUS_INVALID_ARGUMENT`, weights that do not
/// fit `VTON_STATUS_CHECKPOINT`. On success `*out` is a new model.
#[no_mangle]
pub unsafe extern "C" fn vton_lpips_load(
    backbone: *const c_char,
    net: *const c_char,
    lin: *const c_char,
    out: *mut *mut vton_lpips,
) -> vton_status {
    guard(|| {
        let backbone = path_arg(backbone, "backbone")?;
        let net = if net.is_null() {
            LpipsNet::Alex
        } else {
            core(LpipsNet::from_name(&path_arg(net, "net")?))?
        };
        let lin = if lin.is_null() {
            None
        } else {
            Some(path_arg(lin, "lin")?)
        };
        if out.is_null() {
            return Err(null("out"));
        }
        let inner = core(load_lpips(
            Path::new(&backbone),
            net,
            lin.as_deref().map(Path::new),
        ))?;
        *out = Box::into_raw(Box::new(vton_lpips { inner }));
        Ok(())
    })
}

/// The LPIPS distance of two interleaved 8-bit RGB images of `height x width` (mapped to
/// `[-1, 1]` as lpips expects). Images smaller than the backbone allows (alex 31 px,
/// vgg 16, squeeze 17) are `VTON_STATUS_INVALID_ARGUMENT`.
#[no_mangle]
pub unsafe extern "C" fn vton_lpips_distance(
    lpips: *const vton_lpips,
    a: *const u8,
    b: *const u8,
    height: usize,
    width: usize,
    out: *mut f32,
) -> vton_status {
    guard(|| {
        let model = lpips.as_ref().ok_or_else(|| null("lpips"))?;
        let x = rgb_image_arg(a, height, width, "a")?;
        let y = rgb_image_arg(b, height, width, "b")?;
        if out.is_null() {
            return Err(null("out"));
        }
        let device = default_device();
        let x0 = core(MetricImage::batch_tensor(&[&x], 2.0 / 255.0, -1.0, &device))?;
        let x1 = core(MetricImage::batch_tensor(&[&y], 2.0 / 255.0, -1.0, &device))?;
        let d = core(model.inner.distance(x0, x1))?;
        *out = *d.first().ok_or_else(|| {
            (
                VTON_STATUS_NUMERICAL,
                "LPIPS returned no distance".to_string(),
            )
        })?;
        Ok(())
    })
}

/// Frees an LPIPS model (NULL is ignored).
#[no_mangle]
pub unsafe extern "C" fn vton_lpips_free(lpips: *mut vton_lpips) {
    if !lpips.is_null() {
        let _ = catch_unwind(AssertUnwindSafe(|| drop(Box::from_raw(lpips))));
    }
}

/// An interleaved 8-bit RGB image (3 channels).
unsafe fn rgb_image_arg(
    pixels: *const u8,
    height: usize,
    width: usize,
    name: &str,
) -> Result<MetricImage, Failure> {
    if pixels.is_null() {
        return Err(null(name));
    }
    let n = image_len(height, width, 3, &[3], name)?;
    core(MetricImage::from_u8_hwc(
        height,
        width,
        3,
        std::slice::from_raw_parts(pixels, n),
    ))
}

/// FID and KID state (opaque): pytorch-fid's Inception network, the streaming FID
/// statistics of the real and the generated set, and every image's features for KID.
/// Free with `vton_fid_free`.
pub struct vton_fid {
    fid: Fid,
    /// KID features of the (real, generated) images, row-major `n x dim`.
    kid_real: Vec<f32>,
    kid_fake: Vec<f32>,
}

/// Loads pytorch-fid's InceptionV3 from `inception_checkpoint`
/// (`pt_inception-2015-12-05-6726825d.pth`, or safetensors with its keys, at the root or
/// under one prefix; widths are read from the file). On success `*out` is a new state
/// with both sets empty.
#[no_mangle]
pub unsafe extern "C" fn vton_fid_load(
    inception_checkpoint: *const c_char,
    out: *mut *mut vton_fid,
) -> vton_status {
    guard(|| {
        let path = path_arg(inception_checkpoint, "inception_checkpoint")?;
        if out.is_null() {
            return Err(null("out"));
        }
        let net = core(FidInceptionV3::from_checkpoint(&path, &default_device()))?;
        *out = Box::into_raw(Box::new(vton_fid {
            fid: Fid::new(net),
            kid_real: Vec::new(),
            kid_fake: Vec::new(),
        }));
        Ok(())
    })
}

/// Adds one interleaved 8-bit RGB image (`height x width`, any size: resized to 299x299
/// inside the network as pytorch-fid does) to the real (`real` non-zero) or the generated
/// set. On error nothing is added.
#[no_mangle]
pub unsafe extern "C" fn vton_fid_update(
    fid: *mut vton_fid,
    image: *const u8,
    height: usize,
    width: usize,
    real: i32,
) -> vton_status {
    guard(|| {
        let state = fid.as_mut().ok_or_else(|| null("fid"))?;
        let img = rgb_image_arg(image, height, width, "image")?;
        let device = default_device();
        let t: Tensor<4> = core(MetricImage::batch_tensor(
            &[&img],
            1.0 / 255.0,
            0.0,
            &device,
        ))?;
        let features = core(state.fid.inception().features(t).and_then(tensor_to_vec))?;
        if features.iter().any(|v| !v.is_finite()) {
            return Err((
                VTON_STATUS_NUMERICAL,
                "the Inception features of this image are NaN or infinite".to_string(),
            ));
        }
        let real = real != 0;
        core(state.fid.update_features(&features, real))?;
        if real {
            &mut state.kid_real
        } else {
            &mut state.kid_fake
        }
        .extend_from_slice(&features);
        Ok(())
    })
}

/// The number of images added to the real (`real` non-zero) or the generated set (0 for
/// NULL).
#[no_mangle]
pub unsafe extern "C" fn vton_fid_count(fid: *const vton_fid, real: i32) -> usize {
    fid.as_ref().map_or(0, |f| {
        if real != 0 {
            f.fid.real_statistics().count()
        } else {
            f.fid.fake_statistics().count()
        }
    })
}

/// The FID between the two sets (pytorch-fid 0.3.0: `np.cov` statistics, the trace of the
/// principal square root). Each set needs at least 2 images (`VTON_STATUS_INVALID_ARGUMENT`
/// otherwise).
#[no_mangle]
pub unsafe extern "C" fn vton_fid_compute(fid: *const vton_fid, out: *mut f64) -> vton_status {
    guard(|| {
        let state = fid.as_ref().ok_or_else(|| null("fid"))?;
        if out.is_null() {
            return Err(null("out"));
        }
        *out = core(state.fid.compute())?.value;
        Ok(())
    })
}

/// KID between the two sets as torch-fidelity 0.4.0 computes it: `subsets` subsets of
/// `subset_size` images of each set drawn by `np.random.RandomState(2020)`, cubic
/// polynomial kernel, unbiased MMD^2; `*mean` and `*stddev` (`np.std`) over the subsets.
/// torch-fidelity's defaults are 100 subsets of 1000. `subsets` 0, `subset_size` under 2
/// or above either set's size, and more than [`VTON_KID_MAX_DRAWS`] draws in all
/// (`subsets * subset_size`) are `VTON_STATUS_INVALID_ARGUMENT`.
#[no_mangle]
pub unsafe extern "C" fn vton_fid_compute_kid(
    fid: *const vton_fid,
    subsets: usize,
    subset_size: usize,
    mean: *mut f64,
    stddev: *mut f64,
) -> vton_status {
    guard(|| {
        let state = fid.as_ref().ok_or_else(|| null("fid"))?;
        if mean.is_null() {
            return Err(null("mean"));
        }
        if stddev.is_null() {
            return Err(null("stddev"));
        }
        if subsets
            .checked_mul(subset_size)
            .is_none_or(|n| n > VTON_KID_MAX_DRAWS)
        {
            return Err(invalid(format!(
                "KID: {subsets} subsets of {subset_size} exceed {VTON_KID_MAX_DRAWS} draws in all"
            )));
        }
        let opts = KidOptions {
            subsets,
            subset_size,
            ..KidOptions::default()
        };
        let dim = state.fid.inception().feature_dim();
        let r = core(vm::kid(&state.kid_real, &state.kid_fake, dim, &opts))?;
        *mean = r.mean;
        *stddev = r.std;
        Ok(())
    })
}

/// Frees FID / KID state (NULL is ignored).
#[no_mangle]
pub unsafe extern "C" fn vton_fid_free(fid: *mut vton_fid) {
    if !fid.is_null() {
        let _ = catch_unwind(AssertUnwindSafe(|| drop(Box::from_raw(fid))));
    }
}
