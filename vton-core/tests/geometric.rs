//! The weight-free try-on on every person x garment pair of the bundled corpus.

mod common;
use common::*;
use vton_core::io::{Joint, Mask};
use vton_core::pipelines::geometric::{evaluate_quality, GeometricTryOn, TryOnInputs};
use vton_core::VtonError;

const PEOPLE: [&str; 6] = [
    "mpl_grace_hopper",
    "openvto_ai3_selfie",
    "openvto_ai_avatar1_upper",
    "openvto_ai_avatar2_upper",
    "openvto_real1_selfie",
    "skimage_astronaut",
];
const GARMENTS: [&str; 6] = ["jacket1", "jacket2", "shirt1", "shirt2", "shirt3", "shirt4"];

fn inputs(person: &str, garment: &str, with_garment_mask: bool) -> TryOnInputs {
    TryOnInputs::from_paths(
        example(&format!("person/{person}.png")),
        example(&format!("person/{person}_keypoints.json")),
        Some(example(&format!("person/{person}_mask.png"))),
        None::<&str>,
        example(&format!("garment/openvto_{garment}_front.png")),
        with_garment_mask.then(|| example(&format!("garment/openvto_{garment}_front_mask.png"))),
    )
    .unwrap()
}

#[test]
fn quality_on_every_corpus_pair() {
    let dev = test_device();
    let pipe = GeometricTryOn::default();
    let (mut shares, mut errs, mut covs) = (Vec::new(), Vec::new(), Vec::new());
    let mut fails = Vec::new();
    println!(
        "| person | garment | torso share | shoulder error px | rel | spill | shoulder coverage |"
    );
    for p in PEOPLE {
        for g in GARMENTS {
            let inp = inputs(p, g, true);
            let out = pipe.run(&inp, &dev).unwrap();
            assert_eq!(
                (out.image.width, out.image.height),
                (inp.person.width, inp.person.height)
            );
            let q = evaluate_quality(&out, &inp.pose, inp.person_mask.as_ref().unwrap()).unwrap();
            println!(
                "| {p} | {g} | {:.3} | {:.1} | {:.3} | {:.3} | {:.3} |",
                q.torso_share,
                q.shoulder_error_px,
                q.shoulder_error_rel,
                q.spill,
                q.shoulder_coverage
            );
            // Per-pair floors (measured minimum minus a margin, docs/quality.md); all
            // pairs are measured before failing so the table is complete.
            if q.torso_share <= 0.4 {
                fails.push(format!("{p} x {g}: torso share {:.3}", q.torso_share));
            }
            // 1.1, not 0.85: shoulder tips now reach the silhouette above the joints, and
            // on avatar1 x jacket2 (sleeve wrapped over the body, before and after) the
            // landmark finder on the warped mask is off by 1.05 (docs/quality.md).
            if q.shoulder_error_rel >= 1.1 {
                fails.push(format!(
                    "{p} x {g}: shoulder error {:.3}",
                    q.shoulder_error_rel
                ));
            }
            if q.spill >= 0.45 {
                fails.push(format!("{p} x {g}: spill {:.3}", q.spill));
            }
            // The head stays as it was.
            let (nx, ny) = inp.pose.get(Joint::Nose).unwrap();
            let i = (ny as usize * inp.person.width + nx as usize) * 3;
            assert_eq!(
                &out.image.data[i..i + 3],
                &inp.person.data[i..i + 3],
                "{p} x {g}: nose pixel changed"
            );
            shares.push(q.torso_share);
            errs.push(q.shoulder_error_rel);
            covs.push(q.shoulder_coverage);
        }
    }
    let mean = |v: &[f32]| v.iter().sum::<f32>() / v.len() as f32;
    println!(
        "mean torso share {:.3}, mean shoulder error {:.3} shoulder widths",
        mean(&shares),
        mean(&errs)
    );
    println!("mean shoulder coverage {:.3}", mean(&covs));
    assert!(fails.is_empty(), "{fails:#?}");
    // Old garment at the shoulders: mean coverage 0.862 before the silhouette fit.
    assert!(mean(&covs) > 0.95, "shoulder coverage {:.3}", mean(&covs));
    assert!(mean(&shares) > 0.8);
    assert!(mean(&errs) < 0.3);
}

