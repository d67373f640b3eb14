//! The weight-free try-on on every person x garment pair of the bundled corpus.

mod common;
use common::*;
use vton_core::io::{Joint, Mask};
use vton_core::pipelines::geometric::{
    evaluate_quality, GeometricTryOn, TryOnInputs, TryOnQuality,
};
use vton_core::VtonError;

const PEOPLE: [&str; 6] = [
    "mpl_grace_hopper",
    "openvto_ai3_selfie",
    "openvto_ai_avatar1_upper",
    "openvto_ai_avatar2_upper",
    "openvto_real1_selfie",
    "skimage_astronaut",
];
/// A real full-body photo, the person small in the frame; it has no shipped keypoints or
/// mask (examples/SOURCES.md), so it is measured on estimated inputs only.
const FULL_BODY: &str = "openvto_real1_fullbody";
/// Per-pair spill bound, given and estimated inputs (largest measured: 0.129 given,
/// 0.185 estimated on the full-body photo; docs/quality.md).
const SPILL_MAX: f32 = 0.25;
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
            // 0.45 before the silhouette limit (avatar1 x jacket1 measured 0.403, now 0.129).
            if q.spill >= SPILL_MAX {
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
    for m in [-0.1, f32::NAN] {
        let bad = GeometricTryOn {
            silhouette_margin: m,
            ..GeometricTryOn::default()
        };
        assert!(matches!(
            bad.run(&inputs("skimage_astronaut", "shirt1", true), &dev),
            Err(VtonError::InvalidArgument { .. })
        ));
    }
}

