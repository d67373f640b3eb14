//! FID as pytorch-fid 0.3.0 computes it: pool3 features of its InceptionV3
//! ([`FidInceptionV3`]), their mean and `np.cov` (ddof 1) in float64, and the Fréchet
//! distance `|mu1 - mu2|^2 + tr S1 + tr S2 - 2 tr sqrt(S1 S2)`.
//!
//! The statistics are accumulated batch by batch ([`FeatureStatistics::update`], Chan's
//! pairwise merge of means and centred co-moments), so a set of any size needs only
//! `d + d^2` float64 values, never its images or its features.
//!
//! `tr sqrt(S1 S2)`: pytorch-fid takes scipy's `sqrtm` of the non-symmetric product and
//! keeps the real part of its trace. For covariance matrices `S1 S2` has the eigenvalues
//! of the symmetric `R S2 R^T` for any factor `S1 = R^T R`, which are real and
//! non-negative, so vton factors `S1` by a pivoted Cholesky (which also finds its rank:
//! fewer images than dimensions + 1 give a singular `S1`) and sums the square roots of
//! those eigenvalues, in float64. That is the trace of the principal square root that
//! `sqrtm` approximates; rounding below zero is clamped to 0 and the most negative
//! eigenvalue is reported. pytorch-fid's 1e-6 I offset is applied on the same
//! condition as there, a non-finite result.

use super::linalg::{matmul, matmul_nt, matmul_tn, pivoted_cholesky, symmetric_eigen};
use crate::error::{Result, VtonError};
use crate::models::inception::FidInceptionV3;
use burn::tensor::Tensor;

/// Mean and covariance of a feature set, accumulated in float64.
#[derive(Debug, Clone, PartialEq)]
pub struct FeatureStatistics {
    dim: usize,
    count: usize,
    mean: Vec<f64>,
    /// Sum over samples of `(f - mean)(f - mean)^T`, row-major `dim x dim`.
    comoment: Vec<f64>,
}

impl FeatureStatistics {
    /// Empty statistics of `dim`-wide features.
    pub fn new(dim: usize) -> Self {
        Self {
            dim,
            count: 0,
            mean: vec![0.0; dim],
            comoment: vec![0.0; dim * dim],
        }
    }

    /// From a given mean and covariance (ddof 1) of `count` samples, e.g. statistics
    /// saved by pytorch-fid (`mu`, `sigma`).
    pub fn from_mean_cov(mean: Vec<f64>, cov: Vec<f64>, count: usize) -> Result<Self> {
        let d = mean.len();
        if cov.len() != d * d {
            return Err(VtonError::Shape {
                what: "covariance".into(),
                expected: format!("{d} x {d} for a {d}-wide mean"),
                actual: vec![cov.len()],
            });
        }
        let scale = count.saturating_sub(1) as f64;
        Ok(Self {
            dim: d,
            count,
            mean,
            comoment: cov.into_iter().map(|v| v * scale).collect(),
        })
    }

    /// Adds `n` samples given row-major (`n x dim`).
    pub fn update(&mut self, features: &[f32]) -> Result<()> {
        let d = self.dim;
        if d == 0 || features.len() % d != 0 {
            return Err(VtonError::Shape {
                what: "features".into(),
                expected: format!("n x {d}"),
                actual: vec![features.len()],
            });
        }
        let n = features.len() / d;
        if n == 0 {
            return Ok(());
        }
        if features.iter().any(|v| !v.is_finite()) {
            return Err(VtonError::Numerical {
                operation: "FID statistics".into(),
                message: "a feature is NaN or infinite".into(),
            });
        }
        let mut bmean = vec![0f64; d];
        for row in features.chunks_exact(d) {
            for (m, &v) in bmean.iter_mut().zip(row) {
                *m += v as f64;
            }
        }
        for m in bmean.iter_mut() {
            *m /= n as f64;
        }
        let centred: Vec<f64> = features
            .chunks_exact(d)
            .flat_map(|row| row.iter().zip(&bmean).map(|(&v, m)| v as f64 - m))
            .collect();
        let bm2 = matmul_tn(&centred, &centred, n, d, d);
        let (na, nb) = (self.count as f64, n as f64);
        let total = na + nb;
        let delta: Vec<f64> = bmean.iter().zip(&self.mean).map(|(b, a)| b - a).collect();
        let f = na * nb / total;
        for i in 0..d {
            for j in 0..d {
                self.comoment[i * d + j] += bm2[i * d + j] + f * delta[i] * delta[j];
            }
        }
        for (m, dl) in self.mean.iter_mut().zip(&delta) {
            *m += dl * nb / total;
        }
        self.count += n;
        Ok(())
    }

