//! Thin-plate splines.
//!
//! * [`TpsGridGen`]: CP-VTON's module (`networks.py`, `TpsGridGen`): a regular
//!   `grid_size x grid_size` control grid on `[-1, 1]^2`, `theta` = `[X offsets (N), Y
//!   offsets (N)]` with control-point X varying slowest (`P_Y, P_X = meshgrid(axis, axis)`),
//!   kernel `U(d2) = d2 * ln(d2)` on squared distances with `d2 == 0 -> 1`, output grid
//!   on `linspace(-1, 1)` (the `align_corners = true` convention), `(x, y)` last.
//! * [`ThinPlateSpline`]: a general 2-D TPS fitted to arbitrary point pairs with optional
//!   regularisation `lambda` (`K + lambda I`), solved on the host in `f64`.

use burn::tensor::{Device, Tensor, TensorData};

use crate::error::{Result, VtonError};

/// The TPS radial basis on a squared distance, as CP-VTON computes it.
#[inline]
pub fn tps_kernel(d2: f64) -> f64 {
    let d2 = if d2 == 0.0 { 1.0 } else { d2 };
    d2 * d2.ln()
}

/// Solves `a x = b` (dense, row-major, `n x n`, `m` right-hand sides as columns of `b`,
/// `n x m` row-major) by Gaussian elimination with partial pivoting.
pub fn solve_dense(
    mut a: Vec<f64>,
    mut b: Vec<f64>,
    n: usize,
    m: usize,
    operation: &str,
) -> Result<Vec<f64>> {
    let scale = a.iter().fold(0f64, |s, v| s.max(v.abs())).max(1e-300);
    for col in 0..n {
        let piv = (col..n)
            .max_by(|&i, &j| a[i * n + col].abs().total_cmp(&a[j * n + col].abs()))
            .unwrap_or(col);
        if a[piv * n + col].abs() <= 1e-12 * scale {
            return Err(VtonError::Numerical {
                operation: operation.into(),
                message: "the system is singular (duplicate or collinear control points?)".into(),
            });
        }
        if piv != col {
            for k in 0..n {
                a.swap(col * n + k, piv * n + k);
            }
            for k in 0..m {
                b.swap(col * m + k, piv * m + k);
            }
        }
        let p = a[col * n + col];
        for r in col + 1..n {
            let f = a[r * n + col] / p;
            if f != 0.0 {
                for k in col..n {
                    a[r * n + k] -= f * a[col * n + k];
                }
                for k in 0..m {
                    b[r * m + k] -= f * b[col * m + k];
                }
            }
        }
    }
    let mut x = vec![0f64; n * m];
    for r in (0..n).rev() {
        for k in 0..m {
            let mut s = b[r * m + k];
            for c in r + 1..n {
                s -= a[r * n + c] * x[c * m + k];
            }
            x[r * m + k] = s / a[r * n + r];
        }
    }
    if x.iter().any(|v| !v.is_finite()) {
        return Err(VtonError::Numerical {
            operation: operation.into(),
            message: "non-finite solution".into(),
        });
    }
    Ok(x)
}

/// The TPS system matrix `[[K + lambda I, P], [P^T, 0]]` for control points `pts`.
fn system_matrix(pts: &[(f64, f64)], lambda: f64) -> Vec<f64> {
    let n = pts.len();
    let s = n + 3;
    let mut l = vec![0f64; s * s];
    for i in 0..n {
        for j in 0..n {
            let (dx, dy) = (pts[i].0 - pts[j].0, pts[i].1 - pts[j].1);
            l[i * s + j] = tps_kernel(dx * dx + dy * dy) + if i == j { lambda } else { 0.0 };
        }
        let p = [1.0, pts[i].0, pts[i].1];
        for k in 0..3 {
            l[i * s + n + k] = p[k];
            l[(n + k) * s + i] = p[k];
        }
    }
    l
}

/// A 2-D thin-plate spline `R^2 -> R^2`: `f(p) = a0 + a1 x + a2 y + sum_i w_i U(|p - c_i|^2)`.
#[derive(Debug, Clone, PartialEq)]
pub struct ThinPlateSpline {
    centers: Vec<(f64, f64)>,
    /// Per output coordinate: `N` kernel weights followed by the 3 affine coefficients.
    coef_x: Vec<f64>,
    coef_y: Vec<f64>,
}

