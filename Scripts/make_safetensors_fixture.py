#!/usr/bin/env python3
"""A small safetensors file written by the reference library, for the Swift reader's tests:
F32, F16 and BF16 weights of a Linear(2→3) and an I64 buffer, plus metadata.

    .venv/bin/python Scripts/make_safetensors_fixture.py Tests/LVDModelsTests/Fixtures/small.safetensors
"""
import sys

import torch
from safetensors.torch import save_file

weight = torch.tensor([[0.5, -1.25], [2.0, 0.125], [-3.0, 4.5]])
tensors = {
    "linear.weight": weight,
    "linear.bias": torch.tensor([0.1, 0.2, 0.3]),
    "half.weight": weight.half(),
    "brain.weight": weight.bfloat16(),
    "position_ids": torch.arange(5).unsqueeze(0),
}
save_file(tensors, sys.argv[1], metadata={"format": "pt", "note": "lvd test fixture"})
print(sys.argv[1])
