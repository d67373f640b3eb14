"""DanMenCas/DCI-VITON from Python against the original code's outputs (fixtures made by
scripts/reference/gen_dci_viton_*.py running the repository's warpingnetwork.py,
diffusionmodel.py and viton_pipeline.py), and SegFormer human parsing against
transformers (segformer_a). Widths and constants come from each fixture's JSON."""
import json
import pathlib

import numpy as np
import pytest
from PIL import Image

import vton
from test_vton import _read_safetensors

ROOT = pathlib.Path(__file__).resolve().parents[2]
FIX = ROOT / "tests" / "fixtures"
PIPE = FIX / "dci_viton_pipeline"
TINY = FIX / "vitonhd_tiny" / "test"


def fixture(name):
    return _read_safetensors(FIX / f"{name}.safetensors"), json.loads((FIX / f"{name}.json").read_text())


def unet_groups(j):
    # The fixtures patch the original's GroupNorm literal (8) to fit their tiny widths.
    return int(j["patched_constants"]["DCI_NUM_GROUPS"])


# --- warping network --------------------------------------------------------------------

def test_warping_matches_original_from_the_adam_checkpoint():
    t, j = fixture("dci_viton_warping_oc3")
    atol, rtol = j["tolerance"]["atol"], j["tolerance"]["rtol"]
    # The repository's torch.save({'model_state_dict', 'optimizer_state_dict'}) file;
    # oc is read from it (the keyword is left unset).
    warp = vton.DCIVITONWarping.from_checkpoint(FIX / "dci_viton_warping_oc3_adam.pth")
    assert (warp.oc, warp.input_1_channels, warp.input_2_channels) == (j["constructor_args"]["oc"], 4, 6)
    assert warp.device == "cpu"
    warped_c, warped_cm, flows = warp(t["input.input_1"], t["input.input_2"])
    assert warped_c.shape == tuple(j["outputs"]["warped_c"]["shape"])
    assert warped_cm.shape == tuple(j["outputs"]["warped_cm"]["shape"])
    np.testing.assert_allclose(warped_c, t["output.warped_c"], atol=atol, rtol=rtol)
    np.testing.assert_allclose(warped_cm, t["output.warped_cm"], atol=atol, rtol=rtol)
    assert isinstance(flows, list) and len(flows) == 5
    for i, f in enumerate(flows):
        assert f.dtype == np.float32 and f.shape == t[f"output.flow_list.{i}"].shape
        np.testing.assert_allclose(f, t[f"output.flow_list.{i}"], atol=atol, rtol=rtol)
    # The matching width given explicitly loads too.
    vton.DCIVITONWarping.from_checkpoint(FIX / "dci_viton_warping_oc3.safetensors", oc=3)


def test_warping_typed_errors():
    t, _ = fixture("dci_viton_warping_oc3")
    with pytest.raises(vton.CheckpointError, match=r"oc=96.*oc=3"):
        vton.DCIVITONWarping.from_checkpoint(FIX / "dci_viton_warping_oc3_adam.pth", oc=96)
    with pytest.raises(vton.VtonFileNotFoundError):
        vton.DCIVITONWarping.from_checkpoint(FIX / "no_such_warping.pth")
    with pytest.raises(vton.CheckpointError):
        vton.DCIVITONWarping.from_checkpoint(FIX / "dci_viton_unet_ckpt.pth")  # another network's keys
    warp = vton.DCIVITONWarping.from_checkpoint(FIX / "dci_viton_warping_oc3.safetensors")
    a, b = t["input.input_1"], t["input.input_2"]
    with pytest.raises(vton.InvalidInputError, match="input_1"):
        warp(np.ascontiguousarray(a[:, :3]), b)
    with pytest.raises(vton.InvalidInputError, match="square"):
        warp(np.ascontiguousarray(a[:, :, :, :32]), np.ascontiguousarray(b[:, :, :, :32]))
    with pytest.raises(vton.InvalidInputError):
        warp(a[0], b[0])  # 3-D


# --- U-Net ------------------------------------------------------------------------------

