#!/usr/bin/env python3
"""The HF transformers reference for scripts/bench/train.ts: the same training step, in PyTorch.

flan-t5-small's configuration, randomly initialised (T5ForConditionalGeneration), batch 8 x 128
source + 128 target tokens of random ids, dropout 0.1 in train mode, loss = HF's mean CE, backward,
clip_grad_norm_(1.0), AdamW(lr 1e-4, weight decay 0.01) - torch's fused AdamW on CUDA, its default
elsewhere. Precision as in train.ts: float32 (TF32 matmuls on CUDA, as our trainer enables), or
--bf16 (fp32 weights, bf16 autocast). Prints one JSON line; pass its stepMedianMs to
train.ts as --hf-ms to get the ratio measured side by side on one machine.

    python3 scripts/bench/hf_train_step.py [--device cpu|cuda] [--bf16] [--iters 20]
                                           [--threads N] [--batch 8] [--src-len 128] [--tgt-len 128]

Not run on the 2-core CPU machine (no PyTorch there); meant for the GPU machine, which has
torch and transformers.
"""
import argparse
import json
import platform
import statistics
import time

import torch
import transformers
from transformers import T5Config, T5ForConditionalGeneration

FLAN_T5_SMALL = dict(
    vocab_size=32128, d_model=512, d_kv=64, d_ff=1024, num_layers=8, num_decoder_layers=8, num_heads=6,
    feed_forward_proj="gated-gelu", tie_word_embeddings=False, dropout_rate=0.1,
    decoder_start_token_id=0, pad_token_id=0, eos_token_id=1,
)


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--bf16", action="store_true")
    p.add_argument("--iters", type=int, default=20)
    p.add_argument("--warmup", type=int, default=3)
    p.add_argument("--threads", type=int, default=0)
    p.add_argument("--batch", type=int, default=8)
    p.add_argument("--src-len", type=int, default=128)
    p.add_argument("--tgt-len", type=int, default=128)
    a = p.parse_args()
    if a.threads:
        torch.set_num_threads(a.threads)
    dev = torch.device(a.device)
    cuda = dev.type == "cuda"
    if cuda:
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True

    torch.manual_seed(0)
    model = T5ForConditionalGeneration(T5Config(**FLAN_T5_SMALL)).to(dev)
    model.train()
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4, weight_decay=0.01, **({"fused": True} if cuda else {}))
    g = torch.Generator().manual_seed(12345)
    input_ids = torch.randint(2, 32002, (a.batch, a.src_len), generator=g).to(dev)
    attention_mask = torch.ones_like(input_ids)
    labels = torch.randint(2, 32002, (a.batch, a.tgt_len), generator=g).to(dev)

    def step() -> float:
        opt.zero_grad(set_to_none=True)
        with torch.autocast(device_type=dev.type, dtype=torch.bfloat16, enabled=a.bf16):
            loss = model(input_ids=input_ids, attention_mask=attention_mask, labels=labels).loss
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        return loss.item()  # a host sync, as our step returns its loss

    for _ in range(a.warmup):
        step()
    if cuda:
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
    wall = []
    losses = []
    for _ in range(a.iters):
        t0 = time.perf_counter()
        losses.append(step())
        if cuda:
            torch.cuda.synchronize()
        wall.append((time.perf_counter() - t0) * 1000)
    med = statistics.median(wall)
    tokens = a.batch * (a.src_len + a.tgt_len)
    print(json.dumps({
        "what": "HF T5ForConditionalGeneration training step (reference for scripts/bench/train.ts)",
        "machine": torch.cuda.get_device_name(dev) if cuda else platform.processor() or platform.machine(),
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        "device": a.device,
        "precision": "float32 masters + bf16 autocast" if a.bf16 else ("float32 (TF32 matmuls)" if cuda else "float32"),
        "threads": torch.get_num_threads(),
        "shape": {"batch": a.batch, "sourceTokens": a.src_len, "targetTokens": a.tgt_len},
        "parameters": sum(t.numel() for t in model.parameters()),
        "stepMedianMs": round(med, 2),
        "stepMinMs": round(min(wall), 2),
        "tokensPerSecond": round(tokens / (med / 1000)),
        "peakMemoryMiB": round(torch.cuda.max_memory_allocated(dev) / 2**20) if cuda else None,
        "lossFirstLast": [losses[0], losses[-1]],
    }))


if __name__ == "__main__":
    main()
