"""Tests of vton.train: trainers stepped by hand (fresh GMM at ngf=4 and 128x128, TOM with
the width-reduced random VGG19 and TOM weights of tests/fixtures/training), state dicts,
weights from dicts, save/load continuing bit-exactly, the whole loop with a callback, and
the errors bad input raises."""
import json
import pathlib

import numpy as np
import pytest

import vton
from vton import train
from vton.errors import (CheckpointError, InvalidInputError, VtonError,
                         VtonFileNotFoundError, VtonRuntimeError)

ROOT = pathlib.Path(__file__).resolve().parents[2]
FIX = ROOT / "tests" / "fixtures"
TRAIN_FIX = FIX / "training"
TINY = FIX / "vitonhd_tiny"

GMM_OPTS = dict(fine_height=128, fine_width=128, grid_size=3, ngf=4)

_DTYPES = {"F64": "<f8", "F32": "<f4", "I64": "<i8", "I32": "<i4", "U8": "u1"}
_NAMES = {np.dtype("<f4"): "F32", np.dtype("<f8"): "F64", np.dtype("<i8"): "I64"}


def read_safetensors(path):
    """{key: array} of a safetensors file (8-byte little-endian header size, JSON header, data)."""
    raw = pathlib.Path(path).read_bytes()
    n = int.from_bytes(raw[:8], "little")
    header = json.loads(raw[8:8 + n])
    data = memoryview(raw)[8 + n:]
    out = {}
    for key, info in header.items():
        if key == "__metadata__":
            continue
        start, end = info["data_offsets"]
        out[key] = np.frombuffer(data[start:end], dtype=_DTYPES[info["dtype"]]).reshape(info["shape"]).copy()
    return out


def write_safetensors(path, tensors):
    """Writes {key: float32 / float64 / int64 array} as safetensors."""
    header, blobs, offset = {}, [], 0
    for key, a in tensors.items():
        a = np.asarray(a)
        dt = a.dtype.newbyteorder("<")
        b = np.ascontiguousarray(a, dtype=dt).tobytes()
        header[key] = {"dtype": _NAMES[dt], "shape": list(a.shape), "data_offsets": [offset, offset + len(b)]}
        blobs.append(b)
        offset += len(b)
    h = json.dumps(header).encode()
    h += b" " * (-len(h) % 8)
    pathlib.Path(path).write_bytes(len(h).to_bytes(8, "little") + h + b"".join(blobs))


def gmm_batch(seed=0, n=2, h=128, w=128):
    """A GMM batch as cp_dataset.py composes it: the target is the cloth shifted, so the
    warp has something to learn."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    cloth = np.stack([np.sin(xx / 7.0 + c) * np.cos(yy / 9.0 - c) for c in range(3)])[None].repeat(n, 0)
    cloth = (cloth + 0.05 * rng.standard_normal(cloth.shape)).clip(-1, 1).astype(np.float32)
    mask = ((np.abs(xx - w / 2) < w / 3) & (np.abs(yy - h / 2) < h / 3)).astype(np.float32)
    cloth_mask = np.broadcast_to(mask, (n, 1, h, w)).astype(np.float32)
    parse_cloth = (np.roll(cloth, (4, 3), axis=(2, 3)) * np.roll(cloth_mask, (4, 3), axis=(2, 3))
                   + (1 - np.roll(cloth_mask, (4, 3), axis=(2, 3)))).astype(np.float32)
    agnostic = rng.uniform(-1, 1, (n, 22, h, w)).astype(np.float32)
    return {"agnostic": agnostic, "cloth": cloth, "cloth_mask": cloth_mask, "parse_cloth": parse_cloth}


def assert_state_equal(a, b):
    assert sorted(a) == sorted(b)
    for k in a:
        assert a[k].dtype == b[k].dtype, k
        assert a[k].shape == b[k].shape, k
        assert np.array_equal(a[k], b[k]), k


@pytest.fixture(scope="module")
def tom_files(tmp_path_factory):
    """The TOM case's random VGG19 (features.* keys) and TOM weights, prefixes removed."""
    d = tmp_path_factory.mktemp("tom")
    t = read_safetensors(TRAIN_FIX / "train_cpvton_tom.safetensors")
    vgg = {k[len("vgg."):]: v for k, v in t.items() if k.startswith("vgg.features.")}
    weights = {k[len("weights."):]: v for k, v in t.items() if k.startswith("weights.")}
    assert vgg and weights
    write_safetensors(d / "vgg19.safetensors", vgg)
    write_safetensors(d / "tom.safetensors", weights)
    opt = json.loads((TRAIN_FIX / "train_cpvton_tom.json").read_text())["opt"]
    return d / "vgg19.safetensors", d / "tom.safetensors", weights, opt


