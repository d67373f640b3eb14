"""Tests of vton's raw-photo surface: pose estimation, person segmentation, TFLite models,
SCHP human parsing and try-on from the two photos alone."""
import json
import pathlib

import numpy as np
import pytest

import vton

ROOT = pathlib.Path(__file__).resolve().parents[2]
EX = ROOT / "examples"
FIX = ROOT / "tests" / "fixtures"
MODELS = ROOT / "vton-core" / "models" / "mediapipe"
P = EX / "person" / "openvto_ai_avatar1_upper"
G = EX / "garment" / "openvto_shirt2_front"
H, W = 512, 384

# The example's keypoints were made with MediaPipe; vton's estimate agrees within this
# many pixels on the points both call confident (measured: < 2 px).
KEYPOINT_TOLERANCE_PX = 4.0

NOSE, NECK, RSHOULDER, LSHOULDER, MIDHIP = 0, 1, 2, 5, 8


@pytest.fixture(scope="module")
def pose():
    return vton.estimate_pose(f"{P}.png")


def _iou(a, b):
    a, b = a > 0.5, b > 0.5
    return (a & b).sum() / max((a | b).sum(), 1)


def test_estimate_pose_shapes_and_sane_values(pose):
    assert isinstance(pose, vton.PoseEstimate)
    lm, kp, mask = pose.landmarks, pose.keypoints, pose.mask
    assert lm.shape == (33, 5) and lm.dtype == np.float32
    assert kp.shape == (25, 3) and kp.dtype == np.float32
    assert mask.shape == (H, W) and mask.dtype == np.float32
    assert pose.image_size == (H, W)
    assert 0.5 < pose.score <= 1.0
    # visibility and presence are probabilities; landmark 0 and BODY_25 point 0 are the nose.
    assert ((lm[:, 3:] >= 0) & (lm[:, 3:] <= 1)).all()
    np.testing.assert_allclose(kp[NOSE, :2], lm[0, :2], atol=1e-4)
    assert (kp[:MIDHIP + 1, 2] > 0.5).all()
    lo, hi = sorted([kp[RSHOULDER, 0], kp[LSHOULDER, 0]])
    assert lo < kp[NECK, 0] < hi
    assert kp[NOSE, 1] < kp[NECK, 1] < kp[MIDHIP, 1]
    found = kp[:, 2] > 0
    assert ((kp[found, 0] >= 0) & (kp[found, 0] < W) & (kp[found, 1] >= 0) & (kp[found, 1] < H)).all()
    assert 0.0 <= mask.min() and mask.max() <= 1.0
    assert 0.1 < mask.mean() < 0.9
    x, y = kp[NECK, :2].astype(int)
    assert mask[y, x] > 0.5 and mask[0, 0] < 0.5


def test_estimate_pose_agrees_with_the_examples_keypoints(pose):
    raw = json.load(open(f"{P}_keypoints.json"))["people"][0]["pose_keypoints_2d"]
    ref = np.asarray(raw, dtype=np.float32).reshape(25, 3)
    kp = pose.keypoints
    both = (kp[:, 2] > 0.5) & (ref[:, 2] > 0.5)
    assert both.sum() >= 12
    dist = np.hypot(*(kp[both, :2] - ref[both, :2]).T)
    assert dist.max() <= KEYPOINT_TOLERANCE_PX, dist
    # The estimated mask agrees with the example's person mask.
    from PIL import Image
    ref_mask = np.asarray(Image.open(f"{P}_mask.png").convert("L"), dtype=np.float32) / 255
    assert _iou(pose.mask, ref_mask) > 0.98  # the example's mask is MediaPipe's too


def test_estimate_pose_accepts_pil_arrays_and_uint8(pose):
    from PIL import Image
    im = Image.open(f"{P}.png")
    for x in (im, np.asarray(im.convert("RGB")), np.asarray(im.convert("RGB"), dtype=np.float32) / 255):
        other = vton.estimate_pose(x)
        np.testing.assert_allclose(other.keypoints, pose.keypoints, atol=1e-4)
        np.testing.assert_allclose(other.mask, pose.mask, atol=1e-5)
    first = vton.estimate_pose(f"{P}.png", person=0)
    np.testing.assert_allclose(first.keypoints, pose.keypoints, atol=1e-4)


