"""Step-parity fixture for training DanMenCas/DCI-VITON's warping network, made by RUNNING
the original training cell of `Train_WarpingNetwork.ipynb` with the original
`warpingnetwork.WarpingProcess` and `losses.VGGLoss` / `losses.flow_loss`.

Run by hand from the repository root (needs torch, torchvision, safetensors; never a
dependency of vton or CI):

    /work/refenv/bin/python scripts/reference/gen_dci_viton_train_warp.py \
        [/work/.mirror/DanMenCas+DCI-VITON/repo]

How the original runs here:

* `warpingnetwork.py`, `losses.py`, `parsehuman.py` and the notebook are exported with
  `git archive` at the pinned commit into a temporary folder put first on sys.path.
  Packages the two modules import at module level for the pre-processing only (detectron2,
  densepose, rembg, cv2, ...) are replaced by inert stub modules when they fail to import;
  the JSON lists which.
* The notebook's code cells are read from the .ipynb. The definitions cell (`make_grid`,
  `weights_init`, `warped_cloth_into_agnostic`) and the training cell are executed as
  written, with three literal substitutions, recorded in the JSON: `WarpingProcess(96)` ->
  `WarpingProcess(OC)`, `epochs = 30` -> `epochs = 0` (the loop `range(epochs+1)` then runs
  one pass over the step list) and nothing else. The data-loading cell is not run (it reads
  files that are not in the repository and uses an undefined `images`); the step lists
  `inputs_1`, `inputs_2`, `warped_cloths`, `warped_masks` it would build are given directly
  (see "inputs" in the JSON).
* `losses.Vgg19` builds `torchvision.models.vgg19(pretrained=True)`: the download is
  impossible here, so `losses.models.vgg19` is replaced by a torchvision VGG19 (same layer
  sequence, `torchvision.models.vgg.VGG` + `make_layers`) with reduced widths and seeded
  random weights. Its `features` convs used by VGGLoss (0..28) are stored in the fixture
  under `vgg.features.<idx>.weight|bias` (torchvision layout).
* Recording: `torch.optim.Adam` is a subclass whose `step()` first records every gradient
  and parameter; `nn.L1Loss`, `VGGLoss` and `flow_loss` are wrapped to record each value
  they return (in call order). None of this changes a computed value.
* The same run in float64 (default dtype float64, the float32 initial weights, VGG and
  inputs cast) measures the float32 floor.
"""
import hashlib
import io
import importlib
import importlib.abc
import importlib.machinery
import json
import os
import subprocess
import sys
import tarfile
import tempfile
import types

import torch
import torch.nn as nn
import torch.nn.functional as F
import torchvision
from safetensors.torch import save_file

REPO = sys.argv[1] if len(sys.argv) > 1 else "/work/.mirror/DanMenCas+DCI-VITON/repo"
COMMIT = "e0a57848e0d09333006aa1ca8a0760f056eb69bd"
OUT = os.environ.get("DCI_OUT", "tests/fixtures/training")
NAME = "train_dci_viton_warp"
OC = 4
B = 2
SIZE = int(os.environ.get("DCI_SIZE", 64))
K = 3
SEED = 0
# VGG19 widths per stage (torchvision: 64, 128, 256, 512, 512), reduced 16x.
VGG_WIDTHS = (4, 8, 16, 32, 32)

torch.set_num_threads(2)

# ---------------------------------------------------------------- the original code
export = tempfile.mkdtemp(prefix="dci_viton_train_")
tar = subprocess.check_output(["git", "-C", REPO, "archive", COMMIT, "warpingnetwork.py", "losses.py",
                               "parsehuman.py", "Train_WarpingNetwork.ipynb"])
tarfile.open(fileobj=io.BytesIO(tar)).extractall(export)
sys.path.insert(0, export)