#[test]
fn estimated_garment_mask_path_runs() {
    let out = GeometricTryOn::default()
        .run(
            &inputs("openvto_ai_avatar1_upper", "shirt3", false),
            &test_device(),
        )
        .unwrap();
    assert!(out.warped_mask.count() > 1000);
    assert!(out.garment_mask.count() > 10000);
}

#[test]
fn bad_inputs_are_typed_errors() {
    let dev = test_device();
    let pipe = GeometricTryOn::default();
    let mut inp = inputs("skimage_astronaut", "shirt1", true);
    inp.pose.keypoints[Joint::RShoulder as usize].confidence = 0.0;
    match pipe.run(&inp, &dev) {
        Err(VtonError::MissingKeypoints { missing, .. }) => assert!(missing.contains("RShoulder")),
        other => panic!("{other:?}"),
    }
    let mut inp = inputs("skimage_astronaut", "shirt1", true);
    inp.garment_mask = Some(Mask::zeros(512, 512));
    assert!(matches!(
        pipe.run(&inp, &dev),
        Err(VtonError::EmptyMask { .. })
    ));
    let mut inp = inputs("skimage_astronaut", "shirt1", true);
    inp.person_mask = Some(Mask::zeros(100, 100));
    assert!(matches!(
        pipe.run(&inp, &dev),
        Err(VtonError::SizeMismatch { .. })
    ));
    let mut inp = inputs("skimage_astronaut", "shirt1", true);
    inp.person_mask = None;
    assert!(matches!(
        pipe.run(&inp, &dev),
        Err(VtonError::InvalidArgument { .. })
    ));
    let mut inp = inputs("skimage_astronaut", "shirt1", true);
    inp.person_mask = Some(Mask::zeros(512, 512));
    assert!(matches!(
        pipe.run(&inp, &dev),
        Err(VtonError::EmptyMask { .. })
    ));
}

// ---------------------------------------------------------------------------------------
// Matte and composition: how much of the product photo's background reaches the result.

use vton_core::io::RgbImage;
use vton_core::masks::morph;

fn on(m: &Mask) -> Vec<bool> {
    m.data.iter().map(|&v| v >= 0.5).collect()
}

/// Per-channel median of a border strip (2 % of the short side) of a product photo.
fn border_colour(img: &RgbImage) -> [f32; 3] {
    let (w, h) = (img.width, img.height);
    let b = (w.min(h) / 50).max(2);
    let mut ch = [Vec::new(), Vec::new(), Vec::new()];
    for y in 0..h {
        for x in 0..w {
            if x < b || y < b || x >= w - b || y >= h - b {
                let p = img.get(x, y);
                for c in 0..3 {
                    ch[c].push(p[c]);
                }
            }
        }
    }
    ch.map(|mut v| {
        v.sort_by(|a, b| a.total_cmp(b));
        v[v.len() / 2]
    })
}

fn d2(a: [f32; 3], b: [f32; 3]) -> f32 {
    (0..3).map(|c| (a[c] - b[c]).powi(2)).sum::<f32>().sqrt()
}

/// The garment photo with everything outside its (given) mask painted `colour`.
fn repaint_background(img: &RgbImage, mask: &Mask, colour: [f32; 3]) -> RgbImage {
    let mut out = img.clone();
    for (p, &m) in mask.data.iter().enumerate() {
        if m < 0.5 {
            out.data[p * 3..p * 3 + 3].copy_from_slice(&colour);
        }
    }
    out
}

/// The boundary band of the composited garment: pixels within `r` of the edge of
/// `alpha >= 0.5`, on either side.
fn boundary_band(alpha: &Mask, r: usize) -> Vec<bool> {
    let (w, h) = (alpha.width, alpha.height);
    let a = on(alpha);
    let outer = morph::dilate(w, h, &a, r);
    let inner = morph::erode(w, h, &a, r);
    outer.iter().zip(&inner).map(|(&o, &i)| o && !i).collect()
}

