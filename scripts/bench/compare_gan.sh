#!/usr/bin/env bash
# vton vs the PyTorch reference modules on this machine: CP-VTON+ GMM and HR-VITON's
# condition generator at 256x192 and released widths, same random weights, same inputs,
# same thread count; writes docs/benchmarks_gan.md. Needs a Python with torch in $TORCH_PY
# (never a dependency of vton or its CI).
#   TORCH_PY=/path/to/python scripts/bench/compare_gan.sh
set -euo pipefail
cd "$(dirname "$0")/../.."
PY=${TORCH_PY:-python3}
DIR=${VTON_BENCH_DIR:-target/bench}
THREADS=$(nproc)
mkdir -p "$DIR"
[ -f "$DIR/tocg_io.safetensors" ] || "$PY" scripts/bench/gan_reference.py make "$DIR"
cargo build --release -p vton-core --example bench_once
rows=""
for what in gmm tocg; do
  v=$(RAYON_NUM_THREADS=$THREADS target/release/examples/bench_once "$DIR" "$what")
  t=$("$PY" scripts/bench/gan_reference.py time "$DIR" "$THREADS" "$what" 2>/dev/null)
  rows+=$("$PY" - "$v" "$t" <<'PYEOF'
import json, sys
v, t = json.loads(sys.argv[1]), json.loads(sys.argv[2])
name = {"gmm": "CP-VTON+ GMM", "tocg": "HR-VITON condition generator"}[v["what"]]
print(f"| {name} | {v['median_s']*1000:.0f} ms | {t['median_s']*1000:.0f} ms | {v['median_s']/t['median_s']:.2f} "
      f"| {v['peak_rss_mib']:.0f} MiB | {t['peak_rss_mib']:.0f} MiB | {v['max_abs_diff_vs_torch']:.1e} |")
PYEOF
)$'\n'
done
TORCH=$("$PY" -c "import torch; print(f'torch {torch.__version__}')")
CPU=$(grep -m1 "model name" /proc/cpuinfo | cut -d: -f2 | xargs)
cat > docs/benchmarks_gan.md <<MD
# Benchmarks: GAN warping models, vton vs PyTorch (CPU)

CP-VTON+ GMM (19.1 M parameters) and HR-VITON's condition generator (ngf 96) at their
released widths, one 256x192 input, random weights (scripts/bench/gan_reference.py, which
also holds the PyTorch reference modules, written from the architectures' published
layer plans); float32; $THREADS threads (RAYON_NUM_THREADS / torch.set_num_threads);
median of 10 runs after a warm-up; peak RSS of the whole process (model load included).
Machine: $CPU, $(nproc) cores. Reference: $TORCH. vton: burn 0.22.1, flex backend
(rayon + simd + x86-v4). The last column is the largest difference between the two
outputs (GMM: the grid; condition generator: the segmentation logits).

| model | vton time | PyTorch time | time ratio (vton / PyTorch) | vton peak RSS | PyTorch peak RSS | max abs diff |
|---|---|---|---|---|---|---|
${rows}
Made with: \`TORCH_PY=/path/to/python scripts/bench/compare_gan.sh\`. The same workloads
as criterion benchmarks: \`cargo bench -p vton-benches --bench gan\`.
MD
cat docs/benchmarks_gan.md
