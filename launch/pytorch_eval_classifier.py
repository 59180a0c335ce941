#!/usr/bin/env python3
"""Loads a seqtrain classifier checkpoint (sequence_classifier or mlp_classifier) into the PyTorch
module the README shows, reads .npy inputs and labels with the checkpoint's own preprocessing
(trailing-NaN lengths, the feature blocks of data.features, standardization), and prints the loss and the metrics that
`seqtrain eval --json` prints for the same files. The numbers agree to float rounding.

    pip install torch safetensors numpy
    python3 launch/pytorch_eval_classifier.py runs/curves_lstm/checkpoints/step-00000600.safetensors INPUTS.npy LABELS.npy
"""
import json, sys
import numpy as np, torch, torch.nn as nn, torch.nn.functional as F
from safetensors import safe_open
from safetensors.torch import load_file

path, inputs_path, labels_path = sys.argv[1:4]
with safe_open(path, "pt") as f:
    meta = f.metadata()
pre = json.loads(meta["seqtrain.preprocessing"])
kind = meta["seqtrain.kind"]
config = meta["seqtrain.config"]
sd = load_file(path)

x = np.load(inputs_path).astype(np.float64)
labels = np.load(labels_path)
blocks = pre["features"].split(",")               # data.features: "raw", or blocks like "downsample,stats,rfft"
if kind == "sequence_classifier" or blocks != ["raw"]:
    if x.ndim == 2:
        x = x[:, :, None]                          # (N, T) -> (N, T, 1)
    valid = ~np.isnan(x).all(axis=2)               # trailing NaN steps end a sample
    lengths = valid.sum(axis=1)
    x = np.nan_to_num(x)
else:
    x = x.reshape(len(x), -1)                      # an MLP sees (N, T, F) flattened
if blocks != ["raw"]:
    bins, segments = pre["rfftBins"], pre.get("downsample") or 50
    def block(name, v):                            # v: one sample's valid steps, (L, F)
        L = len(v)
        if name == "rfft":
            spectrum = np.abs(np.fft.rfft(v, axis=0, norm="forward"))[:bins]   # (bins', F)
            padded = np.zeros((bins, v.shape[1]))
            padded[:len(spectrum)] = spectrum
            return np.log1p(padded.T).reshape(-1)  # channel-major
        if name == "downsample":                   # F.adaptive_avg_pool1d's windows
            windows = [(j * L // segments, -(-(j + 1) * L // segments)) for j in range(segments)]
            return np.array([[v[a:b, f].mean() for a, b in windows] for f in range(v.shape[1])]).reshape(-1)
        if name == "stats":
            return np.stack([v.mean(0), v.std(0), v.min(0), v.max(0), v[0], v[-1]], axis=1).reshape(-1)
        return None
    x = np.stack([np.concatenate([x[n].reshape(-1) if b == "raw" else block(b, x[n, :lengths[n]]) for b in blocks])
                  for n in range(len(x))])
if pre.get("mean") is not None:
    mean, std = np.array(pre["mean"]), np.array(pre["std"])
    if x.ndim == 3:
        x = np.where(np.arange(x.shape[1])[None, :, None] < lengths[:, None, None], (x - mean) / std, 0)
    else:
        x = (x - mean) / std
x = torch.tensor(x, dtype=torch.float32)

class SequenceClassifier(nn.Module):
    """seqtrain's sequence_classifier: LSTM (or GRU, attribute `gru`) -> pooling over valid steps -> Linear."""
    def __init__(s, I, H, C, L, cell, pooling):
        super().__init__()
        s.cell, s.pooling = cell, pooling
        setattr(s, cell, (nn.GRU if cell == "gru" else nn.LSTM)(I, H, L, batch_first=True))
        s.head = nn.Linear(H, C)
    def forward(s, x, lengths):
        out, _ = getattr(s, s.cell)(x)
        valid = torch.arange(x.shape[1])[None, :, None] < lengths[:, None, None]
        if s.pooling == "last":
            pooled = out[torch.arange(len(x)), lengths - 1]
        elif s.pooling == "mean":
            pooled = (out * valid).sum(1) / lengths[:, None]
        else:
            pooled = out.masked_fill(~valid, float("-inf")).amax(1)
        return s.head(pooled)

if kind == "sequence_classifier":
    cell = "gru" if "gru.weight_hh_l0" in sd else "lstm"
    H = sd[f"{cell}.weight_hh_l0"].shape[1]
    L = sum(1 for k in sd if k.startswith(f"{cell}.weight_ih_l"))
    pooling = [line.split("=")[1].strip().strip('"') for line in config.splitlines() if line.startswith("pooling")][0]
    m = SequenceClassifier(x.shape[2], H, len(pre["classes"]), L, cell, pooling)
    m.load_state_dict(sd)
    with torch.no_grad():
        logits = m(x, torch.tensor(lengths))
else:
    # nn.Sequential(Linear, act, Dropout, Linear, act, Dropout, ..., Linear): Linear layers at 0, 3, 6, ...
    act = {"relu": nn.ReLU, "gelu": nn.GELU, "tanh": nn.Tanh, "sigmoid": nn.Sigmoid}[
        [line.split("=")[1].strip().strip('"') for line in config.splitlines() if line.startswith("activation")][0]]
    count = len([k for k in sd if k.endswith(".weight")])
    layers = []
    for i in range(count):
        w = sd[f"{3 * i}.weight"]
        layers.append(nn.Linear(w.shape[1], w.shape[0]))
        if i < count - 1:
            layers += [act(), nn.Dropout(0.0)]
    m = nn.Sequential(*layers)
    m.load_state_dict(sd)
    with torch.no_grad():
        logits = m(x)

if pre["task"] == "multi_label":
    y = torch.tensor(labels, dtype=torch.float32)
    loss = F.binary_cross_entropy_with_logits(logits, y).item()
    predicted = torch.sigmoid(logits) > 0.5
    truth = y > 0.5
    tp = (predicted & truth).sum(0).double(); fp = (predicted & ~truth).sum(0).double(); fn = (~predicted & truth).sum(0).double()
    present = (tp + fp + fn) > 0
    f1 = torch.where(present, 2 * tp / (2 * tp + fp + fn).clamp(min=1), torch.zeros_like(tp))
    result = {"loss": loss, "macro_f1": (f1.sum() / present.sum()).item(),
              "micro_f1": (2 * tp.sum() / (2 * tp.sum() + fp.sum() + fn.sum())).item(),
              "exact_match": (predicted == truth).all(1).double().mean().item()}
else:
    written = pre.get("classLabels") or pre["classes"]     # the ids data.class_names names, or the classes
    y = torch.tensor([written.index(str(int(v))) for v in labels.reshape(-1)])
    loss = F.cross_entropy(logits, y).item()
    result = {"loss": loss, "accuracy": (logits.argmax(1) == y).double().mean().item()}
print(json.dumps(result))
