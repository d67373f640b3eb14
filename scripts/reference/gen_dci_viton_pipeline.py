"""End-to-end parity fixture of DanMenCas/DCI-VITON's inference (VitonPipeline.__call__ ->
WarpingCloth.__call__ -> Preprocessing -> WarpingProcess -> VAE -> sampler -> decode), made
by RUNNING the original code at the pinned commit.

Run by hand from the repository root (needs torch, torchvision, diffusers, transformers,
matplotlib, safetensors, Pillow; never a dependency of vton or CI):

    /work/refenv/bin/python scripts/reference/gen_dci_viton_pipeline.py

What is replaced, and nothing else:

* the four detectors of parsehuman.Preprocessing (detectron2 keypoint R-CNN, a SegFormer
  human parser, DensePose, rembg u2net) return given arrays:
  - key_points(): the given COCO-17 (x, y) points, float32, with the 18th point computed
    by the original's own arithmetic ((k[5] + k[6]) / 2, np.vstack);
  - parse_human(): the given LIP label map as the H x W x 3 uint8 palette output (the
    palette rows are grey, so the three channels are the label);
  - open_pose(): the given DensePose-like uint8 RGB image (WarpingCloth then applies its
    own `[:, :, ::-1]`);
  - cloth_mask(): the given uint8 mask (what rembg's only_mask returns, as np.array);
* modules that cannot be imported here (detectron2, densepose, rembg, cv2) are inert stubs;
* literals patched to fit the size budget: WarpingProcess(96) -> WarpingProcess(3) (the
  weights of tests/fixtures/dci_viton_warping_oc3.safetensors), UNet(9, 4) ->
  UNet(9, 4, hidden_channels=1, time_emb_dim=32) with diffusionmodel.py's num_groups=8 -> 1
  (tests/fixtures/dci_viton_unet.safetensors, as gen_dci_viton_unet.py), and the 200
  sampling steps -> DCI_STEPS;
* DiagonalGaussianDistribution.sample (diffusers) draws its randn from a seeded generator
  we record (same formula mean + std * noise); get_noisy_image draws its randn_like after
  torch.manual_seed(SEED_NOISE), and we record what it returned.

The VAE is a width-reduced diffusers AutoencoderKL with Stable Diffusion's geometry (4
blocks, factor 8, 512 -> 64 latent), written to tests/fixtures/dci_viton_pipeline_vae_pretrained/
(save_pretrained). tests/fixtures/diffusers_vae_pretrained (2 blocks, factor 2) would give
a 256x256 latent: 1 MiB per latent tensor and a 65536-token mid-block attention.

Writes tests/fixtures/dci_viton_pipeline.{safetensors,json}, the input and uint8-stage PNGs
in tests/fixtures/dci_viton_pipeline/, and the VAE folder.
"""
import hashlib
import importlib
import io
import json
import math
import os
import subprocess
import sys
import tarfile
import tempfile
import types

import numpy as np
import PIL
import torch
import torch.nn as nn
from PIL import Image
from safetensors.torch import save_file

MIRROR = "/work/.mirror/DanMenCas+DCI-VITON/repo"
COMMIT = "e0a57848e0d09333006aa1ca8a0760f056eb69bd"
OUT = "tests/fixtures"
NAME = "dci_viton_pipeline"
PNG_DIR = f"{OUT}/{NAME}"
VAE_DIR = f"{OUT}/{NAME}_vae_pretrained"
PERSON_SRC = "examples/person/openvto_ai_avatar1_upper"
GARMENT_SRC = "examples/garment/openvto_shirt1_front"
DCI_STEPS = 4
WARP_OC = 3
UNET_HIDDEN, UNET_TEMB, UNET_GROUPS = 1, 32, 1
SEED_VAE_WEIGHTS = 3
SEED_VAE_NOISE = 11
SEED_NOISE = 12
SUB = 3  # stride of the stored subsample of the 512x512 tensors

torch.set_num_threads(2)
os.makedirs(PNG_DIR, exist_ok=True)


def sha256(path):
    return hashlib.sha256(open(path, "rb").read()).hexdigest()


# ---------------------------------------------------------------- the original code
tmp = tempfile.mkdtemp(prefix="dci_viton_pipe_")
FILES = ["parsehuman.py", "warpingnetwork.py", "viton_pipeline.py", "diffusionmodel.py"]
tar = subprocess.check_output(["git", "-C", MIRROR, "archive", COMMIT] + FILES)
tarfile.open(fileobj=io.BytesIO(tar)).extractall(tmp)

PATCHES = []


def patch(fname, old, new, count):
    p = os.path.join(tmp, fname)
    src = open(p).read()
    assert src.count(old) == count, (fname, old, src.count(old))
    open(p, "w").write(src.replace(old, new))
    PATCHES.append({"file": fname, "from": old, "to": new, "occurrences": count})


patch("warpingnetwork.py", "WarpingProcess(96)", f"WarpingProcess({WARP_OC})", 1)
patch("diffusionmodel.py", "num_groups=8", f"num_groups={UNET_GROUPS}", 4)
patch("viton_pipeline.py", "UNet(9, 4)",
      f"UNet(9, 4, hidden_channels={UNET_HIDDEN}, time_emb_dim={UNET_TEMB})", 1)
patch("viton_pipeline.py", "self.scheduler.timesteps - 1, 0, 200)",
      f"self.scheduler.timesteps - 1, 0, {DCI_STEPS})", 1)


class _Unavailable:
    """Stands for any name of a module that cannot be imported here; using it raises."""

    def __init__(self, name):
        self._name = name

    def __call__(self, *a, **k):
        raise RuntimeError(f"stub {self._name} called: the detector replacement failed")

    def __getattr__(self, n):
        return _Unavailable(f"{self._name}.{n}")


class _StubModule(types.ModuleType):
    def __getattr__(self, n):
        if n.startswith("__"):
            raise AttributeError(n)
        return _Unavailable(f"{self.__name__}.{n}")


IMPORTED = {
    "parsehuman.py": ["cv2", "detectron2.engine", "detectron2.config", "detectron2",
                      "detectron2.utils.visualizer", "rembg", "tqdm", "transformers",
                      "detectron2.data.detection_utils", "densepose.config",
                      "densepose.vis.densepose_results", "densepose.vis.bounding_box",
                      "densepose.vis.base", "densepose.vis.extractor", "matplotlib.pyplot"],
}
STUBBED = {}
for name in IMPORTED["parsehuman.py"]:
    try:
        importlib.import_module(name)
    except Exception as e:  # noqa: BLE001 - any failure means 'unavailable here'
        STUBBED[name] = f"{type(e).__name__}: {e}"
        parts = name.split(".")
        for i in range(1, len(parts) + 1):
            sub = ".".join(parts[:i])
            if sub not in sys.modules:
                sys.modules[sub] = _StubModule(sub)
            if i > 1:
                setattr(sys.modules[".".join(parts[:i - 1])], parts[i - 1], sys.modules[sub])
