#!/usr/bin/env bash
# Time per optimiser step, vton vs the ORIGINAL PyTorch training code, in one run on this
# machine: CP-VTON+ GMM and TOM (train.py) and HR-VITON's condition generator +
# discriminator (train_condition.py), 256x192, original widths, same thread count, random
# weights and random batches of the right shapes. Prints a markdown table and writes it
# to $OUT_MD (default target/bench_train/train_compare.md).
#   TORCH_PY=/path/to/python CPVTON_REPO=DIR HRVITON_REPO=DIR scripts/bench/train_compare.sh
# CPVTON_REPO / HRVITON_REPO: folders holding the original networks.py (HR-VITON: and
# utils.py), e.g. from `git --git-dir MIRROR show HEAD:networks.py > DIR/networks.py`.
# unet: one diffusers inpainting fine-tuning step (vton's UNetTrainer vs diffusers'
# UNet2DConditionModel + AdamW; TORCH_PY needs diffusers) of the U-Net in UNET_DIR
# (default: the bundled tiny pipeline) on latents LATENT (default 32x24).
# Knobs: THREADS (2), GMM_BATCH (4), TOM_BATCH (4), TOCG_BATCH (1), UNET_BATCH (2),
# STEPS (3), WARMUP (1), WHAT ("gmm tom tocg unet"), UNET_DIR, LATENT.
set -euo pipefail
cd "$(dirname "$0")/../.."
PY=${TORCH_PY:-python3}
DIR=${VTON_BENCH_DIR:-target/bench_train}
THREADS=${THREADS:-2}
STEPS=${STEPS:-3}
WARMUP=${WARMUP:-1}
WHAT=${WHAT:-gmm tom tocg unet}
UNET_DIR=${UNET_DIR:-tests/fixtures/tiny_inpaint_pipeline}
LATENT=${LATENT:-32x24}
LH=${LATENT%x*}; LW=${LATENT#*x}
OUT_MD=${OUT_MD:-$DIR/train_compare.md}
: "${CPVTON_REPO:?folder with CP-VTON+ networks.py}" "${HRVITON_REPO:?folder with HR-VITON networks.py and utils.py}"
mkdir -p "$DIR"
[ -f "$DIR/tocg_random_ngf96.pth" ] || "$PY" scripts/bench/train_reference.py make "$DIR" --hrviton-repo "$HRVITON_REPO" --threads "$THREADS"
[ -n "${NO_BUILD:-}" ] || cargo build --release -p vton-core --example train_step_timing
rows=""
for what in $WHAT; do
  case $what in gmm) B=${GMM_BATCH:-4};; tom) B=${TOM_BATCH:-4};; tocg) B=${TOCG_BATCH:-1};; unet) B=${UNET_BATCH:-2};; esac
  l1=$(cut -d' ' -f1 /proc/loadavg)
  if [ "$what" = unet ]; then
    v=$(RAYON_NUM_THREADS=$THREADS target/release/examples/train_step_timing unet "$B" "$UNET_DIR" "$STEPS" "$WARMUP" "$LH" "$LW" 2>/dev/null)
  else
    v=$(RAYON_NUM_THREADS=$THREADS target/release/examples/train_step_timing "$what" "$B" "$DIR" "$STEPS" "$WARMUP" 2>/dev/null)
  fi
  l2=$(cut -d' ' -f1 /proc/loadavg)
  t=$(OMP_NUM_THREADS=$THREADS "$PY" scripts/bench/train_reference.py time "$what" --batch-size "$B" --threads "$THREADS" \
      --steps "$STEPS" --warmup "$WARMUP" --cpvton-repo "$CPVTON_REPO" --hrviton-repo "$HRVITON_REPO" \
      --vgg "$DIR/vgg19_random.pth" --tocg-weights "$DIR/tocg_random_ngf96.pth" --d-weights "$DIR/d_random.pth" \
      --unet "$UNET_DIR" --latent-height "$LH" --latent-width "$LW" 2>/dev/null | tail -1)
  l3=$(cut -d' ' -f1 /proc/loadavg)
  echo "$v" >> "$DIR/raw.jsonl"; echo "$t" >> "$DIR/raw.jsonl"
  rows+=$("$PY" - "$v" "$t" "$l1/$l2" "$l2/$l3" <<'PYEOF'
import json, sys
v, t = json.loads(sys.argv[1]), json.loads(sys.argv[2])
name = {"gmm": "CP-VTON+ GMM (ngf 64)", "tom": "CP-VTON+ TOM (U-Net ngf 64 + VGG19 loss)",
        "tocg": "HR-VITON tocg (ngf 96) + D (ndf 64, num_D 2) + VGG19",
        "unet": f"diffusers inpainting U-Net fine-tuning, latents {v['height']}x{v['width']}"}[v["what"]]
ts = lambda d: " / ".join(f"{x:.2f}" for x in d["times_s"])
print(f"| {name} | {v['batch_size']} | {v['median_s']:.2f} s ({ts(v)}) | {t['median_s']:.2f} s ({ts(t)}) "
      f"| {v['median_s']/t['median_s']:.2f} | {v['peak_rss_mib']:.0f} MiB | {t['peak_rss_mib']:.0f} MiB "
      f"| {sys.argv[3]} | {sys.argv[4]} |")
PYEOF
)$'\n'
done
TORCH=$("$PY" -c "import torch; print(f'torch {torch.__version__}')")
CPU=$(grep -m1 "model name" /proc/cpuinfo | cut -d: -f2 | xargs)
cat > "$OUT_MD" <<MD
Machine: $CPU, $(nproc) cores; $THREADS threads each side (RAYON_NUM_THREADS, torch.set_num_threads);
float32, 256x192 (the U-Net: latents $LATENT, the tiny U-Net of $UNET_DIR unless set); median of $STEPS steps after $WARMUP warm-up step(s) (every timed step in
brackets); peak RSS = the process's VmHWM / ru_maxrss (model build, data and all steps).
Reference: $TORCH running the original networks.py files. Measured $(date -u +%Y-%m-%dT%H:%MZ).
Load = 1-minute load average before/after each side's run (the run's own 2 threads count up to 2; more means other work).

| step | batch | vton s/step | PyTorch s/step | ratio (vton / PyTorch) | vton peak RSS | PyTorch peak RSS | load during vton | load during PyTorch |
|---|---|---|---|---|---|---|---|---|
${rows}
MD
cat "$OUT_MD"
