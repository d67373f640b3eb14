#!/usr/bin/env bash
# Builds and tests everything: Rust crates (cargo test), the Python package (wheel built
# by maturin into a fresh virtual environment, then pytest) and the C API (header drift
# check, C test program, valgrind leak check). One profile (release) and one target
# directory for all, so burn is compiled once.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)
export CARGO_TERM_COLOR=never
# The target directory cargo uses (honours CARGO_TARGET_DIR and .cargo/config).
TARGET=$(cargo metadata --format-version 1 --no-deps | python3 -c 'import json, sys; print(json.load(sys.stdin)["target_directory"])')
REL="$TARGET/release"
# One package set and one feature set for every build step: the test build below also
# builds libvton (shared + static) and the CLI, so nothing is compiled twice. The criterion
# benches are in the set too (--all-targets compiles them; they run only by cargo bench).
CARGO_SET=(--release --workspace --exclude vton-py)

echo "== build: workspace (tests, libvton, CLI), release profile"
cargo build "${CARGO_SET[@]}" --all-targets

echo "== cargo test (workspace, release profile)"
cargo test "${CARGO_SET[@]}"

echo "== C API: header"
if ! command -v cbindgen >/dev/null 2>&1; then
  cargo install cbindgen --version 0.29.4 --locked --quiet
fi
tmp_header=$(mktemp)
cbindgen --config vton-capi/cbindgen.toml --crate vton-capi --output "$tmp_header" --quiet
if ! diff -u include/vton.h "$tmp_header"; then
  echo "include/vton.h is out of date: run scripts/gen-header.sh" >&2
  exit 1
fi
rm -f "$tmp_header"

echo "== C test program"
mkdir -p "$TARGET/ctest"
cc -std=c11 -Wall -Wextra -Werror -O1 -g -Iinclude tests/c/test_tryon.c -L"$REL" -lvton \
   -Wl,-rpath,"$REL" -o "$TARGET"/ctest/test_tryon
"$TARGET"/ctest/test_tryon examples "$TARGET"/ctest tests/fixtures/tiny_inpaint_pipeline
cc -std=c11 -Wall -Wextra -Werror -O1 -Iinclude tests/c/test_tryon.c "$REL/libvton.a" -lm -lpthread -ldl \
   -o "$TARGET"/ctest/test_tryon_static
"$TARGET"/ctest/test_tryon_static examples "$TARGET"/ctest tests/fixtures/tiny_inpaint_pipeline
cc -std=c11 -Wall -Wextra -Werror -O1 -g -Iinclude tests/c/test_gan.c -L"$REL" -lvton \
   -Wl,-rpath,"$REL" -o "$TARGET"/ctest/test_gan
"$TARGET"/ctest/test_gan examples tests/fixtures
cc -std=c11 -Wall -Wextra -Werror -O1 -g -Iinclude tests/c/test_estimate.c -L"$REL" -lvton -lm \
   -Wl,-rpath,"$REL" -o "$TARGET"/ctest/test_estimate
"$TARGET"/ctest/test_estimate examples
cc -std=c11 -Wall -Wextra -Werror -O1 -Iinclude tests/c/test_estimate.c "$REL/libvton.a" -lm -lpthread -ldl \
   -o "$TARGET"/ctest/test_estimate_static
"$TARGET"/ctest/test_estimate_static examples
# Metrics against the package reference values (raw inputs made from tests/fixtures/metrics
# by scripts/fixtures/make_c_metrics_fixture.py).
cc -std=c11 -Wall -Wextra -Werror -O1 -g -Iinclude tests/c/test_metrics.c -L"$REL" -lvton -lm \
   -Wl,-rpath,"$REL" -o "$TARGET"/ctest/test_metrics
"$TARGET"/ctest/test_metrics tests/fixtures/metrics
cc -std=c11 -Wall -Wextra -Werror -O1 -Iinclude tests/c/test_metrics.c "$REL/libvton.a" -lm -lpthread -ldl \
   -o "$TARGET"/ctest/test_metrics_static