print("stubbed:", sorted(STUBBED))

sys.path.insert(0, tmp)
import diffusionmodel  # noqa: E402
import parsehuman  # noqa: E402
import viton_pipeline  # noqa: E402
import warpingnetwork  # noqa: E402
from diffusers import AutoencoderKL  # noqa: E402
from diffusers.models.autoencoders import vae as diffusers_vae  # noqa: E402
import diffusers  # noqa: E402
import torchvision  # noqa: E402

for m in (diffusionmodel, parsehuman, viton_pipeline, warpingnetwork):
    assert m.__file__.startswith(tmp), m.__file__

# ---------------------------------------------------------------- inputs
W, H = 768, 1024
src_img = Image.open(PERSON_SRC + ".png").convert("RGB")
assert src_img.size == (384, 512)
person = src_img.resize((W, H), Image.BICUBIC)
person_mask = np.array(Image.open(PERSON_SRC + "_mask.png").resize((W, H), Image.NEAREST)) > 127
body25 = np.array(json.load(open(PERSON_SRC + "_keypoints.json"))["people"][0]["pose_keypoints_2d"],
                  dtype=np.float64).reshape(25, 3)
SCALE = W / 384.0
# COCO-17 index -> BODY_25 index
COCO_FROM_BODY25 = [0, 16, 15, 18, 17, 5, 2, 6, 3, 7, 4, 12, 9, 13, 10, 14, 11]
COCO_NAMES = ["nose", "left_eye", "right_eye", "left_ear", "right_ear", "left_shoulder",
              "right_shoulder", "left_elbow", "right_elbow", "left_wrist", "right_wrist",
              "left_hip", "right_hip", "left_knee", "right_knee", "left_ankle", "right_ankle"]
kp17 = np.zeros((17, 2), np.float32)
missing = []
for c, b in enumerate(COCO_FROM_BODY25):
    if body25[b, 2] > 0:
        kp17[c] = (body25[b, :2] * SCALE).astype(np.float32)
    else:
        missing.append(COCO_NAMES[c])
assert all(kp17[i].any() for i in range(13)), "points 0..12 are used by the original"

# LIP label map built from the person mask and the keypoints (no parser is available).
yy, xx = np.mgrid[0:H, 0:W].astype(np.float64)
k = kp17.astype(np.float64)
nose, leye, reye, lear, rear, lsho, rsho, lelb, relb, lwri, rwri, lhip, rhip = k[:13]
sh_y = (lsho[1] + rsho[1]) / 2
sh_w = abs(lsho[0] - rsho[0])
hip_y = (lhip[1] + rhip[1]) / 2
torso = hip_y - sh_y
eye_y = (leye[1] + reye[1]) / 2
d_en = nose[1] - eye_y
M = person_mask
lab = np.zeros((H, W), np.uint8)
lab[M] = 5                                                     # upper clothes
y_chin = nose[1] + 0.45 * (sh_y - nose[1])
y_collar = nose[1] + 0.62 * (sh_y - nose[1])
head = M & (yy < y_chin)
lab[M & (yy >= y_chin) & (yy < y_collar) & (np.abs(xx - nose[0]) < 0.22 * sh_w)] = 10  # neck
lab[head] = 13                                                 # face
lab[head & (yy < eye_y - 1.6 * d_en)] = 2                      # hair (scalp)
lab[head & (yy > nose[1] + 1.2 * d_en)] = 2                    # beard (hair), under the neck box
lab[head & (np.abs(yy - eye_y) < 0.45 * d_en) & (xx > rear[0]) & (xx < lear[0])] = 4  # glasses
hem_y = hip_y + 0.06 * torso
hip_w = abs(lhip[0] - rhip[0])
mid_x = (lhip[0] + rhip[0]) / 2
lower = M & (yy >= hem_y) & (xx >= rhip[0] - 0.5 * hip_w) & (xx <= lhip[0] + 0.5 * hip_w)
lab[lower] = 9                                                 # pants
lab[lower & (yy < hem_y + 0.08 * torso)] = 12                  # skirt band under the hem
legs = lower & (yy >= H - 70)
lab[legs & (xx >= mid_x)] = 16                                 # left leg (image right)
lab[legs & (xx < mid_x)] = 17
shoes = lower & (yy >= H - 24)
lab[shoes & (xx >= mid_x)] = 18
lab[shoes & (xx < mid_x)] = 19


def seg_dist(p, a, b):
    ab = b - a
    t = np.clip(((p[0] - a[0]) * ab[0] + (p[1] - a[1]) * ab[1]) / (ab @ ab), 0, 1)
    return np.hypot(p[0] - (a[0] + t * ab[0]), p[1] - (a[1] + t * ab[1])), t


for wri, elb, label in [(lwri, lelb, 14), (rwri, relb, 15)]:   # hands (sleeves are label 5)
    L = np.linalg.norm(wri - elb)
    u = (wri - elb) / L
    dist, _ = seg_dist((xx, yy), wri - 0.1 * L * u, wri + 0.45 * L * u)
    lab[M & (dist < 0.2 * L)] = label
labels_present = sorted(int(v) for v in np.unique(lab))
parse_rgb = np.repeat(lab[:, :, None], 3, axis=2)

# DensePose-like image: body part = nearest keypoint segment, colour from a fixed table,
# shaded along the segment, then the min-max scaling the original's open_pose applies.
chest = (lsho + rsho) / 2
midhip = (lhip + rhip) / 2
segs = [(nose, chest), (chest, midhip), (lsho, lelb), (lelb, lwri), (rsho, relb), (relb, rwri),
        (lhip, k[13]), (rhip, k[14])]
TABLE = np.array([[20, 80, 200], [200, 200, 60], [220, 60, 60], [240, 140, 40],
                  [60, 200, 90], [40, 140, 240], [160, 60, 220], [90, 220, 220]], np.float64)
dists, ts = zip(*[seg_dist((xx, yy), a, b) for a, b in segs])
part = np.argmin(np.stack(dists), axis=0)
shade = 0.55 + 0.45 * np.take_along_axis(np.stack(ts), part[None], 0)[0]
dp = TABLE[part] * shade[:, :, None] * M[:, :, None]
dp = ((dp - dp.min()) / (dp.max() - dp.min()) * 255).astype(np.uint8)

cloth = Image.open(GARMENT_SRC + ".png").convert("RGB")
cloth_mask_arr = np.array(Image.open(GARMENT_SRC + "_mask.png"))
assert cloth_mask_arr.dtype == np.uint8 and cloth_mask_arr.ndim == 2

