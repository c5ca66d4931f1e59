#!/usr/bin/env python3
"""Train the bundled tiny text-to-video model on the tiny world (DESIGN.md §5), in stages:

    tokenizer  a CLIP-format byte-level BPE learnt from the captions (vocab.json, merges.txt)
    vae        a small AutoencoderKL (4 latent channels, 4× down), object pixels weighted up
    latents    every clip encoded once with the VAE (the UNet trains on these)
    unet       a small UNet3DConditionModel and CLIPTextModel together: frames as single images
               first (mostly one-object captions), then 8-frame clips
    gligen     GLIGEN adapters (PositionNet + a gated fuser per spatial transformer block) on the
               renderer's boxes, with the base frozen (as IGLIGEN does)
    profile    where a UNet training step's time goes on this device (random inputs, no data)
    import     checkpoints from an exported OUT/tiny and OUT/tiny-gligen, to go on training them
    export     fp16 safetensors with save_pretrained: OUT/tiny (a diffusers text-to-video folder)
               and OUT/tiny-gligen (the lvd-gligen layout: UNet config attention_type "gated")

Each stage checkpoints to WORK/<stage>.pt (every few minutes and on Ctrl-C) and resumes from it;
`--minutes` bounds one run of a stage, so training can span several sessions. Losses are logged
to WORK/<stage>.log. Uses a GPU when one is present. Data: `lvd world dataset` folders.

    python3 -m venv /work/venv && /work/venv/bin/pip install torch diffusers transformers safetensors
    lvd world dataset --count 4000 --max-objects 1 --min-sprite 20 --max-sprite 28 --shard-size 1000 -o data/single
    lvd world dataset --count 4000 --max-objects 4 --min-sprite 20 --max-sprite 28 --shard-size 1000 --seed 1000000 -o data/multi
    python Scripts/train_tiny.py all --data data/single data/multi --work train --out Models
"""
import argparse
import collections
import glob
import json
import math
import os
import re
import shutil
import signal
import sys
import time

import numpy as np
import torch
import torch.nn.functional as F

DEVICE = "cuda" if torch.cuda.is_available() else "cpu"
torch.set_num_threads(max(1, os.cpu_count() or 1))
# --precision bf16: the UNet's forward under autocast in bfloat16 (the loss and the optimiser stay fp32).
AUTOCAST = None
if DEVICE == "cuda":
    # TF32 for the products and convolutions (fp32 storage); cuDNN picks its algorithms by timing.
    torch.backends.cuda.matmul.allow_tf32 = True
    torch.backends.cudnn.allow_tf32 = True
    torch.backends.cudnn.benchmark = True

# ---------------------------------------------------------------------------------------------
# Data


def load_data(folders):
    """All clips of the given dataset folders: videos (N, F, H, W, 3) uint8 and their meta rows."""
    videos, rows = [], []
    for folder in folders:
        shards = sorted(glob.glob(os.path.join(folder, "meta-*.json")))
        manifest = os.path.join(folder, "dataset.json")
        if not os.path.exists(manifest):
            sys.exit(f"{folder}: no dataset.json (not an `lvd world dataset` export)")
        wanted = json.load(open(manifest))["shards"]
        if len(shards) != wanted:
            sys.exit(f"{folder}: {len(shards)} of the {wanted} shards in dataset.json are finished; "
                     "run the same `lvd world dataset` command again to complete the export")
        for path in shards:
            meta = json.load(open(path))
            video = np.load(path.replace("meta-", "videos-").replace(".json", ".npy"), mmap_mode="r")
            assert len(meta) == video.shape[0], path
            videos.append(video)
            for row in meta:
                row["single"] = len(row["objects"]) <= 1
                row["folder"] = os.path.normpath(folder)
            rows += meta
    return videos, rows


def mirrored(row):
    """A meta row for the clip flipped left-right: the same caption (captions say nothing of left
    or right), every box mirrored."""
    flip = lambda box: None if box is None else [1 - box[2], box[1], 1 - box[0], box[3]]
    return dict(row, objects=[dict(o, boxes=[flip(b) for b in o["boxes"]]) for o in row["objects"]])


def load_latents(args):
    """The meta rows and the latents the `latents` stage saved, on the training device: (rows,
    latents (N, C, F, h, w) fp16, scaling factor). With --flip latents, the mirrored clips follow the
    originals, and so do their rows."""
    _, rows = load_data(args.data)
    saved = torch.load(os.path.join(args.work, "latents.pt"), weights_only=False)
    latents = saved["latents"]
    if saved.get("flipped"):
        rows = rows + [mirrored(r) for r in rows]
    assert len(rows) == latents.shape[0], f"latents.pt has {latents.shape[0]} clips for {len(rows)} rows: run the latents stage again"
    return rows, latents.to(DEVICE), saved["scaling_factor"]


def clip_index(videos):
    index = []
    for s, v in enumerate(videos):
        index += [(s, i) for i in range(v.shape[0])]
    return index


# ---------------------------------------------------------------------------------------------
# Tokenizer: CLIP's byte-level BPE (vocab: 256 byte symbols, their </w> forms, merges, specials)


def bytes_to_unicode():
    printable = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(range(ord("®"), ord("ÿ") + 1))
    codes, extra = printable[:], 0
    for b in range(256):
        if b not in printable:
            printable.append(b)
            codes.append(256 + extra)
            extra += 1
    return dict(zip(printable, map(chr, codes)))


WORD = re.compile(r"'s|'t|'re|'ve|'m|'ll|'d|[a-z]+|[0-9]|[^\sa-z0-9]+")


def train_tokenizer(rows, out, merges_wanted=400):
    byte_chars = bytes_to_unicode()
    words = collections.Counter()
    phrases = [r["caption"] for r in rows] + [f"{c} {k}" for r in rows for k, c in ((o["class"], o["colour"]) for o in r["objects"])]
    for text in phrases:
        for w in WORD.findall(" ".join(text.lower().split())):
            symbols = [byte_chars[b] for b in w.encode("utf-8")]
            symbols[-1] += "</w>"
            words[tuple(symbols)] += 1
    merges = []
    while len(merges) < merges_wanted:
        pairs = collections.Counter()
        for word, n in words.items():
            for pair in zip(word, word[1:]):
                pairs[pair] += n
        if not pairs:
            break
        best, count = max(pairs.items(), key=lambda kv: (kv[1], kv[0]))
        if count < 2:
            break
        merges.append(best)
        merged = collections.Counter()
        for word, n in words.items():
            out_word, i = [], 0
            while i < len(word):
                if i + 1 < len(word) and (word[i], word[i + 1]) == best:
                    out_word.append(word[i] + word[i + 1])
                    i += 2
                else:
                    out_word.append(word[i])
                    i += 1
            merged[tuple(out_word)] += n
        words = merged
    base = list(byte_chars.values())
    tokens = base + [b + "</w>" for b in base] + ["".join(m) for m in merges] + ["<|startoftext|>", "<|endoftext|>"]
    vocab = {}
    for token in tokens:
        vocab.setdefault(token, len(vocab))
    os.makedirs(out, exist_ok=True)
    json.dump(vocab, open(os.path.join(out, "vocab.json"), "w", encoding="utf-8"), ensure_ascii=False)
    open(os.path.join(out, "merges.txt"), "w", encoding="utf-8").write("#version: 0.2\n" + "".join(f"{a} {b}\n" for a, b in merges))
    special = {"bos_token": "<|startoftext|>", "eos_token": "<|endoftext|>", "unk_token": "<|endoftext|>", "pad_token": "!"}
    json.dump(special, open(os.path.join(out, "special_tokens_map.json"), "w"), indent=2)
    json.dump(dict(special, model_max_length=77, do_lower_case=True, tokenizer_class="CLIPTokenizer"),
              open(os.path.join(out, "tokenizer_config.json"), "w"), indent=2)
    print(f"tokenizer: {len(merges)} merges, {len(vocab)} tokens -> {out}")


def tokenizer(work):
    from transformers import CLIPTokenizer
    return CLIPTokenizer.from_pretrained(os.path.join(work, "tokenizer"), pad_token="!")


