"""PyTorch reference modules for the GAN benchmarks (CP-VTON+ GMM, HR-VITON condition
generator) at their released widths, written here from the architecture facts recorded in
tests/fixtures/gan/*.json (layer order, widths, state-dict keys), so that
scripts/bench/run.sh can time the original computation next to vton on the same
random weights. Not part of vton or its CI.

CP-VTON+ TOM (UnetGenerator(26, 4, 6, ngf=64, InstanceNorm2d)) is written here the same way;
HR-VITON's image generator (SPADEGenerator, 1024x768, 'most', spectralaliasinstance) is the
original code itself: `network_generator.py` of a checkout of HR-VITON named by
$HRVITON_SRC (commit 2715bdd, the one the test fixtures were made with), imported as is.

    python scripts/bench/gan_reference.py make DIR   # DIR/{gmm,tocg,tom,gen}_full.pth + *_io.safetensors
    python scripts/bench/gan_reference.py time DIR THREADS {gmm|tocg|tom|gen}
"""
import json
import os
import resource
import statistics
import sys
import time
import types

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F


# ---- CP-VTON+ GMM -------------------------------------------------------------------
def feature_extraction(cin, ngf=64, cap=512):
    layers, c = [nn.Conv2d(cin, ngf, 4, 2, 1), nn.ReLU(), nn.BatchNorm2d(ngf)], ngf
    for _ in range(3):
        o = min(2 * c, cap)
        layers += [nn.Conv2d(c, o, 4, 2, 1), nn.ReLU(), nn.BatchNorm2d(o)]
        c = o
    layers += [nn.Conv2d(cap, cap, 3, 1, 1), nn.ReLU(), nn.BatchNorm2d(cap), nn.Conv2d(cap, cap, 3, 1, 1), nn.ReLU()]
    m = nn.Module()
    m.model = nn.Sequential(*layers)
    return m


class Regression(nn.Module):
    def __init__(self, cin=192, widths=(512, 256, 128, 64), out=50):
        super().__init__()
        layers, c = [], cin
        for i, w in enumerate(widths):
            k, s = (4, 2) if i < 2 else (3, 1)
            layers += [nn.Conv2d(c, w, k, s, 1), nn.BatchNorm2d(w), nn.ReLU()]
            c = w
        self.conv = nn.Sequential(*layers)
        self.linear = nn.Linear(widths[-1] * 4 * 3, out)

    def forward(self, x):
        x = self.conv(x)
        return torch.tanh(self.linear(x.reshape(x.size(0), -1)))


class Tps(nn.Module):
    """TPS grid as CP-VTON computes it per call: kernel of every output point against the
    control points, then the affine + warping sums."""

    def __init__(self, h=256, w=192, n=5):
        super().__init__()
        gx, gy = np.meshgrid(np.linspace(-1, 1, w), np.linspace(-1, 1, h))
        self.register_buffer("gx", torch.tensor(gx, dtype=torch.float32)[None, :, :, None])
        self.register_buffer("gy", torch.tensor(gy, dtype=torch.float32)[None, :, :, None])
        axis = np.linspace(-1, 1, n)
        py, px = np.meshgrid(axis, axis)
        px, py = px.reshape(-1), py.reshape(-1)
        self.register_buffer("px", torch.tensor(px, dtype=torch.float32))
        self.register_buffer("py", torch.tensor(py, dtype=torch.float32))
        d2 = (px[:, None] - px[None]) ** 2 + (py[:, None] - py[None]) ** 2
        d2[d2 == 0] = 1
        k = d2 * np.log(d2)
        p = np.stack([np.ones(n * n), px, py], 1)
        L = np.block([[k, p], [p.T, np.zeros((3, 3))]])
        self.register_buffer("li", torch.inverse(torch.tensor(L, dtype=torch.float32)))

    def forward(self, theta):
        b, nn_ = theta.size(0), self.px.numel()
        qx, qy = theta[:, :nn_] + self.px, theta[:, nn_:] + self.py
        z = torch.zeros(b, 3)
        wx = torch.cat([qx, z], 1) @ self.li.T  # [b, n+3]
        wy = torch.cat([qy, z], 1) @ self.li.T
        d2 = (self.gx - self.px) ** 2 + (self.gy - self.py) ** 2  # [1, h, w, n]
        d2 = torch.where(d2 == 0, torch.ones_like(d2), d2)
        u = d2 * torch.log(d2)
        def warp(wc):
            a = wc[:, nn_:]
            return (a[:, 0, None, None] + a[:, 1, None, None] * self.gx[..., 0] + a[:, 2, None, None] * self.gy[..., 0]
                    + (u * wc[:, None, None, :nn_]).sum(-1))
        return torch.stack([warp(wx), warp(wy)], -1)


