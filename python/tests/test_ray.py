"""vton.ray: the catalogue pipeline on a local Ray cluster the test starts itself.

Ray is installed in the CI virtual environment (scripts/test-all.sh), so a missing Ray
fails this module instead of skipping it.
"""
import json
import os
import pathlib

import numpy as np
import pytest
import ray
from PIL import Image

import vton
import vton.ray as vray

ROOT = pathlib.Path(__file__).resolve().parents[2]
EX = ROOT / "examples"
PERSONS = ["openvto_ai_avatar1_upper", "openvto_ai_avatar2_upper"]
GARMENTS = ["openvto_shirt2_front", "openvto_jacket1_front"]


@pytest.fixture(scope="module")
def cluster():
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, configure_logging=False)
    yield
    ray.shutdown()


def _u8(img):
    # vton's PNG writer: round(clamp(v, 0, 1) * 255), halves away from zero.
    v = np.clip(np.asarray(img, dtype=np.float32), 0, 1) * np.float32(255)
    return np.floor(v.astype(np.float64) + 0.5).astype(np.uint8)


def _catalogue(tmp_path):
    """A pairs file in tmp_path whose paths are relative to its own folder (the examples'
    folder is reached through a symlink next to it), 2 persons x 2 garments, with the
    keypoints and masks."""
    (tmp_path / "ex").symlink_to(EX, target_is_directory=True)
    lines = ["# tiny catalogue: 2 persons x 2 garments", ""]
    for p in PERSONS:
        for g in GARMENTS:
            lines.append(f"ex/person/{p}.png ex/garment/{g}.png keypoints=ex/person/{p}_keypoints.json "
                         f"person_mask=ex/person/{p}_mask.png  garment_mask=ex/garment/{g}_mask.png")
    f = tmp_path / "pairs.txt"
    f.write_text("\n".join(lines) + "\n")
    return f


def _single_process():
    out = {}
    for p in PERSONS:
        for g in GARMENTS:
            pp, gg = EX / "person" / p, EX / "garment" / g
            res = vton.try_on(f"{pp}.png", f"{gg}.png", keypoints=f"{pp}_keypoints.json",
                              person_mask=f"{pp}_mask.png", garment_mask=f"{gg}_mask.png")
            out[f"{p}__{g}.png"] = _u8(res.image)
    return out


def test_catalogue_on_local_cluster_matches_single_process_and_resumes(cluster, tmp_path):
    pairs = _catalogue(tmp_path)
    out = tmp_path / "out"
    s = vray.run_catalogue(pairs, out, num_actors=2)
    assert (s.done, s.skipped, s.failed) == (4, 0, 0), s.errors
    ref = _single_process()
    assert sorted(p.name for p in out.glob("*.png")) == sorted(ref)
    assert not list(out.glob(".tmp-*"))
    for name, want in ref.items():
        got = np.asarray(Image.open(out / name).convert("RGB"))
        assert got.shape == want.shape == (512, 384, 3)
        # Same pixels as the single-process run, exactly (same code, same inputs).
        np.testing.assert_array_equal(got, want, err_msg=name)
    assert (out / vray.ERRORS_FILE).read_text() == ""

    # Resume: everything exists, nothing runs (no Ray job is even started).
    stamp = {p.name: p.stat().st_mtime_ns for p in out.glob("*.png")}
    s2 = vray.run_catalogue(pairs, out, num_actors=2)
    assert (s2.done, s2.skipped, s2.failed) == (0, 4, 0)
    assert {p.name: p.stat().st_mtime_ns for p in out.glob("*.png")} == stamp

    # One output removed: only that pair is recomputed, identically.
    victim = f"{PERSONS[1]}__{GARMENTS[0]}.png"
    (out / victim).unlink()
    s3 = vray.run_catalogue(pairs, out, num_actors=2)
    assert (s3.done, s3.skipped, s3.failed) == (1, 3, 0)
    np.testing.assert_array_equal(np.asarray(Image.open(out / victim).convert("RGB")), ref[victim])


