"""Parity fixtures for vton's DCI-VITON warping network (DanMenCas/DCI-VITON
`warpingnetwork.py`: make_grid, ResNetEncoderBlock, ClothingEncoder, SegmentEncoder,
WarpingProcess), made by RUNNING the original module with re-drawn random weights.

Run by hand from the repository root (needs torch; never a dependency of vton or CI):
    /work/refenv/bin/python scripts/reference/gen_dci_viton_warping.py \
        [/work/.mirror/DanMenCas+DCI-VITON/repo]

The original repository is exported with `git archive` at the pinned commit into a
temporary folder, which is put first on sys.path, and `warpingnetwork` is imported from
it. That module (and `parsehuman`, which it imports) pulls in pre-processing packages at
module level that the network never uses; only the ones that fail to import here are
replaced by inert stub modules, and the JSON lists which.

Writes, in tests/fixtures/:
  dci_viton_warping_oc6.{safetensors,json}  WarpingProcess(6), batch 1, 64x64, with
      intermediate taps (both encoders' outputs)
  dci_viton_warping_oc3.{safetensors,json}  WarpingProcess(3), batch 2, 64x64, weights
      after one Adam step (the notebook's optimiser), and
  dci_viton_warping_oc3_adam.pth  the same weights in the original checkpoint form:
      torch.save({'model_state_dict': sd, 'optimizer_state_dict': opt.state_dict()})
  dci_viton_warping_zip.pth  a two-tensor torch.save whose 21-character file stem triggers
      the zip-reader bug described at the .pth case (a repro, not a parity case)
"""
import copy
import hashlib
import importlib
import importlib.abc
import importlib.machinery
import json
import os
import subprocess
import sys
import tempfile
import types

import torch
import torch.nn as nn
import torch.nn.functional as F
from safetensors.torch import save_file

REPO = sys.argv[1] if len(sys.argv) > 1 else "/work/.mirror/DanMenCas+DCI-VITON/repo"
COMMIT = "e0a57848e0d09333006aa1ca8a0760f056eb69bd"
OUT = "tests/fixtures"
SIZE = 64  # the smallest size the network accepts (see "input_size" in the JSON)

# ---------------------------------------------------------------- the original code
export = tempfile.mkdtemp(prefix="dci_viton_")
archive = subprocess.run(["git", "-C", REPO, "archive", COMMIT], check=True, capture_output=True).stdout
subprocess.run(["tar", "x", "-C", export], input=archive, check=True)
sys.path.insert(0, export)

# Packages imported at module level by warpingnetwork.py / parsehuman.py that are only
# used by the pre-processing (WarpingCloth / Preprocessing), never by WarpingProcess.
CANDIDATES = ["cv2", "rembg", "detectron2", "densepose", "matplotlib", "tqdm", "transformers"]
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

# ---------------------------------------------------------------- helpers


def redraw(model, gen, flow_gain):
    """Conv weights N(0, gain/sqrt(fan_in)) (gain `flow_gain` on the 2-channel flow heads),
    biases U(-0.1, 0.1). The network has no affine norm (InstanceNorm2d without
    parameters), so nothing else is drawn."""
    with torch.no_grad():
        for name, m in model.named_modules():
            if isinstance(m, nn.Conv2d):
                fan_in = m.in_channels * m.kernel_size[0] * m.kernel_size[1]
                gain = flow_gain if m.out_channels == 2 else 1.0
                m.weight.copy_(torch.randn(m.weight.shape, generator=gen) * gain / fan_in ** 0.5)
                m.bias.copy_(torch.rand(m.bias.shape, generator=gen) * 0.2 - 0.1)


def smooth(gen, b, c, h, w, cells):
    """A smooth random field in [0, 1]: bicubic upsampling of cells x cells noise."""
    z = torch.rand(b, c, cells, cells, generator=gen)
    return F.interpolate(z, size=(h, w), mode="bicubic", align_corners=False).clamp(0, 1)


def make_inputs(gen, b):
    """Inputs shaped and scaled as WarpingCloth.__call__ builds them (ToTensor, [0, 1]):
    input_1 = cat(cloth RGB, cloth mask), input_2 = cat(densepose RGB, parse * 15) with
    the parse a 3-channel label map / 255 (labels 0..19)."""
    cloth = smooth(gen, b, 3, SIZE, SIZE, 8)
    mask = (smooth(gen, b, 1, SIZE, SIZE, 5) > 0.45).float()
    dense = smooth(gen, b, 3, SIZE, SIZE, 12)
    labels = torch.randint(0, 20, (b, 1, 8, 8), generator=gen).float()
    parse = F.interpolate(labels, size=(SIZE, SIZE), mode="nearest").repeat(1, 3, 1, 1) / 255.0
    input_1 = torch.cat([cloth, mask], 1)
    input_2 = torch.cat([dense, parse * 15], 1)
    return input_1, input_2


