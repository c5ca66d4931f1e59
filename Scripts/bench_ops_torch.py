#!/usr/bin/env python3
"""The PyTorch side of `lvd bench ops --reference PYTHON`: reads the case list (JSON) on stdin,
times each case in torch on the CPU with the same thread count, prints JSON {name: seconds}.

Cases: {"name", "op", "direction", "shapes", "attributes", "threads"}; timing = the best of
repeats after one warm-up, like the Swift side; backward cases time backward() alone."""
import json
import sys
import time

import torch
import torch.nn.functional as F


def build(case):
    op, shapes, attrs = case["op"], case["shapes"], case.get("attributes", {})
    g = torch.Generator().manual_seed(0)
    xs = [torch.randn(s, generator=g) for s in shapes]
    backward = case["direction"].startswith("backward")
    input_only = case["direction"] == "backward-input"
    for i, x in enumerate(xs):
        x.requires_grad_(backward and (not input_only or i == 0))
    if op == "sgemm":
        f = lambda: xs[0] @ xs[1]
    elif op == "copy":
        # Into a kept buffer: torch returns a large fresh allocation to the system each time, and
        # its page faults would be timed, not the memory (lvd reuses its buffers).
        out = torch.empty_like(xs[0])
        f = lambda: torch.mul(xs[0], 1, out=out)
    elif op == "conv2d":
        # "same" padding for the odd kernels benchmarked (3×3, and (3, 1) for the temporal one).
        padding = (shapes[1][2] // 2, shapes[1][3] // 2)
        f = lambda: F.conv2d(xs[0], xs[1], padding=padding)
    elif op == "attention":
        # What diffusers' attention processor calls.
        f = lambda: F.scaled_dot_product_attention(xs[0], xs[1], xs[2])
    elif op == "group_norm":
        f = lambda: F.group_norm(xs[0], attrs.get("groups", 32), eps=1e-5)
    else:
        raise SystemExit(f"unknown op {op}")
    if not backward:
        def run():
            with torch.no_grad():
                f()
        return run
    out = f()
    seed = torch.randn(out.shape, generator=g)
    state = {}

    def prepare():
        for x in xs:
            x.grad = None
        state["out"] = f()

    def run_backward():
        state["out"].backward(seed)
    run_backward.prepare = prepare
    return run_backward


def main():
    cases = json.load(sys.stdin)
    results = {}
    for case in cases:
        torch.set_num_threads(case.get("threads", 2))
        run = build(case)
        prepare = getattr(run, "prepare", lambda: None)
        prepare()
        run()
        best, total, reps = float("inf"), 0.0, 0
        while reps < 3 or (total < case.get("min_seconds", 0.5) and reps < 50):
            prepare()  # backward cases: the forward pass, untimed
            start = time.perf_counter()
            run()
            elapsed = time.perf_counter() - start
            best, total, reps = min(best, elapsed), total + elapsed, reps + 1
        results[case["name"]] = best
    json.dump({"torch": torch.__version__, "seconds": results}, sys.stdout)


if __name__ == "__main__":
    main()