PNG = {}


def save_png(key, arr_or_img, mode=None):
    im = arr_or_img if isinstance(arr_or_img, Image.Image) else Image.fromarray(np.ascontiguousarray(arr_or_img))
    if mode:
        assert im.mode == mode, (key, im.mode)
    p = f"{PNG_DIR}/{key}.png"
    im.save(p, optimize=True)
    back = np.array(Image.open(p))
    assert np.array_equal(back, np.array(im)), key
    PNG[key] = {"file": f"{NAME}/{key}.png", "mode": im.mode, "size_wh": list(im.size),
                "sha256": sha256(p), "bytes": os.path.getsize(p)}


save_png("person", person, "RGB")
save_png("parse", lab, "L")
save_png("densepose", dp, "RGB")
save_png("cloth", cloth, "RGB")
save_png("cloth_mask", cloth_mask_arr, "L")
# The pipeline reads the PNGs back (so the fixture's inputs are exactly these files).
person = Image.open(f"{PNG_DIR}/person.png").convert("RGB")
cloth = Image.open(f"{PNG_DIR}/cloth.png").convert("RGB")
assert np.array_equal(np.array(Image.open(f"{PNG_DIR}/parse.png")), lab)

# ---------------------------------------------------------------- detector replacements
CALLS = {"key_points": 0, "parse_human": 0, "open_pose": 0, "cloth_mask": 0}
POSE_ARRAYS = []


def key_points(self):
    CALLS["key_points"] += 1
    self.image = np.array(self.img)
    keypoints = np.concatenate([kp17, np.ones((17, 1), np.float32)], 1)[None]  # [N, 17, 3] float32
    kpoints = keypoints[0][:, 0:2]
    keypoints_chest = (kpoints[5] + kpoints[6]) / 2
    keypoints_chest_reshaped = keypoints_chest.reshape(1, 2)
    kpoints_chest = np.vstack([kpoints, keypoints_chest_reshaped])
    POSE_ARRAYS.append(kpoints_chest)  # the caller normalises the hips in place: keep a reference
    return kpoints_chest


def parse_human(self):
    CALLS["parse_human"] += 1
    return parse_rgb.copy()


def open_pose(self):
    CALLS["open_pose"] += 1
    return dp.copy()


def cloth_mask(self):
    CALLS["cloth_mask"] += 1
    return cloth_mask_arr.copy()


P = parsehuman.Preprocessing
P.key_points, P.parse_human, P.open_pose, P.cloth_mask = key_points, parse_human, open_pose, cloth_mask

# ---------------------------------------------------------------- taps (no value changes)
T = {}
_orig = {}


def wrap(cls, name, fn):
    _orig[(cls, name)] = getattr(cls, name)
    setattr(cls, name, fn)


def _agn(self):
    a, m = _orig[(P, "get_agnostic_and_mask")](self)
    T["agnostic"], T["agnostic_mask"] = a.copy(), m.copy()
    return a, m


def _pagn(self):
    pa = _orig[(P, "get_parse_agnostic")](self)
    T["parse_agnostic_raw"] = pa.copy()
    T["parse_agnostic_ref"] = pa  # zeroed in place by WarpingCloth.__call__ afterwards
    return pa


wrap(P, "get_agnostic_and_mask", _agn)
wrap(P, "get_parse_agnostic", _pagn)
WC = warpingnetwork.WarpingCloth


def _wc_call(self, person_img, cloth_img):
    T["warping_cloth"] = self
    return _orig[(WC, "__call__")](self, person_img, cloth_img)


def _compose(self, agnostic_image, warped_cloth_image, warped_cloth_mask):
    T["compose_in_cm"] = warped_cloth_mask.detach().clone()
    out = _orig[(WC, "warped_cloth_into_agnostic")](self, agnostic_image, warped_cloth_image, warped_cloth_mask)
    T["compose_cm_after"] = warped_cloth_mask.detach().clone()
    T["new_im"] = out.detach().clone()
    return out


def _warping(self, ck):
    out = _orig[(WC, "warping")](self, ck)
    T["im_reshaped"] = out.detach().clone()
    return out


wrap(WC, "__call__", _wc_call)
wrap(WC, "warped_cloth_into_agnostic", _compose)
wrap(WC, "warping", _warping)
WP = warpingnetwork.WarpingProcess


def _wp_forward(self, input_1, input_2, device):
    c, cm, fl = _orig[(WP, "forward")](self, input_1, input_2, device)
    T["warp_in"] = (input_1.detach().clone(), input_2.detach().clone())
    T["warped_c"], T["warped_cm"] = c.detach().clone(), cm.detach().clone()
    T["flow_list"] = [f.detach().clone() for f in fl]
    T["warp_training"] = self.training
    return c, cm, fl


wrap(WP, "forward", _wp_forward)
VP = viton_pipeline.VitonPipeline


def _enc(self, images):
    z = _orig[(VP, "encode_latents")](self, images)
    T["enc_in"], T["z_cond"] = images.detach().clone(), z.detach().clone()
    return z


def _dec(self, latents):
    out = _orig[(VP, "decode_latents")](self, latents)
    T.setdefault("x0_pred", []).append(latents.detach().clone())
    T["decoded_last"] = out.detach().clone()
    return out


wrap(VP, "encode_latents", _enc)
wrap(VP, "decode_latents", _dec)
DGD = diffusers_vae.DiagonalGaussianDistribution
NOISE_GIVEN = {}


def _sample(self, generator=None):
    assert generator is None
    if "vae" in NOISE_GIVEN:
        noise = NOISE_GIVEN["vae"].to(self.parameters.dtype)
    else:
        noise = torch.randn(self.mean.shape, generator=torch.Generator().manual_seed(SEED_VAE_NOISE),
                            dtype=torch.float32).to(self.parameters.dtype)
    T["vae_noise"], T["posterior_mean"], T["posterior_std"] = noise.clone(), self.mean.clone(), self.std.clone()
    x = self.mean + self.std * noise
    T["vae_sample"] = x.clone()
    return x


wrap(DGD, "sample", _sample)
NS = diffusionmodel.NoiseScheduler
assert viton_pipeline.NoiseScheduler is NS


def _noisy(self, x_0, t, noise=None):
    assert noise is None
    if "init" in NOISE_GIVEN:
        noise = NOISE_GIVEN["init"].to(x_0.dtype)
    else:
        torch.manual_seed(SEED_NOISE)
    x_t, n = _orig[(NS, "get_noisy_image")](self, x_0, t, noise)
    T["t0"], T["init_noise"], T["x_init"] = t.clone(), n.detach().clone(), x_t.detach().clone()
    return x_t, n


