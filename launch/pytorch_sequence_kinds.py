"""Loads checkpoints of seqtrain's autoencoder, seq2seq and forecaster kinds into the PyTorch modules
the README shows (strict load_state_dict), applies each checkpoint's preprocessing in numpy, and
prints what PyTorch computes beside what seqtrain computes for the same inputs:

  python3 launch/pytorch_sequence_kinds.py autoencoder RUN_OR_CHECKPOINT INPUTS.npy [N]
      per-sample reconstruction MSE (data units) of the first N samples, against `seqtrain score`
  python3 launch/pytorch_sequence_kinds.py seq2seq RUN_OR_CHECKPOINT WORD...
      each word encoded and decoded greedily, against `seqtrain generate --from`
  python3 launch/pytorch_sequence_kinds.py forecaster RUN_OR_CHECKPOINT SERIES.csv
      the next step after the series (stateful checkpoints), against `seqtrain forecast --steps 1`

Needs: pip install torch safetensors numpy; .build/release/seqtrain built.
"""
import glob, json, os, subprocess, sys
import numpy as np
import torch, torch.nn as nn
from safetensors import safe_open
from safetensors.torch import load_file

SEQTRAIN = os.environ.get("SEQTRAIN_BIN", ".build/release/seqtrain")


def checkpoint(path):
    return sorted(glob.glob(path + "/checkpoints/step-*[0-9].safetensors"))[-1] if os.path.isdir(path) else path


def metadata(path):
    with safe_open(path, "pt") as f:
        return f.metadata()


def config_value(text, section, key):
    current = None
    for line in text.splitlines():
        line = line.strip()
        if line.startswith("["): current = line.strip("[]")
        elif current == section and line.split("=")[0].strip() == key: return json.loads(line.split("=", 1)[1].strip())
    raise KeyError(f"{section}.{key}")


def recurrent(cell):
    return nn.GRU if cell == "gru" else nn.LSTM


class Autoencoder(nn.Module):
    def __init__(s, F, H, Z, L=1, decoder_input="repeat", cell="lstm"):
        super().__init__()
        R = recurrent(cell)
        s.encoder = R(F, H, L, batch_first=True)
        s.to_latent = nn.Linear(H, Z)
        if decoder_input == "previous_output": s.to_state = nn.Linear(Z, L * H)
        s.decoder = R(Z if decoder_input == "repeat" else F, H, L, batch_first=True)
        s.head = nn.Linear(H, F); s.mode, s.L, s.H, s.cell = decoder_input, L, H, cell

    def forward(s, x, lengths):
        out, _ = s.encoder(x)
        z = s.to_latent(out[torch.arange(len(x)), lengths - 1])
        if s.mode == "repeat":
            out, _ = s.decoder(z[:, None, :].expand(-1, x.shape[1], -1))
            return s.head(out)
        h = torch.tanh(s.to_state(z)).view(len(x), s.L, s.H).transpose(0, 1).contiguous()
        state = h if s.cell == "gru" else (h, torch.zeros_like(h))
        y, outputs = torch.zeros_like(x[:, 0]), []
        for t in range(x.shape[1]):
            out, state = s.decoder(y[:, None, :].detach(), state)
            y = s.head(out[:, 0]); outputs.append(y)
        return torch.stack(outputs, 1)


class Seq2Seq(nn.Module):
    def __init__(s, V, E, H, Z, L=1, variational=False, cell="gru"):
        super().__init__()
        R = recurrent(cell)
        s.embedding = nn.Embedding(V, E)
        s.encoder = R(E, H, L, batch_first=True)
        if variational: s.to_mean, s.to_logvar = nn.Linear(H, Z), nn.Linear(H, Z)
        else: s.to_latent = nn.Linear(H, Z)
        s.to_state = nn.Linear(Z, L * H)
        s.decoder = R(E, H, L, batch_first=True)
        s.head = nn.Linear(H, V); s.L, s.H, s.variational, s.cell = L, H, variational, cell

    def encode(s, src, lengths):
        out, _ = s.encoder(s.embedding(src))
        last = out[torch.arange(len(src)), lengths - 1]
        return s.to_mean(last) if s.variational else s.to_latent(last)

    def decode(s, z, inputs):
        h = torch.tanh(s.to_state(z)).view(len(z), s.L, s.H).transpose(0, 1).contiguous()
        out, _ = s.decoder(s.embedding(inputs), h if s.cell == "gru" else (h, torch.zeros_like(h)))
        return s.head(out)


class Forecaster(nn.Module):
    def __init__(s, F, H, K, horizon, L=1, cell="lstm"):
        super().__init__()
        setattr(s, cell, recurrent(cell)(F, H, L, batch_first=True))
        s.head = nn.Linear(H, horizon * K); s.horizon, s.K, s.cell = horizon, K, cell

    def forward(s, x, state=None):
        out, state = getattr(s, s.cell)(x, state)
        return s.head(out).view(x.shape[0], x.shape[1], s.horizon, s.K), state


