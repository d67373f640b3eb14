"""Step-parity fixture for training DanMenCas/DCI-VITON's diffusion U-Net, made by RUNNING
the original cells of `Train_DiffusionModel.ipynb` with the original
`diffusionmodel.UNet` / `NoiseScheduler`, `losses.VGGLoss` and diffusers' AutoencoderKL.

Run by hand from the repository root (needs torch, torchvision, diffusers, matplotlib,
safetensors; never a dependency of vton or CI):

    /work/refenv/bin/python scripts/reference/gen_dci_viton_train_unet.py \
        [/work/.mirror/DanMenCas+DCI-VITON/repo]

How the original runs here:

* `diffusionmodel.py`, `losses.py` and the notebook are exported with `git archive` at the
  pinned commit. `diffusionmodel.py` hard-codes `num_groups=8` in its four AdaGN
  constructions; the smallest U-Net with 8 groups (hidden 8) has ~11 M parameters, far over
  the fixture cap, so that literal becomes the module constant DCI_NUM_GROUPS (1 here; the
  JSON records it); with 8 the patched module is the original text. Nothing else changes.
* The notebook's code cells are executed as written, in order, in one namespace, with the
  literal substitutions listed in the JSON ("substitutions"): the VAE comes from the tiny
  diffusers folder tests/fixtures/dci_viton_pipeline_vae_pretrained instead of
  runwayml/stable-diffusion-v1-5; `UNet(9, 4)` gets small widths; `epochs = 300` becomes
  `epochs = 0` (the loop `range(epochs+1)` then runs one pass: one step per sample); the
  data-loading cell (files not in the repository) is replaced by the sample lists; the
  latent cell iterates names the notebook never defines (`original_images_batch`, ...),
  which are bound to the same lists. Cell 1's GroupNorm block sits at module level and
  refers to an undefined `m`: it would raise NameError, so those five lines are not run
  (they are dead code in the notebook: the GroupNorms are affine-free anyway).
* `losses.Vgg19` builds `torchvision.models.vgg19(pretrained=True)` (a download):
  `losses.models.vgg19` is replaced by a torchvision VGG19 (same layer sequence,
  `torchvision.models.vgg.VGG` + `make_layers`) with reduced widths and seeded random
  weights, stored under `vgg.features.<idx>.weight|bias` (torchvision layout).
* Recording: `torch.optim.AdamW` is a subclass whose `step()` first records every
  gradient; the scheduler's `get_noisy_image`, `nn.MSELoss` and `VGGLoss` are wrapped to
  record what they return. None of this changes a computed value. The training cell saves
  its checkpoint at epoch 0 (`models/...epoch_0.pth`, in a temporary folder): its layout is
  recorded in the JSON.
* Float64 floor: the same cells with the default dtype float64 (weights, VGG and VAE cast,
  the recorded latents given, `t` and the noise replayed: two substitutions).
* `perceptual_grad`: the same float32 step 0 with `decode_latents` without its
  `torch.no_grad()` (one substitution): the gradient through the VAE decoder.
"""
import hashlib
import io
import json
import math
import os
import subprocess
import sys
import tarfile
import tempfile
import types

import matplotlib

matplotlib.use("Agg")
import torch
import torch.nn as nn
import torchvision
from safetensors.torch import save_file

REPO = sys.argv[1] if len(sys.argv) > 1 else "/work/.mirror/DanMenCas+DCI-VITON/repo"
COMMIT = "e0a57848e0d09333006aa1ca8a0760f056eb69bd"
OUT = os.environ.get("DCI_OUT", "tests/fixtures/training")
NAME = "train_dci_viton_unet"
VAE_DIR = os.path.abspath("tests/fixtures/dci_viton_pipeline_vae_pretrained")
HIDDEN, TEMB, GROUPS = 1, 16, 1
IMAGE = 128  # latents 16x16 (tiny VAE: factor 8)
N_SAMPLES = 3  # one optimizer step each
VGG_CFG = [4, 4, "M", 8, 8, "M", 16, 16, 16, 16, "M", 16, 16, 16, 16, "M", 16, 16, 16, 16, "M"]
SEED = 0
# grad_perceptual is stored for the tensors up to this size only (the fixture size cap)
PERCEPTUAL_MAX_NUMEL = 4096