    /// Merges another set's statistics into this one.
    pub fn merge(&mut self, other: &FeatureStatistics) -> Result<()> {
        if other.dim != self.dim {
            return Err(VtonError::SizeMismatch {
                what: "feature statistics".into(),
                expected: format!("{}-wide", self.dim),
                actual: format!("{}-wide", other.dim),
            });
        }
        if other.count == 0 {
            return Ok(());
        }
        let (na, nb) = (self.count as f64, other.count as f64);
        let total = na + nb;
        let d = self.dim;
        let delta: Vec<f64> = other
            .mean
            .iter()
            .zip(&self.mean)
            .map(|(b, a)| b - a)
            .collect();
        let f = na * nb / total;
        for i in 0..d {
            for j in 0..d {
                self.comoment[i * d + j] += other.comoment[i * d + j] + f * delta[i] * delta[j];
            }
        }
        for (m, dl) in self.mean.iter_mut().zip(&delta) {
            *m += dl * nb / total;
        }
        self.count += other.count;
        Ok(())
    }

    pub fn dim(&self) -> usize {
        self.dim
    }
    pub fn count(&self) -> usize {
        self.count
    }
    /// `np.mean(features, axis=0)`.
    pub fn mean(&self) -> &[f64] {
        &self.mean
    }
    /// `np.cov(features, rowvar=False)` (ddof 1); needs at least two samples.
    pub fn covariance(&self) -> Result<Vec<f64>> {
        if self.count < 2 {
            return Err(VtonError::invalid(
                "features",
                format!("a covariance needs at least 2 images, got {}", self.count),
            ));
        }
        let s = 1.0 / (self.count - 1) as f64;
        Ok(self.comoment.iter().map(|v| v * s).collect())
    }
}

/// The Fréchet distance and its parts.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct FrechetDistance {
    /// The distance (FID when the statistics are Inception pool3 features).
    pub value: f64,
    /// `|mu1 - mu2|^2`.
    pub mean_term: f64,
    pub trace1: f64,
    pub trace2: f64,
    /// `tr sqrt(S1 S2)`.
    pub trace_sqrt: f64,
    /// The most negative eigenvalue of `S1^(1/2) S2 S1^(1/2)` before clamping (0 when
    /// none was negative): rounding of singular statistics.
    pub min_eigenvalue: f64,
    /// Whether pytorch-fid's `1e-6 I` offset was applied (only after a non-finite result).
    pub offset_applied: bool,
}

/// The Fréchet distance between two Gaussians given by mean and covariance (row-major
/// `d x d`): pytorch-fid's `calculate_frechet_distance`.
pub fn frechet_distance(
    mu1: &[f64],
    sigma1: &[f64],
    mu2: &[f64],
    sigma2: &[f64],
) -> Result<FrechetDistance> {
    let d = mu1.len();
    if mu2.len() != d || sigma1.len() != d * d || sigma2.len() != d * d {
        return Err(VtonError::SizeMismatch {
            what: "Fréchet distance statistics".into(),
            expected: format!("two means of {d} and two {d} x {d} covariances"),
            actual: format!(
                "means of {} and {}, covariances of {} and {} values",
                d,
                mu2.len(),
                sigma1.len(),
                sigma2.len()
            ),
        });
    }
    if d == 0 {
        return Err(VtonError::invalid(
            "statistics",
            "zero-dimensional features",
        ));
    }
    for (what, v) in [
        ("mu1", mu1),
        ("mu2", mu2),
        ("sigma1", sigma1),
        ("sigma2", sigma2),
    ] {
        if v.iter().any(|x| !x.is_finite()) {
            return Err(VtonError::Numerical {
                operation: "Fréchet distance".into(),
                message: format!("{what} has NaN or infinite entries"),
            });
        }
    }
    let mean_term: f64 = mu1.iter().zip(mu2).map(|(a, b)| (a - b) * (a - b)).sum();
    let trace = |s: &[f64]| (0..d).map(|i| s[i * d + i]).sum::<f64>();
    let (trace1, trace2) = (trace(sigma1), trace(sigma2));
    let mut offset_applied = false;
    let (mut tr, mut min_ev) = trace_sqrt_product(sigma1, sigma2, d)?;
    if !tr.is_finite() {
        // pytorch-fid: "fid calculation produces singular product; adding 1e-6 to diagonal"
        offset_applied = true;
        let add = |s: &[f64]| {
            let mut s = s.to_vec();
            for i in 0..d {
                s[i * d + i] += 1e-6;
            }
            s
        };
        (tr, min_ev) = trace_sqrt_product(&add(sigma1), &add(sigma2), d)?;
    }
    Ok(FrechetDistance {
        value: mean_term + trace1 + trace2 - 2.0 * tr,
        mean_term,
        trace1,
        trace2,
        trace_sqrt: tr,
        min_eigenvalue: min_ev,
        offset_applied,
    })
}

