#!/usr/bin/env bash
# The "real run": every vton trainer on the bundled tiny VITON-HD set and on what
# `vton preprocess` makes of the corpus photos, then inference with the trained
# checkpoints through the existing pipelines, then loss-curve plots and panels
# (docs/training_runs.md shows the results).
#   TORCH_PY=/path/to/python-with-torch-and-matplotlib scripts/train_demo.sh [OUT]
#   CORPUS=DIR (person/ and garment/ photos; default ../shared/corpus) STAGES="..." to pick
# Stages (all by default): gmm tom tocg unet corpus plots. Sized for ~25 CPU minutes on 2
# cores: narrow networks (ngf 16), a few hundred steps.
# What is random here, and why (nothing can be downloaded on this machine):
# - TOM's and tocg's perceptual loss use a RANDOM-init full-width torchvision VGG19
#   (scripts/bench/train_reference.py make), not ImageNet's vgg19-dcbb9e9d.pth;
# - the U-Net run fine-tunes the bundled tiny random inpainting pipeline;
# - the HR-VITON try-on uses the random ngf-2 generator of tests/fixtures/gan (vton does
#   not train HR-VITON's generator): its result image is noise, the trained tocg's warp
#   and segmentation are the intermediates;
# - the corpus parse maps come from the random width/16 SCHP of tests/fixtures/schp (the
#   released LIP checkpoint cannot be fetched here): the labels are not a real parse.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${TORCH_PY:-python3}
OUT=${1:-target/train_demo}
STAGES=${STAGES:-gmm tom tocg unet corpus plots}
GMM_STEPS=${GMM_STEPS:-300}
TOM_STEPS=${TOM_STEPS:-40}
TOCG_STEPS=${TOCG_STEPS:-100}
UNET_STEPS=${UNET_STEPS:-300}
CORPUS_GMM_STEPS=${CORPUS_GMM_STEPS:-150}
CORPUS_TOM_STEPS=${CORPUS_TOM_STEPS:-20}
NGF=${NGF:-16}
CORPUS=${CORPUS:-../shared/corpus}
DATA=tests/fixtures/vitonhd_tiny
mkdir -p "$OUT"
[ -n "${NO_BUILD:-}" ] || cargo build --release -p vton-cli
VTON=target/release/vton
VGG="$OUT/bench/vgg19_random.pth"
[ -f "$VGG" ] || "$PY" scripts/bench/train_reference.py make "$OUT/bench"
has() { [[ " $STAGES " == *" $1 "* ]]; }
latest() { echo "$1/checkpoints/$(cat "$1/checkpoints/latest")"; }
timed() { local name=$1; shift; /usr/bin/time -v "$@" 2> >(tee "$OUT/$name.time" >&2); }

if has gmm; then
  echo "== GMM: $GMM_STEPS steps, ngf $NGF, batch 2 (tiny set)"
  rm -rf "$OUT/gmm"
  timed gmm $VTON train gmm --data $DATA --out "$OUT/gmm" --steps "$GMM_STEPS" --batch-size 2 \
    --save-every 100 --val-every 50 --opt ngf="$NGF"
fi

if has tom; then
  # TOM trains on the trained GMM's warps, as CP-VTON+ does: test.py's GMM stage
  # (`vton run-dataset --stage gmm`) writes warp-cloth/ and warp-mask/ into the data folder.
  rm -rf "$OUT/tomdata" && cp -r $DATA "$OUT/tomdata"
  $VTON run-dataset --model cpvton --stage gmm --data "$OUT/tomdata" --gmm "$(latest "$OUT/gmm")/model.pth" \
    --align-corners false
  echo "== TOM: $TOM_STEPS steps, ngf $NGF, batch 1, on the GMM's warps"
  rm -rf "$OUT/tom"
  timed tom $VTON train tom --data "$OUT/tomdata" --out "$OUT/tom" --steps "$TOM_STEPS" --batch-size 1 \
    --save-every 20 --val-every 10 --vgg "$VGG" --opt ngf="$NGF"
  echo "== CP-VTON+ try-on with the trained GMM + TOM"
  rm -rf "$OUT/tryon"
  $VTON run-dataset --model cpvton --data $DATA --out "$OUT/tryon" \
    --gmm "$(latest "$OUT/gmm")/model.pth" --tom "$(latest "$OUT/tom")/model.pth" \
    --ngf "$NGF" --align-corners false
