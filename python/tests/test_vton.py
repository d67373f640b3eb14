"""Tests of the Python surface of vton."""
import json
import pathlib

import numpy as np
import pytest

import vton

ROOT = pathlib.Path(__file__).resolve().parents[2]
EX = ROOT / "examples"
FIX = ROOT / "tests" / "fixtures"
P = EX / "person" / "openvto_ai_avatar1_upper"
G = EX / "garment" / "openvto_shirt2_front"


def test_try_on_paths_and_arrays():
    res = vton.try_on(f"{P}.png", f"{G}.png", f"{P}_keypoints.json", person_mask=f"{P}_mask.png",
                      garment_mask=f"{G}_mask.png")
    assert res.image.shape == (512, 384, 3) and res.image.dtype == np.float32
    assert res.agnostic_mask.shape == (512, 384) and res.warped_mask.shape == (512, 384)
    assert res.warped_garment.shape == (512, 384, 3)
    assert 0.0 <= res.image.min() and res.image.max() <= 1.0
    assert res.warped_mask.sum() > 1000
    from PIL import Image
    person = Image.open(f"{P}.png")
    kp = vton.read_keypoints(f"{P}_keypoints.json")
    res2 = vton.try_on(person, np.asarray(Image.open(f"{G}.png")), kp, person_mask=np.asarray(Image.open(f"{P}_mask.png")),
                       garment_mask=Image.open(f"{G}_mask.png"))
    np.testing.assert_allclose(res2.image, res.image, atol=1e-6)
    # The try-on changed the torso but not the head.
    orig = np.asarray(person, dtype=np.float32) / 255
    x, y = kp[0, :2].astype(int)
    np.testing.assert_allclose(res.image[y, x], orig[y, x], atol=1e-6)
    assert np.abs(res.image - orig).mean() > 0.01


def test_read_keypoints():
    kp = vton.read_keypoints(f"{P}_keypoints.json")
    assert kp.shape == (25, 3)
    raw = json.load(open(f"{P}_keypoints.json"))["people"][0]["pose_keypoints_2d"]
    np.testing.assert_allclose(kp.ravel(), np.asarray(raw, dtype=np.float32))
    with pytest.raises(vton.VtonError):
        vton.read_keypoints(f"{P}_keypoints.json", person=3)


def test_grid_sample_against_numpy_reference():
    ref = json.load(open(FIX / "warp_reference.json"))["grid_sample"]
    inp = np.asarray(ref["input"], dtype=np.float32).reshape(ref["input_shape"])
    grid = np.asarray(ref["grid"], dtype=np.float32).reshape(ref["grid_shape"])
    for case in ref["cases"]:
        out = vton.grid_sample(inp, grid, mode=case["mode"], padding_mode=case["padding_mode"],
                               align_corners=case["align_corners"])
        np.testing.assert_allclose(out.ravel(), np.asarray(case["output"], dtype=np.float32), atol=1e-5, rtol=1e-5)


def _read_safetensors(path):
    data = open(path, "rb").read()
    n = int.from_bytes(data[:8], "little")
    header = json.loads(data[8:8 + n])
    out = {}
    for k, v in header.items():
        if k != "__metadata__" and v["dtype"] in ("F32", "I64", "U8"):
            a, b = v["data_offsets"]
            dt = {"F32": "<f4", "I64": "<i8", "U8": "u1"}[v["dtype"]]
            out[k] = np.frombuffer(data[8 + n + a:8 + n + b], dtype=dt).reshape(v["shape"])
    return out


def test_tps_grid_gen_matches_cpvton_fixture():
    t = _read_safetensors(FIX / "cpvton_tps.safetensors")
    theta, grid = t["input.theta"], t["output.grid"]
    gen = vton.TpsGridGen(grid.shape[1], grid.shape[2], grid_size=int(round((theta.shape[1] // 2) ** 0.5)))
    out = gen(theta)
    assert out.shape == grid.shape
    np.testing.assert_allclose(out, grid, atol=2e-5, rtol=1e-5)
    with pytest.raises(ValueError):
        gen(np.zeros((1, 7), dtype=np.float32))


def test_errors_are_typed():
    with pytest.raises(FileNotFoundError):
        vton.try_on("/nonexistent.png", f"{G}.png", f"{P}_keypoints.json", person_mask=f"{P}_mask.png")
    with pytest.raises(vton.VtonFileNotFoundError):
        vton.read_keypoints("/nonexistent.json")
    with pytest.raises(ValueError):
        vton.grid_sample(np.zeros((1, 1, 4, 4), np.float32), np.zeros((1, 4, 4, 3), np.float32))
    with pytest.raises(vton.InvalidInputError):
        vton.grid_sample(np.zeros((1, 1, 4, 4), np.float32), np.zeros((1, 4, 4, 2), np.float32), mode="cubic")
    kp = vton.read_keypoints(f"{P}_keypoints.json")
    kp[2, 2] = 0  # drop the right shoulder
    with pytest.raises(vton.VtonError, match="RShoulder"):
        vton.try_on(f"{P}.png", f"{G}.png", kp, person_mask=f"{P}_mask.png")
    with pytest.raises(ValueError, match="person mask"):
        vton.try_on(f"{P}.png", f"{G}.png", f"{P}_keypoints.json", person_mask=np.zeros((10, 10), np.float32))
    # (Without a person mask the mask is estimated: see test_estimate.py.)
    with pytest.raises(ValueError, match="keypoints"):
        vton.try_on(f"{P}.png", f"{G}.png", np.zeros((7, 3), np.float32), person_mask=f"{P}_mask.png")
    assert issubclass(vton.InvalidInputError, vton.VtonError)