def tom_batch(opt, seed=0, n=2):
    h, w = opt["fine_height"], opt["fine_width"]
    rng = np.random.default_rng(seed)
    f = lambda *s: rng.uniform(-1, 1, (n,) + s).astype(np.float32)  # noqa: E731
    m = lambda: (rng.uniform(0, 1, (n, 1, h, w)) > 0.5).astype(np.float32)  # noqa: E731
    return {"agnostic": f(22, h, w), "cloth": f(3, h, w), "cloth_mask": m(), "image": f(3, h, w),
            "parse_cloth_mask": m()}


# ---------------------------------------------------------------------------------------
# GMM


def test_module_is_exposed():
    assert vton.train is train
    assert set(train.__all__) >= {"GMMTrainer", "TOMTrainer", "ConditionGeneratorTrainer", "UNetTrainer", "run"}


def test_gmm_step_returns_every_loss_term():
    t = train.GMMTrainer(None, **GMM_OPTS)
    assert (t.kind, t.steps) == ("gmm", 0)
    assert t.lr == pytest.approx(1e-4)
    losses = t.step(gmm_batch())
    assert set(losses) == {"Lwarp", "Lgic", "Lgic_raw", "total"}
    assert all(isinstance(v, float) and np.isfinite(v) for v in losses.values())
    # train.py: loss = Lwarp + 40 * Lgic.
    assert losses["total"] == pytest.approx(losses["Lwarp"] + 40 * losses["Lgic"], rel=1e-5)
    assert losses["Lwarp"] > 0
    assert t.steps == 1


def test_gmm_loss_falls_on_a_fixed_batch():
    t = train.GMMTrainer(None, lr=1e-3, **GMM_OPTS)
    b = gmm_batch()
    totals = [t.step(b)["total"] for _ in range(10)]
    assert t.steps == 10
    assert totals[-1] < 0.95 * totals[0], totals
    assert min(totals[5:]) < min(totals[:2]), totals


def test_gmm_lr_follows_the_schedule():
    # train.py never steps its LambdaLR: lr stays opt.lr. step_scheduler=True steps it:
    # lr * (1 - max(0, step - keep_step) / (decay_step + 1)), step counted from 0.
    b = gmm_batch()
    for stepped, want in ((False, [1e-3] * 5), (True, [1e-3, 1e-3, 1e-3, 1e-3 * 2 / 3, 1e-3 / 3])):
        t = train.GMMTrainer(None, lr=1e-3, keep_step=2, decay_step=2, step_scheduler=stepped, **GMM_OPTS)
        lrs = []
        for _ in range(4):
            lrs.append(t.lr)
            t.step(b)
        lrs.append(t.lr)
        assert lrs == [pytest.approx(x, rel=1e-12) for x in want], (stepped, lrs)