def test_unet_matches_original_at_two_timesteps():
    t, j = fixture("dci_viton_unet")
    atol, rtol = j["tolerance"]["atol"], j["tolerance"]["rtol"]
    c = j["constructor"]
    unet = vton.DCIVITONUNet.from_checkpoint(FIX / "dci_viton_unet_ckpt.pth", num_groups=unet_groups(j))
    assert (unet.input_channels, unet.output_channels, unet.hidden_channels, unet.time_emb_dim) == (
        c["input_channels"], c["output_channels"], c["hidden_channels"], c["time_emb_dim"])
    assert unet.num_groups == unet_groups(j) and unet.se_reduction is None
    x = t["input.x"]
    for name in ("t999", "t17"):
        tv = int(t[f"input.t_{name}"][0])
        want = t[f"output.out_{name}"]
        # An int, a 1-element array and one timestep per sample all mean the same here.
        for arg in (tv, np.array([tv]), np.array([tv, tv], dtype=np.int64), np.int64(tv)):
            out = unet(x, arg)
            assert out.shape == want.shape and out.dtype == np.float32
            np.testing.assert_allclose(out, want, atol=atol, rtol=rtol)
    # Per-sample timesteps really are per sample.
    mixed = unet(x, np.array([999, 17]))
    np.testing.assert_allclose(mixed[0], t["output.out_t999"][0], atol=atol, rtol=rtol)
    np.testing.assert_allclose(mixed[1], t["output.out_t17"][1], atol=atol, rtol=rtol)


def test_unet_of_other_widths_reads_se_reduction_from_the_weights():
    t, j = fixture("dci_viton_unet_w2")
    atol, rtol = j["tolerance"]["atol"], j["tolerance"]["rtol"]
    c = j["constructor"]
    path = FIX / "dci_viton_unet_w2.safetensors"
    # Widths left unset are the checkpoint's; the SE reduction (4 here, 16 in the original) too.
    unet = vton.DCIVITONUNet.from_checkpoint(path, num_groups=unet_groups(j))
    assert (unet.input_channels, unet.output_channels, unet.hidden_channels, unet.time_emb_dim) == (
        c["input_channels"], c["output_channels"], c["hidden_channels"], c["time_emb_dim"])
    out = unet(t["input.x"], t["input.t_tvec"])
    np.testing.assert_allclose(out, t["output.out_tvec"], atol=atol, rtol=rtol)
    np.testing.assert_allclose(unet(t["input.x"], 0), t["output.out_t0"], atol=atol, rtol=rtol)
    # Given widths and reduction that agree load the same network.
    same = vton.DCIVITONUNet.from_checkpoint(path, c["input_channels"], c["output_channels"], c["hidden_channels"],
                                             c["time_emb_dim"], unet_groups(j),
                                             int(j["patched_constants"]["DCI_SE_REDUCTION"]))
    np.testing.assert_array_equal(same(t["input.x"], 0), unet(t["input.x"], 0))
    with pytest.raises(vton.CheckpointError):
        vton.DCIVITONUNet.from_checkpoint(path, num_groups=unet_groups(j), se_reduction=16)


def test_unet_typed_errors():
    t, j = fixture("dci_viton_unet")
    path = FIX / "dci_viton_unet_ckpt.pth"
    g = unet_groups(j)
    # A width given that disagrees with the checkpoint names both values.
    with pytest.raises(vton.CheckpointError, match=r"hidden_channels=64.*hidden_channels=1"):
        vton.DCIVITONUNet.from_checkpoint(path, hidden_channels=64, num_groups=g)
    with pytest.raises(vton.CheckpointError, match=r"time_emb_dim=256.*time_emb_dim=32"):
        vton.DCIVITONUNet.from_checkpoint(path, time_emb_dim=256, num_groups=g)
    with pytest.raises(vton.CheckpointError, match=r"input_channels=6"):
        vton.DCIVITONUNet.from_checkpoint(path, input_channels=6, num_groups=g)
    # The original's 8 groups cannot split this checkpoint's hidden width of 1.
    with pytest.raises(vton.CheckpointError, match="GroupNorm"):
        vton.DCIVITONUNet.from_checkpoint(path)
    with pytest.raises(vton.VtonFileNotFoundError):
        vton.DCIVITONUNet.from_checkpoint(FIX / "no_such_unet.pth", num_groups=g)
    with pytest.raises(vton.CheckpointError):
        vton.DCIVITONUNet.from_checkpoint(FIX / "dci_viton_warping_oc3_adam.pth", num_groups=g)
    unet = vton.DCIVITONUNet.from_checkpoint(path, num_groups=g)
    x = t["input.x"]
    with pytest.raises(vton.InvalidInputError, match="UNet input"):
        unet(np.ascontiguousarray(x[:, :8]), 5)
    with pytest.raises(vton.InvalidInputError, match="timesteps"):
        unet(x, np.array([1, 2, 3]))  # neither 1 nor the batch of 2
    with pytest.raises(vton.InvalidInputError, match="integer"):
        unet(x, 0.5)
    with pytest.raises(vton.InvalidInputError, match="integer"):
        unet(x, np.zeros((2, 1), dtype=np.int64))