torch.set_num_threads(2)
tmp = tempfile.mkdtemp(prefix="dci_unet_train_")
tar = subprocess.check_output(
    ["git", "-C", REPO, "archive", COMMIT, "diffusionmodel.py", "losses.py", "Train_DiffusionModel.ipynb"])
tarfile.open(fileobj=io.BytesIO(tar)).extractall(tmp)
src_dm = open(os.path.join(tmp, "diffusionmodel.py")).read()
assert src_dm.count("num_groups=8") == 4
open(os.path.join(tmp, "diffusionmodel.py"), "w").write(
    src_dm.replace("num_groups=8", "num_groups=DCI_NUM_GROUPS").replace(
        "import torch\n", f"import torch\nDCI_NUM_GROUPS = {GROUPS}\n", 1))
sys.path.insert(0, tmp)
import diffusionmodel  # noqa: E402
import losses  # noqa: E402

CELLS = ["".join(c["source"]) for c in json.load(open(os.path.join(tmp, "Train_DiffusionModel.ipynb")))["cells"]
         if c["cell_type"] == "code"]
assert len(CELLS) == 9, len(CELLS)

GROUPNORM_BLOCK = """if isinstance(m, nn.GroupNorm):
    if hasattr(m, 'weight') and m.weight is not None:
        torch.nn.init.constant_(m.weight, 1)
    if hasattr(m, 'bias') and m.bias is not None:
        torch.nn.init.constant_(m.bias, 0)
"""
SUBS = []


def sub(text, old, new, why, count=1):
    assert text.count(old) == count, (old, text.count(old))
    SUBS.append({"old": old, "new": new, "why": why})
    return text.replace(old, new)


def sha256(path):
    return hashlib.sha256(open(path, "rb").read()).hexdigest()


# ----------------------------------------------------------------------------- VGG stand-in
def make_vgg(dtype):
    g = torch.Generator().manual_seed(1234)
    m = torchvision.models.vgg.VGG(torchvision.models.vgg.make_layers(VGG_CFG), init_weights=False)
    with torch.no_grad():
        for layer in m.features:
            if isinstance(layer, nn.Conv2d):
                fan_in = layer.in_channels * 9
                # drawn in float32 whatever the default dtype (the float64 run casts the same VGG)
                w = torch.randn(layer.weight.shape, generator=g, dtype=torch.float32) * math.sqrt(2.0 / fan_in)
                b = (torch.rand(layer.bias.shape, generator=g, dtype=torch.float32) * 2 - 1) * 0.05
                layer.weight.copy_(w.to(dtype))
                layer.bias.copy_(b.to(dtype))
    return m.to(dtype)


# ----------------------------------------------------------------------------- samples
def samples():
    g = torch.Generator().manual_seed(SEED + 7)
    smooth = lambda c: torch.tanh(1.5 * nn.functional.interpolate(  # noqa: E731
        torch.randn(1, c, 8, 8, generator=g), size=(IMAGE, IMAGE), mode="bilinear", align_corners=False))
    orig, inp, mask = [], [], []
    for _ in range(N_SAMPLES):
        person = smooth(3)
        m = (nn.functional.interpolate(torch.rand(1, 1, 4, 4, generator=g), size=(IMAGE, IMAGE),
                                       mode="nearest") > 0.5).float()
        agn = person * (1 - m) + smooth(3) * m  # the cloth region replaced, like inputs_viton
        orig.append(person)
        inp.append(agn)
        mask.append((m * 2 - 1).expand(1, 3, IMAGE, IMAGE).contiguous())
    return orig, inp, mask


# ----------------------------------------------------------------------------- recording
class Rec:
    def __init__(self):
        self.noisy = []  # (t, noise) per get_noisy_image call with noise=None
        self.mse, self.vgg, self.grads = [], [], []
        self.replay = None  # (list of t, list of noise) for replays


def instrument(ns, rec, names):
    sched = ns["scheduler"]
    orig_gni = sched.get_noisy_image

    # one record per step: the first call of a step draws the noise (noise=None)
    def gni_rec(x_0, t, noise=None):
        first = noise is None
        if first and rec.replay is not None:
            noise = rec.replay[1][len(rec.noisy)].to(x_0.dtype)
        x_t, n = orig_gni(x_0, t, noise)
        if first:
            rec.noisy.append((t.clone(), n.detach().clone()))
        return x_t, n

    sched.get_noisy_image = gni_rec
    mse, vgg = ns["mse_loss"], ns["vgg_loss"]
    mse_fwd, vgg_fwd = mse.forward, vgg.forward

    def mse_rec(a, b):
        v = mse_fwd(a, b)
        rec.mse.append(v.detach().clone())
        return v

    def vgg_rec(a, b):
        v = vgg_fwd(a, b)
        rec.vgg.append(v.detach().clone())
        return v

    mse.forward, vgg.forward = mse_rec, vgg_rec


