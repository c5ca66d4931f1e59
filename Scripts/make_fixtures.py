#!/usr/bin/env python3
"""Golden fixtures for the model parity tests: tiny random models saved with save_pretrained in a
diffusers-style folder (Tests/LVDModelsTests/Fixtures/tiny-pipeline), inputs and reference
outputs in Tests/LVDModelsTests/Fixtures/tiny-outputs.json.

    .venv/bin/pip install torch diffusers transformers safetensors
    .venv/bin/python Scripts/make_fixtures.py Tests/LVDModelsTests/Fixtures

So far: the CLIP text encoder, the AutoencoderKL, GLIGEN's PositionNet and gated fuser (diffusers'
own modules, in gligen.safetensors), and the UNet3DConditionModel (with cross-attention
probabilities captured at two keys and the gradient of a scalar of them with respect to the
latents) (weights stored in fp16, as the real
checkpoints; reference outputs computed in fp32 from those fp16 values), with the tiny tokenizer
of make_tokenizer_fixtures.py.
"""
import json
import os
import shutil
import sys

import torch
from diffusers import AutoencoderKL, DDIMScheduler, UNet3DConditionModel
from transformers import CLIPTextConfig, CLIPTextModel

PROMPTS = ["a red ball moving from the left to the right", "a realistic lively video of a scene with a cat"]


def f32(values):
    return [float("%.9g" % v) for v in values]


def tokenize(tokenizer_dir, text, length=77):
    # The Swift tokenizer is checked against transformers 4.29 separately; here the ids are
    # recorded with the fixture so the two tests stay independent.
    from transformers import CLIPTokenizer
    tok = CLIPTokenizer.from_pretrained(tokenizer_dir, pad_token="!")
    return tok(text, padding="max_length", max_length=length, truncation=True).input_ids


