//! KID as torch-fidelity 0.4.0's `kid_features_to_metric` computes it: the unbiased MMD²
//! with the cubic polynomial kernel `k(x, y) = (x.y / d + 1)^3`, averaged over subsets,
//! with `np.std` (ddof 0) over them.
//!
//! The subsets are the ones torch-fidelity draws: `np.random.RandomState(seed)` (2020 by
//! default), and for each subset `rng.choice(n1, size, replace=False)` for the first set,
//! then the same for the second. [`NumpyRandomState`] reproduces numpy's legacy MT19937
//! stream and `choice` without replacement (`permutation(n)[:size]`, a Fisher-Yates
//! shuffle with masked rejection sampling), so the default draws equal torch-fidelity's;
//! explicit subset indices can be given instead.
//!
//! KID needs the features themselves (every subset samples the whole set): [`Kid`] keeps
//! them, `d` float32 values per image (8 KB for the 2048-wide Inception), never images.
//! Arithmetic is float64 (torch-fidelity works in the features' dtype, float32).

use burn::tensor::Tensor;

use super::fid::features_vec;
use crate::error::{Result, VtonError};
use crate::models::inception::FidInceptionV3;

/// numpy's legacy `RandomState` (MT19937 seeded by `init_genrand`), as far as
/// torch-fidelity's subset draws need it.
#[derive(Clone)]
pub struct NumpyRandomState {
    mt: [u32; 624],
    pos: usize,
}

impl NumpyRandomState {
    /// `np.random.RandomState(seed)` for an integer seed.
    pub fn new(seed: u32) -> Self {
        let mut mt = [0u32; 624];
        mt[0] = seed;
        for i in 1..624 {
            mt[i] = 1812433253u32
                .wrapping_mul(mt[i - 1] ^ (mt[i - 1] >> 30))
                .wrapping_add(i as u32);
        }
        Self { mt, pos: 624 }
    }

    fn refill(&mut self) {
        const UPPER: u32 = 0x8000_0000;
        const LOWER: u32 = 0x7fff_ffff;
        for k in 0..624 {
            let y = (self.mt[k] & UPPER) | (self.mt[(k + 1) % 624] & LOWER);
            let mut v = self.mt[(k + 397) % 624] ^ (y >> 1);
            if y & 1 == 1 {
                v ^= 0x9908_b0df;
            }
            self.mt[k] = v;
        }
        self.pos = 0;
    }

    /// The next 32-bit output (`genrand_int32`).
    pub fn next_u32(&mut self) -> u32 {
        if self.pos >= 624 {
            self.refill();
        }
        let mut y = self.mt[self.pos];
        self.pos += 1;
        y ^= y >> 11;
        y ^= (y << 7) & 0x9d2c_5680;
        y ^= (y << 15) & 0xefc6_0000;
        y ^= y >> 18;
        y
    }

    /// A uniform integer in `0..=max` by masked rejection (numpy's `random_interval`).
    pub fn interval(&mut self, max: u32) -> u32 {
        if max == 0 {
            return 0;
        }
        let mut mask = max;
        mask |= mask >> 1;
        mask |= mask >> 2;
        mask |= mask >> 4;
        mask |= mask >> 8;
        mask |= mask >> 16;
        loop {
            let v = self.next_u32() & mask;
            if v <= max {
                return v;
            }
        }
    }

    /// `rng.permutation(n)`.
    pub fn permutation(&mut self, n: usize) -> Vec<usize> {
        let mut v: Vec<usize> = (0..n).collect();
        for i in (1..n).rev() {
            let j = self.interval(i as u32) as usize;
            v.swap(i, j);
        }
        v
    }

    /// `rng.choice(n, size, replace=False)`.
    pub fn choice_without_replacement(&mut self, n: usize, size: usize) -> Result<Vec<usize>> {
        if size > n {
            return Err(VtonError::invalid(
                "subset_size",
                format!("cannot take {size} samples without replacement from {n}"),
            ));
        }
        let mut p = self.permutation(n);
        p.truncate(size);
        Ok(p)
    }
}