impl ThinPlateSpline {
    /// Fits `f(src_i) ~= dst_i`. With `lambda = 0` the spline interpolates exactly;
    /// `lambda > 0` trades exactness for smoothness. Needs at least 3 non-collinear points.
    pub fn fit(src: &[(f64, f64)], dst: &[(f64, f64)], lambda: f64) -> Result<Self> {
        if src.len() != dst.len() {
            return Err(VtonError::SizeMismatch {
                what: "TPS point pairs".into(),
                expected: format!("{} target points", src.len()),
                actual: dst.len().to_string(),
            });
        }
        if src.len() < 3 {
            return Err(VtonError::invalid(
                "TPS points",
                format!("need at least 3 point pairs, got {}", src.len()),
            ));
        }
        if !(lambda >= 0.0 && lambda.is_finite()) {
            return Err(VtonError::invalid(
                "lambda",
                format!("must be finite and >= 0, got {lambda}"),
            ));
        }
        if src
            .iter()
            .chain(dst)
            .any(|p| !p.0.is_finite() || !p.1.is_finite())
        {
            return Err(VtonError::invalid(
                "TPS points",
                "contain NaN or infinite coordinates",
            ));
        }
        let n = src.len();
        let s = n + 3;
        let mut rhs = vec![0f64; s * 2];
        for i in 0..n {
            rhs[i * 2] = dst[i].0;
            rhs[i * 2 + 1] = dst[i].1;
        }
        let sol = solve_dense(
            system_matrix(src, lambda),
            rhs,
            s,
            2,
            "thin-plate spline fit",
        )?;
        Ok(ThinPlateSpline {
            centers: src.to_vec(),
            coef_x: (0..s).map(|i| sol[i * 2]).collect(),
            coef_y: (0..s).map(|i| sol[i * 2 + 1]).collect(),
        })
    }

    /// Evaluates the spline at `(x, y)`.
    pub fn eval(&self, x: f64, y: f64) -> (f64, f64) {
        let n = self.centers.len();
        let (mut fx, mut fy) = (
            self.coef_x[n] + self.coef_x[n + 1] * x + self.coef_x[n + 2] * y,
            self.coef_y[n] + self.coef_y[n + 1] * x + self.coef_y[n + 2] * y,
        );
        for (i, c) in self.centers.iter().enumerate() {
            let (dx, dy) = (x - c.0, y - c.1);
            let u = tps_kernel(dx * dx + dy * dy);
            fx += self.coef_x[i] * u;
            fy += self.coef_y[i] * u;
        }
        (fx, fy)
    }

    /// Evaluates at every pixel centre of a `width x height` image (row-major `(x, y)` pairs).
    pub fn eval_pixels(&self, width: usize, height: usize) -> Vec<(f64, f64)> {
        let mut out = Vec::with_capacity(width * height);
        for y in 0..height {
            for x in 0..width {
                out.push(self.eval(x as f64, y as f64));
            }
        }
        out
    }
}

/// CP-VTON's `TpsGridGen`: `theta [B, 2 N]` -> sampling grid `[B, out_h, out_w, 2]`.
///
/// The `(out_h * out_w) x (N + 3)` basis and the needed block of `L^-1` are built once on
/// the host in `f64`; `forward` is two matrix products on the device.
#[derive(Debug, Clone)]
pub struct TpsGridGen {
    pub out_h: usize,
    pub out_w: usize,
    pub grid_size: usize,
    /// Control points `(P_X, P_Y)` in CP-VTON order.
    control: Vec<(f64, f64)>,
    /// `L^-1[:, :N]`, `(N + 3) x N`, row-major.
    li_block: Vec<f64>,
    /// `[U(p, P_i) ... , 1, x, y]` per output point: `[out_h * out_w, N + 3]`.
    basis: Tensor<2>,
    /// `[N]` base X and Y of the control points, on the device.
    base: Tensor<2>,
    li: Tensor<2>,
}

