#!/usr/bin/env python3
"""Cross-attention maps of a text-to-video model for one prompt, as a picture and as figures.

Why guidance works or not on a model: LVD's energy moves the cross-attention of an object's
tokens into its box, so it can only steer a model whose maps for that token are spatially
selective (high where the object is drawn, low elsewhere). This script generates one video with
diffusers, records every spatial cross-attention layer's probabilities (mean over heads), and
writes a PNG: the decoded frames, then per token the map averaged over the first `--steps-avg`
sampling steps (the steps LVD guides) and over layers, upsampled to the frame. It prints, per
layer and token, the map's peak-to-mean ratio (1 = flat) and, with --box, the share of the
token's attention mass inside the box against the box's share of the frame.

    /work/venv/bin/python Scripts/attention_maps.py Models/tiny "a red ball" --tokens red ball \\
        --box 0.1 0.5 0.35 0.75 -o maps.png

Needs PyTorch and diffusers (not the build or tests).
"""
import argparse

import numpy as np
import torch
from PIL import Image


class Recorder:
    """An attention processor that computes attention as diffusers' AttnProcessor does and
    keeps the conditional half's probabilities (mean over heads) per layer and step."""

    def __init__(self, name, store):
        self.name, self.store = name, store

    def __call__(self, attn, hidden_states, encoder_hidden_states=None, attention_mask=None, temb=None, **kwargs):
        batch, length, _ = hidden_states.shape
        query = attn.head_to_batch_dim(attn.to_q(hidden_states))
        context = hidden_states if encoder_hidden_states is None else encoder_hidden_states
        key = attn.head_to_batch_dim(attn.to_k(context))
        value = attn.head_to_batch_dim(attn.to_v(context))
        probs = attn.get_attention_scores(query, key, attention_mask)
        heads = attn.heads
        maps = probs.reshape(batch, heads, length, -1).mean(1)  # (batch, cells, tokens)
        self.store.setdefault(self.name, []).append(maps[batch // 2:].detach().float().cpu())
        out = attn.batch_to_head_dim(torch.bmm(probs, value))
        return attn.to_out[1](attn.to_out[0](out))


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("model")
    parser.add_argument("prompt")
    parser.add_argument("--tokens", nargs="+", required=True, help="words of the prompt to show (their first token)")
    parser.add_argument("--box", nargs=4, type=float, metavar=("X0", "Y0", "X1", "Y1"), help="a box in [0, 1] coordinates")
    parser.add_argument("--frames", type=int, default=8)
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--steps-avg", type=int, default=10)
    parser.add_argument("--guidance", type=float, default=9.0)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("-o", "--output", default="attention.png")
    args = parser.parse_args()

    from diffusers import TextToVideoSDPipeline
    pipe = TextToVideoSDPipeline.from_pretrained(args.model, torch_dtype=torch.float32)
    store = {}
    processors = {}
    for name, processor in pipe.unet.attn_processors.items():
        # Spatial cross-attention only: temporal transformers are `temp_attentions`.
        spatial_cross = ".attentions." in name and name.endswith("attn2.processor")
        processors[name] = Recorder(name, store) if spatial_cross else processor
    pipe.unet.set_attn_processor(processors)

    ids = pipe.tokenizer(args.prompt).input_ids
    pieces = pipe.tokenizer.convert_ids_to_tokens(ids)
    positions = {}
    for word in args.tokens:
        found = [i for i, p in enumerate(pieces) if p.replace("</w>", "") == word.lower()]
        if not found:
            found = [i for i, p in enumerate(pieces) if p.replace("</w>", "").startswith(word.lower()[:3])]
        if not found:
            raise SystemExit(f"{word!r} is not a token of the prompt: {pieces}")
        positions[word] = found[0]
    print("tokens:", " ".join(f"{i}:{p}" for i, p in enumerate(pieces)))

    generator = torch.Generator().manual_seed(args.seed)
    result = pipe(args.prompt, negative_prompt="", num_frames=args.frames, num_inference_steps=args.steps,
                  guidance_scale=args.guidance, generator=generator, output_type="np")
    frames = result.frames[0]  # (frames, H, W, 3) in [0, 1]
    size = frames.shape[1]

    def layer_map(name, token):
        """(frames, side, side) for one layer: the first --steps-avg steps' mean."""
        steps = torch.stack(store[name][: args.steps_avg])  # (steps, frames, cells, tokens)
        cells = steps.shape[2]
        side = int(round(cells ** 0.5))
        return steps[..., token].mean(0).reshape(-1, side, side).numpy()

    def upsample(m):
        return np.kron(m, np.ones((size // m.shape[-1], size // m.shape[-1]), dtype=np.float32))

    rows = [np.concatenate(list(frames), axis=1)]
    means = {}
    print(f"{'layer':<40} {'token':<8} {'peak/mean':>9} {'in-box share':>12} {'box area':>8}")
    for word, token in positions.items():
        total = 0
        for name in store:
            m = layer_map(name, token)
            peak = float((m.reshape(len(m), -1).max(1) / m.reshape(len(m), -1).mean(1)).mean())
            line = f"{name.replace('.processor', ''):<40} {word:<8} {peak:9.2f}"
            if args.box:
                up = np.stack([upsample(f) for f in m])
                x0, y0, x1, y1 = (int(round(v * size)) for v in args.box)
                inside = up[:, y0:y1, x0:x1].sum() / up.sum()
                line += f" {inside:12.3f} {(x1 - x0) * (y1 - y0) / size ** 2:8.3f}"
            print(line)
            total = total + np.stack([upsample(f) for f in m])
        mean = total / len(store)
        means[word] = mean
        mean = (mean - mean.min()) / max(float(mean.max() - mean.min()), 1e-12)
        heat = np.stack([mean, mean * 0.4, 1 - mean], axis=-1)  # red = high, blue = low (per row's range)
        if args.box:
            x0, y0, x1, y1 = (int(round(v * size)) for v in args.box)
            heat[:, y0, x0:x1] = heat[:, y1 - 1, x0:x1] = heat[:, y0:y1, x0] = heat[:, y0:y1, x1 - 1] = 1
        rows.append(np.concatenate(list(heat), axis=1))
    # Token-specific maps are what layout guidance needs: two tokens' maps should differ.
    words = list(positions)
    with torch.no_grad():
        states = pipe.text_encoder(torch.tensor([ids]))[0][0]
    states = torch.nn.functional.normalize(states, dim=-1)
    for i, a in enumerate(words):
        for b in words[i + 1:]:
            maps = np.corrcoef(means[a].ravel(), means[b].ravel())[0, 1]
            text = float(states[positions[a]] @ states[positions[b]])
            print(f"{a} vs {b}: maps' correlation {maps:.3f}, text encoder states' cosine {text:.3f}")
    picture = (np.clip(np.concatenate(rows, axis=0), 0, 1) * 255).astype(np.uint8)
    Image.fromarray(picture).resize((picture.shape[1] * 3, picture.shape[0] * 3), Image.NEAREST).save(args.output)
    print("wrote", args.output, "(rows: frames, then", ", ".join(positions), ")")


if __name__ == "__main__":
    main()