def test_gmm_state_dict_keys_and_shapes():
    t = train.GMMTrainer(None, seed=1, **GMM_OPTS)
    sd = t.state_dict()
    ngf = GMM_OPTS["ngf"]
    assert sd["extractionA.model.0.weight"].shape == (ngf, 22, 4, 4)
    assert sd["extractionB.model.0.weight"].shape == (ngf, 1, 4, 4)
    g2 = 2 * GMM_OPTS["grid_size"] ** 2
    assert sd["regression.linear.weight"].shape[0] == g2
    assert sd["regression.linear.bias"].shape == (g2,)
    floats = [k for k in sd if not k.endswith("num_batches_tracked")]
    assert all(sd[k].dtype == np.float32 for k in floats)
    counters = [k for k in sd if k.endswith("num_batches_tracked")]
    assert counters and all(sd[k].dtype == np.int64 and sd[k].shape == () and sd[k] == 0 for k in counters)
    assert any(k.endswith("running_mean") for k in sd)
    before = {k: v.copy() for k, v in sd.items()}
    t.step(gmm_batch())
    after = t.state_dict()
    assert sorted(after) == sorted(before)
    assert not np.array_equal(after["extractionA.model.0.weight"], before["extractionA.model.0.weight"])
    assert all(after[k] == 1 for k in counters)
    # The dict returned earlier is a copy, untouched by the step.
    assert_state_equal(sd, before)


def test_gmm_seed_picks_the_initialisation():
    a = train.GMMTrainer(None, seed=1, **GMM_OPTS).state_dict()
    b = train.GMMTrainer(None, seed=1, **GMM_OPTS).state_dict()
    c = train.GMMTrainer(None, seed=2, **GMM_OPTS).state_dict()
    assert_state_equal(a, b)
    assert not np.array_equal(a["extractionA.model.0.weight"], c["extractionA.model.0.weight"])


def test_dict_weights_equal_path_weights(tmp_path):
    sd = train.GMMTrainer(None, seed=5, **GMM_OPTS).state_dict()
    path = tmp_path / "gmm.safetensors"
    write_safetensors(path, sd)
    from_dict = train.GMMTrainer(sd, **GMM_OPTS)
    from_path = train.GMMTrainer(path, **GMM_OPTS)
    from_str = train.GMMTrainer(str(path), **GMM_OPTS)
    assert_state_equal(from_dict.state_dict(), sd)
    assert_state_equal(from_path.state_dict(), sd)
    b = gmm_batch(3)
    la, lb, lc = from_dict.step(b), from_path.step(b), from_str.step(b)
    assert la == lb == lc
    assert_state_equal(from_dict.state_dict(), from_path.state_dict())


def test_save_then_load_continues_bit_exactly(tmp_path):
    batches = [gmm_batch(i) for i in range(4)]
    straight = train.GMMTrainer(None, seed=7, lr=1e-3, keep_step=1, decay_step=3, **GMM_OPTS)
    for b in batches[:2]:
        straight.step(b)
    folder = straight.save(tmp_path / "run")
    assert pathlib.Path(folder) == tmp_path / "run" / "checkpoints" / "step_2"
    for f in ("state.json", "model.safetensors", "model.pth", "optimizer.safetensors"):
        assert (pathlib.Path(folder) / f).is_file(), f
    want = [straight.step(b) for b in batches[2:]]
    want_sd, want_lr = straight.state_dict(), straight.lr

    for where in (tmp_path / "run", folder):  # a run folder (newest checkpoint) or the checkpoint itself
        resumed = train.GMMTrainer(None, seed=99, lr=1e-3, keep_step=1, decay_step=3, **GMM_OPTS)
        assert pathlib.Path(resumed.load(where)) == pathlib.Path(folder)
        assert resumed.steps == 2
        got = [resumed.step(b) for b in batches[2:]]
        assert got == want
        assert resumed.steps == 4 and resumed.lr == want_lr
        assert_state_equal(resumed.state_dict(), want_sd)


# ---------------------------------------------------------------------------------------
# TOM


def test_tom_steps_and_loss_falls(tom_files):
    vgg, weights_path, weights, opt = tom_files
    t = train.TOMTrainer(weights_path, vgg=vgg, lr=1e-3, fine_height=opt["fine_height"],
                         fine_width=opt["fine_width"])
    assert t.kind == "tom"
    sd = t.state_dict()
    assert sorted(sd) == sorted(weights)
    for k, v in weights.items():
        assert np.array_equal(sd[k], v), k
    b = tom_batch(opt)
    first = t.step(b)
    assert set(first) == {"loss_l1", "loss_vgg", "loss_mask", "total"}
    assert first["total"] == pytest.approx(first["loss_l1"] + first["loss_vgg"] + first["loss_mask"], rel=1e-5)
    totals = [first["total"]] + [t.step(b)["total"] for _ in range(9)]
    assert totals[-1] < 0.98 * totals[0], totals
    assert totals[-1] < min(totals[:5]), totals