# --- noise scheduler --------------------------------------------------------------------

def test_scheduler_tables_and_noising_match_original():
    t, j = fixture("dci_viton_scheduler")
    lin = vton.DCIVITONScheduler()
    cos = vton.DCIVITONScheduler(timesteps=j["timesteps"], beta_schedule="cosine")
    assert (lin.timesteps, lin.beta_schedule, cos.beta_schedule) == (1000, "linear", "cosine")
    names = ["betas", "alphas", "alphas_cumprod", "sqrt_alphas_cumprod", "sqrt_one_minus_alphas_cumprod"]
    for name in names:
        got, want = getattr(lin, name), t[f"output.linear.{name}"]
        assert got.dtype == np.float32 and got.shape == (1000,)
        if name.startswith("sqrt"):
            # torch's vectorised float32 sqrt is not always correctly rounded: <= 1 ulp.
            ulps = np.abs(got.view(np.int32).astype(np.int64) - want.view(np.int32).astype(np.int64))
            assert ulps.max() <= 1, name
        else:
            np.testing.assert_array_equal(got, want, err_msg=name)  # bit-exact (FMA linspace, f64 cumprod)
        # Cosine: torch's float32 cos is not correctly rounded (one ulp of values near 1 is
        # ~3e-7 of a beta): the core test's bounds, 1e-6 absolute and 1e-3 relative.
        got, want = getattr(cos, name), t[f"output.cosine.{name}"]
        np.testing.assert_allclose(got, want, atol=1e-6, rtol=0, err_msg=name)
        np.testing.assert_allclose(got, want, atol=0, rtol=1e-3, err_msg=name)
    for n in (200, 5, 50, 1000, 7, 1):
        assert lin.sampling_timesteps(n) == t[f"output.timesteps_{n}"].tolist()
    tol = j["tolerance"]["noisy"]
    x0, noise, eps = t["input.x0"], t["input.noise"], t["input.eps"]
    t_vec = t["input.t_vec"]
    for s, kind in ((lin, "linear"), (cos, "cosine")):
        x_t, n = s.get_noisy_image(x0, t_vec, noise)
        np.testing.assert_array_equal(n, noise)  # given noise is returned, as the original
        np.testing.assert_allclose(x_t, t[f"output.{kind}.noisy_tvec"], atol=tol["atol"], rtol=tol["rtol"])
        # x0 = (x - sb eps) / sa divides by sqrt(ab_999) = 0.0064 (linear): a 1e-5 floor.
        den = s.denoise_image(t[f"output.{kind}.noisy_tvec"], t_vec, eps)
        np.testing.assert_allclose(den, t[f"output.{kind}.denoise_tvec"], atol=1e-5, rtol=1e-5)
    x_t, _ = lin.get_noisy_image(x0, int(t["input.t_scalar"]), noise)
    np.testing.assert_allclose(x_t, t["output.linear.noisy_t500"], atol=tol["atol"], rtol=tol["rtol"])


def test_scheduler_draws_seeded_noise_and_raises_typed_errors():
    s = vton.DCIVITONScheduler()
    x0 = np.linspace(-1, 1, 2 * 4 * 8 * 8, dtype=np.float32).reshape(2, 4, 8, 8)
    a, na = s.get_noisy_image(x0, 500, seed=3)
    b, nb = s.get_noisy_image(x0, 500, seed=3)
    _, nc = s.get_noisy_image(x0, 500, seed=4)
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(na, nc)
    assert na.shape == x0.shape and abs(float(na.mean())) < 0.2 and 0.8 < float(na.std()) < 1.2
    ab = s.alphas_cumprod[500]
    np.testing.assert_allclose(a, np.sqrt(ab) * x0 + np.sqrt(1 - ab) * na, atol=1e-6, rtol=1e-6)
    with pytest.raises(vton.InvalidInputError, match="beta schedule"):
        vton.DCIVITONScheduler(beta_schedule="quadratic")
    with pytest.raises(vton.InvalidInputError):
        vton.DCIVITONScheduler(timesteps=0)
    with pytest.raises(vton.InvalidInputError, match="1000"):
        s.get_noisy_image(x0, 1000)
    with pytest.raises(vton.InvalidInputError):
        s.get_noisy_image(x0, [1, 2, 3])
    with pytest.raises(vton.InvalidInputError, match="noise"):
        s.get_noisy_image(x0, 1, np.zeros((2, 4, 8, 7), np.float32))
    with pytest.raises(vton.InvalidInputError):
        s.denoise_image(x0, 1.5, x0)
    with pytest.raises(vton.InvalidInputError):
        s.sampling_timesteps(0)