def recording_adamw(rec, names):
    class RecAdamW(torch.optim.AdamW):
        def step(self, closure=None):
            model = names["model"]()
            rec.grads.append({k: (p.grad.detach().clone() if p.grad is not None else None)
                              for k, p in model.named_parameters()})
            return super().step(closure)
    return RecAdamW


def run(dtype, given=None, replay=None, grad_through_decoder=False, workdir=None):
    """Executes the notebook cells; returns (namespace, recorder, substitutions)."""
    global SUBS
    SUBS = []
    torch.set_default_dtype(dtype)
    torch.manual_seed(SEED)
    rec = Rec()
    rec.replay = replay
    names = {}
    ns = {"__name__": "__main__"}
    losses.models.vgg19 = lambda pretrained=False, **kw: make_vgg(dtype)
    cells = list(CELLS)
    # cell 1: the dead module-level GroupNorm block
    c1 = sub(cells[1], GROUPNORM_BLOCK, "", "module-level GroupNorm block (NameError on m; dead code)")
    if grad_through_decoder:
        c1 = sub(c1, "    with torch.no_grad():\n        imgs = vae.decode(latents).sample",
                 "    if True:\n        imgs = vae.decode(latents).sample", "perceptual_grad: decode with gradients")
    cells[1] = c1
    cells[3] = sub(cells[3], '"runwayml/stable-diffusion-v1-5",\n    subfolder="vae"', repr(VAE_DIR),
                   "tiny random VAE (fixture) instead of the SD 1.5 download")
    if dtype == torch.float64:
        cells[3] += "\nvae = vae.double()"
        SUBS.append({"old": "", "new": "vae = vae.double()", "why": "float64 floor"})
    cells[4] = ("original_images, inputs_viton, mask_images = _samples\n"
                "original_images = [i.to(device) for i in original_images]\n"
                "inputs_viton = [i.to(device) for i in inputs_viton]\n"
                "mask_images = [i.to(device) for i in mask_images]\n")
    SUBS.append({"old": "cell 4 (torch.load of data/diffusion/*.pth)", "new": "the sample lists",
                 "why": "data files not in the repository"})
    cells[5] = sub(cells[5], "UNet(9, 4)", f"UNet(9, 4, hidden_channels={HIDDEN}, time_emb_dim={TEMB})",
                   "small widths")
    cells[5] = sub(cells[5], "epochs = 300", "epochs = 0", "one pass over the samples")
    cells[5] = sub(cells[5], "torch.optim.AdamW(", "_AdamW(", "recording subclass")
    if given is not None:
        cells[5] += "\nviton.load_state_dict(_given_weights)"
        cells[7] = ("z_original_images = list(_given_latents[0])\nz_inputs_viton = list(_given_latents[1])\n"
                    "z_mask_images = list(_given_latents[2])\n")
        SUBS.append({"old": "cell 7 (encode)", "new": "the recorded latents and weights", "why": "replay"})
    else:
        cells[7] = ("original_images_batch, inputs_viton_batch, mask_images_batch = "
                    "original_images, inputs_viton, mask_images\n") + cells[7]
        SUBS.append({"old": "", "new": "original_images_batch, ... = original_images, ...",
                     "why": "names the notebook never defines"})
    if replay is not None:
        cells[8] = sub(cells[8], "t = torch.randint(0, scheduler.timesteps, (1, )).to(device)",
                       "t = _replay_t.pop(0).to(device)", "replayed timestep")
        ns["_replay_t"] = list(replay[0])
    ns["_samples"] = given[3] if given is not None else samples()
    if given is not None:
        ns["_given_weights"] = {k: v.to(dtype) for k, v in given[0].items()}
        ns["_given_latents"] = [[z.to(dtype) for z in lst] for lst in given[1]]
        ns["_samples"] = [[x.to(dtype) for x in lst] for lst in ns["_samples"]]
    ns["_AdamW"] = recording_adamw(rec, names)
    names["model"] = lambda: ns["viton"]
    cwd = os.getcwd()
    os.makedirs(os.path.join(workdir, "models"), exist_ok=True)
    for i, c in enumerate(cells):
        if i == 8:
            init = {k: v.detach().clone() for k, v in ns["viton"].state_dict().items()}
            ns["_init"] = init
            instrument(ns, rec, names)
            os.chdir(workdir)
        try:
            exec(compile(c, f"<cell {i}>", "exec"), ns)
        finally:
            os.chdir(cwd)
    torch.set_default_dtype(torch.float32)
    return ns, rec, list(SUBS)