/// Synthetic-background bleed: the garment's background (outside its given mask) is
/// painted magenta, then green; the pipeline is linear in those pixels for a fixed mask,
/// so `|result_magenta - result_green|` (largest channel; the two colours differ by 1 in
/// every channel) is exactly the weight with which background pixels reach each result
/// pixel. Returns (largest weight, share of boundary-band pixels with weight > 1/255).
fn synthetic_bleed(pipe: &GeometricTryOn, inp: &TryOnInputs) -> (f32, f32) {
    let dev = test_device();
    let gm = inp.garment_mask.clone().unwrap();
    let mut a = inp.clone();
    a.garment = repaint_background(&inp.garment, &gm, [1.0, 0.0, 1.0]);
    let mut b = inp.clone();
    b.garment = repaint_background(&inp.garment, &gm, [0.0, 1.0, 0.0]);
    let (ra, rb) = (pipe.run(&a, &dev).unwrap(), pipe.run(&b, &dev).unwrap());
    let k: Vec<f32> = ra
        .image
        .data
        .chunks_exact(3)
        .zip(rb.image.data.chunks_exact(3))
        .map(|(p, q)| (0..3).map(|c| (p[c] - q[c]).abs()).fold(0.0, f32::max))
        .collect();
    let band = boundary_band(&ra.alpha, 3);
    let n = band.iter().filter(|&&b| b).count().max(1);
    let bleeding = k
        .iter()
        .zip(&band)
        .filter(|&(&k, &b)| b && k > 1.0 / 255.0)
        .count();
    (
        k.iter().copied().fold(0.0, f32::max),
        bleeding as f32 / n as f32,
    )
}

/// Natural-photo bleed: over the boundary band (3 px either side of the edge of the
/// pixels the garment changed), the share of result pixels closer (RGB distance) to the
/// product background colour than both to the person's own pixel and to the local
/// garment colour (mean of the result over the changed region eroded by 4 px, within
/// 6 px). Band pixels without such garment pixels nearby are not counted, nor those
/// where the person's pixel or the local garment colour is itself within 0.1 of the
/// background colour (a blend cannot be told from bleed there: the white tee on light
/// grey, a person photographed against a similar grey).
fn natural_bleed(result: &RgbImage, person: &RgbImage, bg: [f32; 3]) -> f32 {
    let (w, h) = (result.width, result.height);
    let changed: Vec<bool> = result
        .data
        .chunks_exact(3)
        .zip(person.data.chunks_exact(3))
        .map(|(r, p)| (0..3).any(|c| (r[c] - p[c]).abs() > 2.0 / 255.0))
        .collect();
    let outer = morph::dilate(w, h, &changed, 3);
    let inner = morph::erode(w, h, &changed, 3);
    let interior = morph::erode(w, h, &changed, 4);
    // Integral images of interior counts and colours.
    let (iw, ih) = (w + 1, h + 1);
    let mut cnt = vec![0f64; iw * ih];
    let mut col = vec![[0f64; 3]; iw * ih];
    for y in 0..h {
        for x in 0..w {
            let i = (y + 1) * iw + x + 1;
            let v = interior[y * w + x] as u8 as f64;
            let p = result.get(x, y);
            cnt[i] = v + cnt[i - 1] + cnt[i - iw] - cnt[i - iw - 1];
            for c in 0..3 {
                col[i][c] = v * p[c] as f64 + col[i - 1][c] + col[i - iw][c] - col[i - iw - 1][c];
            }
        }
    }
    let r = 6usize;
    let (mut band, mut bleeding) = (0usize, 0usize);
    for y in 0..h {
        for x in 0..w {
            let i = y * w + x;
            if !(changed[i] && outer[i] && !inner[i]) {
                continue;
            }
            let (x0, y0, x1, y1) = (
                x.saturating_sub(r),
                y.saturating_sub(r),
                (x + r + 1).min(w),
                (y + r + 1).min(h),
            );
            let s = |t: &dyn Fn(usize) -> f64| {
                t(y1 * iw + x1) - t(y0 * iw + x1) - t(y1 * iw + x0) + t(y0 * iw + x0)
            };
            let n = s(&|j| cnt[j]);
            if n < 1.0 {
                continue;
            }
            let g = [0, 1, 2].map(|c| (s(&|j| col[j][c]) / n) as f32);
            let (px, pp) = (result.get(x, y), person.get(x, y));
            if d2(pp, bg) < 0.1 || d2(g, bg) < 0.1 {
                continue;
            }
            let db = d2(px, bg);
            band += 1;
            if db < d2(px, pp) && db < d2(px, g) {
                bleeding += 1;
            }
        }
    }
    bleeding as f32 / band.max(1) as f32
}

