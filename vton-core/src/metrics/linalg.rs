//! The float64 linear algebra FID needs: matrix products (through `gemm`, the kernels
//! burn's CPU backend uses) and the eigen-decomposition of a symmetric matrix
//! (Householder reduction to tridiagonal form, then implicit QL iterations with
//! Wilkinson shifts). Matrices are row-major `n x n` slices.

use crate::error::{Result, VtonError};

/// `C = A B` for row-major `A` (`m x k`) and `B` (`k x n`).
pub fn matmul(a: &[f64], b: &[f64], m: usize, k: usize, n: usize) -> Vec<f64> {
    assert_eq!(a.len(), m * k);
    gemm_rowmajor_b(a, 1, k as isize, b, m, k, n)
}

/// `C = A^T B` for row-major `A` (`k x m`) and `B` (`k x n`).
pub fn matmul_tn(a: &[f64], b: &[f64], k: usize, m: usize, n: usize) -> Vec<f64> {
    assert_eq!(a.len(), k * m);
    // A^T is A read with column stride m and row stride 1
    gemm_rowmajor_b(a, m as isize, 1, b, m, k, n)
}

/// `C = A B^T` for row-major `A` (`m x k`) and `B` (`n x k`).
pub fn matmul_nt(a: &[f64], b: &[f64], m: usize, k: usize, n: usize) -> Vec<f64> {
    assert_eq!(a.len(), m * k);
    assert_eq!(b.len(), n * k);
    // C^T = B A^T: compute it as (n x k)(k x m) with A^T read through strides, then
    // transpose the small result.
    let ct = gemm_rowmajor_b(b, 1, k as isize, &transpose(a, m, k), n, k, m);
    transpose(&ct, n, m)
}

/// The transpose of a row-major `rows x cols` matrix.
pub fn transpose(a: &[f64], rows: usize, cols: usize) -> Vec<f64> {
    let mut t = vec![0f64; rows * cols];
    for i in 0..rows {
        for j in 0..cols {
            t[j * rows + i] = a[i * cols + j];
        }
    }
    t
}

/// Pivoted Cholesky of a symmetric positive semi-definite `n x n` matrix: rows `l` (`r x n`)
/// with `A ~ l^T l`, stopping when every remaining pivot is below
/// `n * eps * max(diag(A))` (so `r` is the numerical rank). Left-looking: each new row is
/// one column of A minus the earlier rows' contributions.
pub fn pivoted_cholesky(a: &[f64], n: usize) -> Result<(Vec<f64>, usize)> {
    if a.len() != n * n {
        return Err(VtonError::Shape {
            what: "symmetric matrix".into(),
            expected: format!("{n} x {n}"),
            actual: vec![a.len()],
        });
    }
    let mut diag: Vec<f64> = (0..n).map(|i| a[i * n + i]).collect();
    let max_diag = diag.iter().cloned().fold(0f64, f64::max);
    let tol = n as f64 * f64::EPSILON * max_diag;
    let mut used = vec![false; n];
    let mut rows: Vec<f64> = Vec::new();
    let mut r = 0;
    while r < n {
        let (mut p, mut best) = (usize::MAX, tol);
        for i in 0..n {
            if !used[i] && diag[i] > best {
                best = diag[i];
                p = i;
            }
        }
        if p == usize::MAX {
            break;
        }
        let pivot = diag[p].sqrt();
        let mut row: Vec<f64> = a[p * n..(p + 1) * n].to_vec();
        for t in 0..r {
            let prev = &rows[t * n..(t + 1) * n];
            let f = prev[p];
            if f != 0.0 {
                for (x, y) in row.iter_mut().zip(prev) {
                    *x -= f * y;
                }
            }
        }
        used[p] = true;
        for i in 0..n {
            if used[i] && i != p {
                row[i] = 0.0;
            } else {
                row[i] /= pivot;
            }
        }
        row[p] = pivot;
        for i in 0..n {
            if !used[i] {
                diag[i] -= row[i] * row[i];
            }
        }
        rows.extend_from_slice(&row);
        r += 1;
    }
    Ok((rows, r))
}