/// `tr sqrt(S1 S2)`: with `S1 = R^T R` (pivoted Cholesky, `R` of the numerical rank),
/// `S1 S2` has the eigenvalues of the symmetric `R S2 R^T`; the sum of their square roots.
/// Also the most negative eigenvalue met (0 if none).
fn trace_sqrt_product(s1: &[f64], s2: &[f64], d: usize) -> Result<(f64, f64)> {
    let (r_rows, rank) = pivoted_cholesky(s1, d)?;
    if rank == 0 {
        return Ok((0.0, 0.0));
    }
    let rs2 = matmul(&r_rows, s2, rank, d, d);
    let m = matmul_nt(&rs2, &r_rows, rank, d, rank);
    let e = symmetric_eigen(&m, rank, false)?;
    let min_ev = e.values.first().copied().unwrap_or(0.0).min(0.0);
    let tr = e.values.iter().map(|&l| l.max(0.0).sqrt()).sum();
    Ok((tr, min_ev))
}

/// FID between a real and a generated set, as torchmetrics' `FrechetInceptionDistance`
/// is used: `update(images, real)` any number of times, then [`compute`](Fid::compute).
/// Images are `N x 3 x H x W` float in `[0, 1]` (resized to 299 inside the network as
/// pytorch-fid does).
pub struct Fid {
    inception: FidInceptionV3,
    real: FeatureStatistics,
    fake: FeatureStatistics,
}

impl Fid {
    /// With pytorch-fid's network from `pt_inception-2015-12-05-*.pth` (or any file with
    /// its keys).
    pub fn from_checkpoint(
        path: impl AsRef<std::path::Path>,
        device: &burn::tensor::Device,
    ) -> Result<Self> {
        Ok(Self::new(FidInceptionV3::from_checkpoint(path, device)?))
    }

    pub fn new(inception: FidInceptionV3) -> Self {
        let d = inception.feature_dim();
        Self {
            inception,
            real: FeatureStatistics::new(d),
            fake: FeatureStatistics::new(d),
        }
    }

    pub fn inception(&self) -> &FidInceptionV3 {
        &self.inception
    }

    /// Extracts the features of a batch and adds them to the real or the generated set.
    pub fn update(&mut self, images: Tensor<4>, real: bool) -> Result<()> {
        let f = features_vec(&self.inception, images)?;
        self.update_features(&f, real)
    }

    /// Adds features computed elsewhere (`n x dim`, row-major).
    pub fn update_features(&mut self, features: &[f32], real: bool) -> Result<()> {
        if real { &mut self.real } else { &mut self.fake }.update(features)
    }

    pub fn real_statistics(&self) -> &FeatureStatistics {
        &self.real
    }
    pub fn fake_statistics(&self) -> &FeatureStatistics {
        &self.fake
    }

    /// The FID between the sets seen so far (each needs at least 2 images).
    pub fn compute(&self) -> Result<FrechetDistance> {
        let (c1, c2) = (self.real.covariance()?, self.fake.covariance()?);
        frechet_distance(self.real.mean(), &c1, self.fake.mean(), &c2)
    }

    /// Forgets both sets.
    pub fn reset(&mut self) {
        let d = self.inception.feature_dim();
        self.real = FeatureStatistics::new(d);
        self.fake = FeatureStatistics::new(d);
    }
}

/// The network's features of a batch as a row-major `n x dim` vector.
pub(crate) fn features_vec(inception: &FidInceptionV3, images: Tensor<4>) -> Result<Vec<f32>> {
    let f = inception.features(images)?;
    crate::io::image::tensor_to_vec(f)
}