def run(model, i1, i2, taps=None):
    hooks = []
    if taps is not None:
        def tap(prefix):
            def f(_m, _i, out):
                for k, t in enumerate(out):
                    taps[f"{prefix}.{k}"] = t.detach().clone()
            return f
        hooks.append(model.clothingencoder.register_forward_hook(tap("clothingencoder")))
        hooks.append(model.posencoder.register_forward_hook(tap("posencoder")))
    with torch.no_grad():
        wc, wcm, flows = model(i1, i2, torch.device("cpu"))
    for h in hooks:
        h.remove()
    out = {"warped_c": wc, "warped_cm": wcm}
    for k, f in enumerate(flows):
        out[f"flow_list.{k}"] = f
    return out


def max_diff(a, b):
    return max(float((a[k].double() - b[k].double()).abs().max()) for k in a)


def sensitivity(model, i1, i2, ref):
    """How far the outputs move when one convention is changed (what a test catches)."""
    res = {}
    orig_gs, orig_interp, orig_grid = F.grid_sample, F.interpolate, wn.make_grid

    def with_patch(name, **patch):
        try:
            if "grid_sample" in patch:
                F.grid_sample = patch["grid_sample"]
            if "interpolate" in patch:
                F.interpolate = patch["interpolate"]
            if "make_grid" in patch:
                wn.make_grid = patch["make_grid"]
            out = run(model, i1, i2)
            res[name] = {k: float((out[k] - ref[k]).abs().max()) for k in ref}
        finally:
            F.grid_sample, F.interpolate, wn.make_grid = orig_gs, orig_interp, orig_grid

    with_patch("grid_sample_align_corners_true",
               grid_sample=lambda x, g, **k: orig_gs(x, g, **{**k, "align_corners": True}))
    with_patch("grid_sample_padding_zeros",
               grid_sample=lambda x, g, **k: orig_gs(x, g, **{**k, "padding_mode": "zeros"}))

    def interp_ac(x, *a, **k):
        if k.get("mode") == "bilinear":
            k["align_corners"] = True
        return orig_interp(x, *a, **k)
    with_patch("interpolate_align_corners_true", interpolate=interp_ac)

    def grid_pixel_centres(N, iW, iH, device):
        gx = ((torch.arange(iW) * 2 + 1) / iW - 1).view(1, 1, iW, 1).expand(N, iH, -1, -1)
        gy = ((torch.arange(iH) * 2 + 1) / iH - 1).view(1, iH, 1, 1).expand(N, -1, iW, -1)
        return torch.cat([gx, gy], 3).to(device)
    with_patch("make_grid_pixel_centres", make_grid=grid_pixel_centres)

    # InstanceNorm eps 1e-5 -> 1e-3
    saved = []
    for m in model.modules():
        if isinstance(m, nn.InstanceNorm2d):
            saved.append((m, m.eps))
            m.eps = 1e-3
    out = run(model, i1, i2)
    res["instance_norm_eps_1e-3"] = {k: float((out[k] - ref[k]).abs().max()) for k in ref}
    for m, e in saved:
        m.eps = e
    return res


def stats(t):
    t = t.double()
    return {"abs_max": float(t.abs().max()), "mean": float(t.mean()), "std": float(t.std())}