TOKEN_IDS = {}


def token_ids(tok, texts):
    """(len(texts), 77) token ids, each text tokenized once (object phrases recur every step)."""
    missing = [t for t in dict.fromkeys(texts) if t not in TOKEN_IDS]
    if missing:
        for text, ids in zip(missing, tok(missing, padding="max_length", max_length=77, truncation=True).input_ids):
            TOKEN_IDS[text] = ids
    return torch.tensor([TOKEN_IDS[t] for t in texts])


# ---------------------------------------------------------------------------------------------
# Models


def make_vae():
    from diffusers import AutoencoderKL
    return AutoencoderKL(in_channels=3, out_channels=3, latent_channels=4, block_out_channels=[32, 64, 64],
                         down_block_types=["DownEncoderBlock2D"] * 3, up_block_types=["UpDecoderBlock2D"] * 3,
                         layers_per_block=1, norm_num_groups=16, sample_size=64)


def make_text_encoder(vocab_size):
    from transformers import CLIPTextConfig, CLIPTextModel
    # eos_token_id 2: pooled = the hidden state at argmax(ids), the end token (the last id).
    config = CLIPTextConfig(vocab_size=vocab_size, hidden_size=64, intermediate_size=256, num_hidden_layers=3,
                            num_attention_heads=4, max_position_embeddings=77, hidden_act="quick_gelu",
                            eos_token_id=2, bos_token_id=0, pad_token_id=1, projection_dim=64)
    return CLIPTextModel(config)


def make_unet():
    from diffusers import UNet3DConditionModel
    return UNet3DConditionModel(sample_size=16, in_channels=4, out_channels=4,
                                down_block_types=("CrossAttnDownBlock3D", "CrossAttnDownBlock3D", "DownBlock3D"),
                                up_block_types=("UpBlock3D", "CrossAttnUpBlock3D", "CrossAttnUpBlock3D"),
                                block_out_channels=(32, 64, 128), layers_per_block=1, norm_num_groups=16,
                                cross_attention_dim=64, attention_head_dim=8)


def spatial_blocks(unet):
    """The BasicTransformerBlocks of the spatial (cross-attention) transformers, in forward order."""
    blocks = []
    for block in list(unet.down_blocks) + [unet.mid_block] + list(unet.up_blocks):
        for transformer in getattr(block, "attentions", []):
            blocks += list(transformer.transformer_blocks)
    return blocks