# --- pipeline ---------------------------------------------------------------------------

def pipeline():
    _, j = fixture("dci_viton_unet")
    return vton.DCIVITONPipeline.from_checkpoints(FIX / "dci_viton_warping_oc3.safetensors",
                                                  FIX / "dci_viton_unet_ckpt.pth",
                                                  FIX / "dci_viton_pipeline_vae_pretrained",
                                                  num_groups=unet_groups(j))


def png(name, channels=None):
    a = np.asarray(Image.open(PIPE / f"{name}.png"), dtype=np.float32) / 255.0
    if a.ndim == 2:
        a = a[:, :, None]
    if channels is not None and a.shape[2] != channels:
        a = np.repeat(a[:, :, :1], channels, axis=2)
    return np.ascontiguousarray(a.transpose(2, 0, 1)[None])


def tiny_inputs():
    return dict(person=TINY / "image" / "00001_00.jpg", garment=TINY / "cloth" / "00001_00.jpg",
                densepose=TINY / "image-densepose" / "00001_00.jpg",
                parse=TINY / "image-parse-v3" / "00001_00.png",
                keypoints=TINY / "openpose_json" / "00001_00_keypoints.json",
                garment_mask=TINY / "cloth-mask" / "00001_00.jpg")


SMALL = dict(warp_size=64, image_size=64, steps=3)


def test_pipeline_runs_end_to_end_seeded_with_progress():
    pipe = pipeline()
    assert pipe.device == "cpu"
    seen = []
    a = pipe(**tiny_inputs(), **SMALL, seed=7, progress=lambda step, total, t: seen.append((step, total, t)))
    assert [(s, n) for s, n, _ in seen] == [(1, 3), (2, 3), (3, 3)]
    assert [t for _, _, t in seen] == vton.DCIVITONScheduler().sampling_timesteps(3)
    assert isinstance(a, vton.DCIVITONResult)
    assert a.image.shape == (64, 64, 3) and a.warped.shape == (64, 64, 3)
    assert a.image.dtype == np.float32 and 0.0 <= a.image.min() and a.image.max() <= 1.0
    person = np.asarray(Image.open(TINY / "image" / "00001_00.jpg"))
    assert a.agnostic.shape == person.shape and a.agnostic_mask.shape == person.shape[:2]
    assert a.parse_agnostic.dtype == np.uint8 and a.parse_agnostic.shape == person.shape[:2]
    # The agnostic mask covers the upper clothes (LIP 5), none of the face (13).
    parse = np.asarray(Image.open(TINY / "image-parse-v3" / "00001_00.png"))
    assert (a.agnostic_mask[parse == 5] > 0.5).mean() > 0.9
    assert (a.agnostic_mask[parse == 13] == 0).all()
    assert (a.parse_agnostic[a.agnostic_mask > 0.5] == 0).mean() > 0.9
    b = pipe(**tiny_inputs(), **SMALL, seed=7)
    np.testing.assert_array_equal(a.image, b.image)
    c = pipe(**tiny_inputs(), **SMALL, seed=8)
    assert not np.array_equal(a.image, c.image)
    np.testing.assert_array_equal(a.warped, c.warped)  # the warp does not depend on the seed
    d = pipe(**tiny_inputs(), **SMALL, seed=7, sampler="ddim")
    assert not np.array_equal(a.image, d.image) and 0.0 <= d.image.min() and d.image.max() <= 1.0
    # The garment mask estimated from the product photo when not given.
    e = pipe(**{**tiny_inputs(), "garment_mask": None}, **SMALL, seed=7)
    assert e.image.shape == (64, 64, 3)