class Gmm(nn.Module):
    def __init__(self):
        super().__init__()
        self.extractionA = feature_extraction(22)
        self.extractionB = feature_extraction(1)
        self.regression = Regression()
        self.tps = Tps()

    def forward(self, a, b):
        fa, fb = self.extractionA.model(a), self.extractionB.model(b)
        l2 = lambda f: f / torch.sqrt((f * f).sum(1, keepdim=True) + 1e-6)  # noqa: E731
        fa, fb = l2(fa), l2(fb)
        n, c, h, w = fa.shape
        corr = torch.bmm(fb.reshape(n, c, h * w).transpose(1, 2), fa.transpose(2, 3).reshape(n, c, h * w))
        corr = corr.reshape(n, h, w, h * w).permute(0, 3, 1, 2).contiguous()
        theta = self.regression(corr)
        return self.tps(theta), theta


# ---- HR-VITON condition generator ------------------------------------------------------
class Res(nn.Module):
    def __init__(self, cin, cout, scale, norm="batch"):
        super().__init__()
        inst = norm == "instance"  # convs carry a bias only under InstanceNorm
        Norm = nn.InstanceNorm2d if inst else nn.BatchNorm2d
        if scale == "down":
            self.scale = nn.Conv2d(cin, cout, 3, 2, 1, bias=inst)
        elif scale == "up":
            self.scale = nn.Sequential(nn.Upsample(scale_factor=2, mode="bilinear"), nn.Conv2d(cin, cout, 1))
        else:
            self.scale = nn.Conv2d(cin, cout, 1)
        self.block = nn.Sequential(nn.Conv2d(cout, cout, 3, 1, 1, bias=inst), Norm(cout), nn.ReLU(),
                                   nn.Conv2d(cout, cout, 3, 1, 1, bias=inst), Norm(cout))

    def forward(self, x):
        r = self.scale(x)
        return F.relu(r + self.block(r))


def grid(n, h, w):
    gx = torch.linspace(-1, 1, w).view(1, 1, w, 1).expand(n, h, w, 1)
    gy = torch.linspace(-1, 1, h).view(1, h, 1, 1).expand(n, h, w, 1)
    return torch.cat([gx, gy], 3)