/// The silhouette limit is what keeps long garments on the body: without it the TPS
/// carries jacket1's sleeves and hem far off avatar1 (spill 0.403 measured).
#[test]
fn silhouette_margin_limits_spill() {
    let dev = test_device();
    let inp = inputs("openvto_ai_avatar1_upper", "jacket1", true);
    let pm = inp.person_mask.clone().unwrap();
    let spill = |pipe: GeometricTryOn| {
        let out = pipe.run(&inp, &dev).unwrap();
        evaluate_quality(&out, &inp.pose, &pm).unwrap().spill
    };
    let unlimited = spill(GeometricTryOn {
        silhouette_margin: f32::INFINITY,
        ..GeometricTryOn::default()
    });
    let limited = spill(GeometricTryOn::default());
    println!("avatar1 x jacket1 spill: unlimited {unlimited:.3}, limited {limited:.3}");
    assert!(unlimited > 0.35, "{unlimited}");
    assert!(limited < 0.16, "{limited}");
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

// ---------------------------------------------------------------------------------------
// Estimated keypoints and person masks (bundled MediaPipe models), every person x garment.

/// The same pairs with keypoints and person mask estimated by
/// `Preprocessor::complete` (garment masks given, as in `quality_on_every_corpus_pair`,
/// so only the person side changes), plus the full-body photo. Per pair: the bounds of
/// the given-input test; for the photos with shipped annotations, the figures measured
/// against the shipped keypoints and mask within 0.02 of the given-input run's; natural
/// bleed < 0.16 as for given masks; on the full-body photo also the synthetic bleed.
#[test]
fn quality_on_estimated_inputs() {
    use vton_core::io::read_image;
    use vton_core::pipelines::preprocess::{PartialInputs, Preprocessor};
    let dev = test_device();
    let t0 = std::time::Instant::now();
    let pre = Preprocessor::bundled(&dev).unwrap();
    println!("estimator loaded in {:.2?}", t0.elapsed());
    let pipe = GeometricTryOn::default();
    let garments: Vec<TryOnInputs> = GARMENTS
        .iter()
        .map(|g| inputs(PEOPLE[0], g, true))
        .collect();
    let mut fails = Vec::new();
    let (mut all, mut full) = (Vec::new(), Vec::new());
    let mut max_diff = [0f32; 3];
    println!("| person | garment | torso share given / est | shoulder error given / est | spill given / est | shoulder coverage given / est | est. vs shipped annotations: torso / spill / coverage | natural bleed est |");
    for p in PEOPLE.iter().copied().chain([FULL_BODY]) {
        let t = std::time::Instant::now();
        let photo = read_image(example(&format!("person/{p}.png"))).unwrap();
        let partial = PartialInputs::new(photo, garments[0].garment.clone());
        let est = pre.complete(partial).unwrap();
        let est_mask = est.person_mask.clone().unwrap();
        let shipped = (p != FULL_BODY).then(|| inputs(p, GARMENTS[0], true));
        print!("{p}: estimated in {:.2?}", t.elapsed());
        if let Some(sh) = &shipped {
            // The shipped masks are MediaPipe's pose segmentation too (measured IoU
            // 1.000, at most 34 pixels differ) and the keypoints MediaPipe 0.10.21's
            // (within 4.4 px, docs/pose.md): the comparison checks vton's estimator.
            let sm = sh.person_mask.as_ref().unwrap();
            let iou = est_mask.iou(sm);
            let mut kmax = 0f32;
            for (j, (a, b)) in est
                .pose
                .keypoints
                .iter()
                .zip(&sh.pose.keypoints)
                .enumerate()
            {
                if a.present() != b.present() {
                    fails.push(format!("{p}: keypoint {j} presence differs"));
                } else if a.present() {
                    kmax = kmax.max(((a.x - b.x).powi(2) + (a.y - b.y).powi(2)).sqrt());
                }
            }
            println!(", person mask IoU vs shipped {iou:.4}, keypoints within {kmax:.1} px");
            if iou < 0.99 || kmax > 6.0 {
                fails.push(format!(
                    "{p}: mask IoU {iou:.4}, keypoint distance {kmax:.1}"
                ));
            }
        } else {
            println!(", person mask {} px", est_mask.count());
        }
        for (g, gi) in GARMENTS.iter().zip(&garments) {
            let mut inp = est.clone();
            inp.garment = gi.garment.clone();
            inp.garment_mask = gi.garment_mask.clone();
            let out = pipe.run(&inp, &dev).unwrap();
            let q = evaluate_quality(&out, &inp.pose, &est_mask).unwrap();
            if q.torso_share <= 0.4 || q.shoulder_error_rel >= 1.1 || q.spill >= SPILL_MAX {
                fails.push(format!("{p} x {g}: {q:?}"));
            }
            let (nx, ny) = inp.pose.get(Joint::Nose).unwrap();
            let i = (ny as usize * inp.person.width + nx as usize) * 3;
            if out.image.data[i..i + 3] != inp.person.data[i..i + 3] {
                fails.push(format!("{p} x {g}: nose pixel changed"));
            }
            let bg = border_colour(&inp.garment);
            let bleed = natural_bleed(&out.image, &inp.person, bg);
            if bleed >= 0.16 {
                fails.push(format!("{p} x {g}: natural bleed {bleed:.3}"));
            }
            all.push(q);
            let (given_cols, ref_cols) = if let Some(sh) = &shipped {
                let mut gin = sh.clone();
                gin.garment = gi.garment.clone();
                gin.garment_mask = gi.garment_mask.clone();
                let sm = gin.person_mask.clone().unwrap();
                let qg = evaluate_quality(&pipe.run(&gin, &dev).unwrap(), &gin.pose, &sm).unwrap();
                // The estimated-input result measured against the shipped annotations.
                let qr = evaluate_quality(&out, &gin.pose, &sm).unwrap();
                let d = [
                    (qr.torso_share - qg.torso_share).abs(),
                    (qr.spill - qg.spill).abs(),
                    (qr.shoulder_coverage - qg.shoulder_coverage).abs(),
                ];
                for k in 0..3 {
                    max_diff[k] = max_diff[k].max(d[k]);
                }
                if d.iter().any(|&d| d > 0.02) {
                    fails.push(format!("{p} x {g}: estimated vs given differ by {d:?}"));
                }
                (
                    [
                        qg.torso_share,
                        qg.shoulder_error_rel,
                        qg.spill,
                        qg.shoulder_coverage,
                    ]
                    .map(|v| format!("{v:.3} / ")),
                    format!(
                        "{:.3} / {:.3} / {:.3}",
                        qr.torso_share, qr.spill, qr.shoulder_coverage
                    ),
                )
            } else {
                let (kmax, _) = synthetic_bleed(&pipe, &inp);
                if kmax >= 1e-4 {
                    fails.push(format!("{p} x {g}: background weight {kmax}"));
                }
                full.push(q);
                (
                    [
                        "- / ".to_string(),
                        "- / ".into(),
                        "- / ".into(),
                        "- / ".into(),
                    ],
                    "-".into(),
                )
            };
            println!(
                "| {p} | {g} | {}{:.3} | {}{:.3} | {}{:.3} | {}{:.3} | {ref_cols} | {bleed:.3} |",
                given_cols[0],
                q.torso_share,
                given_cols[1],
                q.shoulder_error_rel,
                given_cols[2],
                q.spill,
                given_cols[3],
                q.shoulder_coverage
            );
        }
    }
    let mean = |v: &[TryOnQuality], f: fn(&TryOnQuality) -> f32| {
        v.iter().map(f).sum::<f32>() / v.len() as f32
    };
    let figures = |v: &[TryOnQuality]| {
        [
            mean(v, |q| q.torso_share),
            mean(v, |q| q.shoulder_error_rel),
            mean(v, |q| q.spill),
            mean(v, |q| q.shoulder_coverage),
        ]
    };
    let (m_all, m_full) = (figures(&all), figures(&full));
    let m_six = figures(&all[..all.len() - full.len()]);
    println!("means (torso share, shoulder error, spill, shoulder coverage): estimated, 36 pairs {m_six:.3?}; full-body, 6 pairs {m_full:.3?}; all 42 {m_all:.3?}");
    println!("largest |estimated - given| (torso share, spill, coverage): {max_diff:.4?}");
    assert!(fails.is_empty(), "{fails:#?}");
    // Measured: 0.823 / 0.268 / 0.067 / 0.978 over the 42 pairs.
    assert!(
        m_all[0] > 0.78 && m_all[1] < 0.3 && m_all[2] < 0.1 && m_all[3] > 0.95,
        "{m_all:?}"
    );
    // The small full-body person: 0.745 / 0.186 / 0.108 / 0.984 measured.
    assert!(
        m_full[0] > 0.7 && m_full[2] < 0.14 && m_full[3] > 0.95,
        "{m_full:?}"
    );
}
