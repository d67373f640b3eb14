#!/usr/bin/env python3
"""Speed of vton's image-quality metrics next to the Python packages, on this machine, in
one run: the same inputs, the same random full-width weights, the same thread count.

  * SSIM / MS-SSIM / PSNR of one 1024x768 RGB uint8 pair (a real photo from examples/,
    PIL-bicubic x2, and a blurred + JPEG-compressed copy): vton (float64) vs
    scikit-image `structural_similarity` / `peak_signal_noise_ratio` (float64),
    pytorch_msssim `ssim` / `ms_ssim` (float32 NCHW) and torchmetrics SSIM (float32).
  * FID feature extraction: pytorch-fid 0.3.0 `InceptionV3([3])` (2048 pool3 features) at
    batch 1 and 8 on 256x192 inputs (resized to 299x299 inside) vs vton's
    `FidInceptionV3::features`, on random full-width weights made here with pytorch-fid's
    own classes (the real file cannot be downloaded offline) and saved under the
    `pt_inception-2015-12-05` key names; the features of both sides are compared.
  * LPIPS alex of one 256x192 pair: lpips 0.1.4 (random torchvision alexnet trunk, the
    package's own v0.1 lin layers) vs vton (the same trunk, its bundled copy of those lin
    layers).

vton's side is the criterion bench `cargo bench -p vton-benches --bench metrics`, run with
VTON_BENCH_METRICS_DIR pointing at the files written here; its medians are read from
target/criterion/<group>/<bench>/new/estimates.json. Run by hand (never a dependency of
vton or its CI), from any directory:

    pip install torch torchvision scikit-image pytorch-msssim pytorch-fid torchmetrics \
        lpips safetensors pillow
    python scripts/bench_metrics.py [--dir /tmp/vton_bench_metrics] [--threads 2]
        [--runs 10] [--wait-idle 600] [--skip-cargo]

Writes DIR/bench_metrics.md (the table) and DIR/bench_metrics.json (every number).
"""
import argparse
import io
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def parse_args():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--dir", type=Path, default=Path("/tmp/vton_bench_metrics"))
    p.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    p.add_argument("--runs", type=int, default=10, help="timed runs per Python workload")
    p.add_argument(
        "--wait-idle",
        type=float,
        default=0.0,
        metavar="SECONDS",
        help="wait up to this long for the 1-minute load average to fall below 0.5",
    )
    p.add_argument("--skip-cargo", action="store_true", help="reuse the last criterion results")
    return p.parse_args()


ARGS = parse_args()
# Thread counts before torch / numpy load their pools.
for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS", "RAYON_NUM_THREADS"):
    os.environ[var] = str(ARGS.threads)

import numpy as np  # noqa: E402
import torch  # noqa: E402
from PIL import Image, ImageFilter  # noqa: E402
from safetensors.torch import save_file  # noqa: E402

torch.set_num_threads(ARGS.threads)
torch.manual_seed(0)

FID_BATCH = 8
FID_PHOTOS = [
    "person/openvto_real1_fullbody.png",
    "person/openvto_real1_selfie.png",
    "person/openvto_ai3_selfie.png",
    "person/openvto_ai_avatar1_upper.png",
    "person/openvto_ai_avatar2_upper.png",
    "person/mpl_grace_hopper.png",
    "person/skimage_astronaut.png",
    "garment/openvto_shirt1_front.png",
]
CALIB_PHOTOS = [
    "garment/openvto_jacket1_front.png",
    "garment/openvto_jacket2_front.png",
    "garment/openvto_shirt2_front.png",
    "garment/openvto_shirt3_front.png",
    "garment/openvto_shirt4_front.png",
]


def load_rgb(rel):
    return Image.open(ROOT / "examples" / rel).convert("RGB")


def u8(path):
    return np.asarray(Image.open(path).convert("RGB"))


def to_tensor(arrays, scale=1.0 / 255.0, offset=0.0):
    x = torch.from_numpy(np.stack(arrays)).permute(0, 3, 1, 2).float()
    return x * scale + offset


# ---- inputs ----------------------------------------------------------------------------
def make_inputs(d):
    a = load_rgb("person/openvto_real1_fullbody.png").resize((768, 1024), Image.BICUBIC)
    buf = io.BytesIO()
    a.filter(ImageFilter.GaussianBlur(1.0)).save(buf, "JPEG", quality=40)
    b = Image.open(io.BytesIO(buf.getvalue())).convert("RGB")
    a.save(d / "ssim_a.png")
    b.save(d / "ssim_b.png")
    for i, rel in enumerate(FID_PHOTOS):
        load_rgb(rel).resize((192, 256), Image.BICUBIC).save(d / f"fid_{i}.png")


