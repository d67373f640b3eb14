//! DDIM, DDPM and DPM-Solver++ against diffusers 0.42.1 traces (tests/fixtures/
//! diffusers_schedulers.* from the shared fixtures; diffusers_dpm.* made by
//! scripts/reference/gen_dpm_fixture.py). Each scheduler is loaded from the
//! scheduler_config.json diffusers wrote.

mod common;
use common::*;
use vton_core::schedulers::{
    scheduler_from_config, scheduler_from_pretrained, DDIMScheduler, DDPMScheduler,
    DPMSolverMultistepScheduler, Scheduler,
};

type Fix = std::collections::HashMap<String, (Vec<usize>, Vec<f32>)>;

fn json(name: &str) -> serde_json::Value {
    let text = std::fs::read_to_string(fixture(name)).unwrap();
    serde_json::from_str(&vton_core::models::pretrained::python_json(&text)).unwrap()
}

fn ints(v: &[f32]) -> Vec<i64> {
    v.iter().map(|&x| x as i64).collect()
}

fn check_tables(t: &Fix, v: &str, betas: &[f32], ac: &[f32], atol: f32, rtol: f32) {
    assert_close(
        &format!("{v} betas"),
        betas,
        &t[&format!("output.{v}.betas")].1,
        atol,
        rtol,
    );
    assert_close(
        &format!("{v} alphas_cumprod"),
        ac,
        &t[&format!("output.{v}.alphas_cumprod")].1,
        atol,
        rtol,
    );
}

#[test]
fn ddim_and_ddpm_match_diffusers_traces() {
    let t = read_safetensors(&fixture("diffusers_schedulers.safetensors"));
    let meta = json("diffusers_schedulers.json");
    let (atol, rtol) = fixture_tolerance("diffusers_schedulers.json");
    let dev = test_device();
    let mut checked = 0;
    for (variant, info) in meta["variants"].as_object().unwrap() {
        let dir = fixture(&format!("diffusers_schedulers_pretrained/{variant}"));
        let ddim = info["class"] == "DDIMScheduler";
        let mut s: Box<dyn Scheduler> = scheduler_from_pretrained(&dir).unwrap();
        assert_eq!(s.name(), info["class"].as_str().unwrap());
        if ddim {
            let d = DDIMScheduler::from_pretrained(&dir).unwrap();
            check_tables(&t, variant, &d.betas, &d.alphas_cumprod, atol, rtol);
            assert_close(
                "final_alpha_cumprod",
                &[d.final_alpha_cumprod],
                &t[&format!("output.{variant}.final_alpha_cumprod")].1,
                atol,
                rtol,
            );
        } else {
            let d = DDPMScheduler::from_pretrained(&dir).unwrap();
            check_tables(&t, variant, &d.betas, &d.alphas_cumprod, atol, rtol);
            let vel = d
                .get_velocity(
                    tensor(&t, "input.add_noise.original_samples", &dev),
                    tensor(&t, "input.add_noise.noise", &dev),
                    &ints(&t["input.add_noise.timesteps"].1),
                )
                .unwrap();
            assert_close(
                "get_velocity",
                &values(vel),
                &t[&format!("output.{variant}.get_velocity")].1,
                atol,
                rtol,
            );
        }
        let noised = s
            .add_noise(
                tensor(&t, "input.add_noise.original_samples", &dev),
                tensor(&t, "input.add_noise.noise", &dev),
                &ints(&t["input.add_noise.timesteps"].1),
            )
            .unwrap();
        assert_close(
            &format!("{variant} add_noise"),
            &values(noised),
            &t[&format!("output.{variant}.add_noise")].1,
            atol,
            rtol,
        );
        for (window, steps) in info["steps"].as_object().unwrap() {
            // window: n20.first[.eta0|.eta1]
            let parts: Vec<&str> = window.split('.').collect();
            let n: usize = parts[0][1..].parse().unwrap();
            s.set_timesteps(n).unwrap();
            let want_ts = ints(&t[&format!("output.{variant}.n{n}.timesteps")].1);
            assert_eq!(
                s.timesteps(),
                want_ts.as_slice(),
                "{variant} n{n} timesteps"
            );
            let eta: f32 = if parts.get(2) == Some(&"eta1") {
                1.0
            } else {
                0.0
            };
            let mut x = tensor::<4>(&t, "input.sample", &dev);
            for (k, ts) in steps.as_array().unwrap().iter().enumerate() {
                let ts = ts.as_i64().unwrap();
                let out = s
                    .step(
                        tensor(&t, &format!("input.model_output.{k}"), &dev),
                        ts,
                        x,
                        eta,
                        Some(tensor(&t, &format!("input.variance_noise.{k}"), &dev)),
                        0,
                    )
                    .unwrap();
                let key = format!("output.{variant}.{window}.step{k}");
                assert_close(
                    &format!("{key} x0"),
                    &values(out.pred_original_sample),
                    &t[&format!("{key}.pred_original_sample")].1,
                    atol,
                    rtol,
                );
                let prev = values(out.prev_sample.clone());
                assert_close(
                    &format!("{key} prev"),
                    &prev,
                    &t[&format!("{key}.prev_sample")].1,
                    atol,
                    rtol,
                );
                checked += 1;
                x = out.prev_sample;
            }
        }
    }
    assert!(checked >= 150, "checked {checked} steps");
}