/// Writes results and masks of every pair under `$VTON_DUMP_DIR` for looking at them:
/// `VTON_DUMP_DIR=out/dump cargo test --release -p vton-core --test geometric -- --ignored`.
#[test]
#[ignore]
fn dump_corpus_results() {
    let Some(dir) = std::env::var_os("VTON_DUMP_DIR").map(std::path::PathBuf::from) else {
        return;
    };
    let dev = test_device();
    let pipe = GeometricTryOn::default();
    for p in PEOPLE {
        for g in GARMENTS {
            for (tag, given) in [("given", true), ("est", false)] {
                let inp = inputs(p, g, given);
                let out = pipe.run(&inp, &dev).unwrap();
                out.image
                    .save_png(dir.join(format!("{p}_{g}_{tag}.png")))
                    .unwrap();
                if p == PEOPLE[0] && !given {
                    out.garment_mask
                        .save_png(dir.join(format!("{g}_est_mask.png")))
                        .unwrap();
                }
            }
        }
    }
}

#[test]
fn estimated_garment_masks_match_the_given_ones() {
    use vton_core::io::{read_image, read_mask};
    use vton_core::masks::{estimate_garment_mask, GarmentMaskOptions};
    println!("| garment | IoU estimated vs given | extra px | missing px |");
    let mut ious = Vec::new();
    for g in GARMENTS {
        let img = read_image(example(&format!("garment/openvto_{g}_front.png"))).unwrap();
        let given = read_mask(example(&format!("garment/openvto_{g}_front_mask.png"))).unwrap();
        let est = estimate_garment_mask(&img, &GarmentMaskOptions::default()).unwrap();
        let (a, b) = (on(&est), on(&given));
        let extra = a.iter().zip(&b).filter(|&(&a, &b)| a && !b).count();
        let missing = a.iter().zip(&b).filter(|&(&a, &b)| !a && b).count();
        println!("| {g} | {:.3} | {extra} | {missing} |", est.iou(&given));
        // Before the shadow rule: 0.864-0.942 (drop shadows taken for garment).
        ious.push(est.iou(&given));
    }
    let mean = ious.iter().sum::<f32>() / ious.len() as f32;
    assert!(ious.iter().all(|&v| v > 0.9), "{ious:?}");
    assert!(mean > 0.95, "mean IoU {mean:.3} (0.906 before)");
}

#[test]
fn background_figures_on_every_corpus_pair() {
    let pipe = GeometricTryOn::default();
    println!("| person | garment | synthetic bleed max | synthetic band share | natural bleed given | natural bleed estimated |");
    let dev = test_device();
    for p in PEOPLE {
        for g in GARMENTS {
            let inp = inputs(p, g, true);
            let (kmax, kshare) = synthetic_bleed(&pipe, &inp);
            let bg = border_colour(&inp.garment);
            let given = natural_bleed(&pipe.run(&inp, &dev).unwrap().image, &inp.person, bg);
            let est_in = inputs(p, g, false);
            let est = natural_bleed(&pipe.run(&est_in, &dev).unwrap().image, &inp.person, bg);
            println!("| {p} | {g} | {kmax:.3} | {kshare:.3} | {given:.3} | {est:.3} |");
            // Straight (not premultiplied) warping gives 0.25 on every pair: a bilinear
            // tap half inside the mask takes half its colour from the background.
            assert!(kmax < 1e-4, "{p} x {g}: background weight {kmax}");
            // Measured after: at most 0.12 (given masks), 0.34 (estimated; the white
            // tee, whose mask keeps the plain rule). Before: up to 0.31 and 0.64.
            assert!(given < 0.16, "{p} x {g}: natural bleed {given:.3}");
            assert!(
                est < 0.4,
                "{p} x {g}: natural bleed (estimated mask) {est:.3}"
            );
        }
    }
}