fi

if has tocg; then
  # at 128x96 (a quarter of the original's 256x192): a tocg step at 256x192 is ~15 s here
  echo "== HR-VITON tocg + D from fresh init: $TOCG_STEPS steps, ngf = ndf = $NGF, batch 2, 128x96 (tiny set)"
  rm -rf "$OUT/tocg"
  timed tocg $VTON train tocg --data $DATA --out "$OUT/tocg" --steps "$TOCG_STEPS" --batch-size 2 \
    --save-every 50 --val-every 25 --vgg "$VGG" --opt ngf="$NGF" --opt ndf="$NGF" \
    --opt fine_height=128 --opt fine_width=96
  echo "== HR-VITON try-on with the trained tocg (random ngf-2 generator)"
  rm -rf "$OUT/tryon_hrviton"
  $VTON run-dataset --model hrviton --data $DATA --out "$OUT/tryon_hrviton" \
    --tocg "$(latest "$OUT/tocg")/tocg.pth" --generator tests/fixtures/gan/hrviton_gen.pth \
    --tocg-ngf "$NGF" --ngf 2 --fine-size 256x192
fi

if has unet; then
  echo "== U-Net (inpainting layout) fine-tuning: $UNET_STEPS steps, 64x48 px (latents 32x24), batch 2"
  rm -rf "$OUT/unet"
  timed unet $VTON train unet --data $DATA --out "$OUT/unet" --weights tests/fixtures/tiny_inpaint_pipeline \
    --opt mode=inpaint --opt resolution=64 --steps "$UNET_STEPS" --batch-size 2 --save-every 100 --val-every 50
  echo "== inpainting try-on with the trained U-Net in place of the pipeline's"
  mkdir -p "$OUT/tryon_unet"
  $VTON try-on --method inpaint --weights tests/fixtures/tiny_inpaint_pipeline \
    --unet "$(latest "$OUT/unet")/unet.safetensors" --size 64x48 --steps 20 \
    --person $DATA/test/image/00001_00.jpg --garment $DATA/test/cloth/00002_00.jpg \
    --out "$OUT/tryon_unet/00001_00_00002_00.png" --panel "$OUT/tryon_unet/panel.png"
fi

if has corpus; then
  echo "== vton preprocess on the corpus photos (VITON-HD layout; random-weight SCHP parser)"
  rm -rf "$OUT/corpus_data"
  $VTON preprocess --person "$CORPUS/person" --garment "$CORPUS/garment" --out "$OUT/corpus_data" \
    --layout vitonhd --parser tests/fixtures/schp/schp_lip.pth
  echo "== GMM on the preprocessed corpus: $CORPUS_GMM_STEPS steps"
  rm -rf "$OUT/corpus_gmm"
  timed corpus_gmm $VTON train gmm --data "$OUT/corpus_data" --out "$OUT/corpus_gmm" --steps "$CORPUS_GMM_STEPS" \
    --batch-size 2 --save-every 50 --val-every 50 --opt ngf="$NGF"
  $VTON run-dataset --model cpvton --stage gmm --data "$OUT/corpus_data" \
    --gmm "$(latest "$OUT/corpus_gmm")/model.pth" --align-corners false
  echo "== TOM on the preprocessed corpus and the GMM's warps: $CORPUS_TOM_STEPS steps"
  rm -rf "$OUT/corpus_tom"
  timed corpus_tom $VTON train tom --data "$OUT/corpus_data" --out "$OUT/corpus_tom" --steps "$CORPUS_TOM_STEPS" \
    --batch-size 1 --save-every 10 --val-every 10 --vgg "$VGG" --opt ngf="$NGF"
  rm -rf "$OUT/tryon_corpus"
  $VTON run-dataset --model cpvton --data "$OUT/corpus_data" --out "$OUT/tryon_corpus" \
    --gmm "$(latest "$OUT/corpus_gmm")/model.pth" --tom "$(latest "$OUT/corpus_tom")/model.pth" \
    --ngf "$NGF" --align-corners false
fi

