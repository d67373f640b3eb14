#!/usr/bin/env bash
# The "real run": vton's trainers on the bundled tiny VITON-HD set, then inference with the
# trained checkpoints, then loss-curve plots (docs/training_runs.md shows the results).
#   TORCH_PY=/path/to/python-with-torch-and-matplotlib scripts/train_demo.sh [OUT]
# Defaults sized for ~10 CPU minutes on 2 cores: GMM ngf 16, 300 steps, batch 2; TOM
# ngf 16, 40 steps, batch 1. The VGG19 of TOM's perceptual loss is a RANDOM-init
# full-width torchvision VGG19 written by scripts/bench/train_reference.py make (no
# ImageNet weights are downloadable here): the VGG term trains toward random features.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${TORCH_PY:-python3}
OUT=${1:-target/train_demo}
GMM_STEPS=${GMM_STEPS:-300}
TOM_STEPS=${TOM_STEPS:-40}
NGF=${NGF:-16}
DATA=tests/fixtures/vitonhd_tiny
mkdir -p "$OUT"
[ -n "${NO_BUILD:-}" ] || cargo build --release -p vton-cli
VTON=target/release/vton
[ -f "$OUT/bench/vgg19_random.pth" ] || "$PY" scripts/bench/train_reference.py make "$OUT/bench"

if [ -z "${SKIP_TRAIN:-}" ]; then
echo "== GMM: $GMM_STEPS steps, ngf $NGF, batch 2"
rm -rf "$OUT/gmm"
/usr/bin/time -v $VTON train gmm --data $DATA --out "$OUT/gmm" --steps "$GMM_STEPS" --batch-size 2 \
  --save-every 100 --val-every 50 --opt ngf="$NGF" 2> >(tee "$OUT/gmm.time" >&2)

# TOM trains on the GMM's warped garments (warp-cloth/, warp-mask/). vton has no command
# writing those yet, so the TOM data is a copy of the tiny set with the person's own
# garment, unwarped, as the "warped" garment (paired).
rm -rf "$OUT/tomdata" && cp -r $DATA "$OUT/tomdata"
cp -r "$OUT/tomdata/test/cloth" "$OUT/tomdata/test/warp-cloth"
cp -r "$OUT/tomdata/test/cloth-mask" "$OUT/tomdata/test/warp-mask"
echo "== TOM: $TOM_STEPS steps, ngf $NGF, batch 1"
rm -rf "$OUT/tom"
/usr/bin/time -v $VTON train tom --data "$OUT/tomdata" --out "$OUT/tom" --steps "$TOM_STEPS" --batch-size 1 \
  --save-every 20 --val-every 10 --vgg "$OUT/bench/vgg19_random.pth" --opt ngf="$NGF" 2> >(tee "$OUT/tom.time" >&2)

fi
echo "== inference with the trained checkpoints"
rm -rf "$OUT/tryon"
$VTON run-dataset --model cpvton --data $DATA --out "$OUT/tryon" \
  --gmm "$OUT/gmm/checkpoints/$(cat "$OUT/gmm/checkpoints/latest")/model.pth" \
  --tom "$OUT/tom/checkpoints/$(cat "$OUT/tom/checkpoints/latest")/model.pth" \
  --ngf "$NGF" --align-corners false

"$PY" - "$OUT" <<'PYEOF'
import json, os, shutil, sys
import matplotlib
matplotlib.use("Agg")
import matplotlib.pyplot as plt
out = sys.argv[1]
for kind, terms in (("gmm", ["total", "Lwarp", "Lgic"]), ("tom", ["total", "loss_l1", "loss_vgg", "loss_mask"])):
    rows = [json.loads(l) for l in open(os.path.join(out, kind, "log.jsonl"))]
    steps = [r for r in rows if "losses" in r]
    vals = [r for r in rows if "validation" in r]
    fig, ax = plt.subplots(1, 2, figsize=(10, 3.6))
    for t in terms:
        ax[0].plot([r["step"] for r in steps], [r["losses"][t] for r in steps], label=t, lw=1)
    ax[0].set_yscale("log"); ax[0].set_xlabel("step"); ax[0].set_title(f"{kind.upper()} training loss"); ax[0].legend()
    ax[1].plot([r["step"] for r in vals], [r["validation"]["ssim"] for r in vals], "o-", label="SSIM")
    ax2 = ax[1].twinx()
    ax2.plot([r["step"] for r in vals], [r["validation"]["psnr"] for r in vals], "s--", color="C1", label="PSNR")
    ax[1].set_xlabel("step"); ax[1].set_ylabel("SSIM"); ax2.set_ylabel("PSNR (dB)")
    ax[1].set_title(f"{kind.upper()} validation (the 2 test pairs)")
    fig.tight_layout()
    fig.savefig(f"docs/img/training_{kind}.png", dpi=90)
    first, last = steps[0]["losses"]["total"], steps[-1]["losses"]["total"]
    print(f"{kind}: {len(steps)} steps, total loss {first:.4f} -> {last:.4f}; "
          f"val ssim {vals[0]['validation']['ssim']:.3f} -> {vals[-1]['validation']['ssim']:.3f}, "
          f"psnr {vals[0]['validation']['psnr']:.2f} -> {vals[-1]['validation']['psnr']:.2f}; "
          f"median s/step {sorted(r['seconds'] for r in steps)[len(steps)//2]:.3f}")
panel = os.path.join(out, "gmm", "samples", sorted(os.listdir(os.path.join(out, "gmm", "samples")))[-1])
shutil.copy(panel, "docs/img/training_gmm_panel.png")
res = sorted(os.listdir(os.path.join(out, "tryon")))
if res:
    shutil.copy(os.path.join(out, "tryon", res[0]), "docs/img/training_tryon.png")
    print("try-on result:", res[0], "-> docs/img/training_tryon.png")
PYEOF
grep -h "Maximum resident" "$OUT/gmm.time" "$OUT/tom.time" || true
