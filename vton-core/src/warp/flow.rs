//! Flow warping: displacement fields in pixels turned into sampling grids.

use burn::tensor::Tensor;

use crate::error::{Result, VtonError};
use crate::warp::grid::{grid_sample, identity_grid, GridSampleOptions};

/// Turns a flow `[N, H, W, 2]` of `(dx, dy)` displacements in pixels of the input
/// (`in_w x in_h`) into a normalised grid: output pixel `p` samples input point `p + flow(p)`.
pub fn flow_to_grid(
    flow: Tensor<4>,
    in_w: usize,
    in_h: usize,
    align_corners: bool,
) -> Result<Tensor<4>> {
    let d = flow.dims();
    if d[3] != 2 {
        return Err(VtonError::Shape {
            what: "flow".into(),
            expected: "[N, H, W, 2]".into(),
            actual: d.to_vec(),
        });
    }
    if d[1] != in_h || d[2] != in_w {
        return Err(VtonError::SizeMismatch {
            what: "flow size".into(),
            expected: format!("{in_h}x{in_w}"),
            actual: format!("{}x{}", d[1], d[2]),
        });
    }
    let device = flow.device();
    let base = identity_grid(d[0], d[1], d[2], align_corners, &device);
    let scale = |size: usize| {
        if align_corners {
            2.0 / (size.max(2) as f32 - 1.0)
        } else {
            2.0 / size as f32
        }
    };
    let s = Tensor::<1>::from_floats([scale(in_w), scale(in_h)], &device).reshape([1, 1, 1, 2]);
    Ok(base + flow * s)
}

/// Warps `input` `[N, C, H, W]` by a pixel flow `[N, H, W, 2]` (backward warping).
pub fn warp_by_flow(
    input: Tensor<4>,
    flow: Tensor<4>,
    options: GridSampleOptions,
) -> Result<Tensor<4>> {
    let d = input.dims();
    let grid = flow_to_grid(flow, d[3], d[2], options.align_corners)?;
    grid_sample(input, grid, options)
}