def test_tom_dict_weights_and_fresh_init(tom_files, tmp_path):
    vgg, weights_path, weights, opt = tom_files
    size = dict(fine_height=opt["fine_height"], fine_width=opt["fine_width"])
    a = train.TOMTrainer(weights, vgg=vgg, **size)
    b = train.TOMTrainer(weights_path, vgg=vgg, **size)
    batch = tom_batch(opt, 1)
    assert a.step(batch) == b.step(batch)
    fresh = train.TOMTrainer(None, vgg=vgg, ngf=4, seed=3, **size)
    fsd = fresh.state_dict()
    assert fsd["model.model.0.weight"].shape == (4, 26, 4, 4)
    assert np.isfinite(fresh.step(batch)["total"])
    # save / load round trip for TOM as well
    folder = a.save(tmp_path / "tom_run")
    c = train.TOMTrainer(None, vgg=vgg, ngf=4, **size)
    c.load(folder)
    nxt = tom_batch(opt, 2)
    assert c.step(nxt) == a.step(nxt)


def test_tom_needs_a_vgg(tom_files, tmp_path):
    _, weights_path, _, opt = tom_files
    with pytest.raises(TypeError):
        train.TOMTrainer(weights_path)  # type: ignore[call-arg]
    with pytest.raises(VtonFileNotFoundError):
        train.TOMTrainer(weights_path, vgg=tmp_path / "missing.pth")


# ---------------------------------------------------------------------------------------
# Errors


def test_unknown_option_is_refused():
    with pytest.raises(InvalidInputError, match="grid_sise"):
        train.GMMTrainer(None, grid_sise=3)
    with pytest.raises(InvalidInputError, match="fine_height"):
        train.GMMTrainer(None, fine_height="tall")
    with pytest.raises(InvalidInputError):
        train.GMMTrainer(None, fine_height=object())


def test_bad_batches_raise_clearly():
    t = train.GMMTrainer(None, **GMM_OPTS)
    good = gmm_batch()
    missing = {k: v for k, v in good.items() if k != "parse_cloth"}
    with pytest.raises(InvalidInputError, match="parse_cloth"):
        t.step(missing)
    with pytest.raises(InvalidInputError, match="float32"):
        t.step({**good, "cloth": good["cloth"].astype(np.float64)})
    with pytest.raises(InvalidInputError, match="float32"):
        t.step({**good, "cloth": good["cloth"].tolist()})
    nan = good["agnostic"].copy()
    nan[0, 3, 5, 7] = np.nan
    with pytest.raises(InvalidInputError, match="NaN"):
        t.step({**good, "agnostic": nan})
    inf = good["cloth"].copy()
    inf[1, 0, 0, 0] = np.inf
    with pytest.raises(InvalidInputError, match="inf"):
        t.step({**good, "cloth": inf})
    with pytest.raises(InvalidInputError, match="4-D"):
        t.step({**good, "cloth_mask": good["cloth_mask"][:, 0]})
    with pytest.raises(InvalidInputError, match="batch size"):
        t.step({**good, "cloth": good["cloth"][:1]})
    with pytest.raises(InvalidInputError, match="height x width"):
        t.step({**good, "parse_cloth": good["parse_cloth"][:, :, :64]})
    with pytest.raises(InvalidInputError, match="empty"):
        t.step({k: v[:0] for k, v in good.items()})
    with pytest.raises(InvalidInputError):
        t.step([good["cloth"]])  # type: ignore[arg-type]
    # Wrong channel count / spatial size: an error of vton's hierarchy, not a crash.
    with pytest.raises(VtonError):
        t.step({**good, "agnostic": good["agnostic"][:, :21]})
    small = gmm_batch(h=64, w=64)
    with pytest.raises(VtonError):
        t.step(small)
    # None of the refused batches took a step; a good one still does.
    assert t.steps == 0
    assert np.isfinite(t.step(good)["total"]) and t.steps == 1