wrap(NS, "get_noisy_image", _noisy)


def unet_hook(m, args, out):
    T.setdefault("unet_in", []).append(args[0].detach().clone())
    T.setdefault("unet_t", []).append(args[1].detach().clone())
    T.setdefault("eps", []).append(out.detach().clone())


# ---------------------------------------------------------------- weights and checkpoints
from safetensors.torch import load_file  # noqa: E402

W_WARP = f"{OUT}/dci_viton_warping_oc3.safetensors"
W_UNET = f"{OUT}/dci_viton_unet.safetensors"
warp_sd = {k[8:]: v for k, v in load_file(W_WARP).items() if k.startswith("weights.")}
unet_sd = {k[8:]: v for k, v in load_file(W_UNET).items() if k.startswith("weights.")}
assert json.load(open(f"{OUT}/dci_viton_warping_oc3.json"))["constructor_args"] == {"oc": WARP_OC}
uj = json.load(open(f"{OUT}/dci_viton_unet.json"))
assert uj["constructor"] == {"input_channels": 9, "output_channels": 4, "hidden_channels": UNET_HIDDEN,
                             "time_emb_dim": UNET_TEMB}
assert uj["patched_constants"]["DCI_NUM_GROUPS"] == UNET_GROUPS and uj["patched_constants"]["DCI_SE_REDUCTION"] == 16

# checkpoints in the original's form, the optimizer state from a fresh optimizer of the kind
# the original builds (WarpingCloth: Adam(lr 5e-5, betas (0.5, 0.999)); VitonPipeline:
# AdamW(lr 1e-5, betas (0.5, 0.999)))
_g = warpingnetwork.WarpingProcess(WARP_OC)
ckpt_warping = {"model_state_dict": warp_sd,
                "optimizer_state_dict": torch.optim.Adam(_g.parameters(), lr=0.00005, betas=(0.5, 0.999)).state_dict()}
_u = diffusionmodel.UNet(9, 4, hidden_channels=UNET_HIDDEN, time_emb_dim=UNET_TEMB)
ckpt_ddpm = {"model_state_dict": unet_sd,
             "optimizer_state_dict": torch.optim.AdamW(_u.parameters(), lr=0.00001, betas=(0.5, 0.999)).state_dict()}
assert set(_g.state_dict()) == set(warp_sd) and set(_u.state_dict()) == set(unet_sd)
del _g, _u

# the VAE: SD geometry (4 blocks -> factor 8), narrow
VAE_CONFIG = dict(in_channels=3, out_channels=3, down_block_types=["DownEncoderBlock2D"] * 4,
                  up_block_types=["UpDecoderBlock2D"] * 4, block_out_channels=[8, 16, 16, 16],
                  layers_per_block=1, act_fn="silu", latent_channels=4, norm_num_groups=4,
                  sample_size=512, scaling_factor=0.18215)
CONV_OUT_GAIN = 0.5
QUANT_GAIN = 0.3  # keeps the posterior log-variance moderate (std ~ 0.3..6 instead of up to 370)


def make_vae():
    torch.manual_seed(0)
    vae = AutoencoderKL(**VAE_CONFIG)
    gen = torch.Generator().manual_seed(SEED_VAE_WEIGHTS)
    with torch.no_grad():
        for name, m in vae.named_modules():
            if isinstance(m, (nn.Conv2d, nn.Linear)):
                fan_in = m.weight[0].numel()
                gain = {"decoder.conv_out": CONV_OUT_GAIN, "quant_conv": QUANT_GAIN}.get(name, 1.0)
                m.weight.copy_(torch.randn(m.weight.shape, generator=gen) * gain / math.sqrt(fan_in))
                if m.bias is not None:
                    m.bias.copy_((torch.rand(m.bias.shape, generator=gen) * 2 - 1) * 0.1)
            elif isinstance(m, nn.GroupNorm):
                m.weight.copy_(0.6 + 0.8 * torch.rand(m.weight.shape, generator=gen))
                m.bias.copy_(0.2 * torch.randn(m.bias.shape, generator=gen))
    vae.save_pretrained(VAE_DIR, safe_serialization=True)
    return AutoencoderKL.from_pretrained(VAE_DIR)


vae = make_vae()


# ---------------------------------------------------------------- the run
def run_pipeline():
    T.clear()
    POSE_ARRAYS.clear()
    for key in CALLS:
        CALLS[key] = 0
    pipe = viton_pipeline.VitonPipeline((512, 512), ckpt_ddpm, ckpt_warping, vae)
    h = pipe.viton.register_forward_hook(unet_hook)
    out = pipe(person, cloth)
    h.remove()
    T["pipe"] = pipe
    T["unet_training"] = pipe.viton.training
    return out.detach().clone()


out32 = run_pipeline()
R = dict(T)
R["pose_arrays"] = [p.copy() for p in POSE_ARRAYS]
R["calls"] = dict(CALLS)
pipe = R["pipe"]
wc = R["warping_cloth"]
steps = len(R["eps"])
timesteps = [int(t) for t in torch.linspace(999, 0, DCI_STEPS).long()]
assert steps == DCI_STEPS and [int(t) for t in R["unet_t"]] == timesteps
assert torch.equal(out32, torch.clamp(R["decoded_last"], -1.0, 1.0))

# x_current after every step: steps 0..n-2 are the next U-Net input's channels 0..3; the last
# one is recomputed with the same float ops and checked against the visible ones.
acp = pipe.scheduler.alphas_cumprod


def step_update(x0, eps, t_prev):
    a = acp[t_prev].item()
    return torch.clamp(math.sqrt(a) * x0 + math.sqrt(1.0 - a) * eps, -1.0, 1.0)


x_cur = []
for i in range(steps):
    t_prev = timesteps[i + 1] if i < steps - 1 else 0
    x = step_update(R["x0_pred"][i], R["eps"][i], t_prev)
    if i < steps - 1:
        assert torch.equal(x, R["unet_in"][i + 1][:, 0:4]), i
    x_cur.append(x)
assert torch.equal(R["unet_in"][0][:, 0:4], R["x_init"])
mask_latent = R["unet_in"][0][:, 8:9]
for u in R["unet_in"]:
    assert torch.equal(u[:, 4:8], R["z_cond"]) and torch.equal(u[:, 8:9], mask_latent)

# consistency of the taps with the pipeline attributes
i1, i2 = R["warp_in"]
assert torch.equal(i1, wc.input_1) and torch.equal(i2, wc.input_2)
assert torch.equal(R["enc_in"], pipe.input_viton)
assert torch.equal((R["im_reshaped"] - 0.5) / 0.5, pipe.input_viton)
parse_agn = R["parse_agnostic_ref"]
assert np.array_equal(parse_agn, np.where(R["parse_agnostic_raw"] != parse_rgb, 0, R["parse_agnostic_raw"]))
assert torch.equal(R["z_cond"], R["vae_sample"] * 0.18215)

