"""Loads a vton-trained CP-VTON+ GMM checkpoint with the ORIGINAL repository's code.

Usage (not part of CI; needs torch and a checkout of minar09/cp-vton-plus):
    vton train gmm --data tests/fixtures/vitonhd_tiny --out /tmp/gmm --steps 1 --batch-size 2
    python scripts/check_trained_in_original.py /path/to/cp-vton-plus /tmp/gmm/checkpoints/step_1/model.pth

It builds `networks.GMM(opt)` at the original widths, then loads the file with
`load_state_dict(torch.load(path, weights_only=True), strict=True)` and with the
repository's own `networks.load_checkpoint` (what its test.py calls).
"""
import sys
import types
from argparse import Namespace

import torch

repo, path = sys.argv[1], sys.argv[2]
sys.path.insert(0, repo)
sys.modules.setdefault("cv2", types.ModuleType("cv2"))
# The original moves modules to CUDA unconditionally; a no-op on a CPU machine.
torch.nn.Module.cuda = lambda self, *a, **k: self
torch.Tensor.cuda = lambda self, *a, **k: self
import networks  # noqa: E402

opt = Namespace(fine_height=256, fine_width=192, grid_size=5)
gmm = networks.GMM(opt)
sd = torch.load(path, weights_only=True)
print("strict load_state_dict:", gmm.load_state_dict(sd, strict=True))
networks.load_checkpoint(gmm, path)
print("networks.load_checkpoint: ok;", sum(v.numel() for v in sd.values()), "values")