def test_trainer_stays_on_its_thread():
    import threading

    t = train.GMMTrainer(None, **GMM_OPTS)
    caught = []

    def use():
        try:
            t.step(gmm_batch())
        except BaseException as e:  # noqa: BLE001 - the test inspects it
            caught.append(e)

    th = threading.Thread(target=use)
    th.start()
    th.join()
    assert len(caught) == 1 and isinstance(caught[0], VtonRuntimeError), caught
    assert "thread" in str(caught[0])
    assert t.steps == 0
    t.step(gmm_batch())
    assert t.steps == 1


def test_bad_weights_raise(tmp_path):
    sd = train.GMMTrainer(None, **GMM_OPTS).state_dict()
    wrong = dict(sd)
    wrong["extractionA.model.0.weight"] = np.zeros((3, 3), np.float32)
    with pytest.raises(CheckpointError, match="extractionA.model.0.weight"):
        train.GMMTrainer(wrong, **GMM_OPTS)
    partial = {k: v for k, v in sd.items() if k != "regression.linear.bias"}
    with pytest.raises(CheckpointError, match="regression.linear.bias"):
        train.GMMTrainer(partial, **GMM_OPTS)
    with pytest.raises(VtonFileNotFoundError):
        train.GMMTrainer(tmp_path / "nope.pth", **GMM_OPTS)
    with pytest.raises(InvalidInputError):
        train.GMMTrainer(42, **GMM_OPTS)  # type: ignore[arg-type]
    with pytest.raises(InvalidInputError):
        train.GMMTrainer(None, device="tpu", **GMM_OPTS)


def test_load_refuses_other_kinds_and_empty_folders(tom_files, tmp_path):
    vgg, weights_path, _, opt = tom_files
    tom = train.TOMTrainer(weights_path, vgg=vgg, fine_height=opt["fine_height"], fine_width=opt["fine_width"])
    folder = tom.save(tmp_path / "tom")
    gmm = train.GMMTrainer(None, **GMM_OPTS)
    with pytest.raises(CheckpointError, match="tom"):
        gmm.load(folder)
    (tmp_path / "empty").mkdir()
    with pytest.raises(InvalidInputError):
        gmm.load(tmp_path / "empty")
    with pytest.raises(VtonFileNotFoundError):
        gmm.load(tmp_path / "missing")
    assert gmm.steps == 0


# ---------------------------------------------------------------------------------------
# The loop


def _run_opts():
    # The fixture has test_pairs.txt only, which the layout detection finds by itself.
    return dict(GMM_OPTS)


def test_run_with_callback_stop_and_resume(tmp_path):
    events = []

    def stop_at_3(e):
        events.append(e)
        return not (e["type"] == "step" and e["step"] == 3)

    out = tmp_path / "run"
    s = train.run("gmm", TINY, out, steps=6, batch_size=1, save_every=2, workers=0, callback=stop_at_3,
                  **_run_opts())
    assert s.cancelled and s.steps_done == 3
    assert s.last_checkpoint is not None and pathlib.Path(s.last_checkpoint).name == "step_3"
    types = [e["type"] for e in events]
    assert types[0] == "started" and types[-1] == "stopped"
    assert events[-1]["cancelled"] is True
    steps = [e for e in events if e["type"] == "step"]
    assert [e["step"] for e in steps] == [1, 2, 3]
    assert all(set(e["losses"]) == {"Lwarp", "Lgic", "Lgic_raw", "total"} for e in steps)
    assert all(e["lr"] > 0 and e["seconds"] >= 0 and e["total"] == 6 for e in steps)
    saved = [e for e in events if e["type"] == "saved"]
    assert [e["step"] for e in saved] == [2, 3]
    assert all(pathlib.Path(e["dir"]).is_dir() for e in saved)
    log = [json.loads(line) for line in (out / "log.jsonl").read_text().splitlines()]
    assert [r["step"] for r in log if "losses" in r] == [1, 2, 3]

    # Without resume the folder is refused; with it the run continues to the total.
    with pytest.raises(InvalidInputError, match="resume"):
        train.run("gmm", TINY, out, steps=6, batch_size=1, workers=0, **_run_opts())
    events.clear()
    s2 = train.run("gmm", TINY, out, steps=5, batch_size=1, save_every=0, val_every=2, workers=0, resume=True,
                   callback=events.append, **_run_opts())
    assert not s2.cancelled and s2.steps_done == 5
    assert events[0]["type"] == "started" and events[0]["step"] == 3
    assert pathlib.Path(events[0]["resumed_from"]).name == "step_3"
    assert [e["step"] for e in events if e["type"] == "step"] == [4, 5]
    val = [e for e in events if e["type"] == "validated"]
    assert [e["step"] for e in val] == [4]
    assert 0.0 <= val[0]["ssim"] <= 1.0 and np.isfinite(val[0]["psnr"]) and pathlib.Path(val[0]["panel"]).is_file()
    assert pathlib.Path(s2.last_checkpoint).name == "step_5"

    # The run's checkpoint loads into a hand-stepped trainer.
    t = train.GMMTrainer(None, **GMM_OPTS)
    t.load(out)
    assert t.steps == 5


