"""Reference traces of diffusers' DPMSolverMultistepScheduler for vton's parity tests.

Run by hand (needs torch + diffusers, never a dependency of vton or CI):
    python scripts/reference/gen_dpm_fixture.py tests/fixtures
Writes diffusers_dpm.safetensors (inputs + outputs) and diffusers_dpm.json (variants).
For each variant and step count N: set_timesteps(N); x = sample; for every step k,
x = step(model_output[k % 3] + 0.1 * x, t, x).prev_sample (the model output depends on
the sample so that errors compound as in real sampling); every prev_sample is stored.
"""
import json
import sys

import diffusers
import torch
from safetensors.torch import save_file

out_dir = sys.argv[1]
g = torch.Generator().manual_seed(1234)
shape = (1, 4, 8, 8)
tensors = {
    "input.sample": torch.randn(shape, generator=g),
    "input.add_noise.original": torch.randn((2, 4, 8, 8), generator=g),
    "input.add_noise.noise": torch.randn((2, 4, 8, 8), generator=g),
}
for k in range(3):
    tensors[f"input.model_output.{k}"] = torch.randn(shape, generator=g)

variants = {
    "sd15": dict(beta_schedule="scaled_linear", beta_start=0.00085, beta_end=0.012),
    "sd15_v_heun": dict(beta_schedule="scaled_linear", beta_start=0.00085, beta_end=0.012,
                        prediction_type="v_prediction", solver_type="heun"),
    "linear_order1": dict(solver_order=1),
    "cos_dpmsolver": dict(beta_schedule="squaredcos_cap_v2", algorithm_type="dpmsolver",
                          final_sigmas_type="sigma_min"),
    "cos_dpmsolver_heun_sample": dict(beta_schedule="squaredcos_cap_v2", algorithm_type="dpmsolver",
                                      solver_type="heun", prediction_type="sample",
                                      final_sigmas_type="sigma_min", lambda_min_clipped=-5.1),
    "leading_offset_sigma_min": dict(beta_schedule="scaled_linear", beta_start=0.00085, beta_end=0.012,
                                     timestep_spacing="leading", steps_offset=1, final_sigmas_type="sigma_min"),
    "trailing_no_lower_final": dict(timestep_spacing="trailing", lower_order_final=False,
                                    final_sigmas_type="sigma_min"),
}
meta = {"reference": {"package": "diffusers", "version": diffusers.__version__},
        "torch_version": torch.__version__, "shape": list(shape), "n_steps": [5, 20, 25],
        "variants": {}}
# Per variant: max |f32 trace - same run in float64| / (1 + |ref|) over every stored step.
for name, kw in variants.items():
    s = diffusers.DPMSolverMultistepScheduler(**kw)
    meta["variants"][name] = {"kwargs": kw, "config": {k: v for k, v in s.config.items()}}
    floor = 0.0
    for n in meta["n_steps"]:
        s.set_timesteps(n)
        tensors[f"output.{name}.n{n}.timesteps"] = s.timesteps.clone()
        tensors[f"output.{name}.n{n}.sigmas"] = s.sigmas.clone()
        x = tensors["input.sample"].clone()
        for k, t in enumerate(s.timesteps):
            mo = tensors[f"input.model_output.{k % 3}"] + 0.1 * x
            x = s.step(mo, t, x).prev_sample
            tensors[f"output.{name}.n{n}.step{k}"] = x.clone()
        # The same run in float64 (sigmas promoted): how far float32 itself is from exact.
        s.set_timesteps(n)
        s.sigmas = s.sigmas.double()
        x64 = tensors["input.sample"].double()
        for k, t in enumerate(s.timesteps):
            mo = tensors[f"input.model_output.{k % 3}"].double() + 0.1 * x64
            x64 = s.step(mo, t, x64).prev_sample
            ref = tensors[f"output.{name}.n{n}.step{k}"].double()
            floor = max(floor, ((x64 - ref).abs() / (1 + ref.abs())).max().item())
        if n == 20:
            s.set_timesteps(n)
            ts = s.timesteps[[2, 11]]
            tensors[f"output.{name}.n{n}.add_noise_timesteps"] = ts.clone()
            tensors[f"output.{name}.n{n}.add_noise"] = s.add_noise(
                tensors["input.add_noise.original"], tensors["input.add_noise.noise"], ts)
    # Tolerance: twice the float32-vs-float64 floor, and never below 1e-5.
    tol = max(1e-5, float(f"{2 * floor:.1g}"))
    meta["variants"][name]["float64_check"] = floor
    meta["variants"][name]["tolerance"] = {"atol": tol, "rtol": tol}

meta["tolerance"] = {"note": "per variant: twice its float64_check floor (chained steps compound "
                              "float32 rounding), never below 1e-5"}
save_file({k: v.contiguous() for k, v in tensors.items()}, f"{out_dir}/diffusers_dpm.safetensors")
with open(f"{out_dir}/diffusers_dpm.json", "w") as f:
    json.dump(meta, f, indent=1, default=str)
print("wrote", len(tensors), "tensors")
