"""Parity fixtures for vton's SegFormer (transformers `SegformerForSemanticSegmentation`,
`SegformerImageProcessor`) and DCI-VITON's `parsehuman.py` post-processing.

Run by hand from the repository root (needs torch + transformers + pillow + safetensors;
never a dependency of vton or CI):
    /work/refenv/bin/python scripts/reference/gen_segformer.py

Two tiny random configurations, saved with `save_pretrained` (Hugging Face folder layout):
  tests/fixtures/segformer_a_pretrained/  24 labels (id2label of
      yolo12138/segformer-b2-human-parse-24), preprocessor_config.json as that checkpoint
      ships it (256x256, bilinear, ImageNet mean/std), model.safetensors;
  tests/fixtures/segformer_b_pretrained/  7 labels, other widths/depths/heads/sr ratios/
      mlp ratios, NO preprocessor_config.json (processor defaults), pytorch_model.bin
      (the zip pickle torch.save writes; transformers 5 ignores safe_serialization=False,
      so the state dict saved by save_pretrained is re-written with torch.save, keys
      unchanged).
Weights re-drawn (std 1/sqrt(fan_in), biases U(-0.1, 0.1), norm affine U(0.6, 1.4) /
N(0, 0.2)); the decode head's BatchNorm statistics from one train-mode pass
(momentum=None) on the fixture input, then perturbed. Every output is computed in eval().

tests/fixtures/segformer_{a,b}.safetensors + .json: random pixel_values -> logits (+ the
stage outputs), float64 re-run for the floor. segformer_a also holds the whole
parsehuman.py path on a real photo (tests/fixtures/segformer_photo/): processor ->
model -> F.interpolate(bilinear, align_corners=False) to the photo size -> argmax.
segformer_processor.safetensors/.json: processor outputs on the photo (defaults, and a
bicubic non-square config with other mean/std/rescale).
"""
import hashlib
import json
import os
import shutil

import numpy as np
import torch
import torch.nn.functional as F
import transformers
from PIL import Image
from safetensors.torch import load_file, save_file
from transformers import SegformerConfig, SegformerForSemanticSegmentation
from transformers.models.segformer.image_processing_pil_segformer import SegformerImageProcessorPil

ROOT = "tests/fixtures"
PHOTO_SRC = "examples/person/openvto_ai_avatar1_upper.png"
PHOTO_DIR = f"{ROOT}/segformer_photo"
PHOTO = f"{PHOTO_DIR}/openvto_ai_avatar1_upper.png"
SEED = 0

LABELS_24 = [
    "background", "hat", "hair", "glove", "glasses", "upper_only_torso_region",
    "dresses_only_torso_region", "coat_only_torso_region", "socks", "left_pants",
    "right_patns", "skin_around_neck_region", "scarf", "skirts", "face", "left_arm",
    "right_arm", "left_leg", "right_leg", "left_shoe", "right_shoe",
    "left_sleeve_for_upper", "right_sleeve_for_upper", "bag",
]
LABELS_7 = ["background", "head", "torso", "upper_arms", "lower_arms", "upper_legs", "lower_legs"]

CASES = {
    "a": dict(
        config=dict(
            hidden_sizes=[16, 32, 40, 64], depths=[2, 1, 2, 1], num_attention_heads=[1, 2, 5, 8],
            sr_ratios=[8, 4, 2, 1], patch_sizes=[7, 3, 3, 3], strides=[4, 2, 2, 2],
            mlp_ratios=[4, 4, 4, 4], decoder_hidden_size=32, drop_path_rate=0.1,
            classifier_dropout_prob=0.1, hidden_act="gelu",
            id2label={i: n for i, n in enumerate(LABELS_24)},
            label2id={n: i for i, n in enumerate(LABELS_24)},
        ),
        processor=dict(size={"height": 256, "width": 256}, resample=2, do_reduce_labels=False),
        input_shape=(2, 3, 70, 54),
        weights="safetensors",
    ),
    "b": dict(
        config=dict(
            hidden_sizes=[8, 24, 32, 48], depths=[1, 3, 1, 2], num_attention_heads=[1, 3, 2, 4],
            sr_ratios=[4, 2, 2, 1], patch_sizes=[7, 5, 3, 3], strides=[4, 2, 2, 2],
            mlp_ratios=[2, 4, 3, 2], decoder_hidden_size=24, drop_path_rate=0.2,
            classifier_dropout_prob=0.1, hidden_act="gelu",
            id2label={i: n for i, n in enumerate(LABELS_7)},
            label2id={n: i for i, n in enumerate(LABELS_7)},
        ),
        processor=None,
        input_shape=(1, 3, 66, 90),
        weights="bin",
    ),
}


