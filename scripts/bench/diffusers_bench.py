"""Times diffusers on the same random weights and inputs as vton's criterion bench.

    python scripts/bench/diffusers_bench.py target/bench THREADS {vae_decode|unet_step|unet_step_notext}[_bf16]

unet_step_notext runs the U-Net as CatVTON does: every cross-attention (attn2) gets a
processor that returns its input, and no encoder states are given. A `_bf16` suffix loads
the model with torch_dtype=torch.bfloat16 and feeds bfloat16 inputs (PyTorch then computes
in bfloat16; vton keeps the weights in bfloat16 and computes in float32).
Prints one JSON line: median seconds over the runs and the process's peak RSS (MiB).
"""
import json
import resource
import statistics
import sys
import time

import torch
from diffusers import AutoencoderKL, UNet2DConditionModel

root, threads, what = sys.argv[1], int(sys.argv[2]), sys.argv[3]
dtype = torch.float32
if what.endswith("_bf16"):
    what, dtype = what[: -len("_bf16")], torch.bfloat16
torch.set_num_threads(threads)
g = torch.Generator().manual_seed(0)
with torch.inference_mode():
    if what == "vae_decode":
        model = AutoencoderKL.from_pretrained(f"{root}/sd15_vae", torch_dtype=dtype).eval()
        z = torch.randn(1, 4, 64, 48, generator=g).to(dtype)
        run = lambda: model.decode(z).sample
    else:
        model = UNet2DConditionModel.from_pretrained(f"{root}/sd15_inpaint_unet", torch_dtype=dtype).eval()
        x = torch.randn(1, 9, 64, 48, generator=g).to(dtype)
        ehs = torch.randn(1, 77, 768, generator=g).to(dtype)
        if what == "unet_step_notext":
            from diffusers.models.attention_processor import AttnProcessor2_0

            class Skip:
                def __call__(self, attn, hidden_states, encoder_hidden_states=None, attention_mask=None, temb=None, **kw):
                    return hidden_states

            model.set_attn_processor({n: Skip() if n.endswith("attn2.processor") else AttnProcessor2_0()
                                      for n in model.attn_processors})
            ehs = None
        run = lambda: model(x, 500, encoder_hidden_states=ehs).sample
    run()  # warm-up
    times = []
    for _ in range(5):
        t0 = time.perf_counter()
        run()
        times.append(time.perf_counter() - t0)
rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
print(json.dumps({"impl": "diffusers", "what": what, "dtype": str(dtype), "threads": threads, "median_s": statistics.median(times),
                  "peak_rss_mib": rss, "torch": torch.__version__}))