# ============================================================================ float32 run
work = tempfile.mkdtemp(prefix="dci_unet_run_")
ns, rec, subs32 = run(torch.float32, workdir=work)
model, opt = ns["viton"], ns["viton_opt"]
init = ns["_init"]
names = [k for k, _ in model.named_parameters()]
assert len(rec.grads) == N_SAMPLES and len(rec.noisy) == N_SAMPLES
ts = [int(t.item()) for t, _ in rec.noisy]
t_meta = [{"shape": list(t.shape), "dtype": str(t.dtype)} for t, _ in rec.noisy]
tt = torch.tensor([rec.noisy[0][0]])
t_unet = {"expr": "torch.tensor([t]) with t = torch.randint(0, T, (1,))", "shape": list(tt.shape),
          "dtype": str(tt.dtype)}
ckpts = [f for f in os.listdir(os.path.join(work, "models"))]
assert len(ckpts) == 1, ckpts
saved = torch.load(os.path.join(work, "models", ckpts[0]), weights_only=True)
saved_meta = {
    "file": ckpts[0], "keys": sorted(saved.keys()), "epoch": saved["epoch"],
    "loss": saved["loss"],
    "optimizer_param_groups": [{k: (list(v) if isinstance(v, tuple) else v) for k, v in g.items() if k != "params"}
                               for g in saved["optimizer_state_dict"]["param_groups"]],
    "optimizer_num_params": len(saved["optimizer_state_dict"]["param_groups"][0]["params"]),
    "optimizer_state_indices": sorted(saved["optimizer_state_dict"]["state"].keys()),
    "optimizer_state_entry_keys": sorted(next(iter(saved["optimizer_state_dict"]["state"].values())).keys()),
    "model_state_dict_equals_final_weights": all(
        torch.equal(saved["model_state_dict"][k], v) for k, v in model.state_dict().items()),
}

# the VGG term sends no gradient: the full-loss gradient equals the MSE-only gradient
m2 = diffusionmodel.UNet(9, 4, hidden_channels=HIDDEN, time_emb_dim=TEMB)
m2.load_state_dict(init)
z0, zi, zm = ns["z_original_images"][0], ns["z_inputs_viton"][0], ns["z_mask_images"][0]
t0, n0 = rec.noisy[0]
sch = ns["scheduler"]
ab = sch.alphas_cumprod[t0].view(-1, 1, 1, 1)
zt = torch.sqrt(ab) * z0 + torch.sqrt(1.0 - ab) * n0
out = m2(torch.concat([zt, zi, zm[:, 0:1]], dim=1), torch.tensor([t0]))
nn.MSELoss()(out, n0).backward()
mse_only_equal = all(torch.equal(p.grad, rec.grads[0][k]) for k, p in m2.named_parameters())
zero_size = [k for k, p in m2.named_parameters() if p.numel() == 0]
zero_size_grad = {k: (None if rec.grads[0][k] is None else list(rec.grads[0][k].shape)) for k in zero_size}
print("mse-only gradient identical:", mse_only_equal, "zero-size params:", len(zero_size))
assert mse_only_equal

latents = [[z.detach().clone() for z in ns[k]] for k in ("z_original_images", "z_inputs_viton", "z_mask_images")]
samples_used = [list(ns["original_images"]), list(ns["inputs_viton"]), list(ns["mask_images"])]
replay = ([t for t, _ in rec.noisy], [n for _, n in rec.noisy])

# ============================================================================ perceptual grad
_, recp, subsp = run(torch.float32, given=(init, latents, None, samples_used), replay=replay,
                     grad_through_decoder=True, workdir=tempfile.mkdtemp())