def sha256(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        h.update(f.read())
    return h.hexdigest()


MEANINGS = {
    "warped_c": "warped_T1[:, :-1]: input_1's cloth channels sampled at grid + flow_list[4]",
    "warped_cm": "warped_T1[:, -1:]: input_1's mask channel sampled at grid + flow_list[4]",
}
for k in range(5):
    MEANINGS[f"flow_list.{k}"] = (
        f"flow_norm at level {k}: [B, {SIZE}/2^{4 - k}, {SIZE}/2^{4 - k}, 2] NHWC, last dim (x, y), "
        "already in grid units (pixel flow / ((size - 1) / 2) of that level); entries 0..3 are "
        "the flows used inside the loop, entry 4 the final one used on input_1"
    )


def case(name, oc, batch, seed, flow_gain, taps, adam_step):
    gen = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    model = wn.WarpingProcess(oc)
    redraw(model, gen, flow_gain)
    i1, i2 = make_inputs(gen, batch)
    opt_info = None
    if adam_step:
        # One optimiser step as the notebook trains (Adam lr 5e-5, betas (0.5, 0.999)) on
        # a stand-in loss (L1 on the mask + flow TV; the notebook's VGG term needs
        # ImageNet VGG19 weights), so that the optimiser state is populated.
        model.train()
        opt = torch.optim.Adam(model.parameters(), lr=0.00005, betas=(0.5, 0.999))
        wc, wcm, flows = model(i1, i2, torch.device("cpu"))
        target = torch.flip(i1[:, -1:], dims=[3])
        loss = (wcm - target).abs().mean()
        for f in flows:
            loss = loss + (f[:, 1:] - f[:, :-1]).abs().mean() + (f[:, :, 1:] - f[:, :, :-1]).abs().mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
        opt_info = {"optimizer": "torch.optim.Adam(lr=5e-05, betas=(0.5, 0.999))", "steps": 1,
                    "stand_in_loss": "L1(warped_cm, flipped mask) + sum of flow TV", "loss": float(loss)}
    model.eval()
    tap_vals = {} if taps else None
    ref = run(model, i1, i2, tap_vals)
    m64 = copy.deepcopy(model).double()
    ref64 = run(m64, i1.double(), i2.double())
    floor = {k: float((ref[k].double() - ref64[k]).abs().max()) for k in ref}
    sens = sensitivity(model, i1, i2, ref)

    sd = model.state_dict()
    tensors = {f"weights.{k}": v.contiguous() for k, v in sd.items()}
    tensors["input.input_1"] = i1.contiguous()
    tensors["input.input_2"] = i2.contiguous()
    for k, v in ref.items():
        tensors[f"output.{k}"] = v.contiguous()
    if tap_vals:
        for k, v in tap_vals.items():
            tensors[f"output.intermediate.{k}"] = v.contiguous()
    st_path = f"{OUT}/{name}.safetensors"
    save_file(tensors, st_path)
    extra = {}
    if adam_step:
        # Not "<name>.pth": torch.save names the archive's root folder after the file stem, and
        # a 21-character stem (this case's name) makes the first central-directory entry
        # ("<stem>/data.pkl", 46 + 30 bytes) exactly as long as the zip64 end records torch
        # writes, which zip 9.4.1 (via burn's pytorch reader) mistakes for a prepended-data
        # offset; see dci_viton_warping_zip.pth below.
        pth = f"{OUT}/{name}_adam.pth"
        torch.save({"model_state_dict": sd, "optimizer_state_dict": opt.state_dict()}, pth)
        extra = {"pth": {"file": os.path.basename(pth), "bytes": os.path.getsize(pth), "sha256": sha256(pth),
                         "form": "torch.save({'model_state_dict': model.state_dict(), "
                                 "'optimizer_state_dict': opt.state_dict()}) (zip format), as the "
                                 "released 3000imgs_warping_*.pth is read by WarpingCloth.warping",
                         "optimizer_state_keys": sorted({k for s in opt.state_dict()["state"].values() for k in s}),
                         "model_state_dict_equals_safetensors_weights": True}}

    atol = max(1e-4, 20 * max(floor.values()))
    meta = {
        "reference": {"repo": "https://github.com/DanMenCas/DCI-VITON", "commit": COMMIT,
                      "file": "warpingnetwork.py (make_grid, ResNetEncoderBlock, ClothingEncoder, "
                              "SegmentEncoder, WarpingProcess)"},
        "class_name": "warpingnetwork.WarpingProcess",
        "constructor": f"WarpingProcess({oc})  (the repo uses WarpingProcess(96): WarpingCloth and "
                       "Train_WarpingNetwork.ipynb)",
        "constructor_args": {"oc": oc},
        "derived_widths": {"clothingencoder_in": 4, "posencoder_in": 6, "oc": oc},
        "parameter_count": sum(p.numel() for p in model.parameters()),
        "state_dict_keys": len(sd),
        "call": "warped_c, warped_cm, flow_list = model(input_1, input_2, torch.device('cpu'))  "
                "(the device argument is only passed to make_grid)",
        "seed": seed,
        "mode": "eval (no layer behaves differently: InstanceNorm2d without running stats, no dropout)",
        "torch": torch.__version__,
        "input_size": {"h": SIZE, "w": SIZE, "batch": batch,
                       "why": "smallest accepted: H == W (make_grid is called with (H, W) in its (iW, iH) "
                              "slots, so its grid is [1, W, H, 2] and only broadcasts with the "
                              "[B, H, W, 2] flow when square), H % 32 == 0 (five stride-2 convs then "
                              "four x2 upsamplings must meet; 32k-1 also runs and returns 32k), and "
                              "H >= 64 (at 32 the last encoder block is 1x1 and InstanceNorm2d raises "
                              "'Expected more than 1 spatial element')"},
        "weights": {"conv": "weight N(0, gain/sqrt(fan_in)), gain 1 except the 2-channel flow heads "
                            f"(conv_after_concat_1, conv_after_concat_2.*): gain {flow_gain}; "
                            "bias U(-0.1, 0.1)",
                    "norms": "none to draw: every ResNetEncoderBlock.batchnorm is nn.InstanceNorm2d(c) "
                             "(affine=False, track_running_stats=False): no state_dict entries, "
                             "per-sample statistics in eval too, eps 1e-5, biased variance; the same "
                             "module is applied after conv_1 and after conv_2",
                    "batch_norm": "the network has no BatchNorm: nothing to calibrate or perturb"},
        "optimizer_step": opt_info,
        "inputs": {
            "input_1": {"meaning": "cat([cloth RGB in [0,1] (ToTensor, no Normalize), cloth mask {0,1}], 1)",
                        "shape": list(i1.shape), "dtype": "float32"},
            "input_2": {"meaning": "cat([densepose RGB in [0,1], parse_agnostic 3-ch (label/255) * 15], 1)",
                        "shape": list(i2.shape), "dtype": "float32"},
        },
        "outputs": {k: {"meaning": MEANINGS[k], "shape": list(v.shape), "dtype": "float32", **stats(v)}
                    for k, v in ref.items()},
        "intermediates": ({f"intermediate.{k}": list(v.shape) for k, v in tap_vals.items()}
                          if tap_vals else {}),
        "conventions": {
            "make_grid": "linspace(-1, 1, n) (the align_corners=True convention) while grid_sample runs "
                         "with align_corners=False (modern default; the call passes none)",
            "grid_sample": "mode bilinear, padding_mode 'border', align_corners False (default)",
            "interpolate": "F.interpolate(scale_factor=2, mode='bilinear') and "
                           "nn.Upsample(scale_factor=2, mode='bilinear'): align_corners False",
            "flow_normalisation": "x / ((W - 1) / 2), y / ((H - 1) / 2) of the current level, after a x2 "
                                  "bilinear upsampling of the pixel flow WITHOUT rescaling its values",
            "accumulation": "level i flow (pixels) = up2(previous) + conv_after_concat_2[i](cat(convs_segment[i]"
                            "(pose feature), warped clothing feature)); level 0 starts from "
                            "conv_after_concat_1(cat(ce_4, pe_4))",
            "make_grid_batch": "make_grid(1, ...) broadcast over the batch",
            "resblock_up": "ResNetEncoderBlock(up=True): scale = Sequential(Upsample x2 bilinear, Conv3x3) "
                           "-> keys scale.1.*; down: Conv3x3 stride 2 pad 1; neither: Conv1x1",
        },
        "stubbed_imports": stubbed,
        "stubbed_imports_note": "inert stand-ins for packages that fail to import here; they are used only by "
                                "WarpingCloth / parsehuman.Preprocessing (the repo's vendored detectron2 and "
                                "densepose need fvcore), never by WarpingProcess",
        "float64_check": {"what": "max |float32 fixture - same run in float64| per output", **floor},
        "sensitivity": {"what": "max |output - reference| when one convention is changed", **sens},
        "tolerance": {"atol": atol, "rtol": 1e-4,
                      "why": "atol = max(1e-4, 20 x the largest float64_check floor); rtol 1e-4"},
        "sha256": sha256(st_path),
        "bytes": os.path.getsize(st_path),
        **extra,
    }
    with open(f"{OUT}/{name}.json", "w") as f:
        json.dump(meta, f, indent=1)
    print(name, "bytes", os.path.getsize(st_path), "floor", max(floor.values()),
          {k: round(v["abs_max"], 4) for k, v in meta["outputs"].items()})
    print("  sensitivity", {k: round(max(v.values()), 5) for k, v in sens.items()})


case("dci_viton_warping_oc6", oc=6, batch=1, seed=0, flow_gain=1.0, taps=True, adam_step=False)
case("dci_viton_warping_oc3", oc=3, batch=2, seed=1, flow_gain=1.0, taps=False, adam_step=True)

# Repro of the zip-reader failure: a valid torch.save file whose stem has 21 characters.
repro = f"{OUT}/dci_viton_warping_zip.pth"
assert len(os.path.basename(repro)[:-4]) == 21
torch.save({"model_state_dict": {"w": torch.arange(6.0).reshape(2, 3)}, "step": torch.tensor(1.0)}, repro)
print("repro", os.path.getsize(repro), torch.load(repro, weights_only=True)["model_state_dict"]["w"].sum())