class Grounding:
    """GLIGEN on diffusers' UNet3D: a PositionNet at unet.position_net and a gated fuser in each
    spatial transformer block (keys as LVD-GLIGEN checkpoints have them); the fusers read the
    current grounding tokens through a forward pre-hook (the temporal blocks get none)."""

    def __init__(self, unet):
        from diffusers.models.attention import GatedSelfAttentionDense
        from diffusers.models.embeddings import GLIGENTextBoundingboxProjection
        width = unet.config.cross_attention_dim
        unet.position_net = GLIGENTextBoundingboxProjection(positive_len=width, out_dim=width, feature_type="text-only")
        self.objects = None
        for block in spatial_blocks(unet):
            heads = block.attn1.heads
            block.fuser = GatedSelfAttentionDense(block.attn1.query_dim, width, heads, block.attn1.inner_dim // heads)
            block.register_forward_pre_hook(self.hook, with_kwargs=True)
        self.unet = unet

    def hook(self, module, args, kwargs):
        if self.objects is not None:
            kwargs = dict(kwargs)
            kwargs["cross_attention_kwargs"] = {"gligen": {"objs": self.objects}}
            return args, kwargs

    def parameters(self):
        return list(adapter_modules(self.unet).parameters())


def adapter_modules(unet):
    """The GLIGEN adapters of a UNet with them, as checkpoints hold them: the position net, then
    each spatial block's fuser."""
    return torch.nn.ModuleList([unet.position_net] + [b.fuser for b in spatial_blocks(unet)])


class Checkpoint:
    """Resumable state of one stage: modules, optimiser, step, elapsed time; saved atomically."""

    def __init__(self, path, **state):
        self.path, self.state = path, state
        self.step, self.elapsed = 0, 0.0
        # The step from which the optimiser's state is this run's own (0 unless it was not resumed):
        # a fresh Adam warms up again from there.
        self.optimiser_from = 0
        if os.path.exists(path):
            saved = torch.load(path, map_location=DEVICE, weights_only=False)
            self.step, self.elapsed = saved["step"], saved["elapsed"]
            for name, obj in state.items():
                try:
                    if name not in saved:
                        # An imported checkpoint (stage `import`) has weights and EMA, no optimiser.
                        raise ValueError("not in the checkpoint")
                    obj.load_state_dict(saved[name])
                except ValueError as error:
                    # An optimiser whose parameter groups changed starts afresh; weights never do.
                    if not isinstance(obj, torch.optim.Optimizer):
                        raise
                    print(f"{path}: {name} state not resumed ({error})")
                    self.optimiser_from = self.step
            print(f"resumed {path} at step {self.step} ({self.elapsed / 60:.1f} min trained)")

    def warmup(self, n, steps):
        """The learning-rate factor of step n: a linear ramp over `steps` from the optimiser's start."""
        return min(1, (n + 1 - self.optimiser_from) / steps)

    def save(self):
        data = {name: obj.state_dict() for name, obj in self.state.items()}
        data.update(step=self.step, elapsed=self.elapsed)
        save_atomically(data, self.path)


def save_atomically(data, path):
    """torch.save through a temporary file, so an interrupted save leaves the old file or none."""
    torch.save(data, path + ".tmp")
    os.replace(path + ".tmp", path)


class EMA:
    def __init__(self, params, cap=0.998):
        self.params = [p for p in params]
        self.shadow = [p.detach().clone() for p in self.params]
        self.cap = cap

    def update(self, step):
        decay = min(self.cap, (1 + step) / (10 + step))
        with torch.no_grad():
            # One fused update over all tensors (a loop of two kernels per tensor bounds a GPU step).
            torch._foreach_lerp_(self.shadow, [p.detach() for p in self.params], 1 - decay)

    def state_dict(self):
        return {"shadow": self.shadow}

    def load_state_dict(self, state):
        for s, v in zip(self.shadow, state["shadow"]):
            s.copy_(v)

    def copy_to(self):
        with torch.no_grad():
            for s, p in zip(self.shadow, self.params):
                p.copy_(s)


class Stop:
    """Ctrl-C (SIGINT) or SIGTERM ends the current step, then the stage saves and exits."""

    def __init__(self):
        self.requested = False
        signal.signal(signal.SIGINT, self.request)
        signal.signal(signal.SIGTERM, self.request)

    def request(self, *_):
        if self.requested:
            sys.exit(130)
        print("stopping after this step (checkpointing)…", flush=True)
        self.requested = True


def train_loop(name, args, ckpt, total_steps, step_fn, log_every=200 if DEVICE == "cuda" else 25, save_every_s=300):
    stop = Stop()
    log = open(os.path.join(args.work, f"{name}.log"), "a")
    start, last_save, losses = time.time(), time.time(), []
    base_elapsed = ckpt.elapsed
    while ckpt.step < total_steps and not stop.requested:
        if args.minutes and time.time() - start > args.minutes * 60:
            print(f"{name}: --minutes {args.minutes} reached")
            break
        losses.append(step_fn(ckpt.step))
        ckpt.step += 1
        ckpt.elapsed = base_elapsed + time.time() - start
        if ckpt.step % log_every == 0:
            line = f"{name} step {ckpt.step}/{total_steps} loss {np.mean(losses):.4f} ({ckpt.elapsed / 60:.1f} min)"
            print(line, flush=True)
            log.write(line + "\n")
            log.flush()
            losses = []
        if time.time() - last_save > save_every_s:
            ckpt.save()
            last_save = time.time()
    ckpt.save()
    return ckpt.step >= total_steps


# ---------------------------------------------------------------------------------------------
# Stages


def stage_tokenizer(args):
    _, rows = load_data(args.data)
    train_tokenizer(rows, os.path.join(args.work, "tokenizer"))


def box_weights(rows, batch_clips, frames, size, weight):
    """(B, 1, H, W): 1 + weight inside every object's box of that frame."""
    w = torch.ones(len(batch_clips), 1, size, size)
    for i, (clip, frame) in enumerate(zip(batch_clips, frames)):
        for o in rows[clip]["objects"]:
            box = o["boxes"][frame]
            if box is None:
                continue
            x0, y0, x1, y1 = (int(round(v * size)) for v in box)
            w[i, :, y0:y1, x0:x1] += weight
    return w


def stage_vae(args):
    videos, rows = load_data(args.data)
    index = clip_index(videos)
    vae = make_vae().to(DEVICE)
    opt = torch.optim.AdamW(vae.parameters(), lr=1e-3, weight_decay=0)
    ckpt = Checkpoint(os.path.join(args.work, "vae.pt"), vae=vae, opt=opt)
    rng = np.random.default_rng(ckpt.step)
    print(f"vae: {sum(p.numel() for p in vae.parameters()) / 1e6:.2f} M parameters on {DEVICE}")

    def step(n):
        for g in opt.param_groups:
            g["lr"] = 1e-3 * ckpt.warmup(n, 100) * (0.1 if n > 0.8 * args.vae_steps else 1)
        picks = rng.integers(0, len(index), args.vae_batch)
        frames = rng.integers(0, videos[0].shape[1], args.vae_batch)
        x = np.stack([videos[index[p][0]][index[p][1], f] for p, f in zip(picks, frames)])
        x = torch.from_numpy(x).permute(0, 3, 1, 2).float().div(127.5).sub(1).to(DEVICE)
        w = box_weights(rows, picks, frames, x.shape[-1], 4.0).to(DEVICE)
        if n < 0.85 * args.vae_steps and args.vae_crop < x.shape[-1]:
            # Mostly random crops (4× cheaper at 32 px); full frames at the end settle the norms.
            c = args.vae_crop
            y0, x0 = (int(v) for v in rng.integers(0, x.shape[-1] - c + 1, 2))
            x, w = x[..., y0:y0 + c, x0:x0 + c], w[..., y0:y0 + c, x0:x0 + c]
        posterior = vae.encode(x).latent_dist
        recon = vae.decode(posterior.sample()).sample
        err = (recon - x).abs() + (recon - x) ** 2
        loss = (err * w).mean() + 1e-6 * posterior.kl().mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        return loss.item()

    return train_loop("vae", args, ckpt, args.vae_steps, step)


def optimise(loss, opt, params, ema, step):
    """One optimiser step on `params` (gradients clipped to norm 1), then the EMA; the loss value."""
    opt.zero_grad(set_to_none=True)
    loss.backward()
    torch.nn.utils.clip_grad_norm_(params, 1.0)
    opt.step()
    ema.update(step)
    return loss.item()


def trained_vae(args):
    vae = make_vae()
    vae.load_state_dict(torch.load(os.path.join(args.work, "vae.pt"), map_location="cpu", weights_only=False)["vae"])
    return vae.to(DEVICE).eval()


def stage_latents(args):
    videos, rows = load_data(args.data)
    vae = trained_vae(args)
    chunk = 128 if DEVICE == "cuda" else 16
    out = []
    with torch.no_grad():
        for flip in ([False, True] if args.flip else [False]):
            for v in videos:
                n, frames = v.shape[:2]
                for start in range(0, n, chunk):
                    x = torch.from_numpy(np.ascontiguousarray(v[start:start + chunk])).to(DEVICE).reshape(-1, *v.shape[2:])
                    x = x.permute(0, 3, 1, 2).float().div(127.5).sub(1)
                    if flip:
                        x = x.flip(-1)
                    z = vae.encode(x).latent_dist.mean
                    out.append(z.reshape(-1, frames, *z.shape[1:]).permute(0, 2, 1, 3, 4).half().cpu())
                print(f"latents: {sum(len(o) for o in out)} clips", flush=True)
    latents = torch.cat(out)
    scaling = torch.load(os.path.join(args.work, "vae.pt"), weights_only=False).get("scaling_factor") or 1 / latents.float().std().item()
    save_atomically({"latents": latents, "scaling_factor": scaling, "flipped": args.flip}, os.path.join(args.work, "latents.pt"))
    print(f"latents {tuple(latents.shape)}, scaling_factor {scaling:.4f}" + (" (with every clip flipped left-right)" if args.flip else ""))


def noise_schedule():
    from diffusers import DDPMScheduler
    # ModelScope's training schedule (scaled_linear 0.00085…0.012 over 1000 steps).
    return DDPMScheduler(beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear", num_train_timesteps=1000)


def diffusion_loss(unet, scheduler, z, context, high_noise=0.0):
    """ε-prediction loss with min-SNR-5 weighting on latents z (B, C, F, h, w); a `high_noise`
    share of the samples takes its timestep from the noisier half (t ≥ 500) only."""
    noise = torch.randn_like(z)
    t = torch.randint(0, 1000, (z.shape[0],), device=z.device)
    if high_noise > 0:
        high = torch.rand(z.shape[0], device=z.device) < high_noise
        t = torch.where(high, torch.randint(500, 1000, t.shape, device=z.device), t)
    noisy = scheduler.add_noise(z, noise, t)
    with torch.autocast(device_type=DEVICE, dtype=AUTOCAST or torch.bfloat16, enabled=AUTOCAST is not None):
        prediction = unet(noisy, t, encoder_hidden_states=context).sample
    alphas = scheduler.alphas_cumprod.to(z.device)[t]
    snr = alphas / (1 - alphas)
    weight = torch.clamp(snr, max=5.0) / snr
    per = ((prediction.float() - noise) ** 2).mean(dim=(1, 2, 3, 4))
    return (per * weight).mean()


class AttentionMaps:
    """Records the attention probabilities (mean over heads, with gradient) of the given attention
    modules' forward passes, computed as diffusers' AttnProcessor computes them: the UNet's spatial
    cross-attention maps (cells × tokens), or with `objects` = N the GLIGEN fusers' self-attention
    from the visual cells to the N grounding tokens appended to them (cells × N)."""

    def __init__(self, modules, objects=0):
        self.maps, self.on, self.objects = [], False, objects
        for module in modules:
            module.set_processor(self)

    def __call__(self, attn, hidden_states, encoder_hidden_states=None, attention_mask=None, temb=None, **kwargs):
        batch, length, _ = hidden_states.shape
        context = hidden_states if encoder_hidden_states is None else encoder_hidden_states
        query = attn.head_to_batch_dim(attn.to_q(hidden_states))
        key = attn.head_to_batch_dim(attn.to_k(context))
        value = attn.head_to_batch_dim(attn.to_v(context))
        probs = attn.get_attention_scores(query, key, attention_mask)
        if self.on:
            mean = probs.reshape(batch, attn.heads, length, -1).mean(1)
            self.maps.append(mean[:, :length - self.objects, length - self.objects:] if self.objects else mean)
        out = attn.batch_to_head_dim(torch.bmm(probs, value))
        return attn.to_out[1](attn.to_out[0](out))


def spatial_cross_attention(unet):
    return [m for name, m in unet.named_modules() if ".attentions." in name and name.endswith("attn2")]


def word_positions(tok, caption, word):
    """Token positions of `word` in the tokenized caption (with the start token at 0), or [] when
    the word is absent or occurs more than once (then it does not say which object it names)."""
    pieces = tok.tokenize(caption.lower())
    target = tok.tokenize(word.lower())
    starts = [i for i in range(len(pieces) - len(target) + 1) if pieces[i:i + len(target)] == target]
    if len(starts) != 1 or starts[0] + len(target) >= 76:
        return []
    return [1 + starts[0] + k for k in range(len(target))]


def token_grounding_loss(maps, targets, frames):
    """TokenCompose-style grounding on boxes: for each (clip, frame, token, box) target, the
    token's attention over the cells, normalised to sum 1, should lie inside the box:
    (1 − mass inside)². Mean over targets and layers. `maps` are (clips·frames, cells, tokens).
    All targets of a layer at once (a loop over targets bounds a GPU step)."""
    if not targets or not maps:
        return None
    device = maps[0].device
    which = torch.tensor([clip * frames + frame for clip, frame, _, _ in targets], device=device)
    boxes = torch.tensor([box for _, _, _, box in targets], device=device, dtype=torch.float32)
    pairs = [(t, k) for t, (_, _, positions, _) in enumerate(targets) for k in positions]
    select = torch.zeros(len(targets), maps[0].shape[-1], device=device)
    select[torch.tensor([t for t, _ in pairs], device=device), torch.tensor([k for _, k in pairs], device=device)] = 1
    losses = []
    for probs in maps:
        side = int(round(probs.shape[1] ** 0.5))
        a = torch.bmm(probs[which], select.unsqueeze(-1).to(probs.dtype)).squeeze(-1).float()
        a = a / a.sum(1, keepdim=True).clamp_min(1e-8)
        xs = torch.arange(side, device=device, dtype=torch.float32) + 0.5
        inside_x = (xs >= boxes[:, 0:1] * side) & (xs <= boxes[:, 2:3] * side)
        inside_y = (xs >= boxes[:, 1:2] * side) & (xs <= boxes[:, 3:4] * side)
        mask = (inside_y[:, :, None] & inside_x[:, None, :]).reshape(len(targets), -1).float()
        valid = mask.sum(1) > 0
        losses.append(((1 - (a * mask).sum(1)) ** 2)[valid])
    losses = torch.cat(losses)
    return losses.mean() if losses.numel() else None


def captions_for(rows, picks, rng, drop=0.1):
    return ["" if rng.random() < drop else rows[p]["caption"] for p in picks]


def adam(groups, weight_decay):
    """AdamW over parameter groups (each with its "base_lr"); fused kernels on a GPU."""
    for g in groups:
        g["lr"] = g["base_lr"]
    return torch.optim.AdamW(groups, weight_decay=weight_decay, **({"fused": True} if DEVICE == "cuda" else {}))


def gate_groups(unet, params, lr, scale):
    """The GLIGEN adapters' parameter groups: the fusers' gates start closed (tanh(0) = 0) and Adam
    moves them by about lr a step, so at the adapters' rate they stay nearly shut for hundreds of
    steps: they learn at `scale` times it."""
    gates = [b.fuser.alpha_attn for b in spatial_blocks(unet)] + [b.fuser.alpha_dense for b in spatial_blocks(unet)]
    rest = [p for p in params if all(p is not g for g in gates)]
    return [{"params": rest, "base_lr": lr}, {"params": gates, "base_lr": lr * scale}]


def stage_unet(args):
    rows, latents, scaling = load_latents(args)
    tok = tokenizer(args.work)
    ids = token_ids(tok, [r["caption"] for r in rows] + [""])
    empty = ids[-1]
    text = make_text_encoder(len(tok.get_vocab())).to(DEVICE)
    unet = make_unet()
    params = list(unet.parameters()) + list(text.parameters())
    groups = [{"params": params, "base_lr": args.lr}]
    # --joint-gligen: the GLIGEN adapters learn together with the base, which then learns features
    # that say where a cell is (a frozen base trained without boxes has no use for x, and its
    # 16×16 features barely tell it: Models/README.md). Their parameters come after the base's, so
    # the base's checkpoint reads as a plain one (trained_base) and the adapters go to gligen.pt.
    grounding = Grounding(unet) if args.joint_gligen > 0 else None
    adapter_params = grounding.parameters() if grounding else []
    if grounding:
        groups += gate_groups(unet, adapter_params, args.lr, args.gate_lr_scale)
    unet.to(DEVICE)  # with the adapters (the parameters move in place)
    opt = adam(groups, weight_decay=0.01)
    ema = EMA(params + adapter_params)
    if grounding:
        with_adapters(args.work, unet)
    ckpt = Checkpoint(os.path.join(args.work, "unet.pt"), unet=unet, text=text, opt=opt, ema=ema)
    started = time.time()

    def progress(n):
        """How far along the schedule step n is: its share of --unet-steps, or with
        --schedule-by-time the share of --minutes gone, whichever is further."""
        by_time = (time.time() - started) / (60 * args.minutes) if args.schedule_by_time and args.minutes else 0
        return min(1.0, max(n / args.unet_steps, by_time))
    scheduler = noise_schedule()
    scheduler.alphas_cumprod = scheduler.alphas_cumprod.to(DEVICE)
    chosen = set(os.path.normpath(f) for f in (args.unet_data or args.data))
    single = np.array([i for i, r in enumerate(rows) if r["single"] and r["folder"] in chosen])
    everything = np.array([i for i, r in enumerate(rows) if r["folder"] in chosen])
    rng = np.random.default_rng(1000 + ckpt.step)
    adapter_count = sum(p.numel() for p in adapter_params)
    print(f"unet: {(sum(p.numel() for p in unet.parameters()) - adapter_count) / 1e6:.2f} M, text encoder "
          f"{sum(p.numel() for p in text.parameters()) / 1e6:.2f} M, GLIGEN adapters {adapter_count / 1e6:.2f} M parameters on {DEVICE}")
    recorder = AttentionMaps(spatial_cross_attention(unet)) if args.token_loss > 0 else None
    # GLIGEN's position net reads the text encoder's pooled output of each object's phrase ("red
    # ball"), which the UNet never trains: without a term of its own it stays nearly the same for
    # every phrase (cosine 0.85–0.99 between "red ball", "red car", "bird", …). A linear probe that must name the phrase's class and colour
    # from it makes it say which object it is. The probe is a throwaway (not checkpointed: it
    # relearns in a few steps and is not exported).
    classes = sorted({o["class"] for r in rows for o in r["objects"]})
    colours = sorted({o["colour"] for r in rows for o in r["objects"]})
    probe = torch.nn.Linear(text.config.hidden_size, len(classes) + len(colours)).to(DEVICE) if args.phrase_loss > 0 else None
    probe_opt = torch.optim.AdamW(probe.parameters(), lr=1e-3) if probe is not None else None

    def phrase_loss(picks):
        objects = [o for p in picks for o in rows[p]["objects"]][:48]
        if not objects:
            return None
        phrases = [phrase_for(o, rng) for o in objects]
        logits = probe(text(token_ids(tok, phrases).to(DEVICE)).pooler_output)
        kind = torch.tensor([classes.index(o["class"]) for o in objects], device=DEVICE)
        colour = torch.tensor([colours.index(o["colour"]) for o in objects], device=DEVICE)
        named = torch.tensor([o["colour"] in ph.split() for o, ph in zip(objects, phrases)], device=DEVICE).float()
        colour_ce = F.cross_entropy(logits[:, len(classes):], colour, reduction="none")
        return F.cross_entropy(logits[:, :len(classes)], kind) + (colour_ce * named).sum() / named.sum().clamp_min(1)
    # Each caption's objects as (token positions, object) for the token-grounding loss.
    grounded_words = {}

    def grounding_targets(p):
        if p not in grounded_words:
            grounded_words[p] = [(positions, obj) for obj in rows[p]["objects"]
                                 for word in (obj["colour"], obj["class"])
                                 if (positions := word_positions(tok, rows[p]["caption"], word))]
        return grounded_words[p]

    def step(n):
        # Warm-up, then a cosine decay to a tenth over the whole run (a resumed run with a larger
        # --unet-steps picks the curve up where the step count is).
        done = progress(n)
        decay = 0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * done))
        for g in opt.param_groups:
            g["lr"] = g["base_lr"] * ckpt.warmup(n, 200) * decay
        # Image phase first; after it, joint training as ModelScope's: clips, with every
        # third step on single frames so appearance keeps learning from many captions at once.
        images = done < args.image_fraction or n % 3 == 2
        pool = single if done < args.image_fraction / 2 else everything
        count = args.image_batch if images else args.video_batch
        picks = rng.choice(pool, count)
        if images:
            frames = rng.integers(0, latents.shape[2], count)
            z = latents[picks, :, frames].unsqueeze(2)
        else:
            z = latents[picks]
        z = z.float() * scaling
        drop = rng.random(count) < 0.1
        batch_ids = torch.stack([empty if d else ids[p] for p, d in zip(picks, drop)]).to(DEVICE)
        context = text(batch_ids).last_hidden_state
        clip_frames = [[f] for f in frames] if images else [list(range(z.shape[2]))] * count
        if grounding and rng.random() < args.joint_gligen:
            grounding.objects = grounding_tokens(unet, tok, text, rows, picks, clip_frames, rng)
        if recorder is not None:
            recorder.maps, recorder.on = [], True
        loss = diffusion_loss(unet, scheduler, z, context)
        if grounding:
            grounding.objects = None
        if probe is not None and (named := phrase_loss(picks)) is not None:
            loss = loss + args.phrase_loss * named
            if n % 25 == 0:
                print(f"unet step {n}: phrase loss {named.item():.4f}", flush=True)
        if recorder is None:
            return optimise_with_probe(loss, n)
        recorder.on = False
        targets = [(i, k, positions, obj["boxes"][f])
                   for i, (p, d) in enumerate(zip(picks, drop)) if not d
                   for positions, obj in grounding_targets(p)
                   for k, f in enumerate(clip_frames[i]) if obj["boxes"][f] is not None]
        token_loss = token_grounding_loss(recorder.maps, targets, z.shape[2])
        recorder.maps = []
        if token_loss is not None:
            loss = loss + args.token_loss * token_loss
            if n % 25 == 0:
                print(f"unet step {n}: token-grounding loss {token_loss.item():.4f} over {len(targets)} targets", flush=True)
        return optimise_with_probe(loss, n)

    def optimise_with_probe(loss, n):
        if probe is None:
            return optimise(loss, opt, params + adapter_params, ema, n)
        probe_opt.zero_grad(set_to_none=True)
        value = optimise(loss, opt, params + adapter_params, ema, n)
        probe_opt.step()
        return value

    finished = train_loop("unet", args, ckpt, args.unet_steps, step)
    if grounding:
        # The adapters as the gligen stage saves them, with their EMA weights (the tail of the EMA).
        adapters = adapter_modules(unet)
        save_atomically({"adapters": adapters.state_dict(), "ema": {"shadow": ema.shadow[len(params):]},
                         "step": ckpt.step, "elapsed": ckpt.elapsed}, os.path.join(args.work, "gligen.pt"))
        print(f"unet: GLIGEN adapters trained with the base -> {os.path.join(args.work, 'gligen.pt')}")
    return finished