def test_estimate_pose_errors():
    with pytest.raises(vton.InvalidInputError):
        vton.estimate_pose(f"{P}.png", person=5)
    with pytest.raises(vton.InvalidInputError):
        vton.estimate_pose(f"{P}.png", person=-1)
    with pytest.raises(ValueError):  # no person on a black photo
        vton.estimate_pose(np.zeros((128, 96, 3), dtype=np.uint8))
    with pytest.raises(vton.InvalidInputError):
        vton.estimate_pose(np.zeros((32, 32), dtype=np.float32))
    with pytest.raises(vton.InvalidInputError):
        vton.estimate_pose(np.full((32, 32, 3), np.nan, dtype=np.float32))
    with pytest.raises(vton.VtonFileNotFoundError):
        vton.estimate_pose(EX / "person" / "nobody.png")


def test_segment_person(pose):
    m = vton.segment_person(f"{P}.png")
    assert m.shape == (H, W) and m.dtype == np.float32
    assert 0.0 <= m.min() and m.max() <= 1.0
    assert 0.1 < m.mean() < 0.9
    assert _iou(m, pose.mask) > 0.9
    ml = vton.segment_person(f"{P}.png", landscape=True)
    assert ml.shape == (H, W) and _iou(ml, m) > 0.9
    with pytest.raises(vton.InvalidInputError):
        vton.segment_person(np.zeros((4, 4, 4), dtype=np.float32))


def test_tflite_model_selfie_segmentation():
    model = vton.TFLiteModel(MODELS / "selfie_segmentation.tflite")
    assert len(model.input_names) == 1
    assert all(isinstance(n, str) and n for n in model.input_names + model.output_names)
    assert model.input_shapes == [(1, 256, 256, 3)]
    assert len(model.output_names) == 1
    out = model(np.zeros((1, 256, 256, 3), dtype=np.float32))
    assert list(out) == model.output_names
    y = out[model.output_names[0]]
    assert y.shape == model.output_shapes[0] and y.dtype == np.float32
    assert np.prod(y.shape) == 256 * 256
    # On a person photo the model separates person from background (sigmoid output).
    from PIL import Image
    im = np.asarray(Image.open(f"{P}.png").convert("RGB").resize((256, 256), Image.BILINEAR), dtype=np.float32) / 255
    y = model(im[None])[model.output_names[0]].reshape(256, 256)
    assert 0.0 <= y.min() and y.max() <= 1.0
    assert y[128, 128] > 0.5 and y[2, 2] < 0.5
    # float64 and nested lists are converted
    out64 = model(np.zeros((1, 256, 256, 3)))
    np.testing.assert_allclose(out64[model.output_names[0]], out[model.output_names[0]])