/// `m x n` = (`m x k` view of `a` with the given strides) times row-major `b` (`k x n`).
fn gemm_rowmajor_b(
    a: &[f64],
    a_cs: isize,
    a_rs: isize,
    b: &[f64],
    m: usize,
    k: usize,
    n: usize,
) -> Vec<f64> {
    assert_eq!(b.len(), k * n);
    let mut c = vec![0f64; m * n];
    if m == 0 || n == 0 || k == 0 {
        return c;
    }
    // SAFETY: the callers check that `a` holds m * k values and `b` k * n; with the strides
    // given every read stays inside them, `c` holds m * n values and is not aliased.
    unsafe {
        gemm::gemm(
            m,
            n,
            k,
            c.as_mut_ptr(),
            1,
            n as isize,
            false,
            a.as_ptr(),
            a_cs,
            a_rs,
            b.as_ptr(),
            1,
            n as isize,
            0.0,
            1.0,
            false,
            false,
            false,
            gemm::Parallelism::Rayon(0),
        );
    }
    c
}

/// Eigenvalues (ascending) and, when asked, eigenvectors of a symmetric matrix.
/// `vectors[i * n + j]` is component `i` of eigenvector `j` (columns, as numpy's `eigh`).
pub struct SymmetricEigen {
    pub values: Vec<f64>,
    pub vectors: Option<Vec<f64>>,
}

/// Eigen-decomposition of the symmetric `n x n` matrix `a` (only its values are read as
/// given; it is symmetrised first to remove rounding asymmetry).
pub fn symmetric_eigen(a: &[f64], n: usize, want_vectors: bool) -> Result<SymmetricEigen> {
    if a.len() != n * n {
        return Err(VtonError::Shape {
            what: "symmetric matrix".into(),
            expected: format!("{n} x {n}"),
            actual: vec![a.len()],
        });
    }
    if a.iter().any(|v| !v.is_finite()) {
        return Err(VtonError::Numerical {
            operation: "symmetric eigen-decomposition".into(),
            message: "the matrix has non-finite entries".into(),
        });
    }
    if n == 0 {
        return Ok(SymmetricEigen {
            values: vec![],
            vectors: want_vectors.then(Vec::new),
        });
    }
    let mut m = vec![0f64; n * n];
    for i in 0..n {
        for j in 0..n {
            m[i * n + j] = 0.5 * (a[i * n + j] + a[j * n + i]);
        }
    }
    let (d, e, q) = tridiagonalize(m, n, want_vectors);
    let (values, vectors) = tridiagonal_ql(d, e, q, n)?;
    Ok(SymmetricEigen { values, vectors })
}

/// Householder reduction `A = Q T Q^T`. Returns the diagonal, the sub-diagonal
/// (`e[i]` couples `i` and `i + 1`) and, if wanted, `Q^T` (row-major: row `i` of the
/// result is column `i` of Q), which keeps the later rotations on contiguous rows.
fn tridiagonalize(mut a: Vec<f64>, n: usize, want: bool) -> (Vec<f64>, Vec<f64>, Option<Vec<f64>>) {
    let mut reflectors: Vec<(usize, Vec<f64>)> = Vec::new();
    let mut d = vec![0f64; n];
    let mut e = vec![0f64; n.saturating_sub(1)];
    for k in 0..n.saturating_sub(2) {
        let m = n - k - 1;
        // x = A[k+1.., k]
        let x: Vec<f64> = (0..m).map(|i| a[(k + 1 + i) * n + k]).collect();
        let norm = x.iter().map(|v| v * v).sum::<f64>().sqrt();
        if norm == 0.0 {
            e[k] = 0.0;
            continue;
        }
        let alpha = if x[0] > 0.0 { -norm } else { norm };
        let mut v = x;
        v[0] -= alpha;
        let vn = v.iter().map(|t| t * t).sum::<f64>().sqrt();
        if vn == 0.0 {
            continue;
        }
        for t in v.iter_mut() {
            *t /= vn;
        }
        // p = A_sub v, K = v.p, q = p - K v, A_sub -= 2 (v q^T + q v^T)
        let off = k + 1;
        let p: Vec<f64> = {
            use rayon::prelude::*;
            (0..m)
                .into_par_iter()
                .map(|i| {
                    let row = &a[(off + i) * n + off..(off + i) * n + n];
                    row.iter().zip(&v).map(|(r, s)| r * s).sum()
                })
                .collect()
        };
        let kk: f64 = p.iter().zip(&v).map(|(a, b)| a * b).sum();
        let q: Vec<f64> = p.iter().zip(&v).map(|(pi, vi)| pi - kk * vi).collect();
        {
            use rayon::prelude::*;
            a.par_chunks_mut(n)
                .skip(off)
                .enumerate()
                .for_each(|(i, row)| {
                    let (vi, qi) = (v[i], q[i]);
                    for (j, r) in row[off..].iter_mut().enumerate() {
                        *r -= 2.0 * (vi * q[j] + qi * v[j]);
                    }
                });
        }
        for i in 0..m {
            a[(off + i) * n + k] = 0.0;
            a[k * n + off + i] = 0.0;
        }
        a[off * n + k] = alpha;
        a[k * n + off] = alpha;
        if want {
            reflectors.push((off, v));
        }
    }
    for i in 0..n {
        d[i] = a[i * n + i];
    }
    for i in 0..n.saturating_sub(1) {
        e[i] = a[(i + 1) * n + i];
    }
    let qt = want.then(|| {
        // Q = H_0 H_1 ... H_last, so Q^T = H_last ... H_0 (each H is symmetric): start
        // from I and left-multiply H_0, then H_1, ...
        let mut qt = vec![0f64; n * n];
        for i in 0..n {
            qt[i * n + i] = 1.0;
        }
        for (off, v) in &reflectors {
            // rows off.. of qt: R -= 2 v (v^T R)
            let m = v.len();
            let mut w = vec![0f64; n];
            for i in 0..m {
                let row = &qt[(off + i) * n..(off + i + 1) * n];
                let vi = v[i];
                for (wj, r) in w.iter_mut().zip(row) {
                    *wj += vi * r;
                }
            }
            use rayon::prelude::*;
            qt.par_chunks_mut(n)
                .skip(*off)
                .take(m)
                .enumerate()
                .for_each(|(i, row)| {
                    let f = 2.0 * v[i];
                    for (r, wj) in row.iter_mut().zip(&w) {
                        *r -= f * wj;
                    }
                });
        }
        qt
    });
    (d, e, qt)
}