def with_adapters(work, unet):
    """Before --joint-gligen resumes a plain base checkpoint (the base trained alone, or imported):
    rewrite WORK/unet.pt with GLIGEN adapters in it (`unet` carries them), those of WORK/gligen.pt
    where there is one (weights and EMA), else `unet`'s fresh ones, so the joint stage goes on from
    both. A checkpoint that already holds adapters is left as it is."""
    path = os.path.join(work, "unet.pt")
    if not os.path.exists(path):
        return
    saved = torch.load(path, map_location="cpu", weights_only=False)
    if any(".fuser." in k for k in saved["unet"]):
        return
    make_unet().load_state_dict(base_weights(saved["unet"]))  # the base must be whole
    adapters = adapter_modules(unet)
    adapters_path = os.path.join(work, "gligen.pt")
    if os.path.exists(adapters_path):
        trained = torch.load(adapters_path, map_location="cpu", weights_only=False)
        adapters.load_state_dict(trained["adapters"])
        shadow = trained["ema"]["shadow"]
        print(f"{path}: joint training goes on from the adapters of {adapters_path} (step {trained['step']})")
    else:
        shadow = [p.detach().cpu().clone() for p in adapters.parameters()]
        print(f"{path}: joint training starts fresh adapters on this base")
    merged = {k: v.detach().cpu() for k, v in unet.state_dict().items()}
    merged.update(base_weights(saved["unet"]))
    saved["unet"] = merged
    saved["ema"] = {"shadow": list(saved["ema"]["shadow"]) + [t.detach().cpu().clone() for t in shadow]}
    saved.pop("opt", None)  # the optimiser's groups change: it starts afresh (and warms up again)
    save_atomically(saved, path)