/// KID settings (torch-fidelity's defaults: 100 subsets of 1000, seed 2020).
#[derive(Debug, Clone, PartialEq)]
pub struct KidOptions {
    pub subsets: usize,
    pub subset_size: usize,
    pub seed: u32,
    /// Explicit subsets: one `(indices into set 1, indices into set 2)` per subset; when
    /// given, `subsets`, `subset_size` and `seed` are not used.
    pub subset_indices: Option<Vec<(Vec<usize>, Vec<usize>)>>,
    /// Polynomial kernel degree, gamma (None = 1 / d) and coef0.
    pub degree: i32,
    pub gamma: Option<f64>,
    pub coef0: f64,
}

impl Default for KidOptions {
    fn default() -> Self {
        Self {
            subsets: 100,
            subset_size: 1000,
            seed: 2020,
            subset_indices: None,
            degree: 3,
            gamma: None,
            coef0: 1.0,
        }
    }
}

/// KID's result: the mean and `np.std` of the per-subset MMD².
#[derive(Debug, Clone, PartialEq)]
pub struct KidResult {
    pub mean: f64,
    pub std: f64,
    pub per_subset: Vec<f64>,
}

/// The subsets torch-fidelity draws for sets of `n1` and `n2` features.
pub fn torch_fidelity_subsets(
    n1: usize,
    n2: usize,
    opts: &KidOptions,
) -> Result<Vec<(Vec<usize>, Vec<usize>)>> {
    if opts.subsets == 0 || opts.subset_size < 2 {
        return Err(VtonError::invalid(
            "kid subsets",
            "need at least one subset of at least 2 samples",
        ));
    }
    if opts.subset_size > n1 || opts.subset_size > n2 {
        return Err(VtonError::invalid(
            "subset_size",
            format!(
                "{} is larger than a set ({n1} real, {n2} generated features); torch-fidelity \
                 raises here too: give a smaller subset size",
                opts.subset_size
            ),
        ));
    }
    let mut rng = NumpyRandomState::new(opts.seed);
    (0..opts.subsets)
        .map(|_| {
            let a = rng.choice_without_replacement(n1, opts.subset_size)?;
            let b = rng.choice_without_replacement(n2, opts.subset_size)?;
            Ok((a, b))
        })
        .collect()
}

/// The unbiased MMD² of two samples (rows of `dim`), polynomial kernel:
/// `sum_{i!=j} k(x_i, x_j) / (m(m-1)) + sum_{i!=j} k(y_i, y_j) / (n(n-1)) - 2 sum k(x_i, y_j) / (mn)`
/// (torch-fidelity's estimator when `m = n`).
pub fn mmd2_unbiased(x: &[&[f32]], y: &[&[f32]], degree: i32, gamma: f64, coef0: f64) -> f64 {
    let k = |a: &[f32], b: &[f32]| {
        let dot: f64 = a.iter().zip(b).map(|(&p, &q)| p as f64 * q as f64).sum();
        (dot * gamma + coef0).powi(degree)
    };
    let sum_off = |s: &[&[f32]]| {
        let mut t = 0f64;
        for i in 0..s.len() {
            for j in 0..s.len() {
                if i != j {
                    t += k(s[i], s[j]);
                }
            }
        }
        t
    };
    let (m, n) = (x.len() as f64, y.len() as f64);
    let mut kxy = 0f64;
    for a in x {
        for b in y {
            kxy += k(a, b);
        }
    }
    sum_off(x) / (m * (m - 1.0)) + sum_off(y) / (n * (n - 1.0)) - 2.0 * kxy / (m * n)
}

