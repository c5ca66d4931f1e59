#!/usr/bin/env python3
"""Tokenizer parity fixtures (Tests/LVDModelsTests/Fixtures/tokenizer/):

* tiny/ — a small CLIP tokenizer cut from the real one (the first 3000 merges, the vocabulary
  they produce, the specials), committed so parity runs without ../shared;
* tiny_ids.json and real_ids.json — the reference's tokenizer ids for tricky strings, padded to
  77, with the tiny and with the real vocabulary: transformers 4.29.2's pure-Python CLIPTokenizer
  (the version the reference pins) without ftfy. transformers 5 replaced it with the Rust
  tokenizer, which differs on CJK and control characters, so use the pinned version:

    python -m venv .venv-tok && .venv-tok/bin/pip install transformers==4.29.2
    .venv-tok/bin/python Scripts/make_tokenizer_fixtures.py ../shared/data/text-to-video-lvd-zs/tokenizer Tests/LVDModelsTests/Fixtures/tokenizer
"""
import json
import os
import sys

from transformers import CLIPTokenizer

STRINGS = [
    "a red ball moving from the left to the right",
    "A realistic lively video of a scene with a gray cat and a brown dog",
    "  Multiple   spaces\tand\ttabs\nnewlines  ",
    "UPPER lower MiXeD",
    "don't you'll we're it's I'M they've he'd",
    "!!'s ?!... (brackets) [square] {curly} <angle>",
    "numbers 12345 and 3.14159, 1st 2nd",
    "café naïve résumé Ünïcödé",
    "emoji 🐱🐶 and symbols ©®™ €$£",
    "中文字符 and 日本語 mixed",
    "ctrl\u0007chars\u200bzero-width\u00a0nbsp",
    "a photo of an astronaut riding a horse on mars, highly detailed, 8k, trending on artstation",
    "<|startoftext|>special<|endoftext|>tokens",
    "x" * 300,
    "",
    "a " * 100,
]


def tiny_tokenizer(real, out):
    merges = open(os.path.join(real, "merges.txt"), encoding="utf-8").read().split("\n")[1:3001]
    vocab_real = json.load(open(os.path.join(real, "vocab.json"), encoding="utf-8"))
    # Ids 0…511 are the 256 byte symbols and their </w> forms (vocab.json is sorted by token, not id).
    bytes_ = [token for token, _ in sorted(vocab_real.items(), key=lambda kv: kv[1])[:512]]
    tokens = bytes_ + ["".join(m.split(" ")) for m in merges] + ["<|startoftext|>", "<|endoftext|>"]
    vocab = {}
    for token in tokens:
        vocab.setdefault(token, len(vocab))
    os.makedirs(out, exist_ok=True)
    json.dump(vocab, open(os.path.join(out, "vocab.json"), "w", encoding="utf-8"), ensure_ascii=False)
    open(os.path.join(out, "merges.txt"), "w", encoding="utf-8").write("#version: 0.2\n" + "\n".join(merges) + "\n")
    json.dump({"pad_token": "!", "model_max_length": 77}, open(os.path.join(out, "special_tokens_map.json"), "w"))


def ids(folder):
    tokenizer = CLIPTokenizer.from_pretrained(folder, pad_token="!")
    return {s: tokenizer(s, padding="max_length", max_length=77, truncation=True).input_ids for s in STRINGS}


def main(real, out):
    tiny_tokenizer(real, os.path.join(out, "tiny"))
    json.dump(ids(os.path.join(out, "tiny")), open(os.path.join(out, "tiny_ids.json"), "w"), ensure_ascii=False)
    json.dump(ids(real), open(os.path.join(out, "real_ids.json"), "w"), ensure_ascii=False)
    print("written", out)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
