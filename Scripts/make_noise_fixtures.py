#!/usr/bin/env python3
"""torch.randn on the CPU for a few seeds and shapes (Tests/LVDRuntimeTests/Fixtures/randn.json):
the runtime's seeded noise reproduces torch's MT19937 + Box-Muller stream.

    .venv/bin/python Scripts/make_noise_fixtures.py Tests/LVDRuntimeTests/Fixtures/randn.json
"""
import json
import sys

import torch

cases = []
for seed, shape in [(0, [4, 8]), (42, [2, 3, 5]), (12345, [1, 4, 16, 8, 8]), (2**40 + 7, [17])]:
    torch.manual_seed(seed)
    values = torch.randn(shape).flatten()
    cases.append({"seed": seed, "shape": shape, "head": values[:64].tolist(), "tail": values[-64:].tolist(),
                  "sum": float(values.double().sum())})
json.dump({"torch": torch.__version__, "cases": cases}, open(sys.argv[1], "w"))
print(len(cases), "cases")