class Tocg(nn.Module):
    """Options as HR-VITON's opt: norm (batch/instance), warp_feature (T1/encoder),
    out_layer (relu/conv), upsample (bilinear/nearest)."""

    def __init__(self, in1=4, in2=16, out=13, g=96, norm="batch", warp_feature="T1", out_layer="relu",
                 upsample="bilinear"):
        super().__init__()
        self.warp_feature, self.mode = warp_feature, upsample
        R = lambda a, b, sc: Res(a, b, sc, norm)  # noqa: E731
        enc = lambda cin: nn.Sequential(R(cin, g, "down"), R(g, 2 * g, "down"), R(2 * g, 4 * g, "down"),  # noqa
                                        R(4 * g, 4 * g, "down"), R(4 * g, 4 * g, "down"))
        self.ClothEncoder, self.PoseEncoder = enc(in1), enc(in2)
        self.conv = R(4 * g, 8 * g, "same")
        ins = [8 * g, 12 * g, 12 * g, 8 * g, 6 * g] if warp_feature == "T1" else [8 * g, 12 * g, 12 * g, 6 * g, 3 * g]
        outs = [4 * g, 4 * g, 2 * g, g, g]
        self.SegDecoder = nn.Sequential(*[R(a, b, "up") for a, b in zip(ins, outs)])
        if out_layer == "relu":
            self.out_layer = R(g + in1 + in2, out, "same")
        else:
            self.out_layer = nn.Sequential(R(g + in1 + in2, g, "same"), nn.Conv2d(g, out, 1))
        ins = [g, 2 * g, 4 * g, 4 * g]
        self.conv1 = nn.Sequential(*[nn.Conv2d(c, 4 * g, 1) for c in ins])
        self.conv2 = nn.Sequential(*[nn.Conv2d(c, 4 * g, 1) for c in ins])
        self.flow_conv = nn.ModuleList([nn.Conv2d(8 * g, 2, 3, 1, 1) for _ in range(5)])
        self.bottleneck = nn.Sequential(*[nn.Sequential(nn.Conv2d(c, 4 * g, 3, 1, 1), nn.ReLU())
                                          for c in [4 * g, 4 * g, 2 * g, g]])

    def forward(self, x1, x2):
        e1, e2 = [], []
        for i in range(5):
            e1.append(self.ClothEncoder[i](x1 if i == 0 else e1[-1]))
            e2.append(self.PoseEncoder[i](x2 if i == 0 else e2[-1]))
        t1, t2 = e1[4], e2[4]
        flows = [self.flow_conv[0](torch.cat([t1, t2], 1)).permute(0, 2, 3, 1)]
        x = self.SegDecoder[0](self.conv(t2))
        up = lambda t: F.interpolate(t, scale_factor=2, mode=self.mode)  # noqa: E731
        for i in range(1, 5):
            j = 4 - i
            n, _, h, w = e1[j].shape
            t1 = up(t1) + self.conv1[j](e1[j])
            t2 = up(t2) + self.conv2[j](e2[j])
            f = up(flows[-1].permute(0, 3, 1, 2)).permute(0, 2, 3, 1)
            fn = torch.cat([f[..., :1] / ((w / 2 - 1) / 2), f[..., 1:] / ((h / 2 - 1) / 2)], 3)
            wt1 = F.grid_sample(t1, fn + grid(n, h, w), padding_mode="border", align_corners=False)
            flows.append(f + self.flow_conv[i](torch.cat([wt1, self.bottleneck[i - 1](x)], 1)).permute(0, 2, 3, 1))
            if self.warp_feature == "T1":
                x = self.SegDecoder[i](torch.cat([x, e2[j], wt1], 1))
            else:
                we1 = F.grid_sample(e1[j], fn + grid(n, h, w), padding_mode="border", align_corners=False)
                x = self.SegDecoder[i](torch.cat([x, e2[j], we1], 1))
        n, _, h, w = x1.shape
        f = up(flows[-1].permute(0, 3, 1, 2)).permute(0, 2, 3, 1)
        fn = torch.cat([f[..., :1] / ((w / 2 - 1) / 2), f[..., 1:] / ((h / 2 - 1) / 2)], 3)
        warped = F.grid_sample(x1, fn + grid(n, h, w), padding_mode="border", align_corners=False)
        x = self.out_layer(torch.cat([x, x2, warped], 1))
        return flows, x, warped[:, :-1], warped[:, -1:]