/// Implicit QL on the tridiagonal (d, e); `qt` (rows = basis vectors) is rotated along.
/// Returns ascending eigenvalues and eigenvectors as columns.
fn tridiagonal_ql(
    mut d: Vec<f64>,
    e_in: Vec<f64>,
    mut qt: Option<Vec<f64>>,
    n: usize,
) -> Result<(Vec<f64>, Option<Vec<f64>>)> {
    let mut e = vec![0f64; n];
    e[..n - 1].copy_from_slice(&e_in);
    // Deflation: an off-diagonal element is negligible relative to its neighbours or to
    // the matrix as a whole (the latter lets blocks of (near-)zero eigenvalues, as in the
    // covariance of fewer samples than dimensions, split off).
    let anorm = (0..n).map(|i| d[i].abs() + e[i].abs()).fold(0f64, f64::max);
    let floor = f64::EPSILON * anorm;
    for l in 0..n {
        let mut iter = 0;
        loop {
            // find a negligible off-diagonal element
            let mut m = l;
            while m + 1 < n {
                let dd = d[m].abs() + d[m + 1].abs();
                if e[m].abs() <= f64::EPSILON * dd || e[m].abs() <= floor {
                    break;
                }
                m += 1;
            }
            if m == l {
                break;
            }
            iter += 1;
            if iter > 200 {
                return Err(VtonError::Numerical {
                    operation: "symmetric eigen-decomposition".into(),
                    message: "the QL iteration did not converge".into(),
                });
            }
            // Wilkinson-style shift from the leading 2x2 block
            let mut g = (d[l + 1] - d[l]) / (2.0 * e[l]);
            let mut r = g.hypot(1.0);
            g = d[m] - d[l] + e[l] / (g + r.copysign(g));
            let (mut s, mut c, mut p) = (1.0f64, 1.0f64, 0.0f64);
            let mut i = m;
            let mut early = false;
            while i > l {
                i -= 1;
                let f = s * e[i];
                let b = c * e[i];
                r = f.hypot(g);
                e[i + 1] = r;
                if r == 0.0 {
                    d[i + 1] -= p;
                    e[m] = 0.0;
                    early = true;
                    break;
                }
                s = f / r;
                c = g / r;
                g = d[i + 1] - p;
                let t = (d[i] - g) * s + 2.0 * c * b;
                p = s * t;
                d[i + 1] = g + p;
                g = c * t - b;
                if let Some(q) = qt.as_mut() {
                    // rotate basis rows i and i+1
                    let (head, tail) = q.split_at_mut((i + 1) * n);
                    let ri = &mut head[i * n..];
                    let ri1 = &mut tail[..n];
                    for (a, b2) in ri.iter_mut().zip(ri1.iter_mut()) {
                        let fa = *b2;
                        *b2 = s * *a + c * fa;
                        *a = c * *a - s * fa;
                    }
                }
            }
            if early {
                continue;
            }
            d[l] -= p;
            e[l] = g;
            e[m] = 0.0;
        }
    }
    // sort ascending
    let mut order: Vec<usize> = (0..n).collect();
    order.sort_by(|&a, &b| d[a].total_cmp(&d[b]));
    let values: Vec<f64> = order.iter().map(|&i| d[i]).collect();
    let vectors = qt.map(|q| {
        let mut v = vec![0f64; n * n];
        for (j, &src) in order.iter().enumerate() {
            for i in 0..n {
                v[i * n + j] = q[src * n + i];
            }
        }
        v
    });
    Ok((values, vectors))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn random_sym(n: usize, seed: u64) -> Vec<f64> {
        let mut s = seed;
        let mut next = || {
            s = s
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            ((s >> 11) as f64 / (1u64 << 53) as f64) - 0.5
        };
        let b: Vec<f64> = (0..n * n).map(|_| next()).collect();
        let mut a = vec![0f64; n * n];
        for i in 0..n {
            for j in 0..n {
                a[i * n + j] = b[i * n + j] + b[j * n + i];
            }
        }
        a
    }

    #[test]
    fn eigen_reconstructs_the_matrix() {
        for &n in &[1usize, 2, 3, 7, 40] {
            let a = random_sym(n, n as u64 + 3);
            let eig = symmetric_eigen(&a, n, true).unwrap();
            let v = eig.vectors.unwrap();
            // A V = V diag(values), and V^T V = I
            let av = matmul(&a, &v, n, n, n);
            let mut err = 0f64;
            for i in 0..n {
                for j in 0..n {
                    err = err.max((av[i * n + j] - v[i * n + j] * eig.values[j]).abs());
                }
            }
            let vtv = matmul_tn(&v, &v, n, n, n);
            let mut orth = 0f64;
            for i in 0..n {
                for j in 0..n {
                    let want = if i == j { 1.0 } else { 0.0 };
                    orth = orth.max((vtv[i * n + j] - want).abs());
                }
            }
            assert!(err < 1e-12 * n as f64 * 10.0, "n={n}: residual {err}");
            assert!(
                orth < 1e-12 * n as f64 * 10.0,
                "n={n}: orthogonality {orth}"
            );
            assert!(eig.values.windows(2).all(|w| w[0] <= w[1]));
            // values alone agree
            let only = symmetric_eigen(&a, n, false).unwrap();
            for (x, y) in only.values.iter().zip(&eig.values) {
                assert!((x - y).abs() < 1e-12 * (1.0 + y.abs()) * n as f64);
            }
        }
    }

    #[test]
    fn pivoted_cholesky_finds_the_rank_and_reconstructs() {
        // G^T G of a 5 x 9 G: rank 5 in 9 dimensions
        let g = random_sym(9, 11)[..45].to_vec();
        let a = matmul_tn(&g, &g, 5, 9, 9);
        let (l, r) = pivoted_cholesky(&a, 9).unwrap();
        assert_eq!(r, 5);
        let back = matmul_tn(&l, &l, r, 9, 9);
        let err = back
            .iter()
            .zip(&a)
            .map(|(x, y)| (x - y).abs())
            .fold(0f64, f64::max);
        assert!(err < 1e-12, "{err}");
        // and A B^T through matmul_nt equals the explicit product
        let b = random_sym(9, 5)[..27].to_vec(); // 3 x 9
        let nt = matmul_nt(&g, &b, 5, 9, 3);
        let explicit = matmul(&g, &transpose(&b, 3, 9), 5, 9, 3);
        assert!(nt.iter().zip(&explicit).all(|(x, y)| (x - y).abs() < 1e-13));
        assert!(pivoted_cholesky(&a, 8).is_err());
    }

    #[test]
    fn eigen_of_a_diagonal_and_a_rank_deficient_matrix() {
        let a = vec![3.0, 0.0, 0.0, 0.0, -1.0, 0.0, 0.0, 0.0, 2.0];
        let e = symmetric_eigen(&a, 3, false).unwrap();
        assert_eq!(e.values, vec![-1.0, 2.0, 3.0]);
        // x x^T has eigenvalues 0, 0, |x|^2
        let x = [1.0, 2.0, 2.0];
        let a: Vec<f64> = (0..9).map(|k| x[k / 3] * x[k % 3]).collect();
        let e = symmetric_eigen(&a, 3, false).unwrap();
        assert!((e.values[2] - 9.0).abs() < 1e-12 && e.values[0].abs() < 1e-12);
        assert!(symmetric_eigen(&[f64::NAN], 1, false).is_err());
    }
}