# uint8 stages -> PNG (exact); the 256/512 transform inputs are the PIL-resized uint8 images
assert R["agnostic"].dtype == np.uint8 and R["agnostic_mask"].dtype == np.uint8
save_png("out_agnostic", R["agnostic"], "RGB")
save_png("out_agnostic_mask", R["agnostic_mask"], "L")
for key, arr in [("out_parse_agnostic_raw", R["parse_agnostic_raw"]), ("out_parse_agnostic", parse_agn)]:
    assert arr.dtype == np.uint8 and (arr == arr[:, :, :1]).all()
    save_png(key, arr[:, :, 0], "L")
dp_seen = dp[:, :, ::-1]
r256 = {
    "t256_cloth": cloth.resize((256, 256), Image.BILINEAR),
    "t256_cloth_mask": Image.fromarray(cloth_mask_arr).resize((256, 256), Image.BILINEAR),
    "t256_densepose": Image.fromarray(dp_seen).resize((256, 256), Image.BILINEAR),
    "t256_parse_agnostic": Image.fromarray(parse_agn).resize((256, 256), Image.BILINEAR),
    "t256_agnostic": Image.fromarray(R["agnostic"]).resize((256, 256), Image.BILINEAR),
    "t512_agnostic_mask": Image.fromarray(R["agnostic_mask"]).resize((512, 512), Image.BILINEAR),
}


def tt(img):
    a = torch.from_numpy(np.array(img)).float()
    a = a[:, :, None] if a.ndim == 2 else a
    return a.permute(2, 0, 1).div(255)[None]


assert torch.equal(torch.cat([tt(r256["t256_cloth"]), tt(r256["t256_cloth_mask"])], 1), wc.input_1)
assert torch.equal(torch.cat([tt(r256["t256_densepose"]), tt(r256["t256_parse_agnostic"]) * 15], 1), wc.input_2)
assert torch.equal(tt(r256["t256_agnostic"]), wc.agnostic)
assert torch.equal(((tt(r256["t512_agnostic_mask"]) - 0.5) / 0.5).repeat(1, 3, 1, 1), pipe.agnostic_mask)
assert np.array_equal(np.array(r256["t256_parse_agnostic"])[:, :, 0], np.array(r256["t256_parse_agnostic"])[:, :, 2])
for key, img in r256.items():
    if key == "t256_parse_agnostic":
        img = Image.fromarray(np.array(img)[:, :, 0])
    save_png(key, img)

# ---------------------------------------------------------------- float64 re-run
torch.set_default_dtype(torch.float64)
vae64 = AutoencoderKL.from_pretrained(VAE_DIR).double()
vae_keep = vae
vae = vae64
NOISE_GIVEN["vae"] = R["vae_noise"].double()
NOISE_GIVEN["init"] = R["init_noise"].double()
out64 = run_pipeline()
R64 = dict(T)
torch.set_default_dtype(torch.float32)
vae = vae_keep
assert R64["warp_in"][0].dtype == torch.float64 and R64["z_cond"].dtype == torch.float64


def md(a, b):
    return float((a.double() - b.double()).abs().max())


x_cur64 = []
for i in range(steps):
    t_prev = timesteps[i + 1] if i < steps - 1 else 0
    x_cur64.append(step_update(R64["x0_pred"][i], R64["eps"][i], t_prev))
thr32 = R["compose_in_cm"] > 0.5
thr64 = R64["compose_in_cm"] > 0.5
f64 = {
    "note": "the same run with torch.set_default_dtype(float64) (ToTensor, every module, make_grid), the VAE "
            ".double(), and the recorded float32 noises; max |f32 - f64| per stage, and the f64 magnitude",
    "input_1": md(R["warp_in"][0], R64["warp_in"][0]),
    "input_2": md(R["warp_in"][1], R64["warp_in"][1]),
    "warped_c": md(R["warped_c"], R64["warped_c"]),
    "warped_cm": md(R["warped_cm"], R64["warped_cm"]),
    **{f"flow_list.{i}": md(a, b) for i, (a, b) in enumerate(zip(R["flow_list"], R64["flow_list"]))},
    "composite_threshold_disagreements": int((thr32 != thr64).sum()),
    "new_im": md(R["new_im"], R64["new_im"]),
    "input_viton": md(pipe.input_viton, R64["pipe"].input_viton),
    "posterior_mean": md(R["posterior_mean"], R64["posterior_mean"]),
    "z_cond": md(R["z_cond"], R64["z_cond"]),
    "x_init": md(R["x_init"], R64["x_init"]),
    "eps": [md(a, b) for a, b in zip(R["eps"], R64["eps"])],
    "x0_pred": [md(a, b) for a, b in zip(R["x0_pred"], R64["x0_pred"])],
    "x_current": [md(a, b) for a, b in zip(x_cur, x_cur64)],
    "output": md(out32, out64),
    "output_f64_abs_max": float(out64.abs().max()),
    "x0_pred_f64_abs_max": [float(a.abs().max()) for a in R64["x0_pred"]],
}
print(json.dumps(f64, indent=1))

