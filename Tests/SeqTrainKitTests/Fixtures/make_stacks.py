"""PyTorch reference values for seqtrain's layer stacks (`[[model.layers]]`).

Most cases are sequence classifiers (autoencoder, char LM and seq2seq cases follow below): a stack
of PyTorch layers in an nn.ModuleList named `layers`, pooling over each sample's valid steps, and a
Linear `head`, on variable-length inputs. The stack
follows seqtrain's rule for lengths: every layer's output is zero past each sample's valid steps
(so the next layer reads zeros there, as a freshly zero-padded batch); bidirectional layers run
as packed sequences (the reverse direction starts at each sample's last valid step); "last"
pooling of a bidirectional top layer takes both directions' final states (h_n). Stored: the
parameters (state_dict names), x, lengths, y, the logits, the BCE-with-logits loss, every gradient
("grad." prefix) and the parameters after 3 Adam steps ("after." prefix). "__metadata__" holds
the stack as a config writes it (model.layers = [...]) and the pooling.

Regenerate:  pip install torch safetensors && python make_stacks.py
"""
import json
import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence
from safetensors.torch import save_file

torch.set_default_dtype(torch.float32)
ACT = {"none": lambda v: v, "relu": torch.relu, "tanh": torch.tanh, "sigmoid": torch.sigmoid, "gelu": F.gelu}


