#!/usr/bin/env bash
# vton vs diffusers on this machine: same random SD 1.5 weights, same inputs, same thread
# count; writes docs/benchmarks.md. Needs a Python with torch + diffusers in $TORCH_PY
# (never a dependency of vton or its CI).
#   TORCH_PY=/path/to/python scripts/bench/compare.sh
set -euo pipefail
cd "$(dirname "$0")/../.."
PY=${TORCH_PY:-python3}
DIR=${VTON_BENCH_DIR:-target/bench}
THREADS=$(nproc)
[ -f "$DIR/sd15_inpaint_unet/config.json" ] || "$PY" scripts/bench/make_sd15_random.py "$DIR"
cargo build --release -p vton-core --example bench_once
rows=""
for what in vae_decode unet_step; do
  v=$(RAYON_NUM_THREADS=$THREADS target/release/examples/bench_once "$DIR" "$what")
  d=$("$PY" scripts/bench/diffusers_bench.py "$DIR" "$THREADS" "$what")
  rows+=$("$PY" - "$v" "$d" <<'PYEOF'
import json, sys
v, d = json.loads(sys.argv[1]), json.loads(sys.argv[2])
print(f"| {v['what']} | {v['median_s']*1000:.0f} ms | {d['median_s']*1000:.0f} ms | {v['median_s']/d['median_s']:.2f} "
      f"| {v['peak_rss_mib']:.0f} MiB | {d['peak_rss_mib']:.0f} MiB | {v['peak_rss_mib']/d['peak_rss_mib']:.2f} |")
PYEOF
)$'\n'
done
TORCH=$("$PY" -c "import torch, diffusers; print(f'torch {torch.__version__}, diffusers {diffusers.__version__}')")
CPU=$(grep -m1 "model name" /proc/cpuinfo | cut -d: -f2 | xargs)
cat > docs/benchmarks.md <<MD
# Benchmarks: vton vs diffusers (CPU)

Random-weight Stable Diffusion 1.5 VAE and SD 1.5-inpainting U-Net (published configs,
scripts/bench/make_sd15_random.py), identical files for both; float32; $THREADS threads
(RAYON_NUM_THREADS / torch.set_num_threads); median of 5 runs after a warm-up; peak RSS of
the whole process (model load included). Machine: $CPU, $(nproc) cores. Reference:
$TORCH. vton: burn 0.22.1, flex backend (rayon + simd + x86-v4).

| workload | vton time | diffusers time | time ratio (vton / diffusers) | vton peak RSS | diffusers peak RSS | memory ratio |
|---|---|---|---|---|---|---|
${rows}
Workloads: \`vae_decode\` = AutoencoderKL.decode of a 1x4x64x48 latent (a 512x384 image);
\`unet_step\` = one UNet2DConditionModel call on 1x9x64x48 with 77x768 encoder states.

Made with: \`TORCH_PY=/path/to/python scripts/bench/compare.sh\`. The same workloads as
criterion benchmarks: \`cargo bench -p vton-benches --bench diffusion\`.
MD
cat docs/benchmarks.md
