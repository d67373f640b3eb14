#!/usr/bin/env python3
"""Checks that the `.pth` files vton's checkpoint writer produces load in PyTorch.

Run with the venv that has torch (not part of CI):

    /tmp/mbench_venv/bin/python scripts/check_pth_roundtrip.py

It runs the ignored Rust test `export_pth_check_files` (vton-core/tests/train_checkpoint.rs)
with VTON_PTH_CHECK_DIR set, then for every file it wrote:

* `torch.load(path, weights_only=True)` and `torch.load(path, weights_only=True, mmap=True)`
  (mmap needs the 64-byte storage alignment torch itself writes);
* compares every tensor with the same state dict written through the safetensors crate
  (an independent writer): dtype, shape, stride/contiguity, storage offset, exact bits
  (NaN-aware), requires_grad False;
* checks the archive with `zipfile` (CRCs via testzip, stored entries, one root folder,
  storage data offsets % 64 == 0), and the nested file's non-tensor values (ints, a
  beyond-32-bit negative int, floats, bool, None, str, int dict keys, lists);
* the forced-zip64 variant loads the same;
* a resume checkpoint folder (`model.pth` + `model.safetensors` + `state.json`) agrees;
* and the reverse direction: `torch.save` of the loaded dict, reloaded, is equal (sanity).

Exit status 0 when everything holds; every failure is printed.
"""

import json
import os
import struct
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

import torch
from safetensors.torch import load_file

REPO = Path(__file__).resolve().parent.parent
FAILURES = []


def check(cond, msg):
    if cond:
        print(f"  ok   {msg}")
    else:
        print(f"  FAIL {msg}")
        FAILURES.append(msg)


def same_tensor(a, b):
    if a.dtype != b.dtype or tuple(a.shape) != tuple(b.shape):
        return False
    if a.numel() == 0:
        return True
    if a.dtype.is_floating_point:
        # Bitwise comparison (NaN-aware, -0.0 distinct).
        view = {torch.float32: torch.int32, torch.float64: torch.int64,
                torch.float16: torch.int16, torch.bfloat16: torch.int16}[a.dtype]
        return torch.equal(a.contiguous().view(view), b.contiguous().view(view))
    return torch.equal(a, b)


def check_archive(path):
    with zipfile.ZipFile(path) as z:
        infos = z.infolist()
        check(z.testzip() is None, f"{path.name}: every CRC matches (zipfile.testzip)")
        roots = {i.filename.split("/")[0] for i in infos}
        check(len(roots) == 1, f"{path.name}: one root folder {sorted(roots)}")
        root = next(iter(roots))
        names = [i.filename for i in infos]
        check(names[0] == f"{root}/data.pkl", f"{path.name}: data.pkl first")
        for want in ("version", "byteorder", ".format_version", ".storage_alignment"):
            check(f"{root}/{want}" in names, f"{path.name}: has {want}")
        check(z.read(f"{root}/version").strip() == b"3", f"{path.name}: version 3")
        check(z.read(f"{root}/byteorder") == b"little", f"{path.name}: byteorder little")
        check(all(i.compress_type == zipfile.ZIP_STORED for i in infos),
              f"{path.name}: all entries stored")
        raw = path.read_bytes()
        misaligned = []
        for i in infos:
            off = i.header_offset
            nlen, elen = struct.unpack("<HH", raw[off + 26:off + 30])
            start = off + 30 + nlen + elen
            if start % 64:
                misaligned.append((i.filename, start))
        check(not misaligned, f"{path.name}: every entry's data 64-byte aligned {misaligned[:3]}")
        n_storages = sum(1 for n in names if n.startswith(f"{root}/data/"))
    return n_storages


def check_state_dict(name, got, expected):
    check(isinstance(got, dict), f"{name}: a dict ({type(got).__name__})")
    check(sorted(got.keys()) == sorted(expected.keys()),
          f"{name}: same {len(expected)} keys")
    bad = []
    for k, e in expected.items():
        g = got.get(k)
        if g is None or not same_tensor(g, e):
            bad.append(k)
            continue
        if g.requires_grad or g.storage_offset() != 0 or not g.is_contiguous():
            bad.append(k + " (layout)")
    check(not bad, f"{name}: every tensor equal in dtype, shape, bits, layout {bad[:5]}")


def load_both(path):
    a = torch.load(path, weights_only=True)
    b = torch.load(path, weights_only=True, mmap=True)
    return a, b