def main():
    kind, path = sys.argv[1], checkpoint(sys.argv[2])
    meta = metadata(path)
    config = meta["seqtrain.config"]
    get = lambda section, key: config_value(config, section, key)
    weights = load_file(path)
    torch.set_grad_enabled(False)
    if kind == "autoencoder":
        prep = json.loads(meta["seqtrain.preprocessing"])
        m = Autoencoder(prep["features"], get("model", "hidden"), get("model", "latent"), get("model", "layers"),
                        get("model", "decoder_input"), get("model", "cell"))
        m.load_state_dict(weights)
        n = int(sys.argv[4]) if len(sys.argv) > 4 else 5
        x = np.load(sys.argv[3]).astype(np.float64)[:n]
        x = x.reshape(len(x), x.shape[1], -1)
        lengths = (~np.isnan(x).all(axis=2)).sum(axis=1)
        mean, std = np.array(prep["mean"] or [0.0] * prep["features"]), np.array(prep["std"] or [1.0] * prep["features"])
        xs = np.nan_to_num((x - mean) / std)
        recon = m(torch.tensor(xs, dtype=torch.float32), torch.tensor(lengths)).double().numpy()
        valid = np.arange(x.shape[1])[None, :, None] < lengths[:, None, None]
        ours = (((recon - xs) * std) ** 2 * valid).sum(axis=(1, 2)) / (lengths * prep["features"])
        np.save("/tmp/pytorch_check_inputs.npy", np.load(sys.argv[3]).astype(np.float32)[:n])
        subprocess.run([SEQTRAIN, "score", path, "--data", "/tmp/pytorch_check_inputs.npy", "--out", "/tmp/pytorch_check_scores.csv"],
                       check=True, stdout=subprocess.DEVNULL)
        theirs = [float(line.split(",")[1]) for line in open("/tmp/pytorch_check_scores.csv").read().splitlines()[1:]]
        for i, (a, b) in enumerate(zip(ours, theirs)):
            print(f"sample {i}: PyTorch {a:.7g}  seqtrain {b:.7g}")
    elif kind == "seq2seq":
        tokens = json.loads(meta["seqtrain.tokens"])
        m = Seq2Seq(len(tokens), get("model", "embedding"), get("model", "hidden"), get("model", "latent"), get("model", "layers"),
                    get("model", "variational"), get("model", "cell"))
        m.load_state_dict(weights)
        words = sys.argv[3:]
        generated = subprocess.run([SEQTRAIN, "generate", path, "--from", "\n".join(words)], check=True, capture_output=True, text=True).stdout.split("\n")
        for word, theirs in zip(words, generated):
            ids = [tokens.index(c) if c in tokens else 3 for c in word]
            z = m.encode(torch.tensor([ids]), torch.tensor([len(ids)]))
            out = []
            for _ in range(64):
                nxt = int(m.decode(z, torch.tensor([[1] + out]))[0, -1].argmax())
                if nxt == 2: break
                out.append(nxt)
            print(f"{word}: PyTorch {''.join(tokens[i] for i in out)}  seqtrain {theirs}")
    elif kind == "forecaster":
        prep = json.loads(meta["seqtrain.preprocessing"])
        cols, targets = prep["columns"], prep["targets"]
        m = Forecaster(len(cols), get("model", "hidden"), len(targets), get("model", "horizon"), get("model", "layers"), get("model", "cell"))
        m.load_state_dict(weights)
        assert get("training", "stateful"), "this check reads the whole series: a stateful checkpoint"
        import csv
        rows = list(csv.reader(open(sys.argv[3])))
        header = rows[0] if prep["header"] else [str(i) for i in range(len(rows[0]))]
        data = np.array([[float(r[header.index(c)]) for c in cols] for r in (rows[1:] if prep["header"] else rows)])
        view = np.diff(data, axis=0) if prep["difference"] else data
        mean, std = np.array(prep["mean"] or [0.0] * len(cols)), np.array(prep["std"] or [1.0] * len(cols))
        y, _ = m(torch.tensor((view - mean) / std, dtype=torch.float32)[None])
        step = y[0, -1, 0].double().numpy() * std[targets] + mean[targets]
        level = data[-1, targets] + step if prep["difference"] else step
        theirs = subprocess.run([SEQTRAIN, "forecast", path, "--data", sys.argv[3], "--steps", "1"], check=True, capture_output=True, text=True).stdout
        print("next step, PyTorch: " + ", ".join(f"{cols[t]} {v:.6g}" for t, v in zip(targets, level)))
        print("next step, seqtrain: " + theirs.strip().splitlines()[-1])


main()