CANDIDATES = ["cv2", "rembg", "detectron2", "densepose", "matplotlib", "tqdm", "transformers", "numba"]
stubbed = {}
for name in CANDIDATES:
    try:
        importlib.import_module(name)
    except Exception as e:  # noqa: BLE001 - any failure means 'unavailable here'
        stubbed[name] = f"{type(e).__name__}: {e}"
        for k in [k for k in sys.modules if k == name or k.startswith(name + ".")]:
            del sys.modules[k]


class _Inert:
    def __init__(self, *a, **k):
        pass

    def __call__(self, *a, **k):
        return _Inert()

    def __getattr__(self, n):
        return _Inert()


class _StubModule(types.ModuleType):
    def __getattr__(self, n):
        if n.startswith("__"):
            raise AttributeError(n)
        return _Inert


class _StubFinder(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    def find_spec(self, name, path, target=None):
        if name.split(".")[0] in stubbed:
            return importlib.machinery.ModuleSpec(name, self, is_package=True)
        return None

    def create_module(self, spec):
        m = _StubModule(spec.name)
        m.__path__ = []
        return m

    def exec_module(self, module):
        pass


sys.meta_path.insert(0, _StubFinder())
import warpingnetwork as wn  # noqa: E402
import losses as dci_losses  # noqa: E402

with open(os.path.join(export, "Train_WarpingNetwork.ipynb")) as f:
    CELLS = ["".join(c["source"]) for c in json.load(f)["cells"] if c["cell_type"] == "code"]
DEF_CELL = next(c for c in CELLS if "def weights_init" in c)
# The training cells: options and criteria, generator and optimiser, the loop.
TRAIN_CELLS = [next(c for c in CELLS if c.startswith("lr = ")),
               next(c for c in CELLS if c.startswith("generator = WarpingProcess")),
               next(c for c in CELLS if "gen_opt.step()" in c)]
TRAIN_CELL = "\n".join(TRAIN_CELLS)
SUBST = [("WarpingProcess(96)", f"WarpingProcess({OC})"), ("epochs = 30", "epochs = 0")]
for a, _ in SUBST:
    assert TRAIN_CELL.count(a) == 1, a
TRAIN_RUN = TRAIN_CELL
for a, b in SUBST:
    TRAIN_RUN = TRAIN_RUN.replace(a, b)


# ---------------------------------------------------------------- VGG19 stand-in
def vgg_cfg():
    w = VGG_WIDTHS
    return [w[0], w[0], "M", w[1], w[1], "M", w[2], w[2], w[2], w[2], "M",
            w[3], w[3], w[3], w[3], "M", w[4], w[4], w[4], w[4], "M"]


def make_vgg_state():
    gen = torch.Generator().manual_seed(SEED + 100)
    vgg = torchvision.models.vgg.VGG(torchvision.models.vgg.make_layers(vgg_cfg()), init_weights=False)
    with torch.no_grad():
        for m in vgg.features:
            if isinstance(m, nn.Conv2d):
                fan_in = m.in_channels * 9
                m.weight.copy_(torch.randn(m.weight.shape, generator=gen) * (2.0 / fan_in) ** 0.5)
                m.bias.copy_(torch.rand(m.bias.shape, generator=gen) * 0.2 - 0.1)
    return {k: v.clone() for k, v in vgg.state_dict().items() if k.startswith("features.")}


VGG_STATE = make_vgg_state()
VGG_DTYPE = [torch.float32]


def vgg19_stand_in(*args, **kwargs):
    vgg = torchvision.models.vgg.VGG(torchvision.models.vgg.make_layers(vgg_cfg()), init_weights=False)
    vgg.load_state_dict({k: v for k, v in VGG_STATE.items()}, strict=False)
    return vgg.to(VGG_DTYPE[0])


dci_losses.models.vgg19 = vgg19_stand_in


# ---------------------------------------------------------------- inputs
def smooth(gen, b, c, h, w, cells):
    z = torch.rand(b, c, cells, cells, generator=gen)
    return F.interpolate(z, size=(h, w), mode="bicubic", align_corners=False).clamp(0, 1)


def make_step_inputs(gen):
    """One step's batch, as WarpingCloth builds the network inputs (ToTensor, [0, 1]) and the
    targets in vton's default convention (warped_mask {0, 1}, warped_cloth = image [0, 1] *
    warped_mask)."""
    cloth = smooth(gen, B, 3, SIZE, SIZE, 8)
    mask = (smooth(gen, B, 1, SIZE, SIZE, 5) > 0.45).float()
    dense = smooth(gen, B, 3, SIZE, SIZE, 12)
    labels = torch.randint(0, 20, (B, 1, 8, 8), generator=gen).float()
    parse = F.interpolate(labels, size=(SIZE, SIZE), mode="nearest").repeat(1, 3, 1, 1) / 255.0
    person = smooth(gen, B, 3, SIZE, SIZE, 10)
    wmask = (smooth(gen, B, 1, SIZE, SIZE, 4) > 0.5).float()
    return {
        "input_1": torch.cat([cloth, mask], 1),
        "input_2": torch.cat([dense, parse * 15], 1),
        "warped_cloth": person * wmask,
        "warped_mask": wmask,
    }


gen = torch.Generator().manual_seed(SEED)
STEPS = [make_step_inputs(gen) for _ in range(K)]


# ---------------------------------------------------------------- recording run
def run(dtype, init_sd=None):
    torch.manual_seed(SEED)
    torch.set_default_dtype(dtype)
    VGG_DTYPE[0] = dtype
    rec = {"l1": [], "vgg": [], "tv": [], "steps": []}

    class RecL1(nn.L1Loss):
        def forward(self, a, b):
            v = super().forward(a, b)
            rec["l1"].append(float(v))
            return v

    class RecVGG(dci_losses.VGGLoss):
        def forward(self, a, b):
            v = super().forward(a, b)
            rec["vgg"].append(float(v))
            return v

    def rec_flow_loss(fl):
        v = dci_losses.flow_loss(fl)
        rec["tv"].append(float(v))
        return v

    g = {}

    class RecAdam(torch.optim.Adam):
        def step(self, closure=None):
            model = g["generator"]
            rec["steps"].append({
                "grad": {n: (None if p.grad is None else p.grad.detach().clone()) for n, p in model.named_parameters()},
                "before": {n: p.detach().clone() for n, p in model.named_parameters()},
            })
            out = super().step(closure)
            rec["steps"][-1]["after"] = {n: p.detach().clone() for n, p in model.named_parameters()}
            return out

    nn_shim = types.SimpleNamespace(**{k: getattr(nn, k) for k in dir(nn) if not k.startswith("__")})
    nn_shim.L1Loss = RecL1
    torch_shim = types.SimpleNamespace(**{k: getattr(torch, k) for k in dir(torch) if not k.startswith("__")})
    torch_shim.optim = types.SimpleNamespace(Adam=RecAdam)
    g.update({"torch": torch, "nn": nn, "F": F, "np": __import__("numpy"), "random": __import__("random")})
    exec(compile(DEF_CELL, "Train_WarpingNetwork.ipynb:definitions", "exec"), g)
    if init_sd is not None:
        def weights_init_copy(m):
            if isinstance(m, wn.WarpingProcess):
                m.load_state_dict({k: v.to(dtype) for k, v in init_sd.items()})
        g["weights_init"] = weights_init_copy
    g.update({
        "torch": torch_shim, "nn": nn_shim, "device": torch.device("cpu"),
        "WarpingProcess": wn.WarpingProcess, "VGGLoss": RecVGG, "flow_loss": rec_flow_loss,
        "inputs_1": [s["input_1"].to(dtype) for s in STEPS],
        "inputs_2": [s["input_2"].to(dtype) for s in STEPS],
        "warped_cloths": [s["warped_cloth"].to(dtype) for s in STEPS],
        "warped_masks": [s["warped_mask"].to(dtype) for s in STEPS],
    })
    exec(compile(TRAIN_RUN, "Train_WarpingNetwork.ipynb:training", "exec"), g)
    torch.set_default_dtype(torch.float32)
    assert len(rec["steps"]) == K and len(rec["l1"]) == 5 * K and len(rec["vgg"]) == 5 * K
    rec["loss_G"] = list(g["losses"])
    rec["generator"] = g["generator"]
    rec["optimizer"] = g["gen_opt"]
    rec["train_mode"] = g["generator"].training
    return rec


def terms(rec, s):
    """Loss terms of step s by the names vton's trainer reports."""
    l1 = rec["l1"][5 * s:5 * s + 5]
    vg = rec["vgg"][5 * s:5 * s + 5]
    out = {"l1_final": l1[0], "vgg_final": vg[0], "loss_tv": rec["tv"][s]}
    for j in range(4):
        out[f"l1_scale.{j}"] = l1[1 + j] / 2 ** (4 - j)
        out[f"vgg_scale.{j}"] = vg[1 + j] / 2 ** (4 - j)
    out["loss_l1_cloth"] = l1[0] + sum(out[f"l1_scale.{j}"] for j in range(4))
    out["loss_vgg"] = vg[0] + sum(out[f"vgg_scale.{j}"] for j in range(4))
    out["loss_G"] = rec["loss_G"][s]
    return out


r32 = run(torch.float32)
init = r32["steps"][0]["before"]
r64 = run(torch.float64, init_sd=init)

# ---------------------------------------------------------------- non-square input
nonsquare = {}
m = wn.WarpingProcess(OC)
for h, w in [(64, 96), (96, 64)]:
    try:
        with torch.no_grad():
            m(torch.rand(1, 4, h, w), torch.rand(1, 6, h, w), torch.device("cpu"))
        nonsquare[f"{h}x{w}"] = "ran"
    except Exception as e:  # noqa: BLE001
        nonsquare[f"{h}x{w}"] = f"{type(e).__name__}: {str(e).splitlines()[0]}"

# ---------------------------------------------------------------- write
tensors = {}
for k, v in init.items():
    tensors[f"weights.{k}"] = v.contiguous()
for k, v in VGG_STATE.items():
    tensors[f"vgg.{k}"] = v.contiguous()
for s, st in enumerate(STEPS):
    for k, v in st.items():
        tensors[f"batch.{s}.{k}"] = v.contiguous()
for s in range(K):
    for k, v in terms(r32, s).items():
        tensors[f"loss.{s}.{k}"] = torch.tensor(v, dtype=torch.float32)
none_grad = sorted(n for n, gr in r32["steps"][0]["grad"].items() if gr is None)
for n, gr in r32["steps"][0]["grad"].items():
    if gr is not None:
        tensors[f"grad.0.{n}"] = gr.contiguous()
for n, v in r32["steps"][-1]["after"].items():
    tensors[f"after.{K}.{n}"] = v.contiguous()
opt_sd = r32["optimizer"].state_dict()
names = [n for n, _ in r32["generator"].named_parameters()]
for idx, st in opt_sd["state"].items():
    tensors[f"adam.{K}.{names[idx]}.exp_avg"] = st["exp_avg"].contiguous()
    tensors[f"adam.{K}.{names[idx]}.exp_avg_sq"] = st["exp_avg_sq"].contiguous()
adam_steps = sorted({int(st["step"]) for st in opt_sd["state"].values()})


def maxrel(a, b):
    a, b = a.double(), b.double()
    return float((a - b).abs().max() / b.abs().max().clamp_min(1e-30))


g32, g64 = r32["steps"][0]["grad"], r64["steps"][0]["grad"]
gmax = max(float(g64[n].abs().max()) for n in names if g64[n] is not None)
# Parameters whose true gradient is zero: the biases of conv_1 / conv_2 in every
# ResNetEncoderBlock are followed by InstanceNorm2d, which subtracts the per-channel mean,
# so the loss does not depend on them; their float gradients are rounding noise (~1e-10).
zero_true = sorted(n for n in names if g64[n] is not None and float(g64[n].abs().max()) < 1e-7 * gmax)
live = [n for n in names if g64[n] is not None and n not in zero_true]
floor_loss_steps = [max(abs(terms(r32, s)[k] - terms(r64, s)[k]) / max(abs(terms(r64, s)[k]), 1e-30)
                        for k in terms(r32, s)) for s in range(K)]
floor_loss = max(floor_loss_steps)
floor_grad = max(maxrel(g32[n], g64[n]) for n in live)
floor_grad_zero_abs = max(float((g32[n].double() - g64[n]).abs().max()) for n in zero_true) if zero_true else 0.0
a32, a64 = r32["steps"][-1]["after"], r64["steps"][-1]["after"]
adiff = {n: float((a32[n].double() - a64[n]).abs().max()) for n in names}
floor_after_live = max(adiff[n] for n in live)
floor_after_zero = max(adiff[n] for n in zero_true) if zero_true else 0.0
floor_grad_per = {n: maxrel(g32[n], g64[n]) for n in live}
o32, o64 = r32["optimizer"].state_dict()["state"], r64["optimizer"].state_dict()["state"]
floor_adam = {}
for idx in o32:
    n = names[idx]
    if n in live:
        floor_adam[n] = max(maxrel(o32[idx][f], o64[idx][f]) for f in ("exp_avg", "exp_avg_sq"))
lr = 5e-5
TIGHT = 0.1 * lr
live_elems = sum(a64[n].numel() for n in live)
flipped = sum(int(((a32[n].double() - a64[n]).abs() > TIGHT).sum()) for n in live)
tol = {
    "loss_rel_per_step": [max(1e-4, 20 * f) for f in floor_loss_steps],
    "grad_rel_to_max_per_param": {n: max(1e-4, 20 * floor_grad_per[n]) for n in live},
    "grad_zero_true_abs": max(1e-8, 20 * floor_grad_zero_abs),
    "adam_rel_to_max_per_param": {n: max(1e-3, 4 * f) for n, f in floor_adam.items()},
    "after_tight_abs": TIGHT,
    "after_loose_fraction": max(1e-3, 3 * flipped / live_elems),
    "after_max_abs": 2 * K * lr * 1.5,
    "why": "loss terms: relative, per step, max(1e-4, 20 x the float64 floor of that step). Gradients: per "
           "parameter, relative to the tensor's largest magnitude, max(1e-4, 20 x that parameter's float64 "
           "floor) (the floors are large for some tensors: the first-step gradient of this small network "
           "moves by up to 1.6% between float32 and float64, spread over most elements, from ReLU / "
           "bilinear-cell kinks crossed differently; most tensors are below 5e-4); zero_true_grad_params "
           "absolutely (their true gradient is 0; float runs get rounding noise). Adam moments after K "
           "steps (exp_avg, exp_avg_sq; not zero_true_grad_params): per parameter, relative to the tensor's "
           "largest magnitude, max(1e-3, 4 x the float64 floor: these floors are already large, up to ~9%, as "
           "the gradients of steps 2 and 3 follow the weights, which Adam moves by +-lr per element). Weights after K steps: "
           "Adam's first steps move every element by about lr in the direction of sign(grad), so an element "
           "whose gradient is near 0 (or noise: every zero_true_grad_params element) can move the other way "
           "in another float implementation: all elements within after_max_abs = 2 K lr x 1.5, and at most "
           "after_loose_fraction of the live elements (3 x the float64 run's fraction, at least 0.1%) beyond "
           "after_tight_abs",
}

st_path = f"{OUT}/{NAME}.safetensors"
save_file(tensors, st_path)


def sha256(path):
    with open(path, "rb") as f:
        return hashlib.sha256(f.read()).hexdigest()


meta = {
    "reference": {"repo": "https://github.com/DanMenCas/DCI-VITON", "commit": COMMIT,
                  "files": ["Train_WarpingNetwork.ipynb (definitions and training cells)", "warpingnetwork.py",
                            "losses.py"]},
    "torch": torch.__version__, "torchvision": torchvision.__version__,
    "case": {"oc": OC, "batch": B, "height": SIZE, "width": SIZE, "steps": K, "seed": SEED,
             "input_1_channels": 4, "input_2_channels": 6},
    "notebook_substitutions": [{"from": a, "to": b} for a, b in SUBST],
    "options": {"lr": lr, "betas": [0.5, 0.999], "eps": 1e-8, "l1_lambda": 1, "vgg_lambda": 0.1, "tvlambda": 1},
    "train_mode": r32["train_mode"],
    "mode_note": "generator.training is True (never switched); no layer depends on it: every "
                 "ResNetEncoderBlock.batchnorm is nn.InstanceNorm2d (no parameters, no running stats), "
                 "use_dropout is False everywhere, there is no BatchNorm2d (so weights_init's BatchNorm "
                 "branch never runs)",
    "initialisation": "generator.apply(weights_init): xavier_normal_ on every Conv2d weight (the network has "
                      "no ConvTranspose2d and no BatchNorm2d); biases keep PyTorch's default "
                      "U(-1/sqrt(fan_in), 1/sqrt(fan_in)). Drawn by torch.manual_seed(seed); weights.* is the "
                      "result.",
    "step": {
        "forward": "warped_c, warped_cm, flow_list = generator(input_1, input_2, device)",
        "l1_final": "L1(warped_cm, warped_mask)",
        "vgg_final": "VGGLoss(warped_cm * warped_c, warped_cloth): VGG19 relu1_1, relu2_1, relu3_1, relu4_1, "
                     "relu5_1 (features[0:2], [2:7], [7:12], [12:21], [21:30]), weights 1/32, 1/16, 1/8, 1/4, 1, "
                     "inputs (X + 1) / 2 then ImageNet Normalize, the target's features detached",
        "loss_tv": "flow_loss(flow_list): sum over the five NHWC flows of mean|f[:,1:]-f[:,:-1]| + "
                   "mean|f[:,:,1:]-f[:,:,:-1]|",
        "l1_scale.j / vgg_scale.j": "for j in 0..3: flow = interpolate(flow_list[j] as NCHW, size=input size, "
                                    "bilinear, align_corners False) as NHWC; flow_norm = cat(flow[..., 0] / "
                                    "((flow.shape[1] - 1) / 2), flow[..., 1] / ((flow.shape[2] - 1) / 2)); warped = "
                                    "grid_sample(input_1, make_grid(N, H, W) + flow_norm, padding border, "
                                    "align_corners False); term = L1(warped[:, -1:], warped_mask) / 2**(4-j) and "
                                    "VGGLoss(warped[:, -1:] * warped[:, :-1], warped_cloth) / 2**(4-j) (the stored "
                                    "values are already divided)",
        "loss_l1_cloth": "l1_final + sum_j l1_scale.j", "loss_vgg": "vgg_final + sum_j vgg_scale.j",
        "loss_G": "1 * loss_l1_cloth + 0.1 * loss_vgg + 1 * loss_tv",
        "optimizer": "torch.optim.Adam(generator.parameters(), lr=5e-5, betas=(0.5, 0.999)): zero_grad, "
                     "backward, step",
    },
    "quirks": [
        "flow_list already holds flows in grid units (pixel flow / ((size - 1) / 2) of its level); the "
        "multi-scale terms upsample those values without rescaling and divide them again by (size - 1) / 2 of "
        "the input: the multi-scale warps move by a tiny fraction of the network's own flow",
        "the multi-scale normalisation divides x by (H - 1) / 2 and y by (W - 1) / 2 (shape[1] / shape[2] of the "
        "NHWC flow), and make_grid(N, H, W) fills its (iW, iH) slots with (H, W): both swaps vanish on square "
        "inputs, the only ones WarpingProcess accepts (see non_square)",
        "convs_segment_after_concat.3 runs but nothing reads its output: its parameters get no gradient "
        "(grad None) and no Adam state (none_grad_params)",
        "the notebook's warped_masks are unbound without unsqueeze ([1, H, W] per step, broadcasting against "
        "[1, 1, H, W]); here every step tensor is 4-D [B, C, H, W], which computes the same values",
    ],
    "non_square": {"what": "the original WarpingProcess on a non-square input", **nonsquare},
    "inputs": {
        "input_1": "cat(cloth RGB [0, 1], cloth mask {0, 1})  [B, 4, H, W]",
        "input_2": "cat(densepose RGB [0, 1], parse (label / 255, 3 equal channels) * 15)  [B, 6, H, W]",
        "warped_mask": "{0, 1} [B, 1, H, W] (the person's garment region; the notebook's data preparation is not "
                       "in the repository)",
        "warped_cloth": "person image [0, 1] * warped_mask  [B, 3, H, W] (the range of warped_cm * warped_c, "
                        "whose cloth channels come from input_1 in [0, 1])",
    },
    "none_grad_params": none_grad,
    "parameter_order": names,
    "parameter_count": sum(p.numel() for p in r32["generator"].parameters()),
    "adam_state_steps": adam_steps,
    "vgg": {"widths": list(VGG_WIDTHS), "stored": "features convs 0..28 (what VGGLoss reads)",
            "init": "weight N(0, 2/fan_in), bias U(-0.1, 0.1), seed SEED + 100"},
    "keys": {
        "weights.<key>": "initial state_dict (after weights_init)",
        "vgg.features.<idx>.weight|bias": "the VGG19 stand-in, torchvision layout",
        "batch.<s>.<input_1|input_2|warped_cloth|warped_mask>": "step s inputs (float32)",
        "loss.<s>.<term>": "0-d float32, terms as in 'step'",
        "grad.0.<param>": "every gradient of the first backward (params in none_grad_params absent)",
        f"after.{K}.<param>": f"every parameter after {K} optimizer steps",
        f"adam.{K}.<param>.exp_avg|exp_avg_sq": f"Adam moments after {K} steps (state step = {K})",
    },
    "stubbed_imports": stubbed,
    "zero_true_grad_params": zero_true,
    "float64_check": {"what": "max difference between this float32 run and the same run in float64",
                      "loss_rel": floor_loss, "loss_rel_per_step": floor_loss_steps,
                      "grad_rel_to_max": floor_grad, "grad_zero_true_abs": floor_grad_zero_abs,
                      "after_abs": floor_after_live, "after_zero_true_abs": floor_after_zero,
                      "after_live_fraction_beyond_tight": flipped / live_elems,
                      "grad_rel_to_max_per_param": floor_grad_per,
                      "adam_rel_to_max_per_param": floor_adam,
},
    "tolerance": tol,
    "files": [{"file": os.path.basename(st_path), "bytes": os.path.getsize(st_path), "sha256": sha256(st_path)}],
}
with open(f"{OUT}/{NAME}.json", "w") as f:
    json.dump(meta, f, indent=1)
print("bytes", os.path.getsize(st_path), "params", meta["parameter_count"])
print("losses", [round(terms(r32, s)["loss_G"], 6) for s in range(K)])
print("floors", {k: v for k, v in meta["float64_check"].items() if not k.endswith("per_param")})
print("tol", {k: v for k, v in tol.items() if not k.endswith("per_param")})
print("non_square", nonsquare, "none_grad", len(none_grad), "stubbed", list(stubbed))