# ---- CP-VTON+ TOM ---------------------------------------------------------------------
class UnetBlock(nn.Module):
    """One UnetSkipConnectionBlock (InstanceNorm: every conv has a bias; bilinear x2 + 3x3
    conv on the way up; the outermost block ends with the norm too)."""

    def __init__(self, outer, inner, cin=None, sub=None, outermost=False, innermost=False):
        super().__init__()
        self.outermost = outermost
        cin = outer if cin is None else cin
        down = nn.Conv2d(cin, inner, 4, 2, 1)
        up_in = inner if innermost else 2 * inner
        up = [nn.ReLU(), nn.Upsample(scale_factor=2, mode="bilinear"), nn.Conv2d(up_in, outer, 3, 1, 1),
              nn.InstanceNorm2d(outer)]
        if outermost:
            layers = [down, sub] + up
        elif innermost:
            layers = [nn.LeakyReLU(0.2), down] + up
        else:
            layers = [nn.LeakyReLU(0.2), down, nn.InstanceNorm2d(inner), sub] + up
        self.model = nn.Sequential(*layers)

    def forward(self, x):
        return self.model(x) if self.outermost else torch.cat([x, self.model(x)], 1)


class Tom(nn.Module):
    def __init__(self, cin=26, cout=4, num_downs=6, ngf=64):
        super().__init__()
        b = UnetBlock(8 * ngf, 8 * ngf, innermost=True)
        for _ in range(num_downs - 5):
            b = UnetBlock(8 * ngf, 8 * ngf, sub=b)
        for outer, inner in [(4 * ngf, 8 * ngf), (2 * ngf, 4 * ngf), (ngf, 2 * ngf)]:
            b = UnetBlock(outer, inner, sub=b)
        self.model = UnetBlock(cout, ngf, cin=cin, sub=b, outermost=True)

    def forward(self, a, b=None):
        return (self.model(a),)


# ---- HR-VITON image generator (the original code) --------------------------------------
def hrviton_generator():
    src = os.environ.get("HRVITON_SRC")
    if not src or not os.path.exists(os.path.join(src, "network_generator.py")):
        sys.exit("set HRVITON_SRC to a checkout of https://github.com/sangyun884/HR-VITON "
                 "(commit 2715bdd) for the generator benchmark")
    sys.path.insert(0, src)
    from network_generator import SPADEGenerator
    opt = types.SimpleNamespace(num_upsampling_layers="most", ngf=64, norm_G="spectralaliasinstance",
                                gen_semantic_nc=7, fine_height=1024, fine_width=768, cuda=False)
    return SPADEGenerator(opt, 9)


def randomize(m, seed):
    g = torch.Generator().manual_seed(seed)
    for name, t in m.state_dict().items():
        if t.dtype != torch.float32 or name.startswith("tps."):  # TPS buffers are constants
            continue
        # Spectral norm's power-iteration vectors stay as built (unit random vectors, so
        # sigma stays away from 0); noise_scale stays 0 (its initial value: no random draw
        # changes the output, so both sides compute the same image).
        if name.endswith(("weight_u", "weight_v", "noise_scale")):
            continue
        if name.endswith("running_var"):
            t.copy_(torch.rand(t.shape, generator=g) + 0.5)
        elif name.endswith("running_mean") or name.endswith("bias"):
            t.copy_((torch.rand(t.shape, generator=g) - 0.5) * 0.2)
        elif t.dim() > 1:
            t.copy_(torch.randn(t.shape, generator=g) / np.sqrt(t[0].numel()))
        else:
            t.copy_(torch.rand(t.shape, generator=g) * 0.8 + 0.6)
    return m


def inputs(what):
    g = torch.Generator().manual_seed(0)
    if what == "gmm":
        return torch.rand(1, 22, 256, 192, generator=g) * 2 - 1, (torch.rand(1, 1, 256, 192, generator=g) > 0.5).float()
    if what == "tom":
        return torch.rand(1, 26, 256, 192, generator=g) * 2 - 1, torch.zeros(1)
    if what == "gen":
        return torch.rand(1, 9, 1024, 768, generator=g) * 2 - 1, torch.rand(1, 7, 1024, 768, generator=g)
    return torch.rand(1, 4, 256, 192, generator=g) * 2 - 1, torch.rand(1, 16, 256, 192, generator=g) * 2 - 1