impl TpsGridGen {
    /// Builds the generator for an `out_h x out_w` output grid and `grid_size^2` control points.
    pub fn new(out_h: usize, out_w: usize, grid_size: usize, device: &Device) -> Result<Self> {
        if out_h == 0 || out_w == 0 {
            return Err(VtonError::invalid(
                "TpsGridGen size",
                format!("{out_h}x{out_w} is empty"),
            ));
        }
        if grid_size < 2 {
            return Err(VtonError::invalid(
                "grid_size",
                format!("must be >= 2, got {grid_size}"),
            ));
        }
        let axis = linspace(grid_size);
        let n = grid_size * grid_size;
        // P_Y, P_X = np.meshgrid(axis, axis): P_X[i, j] = axis[i], P_Y[i, j] = axis[j].
        let control: Vec<(f64, f64)> = (0..n)
            .map(|k| (axis[k / grid_size], axis[k % grid_size]))
            .collect();
        let s = n + 3;
        let mut ident = vec![0f64; s * s];
        for i in 0..s {
            ident[i * s + i] = 1.0;
        }
        let li = solve_dense(
            system_matrix(&control, 0.0),
            ident,
            s,
            s,
            "TpsGridGen L inverse",
        )?;
        let li_block: Vec<f64> = (0..s)
            .flat_map(|r| (0..n).map(move |c| (r, c)))
            .map(|(r, c)| li[r * s + c])
            .collect();

        let (xs, ys) = (linspace(out_w), linspace(out_h));
        let mut basis = Vec::with_capacity(out_h * out_w * s);
        for &y in &ys {
            for &x in &xs {
                for c in &control {
                    let (dx, dy) = (x - c.0, y - c.1);
                    basis.push(tps_kernel(dx * dx + dy * dy) as f32);
                }
                basis.extend_from_slice(&[1.0, x as f32, y as f32]);
            }
        }
        let basis = Tensor::from_data(TensorData::new(basis, [out_h * out_w, s]), device);
        let mut base = Vec::with_capacity(2 * n);
        base.extend(control.iter().map(|c| c.0 as f32));
        base.extend(control.iter().map(|c| c.1 as f32));
        let base = Tensor::from_data(TensorData::new(base, [1, 2 * n]), device);
        let li_t = Tensor::from_data(
            TensorData::new(
                li_block.iter().map(|&v| v as f32).collect::<Vec<_>>(),
                [s, n],
            ),
            device,
        );
        Ok(TpsGridGen {
            out_h,
            out_w,
            grid_size,
            control,
            li_block,
            basis,
            base,
            li: li_t,
        })
    }

    /// Number of control points `N = grid_size^2`.
    pub fn num_points(&self) -> usize {
        self.grid_size * self.grid_size
    }

    /// Control points `(P_X_base, P_Y_base)`.
    pub fn control_points(&self) -> &[(f64, f64)] {
        &self.control
    }

    /// `L^-1[:, :N]` as `(N + 3) x N` row-major `f64`.
    pub fn li_block(&self) -> &[f64] {
        &self.li_block
    }

    /// `theta [B, 2N]` -> grid `[B, out_h, out_w, 2]`.
    pub fn forward(&self, theta: Tensor<2>) -> Result<Tensor<4>> {
        let [b, t] = theta.dims();
        let n = self.num_points();
        if t != 2 * n {
            return Err(VtonError::Shape {
                what: "theta".into(),
                expected: format!("[B, {}] for grid_size {}", 2 * n, self.grid_size),
                actual: vec![b, t],
            });
        }
        // Q = theta + base, split into X and Y: [B, N] each -> columns [N, 2B].
        let q = theta + self.base.clone();
        let qx = q.clone().slice([0..b, 0..n]);
        let qy = q.slice([0..b, n..2 * n]);
        let q_cols = Tensor::cat(vec![qx, qy], 0).transpose(); // [N, 2B]
        let coef = self.li.clone().matmul(q_cols); // [N+3, 2B]
        let pts = self.basis.clone().matmul(coef); // [HW, 2B]
        let (h, w) = (self.out_h, self.out_w);
        // [HW, 2, B] -> [B, H, W, 2]
        let grid = pts
            .reshape([h * w, 2, b])
            .permute([2, 0, 1])
            .reshape([b, h, w, 2]);
        Ok(grid)
    }
}

fn linspace(n: usize) -> Vec<f64> {
    if n == 1 {
        return vec![-1.0];
    }
    (0..n)
        .map(|i| -1.0 + 2.0 * i as f64 / (n - 1) as f64)
        .collect()
}
