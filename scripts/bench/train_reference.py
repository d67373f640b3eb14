"""PyTorch side of the training-speed comparison (scripts/bench/train_compare.sh).

Times one optimiser step of the ORIGINAL training scripts' networks, imported from the
original repositories' own files (never vendored here):

  gmm   CP-VTON+ train.py train_gmm:  GMM(opt), L1(warped cloth, im_c) + 40 Lgic, Adam
  tom   CP-VTON+ train.py train_tom:  UnetGenerator(26, 4, 6, ngf=64, InstanceNorm2d),
        L1 + VGGLoss + mask L1, Adam
  tocg  HR-VITON train_condition.py:  ConditionGenerator(ngf=96, BatchNorm2d) +
        define_D(ndf=64, n_layers_D=3, num_D=2), loss_G / loss_D, two Adams
  unet  diffusers' inpainting fine-tuning step (diffusers' UNet2DConditionModel from a
        folder, epsilon MSE, AdamW, clip_grad_norm_ 1.0) on random latents

with random initialisation (the repositories' own init) and one random batch of the
dataset's shapes and value ranges, reused every step. The step body follows the scripts:
forward, losses, zero_grad, backward, optimizer.step (the visual-only tensors of the
scripts, warped_mask / warped_grid / misalign, are not computed: they feed no loss).
One adaptation to current torch: the GMM regression's conv output is made contiguous
before the original's `.view` (a forward hook; see cmd_time).

The originals call .cuda() unconditionally and load an ImageNet VGG19 through
torchvision; here .cuda() is the identity and `models.vgg19(pretrained=True)` returns a
random VGG19 `features` (the same weights `make` saves for vton). HR-VITON's utils.py
imports cv2 only for functions not used here; a stand-in module satisfies the import.

    # the original files, e.g. from git mirrors:
    git --git-dir MIRROR show HEAD:networks.py > DIR/networks.py
    python train_reference.py make OUT --hrviton-repo DIR     # vgg19, tocg, D random .pth
    python train_reference.py time {gmm|tom|tocg} --batch-size 4 --threads 2 \
        --cpvton-repo DIR --hrviton-repo DIR --vgg OUT/vgg19_random.pth

`time` prints one JSON line: median seconds per step, every step time, peak RSS.
"""
import argparse
import contextlib
import importlib.util
import io
import json
import os
import resource
import statistics
import sys
import time
import types


def peak_rss_mib():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def import_torch(threads):
    import torch

    if threads:
        torch.set_num_threads(threads)
    import torch.nn as nn

    # The originals move everything to the GPU unconditionally.
    torch.Tensor.cuda = lambda self, *a, **k: self
    nn.Module.cuda = lambda self, *a, **k: self
    return torch


def patch_vgg(torch, vgg_path):
    """`models.vgg19(pretrained=True)` -> a VGG19 `features` with random (or saved) weights."""
    import torchvision.models as models
    from torchvision.models.vgg import cfgs, make_layers

    def vgg19(*args, **kwargs):
        features = make_layers(cfgs["E"], batch_norm=False)
        if vgg_path:
            sd = torch.load(vgg_path, map_location="cpu")
            features.load_state_dict({k[len("features."):]: v for k, v in sd.items() if k.startswith("features.")})
        return types.SimpleNamespace(features=features)

    models.vgg19 = vgg19