def model(what):
    return {"gmm": Gmm, "tocg": Tocg, "tom": Tom, "gen": hrviton_generator}[what]()


# Timed runs after one warm-up (the generator at 1024x768 takes seconds per call).
RUNS = {"gmm": 10, "tocg": 10, "tom": 10, "gen": 3}


if __name__ == "__main__":
    if sys.argv[1] == "options":
        # A test fixture for the condition generator's non-default options (vton's own
        # reference, not the original code): tests/fixtures/gan/tocg_options.safetensors.
        from safetensors.torch import save_file
        cfg = dict(g=4, norm="instance", warp_feature="encoder", out_layer="conv", upsample="nearest")
        m = randomize(Tocg(**cfg), 5).eval()
        g = torch.Generator().manual_seed(6)
        a, b = torch.rand(2, 4, 128, 64, generator=g) * 2 - 1, torch.rand(2, 16, 128, 64, generator=g) * 2 - 1
        with torch.inference_mode():
            flows, seg, wc, wcm = m(a, b)
        t = {f"weights.{k}": v for k, v in m.state_dict().items()}
        t.update({"input.input1": a, "input.input2": b, "output.fake_segmap": seg, "output.warped_c": wc.contiguous(),
                  "output.warped_cm": wcm.contiguous()})
        t.update({f"output.flow_list.{i}": f.contiguous() for i, f in enumerate(flows)})
        save_file(t, sys.argv[2], metadata={k: str(v) for k, v in cfg.items()})
        # Tolerance per output: twice the distance between this float32 run and the same
        # module in float64 (instance norm on random weights amplifies rounding level by level).
        m64 = m.double()
        with torch.inference_mode():
            f64, s64, c64, m64_ = m64(a.double(), b.double())
        dist = {f"flow_list.{i}": (f.float() - flows[i]).abs().max().item() for i, f in enumerate(f64)}
        dist.update({"fake_segmap": (s64.float() - seg).abs().max().item(),
                     "warped_c": (c64.float() - wc).abs().max().item(),
                     "warped_cm": (m64_.float() - wcm).abs().max().item()})
        json.dump({"config": cfg, "float64_distance": dist,
                   "atol": {k: max(2 * v, 1e-5) for k, v in dist.items()}, "rtol": 1e-4},
                  open(sys.argv[2].replace(".safetensors", ".json"), "w"), indent=1)
        sys.exit(0)
    if sys.argv[1] == "make":
        from safetensors.torch import save_file
        d = sys.argv[2]
        whats = sys.argv[3].split(",") if len(sys.argv) > 3 else ["gmm", "tocg", "tom", "gen"]
        for what, seed in [("gmm", 1), ("tocg", 2), ("tom", 3), ("gen", 4)]:
            if what not in whats:
                continue
            m = randomize(model(what), seed).eval()
            sd = {k: v for k, v in m.state_dict().items() if not k.startswith("tps.")}
            torch.save(sd, f"{d}/{what}_full.pth")
            # One forward on fixed inputs, so the vton side can check it computes the same.
            a, b = inputs(what)
            with torch.inference_mode():
                o = m(a, b)
            out = o if what == "gen" else o[1] if what == "tocg" else o[0]
            save_file({"input.a": a, "input.b": b, "output": out.contiguous()}, f"{d}/{what}_io.safetensors")
        sys.exit(0)
    d, threads, what = sys.argv[2], int(sys.argv[3]), sys.argv[4]
    torch.set_num_threads(threads)
    m = model(what)
    m.load_state_dict(torch.load(f"{d}/{what}_full.pth"), strict=False)
    m.eval()
    a, b = inputs(what)
    with torch.inference_mode():
        m(a, b)
        times = []
        for _ in range(RUNS[what]):
            t0 = time.perf_counter()
            m(a, b)
            times.append(time.perf_counter() - t0)
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps({"impl": "torch", "what": what, "threads": threads, "median_s": statistics.median(times),
                      "peak_rss_mib": rss, "torch": torch.__version__}))
