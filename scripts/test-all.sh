#!/usr/bin/env bash
# Builds and tests everything: Rust crates (cargo test), the Python package (wheel built
# by maturin into a fresh virtual environment, then pytest) and the C API (header drift
# check, C test program, valgrind leak check). One profile (release) and one target
# directory for all, so burn is compiled once.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)
export CARGO_TERM_COLOR=never

echo "== cargo test (workspace, release profile)"
cargo test --release --workspace --exclude vton-py --exclude vton-benches

echo "== C API: libvton (shared + static) and header"
cargo build --release -p vton-capi
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
mkdir -p target/ctest
cc -std=c11 -Wall -Wextra -Werror -O1 -g -Iinclude tests/c/test_tryon.c -Ltarget/release -lvton \
   -Wl,-rpath,"$ROOT/target/release" -o target/ctest/test_tryon
./target/ctest/test_tryon examples target/ctest tests/fixtures/tiny_inpaint_pipeline
cc -std=c11 -Wall -Wextra -Werror -O1 -Iinclude tests/c/test_tryon.c target/release/libvton.a -lm -lpthread -ldl \
   -o target/ctest/test_tryon_static
./target/ctest/test_tryon_static examples target/ctest tests/fixtures/tiny_inpaint_pipeline
cc -std=c11 -Wall -Wextra -Werror -O1 -g -Iinclude tests/c/test_gan.c -Ltarget/release -lvton \
   -Wl,-rpath,"$ROOT/target/release" -o target/ctest/test_gan
./target/ctest/test_gan examples tests/fixtures
if ! command -v valgrind >/dev/null 2>&1; then
  (apt-get update -qq && apt-get install -y -qq valgrind) >/dev/null
fi
# Leak check: definite leaks fail; the "possibly lost" blocks of burn's global device
# registry and rayon's thread pool (alive until exit by design) are not errors.
valgrind --quiet --leak-check=full --show-leak-kinds=definite --errors-for-leak-kinds=definite --error-exitcode=3 \
  ./target/ctest/test_tryon examples target/ctest tests/fixtures/tiny_inpaint_pipeline leak
valgrind --quiet --leak-check=full --show-leak-kinds=definite --errors-for-leak-kinds=definite --error-exitcode=3 \
  ./target/ctest/test_gan examples tests/fixtures leak

echo "== Python: wheel into a fresh virtual environment, pytest"
rm -rf target/venv
python3 -m venv target/venv
target/venv/bin/pip install --quiet --upgrade pip
target/venv/bin/pip install --quiet "maturin>=1.5,<2" pytest numpy pillow "mypy>=1.18"
rm -rf target/wheels
target/venv/bin/maturin build --release --quiet -o target/wheels
target/venv/bin/pip install --quiet --force-reinstall --no-deps target/wheels/vton-*.whl
(cd target && venv/bin/python -m pytest -q "$ROOT/python/tests")
echo "== Python: stubs match the runtime module (mypy stubtest)"
(cd target && venv/bin/python -m mypy.stubtest vton)

echo "== all tests passed"
