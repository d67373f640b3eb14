#!/usr/bin/env bash
# Regenerates include/vton.h from vton-capi (cbindgen as its own step, not a build
# dependency, so it does not change shared dependencies' features).
set -euo pipefail
cd "$(dirname "$0")/.."
command -v cbindgen >/dev/null 2>&1 || cargo install cbindgen --version 0.29.4 --locked --quiet
cbindgen --config vton-capi/cbindgen.toml --crate vton-capi --output include/vton.h