def main(root):
    pipeline = os.path.join(root, "tiny-pipeline")
    shutil.rmtree(pipeline, ignore_errors=True)
    os.makedirs(pipeline)
    shutil.copytree(os.path.join(root, "tokenizer", "tiny"), os.path.join(pipeline, "tokenizer"))
    vocab = json.load(open(os.path.join(pipeline, "tokenizer", "vocab.json"), encoding="utf-8"))
    outputs = {}

    torch.manual_seed(0)
    config = CLIPTextConfig(vocab_size=len(vocab), hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                            num_attention_heads=4, max_position_embeddings=77, hidden_act="gelu",
                            eos_token_id=2, bos_token_id=0, pad_token_id=1, projection_dim=32)
    text_encoder = CLIPTextModel(config).half()
    text_encoder.save_pretrained(os.path.join(pipeline, "text_encoder"))
    text_encoder = text_encoder.float().eval()
    ids = [tokenize(os.path.join(pipeline, "tokenizer"), p) for p in PROMPTS]
    with torch.no_grad():
        out = text_encoder(torch.tensor(ids))
    outputs["text_encoder"] = {
        "prompts": PROMPTS, "ids": ids,
        "last_hidden_state": {"shape": list(out.last_hidden_state.shape), "values": f32(out.last_hidden_state.flatten().tolist())},
        "pooled": {"shape": list(out.pooler_output.shape), "values": f32(out.pooler_output.flatten().tolist())},
    }

    torch.manual_seed(1)
    vae = AutoencoderKL(in_channels=3, out_channels=3, latent_channels=4, block_out_channels=[16, 32],
                        down_block_types=["DownEncoderBlock2D"] * 2, up_block_types=["UpDecoderBlock2D"] * 2,
                        layers_per_block=1, norm_num_groups=8, sample_size=16).half()
    vae.save_pretrained(os.path.join(pipeline, "vae"))
    vae = vae.float().eval()
    latents = torch.randn(2, 4, 8, 8)
    image = torch.rand(1, 3, 16, 16) * 2 - 1
    with torch.no_grad():
        decoded = vae.decode(latents / vae.config.scaling_factor).sample
        encoded = vae.encode(image).latent_dist.mean * vae.config.scaling_factor
    frames = (decoded / 2 + 0.5).clamp(0, 1).permute(0, 2, 3, 1).mul(255).to(torch.uint8)  # truncation, METHODS.md §2.6
    outputs["vae"] = {
        "latents": {"shape": list(latents.shape), "values": f32(latents.flatten().tolist())},
        "decoded": {"shape": list(decoded.shape), "values": f32(decoded.flatten().tolist())},
        "frames": {"shape": list(frames.shape), "values": frames.flatten().tolist()},
        "image": {"shape": list(image.shape), "values": f32(image.flatten().tolist())},
        "encoded": {"shape": list(encoded.shape), "values": f32(encoded.flatten().tolist())},
    }

    torch.manual_seed(2)
    unet = UNet3DConditionModel(sample_size=8, in_channels=4, out_channels=4,
                                down_block_types=("CrossAttnDownBlock3D", "DownBlock3D"),
                                up_block_types=("UpBlock3D", "CrossAttnUpBlock3D"), block_out_channels=(16, 32),
                                layers_per_block=1, norm_num_groups=8, cross_attention_dim=32, attention_head_dim=8).half()
    # Random weights everywhere (zero-initialised output layers would hide errors).
    with torch.no_grad():
        for p in unet.parameters():
            p.copy_(torch.randn_like(p.float()).half() * 0.2)
    unet.save_pretrained(os.path.join(pipeline, "unet"))
    unet = unet.float().eval()

    class Capture:
        def __init__(self):
            self.probs = None

        def __call__(self, attn, hidden_states, encoder_hidden_states=None, attention_mask=None, **kwargs):
            context = hidden_states if encoder_hidden_states is None else encoder_hidden_states
            q, k, v = (attn.head_to_batch_dim(f(x)) for f, x in ((attn.to_q, hidden_states), (attn.to_k, context), (attn.to_v, context)))
            probs = attn.get_attention_scores(q, k, None)  # ((n heads), l, s)
            self.probs = probs.reshape(-1, attn.heads, probs.shape[1], probs.shape[2])
            return attn.to_out[1](attn.to_out[0](attn.batch_to_head_dim(torch.bmm(probs, v))))

    keys = {"down.0.0": unet.down_blocks[0].attentions[0], "up.1.0": unet.up_blocks[1].attentions[0]}
    captures = {name: Capture() for name in keys}
    for name, module in keys.items():
        module.transformer_blocks[0].attn2.set_processor(captures[name])
    # Small maps keep the fixture small: 4×4 latents, an 8-token context.
    latents = torch.randn(1, 4, 3, 4, 4, requires_grad=True)
    context = torch.randn(1, 8, 32)  # the text encoder's width: the folder is one working pipeline
    sample = unet(latents, 500, encoder_hidden_states=context).sample
    projections = {name: torch.randn(c.probs.shape) for name, c in captures.items()}
    energy = sum((captures[name].probs * projections[name]).sum() for name in captures)
    energy.backward()
    outputs["unet"] = {
        "timestep": 500,
        "latents": {"shape": list(latents.shape), "values": f32(latents.detach().flatten().tolist())},
        "context": {"shape": list(context.shape), "values": f32(context.flatten().tolist())},
        "sample": {"shape": list(sample.shape), "values": f32(sample.detach().flatten().tolist())},
        "probabilities": {name: {"shape": list(c.probs.shape), "values": f32(c.probs.detach().flatten().tolist())} for name, c in captures.items()},
        "projections": {name: f32(p.flatten().tolist()) for name, p in projections.items()},
        "latents_grad": f32(latents.grad.flatten().tolist()),
    }

    from diffusers.models.attention import GatedSelfAttentionDense
    from diffusers.models.embeddings import GLIGENTextBoundingboxProjection
    from safetensors.torch import save_file
    torch.manual_seed(3)
    position_net = GLIGENTextBoundingboxProjection(positive_len=24, out_dim=24, feature_type="text-only", fourier_freqs=8)
    fuser = GatedSelfAttentionDense(query_dim=16, context_dim=24, n_heads=2, d_head=8)
    with torch.no_grad():
        for p in list(position_net.parameters()) + list(fuser.parameters()):
            p.copy_(torch.randn_like(p) * 0.3)
    state = {f"position_net.{k}": v.contiguous() for k, v in position_net.state_dict().items()}
    state.update({f"fuser.{k}": v.contiguous() for k, v in fuser.state_dict().items()})
    save_file(state, os.path.join(root, "gligen.safetensors"))
    boxes = torch.rand(2, 30, 4)
    masks = (torch.arange(30) < torch.tensor([[3], [0]])).float()  # 3 objects in frame 0, none in frame 1
    embeddings = torch.randn(2, 30, 24)
    visual = torch.randn(2, 10, 16)
    with torch.no_grad():
        objects = position_net(boxes=boxes, masks=masks, positive_embeddings=embeddings)
        fused = fuser(visual, objects)
    outputs["gligen"] = {name: {"shape": list(t.shape), "values": f32(t.flatten().tolist())} for name, t in
                         [("boxes", boxes), ("masks", masks), ("embeddings", embeddings), ("visual", visual),
                          ("objects", objects), ("fused", fused)]}
    json.dump(outputs, open(os.path.join(root, "tiny-outputs.json"), "w"))
    # The scheduler ModelScope ships (the reference samples with DPM-Solver++ built from it).
    DDIMScheduler(beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear", clip_sample=False,
                  set_alpha_to_one=False, steps_offset=1).save_pretrained(os.path.join(pipeline, "scheduler"))
    # As the real checkpoints' file (diffusers 0.17): no timestep_spacing, so DPM-Solver++ built from it
    # keeps its own default (linspace) as in the reference.
    scheduler_file = os.path.join(pipeline, "scheduler", "scheduler_config.json")
    scheduler_config = json.load(open(scheduler_file))
    for key in ("timestep_spacing", "rescale_betas_zero_snr"):
        scheduler_config.pop(key, None)
    json.dump(scheduler_config, open(scheduler_file, "w"), indent=2, sort_keys=True)
    json.dump({"_class_name": "TextToVideoSDPipeline", "_diffusers_version": "0.42.1",
               "scheduler": ["diffusers", "DDIMScheduler"],
               "text_encoder": ["transformers", "CLIPTextModel"], "tokenizer": ["transformers", "CLIPTokenizer"],
               "unet": ["diffusers", "UNet3DConditionModel"], "vae": ["diffusers", "AutoencoderKL"]},
              open(os.path.join(pipeline, "model_index.json"), "w"), indent=2)
    print("written", pipeline)


if __name__ == "__main__":
    main(sys.argv[1])
