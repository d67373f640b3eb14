"""Writes the seed inputs of the fuzz targets under fuzz/corpus/<target>/ (small valid files).

Run from the repository root with a Python that has torch and safetensors:
    python fuzz/make_corpus.py
Fixtures under tests/fixtures/ are copied as they are; the rest is generated here.
"""
import io
import json
import shutil
import struct
import zlib
from pathlib import Path

import torch
from safetensors.torch import save as st_save

ROOT = Path(__file__).resolve().parent.parent
FIX = ROOT / "tests" / "fixtures"
CORPUS = ROOT / "fuzz" / "corpus"


def out(target, name, data):
    d = CORPUS / target
    d.mkdir(parents=True, exist_ok=True)
    (d / f"seed_{name}").write_bytes(data)


def copy(target, name, src):
    out(target, name, Path(src).read_bytes())


def torch_bytes(obj, zip_format=True):
    buf = io.BytesIO()
    torch.save(obj, buf, _use_new_zipfile_serialization=zip_format)
    return buf.getvalue()


g = torch.Generator().manual_seed(0)
small = {
    "conv.weight": torch.randn(2, 1, 3, 3, generator=g),
    "conv.bias": torch.randn(2, generator=g),
    "bn.num_batches_tracked": torch.tensor(3, dtype=torch.int64),
}
mixed = {
    "a": torch.randn(3, generator=g).half(),
    "b": torch.randn(2, 2, generator=g).bfloat16(),
    "c": torch.randn(2, generator=g).double(),
    "d": torch.arange(4, dtype=torch.int64).reshape(2, 2).t(),  # non-contiguous view
}

# --- pth_reader: torch.save zip and legacy formats, wrappers, dtypes, shared storage.
copy("pth_reader", "malicious", FIX / "malicious.pth")
out("pth_reader", "zip_small", torch_bytes(small))
out("pth_reader", "legacy_small", torch_bytes(small, zip_format=False))
out("pth_reader", "zip_mixed", torch_bytes(mixed))
out("pth_reader", "zip_wrapped", torch_bytes({"state_dict": {f"module.{k}": v for k, v in small.items()}, "epoch": 3}))
base = torch.randn(6, generator=g)
out("pth_reader", "zip_shared_storage", torch_bytes({"x": base[:3], "y": base[2:]}))

# --- safetensors_reader: fixtures and generated files with every dtype and metadata.
copy("safetensors_reader", "truncated", FIX / "truncated.safetensors")
copy("safetensors_reader", "tiny_ops", FIX / "tflite" / "tiny_ops.safetensors")
out("safetensors_reader", "small", st_save({k: v.contiguous() for k, v in small.items()}, {"format": "pt"}))
out("safetensors_reader", "mixed", st_save({k: v.contiguous() for k, v in mixed.items()}))
out("safetensors_reader", "empty_tensor", st_save({"e": torch.zeros(0, 3), "s": torch.tensor(1.5)}))

# --- openpose_json: VITON-HD's files, COCO-18, two people, the old key.
for p in sorted((FIX / "vitonhd_tiny" / "test" / "openpose_json").glob("*.json")):
    copy("openpose_json", p.stem, p)
coco = [float(v) for i in range(18) for v in (10.0 + i, 20.0 + 2 * i, 0.9 if i % 5 else 0.0)]
body = [float(v) for i in range(25) for v in (5.0 * i, 3.0 * i, 0.8)]
out("openpose_json", "coco18", json.dumps({"version": 1.3, "people": [{"pose_keypoints_2d": coco}]}).encode())
out("openpose_json", "two_people", json.dumps({"people": [{"pose_keypoints_2d": body}, {"pose_keypoints_2d": coco}]}).encode())
out("openpose_json", "old_key", json.dumps({"people": [{"pose_keypoints": coco}]}).encode())

# --- training_state: state.json, a NUL byte, then the bytes every other file reads as
# (optimizer.safetensors and the model files state.json names).
def state_input(state, tensors):
    return json.dumps(state, indent=2).encode() + b"\0" + st_save(tensors)

w = torch.randn(2, 3, generator=g)
opt = {"adam/exp_avg/w": w * 0.1, "adam/exp_avg_sq/w": w * w * 0.01, "w": w}
state = {
    "format": "vton-training-state",
    "version": 1,
    "global_step": 7,
    "lr_step": 7,
    "rng": {"data": [1, 2, 3, 4]},
    "options": {"lr": 0.0001},
    "extra": {"epoch": 1},
    "models": {"model": {"safetensors": "model.safetensors", "tensors": 1, "pth": "model.pth"}},
    "optimizers": {"adam": {"config": {"betas": [0.5, 0.999]}, "step": {"w": 7}}},
    "files": {"model.safetensors": 100, "optimizer.safetensors": 200},
}
out("training_state", "full", state_input(state, opt))
bare = dict(state, models={}, optimizers={})
out("training_state", "no_models", state_input(bare, {"x": torch.zeros(1)}))

# --- pairs_list: VITON-HD's list and variants.
copy("pairs_list", "vitonhd_tiny", FIX / "vitonhd_tiny" / "test_pairs.txt")
out("pairs_list", "spaces_tabs", b"  00001_00.jpg\t00002_00.jpg \r\n\n00003_00.jpg    00004_00.jpg\n")
out("pairs_list", "subfolders", b"men/00001_00.jpg women/00002_00.jpg\n./a.png b.png\n")

# --- parse_map: VITON-HD label PNGs (palette) and a generated grey+alpha one.
for p in sorted((FIX / "vitonhd_tiny" / "test" / "image-parse-v3").glob("*.png"))[:1]:
    copy("parse_map", "palette_" + p.stem, p)
for p in sorted((FIX / "vitonhd_tiny" / "test" / "image-parse-agnostic-v3.2").glob("*.png"))[:1]:
    copy("parse_map", "agnostic_" + p.stem, p)


def png(width, height, color_type, rows):
    def chunk(kind, data):
        c = struct.pack(">I", len(data)) + kind + data
        return c + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    raw = b"".join(b"\0" + r for r in rows)
    ihdr = struct.pack(">IIBBBBB", width, height, 8, color_type, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b"")


out("parse_map", "grey_alpha", png(4, 3, 4, [bytes([(x + y) % 20, 255] * 1)[:2] * 4 for y in range(3) for x in [0]]))
out("parse_map", "grey", png(5, 2, 0, [bytes((x * 3 + y) % 20 for x in range(5)) for y in range(2)]))
print("corpus written to", CORPUS)