def redraw(model, gen):
    with torch.no_grad():
        for name, mod in model.named_modules():
            if isinstance(mod, (torch.nn.Conv2d, torch.nn.Linear)):
                w = mod.weight
                fan_in = w[0].numel()
                w.copy_(torch.randn(w.shape, generator=gen, dtype=torch.float64).float() / fan_in ** 0.5)
                if mod.bias is not None:
                    mod.bias.copy_((torch.rand(mod.bias.shape, generator=gen) * 0.2 - 0.1))
            elif isinstance(mod, (torch.nn.LayerNorm, torch.nn.BatchNorm2d)):
                mod.weight.copy_(torch.rand(mod.weight.shape, generator=gen) * 0.8 + 0.6)
                mod.bias.copy_(torch.randn(mod.bias.shape, generator=gen) * 0.2)


def set_bn_stats(model, x, gen):
    bn = model.decode_head.batch_norm
    model.eval()
    bn.reset_running_stats()
    bn.momentum = None
    bn.train()
    with torch.no_grad():
        model(pixel_values=x)
    bn.eval()
    bn.momentum = 0.1
    with torch.no_grad():
        std = bn.running_var.sqrt()
        bn.running_mean.add_(0.3 * std * torch.randn(std.shape, generator=gen))
        bn.running_var.mul_(torch.rand(std.shape, generator=gen) * 1.5 + 0.5)


def sha256(path):
    with open(path, "rb") as f:
        return hashlib.sha256(f.read()).hexdigest()


def stats(t):
    t = t.double()
    return dict(min=float(t.min()), max=float(t.max()), mean=float(t.mean()), std=float(t.std()))


def run_model(model, x):
    with torch.no_grad():
        out = model(pixel_values=x, output_hidden_states=True)
    return out.logits, out.hidden_states


def label_map(model, pixel_values, size_hw):
    logits, _ = run_model(model, pixel_values)
    up = F.interpolate(logits, size=size_hw, mode="bilinear", align_corners=False)
    top2 = up.topk(2, dim=1).values
    return logits, up.argmax(dim=1)[0], (top2[:, 0] - top2[:, 1])[0]


