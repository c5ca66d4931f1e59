#!/usr/bin/env python3
"""Scheduler parity fixtures: diffusers' DDIMScheduler and DPMSolverMultistepScheduler built with
from_config from the real scheduler_config.json (as the reference builds DPM-Solver++ from the
DDIM config), for each timestep spacing; timesteps for 10 and 40 steps, and every step's output
for a fixed sample and a fixed sequence of model outputs.

    .venv/bin/python Scripts/make_scheduler_fixtures.py Tests/LVDModelsTests/Fixtures/configs/lvd-zs/scheduler/scheduler_config.json Tests/LVDModelsTests/Fixtures/schedulers.json
"""
import json
import sys

import numpy as np
import torch
from diffusers import DDIMScheduler, DPMSolverMultistepScheduler

CASES = [
    ("DDIMScheduler", {}),
    ("DDIMScheduler", {"timestep_spacing": "linspace"}),
    ("DDIMScheduler", {"timestep_spacing": "trailing"}),
    ("DPMSolverMultistepScheduler", {}),
    ("DPMSolverMultistepScheduler", {"timestep_spacing": "leading"}),
    ("DPMSolverMultistepScheduler", {"timestep_spacing": "trailing"}),
    ("DPMSolverMultistepScheduler", {"final_sigmas_type": "sigma_min"}),
]


def main(config_path, out):
    config = json.load(open(config_path))
    rng = np.random.default_rng(7)
    results = []
    for name, overrides in CASES:
        cls = {"DDIMScheduler": DDIMScheduler, "DPMSolverMultistepScheduler": DPMSolverMultistepScheduler}[name]
        scheduler = cls.from_config({**config, **overrides})
        for steps in (10, 40):
            scheduler = cls.from_config({**config, **overrides})
            scheduler.set_timesteps(steps)
            sample = torch.tensor(rng.standard_normal((1, 2, 3)), dtype=torch.float32)
            start = sample.clone()
            outputs, samples = [], []
            for t in scheduler.timesteps:
                eps = torch.tensor(rng.standard_normal((1, 2, 3)), dtype=torch.float32)
                sample = scheduler.step(eps, t, sample).prev_sample
                outputs.append(eps.flatten().tolist())
                samples.append(sample.flatten().tolist())
            results.append({
                "class": name, "overrides": overrides, "steps": steps,
                "timesteps": [int(t) for t in scheduler.timesteps],
                "start": start.flatten().tolist(), "model_outputs": outputs, "samples": samples,
            })
    ac = DDIMScheduler.from_config(config).alphas_cumprod
    json.dump({"cases": results, "alphas_cumprod": {str(i): float(ac[i]) for i in (0, 25, 500, 774, 999)}},
              open(out, "w"))
    print(f"{len(results)} cases -> {out}")


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