def test_pipeline_estimates_parse_with_segformer_and_pose_with_the_bundled_models():
    pipe = pipeline()
    parser = vton.HumanParser.from_pretrained(FIX / "segformer_a_pretrained")
    inputs = {**tiny_inputs(), "parse": None, "keypoints": None}
    r = pipe(**inputs, parser=parser, **SMALL, seed=1)
    assert r.image.shape == (64, 64, 3)
    assert r.parse_agnostic.max() < 20  # LIP labels (SegFormer's 24 mapped)
    with pytest.raises(vton.InvalidInputError, match="parser"):
        pipe(**{**tiny_inputs(), "parse": None}, **SMALL)


def test_pipeline_cancel_and_typed_errors():
    pipe = pipeline()
    with pytest.raises(vton.CancelledError):
        pipe(**tiny_inputs(), **SMALL, progress=lambda step, total, t: step < 2)

    class Boom(Exception):
        pass

    def boom(step, total, t):
        raise Boom()

    with pytest.raises(Boom):
        pipe(**tiny_inputs(), **SMALL, progress=boom)
    with pytest.raises(vton.InvalidInputError, match="warp"):
        pipe(**tiny_inputs(), warp_size=48, image_size=64, steps=1)
    with pytest.raises(vton.InvalidInputError, match="sampler"):
        pipe(**tiny_inputs(), **{**SMALL, "steps": 1}, sampler="euler")
    with pytest.raises(vton.InvalidInputError, match="garment mask"):
        pipe(**{**tiny_inputs(), "garment_mask": np.ones((10, 10), np.float32)}, **SMALL)
    with pytest.raises(vton.InvalidInputError, match="parse"):
        pipe(**{**tiny_inputs(), "parse": np.full((512, 384), 21, np.float32)}, **SMALL)
    with pytest.raises(vton.InvalidInputError, match="keypoints"):
        pipe(**{**tiny_inputs(), "keypoints": np.zeros((7, 3), np.float32)}, **SMALL)
    with pytest.raises(vton.InvalidInputError, match="parser"):
        pipe(**tiny_inputs(), parser="schp.pth", **SMALL)
    with pytest.raises(vton.VtonFileNotFoundError):
        pipe(**{**tiny_inputs(), "densepose": TINY / "missing.jpg"}, **SMALL)
    with pytest.raises(vton.VtonFileNotFoundError):
        vton.DCIVITONPipeline.from_checkpoints(FIX / "dci_viton_warping_oc3.safetensors",
                                               FIX / "dci_viton_unet_ckpt.pth", FIX / "no_such_vae", num_groups=1)
    with pytest.raises(vton.CheckpointError, match="GroupNorm"):
        vton.DCIVITONPipeline.from_checkpoints(FIX / "dci_viton_warping_oc3.safetensors",
                                               FIX / "dci_viton_unet_ckpt.pth",
                                               FIX / "dci_viton_pipeline_vae_pretrained")


def test_pipeline_preprocessing_matches_the_original_drawing():
    """The agnostic image, mask and parse agnostic of the original's WarpingCloth on the
    fixture's 768x1024 photo (given parse and keypoints)."""
    t, _ = fixture("dci_viton_pipeline")
    coco = t["input.keypoints_coco17"]
    body25 = np.zeros((25, 3), np.float32)
    coco_to_body25 = [0, 16, 15, 18, 17, 5, 2, 6, 3, 7, 4, 12, 9, 13, 10, 14, 11]
    for i, b in enumerate(coco_to_body25):
        if coco[i].any():
            body25[b] = (coco[i][0], coco[i][1], 1.0)
    r = pipeline()(PIPE / "person.png", PIPE / "cloth.png", PIPE / "densepose.png", parse=PIPE / "parse.png",
                   keypoints=body25, garment_mask=PIPE / "cloth_mask.png", warp_size=64, image_size=64, steps=1)
    want_mask = np.asarray(Image.open(PIPE / "out_agnostic_mask.png")) == 255
    want_parse = np.asarray(Image.open(PIPE / "out_parse_agnostic.png"))
    want_agn = np.asarray(Image.open(PIPE / "out_agnostic.png"), dtype=np.float32) / 255.0
    drawn = int(want_mask.sum())
    diff_mask = int(((r.agnostic_mask > 0.5) != want_mask).sum())
    diff_parse = int((r.parse_agnostic != want_parse).sum())
    diff_agn = int((np.abs(r.agnostic - want_agn) > 1e-6).any(axis=2).sum())
    # vton rasterises the shapes itself (not Pillow's integer ellipse / polygon / wide-line
    # rules): pixels may differ along the outlines only. The core test measured 577 of
    # 221036 drawn pixels (0.26%); bound 1%.
    assert drawn > 100_000
    for what, d in (("mask", diff_mask), ("parse agnostic", diff_parse), ("agnostic", diff_agn)):
        assert d < 0.01 * drawn, f"{what}: {d} of {drawn}"