def base_weights(state):
    """A UNet state without GLIGEN adapters (a --joint-gligen checkpoint holds them too)."""
    return {k: v for k, v in state.items() if not (k.startswith("position_net.") or ".fuser." in k)}


def trained_base(args):
    tok = tokenizer(args.work)
    text = make_text_encoder(len(tok.get_vocab()))
    unet = make_unet()
    params = list(unet.parameters()) + list(text.parameters())
    ema = EMA(params)
    saved = torch.load(os.path.join(args.work, "unet.pt"), map_location="cpu", weights_only=False)
    unet.load_state_dict(base_weights(saved["unet"]))
    text.load_state_dict(saved["text"])
    ema.load_state_dict(saved["ema"])  # the base's part: a --joint-gligen EMA lists the adapters after it
    ema.copy_to()
    return tok, text.to(DEVICE).eval(), unet.to(DEVICE)


def phrase_for(obj, rng):
    """How layouts name objects: "red ball", "a red ball", "ball", "car 1"."""
    choice = rng.integers(0, 5)
    if choice == 0:
        return f"{obj['colour']} {obj['class']}"
    if choice == 1:
        return ("an " if obj["colour"][0] in "aeiou" else "a ") + f"{obj['colour']} {obj['class']}"
    if choice == 2:
        return obj["class"]
    if choice == 3:
        return f"{obj['class']} {rng.integers(1, 5)}"
    return f"{obj['colour']} {obj['class']} {rng.integers(1, 5)}"


def grounding_tokens(unet, tok, text, rows, picks, chosen_frames, rng, mirror=""):
    """The fusers' grounding tokens (B·F, 30, width) for clips `picks` at their `chosen_frames`:
    each object's normalised xyxy box in the frame and its phrase's pooled text embedding;
    `mirror` "x" flips the boxes left-right, "y" upside down (controls: the right phrases at the
    wrong places)."""
    width = unet.config.cross_attention_dim
    count = len(chosen_frames[0])
    boxes = np.zeros((len(picks), count, 30, 4), dtype=np.float32)
    masks = np.zeros((len(picks), count, 30), dtype=np.float32)
    phrases, slots = [], []
    for i, p in enumerate(picks):
        for j, obj in enumerate(rows[p]["objects"]):
            phrases.append(phrase_for(obj, rng))
            slots.append((i, j))
            for k, f in enumerate(chosen_frames[i]):
                box = obj["boxes"][f]
                if box is not None:
                    x0, y0, x1, y1 = box
                    if mirror == "x":
                        box = [1 - x1, y0, 1 - x0, y1]
                    elif mirror == "y":
                        box = [x0, 1 - y1, x1, 1 - y0]
                    boxes[i, k, j] = box
                    masks[i, k, j] = 1
    embeddings = torch.zeros(len(picks), count, 30, width, device=DEVICE)
    if phrases:
        with torch.no_grad():
            pooled = text(token_ids(tok, phrases).to(DEVICE)).pooler_output
        clip, slot = (torch.tensor(v, device=DEVICE) for v in zip(*slots))
        embeddings[clip, :, slot] = pooled.unsqueeze(1).expand(-1, count, -1)
    m = torch.from_numpy(masks).to(DEVICE).reshape(-1, 30)
    return unet.position_net(boxes=torch.from_numpy(boxes).to(DEVICE).reshape(-1, 30, 4), masks=m,
                             positive_embeddings=embeddings.reshape(-1, 30, width) * m.unsqueeze(-1))