def test_failures_are_recorded_not_fatal(cluster, tmp_path):
    # A dict list: one good pair and one whose garment is not an image (a failure at run
    # time, not at parse time: the file exists).
    bad = tmp_path / "broken.png"
    bad.write_bytes(b"not a png")
    p = EX / "person" / PERSONS[0]
    g = EX / "garment" / GARMENTS[0]
    recs = [dict(person=f"{p}.png", garment=f"{g}.png", keypoints=f"{p}_keypoints.json",
                 person_mask=f"{p}_mask.png", garment_mask=f"{g}_mask.png"),
            dict(person=f"{p}.png", garment=str(bad), keypoints=f"{p}_keypoints.json",
                 person_mask=f"{p}_mask.png")]
    out = tmp_path / "out"
    s = vray.run_catalogue(recs, out, num_actors=2)
    assert (s.done, s.skipped, s.failed) == (1, 0, 1)
    assert s.errors[0]["line"] == 1 and "cannot decode" in s.errors[0]["error"]
    logged = [json.loads(x) for x in (out / vray.ERRORS_FILE).read_text().splitlines()]
    assert logged == s.errors
    assert sorted(x.name for x in out.glob("*.png")) == [f"{PERSONS[0]}__{GARMENTS[0]}.png"]

    # A ray Dataset with the same columns (optional ones may be absent): the failed pair is
    # retried (no output), the good one skipped.
    ds = ray.data.from_items([{k: r.get(k, "") for k in vray.COLUMNS} for r in recs])
    s2 = vray.run_catalogue(ds, out, num_actors=1)
    assert (s2.done, s2.skipped, s2.failed) == (0, 1, 1)


def test_parser_errors_name_the_line(tmp_path):
    (tmp_path / "a.png").write_bytes(b"")
    (tmp_path / "b.png").write_bytes(b"")
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "a.png").write_bytes(b"")

    def parse(text):
        f = tmp_path / "pairs.txt"
        f.write_text(text)
        return vray.parse_pairs(f)

    ok = parse("# comment\n\n  a.png   b.png  garment_mask=b.png\n")
    assert len(ok) == 1 and ok[0].line == 3 and ok[0].output_name == "a__b.png"
    assert ok[0].person == str(tmp_path / "a.png") and ok[0].garment_mask == str(tmp_path / "b.png")
    assert ok[0].keypoints is None
    cases = [
        ("a.png b.png\n\nonly_one.png\n", vton.InvalidInputError, "line 3: expected PERSON GARMENT"),
        ("a.png b.png colour=b.png\n", vton.InvalidInputError, "line 1: unknown key 'colour'"),
        ("a.png b.png parse\n", vton.InvalidInputError, "line 1: 'parse' is not key=PATH"),
        ("a.png b.png parse=a.png parse=b.png\n", vton.InvalidInputError, "line 1: key 'parse' given twice"),
        ("#\na.png b.png\nsub/a.png b.png\n", vton.InvalidInputError,
         "line 3: output a__b.png is also the output of"),
        ("a.png b.png\nb.png missing.png\n", vton.VtonFileNotFoundError, "line 2: garment file not found"),
        ("a.png b.png keypoints=k.json\n", vton.VtonFileNotFoundError, "line 1: keypoints file not found"),
    ]
    for text, exc, msg in cases:
        with pytest.raises(exc, match=msg):
            parse(text)
    # Both error classes are the standard ones too.
    with pytest.raises(ValueError):
        parse("x\n")
    with pytest.raises(vton.VtonFileNotFoundError):
        vray.parse_pairs(tmp_path / "nope.txt")
    with pytest.raises(vton.InvalidInputError, match=r"pairs\[1\]: unknown key"):
        vray.pairs_from_records([{"person": "a.png", "garment": "b.png"}, {"person": "a.png", "shoe": "x"}],
                                base_dir=tmp_path)
    with pytest.raises(vton.UnsupportedError, match="supported: geometric, cpvton, catvton, inpaint"):
        vray.run_catalogue([], tmp_path / "o", method="hrviton", weights=tmp_path)
    with pytest.raises(vton.InvalidInputError, match="needs a weights folder"):
        vray.run_catalogue([], tmp_path / "o", method="catvton")


