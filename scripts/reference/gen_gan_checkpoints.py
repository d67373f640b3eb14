"""CP-VTON+ / HR-VITON test checkpoints, written the way their authors' code writes them,
from the shared parity fixtures (random weights under the original keys). Run by hand
(needs torch): /work/torchenv/bin/python scripts/reference/gen_gan_checkpoints.py ../shared/fixtures

For each case, tests/fixtures/gan/<case>.safetensors keeps the fixture's inputs and
outputs only (the weights travel in the .pth files), and <case>.json is copied as is.

Checkpoint forms, so every loader path is exercised:
- cpvton_gmm.pth: torch.save of a DataParallel state dict (every key 'module.'-prefixed), zip format
- cpvton_tom.pth: legacy (non-zip) torch.save format, plain keys
- hrviton_tocg.pth: zip format, plain keys (as HR-VITON's save_checkpoint writes)
- hrviton_gen.pth: keys in the released gen.pth naming, i.e. before the rename its
  loader applies (k.replace('ace', 'alias').replace('.Spade', '')): '.Spade' after each norm
- hrviton_gen_renamed.safetensors: the renamed (current) keys
- hrviton_spade_resblock: weights stay in its safetensors (a single block, no released file)
"""
import json, os, re, shutil, sys
import torch
from collections import OrderedDict
from safetensors.torch import load_file, save_file

src = sys.argv[1] if len(sys.argv) > 1 else "../shared/fixtures"
out = "tests/fixtures/gan"
os.makedirs(out, exist_ok=True)


def split(case):
    t = load_file(os.path.join(src, case + ".safetensors"))
    w = OrderedDict((k[len("weights."):], v) for k, v in t.items() if k.startswith("weights."))
    io = {k: v for k, v in t.items() if not k.startswith("weights.")}
    shutil.copy(os.path.join(src, case + ".json"), os.path.join(out, case + ".json"))
    return w, io


w, io = split("cpvton_gmm")
torch.save(OrderedDict(("module." + k, v) for k, v in w.items()), f"{out}/cpvton_gmm.pth")
save_file(io, f"{out}/cpvton_gmm.safetensors")

w, io = split("cpvton_tom")
torch.save(w, f"{out}/cpvton_tom.pth", _use_new_zipfile_serialization=False)
save_file(io, f"{out}/cpvton_tom.safetensors")

w, io = split("hrviton_tocg")
torch.save(w, f"{out}/hrviton_tocg.pth")
save_file(io, f"{out}/hrviton_tocg.safetensors")

w, io = split("hrviton_spade_gen")
released = OrderedDict((re.sub(r"\.(norm_[01s])\.", r".\1.Spade.", k), v) for k, v in w.items())
assert all(k.replace("ace", "alias").replace(".Spade", "") in w for k in released)
assert any(".Spade." in k for k in released)
torch.save(released, f"{out}/hrviton_gen.pth")
save_file(dict(w), f"{out}/hrviton_gen_renamed.safetensors")
save_file(io, f"{out}/hrviton_spade_gen.safetensors")

w, io = split("hrviton_spade_resblock")
save_file({**{"weights." + k: v for k, v in w.items()}, **io}, f"{out}/hrviton_spade_resblock.safetensors")

t = load_file(os.path.join(src, "hrviton_pipeline.safetensors"))
save_file(t, f"{out}/hrviton_pipeline.safetensors")
shutil.copy(os.path.join(src, "hrviton_pipeline.json"), f"{out}/hrviton_pipeline.json")
print("written", sorted(os.listdir(out)))