/// KID from two feature sets (row-major `n x dim`).
pub fn kid(real: &[f32], fake: &[f32], dim: usize, opts: &KidOptions) -> Result<KidResult> {
    if dim == 0 || real.len() % dim != 0 || fake.len() % dim != 0 {
        return Err(VtonError::Shape {
            what: "KID features".into(),
            expected: format!("n x {dim}"),
            actual: vec![real.len(), fake.len()],
        });
    }
    let (n1, n2) = (real.len() / dim, fake.len() / dim);
    let r1: Vec<&[f32]> = real.chunks_exact(dim).collect();
    let r2: Vec<&[f32]> = fake.chunks_exact(dim).collect();
    let subsets = match &opts.subset_indices {
        Some(s) => {
            if s.is_empty() {
                return Err(VtonError::invalid("subset_indices", "no subsets given"));
            }
            for (a, b) in s {
                if a.len() != b.len() || a.len() < 2 {
                    return Err(VtonError::invalid(
                        "subset_indices",
                        "each subset needs the same number (>= 2) of indices into both sets",
                    ));
                }
                if a.iter().any(|&i| i >= n1) || b.iter().any(|&i| i >= n2) {
                    return Err(VtonError::invalid(
                        "subset_indices",
                        format!("an index is out of range ({n1} real, {n2} generated features)"),
                    ));
                }
            }
            s.clone()
        }
        None => torch_fidelity_subsets(n1, n2, opts)?,
    };
    let gamma = opts.gamma.unwrap_or(1.0 / dim as f64);
    let per_subset: Vec<f64> = {
        use rayon::prelude::*;
        subsets
            .par_iter()
            .map(|(a, b)| {
                let x: Vec<&[f32]> = a.iter().map(|&i| r1[i]).collect();
                let y: Vec<&[f32]> = b.iter().map(|&i| r2[i]).collect();
                mmd2_unbiased(&x, &y, opts.degree, gamma, opts.coef0)
            })
            .collect()
    };
    let n = per_subset.len() as f64;
    let mean = per_subset.iter().sum::<f64>() / n;
    let std = (per_subset
        .iter()
        .map(|v| (v - mean) * (v - mean))
        .sum::<f64>()
        / n)
        .sqrt();
    Ok(KidResult {
        mean,
        std,
        per_subset,
    })
}

/// KID between a real and a generated set: `update(images, real)` any number of times,
/// then [`compute`](Kid::compute). Images are `N x 3 x H x W` float in `[0, 1]`.
pub struct Kid {
    inception: FidInceptionV3,
    options: KidOptions,
    real: Vec<f32>,
    fake: Vec<f32>,
}

impl Kid {
    pub fn from_checkpoint(
        path: impl AsRef<std::path::Path>,
        options: KidOptions,
        device: &burn::tensor::Device,
    ) -> Result<Self> {
        Ok(Self::new(
            FidInceptionV3::from_checkpoint(path, device)?,
            options,
        ))
    }

    pub fn new(inception: FidInceptionV3, options: KidOptions) -> Self {
        Self {
            inception,
            options,
            real: Vec::new(),
            fake: Vec::new(),
        }
    }

    pub fn options(&self) -> &KidOptions {
        &self.options
    }

    pub fn update(&mut self, images: Tensor<4>, real: bool) -> Result<()> {
        let f = features_vec(&self.inception, images)?;
        self.update_features(&f, real)
    }

    pub fn update_features(&mut self, features: &[f32], real: bool) -> Result<()> {
        let d = self.inception.feature_dim();
        if features.len() % d != 0 {
            return Err(VtonError::Shape {
                what: "features".into(),
                expected: format!("n x {d}"),
                actual: vec![features.len()],
            });
        }
        if real { &mut self.real } else { &mut self.fake }.extend_from_slice(features);
        Ok(())
    }

    /// The number of (real, generated) images seen.
    pub fn counts(&self) -> (usize, usize) {
        let d = self.inception.feature_dim();
        (self.real.len() / d, self.fake.len() / d)
    }

    pub fn inception(&self) -> &FidInceptionV3 {
        &self.inception
    }

    pub fn compute(&self) -> Result<KidResult> {
        self.compute_with(&self.options)
    }

    /// KID of the features seen so far under other options (e.g. a subset size capped at
    /// the smaller set).
    pub fn compute_with(&self, options: &KidOptions) -> Result<KidResult> {
        kid(
            &self.real,
            &self.fake,
            self.inception.feature_dim(),
            options,
        )
    }

    pub fn reset(&mut self) {
        self.real.clear();
        self.fake.clear();
    }
}