def test_atomic_write_leaves_no_partial_file(tmp_path, monkeypatch):
    dest = tmp_path / "r.png"
    img = np.linspace(0, 1, 4 * 5 * 3, dtype=np.float32).reshape(4, 5, 3)
    vray.write_png_atomic(dest, img)
    np.testing.assert_array_equal(np.asarray(Image.open(dest)), _u8(img))
    before = dest.read_bytes()

    # A write killed half-way (the encoder dies after some bytes): the old file is intact
    # and no temporary file is left behind.
    def dying_save(self, fp, *args, **kwargs):
        fp.write(b"\x89PNG partial")
        raise KeyboardInterrupt

    monkeypatch.setattr(Image.Image, "save", dying_save)
    with pytest.raises(KeyboardInterrupt):
        vray.write_png_atomic(dest, np.zeros((4, 5, 3), dtype=np.float32))
    assert dest.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["r.png"]


def test_gpu_actors_without_a_gpu_backend_fail_before_ray_starts(tmp_path, monkeypatch):
    if vton.compiled_backends() != ["cpu"]:
        pytest.skip("this wheel has a GPU backend")
    pairs = _catalogue(tmp_path)
    out = tmp_path / "out"

    def no_ray(*args, **kwargs):
        raise AssertionError("Ray was used before the device was checked")

    # Neither a cluster nor an actor may be started (nor even looked for).
    for name in ("init", "is_initialized", "cluster_resources"):
        monkeypatch.setattr(vray.ray, name, no_ray)
    monkeypatch.setattr(vray.ray.data, "from_items", no_ray)
    monkeypatch.setattr(vray.ray.data.Dataset, "map_batches", no_ray)
    with pytest.raises(vton.UnsupportedError) as e:
        vray.run_catalogue(pairs, out, num_gpus_per_actor=1)
    msg = str(e.value)
    assert "need a vton wheel with a GPU backend" in msg and "backends in this build: cpu" in msg, msg
    assert "--features cuda" in msg and 'device="cpu"' in msg, msg
    with pytest.raises(vton.UnsupportedError, match="wheel with a GPU backend"):
        vray.run_catalogue(pairs, out, num_gpus_per_actor=0.5)
    # An explicit device is checked on the driver too.
    with pytest.raises(vton.InvalidInputError, match="'nonsense' is not one of"):
        vray.run_catalogue(pairs, out, device="nonsense")
    with pytest.raises(vton.UnsupportedError, match="no cuda backend"):
        vray.run_catalogue(pairs, out, num_gpus_per_actor=1, device="cuda")
    assert not out.exists()  # nothing was written either

    # An actor Ray gave a GPU (in a pipeline of one's own) refuses too; device="cpu" is an
    # explicit choice and allowed.
    monkeypatch.setattr(vray, "_actor_gpus", lambda: [0])
    with pytest.raises(vton.UnsupportedError, match="wheel with a GPU backend"):
        vray.TryOnActor(out)
    assert vray.TryOnActor(out, device="cpu").device == "cpu"


def test_actor_device_choice(tmp_path, monkeypatch):
    assert vray.TryOnActor(tmp_path).device == "cpu"  # outside Ray: the CPU
    assert vray.TryOnActor(tmp_path, device="flex").device == "cpu"
    with pytest.raises(vton.InvalidInputError, match="backends in this build"):
        vray.TryOnActor(tmp_path, device="tpu")
    # The GPU default follows the backends compiled in.
    monkeypatch.setattr(vray, "compiled_backends", lambda: ["cpu", "wgpu", "cuda"])
    assert vray.gpu_device() == "cuda"
    monkeypatch.setattr(vray, "compiled_backends", lambda: ["cpu", "wgpu"])
    assert vray.gpu_device() == "wgpu"
    monkeypatch.setattr(vray, "compiled_backends", lambda: ["cpu"])
    with pytest.raises(vton.UnsupportedError):
        vray.gpu_device()
