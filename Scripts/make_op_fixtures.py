#!/usr/bin/env python3
"""Golden fixtures for the runtime's op harness (Tests/LVDRuntimeTests/OpHarnessTests.swift).

For every case: seeded inputs, torch's forward output, and torch's gradient of
sum(output * R) with respect to every input, R a seeded random projection. The Swift harness
runs the same case by name and compares forward and backward within its stated tolerances; it
also checks its backward against finite differences on its own.

    python -m venv .venv && .venv/bin/pip install torch numpy
    .venv/bin/python Scripts/make_op_fixtures.py Tests/LVDRuntimeTests/Fixtures/ops.json

Each case: name -> (input shapes, input kind, torch function). Input kinds: "normal" N(0,1),
"positive" U(0.5, 2) (log, sqrt, pow, div denominators), "mask" {0,1}.
"""
import json
import math
import sys

import numpy as np
import torch
import torch.nn.functional as F


def gaussian_boxdiff(x):
    # METHODS.md §8.1: exp(-((d - mu) / (2 sigma))^2), 3x3, sigma 0.5, normalised; reflect pad 1.
    line = torch.tensor([math.exp(-(((d - 1.0) / (2 * 0.5)) ** 2)) for d in range(3)], dtype=torch.float64)
    kernel = torch.outer(line, line)
    kernel = (kernel / kernel.sum()).float().view(1, 1, 3, 3)
    h, w = x.shape[-2:]
    planes = x.reshape(-1, 1, h, w)
    return F.conv2d(F.pad(planes, (1, 1, 1, 1), mode="reflect"), kernel).reshape(x.shape)


def attention_out(q, k, v):
    return F.scaled_dot_product_attention(q, k, v)


def attention_probs(q, k, v):
    return torch.softmax(q @ k.transpose(-2, -1) / math.sqrt(q.shape[-1]), dim=-1)