def box_targets(rows, picks, chosen_frames):
    """The fusers' token_grounding_loss targets: (clip, frame, [grounding token], box) for every
    object of clips `picks` in each of their `chosen_frames` where it is visible (object j's
    token is slot j, as grounding_tokens lays them out)."""
    return [(i, k, [j], obj["boxes"][f]) for i, p in enumerate(picks)
            for j, obj in enumerate(rows[p]["objects"])
            for k, f in enumerate(chosen_frames[i]) if obj["boxes"][f] is not None]


class GroundingData:
    """What the GLIGEN stages read: the clips' meta rows, their latents (scaled as the UNet saw
    them), and the clips of --gligen-data that have objects."""

    def __init__(self, args):
        self.rows, self.latents, self.scaling = load_latents(args)
        chosen = set(os.path.normpath(f) for f in (args.gligen_data or args.data))
        self.with_objects = np.array([i for i, r in enumerate(self.rows) if r["objects"] and r["folder"] in chosen])

    def frames(self, picks, chosen_frames):
        """Latents (B, C, F, h, w) of clips `picks` at their `chosen_frames`."""
        clips = torch.as_tensor(np.asarray(picks), device=self.latents.device)[:, None]
        frames = torch.as_tensor(np.asarray(chosen_frames), device=self.latents.device)
        return self.latents[clips, :, frames].permute(0, 2, 1, 3, 4).float() * self.scaling


def stage_gligen(args):
    data = GroundingData(args)
    rows = data.rows
    tok, text, unet = trained_base(args)
    for p in list(unet.parameters()) + list(text.parameters()):
        p.requires_grad_(False)
    grounding = Grounding(unet)
    unet.to(DEVICE)
    params = grounding.parameters()
    opt = adam(gate_groups(unet, params, args.lr, args.gate_lr_scale), weight_decay=0.0)
    # A short EMA: the adapters train for few steps, and a long average would trail them.
    ema = EMA(params, cap=0.99)
    ckpt = Checkpoint(os.path.join(args.work, "gligen.pt"), adapters=adapter_modules(unet),
                      opt=opt, ema=ema)
    ids = token_ids(tok, [r["caption"] for r in rows] + [""])
    scheduler = noise_schedule()
    scheduler.alphas_cumprod = scheduler.alphas_cumprod.to(DEVICE)
    rng = np.random.default_rng(5000 + ckpt.step)
    frames = data.latents.shape[2]
    # The fusers see the visual cells without any position code (as in GLIGEN); the UNet's
    # features say where a cell is only as far as zero padding and the backgrounds (sky above,
    # ground below) tell them — a linear probe reads x from the 16×16 fusers' inputs with R² ≈ 0.2
    # — and after 1900 steps the adapters predicted noise exactly as well with every box mirrored
    # left-right (gligen-check). --gligen-box-loss makes each grounding token's attention from the
    # cells lie inside its box (the token-grounding loss on the fusers' maps), so that what a
    # token carries lands where its box is. 400 steps at weight 1 opened the mirrored gap, but the
    # prediction with grounding became worse than without it and the boxes were still not
    # followed (Models/README.md): a smaller weight from the start is the next thing to try.
    recorder = AttentionMaps([b.fuser.attn for b in spatial_blocks(unet)], objects=30) if args.gligen_box_loss > 0 else None
    print(f"gligen adapters: {sum(p.numel() for p in params) / 1e6:.2f} M parameters on {DEVICE}")

    def step(n):
        for g in opt.param_groups:
            g["lr"] = g["base_lr"] * ckpt.warmup(n, 100)
        # The fusers work frame by frame: single frames (a batch of many layouts) teach them
        # faster than whole clips; every other step takes 8-frame clips.
        clips = n % 2 == 1
        picks = rng.choice(data.with_objects, args.video_batch if clips else args.image_batch)
        chosen_frames = [list(range(frames))] * len(picks) if clips else [[f] for f in rng.integers(0, frames, len(picks))]
        z = data.frames(picks, chosen_frames)
        with torch.no_grad():
            context = text(ids[picks].to(DEVICE)).last_hidden_state
        grounding.objects = grounding_tokens(unet, tok, text, rows, picks, chosen_frames, rng)
        if recorder is not None:
            recorder.maps, recorder.on = [], True
        loss = diffusion_loss(unet, scheduler, z, context, high_noise=args.gligen_high_noise)
        grounding.objects = None
        if recorder is not None:
            recorder.on = False
            targets = box_targets(rows, picks, chosen_frames)
            placed = token_grounding_loss(recorder.maps, targets, len(chosen_frames[0]))
            recorder.maps = []
            if placed is not None:
                loss = loss + args.gligen_box_loss * placed
                if n % 25 == 0:
                    print(f"gligen step {n}: box loss {placed.item():.4f} over {len(targets)} targets", flush=True)
        return optimise(loss, opt, params, ema, n)

    return train_loop("gligen", args, ckpt, args.gligen_steps, step)


def write_pipeline(folder, tokenizer_dir, text, vae, unet, scaling, share_from=None, method_params=None):
    from diffusers import DDIMScheduler
    shutil.rmtree(folder, ignore_errors=True)
    os.makedirs(folder)
    if share_from:
        # The GLIGEN folder shares everything but the UNet with the base folder.
        for part in ("tokenizer", "text_encoder", "vae", "scheduler"):
            os.symlink(os.path.join("..", os.path.basename(share_from), part), os.path.join(folder, part))
    else:
        shutil.copytree(tokenizer_dir, os.path.join(folder, "tokenizer"))
        text.half().save_pretrained(os.path.join(folder, "text_encoder"))
        vae.register_to_config(scaling_factor=scaling)
        vae.half().save_pretrained(os.path.join(folder, "vae"))
        DDIMScheduler(beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear", clip_sample=False,
                      set_alpha_to_one=False, steps_offset=1).save_pretrained(os.path.join(folder, "scheduler"))
    unet.half().save_pretrained(os.path.join(folder, "unet"))
    # lvd's generation defaults for this folder: the clip length it was trained on, and the empty
    # negative prompt its unconditional branch learnt (captions were dropped to ""); the base
    # folder sends lvd-gligen to the GLIGEN folder beside it.
    settings = {"frames": 8, "steps": 20, "negative_prompt": ""}
    variants = {"lvd-gligen": "../tiny-gligen"}  # the methods that run on the GLIGEN folder
    methods = {} if share_from else {method: {"model": path} for method, path in variants.items()}
    # Method parameters that suit this checkpoint (--method-params), e.g. LVD's threshold: in the
    # folder the method runs on (lvd refuses them beside a "model" entry, where they would be ignored).
    for method, params in (method_params or {}).items():
        runs_on_gligen = method in variants
        if runs_on_gligen == bool(share_from):
            methods.setdefault(method, {})["params"] = params
    if methods:
        settings["methods"] = methods
    with open(os.path.join(folder, "lvd.json"), "w") as f:
        json.dump(settings, f, indent=2)
        f.write("\n")
    json.dump({"_class_name": "TextToVideoSDPipeline", "_diffusers_version": "0.42.1",
               "scheduler": ["diffusers", "DDIMScheduler"],
               "text_encoder": ["transformers", "CLIPTextModel"], "tokenizer": ["transformers", "CLIPTokenizer"],
               "unet": ["diffusers", "UNet3DConditionModel"], "vae": ["diffusers", "AutoencoderKL"]},
              open(os.path.join(folder, "model_index.json"), "w"), indent=2)


def trained_gligen(args):
    """The trained base with the GLIGEN checkpoint's adapters (their EMA weights) on its UNet."""
    tok, text, unet = trained_base(args)
    grounding = Grounding(unet)
    adapters = adapter_modules(unet)
    saved = torch.load(os.path.join(args.work, "gligen.pt"), map_location="cpu", weights_only=False)
    adapters.load_state_dict(saved["adapters"])
    ema = EMA(grounding.parameters())
    ema.load_state_dict(saved["ema"])
    ema.copy_to()
    unet.to(DEVICE)
    return tok, text, unet, grounding