# ---------------------------------------------------------------- traps (checked facts)
TRAPS = [
    "PIL coordinates: every float (here numpy float32 scalars) is read as a double and cast with C (int), i.e. truncated toward zero, before any geometry (Pillow _imaging.c draw_ellipse/draw_lines/draw_polygon/draw_rectangle)",
    "outline == fill ('gray', 'gray' / 255, 255): ImageDraw skips the outline pass (ink == fill_ink), only the fill is drawn",
    "'gray' is 128 in mode L and (128, 128, 128) in RGB; 'white' 255, 'black' 0 (ImageColor.getcolor)",
    "ellipse((x0, y0, x1, y1)) fill: integer bbox after truncation, INCLUSIVE: rows y0..y1 and columns x0..x1 (a = x1 - x0, b = y1 - y0; Pillow's integer midpoint ellipse on the doubled grid, spans x0 + (X + a) / 2 with C integer division)",
    "rectangle fill: rows y0..y1 and columns x0..x1 inclusive (truncated ints)",
    "line(width=w), w > 1: the endpoints are truncated first; the line is a 4-vertex polygon with perpendicular offsets ROUND_DOWN(r_min * d) and ROUND_DOWN(r_max * d), r_max = ROUND_UP((w - 1) / 2) / |d|, r_min = ROUND_DOWN((w - 1) / 2) / |d| (ROUND_UP(f) = floor(f + 0.5), ROUND_DOWN(f) = ceil(f - 0.5) for f >= 0, mirrored for f < 0); flat ends exactly at the endpoints (no cap); even w (all widths here: r*6, r*10, r*12) covers w pixels across with the extra pixel on one side that depends on the DIRECTION of the segment (left-to-right horizontal: rows y0 - (w/2 - 1) .. y0 + w/2; right-to-left: y0 - w/2 .. y0 + w/2 - 1); segment order of the original's point lists therefore matters; identical endpoints draw one pixel",
    "polygon fill (also used for wide lines): Pillow's scanline polygon_generic on integer vertices: for every row y in [ymin, ymax] the edge crossings x = (y - y0) * dx + x0 in float32 (dx = (float)(x1 - x0) / (y1 - y0)), sorted, filled in pairs from ROUND_UP(x_left) to ROUND_DOWN(x_right) inclusive; horizontal edges are drawn whole; a crossing at an edge's ymax (y < polygon ymax) is duplicated; plus the 'connect discontiguous corners' adjustment. Pillow-version dependent (pinned: see environment)",
    "paste(im, None, mask L) with masks of 0/255 only: exact copy or no change (no blending)",
    "get_agnostic_and_mask restores head labels {4, 13} only (hair 2 stays grey where drawn), get_parse_agnostic restores {2, 4, 13}; the lower-body set {9, 12, 16, 17, 18, 19} is the same in both",
    "agnostic_mask = drawn mask (0/255) * (label not in {4, 13, 9, 12, 16..19}) in uint8: the arm pixels (14/15) pasted back into the agnostic image and the hair (2) STAY in the mask",
    "the missing-point check of the arm loops tests point i-1 and i while the line joins i-2 and i (inherited index shift); the last mask_arm ellipse (r*4) is centred on the last point the loop reached",
    "mask_arm is created at the literal size (768, 1024): any other person size fails (shape mismatch with the parse array)",
    "key_points() is called 3 times and parse_human() 3 times (the detectors run again each time); each consumer normalises the hips IN PLACE on its own fresh array: length_a = |k5 - k6|, length_b = |k11 - k12|, all float32 numpy; r = int(length_a / 16) + 1",
    "parse_agnostic: the drawn regions are 128 in the L image; `parse_agnostic[parse_agnostic != parse_human] = 0` (3-channel elementwise) turns them into 0 (no label is 128)",
    "transforms.Resize((256, 256)) on PIL images = Image.resize((256, 256), BILINEAR): Pillow's separable resample with support scaled by the reduction factor, fixed-point uint8 arithmetic (22 precision bits), horizontal pass first into a uint8 intermediate, then vertical; torchvision's antialias flag does not apply to PIL; ToTensor divides by 255 in float32",
    "input_2's parse part is (label / 255) * 15 of the BILINEAR-resized label image (labels blend at boundaries), max 19 * 15 / 255 = 1.118",
    "open_pose() output is channel-reversed by WarpingCloth.__call__ ([:, :, ::-1]) before ToTensor",
    "WarpingProcess and UNet stay in train mode and WarpingCloth runs with autograd on (no .eval(), no no_grad); no layer depends on it",
    "warped_cloth_into_agnostic thresholds warped_cm IN PLACE (cm[cm > 0.5] = 1, a view of the network output) and selects pixels where cm == 1",
    "the agnostic mask for the U-Net: Resize((512, 512)) PIL bilinear of the 768x1024 0/255 mask (edges get intermediate values), Normalize(0.5, 0.5), nearest to 64x64 (pixel 8i): the mask channel is not binary (see output.mask_latent)",
    "VAE latent_dist.sample() and get_noisy_image's randn_like are unseeded in the original: the output is random per run; parity needs the recorded noises",
    "x_current is clamped to [-1, 1] in latent space every step; x0_pred is decoded every step, only the last decode is returned (clamped to [-1, 1])",
]

# ---------------------------------------------------------------- fixture
pose_norm = R["pose_arrays"]
assert len(pose_norm) == 3
# [0] WarpingCloth.__call__'s own key_points() (unused there, unmodified), [1] the one
# get_agnostic_and_mask normalised, [2] the one get_parse_agnostic normalised
assert np.array_equal(pose_norm[1], pose_norm[2])
kp18 = np.vstack([kp17, ((kp17[5] + kp17[6]) / 2)[None]])
assert np.array_equal(pose_norm[0], kp18)
length_a = np.linalg.norm(kp18[5] - kp18[6])
r_px = int(length_a / 16) + 1
CROP = (slice(None), slice(None), slice(160, 224), slice(224, 288))


def f32(t):
    return torch.as_tensor(t).detach().to(torch.float32).contiguous()


tensors = {
    "input.keypoints_coco17": f32(kp17),
    "input.keypoints": f32(kp18),
    "output.pose_hips_normalised": f32(pose_norm[1]),
    "output.warped_c": f32(R["warped_c"]),
    "output.warped_cm": f32(R["warped_cm"]),
    # flow_list.4 ([1, 256, 256, 2], 512 KiB) is left out for the size budget: warped_c and
    # warped_cm are grid_sample(input_1, make_grid + flow_list.4) and check it directly
    **{f"output.flow_list.{i}": f32(f) for i, f in enumerate(R["flow_list"][:4])},
    "output.new_im": f32(R["new_im"]),
    "output.input_viton_sub3": f32(pipe.input_viton[:, :, ::SUB, ::SUB]),
    "output.input_viton_crop": f32(pipe.input_viton[CROP]),
    "input.vae_sample_noise": f32(R["vae_noise"]),
    "output.posterior_mean": f32(R["posterior_mean"]),
    "output.posterior_std": f32(R["posterior_std"]),
    "output.z_cond": f32(R["z_cond"]),
    "output.mask_latent": f32(mask_latent),
    "input.init_noise": f32(R["init_noise"]),
    "output.x_init": f32(R["x_init"]),
    "output.timesteps": torch.tensor(timesteps, dtype=torch.int64),
    "output.eps": f32(torch.stack(R["eps"])),
    "output.x0_pred": f32(torch.stack(R["x0_pred"])),
    "output.x_current": f32(torch.stack(x_cur)),
    "output.image_sub3": f32(out32[:, :, ::SUB, ::SUB]),
    "output.image_crop": f32(out32[CROP]),
}
path = f"{OUT}/{NAME}.safetensors"
save_file(tensors, path)
nbytes = os.path.getsize(path)
print("safetensors", nbytes)


def stats(t):
    t = t.double()
    return {"min": float(t.min()), "max": float(t.max()), "mean": float(t.mean()), "std": float(t.std())}