def main():
    torch.manual_seed(SEED)
    os.makedirs(PHOTO_DIR, exist_ok=True)
    shutil.copyfile(PHOTO_SRC, PHOTO)
    photo = Image.open(PHOTO).convert("RGB")
    pw, ph = photo.size

    for case, spec in CASES.items():
        gen = torch.Generator().manual_seed(SEED + ord(case))
        cfg = SegformerConfig(**spec["config"])
        model = SegformerForSemanticSegmentation(cfg).eval()
        redraw(model, gen)
        x = torch.randn(spec["input_shape"], generator=gen)
        # BatchNorm statistics from the photo for the case that parses it (so that its label
        # map is not one class everywhere), from the random input otherwise.
        bn_input = x
        if spec["processor"] is not None:
            bn_input = SegformerImageProcessorPil(**spec["processor"])(
                images=photo, return_tensors="pt")["pixel_values"]
        set_bn_stats(model, bn_input, gen)
        model.eval()

        folder = f"{ROOT}/segformer_{case}_pretrained"
        shutil.rmtree(folder, ignore_errors=True)
        model.save_pretrained(folder)
        if spec["weights"] == "bin":
            sd = load_file(f"{folder}/model.safetensors")
            os.remove(f"{folder}/model.safetensors")
            torch.save(sd, f"{folder}/pytorch_model.bin")
        if spec["processor"] is not None:
            SegformerImageProcessorPil(**spec["processor"]).save_pretrained(folder)

        # Reload from the folder exactly as a user would, and use that model.
        model = SegformerForSemanticSegmentation.from_pretrained(folder).eval()
        keys = list(load_file(f"{folder}/model.safetensors").keys()) if spec["weights"] != "bin" \
            else list(torch.load(f"{folder}/pytorch_model.bin").keys())

        logits, hidden = run_model(model, x)
        logits64, hidden64 = run_model(model.double(), x.double())
        model.float()
        floor = float((logits.double() - logits64).abs().max())
        tensors = {"input.pixel_values": x.contiguous(), "output.logits": logits.contiguous()}
        for i, h in enumerate(hidden):
            tensors[f"output.intermediate.stage{i}"] = h.contiguous()
        floors = {f"stage{i}": float((h.double() - h64).abs().max()) for i, (h, h64) in enumerate(zip(hidden, hidden64))}

        # Sensitivity: what the BatchNorm running statistics and eval mode change.
        bn = model.decode_head.batch_norm
        bn.train()
        bn.momentum = 0.0
        with torch.no_grad():
            bn_batch = model(pixel_values=x).logits
        bn.eval()
        bn.momentum = 0.1

        info = dict(
            reference=dict(package="transformers (PyPI)", version=transformers.__version__,
                           torch=torch.__version__),
            class_name="transformers.SegformerForSemanticSegmentation",
            folder=os.path.basename(folder),
            weights_file="pytorch_model.bin" if spec["weights"] == "bin" else "model.safetensors",
            constructor={k: v for k, v in spec["config"].items() if k not in ("id2label", "label2id")},
            num_labels=cfg.num_labels,
            seed=SEED,
            mode="eval (dropout, drop path off; BatchNorm on running statistics)",
            bn_statistics_from="the photo's pixel_values" if spec["processor"] is not None else "input.pixel_values",
            state_dict_keys=len(keys),
            key_examples=sorted(keys)[:3] + [k for k in keys if k.startswith("decode_head.linear_c.0")],
            inputs={"pixel_values": list(x.shape)},
            outputs={"logits": list(logits.shape),
                     **{f"intermediate.stage{i}": list(h.shape) for i, h in enumerate(hidden)}},
            logits_stats=stats(logits),
            float64_check=dict(logits_max_abs=floor, **floors),
            sensitivity=dict(bn_batch_stats_max_abs=float((bn_batch - logits).abs().max())),
            tolerance=dict(rtol=1e-4, atol=max(1e-5, 10 * floor)),
        )

        if case == "a":
            proc = SegformerImageProcessorPil.from_pretrained(folder)
            pv = proc(images=photo, return_tensors="pt")["pixel_values"]
            p_logits, labels, margin = label_map(model, pv, (ph, pw))
            _, labels64, _ = label_map(model.double(), pv.double(), (ph, pw))
            model.float()
            tensors["output.photo_logits"] = p_logits.contiguous()
            tensors["output.photo_labels"] = labels.to(torch.uint8).contiguous()
            hist = torch.bincount(labels.flatten(), minlength=cfg.num_labels).tolist()
            # transformers 5's default SegformerImageProcessor is the torchvision backend.
            from transformers import SegformerImageProcessor
            tv = SegformerImageProcessor.from_pretrained(folder)
            pv_tv = tv(images=photo, return_tensors="pt")["pixel_values"]
            _, labels_tv, _ = label_map(model, pv_tv, (ph, pw))
            info["photo"] = dict(
                file=os.path.relpath(PHOTO, ROOT), source=PHOTO_SRC, sha256=sha256(PHOTO),
                size_wh=[pw, ph],
                processor="SegformerImageProcessorPil (= transformers 4.x SegformerImageProcessor, "
                          "what parsehuman.py ran) from the folder's preprocessor_config.json",
                pipeline="parsehuman.py: processor -> model -> F.interpolate(logits, (h, w), "
                         "bilinear, align_corners=False) -> argmax(dim=1)",
                pixel_values=list(pv.shape),
                pixel_values_in="segformer_processor.safetensors case 'a'",
                label_histogram=hist,
                float64_label_changes=int((labels != labels64).sum()),
                pixels_with_top2_margin_below_1em3=int((margin < 1e-3).sum()),
                pixels_with_top2_margin_below_1em2=int((margin < 1e-2).sum()),
                torchvision_backend=dict(
                    pixel_values_max_abs=float((pv_tv - pv).abs().max()),
                    label_changes=int((labels_tv != labels).sum()),
                    note="transformers 5 SegformerImageProcessor (torchvision resize) vs the PIL "
                         "backend vton reproduces",
                ),
            )
        save_file(tensors, f"{ROOT}/segformer_{case}.safetensors")
        info["sha256"] = sha256(f"{ROOT}/segformer_{case}.safetensors")
        with open(f"{ROOT}/segformer_{case}.json", "w") as f:
            json.dump(info, f, indent=2)
        print(case, json.dumps(info["float64_check"]), info.get("photo", {}).get("float64_label_changes"))

    # Processor-only cases on the photo.
    proc_cases = {
        "a": None,  # the preprocessor_config.json of segformer_a_pretrained
        "default": {},
        "bicubic": dict(size={"height": 300, "width": 120}, resample=3, rescale_factor=1 / 127.5,
                        image_mean=[1.0, 0.9, 1.1], image_std=[0.5, 0.6, 0.7]),
    }
    tensors, info = {}, dict(
        reference=dict(package="transformers (PyPI)", version=transformers.__version__),
        class_name="transformers SegformerImageProcessorPil (transformers 4.x SegformerImageProcessor)",
        photo=os.path.relpath(PHOTO, ROOT), cases={})
    for name, kw in proc_cases.items():
        proc = SegformerImageProcessorPil.from_pretrained(f"{ROOT}/segformer_a_pretrained") \
            if kw is None else SegformerImageProcessorPil(**kw)
        pv = proc(images=photo, return_tensors="pt")["pixel_values"]
        size = proc.size
        resized = np.array(photo.resize((size["width"], size["height"]), resample=proc.resample))
        # the pixel values are rescale+normalise of PIL's 8-bit resize, exactly:
        chw = np.moveaxis(resized, -1, 0)
        re = (chw.astype(np.float64) * proc.rescale_factor).astype(np.float32)
        re = ((re.T - np.array(proc.image_mean, np.float32)) / np.array(proc.image_std, np.float32)).T
        assert np.array_equal(re, pv[0].numpy()), name
        if name == "bicubic":
            tensors[f"output.{name}.pixel_values"] = pv.contiguous()
        else:
            tensors[f"output.{name}.resized_u8"] = torch.from_numpy(resized.copy())
        info["cases"][name] = dict(
            kwargs=kw if kw is not None else "from segformer_a_pretrained/preprocessor_config.json", size=dict(size), resample=int(proc.resample), rescale_factor=proc.rescale_factor,
            image_mean=list(proc.image_mean), image_std=list(proc.image_std),
            pixel_values=list(pv.shape),
            stored="pixel_values (float32) for 'bicubic'; resized_u8 (HWC uint8, PIL's resize) "
                   "for the others (their pixel values equal rescale+normalise of resized_u8 "
                   "exactly, asserted here; stored as uint8 to keep the file small)")
    save_file(tensors, f"{ROOT}/segformer_processor.safetensors")
    info["sha256"] = sha256(f"{ROOT}/segformer_processor.safetensors")
    with open(f"{ROOT}/segformer_processor.json", "w") as f:
        json.dump(info, f, indent=2)

    total = 0
    for dirpath, _, files in os.walk(ROOT):
        for fn in files:
            if "segformer" in dirpath + fn:
                total += os.path.getsize(os.path.join(dirpath, fn))
    print("total bytes", total)


if __name__ == "__main__":
    main()
