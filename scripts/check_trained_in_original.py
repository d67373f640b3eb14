"""Loads vton-trained checkpoints with the ORIGINAL repositories' code.

Usage (not part of CI; needs torch and the original networks.py files, e.g. from git
mirrors: cp-vton-plus's networks.py in one folder, HR-VITON's networks.py + utils.py in
another):

    # CP-VTON+ GMM (networks.GMM(opt) hard-codes its widths: train at the default ngf 64)
    vton train gmm --data tests/fixtures/vitonhd_tiny --out /tmp/gmm --steps 1 --batch-size 2
    python scripts/check_trained_in_original.py gmm CPVTON_DIR /tmp/gmm/checkpoints/step_1/model.pth
    # CP-VTON+ TOM: UnetGenerator(26, 4, 6, ngf=NGF, norm_layer=InstanceNorm2d) as train.py builds it
    python scripts/check_trained_in_original.py tom CPVTON_DIR RUN/checkpoints/step_N/model.pth --ngf 16
    # HR-VITON condition generator and discriminator as train_condition.py builds them
    python scripts/check_trained_in_original.py tocg HRVITON_DIR RUN/checkpoints/step_N --ngf 16 --ndf 16

Each model is built by the original constructor, then the file is loaded with
`load_state_dict(torch.load(path, weights_only=True), strict=True)` and, where the
repository has one, with its own `load_checkpoint` (what its test scripts call).
"""
import argparse
import os
import sys
import types
from argparse import Namespace

import torch
import torch.nn as nn


def import_networks(repo):
    sys.path.insert(0, repo)
    sys.modules.setdefault("cv2", types.ModuleType("cv2"))
    # The originals move modules to CUDA unconditionally; a no-op on a CPU machine.
    torch.nn.Module.cuda = lambda self, *a, **k: self
    torch.Tensor.cuda = lambda self, *a, **k: self
    import networks  # noqa: E402

    return networks


def strict(model, path, name):
    sd = torch.load(path, weights_only=True)
    print(f"{name}: strict load_state_dict:", model.load_state_dict(sd, strict=True),
          f"({len(sd)} tensors, {sum(v.numel() for v in sd.values())} values)")
    return sd


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("what", choices=["gmm", "tom", "tocg"])
    p.add_argument("repo")
    p.add_argument("path", help="model.pth (gmm, tom) or the checkpoint folder (tocg)")
    p.add_argument("--ngf", type=int, default=None)
    p.add_argument("--ndf", type=int, default=64)
    p.add_argument("--fine-height", type=int, default=256)
    p.add_argument("--fine-width", type=int, default=192)
    a = p.parse_args()
    networks = import_networks(a.repo)
    if a.what == "gmm":
        opt = Namespace(fine_height=a.fine_height, fine_width=a.fine_width, grid_size=5)
        gmm = networks.GMM(opt)
        strict(gmm, a.path, "GMM")
        networks.load_checkpoint(gmm, a.path)
        print("GMM: networks.load_checkpoint: ok")
    elif a.what == "tom":
        tom = networks.UnetGenerator(26, 4, 6, ngf=a.ngf or 64, norm_layer=nn.InstanceNorm2d)
        strict(tom, a.path, "TOM")
        networks.load_checkpoint(tom, a.path)
        print("TOM: networks.load_checkpoint: ok")
    else:
        opt = Namespace(warp_feature="T1", out_layer="relu", semantic_nc=13, output_nc=13, cuda=False,
                        fine_height=a.fine_height, fine_width=a.fine_width)
        tocg = networks.ConditionGenerator(opt, input1_nc=4, input2_nc=opt.semantic_nc + 3,
                                           output_nc=opt.output_nc, ngf=a.ngf or 96, norm_layer=nn.BatchNorm2d)
        import contextlib
        import io

        with contextlib.redirect_stdout(io.StringIO()):  # define_D prints the network
            d = networks.define_D(input_nc=4 + opt.semantic_nc + 3 + opt.output_nc, ndf=a.ndf,
                                  n_layers_D=3, num_D=2)
        g_path, d_path = (os.path.join(a.path, n) for n in ("tocg.pth", "discriminator.pth"))
        strict(tocg, g_path, "tocg")
        strict(d, d_path, "D")
        networks.load_checkpoint(tocg, g_path, opt)  # HR-VITON's takes opt (for .cuda)
        print("tocg: networks.load_checkpoint: ok")


if __name__ == "__main__":
    main()