"$TARGET"/ctest/test_metrics_static tests/fixtures/metrics
# DCI-VITON through vton_pipeline_load: a weights folder made of the random-weight test
# networks (a checkpoint named *warping*, the U-Net, vae/).
rm -rf "$TARGET/ctest/dci_weights" && mkdir -p "$TARGET/ctest/dci_weights"
cp tests/fixtures/dci_viton_warping_oc3.safetensors "$TARGET/ctest/dci_weights/warping.safetensors"
cp tests/fixtures/dci_viton_unet.safetensors "$TARGET/ctest/dci_weights/unet.safetensors"
cp -r tests/fixtures/dci_viton_pipeline_vae_pretrained "$TARGET/ctest/dci_weights/vae"
cc -std=c11 -Wall -Wextra -Werror -O1 -g -Iinclude tests/c/test_dci.c -L"$REL" -lvton \
   -Wl,-rpath,"$REL" -o "$TARGET"/ctest/test_dci
"$TARGET"/ctest/test_dci tests/fixtures "$TARGET"/ctest/dci_weights
cc -std=c11 -Wall -Wextra -Werror -O1 -Iinclude tests/c/test_dci.c "$REL/libvton.a" -lm -lpthread -ldl \
   -o "$TARGET"/ctest/test_dci_static
"$TARGET"/ctest/test_dci_static tests/fixtures "$TARGET"/ctest/dci_weights
if ! command -v valgrind >/dev/null 2>&1; then
  (apt-get update -qq && apt-get install -y -qq valgrind) >/dev/null
fi
# Leak check: definite leaks fail; the "possibly lost" blocks of burn's global device
# registry and rayon's thread pool (alive until exit by design) are not errors.
valgrind --quiet --leak-check=full --show-leak-kinds=definite --errors-for-leak-kinds=definite --error-exitcode=3 \
  "$TARGET"/ctest/test_tryon examples "$TARGET"/ctest tests/fixtures/tiny_inpaint_pipeline leak
valgrind --quiet --leak-check=full --show-leak-kinds=definite --errors-for-leak-kinds=definite --error-exitcode=3 \
  "$TARGET"/ctest/test_gan examples tests/fixtures leak
valgrind --quiet --leak-check=full --show-leak-kinds=definite --errors-for-leak-kinds=definite --error-exitcode=3 \
  "$TARGET"/ctest/test_estimate examples leak
valgrind --quiet --leak-check=full --show-leak-kinds=definite --errors-for-leak-kinds=definite --error-exitcode=3 \
  "$TARGET"/ctest/test_dci tests/fixtures "$TARGET"/ctest/dci_weights leak
# "leak": the FID / KID reference part (22 Inception passes, about 2.5 minutes under
# valgrind) is replaced by two small images per set; every metrics function still runs.
valgrind --quiet --leak-check=full --show-leak-kinds=definite --errors-for-leak-kinds=definite --error-exitcode=3 \
  "$TARGET"/ctest/test_metrics tests/fixtures/metrics leak

echo "== Python: wheel into a fresh virtual environment, pytest"
rm -rf "$TARGET/venv"
python3 -m venv "$TARGET/venv"
"$TARGET"/venv/bin/pip install --quiet --upgrade pip
"$TARGET"/venv/bin/pip install --quiet "maturin>=1.5,<2" pytest numpy pillow "mypy>=1.18" "ray[data]==2.60.0" schemathesis==4.32.5
rm -rf "$TARGET/wheels"
"$TARGET"/venv/bin/maturin build --release --quiet -o "$TARGET/wheels"
"$TARGET"/venv/bin/pip install --quiet --force-reinstall --no-deps "$TARGET"/wheels/vton-*.whl
(cd "$TARGET" && venv/bin/python -m pytest -q "$ROOT/python/tests")
echo "== Python: stubs match the runtime module (mypy stubtest)"
(cd "$TARGET" && venv/bin/python -m mypy.stubtest vton)
echo "== vton serve: schemathesis from the OpenAPI spec (no 5xx but 503/504, healthy after)"; "$TARGET"/venv/bin/python scripts/serve_fuzz.py "$REL/vton"

echo "== all tests passed"
