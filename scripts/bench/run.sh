#!/usr/bin/env bash
# vton vs PyTorch on this machine, both sides in one run: the same random weights, the same
# inputs, the same thread count; writes the top of docs/benchmarks.md (workload table and
# op table; the Metrics section below it, made by scripts/bench_metrics.py, is kept).
# Needs a Python with torch + diffusers + numpy in $TORCH_PY (never a dependency of vton or
# its CI), and for the HR-VITON generator row a checkout of the original HR-VITON code in
# $HRVITON_SRC (see scripts/bench/gan_reference.py). Run it on an otherwise idle machine.
#   TORCH_PY=/path/to/python HRVITON_SRC=/path/to/HR-VITON scripts/bench/run.sh
set -euo pipefail
cd "$(dirname "$0")/../.."
PY=${TORCH_PY:-python3}
DIR=${VTON_BENCH_DIR:-target/bench}
THREADS=${THREADS:-$(nproc)}
export RAYON_NUM_THREADS=$THREADS OMP_NUM_THREADS=$THREADS
mkdir -p "$DIR"
[ -f "$DIR/sd15_inpaint_unet/config.json" ] || "$PY" scripts/bench/make_sd15_random.py "$DIR"
for what in gmm tocg tom gen; do
  [ -f "$DIR/${what}_io.safetensors" ] || "$PY" scripts/bench/gan_reference.py make "$DIR" "$what"
done
cargo build --release -p vton-core --example bench_once --example op_times
LOAD=$(cut -d' ' -f1 /proc/loadavg)
OUT=$(mktemp -d)
for what in vae_decode unet_step unet_step_notext vae_decode_bf16 unet_step_bf16 gmm tom tocg gen; do
  echo "== $what" >&2
  target/release/examples/bench_once "$DIR" "$what" > "$OUT/$what.vton.json"
  case $what in
    gmm|tocg|tom|gen) "$PY" scripts/bench/gan_reference.py time "$DIR" "$THREADS" "$what" 2>/dev/null > "$OUT/$what.torch.json" ;;
    *) "$PY" scripts/bench/diffusers_bench.py "$DIR" "$THREADS" "$what" 2>/dev/null > "$OUT/$what.torch.json" ;;
  esac
done
echo "== op table" >&2
target/release/examples/op_times > "$OUT/ops.vton.jsonl"
"$PY" scripts/bench/torch_ops.py "$THREADS" > "$OUT/ops.torch.jsonl"
"$PY" - "$OUT" "$THREADS" "$LOAD" > "$OUT/top.md" <<'PYEOF'
import json, pathlib, platform, subprocess, sys
out, threads, load = pathlib.Path(sys.argv[1]), sys.argv[2], sys.argv[3]
names = {
    "vae_decode": "SD 1.5 VAE decode, 1x4x64x48 latent (512x384 image)",
    "unet_step": "SD 1.5-inpainting U-Net step, 1x9x64x48, 77x768 text states",
    "unet_step_notext": "the same U-Net step without text states (CatVTON: cross-attention skipped)",
    "vae_decode_bf16": "the VAE decode with bfloat16 weights (`dtype`; PyTorch: `torch_dtype=torch.bfloat16`, bf16 compute)",
    "unet_step_bf16": "the U-Net step (text states) with bfloat16 weights (as above)",
    "gmm": "CP-VTON+ GMM, 256x192",
    "tom": "CP-VTON+ TOM, 256x192",
    "tocg": "HR-VITON condition generator, 256x192",
    "gen": "HR-VITON image generator (SPADE), 1024x768",
}
rows = []
for what, label in names.items():
    v = json.loads((out / f"{what}.vton.json").read_text())
    t = json.loads((out / f"{what}.torch.json").read_text())
    diff = v.get("max_abs_diff_vs_torch")
    rows.append(f"| {label} | {v['median_s']*1000:.0f} ms | {t['median_s']*1000:.0f} ms | "
                f"**{v['median_s']/t['median_s']:.2f}** | {v['peak_rss_mib']:.0f} MiB | {t['peak_rss_mib']:.0f} MiB | "
                f"{v['peak_rss_mib']/t['peak_rss_mib']:.2f} | {'' if diff is None else f'{diff:.1e}'} |")
ops_v = [json.loads(l) for l in (out / "ops.vton.jsonl").read_text().splitlines() if l.strip()]
ops_t = {d["op"]: d["torch_ms"] for d in map(json.loads, (out / "ops.torch.jsonl").read_text().splitlines()) if d}
ops = []
for d in ops_v:
    tt = ops_t.get(d["op"])
    ops.append(f"| {d['op']} | {d['burn_ms']:.1f} ms | {d['vton_ms']:.1f} ms | {tt:.1f} ms | "
               f"{d['burn_ms']/tt:.2f} | **{d['vton_ms']/tt:.2f}** |")
torch_v = subprocess.run([sys.executable, "-c", "import torch, diffusers; print(f'torch {torch.__version__}, diffusers {diffusers.__version__}')"],
                         capture_output=True, text=True).stdout.strip()
cpu = next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")), platform.processor())
print(f"""# Benchmarks: vton vs PyTorch (CPU)

Every row is measured side by side in one run of `scripts/bench/run.sh`: the same weights
(random, at the published widths: the SD 1.5 VAE and SD 1.5-inpainting U-Net configs written
by scripts/bench/make_sd15_random.py; CP-VTON+ GMM and TOM and HR-VITON's two generators by
scripts/bench/gan_reference.py, the image generator being HR-VITON's own code), the same
input shapes, float32, {threads} threads on both sides (`RAYON_NUM_THREADS`;
`torch.set_num_threads`), the median of 5 runs after a warm-up (256x192 GAN rows: of 10;
the 1024x768 generator: of 3), peak RSS of the whole process (model load included). Time ratio =
vton / PyTorch: below 1 is faster than PyTorch. Machine: {cpu}, {threads} threads, 1-minute
load average {load} when the run started. Reference: {torch_v}. vton: burn 0.22.1, flex
backend (rayon + simd + x86-v4) with vton's own kernels (`vton_core::kernels`).

| workload | vton | PyTorch | time ratio | vton peak RSS | PyTorch peak RSS | memory ratio | max abs diff |
|---|---|---|---|---|---|---|---|
""" + "\n".join(rows) + """

The last column is the largest difference between the two outputs where the script
compares them (GAN rows: the same inputs on both sides; the diffusion rows draw their
random inputs separately, and their parity is the job of the fixture tests).

## Operators: burn's flex kernels, vton's kernels, PyTorch

The same operators at the sizes where the models above spend their time
(`cargo run --release -p vton-core --example op_times`, one JSON line per operator, and
scripts/bench/torch_ops.py; median of 5 after a warm-up; vton's side reads the result back
to the host). "burn" is the flex backend's own operator (`VTON_KERNELS=burn`, the state
before vton's kernels); "vton" is `vton_core::kernels`.

| operator | burn flex | vton | PyTorch | burn / PyTorch | vton / PyTorch |
|---|---|---|---|---|---|
""" + "\n".join(ops) + "\n")
PYEOF
# Keep the sections that other scripts own (from "## Metrics" on).
KEEP=$(awk '/^## Metrics/{f=1} f' docs/benchmarks.md 2>/dev/null || true)
{ cat "$OUT/top.md"; cat docs/benchmarks_notes.md; echo; printf '%s\n' "$KEEP"; } > docs/benchmarks.md
cat "$OUT/top.md"
