"""Builds tests/fixtures/vitonhd_tiny: a VITON-HD / HR-VITON test set in the original
layout, made from the bundled example photos (examples/), at 512x384.

Photos, garments, masks and keypoints are real (see examples/SOURCES.md). The label
maps, DensePose images and agnostic images are synthesised from the person mask and
the keypoints (no parser or DensePose model runs here): they have the right formats
(palette PNG with LIP labels, RGB JPEGs) and plausible regions, which is what a reader
and a batch command need. Run: python3 scripts/make_tiny_vitonhd.py
"""
import json, os
import numpy as np
from PIL import Image, ImageDraw

W, H = 384, 512
ROOT = "tests/fixtures/vitonhd_tiny"
PERSONS = [("openvto_ai_avatar1_upper", "00001_00"), ("openvto_ai_avatar2_upper", "00002_00")]
CLOTHES = [("openvto_shirt1_front", "00001_00"), ("openvto_shirt2_front", "00002_00")]
for d in ["image", "cloth", "cloth-mask", "image-parse-v3", "image-parse-agnostic-v3.2",
          "openpose_img", "openpose_json", "image-densepose", "agnostic-v3.2"]:
    os.makedirs(os.path.join(ROOT, "test", d), exist_ok=True)


def letterbox(im, fill, resample):
    s = min(W / im.width, H / im.height)
    nw, nh = round(im.width * s), round(im.height * s)
    out = Image.new(im.mode, (W, H), fill)
    out.paste(im.resize((nw, nh), resample), ((W - nw) // 2, (H - nh) // 2))
    return out, s, (W - nw) // 2, (H - nh) // 2


def lip_palette():
    colors = [(0, 0, 0), (128, 0, 0), (255, 0, 0), (0, 85, 0), (170, 0, 51), (255, 85, 0),
              (0, 0, 85), (0, 119, 221), (85, 85, 0), (0, 85, 85), (85, 51, 0), (52, 86, 128),
              (0, 128, 0), (0, 0, 255), (51, 170, 221), (0, 255, 255), (85, 255, 170),
              (170, 255, 85), (255, 255, 0), (255, 170, 0)]
    return [c for rgb in colors for c in rgb] + [0] * (768 - 60)


def save_labels(a, path):
    im = Image.fromarray(a.astype(np.uint8), "P")
    im.putpalette(lip_palette())
    im.save(path)


for src, name in PERSONS:
    im, s, ox, oy = letterbox(Image.open(f"examples/person/{src}.png").convert("RGB"), (255, 255, 255), Image.BILINEAR)
    mask, _, _, _ = letterbox(Image.open(f"examples/person/{src}_mask.png").convert("L"), 0, Image.BILINEAR)
    im.save(f"{ROOT}/test/image/{name}.jpg", quality=95)
    kp = json.load(open(f"examples/person/{src}_keypoints.json"))
    pts = np.array(kp["people"][0]["pose_keypoints_2d"], dtype=np.float64).reshape(-1, 3)
    present = pts[:, 2] > 0
    pts[present, 0] = pts[present, 0] * s + ox
    pts[present, 1] = pts[present, 1] * s + oy
    kp["people"] = [{"person_id": [-1], "pose_keypoints_2d": [round(float(v), 2) for v in pts.reshape(-1)]}]
    kp["source"] = kp.get("source", "") + "; letterboxed to 384x512 for vitonhd_tiny"
    json.dump(kp, open(f"{ROOT}/test/openpose_json/{name}_keypoints.json", "w"))
    P = lambda i: tuple(pts[i, :2]) if pts[i, 2] > 0 else None
    body = np.array(mask) >= 128
    # Synthesised LIP parse: arms (14 left, 15 right) as capsules along the limbs,
    # face (13) and hair (2) around the head, upper clothes (5) on the torso, pants (9)
    # below the hips; restricted to the person mask.
    lab = Image.new("L", (W, H), 0)
    d = ImageDraw.Draw(lab)
    neck, nose = P(1), P(0)
    sw = np.hypot(*(np.array(P(2)) - np.array(P(5)))) if P(2) and P(5) else 80
    d.rectangle((0, 0, W, H), fill=5)
    hip_y = max([p[1] for p in [P(8), P(9), P(12)] if p] or [H])
    d.rectangle((0, hip_y, W, H), fill=9)
    for a, b, label in [(2, 3, 15), (3, 4, 15), (5, 6, 14), (6, 7, 14)]:
        if P(a) and P(b):
            d.line([P(a), P(b)], fill=label, width=int(sw * 0.28))
    if nose and neck:
        r = 0.75 * np.hypot(nose[0] - neck[0], nose[1] - neck[1])
        d.ellipse((nose[0] - r, nose[1] - 1.3 * r, nose[0] + r, nose[1] + 0.8 * r), fill=2)
        d.ellipse((nose[0] - 0.7 * r, nose[1] - 0.8 * r, nose[0] + 0.7 * r, nose[1] + 0.8 * r), fill=13)
        d.rectangle((neck[0] - 0.25 * sw, nose[1] + 0.7 * r, neck[0] + 0.25 * sw, neck[1] + 0.1 * sw), fill=10)
    parse = np.where(body, np.array(lab), 0)
    save_labels(parse, f"{ROOT}/test/image-parse-v3/{name}.png")
    # Parse-agnostic: upper clothes, neck and arms removed (VITON-HD's get_parse_agnostic idea).
    pa = parse.copy()
    pa[np.isin(pa, [5, 6, 7, 10, 14, 15])] = 0
    save_labels(pa, f"{ROOT}/test/image-parse-agnostic-v3.2/{name}.png")
    # DensePose-like image: a colour per body region.
    dp_colors = {0: (0, 0, 0), 2: (20, 80, 200), 13: (30, 90, 220), 10: (60, 120, 200), 5: (120, 200, 40),
                 9: (200, 160, 30), 14: (230, 60, 60), 15: (60, 230, 160)}
    dp = np.zeros((H, W, 3), np.uint8)
    for k, c in dp_colors.items():
        dp[parse == k] = c
    Image.fromarray(dp).save(f"{ROOT}/test/image-densepose/{name}.jpg", quality=95)
    # Agnostic image: the photo with the try-on region painted grey.
    ag = np.array(im).copy()
    ag[np.isin(parse, [5, 6, 7, 10, 14, 15])] = 128
    Image.fromarray(ag).save(f"{ROOT}/test/agnostic-v3.2/{name}.jpg", quality=95)
    rend = Image.new("RGB", (W, H))
    rd = ImageDraw.Draw(rend)
    for a, b in [(0, 1), (1, 2), (2, 3), (3, 4), (1, 5), (5, 6), (6, 7), (1, 8), (8, 9), (8, 12)]:
        if P(a) and P(b):
            rd.line([P(a), P(b)], fill=(255, 0, 0), width=4)
    rend.save(f"{ROOT}/test/openpose_img/{name}_rendered.png")

for src, name in CLOTHES:
    c, _, _, _ = letterbox(Image.open(f"examples/garment/{src}.png").convert("RGB"), (255, 255, 255), Image.BILINEAR)
    m, _, _, _ = letterbox(Image.open(f"examples/garment/{src}_mask.png").convert("L"), 0, Image.BILINEAR)
    c.save(f"{ROOT}/test/cloth/{name}.jpg", quality=95)
    m.save(f"{ROOT}/test/cloth-mask/{name}.jpg", quality=95)

with open(f"{ROOT}/test_pairs.txt", "w") as f:
    f.write("00001_00.jpg 00002_00.jpg\n00002_00.jpg 00001_00.jpg\n")
print("written", ROOT)
