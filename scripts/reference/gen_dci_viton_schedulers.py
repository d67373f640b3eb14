"""Fixture: DanMenCas/DCI-VITON's U-Net sampled with diffusers' DDIMScheduler and
DPMSolverMultistepScheduler instead of its own loop (vton's `DciSampler::Ddim` /
`DciSampler::DpmSolver`), made by RUNNING the original U-Net and diffusers.

Run by hand from the repository root (never a dependency of vton or CI):

    /work/refenv/bin/python scripts/reference/gen_dci_viton_schedulers.py

The U-Net is the original `diffusionmodel.UNet` (exported from the mirror at the pinned
commit; `num_groups=8` patched to the fixture's 1, as gen_dci_viton_unet.py does) with the
weights of tests/fixtures/dci_viton_unet_ckpt.pth; z_cond, mask and the start noise are
the inputs of tests/fixtures/dci_viton_unet_sampler.safetensors. The schedulers get the
original NoiseScheduler's betas as `trained_betas` (linear, the pipeline's, and cosine,
the training notebook's). The loop: x = add_noise(z_cond, noise, timesteps[0]) (the
original also starts from the noised condition latent), then per timestep
eps = unet(cat([x, z_cond, mask]), tensor([t])), x = step(eps, t, x).prev_sample.

Writes tests/fixtures/dci_viton_schedulers.{safetensors,json}.
"""
import hashlib
import io
import json
import math
import os
import subprocess
import tarfile
import tempfile
import types

import torch
from diffusers import DDIMScheduler, DPMSolverMultistepScheduler
from safetensors.torch import load_file, save_file

MIRROR = "/work/.mirror/DanMenCas+DCI-VITON/repo"
COMMIT = subprocess.check_output(["git", "-C", MIRROR, "rev-parse", "HEAD"]).decode().strip()
OUT = "tests/fixtures"
tmp = tempfile.mkdtemp(prefix="dci_sched_")
tar = subprocess.check_output(["git", "-C", MIRROR, "archive", COMMIT, "diffusionmodel.py"])
tarfile.open(fileobj=io.BytesIO(tar)).extractall(tmp)
src = open(os.path.join(tmp, "diffusionmodel.py")).read()
assert src.count("num_groups=8") == 4
src = src.replace("num_groups=8", "num_groups=DCI_NUM_GROUPS")
meta_unet = json.load(open(f"{OUT}/dci_viton_unet.json"))
groups = meta_unet["patched_constants"]["DCI_NUM_GROUPS"]
ctor = meta_unet["constructor"]
dm = types.ModuleType("diffusionmodel")
dm.__dict__["DCI_NUM_GROUPS"] = groups
exec(compile(src, os.path.join(tmp, "diffusionmodel.py"), "exec"), dm.__dict__)


def unet(dtype):
    m = dm.UNet(ctor["input_channels"], ctor["output_channels"], hidden_channels=ctor["hidden_channels"],
                time_emb_dim=ctor["time_emb_dim"])
    m.load_state_dict(torch.load(f"{OUT}/dci_viton_unet_ckpt.pth", weights_only=True)["model_state_dict"])
    m = m.to(dtype).eval()
    if dtype == torch.float64:
        e = m.time_mlp[0]
        e.embeddings = torch.exp(torch.arange(e.half_dim, dtype=torch.float64) * -(math.log(10000) / (e.half_dim - 1)))
    return m


inp = load_file(f"{OUT}/dci_viton_unet_sampler.safetensors")
z_cond, mask, noise = inp["input.z_cond"], inp["input.mask"], inp["input.init_noise"]

DDIM = dict(clip_sample=False, set_alpha_to_one=False, steps_offset=1, timestep_spacing="leading")
DPM = dict(algorithm_type="dpmsolver++", solver_order=2, timestep_spacing="linspace")
cases = {
    "ddim_linear": (DDIMScheduler, DDIM, "linear", 6),
    "dpm_linear": (DPMSolverMultistepScheduler, DPM, "linear", 6),
    "ddim_cosine": (DDIMScheduler, DDIM, "cosine", 4),
}


def run(cls, kw, betas, steps, model, dtype):
    s = cls(num_train_timesteps=len(betas), trained_betas=betas.tolist(), **kw)
    s.set_timesteps(steps)
    ts = s.timesteps
    x = s.add_noise(z_cond, noise, ts[:1]).to(dtype)
    z, mk = z_cond.to(dtype), mask.to(dtype)
    eps_all = []
    with torch.no_grad():
        for t in ts:
            e = model(torch.cat([x, z, mk], 1), torch.tensor([int(t)], dtype=dtype if dtype == torch.float64 else torch.long))
            eps_all.append(e.float())
            x = s.step(e, t, x).prev_sample
    return ts, x, eps_all


tensors, meta_cases = {}, {}
m32, m64 = unet(torch.float32), unet(torch.float64)
for name, (cls, kw, sched, steps) in cases.items():
    betas = dm.NoiseScheduler(1000, sched).betas
    ts, x, eps = run(cls, kw, betas, steps, m32, torch.float32)
    _, x64, _ = run(cls, kw, betas, steps, m64, torch.float64)
    tensors[f"{name}.timesteps"] = ts.clone()
    tensors[f"{name}.final"] = x.contiguous()
    tensors[f"{name}.eps"] = torch.stack(eps).contiguous()
    meta_cases[name] = {"scheduler": cls.__name__, "config": kw, "beta_schedule": sched, "steps": steps,
                        "timesteps": ts.tolist(),
                        "float64_final_max_abs": float((x.double() - x64).abs().max()),
                        "final_abs_max": float(x.abs().max())}
path = f"{OUT}/dci_viton_schedulers.safetensors"
save_file(tensors, path)
import diffusers  # noqa: E402
meta = {"reference": {"repo": "https://github.com/DanMenCas/DCI-VITON", "commit": COMMIT, "files": ["diffusionmodel.py"],
                      "torch": torch.__version__, "diffusers": diffusers.__version__},
        "unet": "dci_viton_unet_ckpt.pth (constructor and num_groups as dci_viton_unet.json)",
        "inputs": "z_cond, mask, init_noise of dci_viton_unet_sampler.safetensors",
        "loop": "x = add_noise(z_cond, noise, timesteps[:1]); per t: eps = unet(cat([x, z_cond, mask]), [t]); x = step(eps, t, x).prev_sample",
        "cases": meta_cases,
        "tolerance": "final latent: atol max(2e-4, 4 * float64_final_max_abs), rtol 1e-4 (x0 = (x - sqrt(1-ab) eps) / sqrt(ab) "
                     "amplifies U-Net float32 differences at the first timestep)",
        "sha256": hashlib.sha256(open(path, "rb").read()).hexdigest(),
        "tensors": {k: list(v.shape) for k, v in tensors.items()}}
json.dump(meta, open(f"{OUT}/dci_viton_schedulers.json", "w"), indent=1)
print(json.dumps(meta_cases, indent=1))
