#!/usr/bin/env bash
# Re-extracts the bundled LPIPS v0.1 linear layers (vton-core/models/lpips/) from the
# lpips 0.1.4 wheel on PyPI, checks every sha256 (wheel, .pth files, LICENSE), and writes a
# safetensors copy of each .pth (same keys, shapes and float32 values), which vton-core
# embeds: burn's pickle reader needs a file for the legacy torch format these files use.
# The conversion reads the pickle with Python's own unpickler (no torch needed; no code
# from the file is run: every class it names is replaced by a stub).
# Usage: scripts/extract-lpips-weights.sh [WHEEL]   (downloads the wheel when omitted)
set -euo pipefail
cd "$(dirname "$0")/.."
DEST=vton-core/models/lpips
WHEEL_NAME=lpips-0.1.4-py3-none-any.whl
WHEEL_SHA=fd537af5828b69d2e6ffc0a397bd506dbc28ca183543617690844c08e102ec5e
wheel=${1:-}
if [ -z "$wheel" ]; then
  tmp=$(mktemp -d)
  trap 'rm -rf "$tmp"' EXIT
  python3 -m pip download --quiet --no-deps "lpips==0.1.4" -d "$tmp"
  wheel="$tmp/$WHEEL_NAME"
fi
echo "$WHEEL_SHA  $wheel" | sha256sum --check --quiet
mkdir -p "$DEST"
while read -r sha path; do
  name=$(basename "$path")
  unzip -p "$wheel" "$path" > "$DEST/$name"
  echo "$sha  $DEST/$name" | sha256sum --check
done <<'LIST'
df73285e35b22355a2df87cdb6b70b343713b667eddbda73e1977e0c860835c0 lpips/weights/v0.1/alex.pth
4a5350f23600cb79923ce65bb07cbf57dca461329894153e05a1346bd531cf76 lpips/weights/v0.1/squeeze.pth
a78928a0af1e5f0fcb1f3b9e8f8c3a2a5a3de244d830ad5c1feddc79b8432868 lpips/weights/v0.1/vgg.pth
59d091d66b48f09a8a5107216f2007d9e775ffb4cc467a25733ec25f7c5c8fa1 lpips-0.1.4.dist-info/LICENSE
LIST

python3 - "$DEST" <<'PY'
import hashlib, json, pickle, struct, sys
from collections import OrderedDict

dest = sys.argv[1]


class Stub:
    def __init__(self, name):
        self.name = name

    def __call__(self, *args):
        return (self.name, args)


class Unpickler(pickle.Unpickler):
    def find_class(self, module, name):
        if (module, name) == ("collections", "OrderedDict"):
            return OrderedDict
        return Stub(f"{module}.{name}")

    def persistent_load(self, pid):
        return pid  # ('storage', type, key, location, numel, view_metadata)


for net in ("alex", "squeeze", "vgg"):
    path = f"{dest}/{net}.pth"
    raw = open(path, "rb").read()
    with open(path, "rb") as f:
        # Legacy torch format: magic number, protocol version, system info, the state
        # dict, the storage keys, then each storage as int64 numel + raw data.
        assert pickle.load(f) == 0x1950A86A20F9469CFC6C
        assert pickle.load(f) == 1001
        assert pickle.load(f)["little_endian"]
        sd = Unpickler(f).load()
        keys = pickle.load(f)
        storages = {}
        for key in keys:
            (numel,) = struct.unpack("<q", f.read(8))
            storages[key] = f.read(4 * numel)
        assert f.read() == b""
    header, blobs, offset = {}, [], 0
    for name in sorted(sd):
        fn, (storage, storage_offset, size, stride, *_rest) = sd[name]
        assert fn == "torch._utils._rebuild_tensor_v2", fn
        assert storage[0] == "storage" and storage[1].name == "torch.FloatStorage"
        numel = 1
        for d in size:
            numel *= d
        expect_stride, acc = [], 1
        for d in reversed(size):
            expect_stride.insert(0, acc)
            acc *= d
        assert list(stride) == expect_stride, (name, stride)
        data = storages[storage[2]][4 * storage_offset : 4 * (storage_offset + numel)]
        assert len(data) == 4 * numel
        header[name] = {
            "dtype": "F32",
            "shape": list(size),
            "data_offsets": [offset, offset + len(data)],
        }
        blobs.append(data)
        offset += len(data)
    header["__metadata__"] = {
        "source": f"lpips 0.1.4 wheel, lpips/weights/v0.1/{net}.pth",
        "source_sha256": hashlib.sha256(raw).hexdigest(),
    }
    text = json.dumps(header, sort_keys=True, separators=(",", ":")).encode()
    text += b" " * (-len(text) % 8)
    out = f"{dest}/{net}.safetensors"
    with open(out, "wb") as f:
        f.write(struct.pack("<Q", len(text)) + text + b"".join(blobs))
    print(out, hashlib.sha256(open(out, "rb").read()).hexdigest())
PY
echo "lpips v0.1 layers extracted to $DEST"