assert [float(v) for v in recp.mse] == [float(v) for v in rec.mse]
pg_differs = any(not torch.equal(recp.grads[0][k], rec.grads[0][k]) for k in names
                 if rec.grads[0][k] is not None and rec.grads[0][k].numel() > 0)
print("perceptual-grad gradient differs:", pg_differs)

# ============================================================================ float64 floor
ns64, rec64, subs64 = run(torch.float64, given=(init, latents, None, samples_used), replay=replay,
                          workdir=tempfile.mkdtemp())


def rel(a, b):
    a, b = a.double(), b.double()
    d = float((a - b).abs().max()) if a.numel() else 0.0
    s = float(b.abs().max()) if b.numel() else 0.0
    return d / s if s > 0 else d


# Tensors whose exact gradient is zero (a conv bias right before a GroupNorm whose groups
# hold one channel each: the normalisation removes it): float32 gives rounding noise there
# (~1e-9) and AdamW turns it into updates up to lr per step; they are listed apart.
exact_zero = [k for k in names if rec64.grads[0][k] is not None and rec64.grads[0][k].numel()
              and float(rec64.grads[0][k].abs().max()) < 1e-12]
regular = [k for k in names if k not in exact_zero and rec.grads[0][k] is not None and rec.grads[0][k].numel()]
floor = {
    "mse": max(rel(a, b) for a, b in zip(rec.mse, rec64.mse)),
    "vgg": max(rel(a, b) for a, b in zip(rec.vgg, rec64.vgg)),
    "grad0_max_rel_per_tensor": max(rel(rec.grads[0][k], rec64.grads[0][k]) for k in regular),
    "weights_after_max_rel_change": max(
        rel(model.state_dict()[k] - init[k], ns64["viton"].state_dict()[k] - init[k].double()) for k in regular),
    "exact_zero_grad_params": exact_zero,
    "exact_zero_grad_float32_max_abs": max(float(rec.grads[0][k].abs().max()) for k in exact_zero) if exact_zero else 0.0,
    "exact_zero_weights_after_max_abs_change": max(
        float((model.state_dict()[k] - init[k]).abs().max()) for k in exact_zero) if exact_zero else 0.0,
    "note": "rel = max |f32 - f64| / max |f64| per tensor (weights: of the change over the 3 steps); "
            "exact_zero_grad_params excluded (see exact_zero_*)",
}
print("float64 floor", floor)


# ============================================================================ write
T = {}
for k, v in init.items():
    T[f"weights.{k}"] = v
for k, v in model.state_dict().items():
    T[f"after.{N_SAMPLES}.{k}"] = v
for k in names:
    g = rec.grads[0][k]
    if g is not None:
        T[f"grad.0.{k}"] = g
    gp = recp.grads[0][k]
    if gp is not None and gp.numel() <= PERCEPTUAL_MAX_NUMEL:
        T[f"grad_perceptual.0.{k}"] = gp
st = opt.state_dict()
params = dict(model.named_parameters())
for i, k in enumerate(names):
    s = st["state"].get(i)
    if s is None:
        continue
    T[f"adam.{N_SAMPLES}.{k}.exp_avg"] = s["exp_avg"]
    T[f"adam.{N_SAMPLES}.{k}.exp_avg_sq"] = s["exp_avg_sq"]
    T[f"adam.{N_SAMPLES}.{k}.step"] = s["step"]
vgg_sd = ns["vgg_loss"].vgg.state_dict()
# Vgg19 keeps features in slices: map back to torchvision's features.<idx>
for k, v in vgg_sd.items():
    _, idx, what = k.split(".")  # slice<n>.<idx>.<weight|bias>
    T[f"vgg.features.{idx}.{what}"] = v
for s in range(N_SAMPLES):
    T[f"step.{s}.t"] = replay[0][s]
    T[f"step.{s}.noise"] = replay[1][s]
    T[f"loss.{s}.mse"] = rec.mse[s]
    T[f"loss.{s}.vgg"] = rec.vgg[s]
    T[f"loss.{s}.total"] = torch.tensor(ns["losses"][s], dtype=torch.float64)
    T[f"loss64.{s}.mse"] = rec64.mse[s]
    T[f"loss64.{s}.vgg"] = rec64.vgg[s]
    T[f"loss_perceptual.{s}.vgg"] = recp.vgg[s]
    T[f"latent.{s}.z_original"] = latents[0][s]
    T[f"latent.{s}.z_input"] = latents[1][s]
    T[f"latent.{s}.z_mask"] = latents[2][s]
    T[f"image.{s}.x0_original"] = samples_used[0][s]