def test_run_callback_exception_stops_after_saving(tmp_path):
    class Boom(Exception):
        pass

    def cb(e):
        if e["type"] == "step" and e["step"] == 2:
            raise Boom("stop here")

    with pytest.raises(Boom):
        train.run("gmm", TINY, tmp_path / "r", steps=5, batch_size=1, workers=0, callback=cb, **_run_opts())
    assert (tmp_path / "r" / "checkpoints" / "step_2" / "state.json").is_file()


def test_run_refuses_bad_arguments(tmp_path):
    with pytest.raises(InvalidInputError):
        train.run("gan", TINY, tmp_path / "r", steps=1)
    with pytest.raises(InvalidInputError, match="grid_sise"):
        train.run("gmm", TINY, tmp_path / "r", steps=1, workers=0, grid_sise=3)
    with pytest.raises(InvalidInputError):
        train.run("gmm", TINY, tmp_path / "r", steps=1, callback=3)  # type: ignore[arg-type]
    with pytest.raises(VtonFileNotFoundError):
        train.run("gmm", tmp_path / "no_data", tmp_path / "r", steps=1, workers=0, **_run_opts())


# ---------------------------------------------------------------------------------------
# Condition generator and U-Net: built through the same drive::build_trainer.


@pytest.fixture(scope="module")
def tocg_files(tmp_path_factory):
    d = tmp_path_factory.mktemp("tocg")
    t = read_safetensors(TRAIN_FIX / "train_hrviton_tocg.safetensors")
    pick = lambda p: {k[len(p):]: v for k, v in t.items() if k.startswith(p)}  # noqa: E731
    g, dis, vgg = pick("weights.G."), pick("weights.D."), pick("vgg.")
    assert g and dis and vgg
    write_safetensors(d / "vgg19.safetensors", vgg)
    batch = {k: v.astype(np.float32) for k, v in pick("batch.0.").items() if not k.startswith("dropout_mask")}
    batch2 = {k: v.astype(np.float32) for k, v in pick("batch.1.").items() if not k.startswith("dropout_mask")}
    opt = json.loads((TRAIN_FIX / "train_hrviton_tocg.json").read_text())["opt"]
    # train_condition.py's model and loss options of the case, by their own names.
    names = ["fine_height", "fine_width", "semantic_nc", "output_nc", "warp_feature", "out_layer", "G_lr", "D_lr",
             "CElamda", "GANlambda", "tvlambda", "upsample", "clothmask_composition", "edgeawaretv", "add_lasttv",
             "lasttvonly", "interflowloss", "occlusion", "no_GAN_loss", "G_D_seperate", "Ddownx2", "Ddropout",
             "spectral", "num_D", "n_layers_D"]
    opts = {k: opt[k] for k in names if k in opt}
    return g, dis, d / "vgg19.safetensors", [batch, batch2], opts