def load_module(name, path):
    spec = importlib.util.spec_from_file_location(name, path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def hrviton_modules(repo):
    net = load_module("hrviton_networks", os.path.join(repo, "networks.py"))
    sys.modules.setdefault("cv2", types.ModuleType("cv2"))  # utils.py imports it; unused here
    utils = load_module("hrviton_utils", os.path.join(repo, "utils.py"))
    return net, utils


def hrviton_opt(h, w):
    return types.SimpleNamespace(
        warp_feature="T1", out_layer="relu", cuda=False, fine_height=h, fine_width=w,
        semantic_nc=13, output_nc=13, G_lr=2e-4, D_lr=2e-4, CElamda=10.0, GANlambda=1.0,
        tvlambda=2.0, upsample="bilinear", clothmask_composition="warp_grad",
        edgeawaretv="no_edge", lasttvonly=False, interflowloss=False, occlusion=False,
        no_GAN_loss=False, G_D_seperate=False, Ddownx2=False, Ddropout=False, spectral=False,
        num_D=2,
    )


def build_tocg(torch, net, opt, ngf):
    import torch.nn as nn

    tocg = net.ConditionGenerator(opt, input1_nc=4, input2_nc=opt.semantic_nc + 3,
                                  output_nc=opt.output_nc, ngf=ngf, norm_layer=nn.BatchNorm2d)
    with contextlib.redirect_stdout(io.StringIO()):  # define_D prints the network
        d = net.define_D(input_nc=4 + opt.semantic_nc + 3 + opt.output_nc, Ddownx2=opt.Ddownx2,
                         Ddropout=opt.Ddropout, n_layers_D=3, spectral=opt.spectral,
                         num_D=opt.num_D)
    return tocg, d


def cmd_make(a):
    torch = import_torch(a.threads)
    os.makedirs(a.out, exist_ok=True)
    torch.manual_seed(a.seed)
    from torchvision.models.vgg import cfgs, make_layers

    features = make_layers(cfgs["E"], batch_norm=False)  # torchvision's own VGG init
    torch.save({f"features.{k}": v for k, v in features.state_dict().items()},
               os.path.join(a.out, "vgg19_random.pth"))
    if a.hrviton_repo:
        patch_vgg(torch, None)
        net, _ = hrviton_modules(a.hrviton_repo)
        tocg, d = build_tocg(torch, net, hrviton_opt(a.height, a.width), a.ngf)
        torch.save(tocg.state_dict(), os.path.join(a.out, f"tocg_random_ngf{a.ngf}.pth"))
        torch.save(d.state_dict(), os.path.join(a.out, "d_random.pth"))
    print(json.dumps({"made": sorted(os.listdir(a.out))}))


def rand_batch(torch, b, h, w):
    g = torch.Generator().manual_seed(1)
    u = lambda c: torch.rand(b, c, h, w, generator=g) * 2 - 1  # noqa: E731
    mask = lambda: (torch.rand(b, 1, h, w, generator=g) > 0.5).float()  # noqa: E731
    return u, mask, g


def time_steps(step, warmup, steps):
    times = []
    for i in range(warmup + steps):
        t0 = time.perf_counter()
        step()
        dt = time.perf_counter() - t0
        if i >= warmup:
            times.append(dt)
    return times


def cmd_time(a):
    torch = import_torch(a.threads)
    import torch.nn as nn
    import torch.nn.functional as F

    patch_vgg(torch, a.vgg)
    torch.manual_seed(a.seed)
    b, h, w = a.batch_size, a.height, a.width
    u, mask, g = rand_batch(torch, b, h, w)
    info = {}
    if a.what in ("gmm", "tom"):
        net = load_module("cpvton_networks", os.path.join(a.cpvton_repo, "networks.py"))
        opt = types.SimpleNamespace(fine_height=h, fine_width=w, grid_size=5, lr=1e-4)
    if a.what == "gmm":
        model = net.GMM(opt)
        # FeatureRegression does x.view(B, -1) on its conv output; on current CPU torch
        # that output keeps the correlation's permuted (channels-last) strides and view
        # refuses, so the output is made contiguous (what older CUDA torch returned).
        model.regression.conv.register_forward_hook(lambda m, i, o: o.contiguous())
        model.train()
        crit_l1, gic = nn.L1Loss(), net.GicLoss(opt)
        optimizer = torch.optim.Adam(model.parameters(), lr=opt.lr, betas=(0.5, 0.999))
        agnostic, c, cm, im_c = u(22), u(3), mask(), u(3)

        def step():
            grid, theta = model(agnostic, cm)
            warped_cloth = F.grid_sample(c, grid, padding_mode="border")
            lwarp = crit_l1(warped_cloth, im_c)
            lgic = gic(grid)
            lgic = lgic / (grid.shape[0] * grid.shape[1] * grid.shape[2])
            loss = lwarp + 40 * lgic
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            info["loss"] = loss.item()
    elif a.what == "tom":
        model = net.UnetGenerator(26, 4, 6, ngf=a.ngf or 64, norm_layer=nn.InstanceNorm2d)
        model.train()
        crit_l1, crit_vgg, crit_mask = nn.L1Loss(), net.VGGLoss(), nn.L1Loss()
        optimizer = torch.optim.Adam(model.parameters(), lr=opt.lr, betas=(0.5, 0.999))
        agnostic, c, cm, im, pcm = u(22), u(3), mask(), u(3), mask()

        def step():
            outputs = model(torch.cat([agnostic, c, cm], 1))
            p_rendered, m_composite = torch.split(outputs, 3, 1)
            p_rendered = torch.tanh(p_rendered)
            m_composite = torch.sigmoid(m_composite)
            p_tryon = c * m_composite + p_rendered * (1 - m_composite)
            loss = crit_l1(p_tryon, im) + crit_vgg(p_tryon, im) + crit_mask(m_composite, pcm)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            info["loss"] = loss.item()
    elif a.what == "tocg":
        hnet, utils = hrviton_modules(a.hrviton_repo)
        opt = hrviton_opt(h, w)
        tocg, D = build_tocg(torch, hnet, opt, a.ngf or 96)
        if a.tocg_weights:
            tocg.load_state_dict(torch.load(a.tocg_weights))
        if a.d_weights:
            D.load_state_dict(torch.load(a.d_weights))
        tocg.train()
        D.train()
        crit_l1, crit_vgg = nn.L1Loss(), hnet.VGGLoss(opt)
        crit_gan = hnet.GANLoss(use_lsgan=True, tensor=torch.Tensor)
        opt_g = torch.optim.Adam(tocg.parameters(), lr=opt.G_lr, betas=(0.5, 0.999))
        opt_d = torch.optim.Adam(D.parameters(), lr=opt.D_lr, betas=(0.5, 0.999))
        n = opt.semantic_nc
        c_paired = u(3)
        cm_paired = (mask() > 0.5).float()
        labels = torch.randint(0, n, (b, 1, h, w), generator=g)
        parse_agnostic = F.one_hot(torch.randint(0, n, (b, h, w), generator=g), n).permute(0, 3, 1, 2).float()
        densepose = u(3)
        label_onehot = labels.float()  # class indices, as cp_dataset.py's parse_onehot
        label = F.one_hot(labels[:, 0], opt.output_nc).permute(0, 3, 1, 2).float()
        parse_cloth_mask = mask()
        im_c = u(3)
        input1 = torch.cat([c_paired, cm_paired], 1)
        input2 = torch.cat([parse_agnostic, densepose], 1)

        def step():
            flow_list, fake_segmap, warped_cloth_paired, warped_clothmask_paired = tocg(opt, input1, input2)
            cloth_mask = torch.ones_like(fake_segmap.detach())  # clothmask_composition warp_grad
            cloth_mask[:, 3:4, :, :] = warped_clothmask_paired
            fake_segmap = fake_segmap * cloth_mask
            loss_l1_cloth = crit_l1(warped_clothmask_paired, parse_cloth_mask)
            loss_vgg = crit_vgg(warped_cloth_paired, im_c)
            loss_tv = 0
            for flow in flow_list:  # edgeawaretv no_edge, all levels
                y_tv = torch.abs(flow[:, 1:, :, :] - flow[:, :-1, :, :]).mean()
                x_tv = torch.abs(flow[:, :, 1:, :] - flow[:, :, :-1, :]).mean()
                loss_tv = loss_tv + y_tv + x_tv
            ce = utils.cross_entropy2d(fake_segmap, label_onehot.transpose(0, 1)[0].long())
            soft = torch.softmax(fake_segmap, 1)
            pred_segmap = D(torch.cat((input1.detach(), input2.detach(), soft), dim=1))
            loss_g_gan = crit_gan(pred_segmap, True)
            fake_pred = D(torch.cat((input1.detach(), input2.detach(), soft.detach()), dim=1))
            real_pred = D(torch.cat((input1.detach(), input2.detach(), label), dim=1))
            loss_d = crit_gan(fake_pred, False) + crit_gan(real_pred, True)
            loss_g = (10 * loss_l1_cloth + loss_vgg + opt.tvlambda * loss_tv) + (ce * opt.CElamda + loss_g_gan * opt.GANlambda)
            opt_g.zero_grad()
            loss_g.backward()
            opt_g.step()
            opt_d.zero_grad()
            loss_d.backward()
            opt_d.step()
            info["loss_G"], info["loss_D"] = loss_g.item(), loss_d.item()
    elif a.what == "unet":
        # diffusers' fine-tuning loop (train_text_to_image.py / train_dreambooth_inpaint.py
        # step body): U-Net on concat(noisy, mask, masked latents), epsilon MSE, AdamW with
        # the scripts' defaults, clip_grad_norm_ 1.0. --unet is the folder (or DIR/unet).
        import safetensors.torch  # noqa: F401  (diffusers 0.32 expects the submodule imported)
        from diffusers import UNet2DConditionModel

        folder = a.unet if os.path.isfile(os.path.join(a.unet, "config.json")) else os.path.join(a.unet, "unet")
        model = UNet2DConditionModel.from_pretrained(folder)
        model.train()
        h, w = a.latent_height, a.latent_width
        cfg = model.config
        c = cfg.out_channels
        ca = cfg.cross_attention_dim
        ca = ca[0] if isinstance(ca, (list, tuple)) else ca
        optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4, betas=(0.9, 0.999),
                                      weight_decay=1e-2, eps=1e-8)
        gen = torch.Generator().manual_seed(2)
        lat = torch.rand(b, c, h, w, generator=gen) * 2 - 1
        masked = torch.rand(b, cfg.in_channels - c - 1, h, w, generator=gen) * 2 - 1
        m = (torch.rand(b, 1, h, w, generator=gen) > 0.5).float()
        noise = torch.rand(b, c, h, w, generator=gen) * 2 - 1
        ts = torch.tensor([100 + 300 * i for i in range(b)])
        text = torch.zeros(b, 77, ca)
        from diffusers import DDPMScheduler

        sched = DDPMScheduler()
        noisy = sched.add_noise(lat, noise, ts)

        def step():
            pred = model(torch.cat([noisy, m, masked], 1), ts, text).sample
            loss = F.mse_loss(pred.float(), noise.float(), reduction="mean")
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            optimizer.step()
            optimizer.zero_grad()
            info["loss"] = loss.item()
    else:
        sys.exit(f"unknown workload {a.what}")
    import warnings

    warnings.filterwarnings("ignore")
    times = time_steps(step, a.warmup, a.steps)
    print(json.dumps({
        "impl": "pytorch", "what": a.what, "batch_size": b, "height": h, "width": w,
        "diffusers": sys.modules["diffusers"].__version__ if "diffusers" in sys.modules else None,
        "threads": torch.get_num_threads(), "median_s": statistics.median(times),
        "times_s": times, "peak_rss_mib": peak_rss_mib(), "torch": torch.__version__,
        "last": info,
    }))


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="cmd", required=True)
    for name in ("make", "time"):
        s = sub.add_parser(name)
        s.add_argument("--cpvton-repo", default=None, help="folder with CP-VTON+'s networks.py")
        s.add_argument("--hrviton-repo", default=None, help="folder with HR-VITON's networks.py and utils.py")
        s.add_argument("--threads", type=int, default=2)
        s.add_argument("--height", type=int, default=256)
        s.add_argument("--width", type=int, default=192)
        s.add_argument("--seed", type=int, default=0)
        s.add_argument("--ngf", type=int, default=None, help="tom: 64, tocg: 96 unless given")
        if name == "make":
            s.add_argument("out")
        else:
            s.add_argument("what", choices=["gmm", "tom", "tocg", "unet"])
            s.add_argument("--unet", default=None, help="unet: diffusers U-Net or pipeline folder")
            s.add_argument("--latent-height", type=int, default=32)
            s.add_argument("--latent-width", type=int, default=24)
            s.add_argument("--batch-size", type=int, default=4)
            s.add_argument("--steps", type=int, default=5)
            s.add_argument("--warmup", type=int, default=1)
            s.add_argument("--vgg", default=None, help="vgg19_random.pth from make (else random)")
            s.add_argument("--tocg-weights", default=None)
            s.add_argument("--d-weights", default=None)
    a = p.parse_args()
    if a.cmd == "make":
        a.ngf = a.ngf or 96
        cmd_make(a)
    else:
        cmd_time(a)


if __name__ == "__main__":
    main()