T["sched.alphas_cumprod"] = ns["scheduler"].alphas_cumprod
T = {k: v.detach().contiguous() for k, v in T.items()}
os.makedirs(OUT, exist_ok=True)
path = f"{OUT}/{NAME}.safetensors"
save_file(T, path)
meta = {
    "reference": {"repo": "https://github.com/DanMenCas/DCI-VITON", "commit": COMMIT,
                  "files": ["Train_DiffusionModel.ipynb", "diffusionmodel.py", "losses.py"],
                  "torch": torch.__version__, "torchvision": torchvision.__version__,
                  "diffusers": __import__("diffusers").__version__,
                  "cpu_capability": torch.backends.cpu.get_cpu_capability()},
    "unet": {"input_channels": 9, "output_channels": 4, "hidden_channels": HIDDEN, "time_emb_dim": TEMB,
             "num_groups": GROUPS, "se_reduction": 16,
             "patch": "num_groups=8 -> num_groups=DCI_NUM_GROUPS (4 places); nothing else"},
    "vae": "tests/fixtures/dci_viton_pipeline_vae_pretrained (diffusers AutoencoderKL, random)",
    "vgg_cfg": VGG_CFG,
    "image_size": IMAGE, "latent_size": IMAGE // 8, "steps": N_SAMPLES, "batch_size": 1,
    "options": {"lr": 1e-5, "betas": [0.5, 0.999], "eps": 1e-8, "weight_decay": 0.01, "vgg_lambda": 0.001,
                "timesteps": 1000, "beta_schedule": "cosine"},
    "timesteps": ts, "t_from_randint": t_meta, "t_given_to_unet": t_unet,
    "param_order": names,
    "zero_size_params": zero_size, "zero_size_param_grads": zero_size_grad,
    "losses": {"mse": [float(v) for v in rec.mse], "vgg": [float(v) for v in rec.vgg],
               "total": [float(v) for v in ns["losses"]],
               "vgg_perceptual_run": [float(v) for v in recp.vgg]},
    "checks": {"grad_full_equals_mse_only_bitwise": mse_only_equal,
               "perceptual_grad_differs": pg_differs,
               "perceptual_grad_max_rel_diff_vs_mse_only": max(
                   rel(recp.grads[0][k], rec.grads[0][k]) for k in regular)},
    "float64_floor_rel": floor,
    "saved_checkpoint": saved_meta,
    "substitutions": {"float32": subs32, "perceptual_grad": subsp, "float64": subs64},
    "keys": {
        "weights.<k>": "initial state_dict (weights_init applied: xavier_normal_ conv weights, zero conv biases; "
                       "Linear layers at torch's default)",
        "after.3.<k>": "state_dict after the 3 optimizer steps",
        "grad.0.<k>": "gradient of every parameter at the first step (total loss)",
        "grad_perceptual.0.<k>": "first-step gradient when decode_latents keeps its graph "
                                 f"(tensors of at most {PERCEPTUAL_MAX_NUMEL} elements)",
        "adam.3.<k>.exp_avg|exp_avg_sq|step": "AdamW state after 3 steps",
        "step.<s>.t|noise": "the timestep (int64, shape [1]) and noise drawn at step s",
        "loss.<s>.mse|vgg|total": "loss terms (vgg unweighted; total = mse + 0.001 vgg, float64 from .item())",
        "loss64.<s>.*": "float64 run", "loss_perceptual.<s>.vgg": "perceptual_grad run",
        "latent.<s>.z_original|z_input|z_mask": "the latents of sample s (encode_latents sample; mask nearest)",
        "image.<s>.x0_original": "the person image of sample s ([-1, 1]; the VGG target)",
        "vgg.features.<idx>.weight|bias": "VGG19 stand-in (torchvision layout)",
        "sched.alphas_cumprod": "NoiseScheduler(1000, 'cosine').alphas_cumprod (float32)",
    },
    "sha256": sha256(path), "bytes": os.path.getsize(path),
}
json.dump(meta, open(f"{OUT}/{NAME}.json", "w"), indent=1)
print(path, meta["bytes"], "bytes; t =", ts, "losses", meta["losses"])