#[test]
fn dpm_solver_multistep_matches_diffusers_traces() {
    let t = read_safetensors(&fixture("diffusers_dpm.safetensors"));
    let meta = json("diffusers_dpm.json");
    let dev = test_device();
    for (variant, info) in meta["variants"].as_object().unwrap() {
        // Per variant: twice the distance between diffusers' float32 trace and the same run
        // in float64 (chained steps compound rounding; cosine without clipping is the worst).
        let atol = info["tolerance"]["atol"].as_f64().unwrap() as f32;
        let rtol = info["tolerance"]["rtol"].as_f64().unwrap() as f32;
        let mut cfg = info["config"].clone();
        cfg["_class_name"] = "DPMSolverMultistepScheduler".into();
        let mut s = DPMSolverMultistepScheduler::from_config(&cfg).unwrap();
        let mut boxed = scheduler_from_config(&cfg).unwrap();
        for n in meta["n_steps"].as_array().unwrap() {
            let n = n.as_u64().unwrap() as usize;
            s.set_timesteps(n).unwrap();
            boxed.set_timesteps(n).unwrap();
            let key = format!("output.{variant}.n{n}");
            assert_eq!(
                s.timesteps(),
                ints(&t[&format!("{key}.timesteps")].1).as_slice(),
                "{key} timesteps"
            );
            assert_close(
                &format!("{key} sigmas"),
                &s.sigmas,
                &t[&format!("{key}.sigmas")].1,
                atol,
                rtol,
            );
            let mut x = tensor::<4>(&t, "input.sample", &dev);
            let ts = s.timesteps().to_vec();
            for (k, &step_t) in ts.iter().enumerate() {
                let mo = tensor::<4>(&t, &format!("input.model_output.{}", k % 3), &dev)
                    + x.clone().mul_scalar(0.1);
                x = boxed.step(mo, step_t, x, 0.0, None, 0).unwrap().prev_sample;
                assert_close(
                    &format!("{key} step{k}"),
                    &values(x.clone()),
                    &t[&format!("{key}.step{k}")].1,
                    atol,
                    rtol,
                );
            }
            if n == 20 {
                s.set_timesteps(n).unwrap();
                let nt = ints(&t[&format!("{key}.add_noise_timesteps")].1);
                let got = s
                    .add_noise(
                        tensor(&t, "input.add_noise.original", &dev),
                        tensor(&t, "input.add_noise.noise", &dev),
                        &nt,
                    )
                    .unwrap();
                assert_close(
                    &format!("{key} add_noise"),
                    &values(got),
                    &t[&format!("{key}.add_noise")].1,
                    atol,
                    rtol,
                );
            }
        }
    }
}

#[test]
fn scheduler_errors_are_typed() {
    use vton_core::VtonError;
    let dev = test_device();
    let cfg = serde_json::json!({"_class_name": "DDIMScheduler"});
    let mut s = scheduler_from_config(&cfg).unwrap();
    let x = burn::tensor::Tensor::<4>::zeros([1, 4, 8, 8], &dev);
    // step before set_timesteps, wrong shapes, bad step counts, unknown classes.
    assert!(matches!(
        s.step(x.clone(), 999, x.clone(), 0.0, None, 0),
        Err(VtonError::InvalidArgument { .. })
    ));
    s.set_timesteps(10).unwrap();
    let y = burn::tensor::Tensor::<4>::zeros([1, 4, 8, 9], &dev);
    assert!(matches!(
        s.step(y, 900, x.clone(), 0.0, None, 0),
        Err(VtonError::Shape { .. })
    ));
    assert!(matches!(
        s.step(x.clone(), 5000, x.clone(), 0.0, None, 0),
        Err(VtonError::InvalidArgument { .. })
    ));
    assert!(s.set_timesteps(0).is_err() && s.set_timesteps(1001).is_err());
    assert!(matches!(
        scheduler_from_config(&serde_json::json!({"_class_name": "LMSDiscreteScheduler"})),
        Err(VtonError::Unsupported { .. })
    ));
    assert!(matches!(
        scheduler_from_config(
            &serde_json::json!({"_class_name": "DDIMScheduler", "beta_schedule": "sigmoid"})
        ),
        Err(VtonError::Unsupported { .. })
    ));
    assert!(matches!(
        scheduler_from_config(
            &serde_json::json!({"_class_name": "DDPMScheduler", "num_train_timesteps": "x"})
        ),
        Err(VtonError::Json { .. })
    ));
    // A seeded DDIM eta=1 step is reproducible and differs between seeds.
    let m = burn::tensor::Tensor::<4>::ones([1, 4, 8, 8], &dev).mul_scalar(0.1);
    let a = values(
        s.step(m.clone(), 900, x.clone(), 1.0, None, 5)
            .unwrap()
            .prev_sample,
    );
    let b = values(
        s.step(m.clone(), 900, x.clone(), 1.0, None, 5)
            .unwrap()
            .prev_sample,
    );
    let c = values(s.step(m, 900, x, 1.0, None, 6).unwrap().prev_sample);
    assert_eq!(a, b);
    assert_ne!(a, c);
}
