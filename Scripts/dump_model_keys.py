#!/usr/bin/env python3
"""Key → shape lists of the full-size models, built from the real config.json files on torch's
meta device (no weights), for Tests/LVDModelsTests/Fixtures/keys/*.json.

    .venv/bin/pip install torch diffusers transformers
    .venv/bin/python Scripts/dump_model_keys.py ../shared/data/text-to-video-lvd-zs Tests/LVDModelsTests/Fixtures/keys

Writes unet.json (the base UNet3DConditionModel), text_encoder.json (CLIPTextModel) and vae.json
(AutoencoderKL). The GLIGEN additions (position_net, fusers) are not in diffusers' UNet3D: the
Swift test checks them against METHODS.md §10.1 and the figures of the models issue.
"""
import json
import os
import sys

import torch
from diffusers import AutoencoderKL, UNet3DConditionModel
from transformers import CLIPTextConfig, CLIPTextModel


def dump(model, path):
    keys = {name: list(tensor.shape) for name, tensor in model.state_dict().items()}
    with open(path, "w") as f:
        json.dump({"parameters": sum(t.numel() for t in model.state_dict().values()), "keys": keys}, f, indent=0)
    print(f"{path}: {len(keys)} tensors")


def main(folder, out):
    os.makedirs(out, exist_ok=True)
    with torch.device("meta"):
        unet_config = json.load(open(os.path.join(folder, "unet", "config.json")))
        unet_config = {k: v for k, v in unet_config.items() if k != "attention_type" and not k.startswith("_")}
        dump(UNet3DConditionModel(**unet_config), os.path.join(out, "unet.json"))
        dump(CLIPTextModel(CLIPTextConfig.from_pretrained(os.path.join(folder, "text_encoder"))), os.path.join(out, "text_encoder.json"))
        vae_config = {k: v for k, v in json.load(open(os.path.join(folder, "vae", "config.json"))).items() if not k.startswith("_")}
        dump(AutoencoderKL(**vae_config), os.path.join(out, "vae.json"))


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