# ---- random full-width pytorch-fid InceptionV3 ------------------------------------------
def fid_architecture():
    """pytorch_fid.inception.fid_inception_v3() without its download: the same torchvision
    Inception3 with the same FID blocks swapped in (pytorch-fid 0.3.0's code, its classes)."""
    from pytorch_fid import inception as pfi

    net = pfi._inception_v3(num_classes=1008, aux_logits=False, weights=None)
    net.Mixed_5b = pfi.FIDInceptionA(192, pool_features=32)
    net.Mixed_5c = pfi.FIDInceptionA(256, pool_features=64)
    net.Mixed_5d = pfi.FIDInceptionA(288, pool_features=64)
    net.Mixed_6b = pfi.FIDInceptionC(768, channels_7x7=128)
    net.Mixed_6c = pfi.FIDInceptionC(768, channels_7x7=160)
    net.Mixed_6d = pfi.FIDInceptionC(768, channels_7x7=160)
    net.Mixed_6e = pfi.FIDInceptionC(768, channels_7x7=192)
    net.Mixed_7b = pfi.FIDInceptionE_1(1280)
    net.Mixed_7c = pfi.FIDInceptionE_2(2048)
    return net


def pytorch_fid_model(state_dict):
    """pytorch-fid's own `InceptionV3([3])`, its weight download answered with `state_dict`
    (so the package's strict `load_state_dict` checks the key set)."""
    from pytorch_fid import inception as pfi

    orig = pfi.load_state_dict_from_url
    pfi.load_state_dict_from_url = lambda *a, **k: state_dict
    try:
        model = pfi.InceptionV3([3])
    finally:
        pfi.load_state_dict_from_url = orig
    return model.eval()


def make_inception(path):
    g = torch.Generator().manual_seed(1)
    net = fid_architecture()
    with torch.no_grad():
        for m in net.modules():
            if isinstance(m, torch.nn.Conv2d):
                fan_in = m.weight[0].numel()
                m.weight.copy_(torch.randn(m.weight.shape, generator=g) * (2.0 / fan_in) ** 0.5)
            elif isinstance(m, torch.nn.BatchNorm2d):
                m.weight.copy_(torch.rand(m.weight.shape, generator=g) * 0.8 + 0.6)
                m.bias.copy_(torch.randn(m.bias.shape, generator=g) * 0.2)
            elif isinstance(m, torch.nn.Linear):
                m.weight.copy_(torch.randn(m.weight.shape, generator=g) / m.in_features**0.5)
                m.bias.uniform_(-0.05, 0.05, generator=g)
    # Eval-mode BN statistics from one train-mode pass (cumulative average) through
    # pytorch-fid's wrapper over photos that are not the benchmark inputs; the wrapper is
    # built around `net` itself, so the statistics land in `net`.
    from pytorch_fid import inception as pfi

    orig = pfi.fid_inception_v3
    pfi.fid_inception_v3 = lambda: net
    try:
        model = pfi.InceptionV3([3])
    finally:
        pfi.fid_inception_v3 = orig
    for m in model.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            m.reset_running_stats()
            m.momentum = None
    calib = []
    for rel in CALIB_PHOTOS:
        im = load_rgb(rel).resize((192, 256), Image.BICUBIC)
        calib += [np.asarray(im), np.asarray(im.transpose(Image.FLIP_LEFT_RIGHT))]
    model.train()
    with torch.no_grad():
        model(to_tensor(calib))
    model.eval()
    sd = {k: v.detach().contiguous() for k, v in net.state_dict().items()}
    assert len(sd) == 566, len(sd)
    save_file(sd, str(path))


# ---- random full-width alexnet trunk for LPIPS ------------------------------------------
def make_alexnet(path):
    import torchvision

    torch.manual_seed(2)
    alex = torchvision.models.alexnet(weights=None)
    sd = {k: v.contiguous() for k, v in alex.state_dict().items() if k.startswith("features.")}
    save_file(sd, str(path))


def lpips_model(path):
    import lpips
    from safetensors.torch import load_file

    lp = lpips.LPIPS(net="alex", pretrained=True, pnet_rand=True, verbose=False).eval()
    feats = load_file(str(path))
    own = lp.state_dict()
    for k in list(own):
        if k.startswith("net.slice"):
            n = k.split(".", 2)[2]  # "<N>.weight"
            own[k] = feats[f"features.{n}"]
    lp.load_state_dict(own)
    return lp


# ---- timing -----------------------------------------------------------------------------
def median_time(fn, runs, warmup=1):
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times), times


def target_dir():
    if os.environ.get("CARGO_TARGET_DIR"):
        return Path(os.environ["CARGO_TARGET_DIR"])
    return ROOT / "target"


def criterion_median(group, bench):
    est = target_dir() / "criterion" / group / bench / "new" / "estimates.json"
    return json.loads(est.read_text())["median"]["point_estimate"] * 1e-9


