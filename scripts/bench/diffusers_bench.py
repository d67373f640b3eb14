"""Times diffusers on the same random weights and inputs as vton's criterion bench.

    python scripts/bench/diffusers_bench.py target/bench THREADS {vae_decode|unet_step}
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
torch.set_num_threads(threads)
g = torch.Generator().manual_seed(0)
with torch.inference_mode():
    if what == "vae_decode":
        model = AutoencoderKL.from_pretrained(f"{root}/sd15_vae").eval()
        z = torch.randn(1, 4, 64, 48, generator=g)
        run = lambda: model.decode(z).sample
    else:
        model = UNet2DConditionModel.from_pretrained(f"{root}/sd15_inpaint_unet").eval()
        x = torch.randn(1, 9, 64, 48, generator=g)
        ehs = torch.randn(1, 77, 768, generator=g)
        run = lambda: model(x, 500, encoder_hidden_states=ehs).sample
    run()  # warm-up
    times = []
    for _ in range(5):
        t0 = time.perf_counter()
        run()
        times.append(time.perf_counter() - t0)
rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
print(json.dumps({"impl": "diffusers", "what": what, "threads": threads, "median_s": statistics.median(times),
                  "peak_rss_mib": rss, "torch": torch.__version__}))