def test_tflite_model_errors(tmp_path):
    model = vton.TFLiteModel(str(MODELS / "selfie_segmentation.tflite"))
    with pytest.raises(vton.InvalidInputError):
        model(np.zeros((1, 128, 128, 3), dtype=np.float32))  # wrong shape
    with pytest.raises(vton.InvalidInputError):
        model()  # wrong count
    with pytest.raises(vton.InvalidInputError):
        model(np.zeros((1, 256, 256, 3)), np.zeros((1, 256, 256, 3)))
    with pytest.raises(vton.InvalidInputError):
        model("not an array")
    bad = tmp_path / "bad.tflite"
    bad.write_bytes(b"\x10\x00\x00\x00TFL3" + bytes(range(256)) * 4)
    with pytest.raises(vton.CheckpointError):
        vton.TFLiteModel(bad)
    good = (MODELS / "selfie_segmentation.tflite").read_bytes()
    cut = tmp_path / "cut.tflite"
    cut.write_bytes(good[: len(good) // 3])
    with pytest.raises(vton.CheckpointError):
        vton.TFLiteModel(cut)
    with pytest.raises(vton.VtonFileNotFoundError):
        vton.TFLiteModel(tmp_path / "missing.tflite")


def _read_safetensors(path):
    data = open(path, "rb").read()
    n = int.from_bytes(data[:8], "little")
    header = json.loads(data[8:8 + n])
    out = {}
    for k, v in header.items():
        if k != "__metadata__" and v["dtype"] == "F32" and not k.startswith("weights."):
            a, b = v["data_offsets"]
            out[k] = np.frombuffer(data[8 + n + a:8 + n + b], dtype="<f4").reshape(v["shape"])
    return out


SCHP = FIX / "schp"


@pytest.fixture(scope="module")
def parser():
    # The reduced-width SCHP fixture in the released checkpoint's container, at the
    # fixture's reduced input size (fast).
    spec = json.load(open(SCHP / "schp_lip.json"))["e2e"]["cases"]["e2e_121x97"]
    return vton.HumanParser.from_checkpoint(SCHP / "schp_lip.pth", input_size=tuple(spec["input_size_hw"]))


def test_human_parser_matches_simple_extractor(parser):
    desc = json.load(open(SCHP / "schp_lip.json"))
    t = _read_safetensors(SCHP / "schp_lip.safetensors")
    photo = t["input.e2e_121x97.photo_rgb"].astype(np.uint8)
    want = t["output.e2e_121x97.labels"]
    assert parser.num_labels == 20 and parser.input_size == (121, 97)
    labels = parser(photo)
    assert labels.shape == want.shape and labels.dtype == np.uint8
    assert labels.max() < 20
    agree = 100.0 * (labels == want).mean()
    assert agree >= desc["tolerance"]["e2e_label_agreement_min_pct"], agree


def test_human_parser_errors(tmp_path):
    with pytest.raises(vton.VtonFileNotFoundError):
        vton.HumanParser.from_checkpoint(tmp_path / "missing.pth")
    with pytest.raises(FileNotFoundError):
        vton.HumanParser.from_checkpoint(str(tmp_path / "missing.pth"))
    with pytest.raises(vton.CheckpointError):
        vton.HumanParser.from_checkpoint(f"{P}.png")  # not a checkpoint
    with pytest.raises(vton.CheckpointError):
        vton.HumanParser.from_checkpoint(FIX / "gan" / "cpvton_gmm.pth")  # another model
    with pytest.raises(vton.InvalidInputError):
        vton.HumanParser.from_checkpoint(SCHP / "schp_lip.pth", input_size=(8, 8))
    with pytest.raises(vton.InvalidInputError):
        vton.HumanParser.from_checkpoint(SCHP / "schp_lip.pth", input_size="big")


def test_try_on_from_the_two_photos_alone(pose):
    res = vton.try_on(f"{P}.png", f"{G}.png")
    assert res.image.shape == (H, W, 3) and res.image.dtype == np.float32
    assert res.warped_mask.shape == (H, W) and res.warped_mask.sum() > 1000
    from PIL import Image
    orig = np.asarray(Image.open(f"{P}.png").convert("RGB"), dtype=np.float32) / 255
    assert np.abs(res.image - orig).mean() > 0.01
    x, y = pose.keypoints[NOSE, :2].astype(int)
    np.testing.assert_allclose(res.image[y, x], orig[y, x], atol=1e-6)  # the head is kept
    # Estimation is what estimate_pose gives: passing its outputs changes nothing.
    given = vton.try_on(f"{P}.png", f"{G}.png", pose.keypoints, person_mask=pose.mask)
    np.testing.assert_allclose(given.image, res.image, atol=1e-6)


def test_try_on_given_inputs_take_precedence(pose):
    # All-zero keypoints are kept (not replaced by estimates): no shoulders -> error.
    with pytest.raises(vton.InvalidInputError, match="keypoints"):
        vton.try_on(f"{P}.png", f"{G}.png", np.zeros((25, 3), dtype=np.float32))
    # An empty person mask is kept too (not replaced by the estimated one) -> error.
    with pytest.raises(vton.InvalidInputError, match="mask"):
        vton.try_on(f"{P}.png", f"{G}.png", person_mask=np.zeros((H, W), dtype=np.float32))
    # Keypoints moved 25 px to the right move the garment with them.
    moved = pose.keypoints.copy()
    moved[moved[:, 2] > 0, 0] += 25
    est = vton.try_on(f"{P}.png", f"{G}.png")
    given = vton.try_on(f"{P}.png", f"{G}.png", moved)

    def cx(m):
        return (m * np.arange(m.shape[1])).sum() / m.sum()

    assert cx(given.warped_mask) - cx(est.warped_mask) > 12
    with pytest.raises(vton.InvalidInputError):
        vton.try_on(np.zeros((128, 96, 3), dtype=np.uint8), f"{G}.png")  # nobody to dress
    with pytest.raises(vton.InvalidInputError):
        vton.try_on(f"{P}.png", f"{G}.png", parser="schp.pth")


def test_try_on_with_parser(parser, pose):
    res = vton.try_on(f"{P}.png", f"{G}.png", parser=parser)
    assert res.image.shape == (H, W, 3)
    # A given parse takes precedence over the parser.
    labels = parser(f"{P}.png")
    assert labels.shape == (H, W)
    again = vton.try_on(f"{P}.png", f"{G}.png", parse=labels, parser=parser)
    np.testing.assert_allclose(again.image, res.image, atol=1e-6)