def load():
    return os.getloadavg()


def wait_idle(limit):
    t0 = time.time()
    while load()[0] >= 0.5 and time.time() - t0 < limit:
        time.sleep(20)
    return load()


def fmt_t(s):
    if s >= 1.0:
        return f"{s:.2f} s"
    if s >= 1e-3:
        return f"{s * 1e3:.1f} ms"
    return f"{s * 1e6:.0f} µs"


def main():
    d = ARGS.dir
    d.mkdir(parents=True, exist_ok=True)
    make_inputs(d)
    inc_path = d / "fid_inception_full.safetensors"
    alex_path = d / "alexnet_features_full.safetensors"
    if not inc_path.exists():
        print("making random full-width FID Inception weights ...", file=sys.stderr)
        make_inception(inc_path)
    if not alex_path.exists():
        make_alexnet(alex_path)

    load_before = wait_idle(ARGS.wait_idle) if ARGS.wait_idle > 0 else load()
    print(f"load average before: {load_before}", file=sys.stderr)

    # ---- vton (criterion) ---------------------------------------------------------------
    if not ARGS.skip_cargo:
        env = dict(os.environ, VTON_BENCH_METRICS_DIR=str(d), RAYON_NUM_THREADS=str(ARGS.threads))
        for k in ("VTON_BENCH_INCEPTION", "VTON_BENCH_LPIPS_ALEX"):
            env.pop(k, None)
        subprocess.run(
            ["cargo", "bench", "-p", "vton-benches", "--bench", "metrics"],
            cwd=ROOT,
            env=env,
            check=True,
        )
    load_mid = load()
    vt = {
        "ssim": criterion_median("metrics_1024x768", "ssim_skimage_gaussian"),
        "ssim_tm": criterion_median("metrics_1024x768", "ssim_torchmetrics"),
        "ms_ssim": criterion_median("metrics_1024x768", "ms_ssim"),
        "psnr": criterion_median("metrics_1024x768", "psnr"),
        "fid1": criterion_median("fid_inception_256x192", "batch1"),
        "fid8": criterion_median("fid_inception_256x192", "batch8") / FID_BATCH,
        "lpips": criterion_median("lpips_256x192", "alex_batch1"),
    }
    vvals = json.loads((d / "vton_values.json").read_text())
    vfeat = np.fromfile(d / "vton_features_b8.f32", dtype="<f4").reshape(FID_BATCH, -1)

    # ---- Python packages ----------------------------------------------------------------
    import lpips
    import pytorch_fid
    import pytorch_msssim
    import skimage
    import torchmetrics
    import torchvision
    from safetensors.torch import load_file
    from skimage.metrics import peak_signal_noise_ratio, structural_similarity
    from torchmetrics.functional.image import structural_similarity_index_measure as tm_ssim

    a, b = u8(d / "ssim_a.png"), u8(d / "ssim_b.png")
    assert a.shape == (1024, 768, 3)
    xa, xb = to_tensor([a], 1.0), to_tensor([b], 1.0)  # float32, 0..255
    runs = ARGS.runs
    py, pvals = {}, {}

    def sk_ssim():
        return structural_similarity(
            a, b, channel_axis=-1, data_range=255, gaussian_weights=True, sigma=1.5,
            use_sample_covariance=False,
        )

    with torch.no_grad():
        pvals["ssim_skimage"] = sk_ssim()
        py["ssim_skimage"], _ = median_time(sk_ssim, runs)
        f = lambda: pytorch_msssim.ssim(xa, xb, data_range=255, size_average=True)  # noqa: E731
        pvals["ssim_msssim"] = f().item()
        py["ssim_msssim"], _ = median_time(f, runs)
        f = lambda: tm_ssim(xa, xb, data_range=255.0)  # noqa: E731
        pvals["ssim_tm"] = f().item()
        py["ssim_tm"], _ = median_time(f, runs)
        f = lambda: pytorch_msssim.ms_ssim(xa, xb, data_range=255, size_average=True)  # noqa: E731
        pvals["ms_ssim"] = f().item()
        py["ms_ssim"], _ = median_time(f, runs)
        f = lambda: peak_signal_noise_ratio(a, b, data_range=255)  # noqa: E731
        pvals["psnr"] = f()
        py["psnr"], _ = median_time(f, runs)

        model = pytorch_fid_model(load_file(str(inc_path)))
        imgs = [u8(d / f"fid_{i}.png") for i in range(FID_BATCH)]
        x8 = to_tensor(imgs)
        x1 = x8[:1].clone()
        feats = model(x8)[0].reshape(FID_BATCH, -1).numpy()
        py["fid1"], _ = median_time(lambda: model(x1), runs)
        py["fid8"], _ = median_time(lambda: model(x8), max(3, runs // 2))
        py["fid8"] /= FID_BATCH

        lp = lpips_model(alex_path)
        l0 = to_tensor(imgs[:1], 2.0 / 255.0, -1.0)
        l1 = to_tensor(imgs[1:2], 2.0 / 255.0, -1.0)
        pvals["lpips"] = lp(l0, l1).item()
        py["lpips"], _ = median_time(lambda: lp(l0, l1), runs)
    load_after = load()

    feat_diff = float(np.abs(vfeat - feats).max())
    feat_scale = float(np.abs(feats).max())
    versions = {
        "python": platform.python_version(),
        "torch": torch.__version__,
        "torchvision": torchvision.__version__,
        "numpy": np.__version__,
        "scikit-image": skimage.__version__,
        "pytorch-msssim": getattr(pytorch_msssim, "__version__", "1.0.0"),
        "torchmetrics": torchmetrics.__version__,
        "pytorch-fid": pytorch_fid.__version__,
        "lpips": getattr(lpips, "__version__", "0.1.4"),
    }
    cpu = platform.processor() or "?"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass

    def dv(x, y):
        return f"{abs(x - y):.1e}"

    rows = [
        ("SSIM 1024x768 RGB, Gaussian σ 1.5 (vton float64)", vt["ssim"],
         f"scikit-image {versions['scikit-image']} `structural_similarity` (float64)",
         py["ssim_skimage"], dv(vvals["ssim_skimage_gaussian"], pvals["ssim_skimage"])),
        ("SSIM 1024x768 RGB, Gaussian σ 1.5 (vton float64)", vt["ssim"],
         "pytorch_msssim `ssim` (float32)", py["ssim_msssim"],
         dv(vvals["ssim_skimage_gaussian"], pvals["ssim_msssim"])),
        ("SSIM 1024x768 RGB, torchmetrics convention (vton float64)", vt["ssim_tm"],
         f"torchmetrics {versions['torchmetrics']} SSIM (float32)", py["ssim_tm"],
         dv(vvals["ssim_torchmetrics"], pvals["ssim_tm"])),
        ("MS-SSIM 1024x768 RGB (vton float64)", vt["ms_ssim"],
         "pytorch_msssim `ms_ssim` (float32)", py["ms_ssim"],
         dv(vvals["ms_ssim"], pvals["ms_ssim"])),
        ("PSNR 1024x768 RGB", vt["psnr"], "scikit-image `peak_signal_noise_ratio`",
         py["psnr"], dv(vvals["psnr"], pvals["psnr"])),
        ("FID features, 256x192 -> 299, batch 1 (per image)", vt["fid1"],
         "pytorch-fid `InceptionV3([3])`", py["fid1"], f"{feat_diff:.1e} (features)"),
        ("FID features, 256x192 -> 299, batch 8 (per image)", vt["fid8"],
         "pytorch-fid `InceptionV3([3])`", py["fid8"], f"{feat_diff:.1e} (features)"),
        ("LPIPS alex, one 256x192 pair", vt["lpips"], "lpips 0.1.4 `LPIPS(net='alex')`",
         py["lpips"], dv(vvals["lpips_alex"], pvals["lpips"])),
    ]
    lines = [
        f"Machine: {cpu}, {os.cpu_count()} cores; {ARGS.threads} threads. "
        f"Load average (1/5/15 min) before {load_before[0]:.2f}/{load_before[1]:.2f}/{load_before[2]:.2f}, "
        f"after vton {load_mid[0]:.2f}, after Python {load_after[0]:.2f}.",
        "Python " + ", ".join(f"{k} {v}" for k, v in versions.items() if k != "python")
        + f" (Python {versions['python']}).",
        "",
        "| workload | vton | reference | reference time | ratio (vton / reference) | \\|value difference\\| |",
        "|---|---|---|---|---|---|",
    ]
    for name, v, ref, p, diff in rows:
        lines.append(f"| {name} | {fmt_t(v)} | {ref} | {fmt_t(p)} | {v / p:.2f} | {diff} |")
    lines.append("")
    lines.append(
        f"FID features: {vfeat.shape[1]} per image, max |vton - pytorch-fid| = {feat_diff:.2e} "
        f"(largest feature {feat_scale:.2f})."
    )
    table = "\n".join(lines)
    print(table)
    (d / "bench_metrics.md").write_text(table + "\n")
    (d / "bench_metrics.json").write_text(json.dumps({
        "vton_s": vt, "python_s": py, "vton_values": vvals, "python_values": pvals,
        "feature_max_abs_diff": feat_diff, "feature_max_abs": feat_scale,
        "versions": versions, "threads": ARGS.threads,
        "load": {"before": load_before, "after_vton": load_mid, "after_python": load_after},
    }, indent=2) + "\n")


if __name__ == "__main__":
    main()