if has plots; then
"$PY" - "$OUT" <<'PYEOF'
import json, os, shutil, sys
import matplotlib
matplotlib.use("Agg")
import matplotlib.pyplot as plt
out = sys.argv[1]
runs = [("gmm", "GMM", ["total", "Lwarp", "Lgic"]),
        ("tom", "TOM", ["total", "loss_l1", "loss_vgg", "loss_mask"]),
        ("tocg", "HR-VITON tocg", ["G", "l1_cloth", "vgg", "tv", "ce", "gan_g", "D"]),
        ("unet", "U-Net (inpainting)", ["loss"]),
        ("corpus_gmm", "GMM on preprocessed corpus", ["total", "Lwarp", "Lgic"]),
        ("corpus_tom", "TOM on preprocessed corpus", ["total", "loss_l1", "loss_vgg", "loss_mask"])]
# What docs/training_runs.md shows (every run's figures are printed).
plots, panels = {"gmm", "tom", "tocg", "unet"}, {"gmm", "tocg", "corpus_gmm"}
os.makedirs("docs/img", exist_ok=True)
for kind, title, terms in runs:
    log = os.path.join(out, kind, "log.jsonl")
    if not os.path.exists(log):
        continue
    rows = [json.loads(l) for l in open(log)]
    steps = [r for r in rows if "losses" in r]
    vals = [r for r in rows if "validation" in r]
    terms = [t for t in terms if t in steps[0]["losses"]] or sorted(steps[0]["losses"])[:4]
    fig, ax = plt.subplots(1, 2, figsize=(10, 3.6))
    for t in terms:
        ax[0].plot([r["step"] for r in steps], [abs(r["losses"][t]) + 1e-12 for r in steps], label=t, lw=1)
    ax[0].set_yscale("log"); ax[0].set_xlabel("step"); ax[0].set_title(f"{title}: training loss")
    ax[0].legend(fontsize=7)
    if vals:
        ax[1].plot([r["step"] for r in vals], [r["validation"]["ssim"] for r in vals], "o-", label="SSIM")
        ax2 = ax[1].twinx()
        ax2.plot([r["step"] for r in vals], [r["validation"]["psnr"] for r in vals], "s--", color="C1")
        ax[1].set_ylabel("SSIM"); ax2.set_ylabel("PSNR (dB)")
    ax[1].set_xlabel("step"); ax[1].set_title(f"{title}: validation")
    fig.tight_layout()
    if kind in plots:
        fig.savefig(f"docs/img/training_{kind}.png", dpi=90)
    plt.close(fig)
    main = terms[0]
    first, last = steps[0]["losses"][main], steps[-1]["losses"][main]
    k = max(1, len(steps) // 10)
    mean = lambda rs: sum(r["losses"][main] for r in rs) / len(rs)  # noqa: E731
    secs = sorted(r["seconds"] for r in steps)
    line = (f"{kind}: {len(steps)} steps, {main} {first:.4f} -> {last:.4f} "
            f"(mean of first/last {k}: {mean(steps[:k]):.4f} -> {mean(steps[-k:]):.4f}); "
            f"median s/step {secs[len(secs)//2]:.3f}")
    if vals:
        line += (f"; val ssim {vals[0]['validation']['ssim']:.3f} -> {vals[-1]['validation']['ssim']:.3f}, "
                 f"psnr {vals[0]['validation']['psnr']:.2f} -> {vals[-1]['validation']['psnr']:.2f}")
    print(line)
    sdir = os.path.join(out, kind, "samples")
    if kind in panels and os.path.isdir(sdir) and os.listdir(sdir):
        shutil.copy(os.path.join(sdir, sorted(os.listdir(sdir))[-1]), f"docs/img/training_{kind}_panel.png")
for src, dst in (("tryon", "training_tryon.png"),):
    d = os.path.join(out, src)
    if os.path.isdir(d):
        res = sorted(f for f in os.listdir(d) if f.endswith(".png") and f != "panel.png")
        pick = "panel.png" if os.path.exists(os.path.join(d, "panel.png")) else (res[0] if res else None)
        if pick:
            shutil.copy(os.path.join(d, pick), os.path.join("docs/img", dst))
            print(f"{src}: {pick} -> docs/img/{dst}")
PYEOF
grep -H "Maximum resident\|Elapsed" "$OUT"/*.time || true
fi
