//! Warping against references: CP-VTON+'s TpsGridGen and test.py grid_sample calls
//! (torch outputs in tests/fixtures/cpvton_*), and numpy re-derivations of grid_sample
//! and a general TPS (tests/fixtures/gen_reference.py -> warp_reference.json).

mod common;
use burn::tensor::{Tensor, TensorData};
use common::*;
use vton_core::io::image::tensor_to_vec;
use vton_core::warp::{grid_sample, GridSampleOptions, ThinPlateSpline, TpsGridGen};
use vton_core::VtonError;

fn json(name: &str) -> serde_json::Value {
    serde_json::from_str(&std::fs::read_to_string(fixture(name)).unwrap()).unwrap()
}

fn tol(j: &serde_json::Value) -> (f32, f32) {
    (
        j["tolerance"]["atol"].as_f64().unwrap() as f32,
        j["tolerance"]["rtol"].as_f64().unwrap() as f32,
    )
}

#[test]
fn tps_grid_gen_matches_cpvton() {
    let t = read_safetensors(&fixture("cpvton_tps.safetensors"));
    let meta = json("cpvton_tps.json");
    let (atol, rtol) = tol(&meta);
    let (gshape, grid) = &t["output.grid"];
    let (tshape, theta) = &t["input.theta"];
    let n = tshape[1] / 2;
    let grid_size = (n as f64).sqrt().round() as usize;
    let dev = test_device();
    let gen = TpsGridGen::new(gshape[1], gshape[2], grid_size, &dev).unwrap();
    // Control points in CP-VTON's order (X varies slowest).
    let px: Vec<f32> = gen.control_points().iter().map(|p| p.0 as f32).collect();
    let py: Vec<f32> = gen.control_points().iter().map(|p| p.1 as f32).collect();
    assert_close(
        "P_X_base",
        &px,
        &t["output.intermediate.P_X_base"].1,
        1e-7,
        0.0,
    );
    assert_close(
        "P_Y_base",
        &py,
        &t["output.intermediate.P_Y_base"].1,
        1e-7,
        0.0,
    );
    // The used block of L^-1 (fixture: float32 torch.inverse; ours f64): Li[:, :N].
    let li = &t["output.intermediate.Li"].1;
    let s = n + 3;
    let want: Vec<f32> = (0..s)
        .flat_map(|r| (0..n).map(move |c| li[r * s + c]))
        .collect();
    let got: Vec<f32> = gen.li_block().iter().map(|&v| v as f32).collect();
    assert_close("Li[:, :N]", &got, &want, 1e-5, 1e-4);
    let theta_t =
        Tensor::<2>::from_data(TensorData::new(theta.clone(), [tshape[0], tshape[1]]), &dev);
    let out = gen.forward(theta_t).unwrap();
    assert_eq!(out.dims().to_vec(), *gshape);
    assert_close(
        "TpsGridGen grid",
        &tensor_to_vec(out).unwrap(),
        grid,
        atol,
        rtol,
    );
}

#[test]
fn tps_grid_gen_rejects_bad_theta() {
    let dev = test_device();
    let gen = TpsGridGen::new(16, 12, 3, &dev).unwrap();
    let bad = Tensor::<2>::zeros([1, 50], &dev);
    assert!(matches!(gen.forward(bad), Err(VtonError::Shape { .. })));
    let zero = Tensor::<2>::zeros([2, 18], &dev);
    let grid = tensor_to_vec(gen.forward(zero).unwrap()).unwrap();
    // theta = 0 gives the identity grid on linspace(-1, 1).
    assert!((grid[0] + 1.0).abs() < 1e-5 && (grid[1] + 1.0).abs() < 1e-5);
    let last = grid.len() / 2 - 2;
    assert!((grid[last] - 1.0).abs() < 1e-5 && (grid[last + 1] - 1.0).abs() < 1e-5);
    assert!(TpsGridGen::new(0, 12, 3, &dev).is_err());
    assert!(TpsGridGen::new(16, 12, 1, &dev).is_err());
}

#[test]
fn grid_sample_matches_cpvton_test_py() {
    let t = read_safetensors(&fixture("cpvton_warp.safetensors"));
    let (atol, rtol) = tol(&json("cpvton_warp.json"));
    let dev = test_device();
    let load = |k: &str| {
        let (s, v) = &t[k];
        Tensor::<4>::from_data(TensorData::new(v.clone(), [s[0], s[1], s[2], s[3]]), &dev)
    };
    for ac in [false, true] {
        let cloth = grid_sample(
            load("input.c"),
            load("input.grid"),
            GridSampleOptions::from_names("bilinear", "border", ac).unwrap(),
        )
        .unwrap();
        let mask = grid_sample(
            load("input.cm"),
            load("input.grid"),
            GridSampleOptions::from_names("bilinear", "zeros", ac).unwrap(),
        )
        .unwrap();
        assert_close(
            &format!("warped_cloth ac={ac}"),
            &tensor_to_vec(cloth).unwrap(),
            &t[&format!("output.warped_cloth.align_corners_{ac}")].1,
            atol,
            rtol,
        );
        assert_close(
            &format!("warped_mask ac={ac}"),
            &tensor_to_vec(mask).unwrap(),
            &t[&format!("output.warped_mask.align_corners_{ac}")].1,
            atol,
            rtol,
        );
    }
}

