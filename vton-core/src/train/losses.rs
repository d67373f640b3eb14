//! Loss functions as the reference training scripts define them, on burn tensors (they
//! differentiate under autodiff).

use burn::tensor::Tensor;

/// `nn.L1Loss()` (mean absolute difference).
pub fn l1<const D: usize>(x: Tensor<D>, y: Tensor<D>) -> Tensor<1> {
    (x - y).abs().mean()
}

/// `nn.MSELoss()` (mean squared difference).
pub fn mse<const D: usize>(x: Tensor<D>, y: Tensor<D>) -> Tensor<1> {
    (x - y).square().mean()
}

/// CP-VTON+'s `GicLoss` (grid-interval consistency) on a sampling grid `[B, H, W, 2]`:
/// the sum over the batch and the interior pixels of
/// `| |Gx[i,j-1]-Gx[i,j]| - |Gx[i,j+1]-Gx[i,j]| | + | |Gy[i-1,j]-Gy[i,j]| - |Gy[i+1,j]-Gy[i,j]| |`
/// (x only along rows, y only along columns). Returns the raw sum; the script divides it
/// by `B * H * W`.
pub fn grid_interval_consistency(grid: Tensor<4>) -> Tensor<1> {
    let [b, h, w, _] = grid.dims();
    let gx = grid
        .clone()
        .slice([0..b, 0..h, 0..w, 0..1])
        .reshape([b, h, w]);
    let gy = grid.slice([0..b, 0..h, 0..w, 1..2]).reshape([b, h, w]);
    let (ri, ci) = (1..h - 1, 1..w - 1);
    let centre_x = gx.clone().slice([0..b, ri.clone(), ci.clone()]);
    let left = gx.clone().slice([0..b, ri.clone(), 0..w - 2]);
    let right = gx.slice([0..b, ri.clone(), 2..w]);
    let dx = ((left - centre_x.clone()).abs() - (right - centre_x).abs()).abs();
    let centre_y = gy.clone().slice([0..b, ri.clone(), ci.clone()]);
    let up = gy.clone().slice([0..b, 0..h - 2, ci.clone()]);
    let down = gy.slice([0..b, 2..h, ci]);
    let dy = ((up - centre_y.clone()).abs() - (down - centre_y).abs()).abs();
    dx.sum() + dy.sum()
}

/// Total variation of a flow `[B, H, W, 2]` (NHWC, as HR-VITON keeps flows):
/// `mean |f[:, 1:] - f[:, :-1]| + mean |f[:, :, 1:] - f[:, :, :-1]|`.
pub fn total_variation_nhwc(flow: Tensor<4>) -> Tensor<1> {
    let [b, h, w, c] = flow.dims();
    let dy = flow.clone().slice([0..b, 1..h, 0..w, 0..c])
        - flow.clone().slice([0..b, 0..h - 1, 0..w, 0..c]);
    let dx =
        flow.clone().slice([0..b, 0..h, 1..w, 0..c]) - flow.slice([0..b, 0..h, 0..w - 1, 0..c]);
    dy.abs().mean() + dx.abs().mean()
}