def test_pipeline_stages_match_the_original():
    """Warp, conditioning latent and the decoded image after 4 sampler steps, from the
    original's own stage inputs (the posterior and start noise it drew, recorded)."""
    t, j = fixture("dci_viton_pipeline")
    _, ju = fixture("dci_viton_unet")
    pipe = vton.DCIVITONPipeline.from_checkpoints(FIX / "dci_viton_warping_oc3.safetensors",
                                                  FIX / "dci_viton_unet.safetensors",
                                                  FIX / "dci_viton_pipeline_vae_pretrained",
                                                  num_groups=unet_groups(ju))
    tol = j["tolerance"]
    input_1 = np.concatenate([png("t256_cloth", 3), png("t256_cloth_mask", 1)], axis=1)
    input_2 = np.concatenate([png("t256_densepose", 3), png("t256_parse_agnostic", 3) * 15.0], axis=1)
    wc, wcm, flows = pipe.warp(input_1, input_2)
    w = tol["warped_c_cm_flow_new_im"]
    np.testing.assert_allclose(wc, t["output.warped_c"], atol=w["atol"], rtol=w["rtol"])
    np.testing.assert_allclose(wcm, t["output.warped_cm"], atol=w["atol"], rtol=w["rtol"])
    for i in range(4):
        np.testing.assert_allclose(flows[i], t[f"output.flow_list.{i}"], atol=w["atol"], rtol=w["rtol"])
    z = pipe.condition(t["output.new_im"], 512, noise=t["input.vae_sample_noise"])
    zt = tol["input_viton_z_cond_x_init"]
    np.testing.assert_allclose(z, t["output.z_cond"], atol=zt["atol"], rtol=zt["rtol"])
    with pytest.raises(vton.InvalidInputError, match="noise"):
        pipe.condition(t["output.new_im"], 512, noise=np.zeros((1, 4, 8, 8), np.float32))
    steps = int(t["output.timesteps"].shape[0])
    seen = []
    img = pipe.sample(t["output.z_cond"], t["output.mask_latent"], t["input.init_noise"], steps,
                      progress=lambda s, n, ts: seen.append(ts))
    assert seen == t["output.timesteps"].tolist()
    assert img.shape == (1, 3, 512, 512)
    o = tol["output"]
    np.testing.assert_allclose(img[:, :, ::3, ::3], t["output.image_sub3"], atol=o["atol"], rtol=o["rtol"])


# --- SegFormer human parsing ------------------------------------------------------------

def test_segformer_parser_matches_parsehuman(tmp_path):
    t, j = fixture("segformer_a")
    parser = vton.HumanParser.from_pretrained(FIX / j["folder"])
    assert parser.num_labels == j["num_labels"] and parser.device == "cpu"
    assert parser.input_size == tuple(j["photo"]["pixel_values"][2:])
    labels = parser(FIX / j["photo"]["file"])
    want = t["output.photo_labels"]
    assert labels.dtype == np.uint8 and labels.shape == want.shape == (512, 384)
    differ = int((labels != want.astype(np.uint8)).sum())
    # Only near-ties of the reference logits may flip (the core test bounds each flip by
    # the logits' error); at most 1 pixel in 2000, as there.
    assert differ * 2000 <= labels.size, differ
    assert len(np.unique(labels)) >= 10 and labels.max() < 24  # its own 24 labels, not LIP's
    with pytest.raises(vton.VtonError):
        vton.HumanParser.from_pretrained(FIX / "no_such_segformer")
    with pytest.raises(vton.VtonFileNotFoundError, match="config.json"):
        vton.HumanParser.from_pretrained(PIPE)  # a folder without config.json / weights
    # segformer_a's config with segformer_b's (other widths) weights.
    (tmp_path / "config.json").write_bytes((FIX / "segformer_a_pretrained" / "config.json").read_bytes())
    (tmp_path / "pytorch_model.bin").write_bytes((FIX / "segformer_b_pretrained" / "pytorch_model.bin").read_bytes())
    with pytest.raises(vton.CheckpointError):
        vton.HumanParser.from_pretrained(tmp_path)
