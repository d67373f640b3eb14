"""CP-VTON+ and HR-VITON from Python against the original code's outputs
(tests/fixtures/gan, made from ../shared/fixtures; weights in .pth files as the authors
save them). Constructor arguments come from each fixture's JSON."""
import json
import pathlib

import numpy as np
import pytest

import vton
from test_vton import _read_safetensors

ROOT = pathlib.Path(__file__).resolve().parents[2]
GAN = ROOT / "tests" / "fixtures" / "gan"
EX = ROOT / "examples"
TINY = ROOT / "tests" / "fixtures" / "vitonhd_tiny" / "test"


def case(name):
    t = _read_safetensors(GAN / f"{name}.safetensors")
    j = json.loads((GAN / f"{name}.json").read_text())
    return t, j["tolerance"]["atol"], j["tolerance"]["rtol"]


def test_gmm_matches_cpvton():
    t, atol, rtol = case("cpvton_gmm")
    gmm = vton.GMM.from_checkpoint(GAN / "cpvton_gmm.pth", grid_size=5, fine_height=256, fine_width=192)
    grid, theta = gmm(t["input.agnostic"], t["input.cm"])
    np.testing.assert_allclose(theta, t["output.theta"], atol=atol, rtol=rtol)
    np.testing.assert_allclose(grid, t["output.grid"], atol=atol, rtol=rtol)
    with pytest.raises(ValueError):
        gmm(t["input.agnostic"][:, :3], t["input.cm"])


def test_tom_matches_cpvton():
    t, atol, rtol = case("cpvton_tom")
    tom = vton.TOM.from_checkpoint(GAN / "cpvton_tom.pth", input_nc=26, output_nc=4, num_downs=6, ngf=8,
                                   norm_layer="instance")
    p_rendered, m_composite, p_tryon = tom(t["input.agnostic"], t["input.c"], t["input.cm"])
    np.testing.assert_allclose(p_rendered, t["output.p_rendered"], atol=atol, rtol=rtol)
    np.testing.assert_allclose(m_composite, t["output.m_composite"], atol=atol, rtol=rtol)
    np.testing.assert_allclose(p_tryon, t["output.p_tryon"], atol=atol, rtol=rtol)
    with pytest.raises(vton.CheckpointError, match="model.model.0.weight"):
        vton.TOM.from_checkpoint(GAN / "cpvton_tom.pth")  # released ngf=64 vs an ngf=8 file
    with pytest.raises(ValueError, match="norm_layer"):
        vton.TOM.from_checkpoint(GAN / "cpvton_tom.pth", ngf=8, norm_layer="group")


def test_condition_generator_matches_hrviton():
    t, atol, rtol = case("hrviton_tocg")
    tocg = vton.ConditionGenerator.from_checkpoint(GAN / "hrviton_tocg.pth", input1_nc=4, input2_nc=16, output_nc=13,
                                                   ngf=8, norm_layer="batch", warp_feature="T1", out_layer="relu",
                                                   upsample="bilinear")
    flow_list, fake_segmap, warped_cloth, warped_cloth_mask = tocg(t["input.input1"], t["input.input2"])
    assert len(flow_list) == 5
    for i, f in enumerate(flow_list):
        np.testing.assert_allclose(f, t[f"output.flow_list.{i}"], atol=atol, rtol=rtol)
    np.testing.assert_allclose(fake_segmap, t["output.fake_segmap"], atol=atol, rtol=rtol)
    np.testing.assert_allclose(warped_cloth, t["output.warped_c"], atol=atol, rtol=rtol)
    np.testing.assert_allclose(warped_cloth_mask, t["output.warped_cm"], atol=atol, rtol=rtol)


@pytest.mark.parametrize("name", ["hrviton_gen.pth", "hrviton_gen_renamed.safetensors"])
def test_generator_matches_hrviton(name):
    t, atol, rtol = case("hrviton_spade_gen")
    gen = vton.HRVitonGenerator.from_checkpoint(GAN / name, input_nc=9, ngf=2, norm_G="spectralaliasinstance",
                                                num_upsampling_layers="most", gen_semantic_nc=7, fine_height=256,
                                                fine_width=128)
    out = gen(t["input.x"], t["input.seg"])
    np.testing.assert_allclose(out, t["output.out"], atol=atol, rtol=rtol)
    with pytest.raises(vton.UnsupportedError):
        vton.HRVitonGenerator.from_checkpoint(GAN / name, ngf=2, num_upsampling_layers="normal")


def test_bad_checkpoints_raise_checkpoint_error(tmp_path):
    with pytest.raises(vton.CheckpointError):
        vton.GMM.from_checkpoint(EX / "person" / "mpl_grace_hopper.png")
    cut = tmp_path / "cut.pth"
    cut.write_bytes((GAN / "cpvton_gmm.pth").read_bytes()[:100_000])
    with pytest.raises(vton.CheckpointError):
        vton.GMM.from_checkpoint(cut)
    with pytest.raises(vton.CheckpointError, match="extractionA"):
        vton.GMM.from_checkpoint(GAN / "hrviton_tocg.pth")
    with pytest.raises(vton.CheckpointError):
        vton.GMM.from_checkpoint(ROOT / "tests" / "fixtures" / "malicious.pth")
    with pytest.raises(FileNotFoundError):
        vton.ConditionGenerator.from_checkpoint(tmp_path / "missing.pth")