def main():
    out = Path(tempfile.mkdtemp(prefix="vton_pth_check_"))
    env = dict(os.environ, VTON_PTH_CHECK_DIR=str(out))
    cmd = ["cargo", "test", "--release", "-p", "vton-core", "--test", "train_checkpoint",
           "export_pth_check_files", "--", "--ignored", "--exact"]
    print("$", " ".join(cmd))
    r = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True)
    if r.returncode != 0:
        print(r.stdout[-4000:], r.stderr[-4000:])
        sys.exit("the Rust exporter failed")
    print(f"torch {torch.__version__}; files in {out}")

    expected = load_file(str(out / "expected.safetensors"))

    print("state_dict.pth")
    n = check_archive(out / "state_dict.pth")
    check(n == len(expected), f"state_dict.pth: one storage per tensor ({n})")
    a, b = load_both(out / "state_dict.pth")
    check(type(a).__name__ == "OrderedDict", f"state_dict.pth: an OrderedDict ({type(a).__name__})")
    check_state_dict("state_dict.pth", a, expected)
    check_state_dict("state_dict.pth (mmap)", b, expected)
    nbt = a["bn.num_batches_tracked"]
    check(nbt.dtype == torch.int64 and nbt.dim() == 0 and nbt.item() == 123456789012,
          f"num_batches_tracked 0-d int64 = {nbt.item()}")
    check(a["ids"].tolist() == [[-1, 0, 1], [-2**63, 2**63 - 1, 300]],
          f"int64 extremes exact {a['ids'].tolist()}")
    check(a["empty"].shape == (0, 4), "empty (0, 4) tensor")

    # A torch module loads it (strict) when the keys fit.
    conv = torch.nn.Conv2d(3, 8, 3)
    missing = conv.load_state_dict({"weight": a["conv.weight"], "bias": a["conv.bias"]})
    check(torch.equal(conv.weight.detach(), a["conv.weight"]),
          f"nn.Conv2d.load_state_dict accepts the tensors {missing}")

    sp = a["specials"].view(torch.int32).tolist()
    check(sp == [0x7FC01234, 0x7F800000, -0x800000, -0x80000000, 1, 0x7F7FFFFF],
          f"NaN payload, infinities, -0.0, subnormal, max bit-exact {[hex(x & 0xFFFFFFFF) for x in sp]}")

    # The nested files hold the same state dict without the special values.
    expected_nested = {k: v for k, v in expected.items() if k != "specials"}
    for fname in ("nested.pth", "nested_zip64.pth"):
        print(fname)
        check_archive(out / fname)
        raw = (out / fname).read_bytes()
        has64 = b"PK\x06\x06" in raw and b"PK\x06\x07" in raw
        check(has64 == fname.endswith("zip64.pth"),
              f"{fname}: zip64 end records {'present' if has64 else 'absent'}")
        a, b = load_both(out / fname)
        for label, t in (("", a), (" (mmap)", b)):
            check_state_dict(f"{fname}{label} model", t["model"], expected_nested)
            check(t["step"] == 123 and t["big"] == -(1 << 40),
                  f"{fname}{label}: ints step={t['step']} big={t['big']}")
            check(t["name"] == "gmm ünïcode", f"{fname}{label}: str {t['name']!r}")
            opt = t["optimizer"]
            g = opt["param_groups"][0]
            check(g["lr"] == 2e-4 and g["betas"] == [0.5, 0.999] and g["amsgrad"] is False
                  and g["foreach"] is None and g["params"] == [0, 1, 2],
                  f"{fname}{label}: param_groups {g}")
            st = opt["state"]
            check(list(st.keys()) == [0], f"{fname}{label}: int state keys {list(st.keys())}")
            s0 = st[0]
            check(s0["exp_avg"].shape == (8,) and s0["step"].dim() == 0
                  and s0["step"].item() == 12.0,
                  f"{fname}{label}: exp_avg {tuple(s0['exp_avg'].shape)}, step {s0['step']}")
        if fname == "nested.pth":
            # A real torch.optim.Adam accepts the optimizer dict's shape.
            p = [torch.nn.Parameter(torch.zeros(8))]
            o = torch.optim.Adam(p, lr=1.0)
            sd = {"state": {0: {"step": a["optimizer"]["state"][0]["step"],
                                "exp_avg": a["optimizer"]["state"][0]["exp_avg"],
                                "exp_avg_sq": torch.zeros(8)}},
                  "param_groups": [dict(o.state_dict()["param_groups"][0],
                                        lr=a["optimizer"]["param_groups"][0]["lr"])]}
            o.load_state_dict(sd)
            check(o.param_groups[0]["lr"] == 2e-4, "torch.optim.Adam.load_state_dict accepts it")

    print("many.pth")
    many_exp = load_file(str(out / "many_expected.safetensors"))
    n = check_archive(out / "many.pth")
    check(n == len(many_exp), f"many.pth: {n} storages")
    a, b = load_both(out / "many.pth")
    check_state_dict("many.pth", a, many_exp)
    check_state_dict("many.pth (mmap)", b, many_exp)

    print("run/checkpoints/step_7")
    ck = out / "run" / "checkpoints" / "step_7"
    st = json.loads((ck / "state.json").read_text())
    check(st["global_step"] == 7 and st["rng"]["data"][0] == 2**64 - 1,
          f"state.json: global_step {st['global_step']}, u64 rng words exact")
    for fname, size in st["files"].items():
        check((ck / fname).stat().st_size == size, f"state.json size of {fname}")
    model_pth = torch.load(ck / "model.pth", weights_only=True)
    model_st = load_file(str(ck / "model.safetensors"))
    check_state_dict("model.pth vs model.safetensors", model_pth, model_st)
    opt = load_file(str(ck / "optimizer.safetensors"))
    check(sorted(opt) == sorted(f"adam/{w}/{k}" for w in ("exp_avg", "exp_avg_sq")
                                for k in ("conv.bias", "conv.weight")),
          f"optimizer.safetensors keys {sorted(opt)}")
    check((out / "run" / "checkpoints" / "latest").read_text().strip() == "step_7", "latest pointer")

    print("torch.save of what was loaded, reloaded")
    a = torch.load(out / "state_dict.pth", weights_only=True)
    torch.save(a, out / "resaved.pth")
    check_state_dict("resaved.pth", torch.load(out / "resaved.pth", weights_only=True), expected)

    print()
    if FAILURES:
        print(f"{len(FAILURES)} FAILURE(S)")
        sys.exit(1)
    print("all checks passed")


if __name__ == "__main__":
    main()