def stage_gligen_check(args):
    """Whether the adapters use the boxes: the noise-prediction error on single frames of clips with
    objects (--gligen-data) at a few timesteps, with the true boxes, with the boxes mirrored
    left-right and upside down, and with no grounding, on the same noise. Adapters that place
    objects where their boxes say predict better with the true boxes than with the mirrored ones.
    (The world's backgrounds differ top to bottom, not left to right: the UNet's features say
    where a cell is vertically more than horizontally.) Also, per timestep, the box loss of
    --gligen-box-loss on the fusers' attention, and how much of a cell's position a linear probe
    reads from each fuser's input (R² of x and y, fitted on half the frames, scored on the rest):
    what a fuser cannot tell apart, it cannot place."""
    data = GroundingData(args)
    rows = data.rows
    tok, text, unet, grounding = trained_gligen(args)
    unet.eval()
    fusers = [b.fuser for b in spatial_blocks(unet)]
    recorder = AttentionMaps([f.attn for f in fusers], objects=30)
    inputs = []
    for fuser in fusers:
        fuser.register_forward_pre_hook(lambda module, given: inputs.append(given[0]) if recorder.on else None)
    scheduler = noise_schedule()
    rng = np.random.default_rng(123)
    picks = rng.choice(data.with_objects, args.check_samples, replace=False)
    chosen_frames = [[f] for f in rng.integers(0, data.latents.shape[2], len(picks))]
    z = data.frames(picks, chosen_frames)
    ids = token_ids(tok, [rows[p]["caption"] for p in picks])
    targets = box_targets(rows, picks, chosen_frames)
    with torch.no_grad():
        context = text(ids.to(DEVICE)).last_hidden_state
        tokens = {"true boxes": grounding_tokens(unet, tok, text, rows, picks, chosen_frames, np.random.default_rng(7)),
                  "mirrored x": grounding_tokens(unet, tok, text, rows, picks, chosen_frames, np.random.default_rng(7), mirror="x"),
                  "mirrored y": grounding_tokens(unet, tok, text, rows, picks, chosen_frames, np.random.default_rng(7), mirror="y"),
                  "no grounding": None}
        print(f"gligen check: {len(picks)} frames with objects; mean squared noise-prediction error")
        for t in (200, 500, 700, 900):
            noise = torch.randn(z.shape, generator=torch.Generator().manual_seed(t)).to(DEVICE)
            steps = torch.full((len(picks),), t, device=DEVICE)
            noisy = scheduler.add_noise(z, noise, steps)
            errors = {}
            for name, objects in tokens.items():
                grounding.objects = objects
                recorder.on = name == "true boxes"
                errors[name] = ((unet(noisy, steps, encoder_hidden_states=context).sample - noise) ** 2).mean().item()
                recorder.on = False
            grounding.objects = None
            gaps = [f"{100 * (errors[k] - errors['true boxes']) / errors[k]:+.1f} % vs {k}" for k in ("mirrored x", "mirrored y")]
            print(f"  t={t}: " + ", ".join(f"{k} {v:.5f}" for k, v in errors.items()) + "; true boxes " + ", ".join(gaps))
            placed = token_grounding_loss(recorder.maps, targets, 1)
            print(f"    box loss {placed.item():.3f}; position R² x/y of each fuser's input: "
                  + " ".join(position_probe(x) for x in inputs))
            recorder.maps, inputs[:] = [], []


def position_probe(features):
    """'SxS: R²x/R²y' of a linear map (ridge least squares) from features (frames, S·S cells, C) to
    their cells' x and y, fitted on the first half of the frames and scored on the second."""
    frames, cells, width = features.shape
    side = int(round(cells ** 0.5))
    ys, xs = torch.meshgrid(torch.arange(side), torch.arange(side), indexing="ij")
    where = torch.stack([xs.reshape(-1), ys.reshape(-1)], 1).float().repeat(frames, 1)
    x = torch.cat([features.reshape(-1, width).float().cpu(), torch.ones(frames * cells, 1)], 1)
    half = frames // 2 * cells
    gram = x[:half].T @ x[:half]
    fit = torch.linalg.solve(gram + 1e-3 * gram.diagonal().mean() * torch.eye(width + 1), x[:half].T @ where[:half])
    residual = ((x[half:] @ fit - where[half:]) ** 2).sum(0)
    spread = ((where[half:] - where[half:].mean(0)) ** 2).sum(0)
    r2 = 1 - residual / spread
    return f"{side}x{side}:{r2[0]:.2f}/{r2[1]:.2f}"


def stage_profile(args):
    """Where a UNet training step's time goes, on this device: a few steps of single frames
    (--image-batch) and of clips (--video-batch) on random latents and captions, with the token
    loss's attention recording as `unet` has it, in fp32 and with --precision bf16, under
    torch.profiler; prints the step times and the ops (on a GPU, the kernels) that took the most
    time. Needs no data or checkpoint."""
    from torch.profiler import ProfilerActivity, profile
    text = make_text_encoder(656).to(DEVICE)
    unet = make_unet()
    if args.joint_gligen > 0:
        Grounding(unet)
    unet.to(DEVICE)
    recorder = AttentionMaps(spatial_cross_attention(unet))
    scheduler = noise_schedule()
    scheduler.alphas_cumprod = scheduler.alphas_cumprod.to(DEVICE)
    params = list(unet.parameters()) + list(text.parameters())
    opt = torch.optim.AdamW(params, lr=1e-4, **({"fused": True} if DEVICE == "cuda" else {}))
    sync = torch.cuda.synchronize if DEVICE == "cuda" else (lambda: None)
    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if DEVICE == "cuda" else [])
    global AUTOCAST
    cases = [(name, count, frames, precision) for precision in ("fp32", "bf16")
             for name, count, frames in (("frames", args.image_batch, 1), ("clips", args.video_batch, 8))]
    for name, count, frames, precision in cases:
        AUTOCAST = torch.bfloat16 if precision == "bf16" else None
        z = torch.randn(count, 4, frames, 16, 16, device=DEVICE)
        ids = torch.randint(2, 600, (count, 77), device=DEVICE)

        def step():
            context = text(ids).last_hidden_state
            recorder.maps, recorder.on = [], True
            loss = diffusion_loss(unet, scheduler, z, context)
            recorder.on = False
            loss = loss + 0.01 * sum(m.float().mean() for m in recorder.maps)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sync()
        for _ in range(3):
            step()
        started = time.time()
        for _ in range(args.profile_steps):
            step()
        seconds = (time.time() - started) / args.profile_steps
        print(f"profile: {name}, batch {count} × {frames} frames, {precision}: {seconds * 1000:.1f} ms a step on {DEVICE}", flush=True)
        with profile(activities=activities) as prof:
            step()
        key = "self_cuda_time_total" if DEVICE == "cuda" else "self_cpu_time_total"
        print(prof.key_averages().table(sort_by=key, row_limit=15), flush=True)


def stage_export(args):
    scaling = torch.load(os.path.join(args.work, "latents.pt"), weights_only=False)["scaling_factor"]
    tok, text, unet = trained_base(args)
    vae = trained_vae(args)
    base = os.path.join(args.out, "tiny")
    write_pipeline(base, os.path.join(args.work, "tokenizer"), text.cpu(), vae.cpu(), unet.cpu(), scaling,
                   method_params=args.method_params)
    print("exported", base)
    gligen_ckpt = os.path.join(args.work, "gligen.pt")
    if not os.path.exists(gligen_ckpt):
        print("no gligen checkpoint yet: tiny-gligen not exported")
        return
    tok, text, unet, _ = trained_gligen(args)
    folder = os.path.join(args.out, "tiny-gligen")
    write_pipeline(folder, None, None, None, unet.cpu(), scaling, share_from=base, method_params=args.method_params)
    config_path = os.path.join(folder, "unet", "config.json")
    config = json.load(open(config_path))
    config["attention_type"] = "gated"
    json.dump(config, open(config_path, "w"), indent=2, sort_keys=True)
    print("exported", folder)


