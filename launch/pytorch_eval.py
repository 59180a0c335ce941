#!/usr/bin/env python3
"""Loads a seqtrain char-LM checkpoint into the PyTorch module with the same state_dict and prints
its loss (nats/char) on text files, read as `seqtrain eval` reads them (the same lanes and seq_len,
state carried within each lane). The two numbers agree to float rounding.

    pip install torch safetensors
    python3 launch/pytorch_eval.py runs/charlm/checkpoints/step-00000790.safetensors FILE...
"""
import json, sys, torch, torch.nn as nn, torch.nn.functional as F
from safetensors import safe_open
from safetensors.torch import load_file

path = sys.argv[1]
with safe_open(path, "pt") as f:
    meta = f.metadata()
vocab = meta["seqtrain.vocabulary"]
ev = json.loads(meta["seqtrain.eval"])

class CharLM(nn.Module):
    """seqtrain's char_lm: Embedding -> nn.LSTM (or nn.GRU, attribute `gru`) -> Linear."""
    def __init__(s, V, E, H, L, cell="lstm", dropout=0.0):
        super().__init__()
        s.cell = cell
        s.embedding = nn.Embedding(V, E)
        setattr(s, cell, (nn.GRU if cell == "gru" else nn.LSTM)(E, H, L, batch_first=True, dropout=dropout))
        s.head = nn.Linear(H, V)
    def forward(s, x, state=None):
        out, state = getattr(s, s.cell)(s.embedding(x), state)
        return s.head(out), state

sd = load_file(path)
cell = "gru" if "gru.weight_hh_l0" in sd else "lstm"
V, E = sd["embedding.weight"].shape
H = sd[f"{cell}.weight_hh_l0"].shape[1]
L = sum(1 for k in sd if k.startswith(f"{cell}.weight_ih_l"))
m = CharLM(V, E, H, L, cell)
m.load_state_dict(sd)
text = "".join(open(p, encoding="utf-8").read() for p in sys.argv[2:])
ids = torch.tensor([vocab.index(c) for c in text if c in vocab])
lanes, T = min(ev["lanes"], (len(ids) - 1) // ev["seq_len"]), ev["seq_len"]
lane = (len(ids) - 1) // lanes
total, count, state = 0.0, 0, None
with torch.no_grad():
    for start in range(0, lane, T):
        t = min(T, lane - start)
        x = torch.stack([ids[j * lane + start: j * lane + start + t] for j in range(lanes)])
        y = torch.stack([ids[j * lane + start + 1: j * lane + start + t + 1] for j in range(lanes)])
        logits, state = m(x, state)
        total += F.cross_entropy(logits.reshape(-1, V), y.reshape(-1), reduction="sum").item()
        count += y.numel()
print(json.dumps({"loss": total / count, "characters": count}))