def conv_steps(spec, n):
    k, d, s = spec["kernel_size"], spec.get("dilation", 1), spec.get("stride", 1)
    span = d * (k - 1) + 1
    padding = spec.get("padding", "valid")
    if padding == "valid":
        return torch.where(n < span, torch.zeros_like(n), (n - span) // s + 1)
    if padding == "same":
        return n
    return (n - 1) // s + 1


class Stack(nn.Module):
    def __init__(s, specs, width):
        super().__init__()
        s.specs = specs
        s.layers = nn.ModuleList()
        for spec in specs:
            t = spec["type"]
            if t in ("lstm", "gru", "rnn"):
                kw = dict(num_layers=spec.get("layers", 1), bidirectional=spec.get("bidirectional", False),
                          dropout=spec.get("dropout", 0.0), batch_first=True)
                if t == "rnn":
                    kw["nonlinearity"] = spec.get("nonlinearity", "tanh")
                cls = {"lstm": nn.LSTM, "gru": nn.GRU, "rnn": nn.RNN}[t]
                s.layers.append(cls(width, spec["hidden"], **kw))
                width = spec["hidden"] * (2 if kw["bidirectional"] else 1)
            elif t == "conv1d":
                s.layers.append(nn.Conv1d(width, spec["filters"], spec["kernel_size"], stride=spec.get("stride", 1),
                                          dilation=spec.get("dilation", 1)))
                width = spec["filters"]
            elif t == "dense":
                s.layers.append(nn.Linear(width, spec["units"]))
                width = spec["units"]
            else:
                s.layers.append(nn.Dropout(spec["p"]))
        s.width = width

    def forward(s, x, lengths):
        def masked(v, n):
            return v * (torch.arange(v.shape[1])[None, :] < n[:, None]).to(v.dtype)[:, :, None]
        x = masked(x, lengths)
        for spec, layer in zip(s.specs, s.layers):
            t = spec["type"]
            if t in ("lstm", "gru", "rnn"):
                if spec.get("bidirectional", False):
                    packed = pack_padded_sequence(x, lengths, batch_first=True, enforce_sorted=False)
                    out, _ = layer(packed)
                    out, _ = pad_packed_sequence(out, batch_first=True, total_length=x.shape[1])
                else:
                    out, _ = layer(x)
            elif t == "conv1d":
                k, d = spec["kernel_size"], spec.get("dilation", 1)
                total = d * (k - 1)
                left = {"valid": 0, "same": total // 2, "causal": total}[spec.get("padding", "valid")]
                right = {"valid": 0, "same": total - total // 2, "causal": 0}[spec.get("padding", "valid")]
                out = ACT[spec.get("activation", "none")](layer(F.pad(x.transpose(1, 2), (left, right)))).transpose(1, 2)
                lengths = conv_steps(spec, lengths).clamp(min=1, max=out.shape[1])
            elif t == "dense":
                out = ACT[spec.get("activation", "none")](layer(x))
            else:
                out = layer(x)
            x = masked(out, lengths)
        return x, lengths


class Classifier(nn.Module):
    def __init__(s, specs, I, C, pooling):
        super().__init__()
        s.stack = Stack(specs, I)
        s.layers = s.stack.layers
        s.head = nn.Linear(s.stack.width, C)
        s.pooling = pooling
        top = specs[-1]
        s.reverse = top["hidden"] if top["type"] in ("lstm", "gru", "rnn") and top.get("bidirectional") else 0

    def forward(s, x, lengths):
        out, n = s.stack(x, lengths)
        B, T, O = out.shape
        valid = (torch.arange(T)[None, :] < n[:, None])[:, :, None]
        if s.pooling == "last":
            pooled = out[torch.arange(B), n - 1]
            if s.reverse:
                pooled = torch.cat([pooled[:, :O - s.reverse], out[:, 0, O - s.reverse:]], 1)
        elif s.pooling == "mean":
            pooled = (out * valid).sum(1) / n[:, None]
        else:
            pooled = out.masked_fill(~valid, float("-inf")).amax(1)
        return s.head(pooled)

    def state(s):
        return {k: v for k, v in s.state_dict().items() if not k.startswith("stack.")}


def toml(specs):
    """The stack as a config's `model.layers = [...]` value (TOML inline tables)."""
    def value(v):
        return ("true" if v else "false") if isinstance(v, bool) else f'"{v}"' if isinstance(v, str) else repr(v)
    return "[" + ", ".join("{" + ", ".join(f"{k} = {value(v)}" for k, v in spec.items()) + "}" for spec in specs) + "]"


def case(name, specs, I, C, B, T, lengths, pooling, seed):
    torch.manual_seed(seed)
    m = Classifier(specs, I, C, pooling)
    m.eval()  # dropout off: the reference is deterministic (its training masks are tested in Swift)
    init = {k: v.clone() for k, v in m.state().items()}
    x = torch.randn(B, T, I)
    n = torch.tensor(lengths)
    x = x * (torch.arange(T)[None, :] < n[:, None]).float()[:, :, None]
    y = (torch.rand(B, C) < 0.4).float()
    logits = m(x, n)
    loss = F.binary_cross_entropy_with_logits(logits, y)
    loss.backward()
    # m.layers is m.stack.layers: named_parameters() names it once, as stack.layers.
    g = {f"grad.{k.removeprefix('stack.')}": p.grad.clone() for k, p in m.named_parameters()}
    opt = torch.optim.Adam(m.parameters(), lr=1e-2)
    for _ in range(3):
        opt.zero_grad()
        F.binary_cross_entropy_with_logits(m(x, n), y).backward()
        opt.step()
    after = {f"after.{k}": v for k, v in m.state().items()}
    tensors = {**init, "x": x, "lengths": n, "y": y, "logits": logits, "loss": loss.reshape(1), **g, **after}
    save_file({k: v.detach().contiguous() for k, v in tensors.items()}, f"stack_{name}.safetensors",
              metadata={"stack": toml(specs), "pooling": pooling,
                        "sizes": json.dumps({"I": I, "C": C, "B": B, "T": T})})
    print(name, logits.shape, float(loss))




class Autoencoder(nn.Module):
    """seqtrain's autoencoder with [[model.encoder]] / [[model.decoder]] stacks, decoder_input = "repeat":
    the encoder's final states (h_n for a bidirectional top) → to_latent → the latent at every valid
    step → the decoder stack over each sample's valid steps → a per-step head."""
    def __init__(s, encoder, decoder, F_, Z):
        super().__init__()
        s.stacks = [Stack(encoder, F_), Stack(decoder, Z)]  # a plain list: only the ModuleLists are named
        s.encoder, s.decoder = s.stacks[0].layers, s.stacks[1].layers
        s.to_latent = nn.Linear(s.stacks[0].width, Z)
        s.head = nn.Linear(s.stacks[1].width, F_)
        top = encoder[-1]
        s.reverse = top["hidden"] if top["type"] in ("lstm", "gru", "rnn") and top.get("bidirectional") else 0

    def forward(s, x, lengths):
        out, n = s.stacks[0](x, lengths)
        B, T, O = out.shape
        final = out[torch.arange(B), n - 1]
        if s.reverse:
            final = torch.cat([final[:, :O - s.reverse], out[:, 0, O - s.reverse:]], 1)
        z = s.to_latent(final)
        decoded, _ = s.stacks[1](z[:, None, :].expand(-1, x.shape[1], -1), lengths)
        return s.head(decoded)


def autoencoder_case(name, encoder, decoder, F_, Z, B, T, lengths, seed):
    torch.manual_seed(seed)
    m = Autoencoder(encoder, decoder, F_, Z)
    m.eval()
    init = {k: v.clone() for k, v in m.state_dict().items()}
    n = torch.tensor(lengths)
    valid = (torch.arange(T)[None, :] < n[:, None]).float()[:, :, None]
    x = torch.randn(B, T, F_) * valid

    def loss_of(y):  # the mean squared error over the valid steps' elements
        return (((y - x) ** 2) * valid).sum() / (valid.sum() * F_)
    y = m(x, n)
    loss = loss_of(y)
    loss.backward()
    g = {f"grad.{k}": p.grad.clone() for k, p in m.named_parameters()}
    opt = torch.optim.Adam(m.parameters(), lr=1e-2)
    for _ in range(3):
        opt.zero_grad()
        loss_of(m(x, n)).backward()
        opt.step()
    after = {f"after.{k}": v for k, v in m.state_dict().items()}
    tensors = {**init, "x": x, "lengths": n, "reconstruction": (y * valid).transpose(0, 1), "loss": loss.reshape(1),
               **g, **after}
    save_file({k: v.detach().contiguous() for k, v in tensors.items()}, f"stack_{name}.safetensors",
              metadata={"encoder": toml(encoder), "decoder": toml(decoder),
                        "sizes": json.dumps({"F": F_, "Z": Z, "B": B, "T": T})})
    print(name, y.shape, float(loss))


# An encoder of two LSTMs of different widths (as a PyTorch user's 128 → 64), the decoder mirrored.


class CharLM(nn.Module):
    """seqtrain's char LM with a [[model.layers]] stack of unidirectional recurrent, dense and dropout
    entries: each recurrent entry carries its own state from one chunk to the next."""
    def __init__(s, specs, V, E):
        super().__init__()
        s.specs = specs
        s.embedding = nn.Embedding(V, E)
        s.stack = Stack(specs, E)
        s.layers = s.stack.layers
        s.head = nn.Linear(s.stack.width, V)

    def forward(s, ids, states):
        x, carried = s.embedding(ids), []
        for spec, layer in zip(s.specs, s.layers):
            if spec["type"] in ("lstm", "gru", "rnn"):
                x, state = layer(x, states[len(carried)] if states else None)
                carried.append(state)
            elif spec["type"] == "dense":
                x = ACT[spec.get("activation", "none")](layer(x))
            else:
                x = layer(x)
        return s.head(x), carried

    def state(s):
        return {k: v for k, v in s.state_dict().items() if not k.startswith("stack.")}


def detached(states):
    return [tuple(t.detach() for t in st) if isinstance(st, tuple) else st.detach() for st in states]


def charlm_case(name, specs, V, E, B, T, seed):
    torch.manual_seed(seed)
    m = CharLM(specs, V, E)
    m.eval()
    init = {k: v.clone() for k, v in m.state().items()}
    ids = torch.randint(0, V, (B, 2 * T + 1))
    x1, y1, x2, y2 = ids[:, :T], ids[:, 1:T + 1], ids[:, T:2 * T], ids[:, T + 1:2 * T + 1]
    logits1, carried = m(x1, None)
    logits2, _ = m(x2, detached(carried))
    loss = F.cross_entropy(logits2.reshape(-1, V), y2.reshape(-1))
    loss.backward()
    g = {f"grad.{k.removeprefix('stack.')}": p.grad.clone() for k, p in m.named_parameters()}
    opt = torch.optim.Adam(m.parameters(), lr=1e-2)
    for _ in range(3):
        opt.zero_grad()
        out, _ = m(x1, None)
        F.cross_entropy(out.reshape(-1, V), y1.reshape(-1)).backward()
        opt.step()
    after = {f"after.{k}": v for k, v in m.state().items()}
    tensors = {**init, "x1": x1, "y1": y1, "x2": x2, "y2": y2, "logits1": logits1, "logits2": logits2,
               "loss": loss.reshape(1), **g, **after}
    save_file({k: v.detach().contiguous() for k, v in tensors.items()}, f"stack_{name}.safetensors",
              metadata={"stack": toml(specs), "sizes": json.dumps({"V": V, "E": E, "B": B, "T": T})})
    print(name, logits2.shape, float(loss))


# Recurrent entries of different cells and widths, each carrying its state across chunks, then dense.


class Seq2Seq(nn.Module):
    """seqtrain's seq2seq with [[model.encoder]] / [[model.decoder]] stacks: Embedding → the encoder stack
    over each source's valid steps → its final states (h_n for a bidirectional top) → to_latent (or
    to_mean and to_logvar, z = μ: no noise) → tanh(to_state(z)) as the initial state of the decoder's one
    recurrent entry → the decoder fed <s> and the tokens (teacher forcing) → head."""
    def __init__(s, encoder, decoder, V, E, Z, variational):
        super().__init__()
        s.embedding = nn.Embedding(V, E)
        s.stacks = [Stack(encoder, E), Stack(decoder, E)]  # a plain list: only the ModuleLists are named
        s.encoder, s.decoder = s.stacks[0].layers, s.stacks[1].layers
        width, s.variational = s.stacks[0].width, variational
        if variational:
            s.to_mean, s.to_logvar = nn.Linear(width, Z), nn.Linear(width, Z)
        else:
            s.to_latent = nn.Linear(width, Z)
        entry = decoder[0]
        s.L, s.H, s.lstm = entry.get("layers", 1), entry["hidden"], entry["type"] == "lstm"
        s.to_state = nn.Linear(Z, s.L * s.H)
        s.head = nn.Linear(s.H, V)
        top = encoder[-1]
        s.reverse = top["hidden"] if top["type"] in ("lstm", "gru", "rnn") and top.get("bidirectional") else 0

    def forward(s, sources, lengths, inputs):
        out, n = s.stacks[0](s.embedding(sources), lengths)
        B, _, O = out.shape
        final = out[torch.arange(B), n - 1]
        if s.reverse:
            final = torch.cat([final[:, :O - s.reverse], out[:, 0, O - s.reverse:]], 1)
        if s.variational:
            mean, logvar = s.to_mean(final), s.to_logvar(final)
        else:
            mean, logvar = s.to_latent(final), None
        h = torch.tanh(s.to_state(mean)).view(B, s.L, s.H).transpose(0, 1).contiguous()
        decoded, _ = s.decoder[0](s.embedding(inputs), (h, torch.zeros_like(h)) if s.lstm else h)
        return s.head(decoded), mean, logvar


def seq2seq_case(name, encoder, decoder, V, E, Z, lengths, variational, seed):
    torch.manual_seed(seed)
    m = Seq2Seq(encoder, decoder, V, E, Z, variational)
    m.eval()
    init = {k: v.clone() for k, v in m.state_dict().items()}
    B, S = len(lengths), max(lengths)
    T = S + 1
    n = torch.tensor(lengths)
    sources = torch.zeros(B, S, dtype=torch.long)
    inputs = torch.zeros(B, T, dtype=torch.long)
    targets = torch.zeros(B, T, dtype=torch.long)
    mask = torch.zeros(B, T)
    for r, length in enumerate(lengths):  # ids 4... are tokens; 0 pads, 1 starts, 2 ends
        tokens = torch.randint(4, V, (length,))
        sources[r, :length] = tokens
        inputs[r, 0], inputs[r, 1:length + 1] = 1, tokens
        targets[r, :length], targets[r, length] = tokens, 2
        mask[r, :length + 1] = 1

    def loss_of(logits, mean, logvar):  # (the masked cross-entropy sum + the KL sum) per counted token
        total = (F.cross_entropy(logits.reshape(-1, V), targets.reshape(-1), reduction="none") * mask.reshape(-1)).sum()
        if logvar is not None:
            total = total - 0.5 * (1 + logvar - mean ** 2 - logvar.exp()).sum()
        return total / mask.sum()
    logits, mean, logvar = m(sources, n, inputs)
    loss = loss_of(logits, mean, logvar)
    loss.backward()
    g = {f"grad.{k}": p.grad.clone() for k, p in m.named_parameters()}
    opt = torch.optim.Adam(m.parameters(), lr=1e-2)
    for _ in range(3):
        opt.zero_grad()
        loss_of(*m(sources, n, inputs)).backward()
        opt.step()
    after = {f"after.{k}": v for k, v in m.state_dict().items()}
    tensors = {**init, "sources": sources, "lengths": n, "inputs": inputs, "targets": targets, "mask": mask,
               "logits": logits.transpose(0, 1), "mean": mean, "loss": loss.reshape(1), **g, **after}
    save_file({k: v.detach().contiguous() for k, v in tensors.items()}, f"stack_{name}.safetensors",
              metadata={"encoder": toml(encoder), "decoder": toml(decoder), "variational": json.dumps(variational),
                        "sizes": json.dumps({"V": V, "E": E, "Z": Z, "B": B, "S": S})})
    print(name, logits.shape, float(loss))


def main():
    case("rnn", [{"type": "rnn", "hidden": 6, "layers": 2}, {"type": "rnn", "hidden": 5, "nonlinearity": "relu"}],
         I=3, C=4, B=4, T=7, lengths=[7, 5, 3, 6], pooling="mean", seed=11)
    case("bilstm", [{"type": "lstm", "hidden": 5, "layers": 2, "bidirectional": True}],
         I=3, C=4, B=4, T=6, lengths=[6, 2, 4, 5], pooling="last", seed=12)
    case("bigru", [{"type": "gru", "hidden": 4, "layers": 2, "bidirectional": True}],
         I=2, C=3, B=3, T=5, lengths=[3, 5, 4], pooling="max", seed=13)
    case("widths", [{"type": "lstm", "hidden": 8}, {"type": "gru", "hidden": 5}, {"type": "dense", "units": 6, "activation": "relu"},
                    {"type": "dropout", "p": 0.3}, {"type": "lstm", "hidden": 4}],
         I=3, C=4, B=3, T=6, lengths=[6, 4, 5], pooling="last", seed=14)
    case("conv", [{"type": "conv1d", "filters": 4, "kernel_size": 3, "activation": "relu"},
                  {"type": "conv1d", "filters": 5, "kernel_size": 4, "dilation": 2, "padding": "same", "activation": "tanh"},
                  {"type": "conv1d", "filters": 4, "kernel_size": 3, "stride": 2, "padding": "causal"},
                  {"type": "lstm", "hidden": 5}],
         I=2, C=3, B=4, T=12, lengths=[12, 9, 7, 10], pooling="mean", seed=15)
    case("conv_bilstm", [{"type": "conv1d", "filters": 4, "kernel_size": 3, "padding": "causal", "dilation": 2, "activation": "relu"},
                         {"type": "lstm", "hidden": 4, "bidirectional": True}, {"type": "dense", "units": 3, "activation": "gelu"}],
         I=2, C=3, B=3, T=8, lengths=[8, 5, 6], pooling="last", seed=16)
    autoencoder_case("ae_widths", [{"type": "lstm", "hidden": 8}, {"type": "lstm", "hidden": 5}],
                     [{"type": "lstm", "hidden": 5}, {"type": "lstm", "hidden": 8}], F_=3, Z=4, B=4, T=6,
                     lengths=[6, 3, 5, 4], seed=21)
    # A causal conv + bidirectional GRU encoder; a bidirectional GRU + dense decoder.
    autoencoder_case("ae_conv_bigru", [{"type": "conv1d", "filters": 4, "kernel_size": 3, "padding": "causal",
                                        "activation": "relu"}, {"type": "gru", "hidden": 3, "bidirectional": True}],
                     [{"type": "gru", "hidden": 4, "bidirectional": True}, {"type": "dense", "units": 5, "activation": "tanh"}],
                     F_=2, Z=3, B=3, T=7, lengths=[7, 4, 6], seed=22)
    charlm_case("charlm", [{"type": "lstm", "hidden": 6}, {"type": "gru", "hidden": 5, "layers": 2},
                           {"type": "dropout", "p": 0.2}, {"type": "rnn", "hidden": 4, "nonlinearity": "relu"},
                           {"type": "dense", "units": 7, "activation": "tanh"}], V=9, E=4, B=3, T=5, seed=31)
    # A 2-level bidirectional GRU encoder (h_n of both directions to the latent), a 2-level LSTM decoder.
    seq2seq_case("s2s_bigru", [{"type": "gru", "hidden": 4, "layers": 2, "bidirectional": True}],
                 [{"type": "lstm", "hidden": 5, "layers": 2}], V=9, E=3, Z=3, lengths=[6, 3, 5, 1],
                 variational=False, seed=41)
    # A causal conv1d, an LSTM and a narrower GRU, variational; a 2-level GRU decoder.
    seq2seq_case("s2s_conv_lstm", [{"type": "conv1d", "filters": 4, "kernel_size": 3, "padding": "causal",
                                    "activation": "relu"}, {"type": "lstm", "hidden": 6}, {"type": "gru", "hidden": 3}],
                 [{"type": "gru", "hidden": 4, "layers": 2}], V=8, E=3, Z=2, lengths=[5, 2, 4],
                 variational=True, seed=42)


if __name__ == "__main__":
    main()