def stage_import(args):
    """Checkpoints from an exported folder (OUT/tiny, OUT/tiny-gligen), for going on training when
    WORK's checkpoints are gone (a fresh clone): the tokenizer, the VAE, the UNet and text encoder
    (weights and EMA both set to the exported EMA weights) and the GLIGEN adapters, at step
    --import-step (the UNet's and the adapters'); optimisers start afresh (and warm up again).
    Never overwrites a checkpoint that is there."""
    from diffusers import AutoencoderKL, UNet3DConditionModel
    from safetensors.torch import load_file
    from transformers import CLIPTextModel
    base, gligen = os.path.join(args.out, "tiny"), os.path.join(args.out, "tiny-gligen")
    for part in ("tokenizer", "text_encoder", "vae", "unet"):
        if not os.path.isdir(os.path.join(base, part)):
            sys.exit(f"import: {os.path.join(base, part)} is missing (--out names the folder holding tiny/)")
    targets = [os.path.join(args.work, name) for name in ("tokenizer", "vae.pt", "unet.pt", "gligen.pt")]
    if any(os.path.exists(t) for t in targets):
        sys.exit(f"import: {args.work} already holds checkpoints; import into an empty --work")
    unet_step, gligen_step = args.import_step

    def save(name, data):
        save_atomically(data, os.path.join(args.work, name))

    vae = AutoencoderKL.from_pretrained(os.path.join(base, "vae"), torch_dtype=torch.float32)
    scaling = vae.config.scaling_factor
    fresh = make_vae()
    fresh.load_state_dict(vae.state_dict())
    # The exported scaling factor stays: the UNet learnt on latents scaled by it.
    save("vae.pt", {"vae": fresh.state_dict(), "scaling_factor": scaling, "step": args.vae_steps, "elapsed": 0.0})
    text = CLIPTextModel.from_pretrained(os.path.join(base, "text_encoder"), torch_dtype=torch.float32)
    unet = make_unet()
    unet.load_state_dict(UNet3DConditionModel.from_pretrained(os.path.join(base, "unet"), torch_dtype=torch.float32).state_dict())
    shadow = [p.detach().clone() for p in list(unet.parameters()) + list(text.parameters())]
    save("unet.pt", {"unet": unet.state_dict(), "text": text.state_dict(), "ema": {"shadow": shadow},
                     "step": unet_step, "elapsed": 0.0})
    print(f"import: vae, unet and text encoder (step {unet_step}) from {base}; scaling factor {scaling:.4f}")
    weights = os.path.join(gligen, "unet", "diffusion_pytorch_model.safetensors")
    if os.path.exists(weights):
        grounding = Grounding(unet)
        unet.load_state_dict({k: v.float() for k, v in load_file(weights).items()})
        adapters = adapter_modules(unet)
        save("gligen.pt", {"adapters": adapters.state_dict(), "ema": {"shadow": [p.detach().clone() for p in grounding.parameters()]},
                           "step": gligen_step, "elapsed": 0.0})
        print(f"import: GLIGEN adapters (step {gligen_step}) from {gligen}")
    # Last, so that an interrupted import leaves no tokenizer to make `all` skip its stage.
    shutil.copytree(os.path.join(base, "tokenizer"), os.path.join(args.work, "tokenizer"))


def method_params_arg(text):
    """--method-params: a JSON object of objects, {"METHOD": {"PARAM": value, ...}}, checked when parsed."""
    try:
        value = json.loads(text)
    except json.JSONDecodeError as error:
        raise argparse.ArgumentTypeError(f"not JSON ({error}): {text!r}")
    if not isinstance(value, dict) or not all(isinstance(p, dict) for p in value.values()):
        raise argparse.ArgumentTypeError(f'want {{"METHOD": {{"PARAM": value}}}}, got {text!r}')
    return value


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("stage", choices=["tokenizer", "vae", "latents", "unet", "gligen", "gligen-check", "profile", "export", "import", "all"])
    parser.add_argument("--data", nargs="+", default=[], help="lvd world dataset folders (all are encoded to latents; every stage but profile needs them)")
    parser.add_argument("--unet-data", nargs="+", help="the folders of --data the UNet learns from (default: all)")
    parser.add_argument("--gligen-data", nargs="+", help="the folders of --data the GLIGEN adapters learn from (default: all)")
    parser.add_argument("--work", default="train", help="checkpoints, logs, tokenizer, latents")
    parser.add_argument("--out", default="Models", help="where export writes tiny/ and tiny-gligen/")
    parser.add_argument("--method-params", type=method_params_arg, default={},
                        help='export: JSON of method parameters for tiny/lvd.json, e.g. \'{"lvd": {"loss_threshold": 0}}\'')
    parser.add_argument("--minutes", type=float, default=0, help="stop (checkpointed) after this long; 0: run to the end")
    parser.add_argument("--vae-steps", type=int, default=3000)
    parser.add_argument("--vae-batch", type=int, default=16)
    parser.add_argument("--vae-crop", type=int, default=32, help="crop size for the first 85%% of VAE steps")
    parser.add_argument("--unet-steps", type=int, default=6000)
    parser.add_argument("--image-fraction", type=float, default=0.4, help="share of UNet steps on single frames")
    parser.add_argument("--image-batch", type=int, default=64)
    parser.add_argument("--token-loss", type=float, default=0,
                        help="weight of a token-grounding loss: each object's colour and class tokens attend inside its box")
    parser.add_argument("--phrase-loss", type=float, default=0,
                        help="weight of a term that makes the pooled text output of object phrases name their class and colour (GLIGEN reads it)")
    parser.add_argument("--video-batch", type=int, default=8)
    parser.add_argument("--flip", action="store_true", help="latents: encode every clip flipped left-right as well (twice the data)")
    parser.add_argument("--schedule-by-time", action="store_true",
                        help="unet: the learning-rate decay and the image phase follow the share of --minutes gone "
                             "(one run bounded by time, on hardware whose step rate is not known ahead)")
    parser.add_argument("--joint-gligen", type=float, default=0, metavar="P",
                        help="unet: train the GLIGEN adapters with the base, grounding a share P of the steps")
    parser.add_argument("--gligen-steps", type=int, default=1500)
    parser.add_argument("--gligen-high-noise", type=float, default=0,
                        help="share of GLIGEN samples at t ≥ 500, where the noisy latents do not yet show where objects are")
    parser.add_argument("--lr", type=float, default=4e-4)
    parser.add_argument("--import-step", type=int, nargs=2, default=[0, 0], metavar=("UNET", "GLIGEN"),
                        help="import: the training steps the exported UNet and GLIGEN adapters had (sets the schedules' position)")
    parser.add_argument("--gligen-box-loss", type=float, default=0,
                        help="weight of a term putting each grounding token's attention (in the GLIGEN fusers) inside its box")
    parser.add_argument("--check-samples", type=int, default=96, help="gligen-check: frames compared")
    parser.add_argument("--gate-lr-scale", type=float, default=25, help="GLIGEN gates' learning rate over --lr")
    parser.add_argument("--profile-steps", type=int, default=5, help="profile: steps timed for each of frames and clips")
    parser.add_argument("--precision", choices=["fp32", "bf16"], default="fp32",
                        help="the UNet's forward in training: fp32, or under autocast in bfloat16 (a GPU's tensor cores)")
    args = parser.parse_args()
    global AUTOCAST
    AUTOCAST = torch.bfloat16 if args.precision == "bf16" else None
    if not args.data and args.stage != "profile":
        parser.error(f"{args.stage} needs --data (lvd world dataset folders)")
    os.makedirs(args.work, exist_ok=True)
    stages = ["tokenizer", "vae", "latents", "unet", "gligen", "export"] if args.stage == "all" else [args.stage]
    for stage in stages:
        if args.stage == "all" and stage == "tokenizer" and os.path.exists(os.path.join(args.work, "tokenizer", "vocab.json")):
            continue
        if args.stage == "all" and stage == "latents" and os.path.exists(os.path.join(args.work, "latents.pt")):
            continue
        if globals()[f"stage_{stage.replace('-', '_')}"](args) is False:
            print(f"{stage} is not finished (checkpointed); run the same command again to go on")
            return


if __name__ == "__main__":
    main()
