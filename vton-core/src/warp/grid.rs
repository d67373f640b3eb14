//! `torch.nn.functional.grid_sample` on burn tensors, with every option explicit.
//!
//! Grids are NHWC `[N, H_out, W_out, 2]` holding `(x, y)` in `[-1, 1]` (x = width
//! coordinate). With `align_corners = true`, -1 and 1 are the centres of the corner
//! pixels; with `false` they are the outer edges of the corner pixels (PyTorch's
//! default since 1.3). There is deliberately no `Default`: callers state the options.

use burn::tensor::ops::{GridSampleOptions as BurnOptions, GridSamplePaddingMode, InterpolateMode};
use burn::tensor::{Device, Tensor, TensorData};

use crate::error::{Result, VtonError};

/// Interpolation of `grid_sample`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SampleMode {
    Bilinear,
    Nearest,
}

/// What `grid_sample` reads outside the input.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PaddingMode {
    Zeros,
    Border,
    Reflection,
}

/// All options of `grid_sample`, as PyTorch names them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GridSampleOptions {
    pub mode: SampleMode,
    pub padding_mode: PaddingMode,
    pub align_corners: bool,
}

impl GridSampleOptions {
    pub fn new(mode: SampleMode, padding_mode: PaddingMode, align_corners: bool) -> Self {
        GridSampleOptions {
            mode,
            padding_mode,
            align_corners,
        }
    }

    /// Parses PyTorch's option strings (`"bilinear"|"nearest"`, `"zeros"|"border"|"reflection"`).
    pub fn from_names(mode: &str, padding_mode: &str, align_corners: bool) -> Result<Self> {
        let mode = match mode {
            "bilinear" => SampleMode::Bilinear,
            "nearest" => SampleMode::Nearest,
            "bicubic" => {
                return Err(VtonError::Unsupported {
                    what: "grid_sample mode 'bicubic' (use 'bilinear' or 'nearest')".into(),
                })
            }
            other => {
                return Err(VtonError::invalid(
                    "mode",
                    format!("'{other}' is not one of 'bilinear', 'nearest'"),
                ))
            }
        };
        let padding_mode = match padding_mode {
            "zeros" => PaddingMode::Zeros,
            "border" => PaddingMode::Border,
            "reflection" => PaddingMode::Reflection,
            other => {
                return Err(VtonError::invalid(
                    "padding_mode",
                    format!("'{other}' is not one of 'zeros', 'border', 'reflection'"),
                ))
            }
        };
        Ok(GridSampleOptions {
            mode,
            padding_mode,
            align_corners,
        })
    }

    fn to_burn(self) -> BurnOptions {
        let mode = match self.mode {
            SampleMode::Bilinear => InterpolateMode::Bilinear,
            SampleMode::Nearest => InterpolateMode::Nearest,
        };
        let padding = match self.padding_mode {
            PaddingMode::Zeros => GridSamplePaddingMode::Zeros,
            PaddingMode::Border => GridSamplePaddingMode::Border,
            PaddingMode::Reflection => GridSamplePaddingMode::Reflection,
        };
        BurnOptions::new(mode)
            .with_padding_mode(padding)
            .with_align_corners(self.align_corners)
    }
}

/// Samples `input` `[N, C, H, W]` at `grid` `[N, H_out, W_out, 2]`; returns `[N, C, H_out, W_out]`.
pub fn grid_sample(
    input: Tensor<4>,
    grid: Tensor<4>,
    options: GridSampleOptions,
) -> Result<Tensor<4>> {
    let (di, dg) = (input.dims(), grid.dims());
    if dg[3] != 2 {
        return Err(VtonError::Shape {
            what: "grid".into(),
            expected: "[N, H_out, W_out, 2]".into(),
            actual: dg.to_vec(),
        });
    }
    if di[0] != dg[0] {
        return Err(VtonError::SizeMismatch {
            what: "grid_sample batch".into(),
            expected: format!("grid batch {}", di[0]),
            actual: dg[0].to_string(),
        });
    }
    if di.iter().chain(dg.iter()).any(|&d| d == 0) {
        return Err(VtonError::Shape {
            what: "grid_sample input".into(),
            expected: "non-empty dimensions".into(),
            actual: di.to_vec(),
        });
    }
    let device = input.device();
    let flex = Device::flex();
    if options.mode == SampleMode::Nearest && device != flex {
        // burn's GPU kernels implement bilinear only; nearest runs on the CPU backend
        // (same arithmetic) and comes back.
        let out = input
            .to_device(&flex)
            .grid_sample_2d(grid.to_device(&flex), options.to_burn());
        return Ok(out.to_device(&device));
    }
    let mode = match options.mode {
        SampleMode::Bilinear => 0,
        SampleMode::Nearest => 1,
    };
    let padding = match options.padding_mode {
        PaddingMode::Zeros => 0,
        PaddingMode::Border => 1,
        PaddingMode::Reflection => 2,
    };
    Ok(
        match crate::kernels::grid_sample(input, grid, mode, padding, options.align_corners) {
            Ok(out) => out,
            Err((input, grid)) => input.grid_sample_2d(grid, options.to_burn()),
        },
    )
}

/// The identity sampling grid `[n, h, w, 2]` for the given `align_corners` convention.
pub fn identity_grid(
    n: usize,
    h: usize,
    w: usize,
    align_corners: bool,
    device: &Device,
) -> Tensor<4> {
    let mut data = Vec::with_capacity(n * h * w * 2);
    for _ in 0..n {
        for y in 0..h {
            for x in 0..w {
                data.push(pixel_to_normalized(x as f32, w, align_corners));
                data.push(pixel_to_normalized(y as f32, h, align_corners));
            }
        }
    }
    Tensor::from_data(TensorData::new(data, [n, h, w, 2]), device)
}

/// Pixel-centre coordinate -> normalised coordinate under the given convention.
pub fn pixel_to_normalized(p: f32, size: usize, align_corners: bool) -> f32 {
    if align_corners {
        if size > 1 {
            p * 2.0 / (size as f32 - 1.0) - 1.0
        } else {
            0.0
        }
    } else {
        (2.0 * p + 1.0) / size as f32 - 1.0
    }
}