def test_hrviton_pipeline_matches_test_generator():
    t, atol, rtol = case("hrviton_pipeline")
    pipe = vton.HRVitonPipeline.from_checkpoints(GAN / "hrviton_tocg.pth", GAN / "hrviton_gen.pth", tocg_ngf=8, ngf=2,
                                                 fine_height=256, fine_width=128)
    out = pipe.run(t["input.cloth"], t["input.cloth_mask"], t["input.parse_agnostic"], t["input.densepose"],
                   t["input.agnostic"], seed=None)
    np.testing.assert_allclose(out["warped_cloth"], t["output.warped_cloth"], atol=atol, rtol=rtol)
    np.testing.assert_allclose(out["warped_clothmask"], t["output.warped_clothmask"], atol=atol, rtol=rtol)
    clear = t["output.fake_parse_margin"] > 1e-3
    np.testing.assert_array_equal(out["fake_parse"][clear], t["output.fake_parse"][clear])
    bad = ~np.isclose(out["output"], t["output.output"], atol=atol, rtol=rtol)
    assert bad.mean() < 1e-3


def test_pipelines_on_images():
    cp = vton.CPVTONPipeline.from_checkpoints(GAN / "cpvton_gmm.pth", GAN / "cpvton_tom.pth", ngf=8)
    r = cp(EX / "person" / "mpl_grace_hopper.png", EX / "garment" / "openvto_shirt1_front.png",
           EX / "person" / "mpl_grace_hopper_keypoints.json", EX / "garment" / "openvto_shirt1_front_mask.png",
           person_mask=EX / "person" / "mpl_grace_hopper_mask.png")
    assert r.image.shape == (256, 192, 3) and r.warped_mask.shape == (256, 192)
    want = r.rendered * (1 - r.composition_mask[..., None]) + r.warped_cloth * r.composition_mask[..., None]
    np.testing.assert_allclose(r.image, want, atol=2e-3)
    with pytest.raises(ValueError):
        cp(EX / "person" / "mpl_grace_hopper.png", EX / "garment" / "openvto_shirt1_front.png",
           EX / "person" / "mpl_grace_hopper_keypoints.json", EX / "garment" / "openvto_shirt1_front_mask.png")
    hr = vton.HRVitonPipeline.from_checkpoints(GAN / "hrviton_tocg.pth", GAN / "hrviton_gen.pth", tocg_ngf=8, ngf=2,
                                               fine_height=256, fine_width=128)
    r = hr(TINY / "cloth" / "00002_00.jpg", TINY / "cloth-mask" / "00002_00.jpg",
           TINY / "image-parse-agnostic-v3.2" / "00001_00.png", TINY / "image-densepose" / "00001_00.jpg",
           TINY / "agnostic-v3.2" / "00001_00.jpg")
    assert r.image.shape == (256, 128, 3) and np.isfinite(r.image).all()
    assert hr.fine_size == (256, 128)


def _write_safetensors(path, tensors):
    header, offset, blobs = {}, 0, []
    for k, v in tensors.items():
        b = np.ascontiguousarray(v, dtype="<f4").tobytes()
        header[k] = {"dtype": "F32", "shape": list(v.shape), "data_offsets": [offset, offset + len(b)]}
        offset += len(b)
        blobs.append(b)
    h = json.dumps(header).encode()
    h += b" " * (-len(h) % 8)
    path.write_bytes(len(h).to_bytes(8, "little") + h + b"".join(blobs))


def test_generator_more_mode_has_no_last_block(tmp_path):
    # 'more' builds the same blocks as 'most' without up_4; conv_img then reads ngf channels.
    t = _read_safetensors(GAN / "hrviton_gen_renamed.safetensors")
    w = {k: v for k, v in t.items() if not k.startswith("up_4.")}
    w["conv_img.weight"] = np.random.default_rng(0).standard_normal((3, 2, 3, 3)).astype(np.float32)
    _write_safetensors(tmp_path / "more.safetensors", w)
    gen = vton.HRVitonGenerator.from_checkpoint(tmp_path / "more.safetensors", ngf=2, num_upsampling_layers="more",
                                                fine_height=128, fine_width=64)
    x = np.random.default_rng(1).uniform(-1, 1, (1, 9, 128, 64)).astype(np.float32)
    seg = np.zeros((1, 7, 128, 64), np.float32)
    seg[:, 0] = 1
    out = gen(x, seg)
    assert out.shape == (1, 3, 128, 64) and np.all(np.abs(out) <= 1)
    # The 'most' checkpoint in 'more' mode: conv_img reads a different width, named.
    with pytest.raises(vton.CheckpointError, match="conv_img.weight"):
        vton.HRVitonGenerator.from_checkpoint(GAN / "hrviton_gen.pth", ngf=2, num_upsampling_layers="more",
                                              fine_height=128, fine_width=64)


def test_a_model_is_found_under_its_prefix_in_a_combined_file(tmp_path):
    # e.g. {"tocg": ..., "generator": ...} saved as one file: the generator's keys are selected.
    t, atol, rtol = case("hrviton_spade_gen")
    w = _read_safetensors(GAN / "hrviton_gen_renamed.safetensors")
    combined = {f"generator.{k}": v for k, v in w.items()}
    combined["tocg.conv1.0.bias"] = np.zeros(3, np.float32)
    _write_safetensors(tmp_path / "both.safetensors", combined)
    gen = vton.HRVitonGenerator.from_checkpoint(tmp_path / "both.safetensors", ngf=2, fine_height=256, fine_width=128)
    np.testing.assert_allclose(gen(t["input.x"], t["input.seg"]), t["output.out"], atol=atol, rtol=rtol)