def test_condition_generator_trainer(tocg_files, tmp_path):
    g, dis, vgg, batches, size = tocg_files
    t = train.ConditionGeneratorTrainer(g, dis, vgg=vgg, **size)
    assert t.kind == "tocg"
    sg, sd = t.state_dict("G"), t.state_dict("D")
    assert sorted(sg) == sorted(g) and sorted(sd) == sorted(dis)
    for k in g:
        assert np.array_equal(sg[k].astype(g[k].dtype), g[k]), k
    losses = t.step(batches[0])
    assert losses and all(np.isfinite(v) for v in losses.values())
    assert t.steps == 1
    with pytest.raises(InvalidInputError):
        t.state_dict("X")
    folder = t.save(tmp_path / "tocg")
    u = train.ConditionGeneratorTrainer(g, dis, vgg=vgg, **size)
    u.load(folder)
    assert u.step(batches[1]) == t.step(batches[1])
    assert_state_equal(u.state_dict("G"), t.state_dict("G"))
    assert_state_equal(u.state_dict("D"), t.state_dict("D"))


def test_condition_generator_trainer_from_fresh_init(tocg_files):
    """Without generator / discriminator: train_condition.py's initialisation, under the
    original keys and shapes (widths from the fixture's recorded constructors)."""
    import re

    g, dis, vgg, batches, size = tocg_files
    ctor = json.loads((TRAIN_FIX / "train_hrviton_tocg.json").read_text())["constructors"]
    ngf = int(re.search(r"ngf=(\d+)", ctor["G"]).group(1))
    ndf = int(re.search(r"ndf=(\d+)", ctor["D"]).group(1))
    t = train.ConditionGeneratorTrainer(vgg=vgg, ngf=ngf, ndf=ndf, seed=3, **size)
    sg, sd = t.state_dict("G"), t.state_dict("D")
    assert {k: v.shape for k, v in sg.items()} == {k: v.shape for k, v in g.items()}
    assert {k: v.shape for k, v in sd.items()} == {k: v.shape for k, v in dis.items()}
    # Seeded: the same seed gives the same weights, another seed others.
    same = train.ConditionGeneratorTrainer(vgg=vgg, ngf=ngf, ndf=ndf, seed=3, **size)
    other = train.ConditionGeneratorTrainer(vgg=vgg, ngf=ngf, ndf=ndf, seed=4, **size)
    assert_state_equal(same.state_dict("G"), sg)
    k = next(k for k in sg if k.endswith("weight") and sg[k].size > 16)
    assert not np.array_equal(other.state_dict("G")[k], sg[k])
    losses = t.step(batches[0])
    assert losses and all(np.isfinite(v) for v in losses.values())
    assert not np.array_equal(t.state_dict("G")[k], sg[k])


UNET_DIR = TRAIN_FIX / "train_diffusers_unet_pretrained"


def test_unet_trainer(tmp_path):
    t = train.UNetTrainer(UNET_DIR)
    assert t.kind == "unet"
    raw = read_safetensors(TRAIN_FIX / "train_diffusers_unet.safetensors")
    batches = [{k[len(f"batch.{i}."):]: v for k, v in raw.items() if k.startswith(f"batch.{i}.")} for i in (0, 1)]
    assert batches[0]["timesteps"].dtype == np.int64 and batches[0]["encoder_hidden_states"].ndim == 3
    want_keys = read_safetensors(UNET_DIR / "diffusion_pytorch_model.safetensors")
    sd = t.state_dict()
    assert sorted(sd) == sorted(want_keys)
    losses = t.step(batches[0])
    assert losses and all(np.isfinite(v) for v in losses.values())
    assert t.steps == 1
    folder = t.save(tmp_path / "unet")
    u = train.UNetTrainer(UNET_DIR)
    u.load(folder)
    assert u.step(batches[1]) == t.step(batches[1])
    assert_state_equal(u.state_dict(), t.state_dict())
    with pytest.raises(InvalidInputError):
        train.UNetTrainer({"a": np.zeros(1, np.float32)})  # type: ignore[arg-type]
