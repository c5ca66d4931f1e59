#!/usr/bin/env python3
"""The diffusers side of `lvd bench unet --reference PYTHON`: reads {"config", "batch", "frames",
"height", "width", "backward", "keys", "repeats"} as JSON on stdin, builds UNet3DConditionModel with
random weights, times the forward (no grad, best of `repeats`) at batch B, and optionally the backward to the input latents
of a scalar of the captured cross-attention maps at batch 1; prints a JSON line with seconds and peak RSS after each
pass (the last line holds them all)."""
import json
import resource
import sys
import time

import torch
from diffusers import UNet3DConditionModel


def peak_rss_bytes():
    # VmHWM of this process's own memory map. (getrusage's ru_maxrss survives fork + exec on
    # Linux, so it would report the calling lvd process's size instead.)
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def main():
    job = json.load(sys.stdin)
    torch.set_num_threads(job.get("threads", 2))
    torch.manual_seed(0)
    config = {k: v for k, v in job["config"].items() if not k.startswith("_") and k != "attention_type"}
    unet = UNet3DConditionModel(**config).eval()
    dim = config.get("cross_attention_dim", 1024)
    b, f, h, w = job["batch"], job["frames"], job["height"], job["width"]
    result = {"torch": torch.__version__}
    latents = torch.randn(b, 4, f, h, w)
    context = torch.randn(b, 77, dim)
    with torch.no_grad():
        best = float("inf")
        for _ in range(job.get("repeats", 1)):  # the best of N, as the Swift side
            start = time.perf_counter()
            unet(latents, 500, encoder_hidden_states=context)
            best = min(best, time.perf_counter() - start)
        result["forward_seconds"] = best
    result["forward_peak_rss"] = peak_rss_bytes()
    # One JSON object per line, each with all results so far: the forward's figures stand when
    # the backward does not fit in memory (diffusers' UNet3D, killed by the kernel).
    print(json.dumps(result), flush=True)
    if job.get("backward"):
        maps = []

        class Capture:
            def __call__(self, attn, hidden_states, encoder_hidden_states=None, attention_mask=None, **kwargs):
                ctx = hidden_states if encoder_hidden_states is None else encoder_hidden_states
                q, k, v = (attn.head_to_batch_dim(fn(x)) for fn, x in ((attn.to_q, hidden_states), (attn.to_k, ctx), (attn.to_v, ctx)))
                probs = attn.get_attention_scores(q, k, None)
                maps.append(probs)
                return attn.to_out[1](attn.to_out[0](attn.batch_to_head_dim(torch.bmm(probs, v))))

        blocks = {"down": unet.down_blocks, "mid": [unet.mid_block], "up": unet.up_blocks}
        for part, block, layer in job["keys"]:
            blocks[part][block].attentions[layer].transformer_blocks[0].attn2.set_processor(Capture())
        # diffusers' UNet3DConditionModel has no gradient checkpointing (enable_gradient_checkpointing
        # refuses it): its backward keeps every activation whatever `recompute` says for ours.
        x = torch.randn(1, 4, f, h, w, requires_grad=True)
        start = time.perf_counter()
        unet(x, 500, encoder_hidden_states=context[:1])
        sum((m * m).mean() for m in maps).backward()
        result["backward_seconds"] = time.perf_counter() - start
        result["backward_peak_rss"] = peak_rss_bytes()
        print(json.dumps(result), flush=True)


if __name__ == "__main__":
    main()