fn floats(v: &serde_json::Value) -> Vec<f32> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_f64().unwrap() as f32)
        .collect()
}
fn dims(v: &serde_json::Value) -> [usize; 4] {
    let d: Vec<usize> = v
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_u64().unwrap() as usize)
        .collect();
    [d[0], d[1], d[2], d[3]]
}

#[test]
fn grid_sample_all_modes_match_numpy_reference() {
    let r = json("warp_reference.json");
    let g = &r["grid_sample"];
    let dev = test_device();
    let input = Tensor::<4>::from_data(
        TensorData::new(floats(&g["input"]), dims(&g["input_shape"])),
        &dev,
    );
    let grid = Tensor::<4>::from_data(
        TensorData::new(floats(&g["grid"]), dims(&g["grid_shape"])),
        &dev,
    );
    let cases = g["cases"].as_array().unwrap();
    assert_eq!(cases.len(), 12);
    for c in cases {
        let opts = GridSampleOptions::from_names(
            c["mode"].as_str().unwrap(),
            c["padding_mode"].as_str().unwrap(),
            c["align_corners"].as_bool().unwrap(),
        )
        .unwrap();
        let out = grid_sample(input.clone(), grid.clone(), opts).unwrap();
        // float32 arithmetic on O(1) values: 1e-5 absolute covers rounding.
        assert_close(
            &format!("{opts:?}"),
            &tensor_to_vec(out).unwrap(),
            &floats(&c["output"]),
            1e-5,
            1e-5,
        );
    }
}

#[test]
fn grid_sample_rejects_bad_shapes_and_names() {
    let dev = test_device();
    let x = Tensor::<4>::zeros([2, 3, 4, 4], &dev);
    let opts = GridSampleOptions::from_names("bilinear", "zeros", false).unwrap();
    assert!(matches!(
        grid_sample(x.clone(), Tensor::<4>::zeros([1, 4, 4, 2], &dev), opts),
        Err(VtonError::SizeMismatch { .. })
    ));
    assert!(matches!(
        grid_sample(x, Tensor::<4>::zeros([2, 4, 4, 3], &dev), opts),
        Err(VtonError::Shape { .. })
    ));
    assert!(GridSampleOptions::from_names("cubic", "zeros", false).is_err());
    assert!(GridSampleOptions::from_names("bilinear", "mirror", false).is_err());
}

#[test]
fn general_tps_matches_numpy_reference() {
    let r = json("warp_reference.json");
    let t = &r["tps"];
    let pairs = |v: &serde_json::Value| -> Vec<(f64, f64)> {
        floats(v)
            .chunks(2)
            .map(|c| (c[0] as f64, c[1] as f64))
            .collect()
    };
    let (src, dst) = (pairs(&t["src"]), pairs(&t["dst"]));
    for fit in t["fits"].as_array().unwrap() {
        let lam = fit["lambda"].as_f64().unwrap();
        let tps = ThinPlateSpline::fit(&src, &dst, lam).unwrap();
        let got: Vec<f32> = pairs(&fit["query"])
            .iter()
            .flat_map(|q| {
                let p = tps.eval(q.0, q.1);
                [p.0 as f32, p.1 as f32]
            })
            .collect();
        assert_close(
            &format!("tps lambda={lam}"),
            &got,
            &floats(&fit["output"]),
            1e-4,
            1e-5,
        );
        if lam == 0.0 {
            for (s, d) in src.iter().zip(&dst) {
                let p = tps.eval(s.0, s.1);
                assert!(
                    (p.0 - d.0).abs() < 1e-8 && (p.1 - d.1).abs() < 1e-8,
                    "interpolates exactly"
                );
            }
        }
    }
    // Degenerate inputs are typed errors.
    assert!(ThinPlateSpline::fit(&src[..2], &dst[..2], 0.0).is_err());
    let collinear = [(0.0, 0.0), (1.0, 1.0), (2.0, 2.0), (3.0, 3.0)];
    assert!(matches!(
        ThinPlateSpline::fit(&collinear, &collinear, 0.0),
        Err(VtonError::Numerical { .. })
    ));
    assert!(ThinPlateSpline::fit(&src, &dst[..5], 0.0).is_err());
    assert!(ThinPlateSpline::fit(&src, &dst, f64::NAN).is_err());
}