sat = lambda t: float((t.abs() >= 1.0).double().mean())  # noqa: E731
meta = {
    "reference": {"repo": "https://github.com/DanMenCas/DCI-VITON", "commit": COMMIT, "files": FILES,
                  "entry": "viton_pipeline.VitonPipeline((512, 512), checkpoint_ddpm, checkpoint_warping, vae)(person_img, cloth_img)"},
    "environment": {"python": sys.version.split()[0], "torch": torch.__version__, "torchvision": torchvision.__version__,
                    "diffusers": diffusers.__version__, "Pillow": PIL.__version__, "numpy": np.__version__,
                    "cpu_capability": torch.backends.cpu.get_cpu_capability(), "device": "cpu"},
    "script": "scripts/reference/gen_dci_viton_pipeline.py",
    "replaced": {
        "Preprocessing.key_points": "returns np.vstack([k17, (k17[5] + k17[6]) / 2]) in float32 from input.keypoints_coco17 (a fresh array per call, as detectron2 gives); called 3 times (WarpingCloth.__call__ (result unused), get_agnostic_and_mask, get_parse_agnostic); the last two normalise the hips IN PLACE on their own copy",
        "Preprocessing.parse_human": "returns parse.png (L, labels 0..19) repeated to H x W x 3 uint8 (= the LIP palette output, whose rows are grey); called 3 times",
        "Preprocessing.open_pose": "returns densepose.png (RGB uint8); WarpingCloth.__call__ then does [:, :, ::-1], so the net sees its channels reversed (t256_densepose.png is the resize of the REVERSED array)",
        "Preprocessing.cloth_mask": "returns cloth_mask.png as a 2-D uint8 array (0/255)",
        "stubbed_imports": STUBBED,
        "source_patches": PATCHES,
        "DiagonalGaussianDistribution.sample": f"mean + std * noise with noise = torch.randn(mean.shape, generator=torch.Generator().manual_seed({SEED_VAE_NOISE})) (= input.vae_sample_noise); diffusers' own formula, only the draw is ours",
        "NoiseScheduler.get_noisy_image": f"called as written (noise=None -> torch.randn_like) after torch.manual_seed({SEED_NOISE}); the returned noise is input.init_noise",
    },
    "calls": R["calls"],
    "inputs": {
        "person": {"png": "person.png", "from": PERSON_SRC + ".png (384x512, openvto avatar, MIT; AI-generated studio photo)",
                   "resize": "PIL Image.resize((768, 1024), BICUBIC)", "mode": "RGB", "size_wh": [W, H]},
        "cloth": {"png": "cloth.png", "from": GARMENT_SRC + ".png", "mode": "RGB", "size_wh": list(cloth.size)},
        "cloth_mask": {"png": "cloth_mask.png", "from": GARMENT_SRC + "_mask.png", "values": [0, 255]},
        "keypoints": {"tensor": "input.keypoints_coco17 [17, 2] (x, y) pixels of person.png, float32",
                      "from": PERSON_SRC + "_keypoints.json (OpenPose BODY_25 from mediapipe) times 2.0 (384x512 -> 768x1024)",
                      "coco_from_body25": COCO_FROM_BODY25, "coco_order": COCO_NAMES,
                      "missing_set_to_zero": missing,
                      "note": "the original only reads points 5..12 and the appended 17; knees/ankles are unused"},
        "parse": {"png": "parse.png", "labels_present": labels_present,
                  "how": "built from the person mask (upscaled NEAREST) and the keypoints, no parser: inside the mask upper-clothes 5; head above nose + 0.45 (shoulder_y - nose_y): face 13, hair 2 on the scalp (y < eye_y - 1.6 (nose_y - eye_y)) and the beard (y > nose_y + 1.2 (nose_y - eye_y), inside the neck rectangle: get_agnostic_and_mask does not restore label 2, get_parse_agnostic does), a glasses band 4 over the eyes; neck 10; below hip_y + 0.06 torso within the hips +- half their distance: pants 9, a skirt band 12 under the hem, the last 70 rows legs 16 (x >= mid-hip) / 17, the last 24 rows shoes 18 / 19; hands (capsule after each wrist) 14 (COCO left = image right) / 15. Labels 12 and 16..19 are placed only to exercise the original's label groups"},
        "densepose": {"png": "densepose.png", "how": "nearest keypoint segment (head, torso, upper/lower arms, thighs) -> fixed colour table, shaded along the segment, inside the person mask; min-max scaled to 0..255 as open_pose does"},
    },
    "weights": {
        "warping": {"file": "dci_viton_warping_oc3.safetensors", "keys": "weights.* (strip the prefix)", "class": "WarpingProcess(3)",
                    "sha256": sha256(W_WARP)},
        "unet": {"file": "dci_viton_unet.safetensors", "keys": "weights.*", "class": f"UNet(9, 4, hidden_channels={UNET_HIDDEN}, time_emb_dim={UNET_TEMB}), num_groups {UNET_GROUPS}, SE reduction 16",
                 "sha256": sha256(W_UNET)},
        "vae": {"folder": f"{NAME}_vae_pretrained", "config": VAE_CONFIG,
                "init": f"seed {SEED_VAE_WEIGHTS}: conv/linear N(0, gain^2/fan_in) (gain 1, decoder.conv_out {CONV_OUT_GAIN}, quant_conv {QUANT_GAIN}), biases U(-0.1, 0.1), GroupNorm weight U(0.6, 1.4), bias N(0, 0.2)",
                "sha256": sha256(f"{VAE_DIR}/diffusion_pytorch_model.safetensors"),
                "why_not_diffusers_vae_pretrained": "2 blocks = factor 2: a 512 input gives a 256x256 latent (1 MiB per latent tensor, 9+ of them) and a 65536-token mid-block self-attention; this one has SD-1.5's factor 8 (64x64 latent, 4096 tokens)"},
        "checkpoints": "built in memory: checkpoint_warping = {'model_state_dict': warping weights, 'optimizer_state_dict': torch.optim.Adam(WarpingProcess(3).parameters(), lr=5e-5, betas=(0.5, 0.999)).state_dict()} (fresh, empty state); checkpoint_ddpm = {'model_state_dict': unet weights, 'optimizer_state_dict': torch.optim.AdamW(UNet(...).parameters(), lr=1e-5, betas=(0.5, 0.999)).state_dict()}; both load_state_dict'ed by the original at every __call__ (optimizer state never affects the forward)",
    },
    "seeds": {"vae_weights": SEED_VAE_WEIGHTS, "vae_sample_noise": SEED_VAE_NOISE, "init_noise": SEED_NOISE},
    "steps": {"DCI_STEPS": DCI_STEPS, "original": 200, "timesteps": timesteps,
              "t_prev": "timesteps[i + 1], and int 0 at the last step"},
    "stages": {
        "1_keypoints": "input.keypoints [18, 2] float32 = key_points(); output.pose_hips_normalised = the array after get_agnostic_and_mask's in-place hip rescale (length_a = |k5 - k6|, length_b = |k11 - k12|, p = (k12 + k11) / 2, k12 = p + (k12 - p) / length_b * length_a, k11 likewise; all float32 numpy)",
        "r": r_px,
        "2_agnostic": "out_agnostic.png: get_agnostic_and_mask()[0], H x W x 3 uint8",
        "3_agnostic_mask": "out_agnostic_mask.png: get_agnostic_and_mask()[1], H x W uint8 (0/255) = drawn mask * (parse not in {4,13,9,12,16..19})",
        "4_parse_agnostic": "out_parse_agnostic_raw.png: get_parse_agnostic() channel 0 (the drawn regions are 128 = 'gray' in mode L); out_parse_agnostic.png: after `parse_agnostic[parse_agnostic != parse_human] = 0` (all 3 channels equal)",
        "5_transforms": "Resize((256, 256)) = PIL Image.resize((256, 256), BILINEAR) of uint8 images, then ToTensor (/255, float32): t256_cloth.png, t256_cloth_mask.png, t256_densepose.png (of the channel-reversed array), t256_parse_agnostic.png (3 equal channels, stored as L), t256_agnostic.png. input_1 = cat([t256_cloth/255, t256_cloth_mask/255], 1) [1, 4, 256, 256]; input_2 = cat([t256_densepose/255, t256_parse_agnostic(3 ch)/255 * 15], 1) [1, 6, 256, 256]; the script checks both bit-exactly (float32 u8/255 then * 15)",
        "6_warping": "warped_c, warped_cm, flow_list = WarpingProcess(3)(input_1, input_2, cpu) in train mode with grad enabled (WarpingCloth never calls .eval() / no_grad; no layer depends on it); output.warped_cm is the value as returned, BEFORE warped_cloth_into_agnostic thresholds it in place",
        "7_composite": "new_im = agnostic_256 with new_im[cm3 == 1] = warped_c[cm3 == 1] where cm is warped_cm after `cm[cm > 0.5] = 1` (values in (0, 0.5] and below stay: only exact 1 selects), [1, 3, 256, 256]",
        "8_input_viton": "(F.interpolate(new_im, (512, 512), bilinear, align_corners=False) - 0.5) / 0.5; stored subsampled (output.input_viton_sub3 = [..., ::3, ::3], 171 x 171) and a full-resolution crop (output.input_viton_crop = [..., 160:224, 224:288])",
        "9_vae_encode": "posterior = vae.encode(input_viton).latent_dist; sample = mean + std * input.vae_sample_noise; output.z_cond = sample * 0.18215 [1, 4, 64, 64]",
        "10_mask": "Resize((512, 512)) PIL bilinear of out_agnostic_mask.png (= t512_agnostic_mask.png), ToTensor, Normalize(0.5, 0.5) -> [-1, 1], repeat to 3 channels, F.interpolate(size=(64, 64), mode='nearest') (legacy: source index floor(8 i) = 8 i), channel 0 = output.mask_latent [1, 1, 64, 64]",
        "11_init": "x_init = sqrt(acp[999]) * z_cond + sqrt(1 - acp[999]) * input.init_noise with float32 TENSOR sqrt (0-dim t)",
        "12_loop": "per step i: eps = unet(cat([x, z_cond, mask_latent], 1), tensor([t])); x0 = (x - sqrt(1 - a_t) * eps) / sqrt(a_t); x = clamp(sqrt(a_prev) * x0 + sqrt(1 - a_prev) * eps, -1, 1); coefficients are float64 math.sqrt of alphas_cumprod[t].item(), applied to float32 tensors; decode_latents(x0) every step. output.eps / x0_pred / x_current: [steps, 1, 4, 64, 64]",
        "13_output": "clamp(vae.decode(x0_pred_last / 0.18215).sample, -1, 1) [1, 3, 512, 512]: stored subsampled (output.image_sub3) and cropped (output.image_crop) as input_viton",
    },
    "tensors": {k: {"shape": list(v.shape), "dtype": str(v.dtype).replace("torch.", "")} for k, v in sorted(tensors.items())},
    "pngs": PNG,
    "stats": {"warped_cm": stats(R["warped_cm"]), "warped_c": stats(R["warped_c"]), "new_im": stats(R["new_im"]),
              "z_cond": stats(R["z_cond"]), "eps": stats(torch.stack(R["eps"])),
              "x_current_saturated_fraction": [sat(x) for x in x_cur],
              "x0_pred_abs_max": [float(x.abs().max()) for x in R["x0_pred"]],
              "output": stats(out32), "output_saturated_fraction": sat(out32),
              "agnostic_mask_fraction": float((R["agnostic_mask"] > 0).mean()),
              "parse_agnostic_zeroed_fraction": float((parse_agn[:, :, 0] == 0).mean() - (lab == 0).mean()),
              "composite_cloth_fraction": float(thr32.double().mean())},
    "modes": {"warping_network_training_flag": R["warp_training"], "unet_training_flag": R["unet_training"],
              "vae": "eval (VitonPipeline calls self.vae.eval())"},
    "float64_check": f64,
    "tolerance": {
        "uint8_stages": "exact (PNG)",
        "input_1_input_2": "exact (u8 / 255 in float32)",
        "warped_c_cm_flow_new_im": {"atol": max(1e-4, 4 * f64["warped_c"]), "rtol": 1e-4,
                                    "note": "new_im: compare only where both thresholds agree"},
        "input_viton_z_cond_x_init": {"atol": 2e-4, "rtol": 1e-4},
        "sampler": {"note": "x0 at t=999 divides by sqrt(acp[999]) = 0.0064 (x150); x_current is clamped to [-1, 1] (mostly saturated with random weights, see stats); atol per step = max(2e-4, 4 * float64_check), rtol 1e-4",
                    "eps_atol": [max(2e-4, 4 * v) for v in f64["eps"]],
                    "x0_pred_atol": [max(2e-4, 4 * v) for v in f64["x0_pred"]],
                    "x_current_atol": [max(2e-4, 4 * v) for v in f64["x_current"]], "rtol": 1e-4},
        "output": {"atol": max(1e-4, 4 * f64["output"]), "rtol": 1e-4},
    },
    "traps": TRAPS,
    "sha256": sha256(path),
    "bytes": nbytes,
}
with open(f"{OUT}/{NAME}.json", "w") as f:
    json.dump(meta, f, indent=1)
print("done", nbytes, sum(v["bytes"] for v in PNG.values()))