CASES = {
    # name: (shapes, kinds, fn)
    "add_broadcast": ([[2, 3, 4], [3, 1]], ["normal", "normal"], lambda a, b: a + b),
    "sub": ([[3, 4], [3, 4]], ["normal", "normal"], lambda a, b: a - b),
    "mul_broadcast": ([[2, 1, 4], [3, 1]], ["normal", "normal"], lambda a, b: a * b),
    "div": ([[3, 4], [4]], ["normal", "positive"], lambda a, b: a / b),
    "neg": ([[5]], ["normal"], lambda a: -a),
    "exp": ([[2, 5]], ["normal"], torch.exp),
    "log": ([[2, 5]], ["positive"], torch.log),
    "sqrt": ([[2, 5]], ["positive"], torch.sqrt),
    "sin": ([[2, 5]], ["normal"], torch.sin),
    "cos": ([[2, 5]], ["normal"], torch.cos),
    "tanh": ([[2, 5]], ["normal"], torch.tanh),
    "sigmoid": ([[2, 5]], ["normal"], torch.sigmoid),
    "silu": ([[2, 5]], ["normal"], F.silu),
    "gelu": ([[2, 5]], ["normal"], F.gelu),
    "quick_gelu": ([[2, 5]], ["normal"], lambda x: x * torch.sigmoid(1.702 * x)),
    "geglu": ([[2, 3, 8]], ["normal"], lambda x: x.chunk(2, dim=-1)[0] * F.gelu(x.chunk(2, dim=-1)[1])),
    "pow3": ([[2, 5]], ["positive"], lambda x: x ** 3),
    "pow_half": ([[2, 5]], ["positive"], lambda x: x ** 0.5),
    "abs": ([[2, 5]], ["normal"], torch.abs),
    "maximum": ([[3, 4], [4]], ["normal", "normal"], torch.maximum),
    "where": ([[3, 4], [3, 4], [3, 4]], ["mask", "normal", "normal"], lambda m, a, b: torch.where(m != 0, a, b)),
    "sum_all": ([[3, 4, 5]], ["normal"], lambda x: x.sum()),
    "sum_axes_02": ([[3, 4, 5]], ["normal"], lambda x: x.sum(dim=(0, 2))),
    "sum_axis1_keep": ([[3, 4, 5]], ["normal"], lambda x: x.sum(dim=1, keepdim=True)),
    "mean_last": ([[3, 4, 5]], ["normal"], lambda x: x.mean(dim=-1)),
    "max_axis1": ([[3, 4, 5]], ["normal"], lambda x: x.amax(dim=1)),
    "max_axes_02": ([[3, 4, 5]], ["normal"], lambda x: x.amax(dim=(0, 2))),
    "topk": ([[3, 10]], ["normal"], lambda x: torch.topk(x, 4, dim=-1).values),
    "softmax_last": ([[3, 7]], ["normal"], lambda x: torch.softmax(x, dim=-1)),
    "softmax_axis1": ([[2, 5, 3]], ["normal"], lambda x: torch.softmax(x, dim=1)),
    "log_softmax": ([[3, 7]], ["normal"], lambda x: torch.log_softmax(x, dim=-1)),
    "layer_norm": ([[2, 3, 8], [8], [8]], ["normal", "normal", "normal"], lambda x, w, b: F.layer_norm(x, (8,), w, b, 1e-5)),
    "group_norm": ([[2, 8, 3, 3], [8], [8]], ["normal", "normal", "normal"], lambda x, w, b: F.group_norm(x, 4, w, b, 1e-6)),
    "group_norm_5d": ([[1, 4, 3, 2, 2], [4], [4]], ["normal", "normal", "normal"], lambda x, w, b: F.group_norm(x, 2, w, b, 1e-5)),
    "matmul_2d": ([[4, 6], [6, 5]], ["normal", "normal"], torch.matmul),
    "matmul_batched_broadcast": ([[2, 3, 4, 6], [3, 6, 5]], ["normal", "normal"], torch.matmul),
    "linear": ([[2, 3, 6], [5, 6], [5]], ["normal", "normal", "normal"], F.linear),
    "conv2d_3x3_pad1": ([[2, 3, 6, 5], [4, 3, 3, 3], [4]], ["normal"] * 3, lambda x, w, b: F.conv2d(x, w, b, padding=1)),
    "conv2d_3x3_stride2": ([[1, 3, 7, 6], [4, 3, 3, 3], [4]], ["normal"] * 3, lambda x, w, b: F.conv2d(x, w, b, stride=2, padding=1)),
    # Large enough for the Winograd path (26 images × 20 tiles ≥ 512 columns); odd extents exercise its edge tiles.
    "conv2d_3x3_winograd": ([[26, 8, 7, 9], [8, 8, 3, 3], [8]], ["normal"] * 3, lambda x, w, b: F.conv2d(x, w, b, padding=1)),
    "conv2d_1x1": ([[2, 5, 3, 4], [6, 5, 1, 1], [6]], ["normal"] * 3, lambda x, w, b: F.conv2d(x, w, b)),
    "conv2d_groups": ([[1, 4, 5, 5], [4, 1, 3, 3]], ["normal"] * 2, lambda x, w: F.conv2d(x, w, groups=4)),
    "conv3d_temporal": ([[1, 3, 4, 2, 3], [5, 3, 3, 1, 1], [5]], ["normal"] * 3, lambda x, w, b: F.conv3d(x, w, b, padding=(1, 0, 0))),
    "upsample_nearest2x": ([[1, 2, 3, 4]], ["normal"], lambda x: F.interpolate(x, scale_factor=2.0, mode="nearest")),
    "max_pool2d": ([[1, 2, 6, 6]], ["normal"], lambda x: F.max_pool2d(x, 2)),
    "attention": ([[2, 3, 5, 4], [2, 3, 6, 4], [2, 3, 6, 4]], ["normal"] * 3, attention_out),
    "attention_probabilities": ([[2, 3, 5, 4], [2, 3, 6, 4], [2, 3, 6, 4]], ["normal"] * 3, attention_probs),
    "gaussian_smooth": ([[2, 5, 6]], ["normal"], gaussian_boxdiff),
    "concat_axis1": ([[2, 3, 4], [2, 2, 4]], ["normal", "normal"], lambda a, b: torch.cat([a, b], dim=1)),
    "pad": ([[2, 3, 4]], ["normal"], lambda x: F.pad(x, (1, 2, 0, 1))),
    "permute_contiguous": ([[2, 3, 4]], ["normal"], lambda x: x.permute(2, 0, 1).contiguous()),
    "slice_step": ([[3, 10]], ["normal"], lambda x: x[:, 1:9:3]),
    "expand_mul": ([[3, 1], [3, 4]], ["normal", "normal"], lambda a, b: a.expand(3, 4) * b),
    "reshape_transpose_matmul": ([[2, 6], [3, 4]], ["normal", "normal"], lambda a, b: a.reshape(3, 4).t() @ b),
}


def f32(values):
    """float32 values with 9 significant digits: exact for float32, half the size of repr."""
    return [float("%.9g" % v) for v in values]


def make_input(rng, shape, kind):
    if kind == "positive":
        return rng.uniform(0.5, 2.0, size=shape)
    if kind == "mask":
        return (rng.uniform(size=shape) > 0.5).astype(np.float64)
    return rng.standard_normal(size=shape)


def main(path):
    rng = np.random.default_rng(20261122)
    cases = {}
    for name, (shapes, kinds, fn) in CASES.items():
        inputs = [torch.tensor(make_input(rng, s, k), dtype=torch.float32, requires_grad=(k != "mask"))
                  for s, k in zip(shapes, kinds)]
        out = fn(*inputs)
        projection = torch.tensor(rng.standard_normal(size=tuple(out.shape)), dtype=torch.float32)
        (out * projection).sum().backward()
        cases[name] = {
            "inputs": [{"shape": list(t.shape), "values": f32(t.detach().flatten().tolist())} for t in inputs],
            "output": {"shape": list(out.shape), "values": f32(out.detach().flatten().tolist())},
            "projection": f32(projection.flatten().tolist()),
            "grads": [None if t.grad is None else f32(t.grad.flatten().tolist()) for t in inputs],
        }
    with open(path, "w") as f:
        json.dump({"generator": "Scripts/make_op_fixtures.py", "torch": torch.__version__, "cases": cases}, f)
    print(f"{len(cases)} cases -> {path}")


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "Tests/LVDRuntimeTests/Fixtures/ops.json")
