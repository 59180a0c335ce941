#!/usr/bin/env python3
"""PyTorch builds any seqtrain checkpoint: the nn.Module of its kind and layer stack, made from the
checkpoint's own metadata (the resolved config and the kind's preprocessing), its state_dict loaded
with strict=True; and the data read as seqtrain reads it, so PyTorch recomputes `seqtrain eval`.

    python3 launch/seqtrain_torch.py eval CHECKPOINT --data PATH [--labels PATH] [--json]
        the keys of `seqtrain eval CHECKPOINT --data PATH --json` (loss and the kind's metrics)
    python3 launch/seqtrain_torch.py show CHECKPOINT
        the module PyTorch builds, and the preprocessing `load` returns beside it
    python3 launch/seqtrain_torch.py bench [--threads 1] [--cell lstm] [--layers 2] [--bidirectional] ...
        what a PyTorch user writes for `seqtrain bench --classifier` with the same flags
        (launch/compare-torch runs it, also under torchrun for DDP over gloo)

From Python:

    import sys; sys.path.insert(0, "launch"); import seqtrain_torch
    module, info = seqtrain_torch.load("runs/curves_lstm")      # a file, or a run directory

CHECKPOINT is a weights file (`checkpoints/step-NNNNNNNN.safetensors`) or a run directory: its best
checkpoint (best_checkpoint.json) as `seqtrain eval` takes, else its newest complete one.

Kinds: char_lm, sequence_classifier, mlp_classifier, sequence_tagger, autoencoder, seq2seq, forecaster.
Layer stacks (`[[model.layers]]`, `[[model.encoder]]`, `[[model.decoder]]`) are nn.ModuleLists of
nn.LSTM / nn.GRU / nn.RNN (batch_first), nn.Conv1d (weight (out, in, k)), nn.Linear and nn.Dropout,
named `layers.{i}` (or `encoder.{i}`, `decoder.{i}`); a shorthand model (model.cell, hidden, layers)
keeps its one recurrent module under its cell's name (`lstm.weight_ih_l0`), or `encoder` / `decoder`.
Inside a stack every entry's outputs are zero past each sample's valid length, a bidirectional
layer reads each sample's valid steps only (packed), and "last" pooling of a bidirectional top layer
is PyTorch's h_n (the forward half at the last valid step, the reverse half at step 0).

Data files: .npy, .npz, .csv and .tsv (a sample per row; trailing NaN ends a shorter sequence), text
for the char LM and seq2seq. JSON records are not read here. Needs torch (CPU), numpy, safetensors;
launch/test installs them.
"""
import argparse, glob, json, math, os, sys, time, tomllib, unicodedata

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
from safetensors import safe_open
from safetensors.torch import load_file

RECURRENT = {"lstm": nn.LSTM, "gru": nn.GRU, "rnn": nn.RNN}
ACTIVATIONS = {"none": lambda v: v, "relu": torch.relu, "tanh": torch.tanh, "sigmoid": torch.sigmoid,
               "gelu": F.gelu}
PAD, START, END, UNKNOWN = 0, 1, 2, 3      # seq2seq's reserved token ids


class CheckpointError(Exception):
    """Bad input from the user: says what, where and what to do."""


# MARK: checkpoints and their metadata

def resolve(path):
    """A weights file, or a run directory's best checkpoint (else its newest complete one)."""
    if not os.path.isdir(path):
        if not os.path.isfile(path):
            raise CheckpointError(f"{path}: no such checkpoint file or run directory")
        return path
    best = os.path.join(path, "best_checkpoint.json")
    if os.path.isfile(best):
        try:
            name = json.load(open(best)).get("checkpoint")
        except (ValueError, OSError):
            name = None
        if name and os.path.isfile(os.path.join(path, "checkpoints", name)):
            return os.path.join(path, "checkpoints", name)
    complete = [p for p in glob.glob(os.path.join(path, "checkpoints", "step-*[0-9].safetensors"))
                if os.path.isfile(p[:-len(".safetensors")] + ".manifest.json")]
    if not complete:
        raise CheckpointError(f"{path}: the run directory has no complete checkpoint (looked in {path}/checkpoints)")
    return sorted(complete)[-1]


def read_metadata(path):
    with safe_open(path, "pt") as f:
        meta = f.metadata() or {}
    for key in ("seqtrain.kind", "seqtrain.config"):
        if key not in meta:
            raise CheckpointError(f"{path}: not a seqtrain checkpoint (its __metadata__ lacks {key})")
    try:
        config = tomllib.loads(meta["seqtrain.config"])
    except tomllib.TOMLDecodeError as error:
        raise CheckpointError(f"{path}: seqtrain.config is not TOML ({error}); the checkpoint is damaged")
    return meta, config


def stored_json(meta, key, path):
    try:
        return json.loads(meta[key])
    except (KeyError, ValueError):
        raise CheckpointError(f"{path}: its __metadata__ lacks {key} as JSON; the checkpoint is damaged "
                              "or from a seqtrain older than this script")


# MARK: layer stacks

def stack_spec(config, key):
    """model.{key} as a list of entries (a stack), or None: the shorthand, whose resolved config writes
    an integer (model.layers) or an empty list (model.encoder, model.decoder)."""
    value = config["model"].get(key)
    return value if isinstance(value, list) and value else None


def shorthand_spec(config, hidden_key="hidden"):
    model = config["model"]
    return {"type": model.get("cell", "lstm"), "hidden": model[hidden_key], "layers": model.get("layers", 1),
            "bidirectional": False, "dropout": model.get("dropout", 0.0),
            "nonlinearity": model.get("nonlinearity", "tanh")}


def span(entry):
    return entry.get("dilation", 1) * (entry["kernel_size"] - 1) + 1


def conv_padding(entry):
    """(left, right) zeros of a conv1d entry: valid none, causal all left, same the smaller half left."""
    total = span(entry) - 1
    padding = entry.get("padding", "valid")
    if padding == "causal":
        return total, 0
    if padding == "same":
        return total // 2, total - total // 2
    return 0, 0


def conv_output_steps(entry, steps):
    """Output steps of `steps` input steps, as seqtrain's ConvolutionSpec.outputSteps (tensor)."""
    stride, padding = entry.get("stride", 1), entry.get("padding", "valid")
    if padding == "valid":
        return torch.where(steps < span(entry), torch.zeros_like(steps), (steps - span(entry)) // stride + 1)
    if padding == "same":
        return steps
    return (steps - 1) // stride + 1


def output_width(entry, width):
    kind = entry["type"]
    if kind in RECURRENT:
        return entry["hidden"] * (2 if entry.get("bidirectional", False) else 1)
    if kind == "conv1d":
        return entry["filters"]
    if kind == "dense":
        return entry["units"]
    return width


def make_entry(entry, width):
    kind = entry["type"]
    if kind in RECURRENT:
        options = {"nonlinearity": entry.get("nonlinearity", "tanh")} if kind == "rnn" else {}
        levels = entry.get("layers", 1)
        # Dropout acts between levels only (none at eval); PyTorch warns when there is one level.
        dropout = entry.get("dropout", 0.0) if levels > 1 else 0.0
        return RECURRENT[kind](width, entry["hidden"], levels, batch_first=True,
                               bidirectional=entry.get("bidirectional", False), dropout=dropout, **options)
    if kind == "conv1d":
        return nn.Conv1d(width, entry["filters"], entry["kernel_size"], stride=entry.get("stride", 1),
                         dilation=entry.get("dilation", 1))
    if kind == "dense":
        return nn.Linear(width, entry["units"])
    if kind == "dropout":
        return nn.Dropout(entry.get("p", 0.0))
    raise CheckpointError(f"model layer type \"{kind}\" is not known to this script; update launch/seqtrain_torch.py")


class Stack:
    """How one stack runs over (B, T, I) with valid lengths. Not an nn.Module: its ModuleList is
    registered on the owning module under the stack's name (`layers.{i}`), see `attach`."""

    def __init__(self, specs, input_width):
        self.specs, self.input_width = specs, input_width
        width, entries = input_width, []
        for spec in specs:
            entries.append(make_entry(spec, width))
            width = output_width(spec, width)
        self.entries = nn.ModuleList(entries)
        self.output_width = width
        top = specs[-1]
        self.reverse_width = top["hidden"] if top["type"] in RECURRENT and top.get("bidirectional") else 0

    def __call__(self, x, lengths, states=None):
        """(out (B, T', O) zero past each output length, output lengths (B,), final recurrent states,
        one per entry: None for the others). `states` gives each recurrent entry's initial state."""
        states = states or [None] * len(self.specs)
        finals = []
        x = zero_past(x, lengths)
        for i, (spec, module) in enumerate(zip(self.specs, self.entries)):
            kind, final = spec["type"], None
            if kind in RECURRENT:
                if spec.get("bidirectional", False):
                    packed = nn.utils.rnn.pack_padded_sequence(x, lengths.cpu(), batch_first=True, enforce_sorted=False)
                    out, final = module(packed, states[i])
                    x, _ = nn.utils.rnn.pad_packed_sequence(out, batch_first=True, total_length=x.shape[1])
                else:
                    x, final = module(x, states[i])
            elif kind == "conv1d":
                left, right = conv_padding(spec)
                y = F.pad(x.transpose(1, 2), (left, right))                      # (B, I, left + T + right)
                x = ACTIVATIONS[spec.get("activation", "none")](module(y)).transpose(1, 2)   # (B, T', O)
                lengths = conv_output_steps(spec, lengths).clamp(min=1, max=max(x.shape[1], 1))
            elif kind == "dense":
                x = ACTIVATIONS[spec.get("activation", "none")](module(x))
            else:
                x = module(x)
            finals.append(final)
            x = zero_past(x, lengths)
        return x, lengths, finals

    def last(self, out, lengths):
        """"last" pooling (B, O): the last valid step, the reverse half of a bidirectional top at step 0."""
        rows = torch.arange(len(out))
        pooled = out[rows, lengths - 1].clone()
        if self.reverse_width:
            pooled[:, -self.reverse_width:] = out[:, 0, -self.reverse_width:]
        return pooled


class Shorthand:
    """The shorthand's one recurrent module with the Stack interface; registered on the owner under
    its cell's name (`lstm.weight_ih_l0`) or `encoder` / `decoder`."""

    def __init__(self, spec, input_width):
        self.module = make_entry(spec, input_width)
        self.output_width, self.reverse_width = spec["hidden"], 0

    def __call__(self, x, lengths, states=None):
        out, final = self.module(x, states[0] if states else None)
        return out, lengths, [final]

    def last(self, out, lengths):
        return out[torch.arange(len(out)), lengths - 1]


def attach(owner, name, specs, shorthand, input_width):
    """Sets owner.{name} to the stack; returns the object to run. A ModuleList stack is registered as
    `name` itself (`layers.0.weight`), the shorthand's module as `name` (`lstm.weight_ih_l0`)."""
    if specs is not None:
        stack = Stack(specs, input_width)
        setattr(owner, name, stack.entries)
        return stack
    stack = Shorthand(shorthand, input_width)
    setattr(owner, name, stack.module)
    return stack


def zero_past(x, lengths):
    """x (B, T, F) with the steps at and past each sample's length set to zero."""
    valid = torch.arange(x.shape[1])[None, :] < lengths[:, None]
    return x * valid[:, :, None]


def recurrent_levels(stack):
    """(entry index, levels, hidden, cell) of every recurrent entry, in order (decoder initial states)."""
    specs = stack.specs if isinstance(stack, Stack) else [None]
    found = []
    for i, spec in enumerate(specs):
        module = stack.entries[i] if isinstance(stack, Stack) else stack.module
        if isinstance(module, nn.RNNBase):
            found.append((i, module.num_layers, module.hidden_size, module.mode))
    return found


def initial_states(stack, h, batch):
    """Splits h (B, Σ levels·H) over the stack's recurrent entries as their initial states
    (LSTMs start their cell state at zero); None for the other entries."""
    count = len(stack.specs) if isinstance(stack, Stack) else 1
    states, offset = [None] * count, 0
    for i, levels, hidden, mode in recurrent_levels(stack):
        part = h[:, offset:offset + levels * hidden].reshape(batch, levels, hidden).transpose(0, 1).contiguous()
        offset += levels * hidden
        states[i] = (part, torch.zeros_like(part)) if mode == "LSTM" else part
    return states


# MARK: the kinds' modules

class CharLM(nn.Module):
    """char_lm: Embedding → stack (shorthand: nn.LSTM or nn.GRU named by its cell) → Linear."""

    def __init__(self, config, vocabulary):
        super().__init__()
        model = config["model"]
        self.embedding = nn.Embedding(vocabulary, model["embedding"])
        specs = stack_spec(config, "layers")
        name = "layers" if specs is not None else model.get("cell", "lstm")
        self.body = attach(self, name, specs, None if specs else shorthand_spec(config), model["embedding"])
        self.head = nn.Linear(self.body.output_width, vocabulary)

    def forward(self, ids, states=None):                       # ids (B, T)
        B, T = ids.shape
        out, _, finals = self.body(self.embedding(ids), torch.full((B,), T), states)
        return self.head(out), finals


class SequenceClassifier(nn.Module):
    """sequence_classifier: stack → pooling over each sample's valid steps → Linear to C logits;
    sequence_tagger (per_step): the Linear at every step instead."""

    def __init__(self, config, features, classes, per_step=False):
        super().__init__()
        specs = stack_spec(config, "layers")
        name = "layers" if specs is not None else config["model"].get("cell", "lstm")
        self.body = attach(self, name, specs, None if specs else shorthand_spec(config), features)
        self.head = nn.Linear(self.body.output_width, classes)
        self.pooling, self.per_step = config["model"].get("pooling", "last"), per_step

    def forward(self, x, lengths):                              # x (B, T, I), lengths (B,)
        out, lengths, _ = self.body(x, lengths)
        if self.per_step:
            return self.head(out), lengths                      # (B, T', C)
        valid = (torch.arange(out.shape[1])[None, :] < lengths[:, None])[:, :, None]
        if self.pooling == "last":
            pooled = self.body.last(out, lengths)
        elif self.pooling == "mean":
            pooled = (out * valid).sum(1) / lengths[:, None]
        else:
            pooled = out.masked_fill(~valid, float("-inf")).amax(1)
        return self.head(pooled)


def mlp_classifier(config, features, classes):
    """mlp_classifier: nn.Sequential(Linear, act, Dropout, ..., Linear): Linear layers at 0, 3, 6, ..."""
    model = config["model"]
    act = {"relu": nn.ReLU, "gelu": nn.GELU, "tanh": nn.Tanh, "sigmoid": nn.Sigmoid}[model.get("activation", "relu")]
    widths = [features] + list(model.get("hidden_sizes", [])) + [classes]
    modules = []
    for k in range(len(widths) - 1):
        modules.append(nn.Linear(widths[k], widths[k + 1]))
        if k < len(widths) - 2:
            modules += [act(), nn.Dropout(model.get("dropout", 0.0))]
    return nn.Sequential(*modules)


class Autoencoder(nn.Module):
    """autoencoder: encoder → its last valid top state → to_latent → decoder (fed the latent at every
    step, or its own previous output from tanh(to_state(z))) → per-step head back to the features."""

    def __init__(self, config, features):
        super().__init__()
        model = config["model"]
        H, Z = model["hidden"], model["latent"]
        self.mode = model.get("decoder_input", "repeat")
        self.encoder_stack = attach(self, "encoder", stack_spec(config, "encoder"), shorthand_spec(config), features)
        self.to_latent = nn.Linear(self.encoder_stack.output_width, Z)
        decoder_input = Z if self.mode == "repeat" else features
        self.decoder_stack = attach(self, "decoder", stack_spec(config, "decoder"), shorthand_spec(config),
                                    decoder_input)
        if self.mode == "previous_output":
            levels = sum(n * h for _, n, h, _ in recurrent_levels(self.decoder_stack))
            self.to_state = nn.Linear(Z, levels)
        self.head = nn.Linear(self.decoder_stack.output_width, features)

    def encode(self, x, lengths):
        out, out_lengths, _ = self.encoder_stack(x, lengths)
        return self.to_latent(self.encoder_stack.last(out, out_lengths))

    def forward(self, x, lengths):                              # x (B, T, F) → reconstruction (B, T, F)
        B, T, _ = x.shape
        z = self.encode(x, lengths)
        if self.mode == "repeat":
            # Over each sample's valid steps (packed), as a bidirectional decoder entry needs.
            out, _, _ = self.decoder_stack(z[:, None, :].expand(-1, T, -1), lengths)
            return self.head(out)
        states = initial_states(self.decoder_stack, torch.tanh(self.to_state(z)), B)
        y, outputs = torch.zeros_like(x[:, 0]), []
        for _ in range(T):
            out, _, states = self.decoder_stack(y[:, None, :], torch.ones(B, dtype=torch.long), states)
            y = self.head(out[:, 0])
            outputs.append(y)
        return torch.stack(outputs, 1)


class Seq2Seq(nn.Module):
    """seq2seq: Embedding → encoder → last valid top state → latent (or mean and log-variance) →
    the decoder's initial state tanh(to_state(z)) → decoder fed the previous token → head."""

    def __init__(self, config, vocabulary):
        super().__init__()
        model = config["model"]
        E, Z = model["embedding"], model["latent"]
        self.variational = model.get("variational", False)
        self.embedding = nn.Embedding(vocabulary, E)
        shorthand = dict(shorthand_spec(config), type=model.get("cell", "gru"))
        self.encoder_stack = attach(self, "encoder", stack_spec(config, "encoder"), shorthand, E)
        width = self.encoder_stack.output_width
        if self.variational:
            self.to_mean, self.to_logvar = nn.Linear(width, Z), nn.Linear(width, Z)
        else:
            self.to_latent = nn.Linear(width, Z)
        self.decoder_stack = attach(self, "decoder", stack_spec(config, "decoder"), shorthand, E)
        self.to_state = nn.Linear(Z, sum(n * h for _, n, h, _ in recurrent_levels(self.decoder_stack)))
        self.head = nn.Linear(self.decoder_stack.output_width, vocabulary)

    def encode(self, sources, lengths):                         # sources (B, S) ids → mean, logvar (B, Z)
        out, out_lengths, _ = self.encoder_stack(self.embedding(sources), lengths)
        last = self.encoder_stack.last(out, out_lengths)
        if self.variational:
            return self.to_mean(last), self.to_logvar(last)
        return self.to_latent(last), None

    def start(self, z):
        return initial_states(self.decoder_stack, torch.tanh(self.to_state(z)), len(z))

    def decode(self, inputs, states):                           # inputs (B, T) ids → logits (B, T, V)
        B, T = inputs.shape
        out, _, finals = self.decoder_stack(self.embedding(inputs), torch.full((B,), T), states)
        return self.head(out), finals


class Forecaster(nn.Module):
    """forecaster: stack (shorthand: named by its cell) → per-step head to horizon · K values."""

    def __init__(self, config, features, targets):
        super().__init__()
        specs = stack_spec(config, "layers")
        name = "layers" if specs is not None else config["model"].get("cell", "lstm")
        self.body = attach(self, name, specs, None if specs else shorthand_spec(config), features)
        self.horizon, self.K = config["model"]["horizon"], targets
        self.head = nn.Linear(self.body.output_width, self.horizon * targets)

    def forward(self, x, states=None):                          # x (B, T, F) → (B, T, horizon, K)
        B, T, _ = x.shape
        out, _, finals = self.body(x, torch.full((B,), T), states)
        return self.head(out).view(B, T, self.horizon, self.K), finals


def load(path):
    """(module in eval mode, info): the PyTorch module of any seqtrain checkpoint, its state_dict
    loaded strictly, and what is needed to feed it (kind, config, preprocessing, vocabulary...)."""
    path = resolve(path)
    meta, config = read_metadata(path)
    kind = meta["seqtrain.kind"]
    info = {"path": path, "kind": kind, "config": config, "metadata": meta}
    if kind == "char_lm":
        info["vocabulary"] = list(meta["seqtrain.vocabulary"])
        info["eval"] = json.loads(meta["seqtrain.eval"]) if "seqtrain.eval" in meta else None
        module = CharLM(config, len(info["vocabulary"]))
    elif kind in ("sequence_classifier", "mlp_classifier"):
        pre = info["preprocessing"] = stored_json(meta, "seqtrain.preprocessing", path)
        if kind == "mlp_classifier":
            module = mlp_classifier(config, pre["inputFeatures"], len(pre["classes"]))
        else:
            module = SequenceClassifier(config, pre["inputFeatures"], len(pre["classes"]))
    elif kind == "sequence_tagger":
        pre = info["preprocessing"] = stored_json(meta, "seqtrain.tagger", path)
        module = SequenceClassifier(config, pre["inputFeatures"], len(pre["outputs"]), per_step=True)
    elif kind == "autoencoder":
        pre = info["preprocessing"] = stored_json(meta, "seqtrain.preprocessing", path)
        module = Autoencoder(config, pre["features"])
    elif kind == "seq2seq":
        info["tokens"] = stored_json(meta, "seqtrain.tokens", path)
        module = Seq2Seq(config, len(info["tokens"]))
    elif kind == "forecaster":
        pre = info["preprocessing"] = stored_json(meta, "seqtrain.preprocessing", path)
        module = Forecaster(config, len(pre["columns"]), len(pre["targets"]))
    else:
        raise CheckpointError(f"{path}: model.kind = \"{kind}\" is not known to this script; "
                              "update launch/seqtrain_torch.py")
    state = load_file(path)
    try:
        module.load_state_dict(state, strict=True)
    except RuntimeError as error:
        raise CheckpointError(f"{path}: the {kind} module built from its config does not take its tensors "
                              f"(a seqtrain newer than this script?): {error}")
    module.eval()
    return module, info


# MARK: reading data as seqtrain does

def expand(patterns, key="--data"):
    """Files of patterns (globs with *, ?, **), each once, in seqtrain's order."""
    found = []
    for pattern in patterns:
        if any(c in pattern for c in "*?["):
            matches = sorted(p for p in glob.glob(pattern, recursive=True) if os.path.isfile(p))
        else:
            if os.path.isdir(pattern):
                raise CheckpointError(f"{key}: \"{pattern}\" is a directory; name files or a glob like \"{pattern}/*\"")
            matches = [pattern] if os.path.isfile(pattern) else []
        if not matches:
            raise CheckpointError(f"{key}: \"{pattern}\" matches no file")
        found += [m for m in matches if m not in found]
    return found


def load_array(path, key):
    """A .npy file's array, or an error naming the file and the key."""
    try:
        return np.load(path, allow_pickle=False)
    except (OSError, ValueError) as error:
        raise CheckpointError(f"{key}: {path} is not a .npy file NumPy can read ({error})")


def read_text(path, key="--data"):
    try:
        return open(path, encoding="utf-8").read()
    except (OSError, UnicodeDecodeError) as error:
        raise CheckpointError(f"{key}: {path}: cannot read it as UTF-8 text ({error})")


def file_format(path, given="auto"):
    if given and given != "auto":
        return given
    for ending in ("npy", "npz", "csv", "tsv", "jsonl", "json"):
        if path.lower().endswith("." + ending):
            return ending
    return "csv"


def read_table(path, header, delimiter=None):
    """(header names or None, rows of cells) of a CSV or TSV file."""
    delimiter = delimiter or ("\t" if path.lower().endswith(".tsv") else ",")
    lines = [line for line in read_text(path).splitlines() if line.strip()]
    rows = [[cell.strip() for cell in line.split(delimiter)] for line in lines]
    if header:
        if not rows:
            raise CheckpointError(f"{path}: no header row")
        return rows[0], rows[1:]
    return None, rows


def column_indices(wanted, names, width, path, key):
    indices = []
    for column in wanted:
        if names is not None and column in names:
            indices.append(names.index(column))
        elif column.isdigit() and int(column) < width:
            indices.append(int(column))
        else:
            raise CheckpointError(f"{key}: {path} has no column {column}")
    return indices


def number(cell, path, line, j):
    if cell == "" or cell.lower() in ("nan", "na"):
        return math.nan
    try:
        return float(cell)
    except ValueError:
        raise CheckpointError(f"{path}:{line}: column {j}: \"{cell[:40]}\" is not a number")


def class_labels(array, path):
    """(N,) class ids as strings, or (N, C) 0/1 as a float matrix, from a label array."""
    if array.ndim == 1 or (array.ndim == 2 and array.shape[1] == 1):
        values = array.reshape(-1).astype(np.float64)
        if not np.all(np.isfinite(values)) or np.any(values != np.round(values)):
            raise CheckpointError(f"--labels: {path}: class ids must be integers")
        return [str(int(v)) for v in values]
    return array.astype(np.float32)


def read_samples(pre, data, labels, vector, key="--data"):
    """(values (N, T, F) float64 with NaN kept, labels as names or a matrix, or None) of data files,
    read with a checkpoint's reader settings (format, header, columns, .npz arrays)."""
    parts, label_parts = [], []
    for path in expand(data, key):
        fmt = file_format(path, pre.get("format") or "auto")
        if fmt in ("json", "jsonl"):
            raise CheckpointError(f"{key}: {path} holds JSON records, which this script does not read; "
                                  "give the same samples as .npy, .npz or CSV")
        if fmt == "npy":
            parts.append(load_array(path, key).astype(np.float64))
        elif fmt == "npz":
            archive = load_array(path, key)
            names = list(archive.keys())
            input_name = pre.get("inputArray") or names[0]
            if input_name not in names:
                raise CheckpointError(f"data.input_array: {path} has no array {input_name} (it has {', '.join(names)})")
            parts.append(archive[input_name].astype(np.float64))
            label_name = pre.get("labelArray") or next((n for n in names if n != input_name), "")
            if label_name:
                label_parts.append(class_labels(archive[label_name], f"{path}[{label_name}]"))
        else:
            names, rows = read_table(path, pre.get("header", False), "\t" if fmt == "tsv" else ",")
            width = len(rows[0]) if rows else 0
            label_columns = column_indices(pre.get("labelColumns", []), names, width, path, "data.label_columns")
            ignored = column_indices(pre.get("ignoreColumns", []) or [], names, width, path, "data.ignore_columns")
            value_columns = [j for j in range(width) if j not in label_columns and j not in ignored]
            if pre.get("inputColumns") and names is not None:
                value_columns = column_indices(pre["inputColumns"], names, width, path, key)
            first = 2 if names is not None else 1
            parts.append(np.array([[number(r[j], path, first + i, j) for j in value_columns]
                                   for i, r in enumerate(rows)], dtype=np.float64))
            if len(label_columns) == 1:
                label_parts.append([r[label_columns[0]] for r in rows])
            elif label_columns:
                label_parts.append(np.array([[float(r[j]) for j in label_columns] for r in rows], dtype=np.float32))
    for path in expand(labels, "--labels") if labels else []:
        if path.lower().endswith(".npy"):
            label_parts.append(class_labels(load_array(path, "--labels"), path))
        else:
            _, rows = read_table(path, pre.get("header", False))
            label_parts.append([r[0] for r in rows] if len(rows[0]) == 1
                               else np.array([[float(c) for c in r] for r in rows], dtype=np.float32))
    for path, part in zip(expand(data, key), parts):
        if part.ndim not in (2, 3) or min(part.shape) < 1:
            raise CheckpointError(f"{key}: {path} has shape {part.shape}; inputs are (N, T), (N, T, F) or (N, F)")
    if len({p.shape[1:] for p in parts}) > 1:
        shapes = ", ".join(str(p.shape) for p in parts)
        raise CheckpointError(f"{key}: the files have different shapes per sample ({shapes}); every file needs "
                              "the same steps and features")
    if vector:
        x = np.concatenate([p.reshape(len(p), 1, -1) for p in parts])
    else:
        x = np.concatenate([p[:, :, None] if p.ndim == 2 else p for p in parts], axis=0)
    y = None
    if label_parts:
        if len({isinstance(part, list) for part in label_parts}) > 1:
            raise CheckpointError("--labels: some files hold one label per sample, others several")
        y = (sum(label_parts, []) if isinstance(label_parts[0], list) else np.concatenate(label_parts))
        if len(y) != len(x):
            raise CheckpointError(f"--labels: {len(y)} labels for {len(x)} samples of --data; give one label "
                                  "(or one row of 0/1 labels) per sample")
    return x, y


def lengths_of(x):
    """Valid steps of (N, T, F) values whose trailing all-NaN steps end a shorter sequence; x with zeros there."""
    valid = ~np.isnan(x).all(axis=2)
    lengths = np.where(valid.any(axis=1), x.shape[1] - np.argmax(valid[:, ::-1], axis=1), 0)
    return np.nan_to_num(x), lengths


def standardize(x, lengths, mean, std):
    """(x − mean) / std at every valid step, as seqtrain's Standardization; zeros stay past the lengths."""
    if mean is None:
        return x
    valid = np.arange(x.shape[1])[None, :, None] < lengths[:, None, None]
    return np.where(valid, (x - np.array(mean, dtype=np.float32)) / np.array(std, dtype=np.float32), 0)


def feature_blocks(x, lengths, pre):
    """data.features blocks (raw, rfft, downsample, stats) of (N, T, F) samples → (N, 1, width)."""
    bins, segments = pre["rfftBins"], pre.get("downsample") or 50

    def block(name, n):
        v = x[n, :lengths[n]]                                  # one sample's valid steps (L, F)
        L = len(v)
        if name == "raw":
            return x[n].reshape(-1)
        if name == "rfft":
            spectrum = np.abs(np.fft.rfft(v, axis=0, norm="forward"))[:bins]      # (bins', F)
            padded = np.zeros((bins, v.shape[1]))
            padded[:len(spectrum)] = spectrum
            return np.log1p(padded.T).reshape(-1)              # channel-major
        if name == "downsample":                               # F.adaptive_avg_pool1d's windows
            windows = [(j * L // segments, -(-(j + 1) * L // segments)) for j in range(segments)]
            return np.array([[v[a:b, f].mean() for a, b in windows] for f in range(v.shape[1])]).reshape(-1)
        if name == "stats":
            return np.stack([v.mean(0), v.std(0), v.min(0), v.max(0), v[0], v[-1]], axis=1).reshape(-1)
        raise CheckpointError(f"data.features block \"{name}\" is not known to this script")
    names = pre["features"].split(",")
    rows = [np.concatenate([block(name, n) for name in names]) for n in range(len(x))]
    return np.stack(rows)[:, None, :]


# MARK: eval, one function per kind, each returning seqtrain eval's keys

def evaluate_char_lm(module, info, data, labels):
    vocabulary, config = info["vocabulary"], info["config"]
    index = {c: i for i, c in enumerate(vocabulary)}
    text = "".join(read_text(p) for p in expand(data))
    strict = config["data"].get("unknown", "skip") == "error"
    ids, skipped = [], 0
    for c in text:
        if c in index:
            ids.append(index[c])
        elif strict:
            raise CheckpointError(f"--data: the character {c!r} is not in the vocabulary (data.unknown = \"error\")")
        else:
            skipped += 1
    if len(ids) < 2:
        raise CheckpointError(f"--data: {len(ids)} known characters; evaluation needs at least 2")
    given = info["eval"] or {"lanes": config["training"]["batch_size"], "seq_len": config["training"]["seq_len"]}
    steps = given["seq_len"]
    lanes = max(1, min(given["lanes"], (len(ids) - 1) // steps))
    lane = (len(ids) - 1) // lanes
    ids = torch.tensor(ids)
    total, count, states = 0.0, 0, None
    with torch.no_grad():
        for start in range(0, lane, steps):
            t = min(steps, lane - start)
            x = torch.stack([ids[j * lane + start: j * lane + start + t] for j in range(lanes)])      # (lanes, t)
            y = torch.stack([ids[j * lane + start + 1: j * lane + start + t + 1] for j in range(lanes)])
            logits, states = module(x, states)
            total += F.cross_entropy(logits.reshape(-1, logits.shape[-1]), y.reshape(-1), reduction="sum").item()
            count += y.numel()
    loss = total / count
    return {"loss": loss, "perplexity": math.exp(loss), "characters": count, "skipped": skipped}


def classifier_inputs(info, data, labels, need_labels=True):
    """(x (N, T, I) float32 tensor, lengths (N,), labels) as the classifier kinds read them."""
    pre = info["preprocessing"]
    identity = pre["features"] == "raw"
    vector = pre["layout"] == "vector" and identity
    x, y = read_samples(pre, data, labels, vector)
    if need_labels and y is None:
        raise CheckpointError("--labels: the data has no labels; give label files with --labels")
    x, lengths = lengths_of(x)
    if not identity:
        x = feature_blocks(x, lengths, pre)
        lengths = np.ones(len(x), dtype=np.int64)
    if x.shape[2] != pre["inputFeatures"]:
        raise CheckpointError(f"--data: samples have {x.shape[2]} features, the model was trained on "
                              f"{pre['inputFeatures']}")
    x = standardize(x, lengths, pre.get("mean"), pre.get("std"))
    return torch.tensor(x, dtype=torch.float32), torch.tensor(lengths, dtype=torch.long), y


def class_targets(pre, y):
    """Class indices (N,) of labels as written (ids or names), or the (N, C) 0/1 matrix."""
    if pre["task"] == "multi_label":
        if isinstance(y, list):
            raise CheckpointError("--labels: one class per sample, but the model is multi-label ((N, C) 0/1 labels)")
        return torch.tensor(np.asarray(y), dtype=torch.float32)
    written = pre.get("classLabels") or pre["classes"]
    index = {name: i for i, name in enumerate(written)}
    if pre.get("classLabels"):
        index.update({name: i for i, name in enumerate(pre["classes"]) if name not in index})
    if not isinstance(y, list):
        raise CheckpointError("--labels: (N, C) labels, but the model is single-label (one class id per sample)")
    unknown = [name for name in y if name not in index]
    if unknown:
        raise CheckpointError(f"--labels: label \"{unknown[0][:40]}\" is not one of the classes the model was "
                              f"trained on ({', '.join(pre['classes'][:10])})")
    return torch.tensor([index[name] for name in y])


def classification_metrics(logits, targets, pre, threshold):
    """seqtrain's loss and metrics of logits (N, C) against class ids (N) or 0/1 targets (N, C)."""
    C = logits.shape[-1]
    if pre["task"] == "multi_label":
        loss = F.binary_cross_entropy_with_logits(logits.double(), targets.double()).item()
        predicted, truth = torch.sigmoid(logits) > threshold, targets > 0.5
        tp = (predicted & truth).sum(0).double()
        fp = (predicted & ~truth).sum(0).double()
        fn = (~predicted & truth).sum(0).double()
        present = (tp + fp + fn) > 0
        f1 = torch.where(present, 2 * tp / (2 * tp + fp + fn).clamp(min=1), torch.zeros_like(tp))
        micro = 2 * tp.sum() / (2 * tp.sum() + fp.sum() + fn.sum())
        return {"loss": loss, "macro_f1": (f1.sum() / present.sum()).item(), "micro_f1": micro.item(),
                "exact_match": (predicted == truth).all(1).double().mean().item()}
    loss = F.cross_entropy(logits.double(), targets).item()
    predicted = logits.argmax(1)
    confusion = torch.zeros(C, C, dtype=torch.long)
    confusion.index_put_((targets, predicted), torch.ones_like(targets), accumulate=True)
    tp = confusion.diag().double()
    fp, fn = confusion.sum(0).double() - tp, confusion.sum(1).double() - tp
    present = (tp + fp + fn) > 0
    f1 = torch.where(present, 2 * tp / (2 * tp + fp + fn).clamp(min=1), torch.zeros_like(tp))
    return {"loss": loss, "accuracy": (predicted == targets).double().mean().item(),
            "macro_f1": (f1.sum() / present.sum()).item(), "confusion_matrix": confusion.tolist()}


def evaluate_classifier(module, info, data, labels):
    pre = info["preprocessing"]
    x, lengths, y = classifier_inputs(info, data, labels)
    targets = class_targets(pre, y)
    with torch.no_grad():
        logits = module(x.reshape(len(x), -1)) if info["kind"] == "mlp_classifier" else module(x, lengths)
    result = classification_metrics(logits, targets, pre, info["config"].get("eval", {}).get("threshold", 0.5))
    result["samples"] = len(x)
    result["classes"] = pre["classes"]
    return result


def evaluate_tagger(module, info, data, labels):
    """sequence_tagger: per-step labels from .npy, (N, T) class ids, (N, T, C) 0/1 labels or (N, T, K)
    values (anything past a sample's length); loss and metrics over the valid steps."""
    pre, config = info["preprocessing"], info["config"]
    if not labels:
        raise CheckpointError("--labels: a tagger is evaluated against per-step labels; give the .npy file of "
                              "(N, T) class ids, (N, T, C) 0/1 labels or (N, T, K) values")
    raw, _ = read_samples(pre, data, [], vector=False)
    raw, lengths = lengths_of(raw)
    if raw.shape[2] != pre["inputFeatures"]:
        raise CheckpointError(f"--data: samples have {raw.shape[2]} features per step, the model was trained on "
                              f"{pre['inputFeatures']}")
    x = torch.tensor(standardize(raw.astype(np.float32), lengths, pre.get("mean"), pre.get("std")))
    arrays = []
    for path in expand(labels, "--labels"):
        if not path.lower().endswith(".npy"):
            raise CheckpointError(f"--labels: {path}: per-step labels are read from .npy files")
        arrays.append(load_array(path, "--labels"))
    steps = np.concatenate(arrays)                          # (N, T) or (N, T, W)
    if steps.shape[:2] != raw.shape[:2]:
        raise CheckpointError(f"--labels: shape {steps.shape}, the inputs are {raw.shape[:2]}: per-step labels "
                              "need one row per sample and one entry per step")
    lengths_t = torch.tensor(lengths)
    with torch.no_grad():
        outputs, _ = module(x, lengths_t)                   # (N, T, C)
    valid = torch.arange(outputs.shape[1])[None, :] < lengths_t[:, None]          # (N, T)
    flat = outputs[valid]                                   # (steps, C)
    outputs_named, task = pre["outputs"], pre["task"]
    result = {}
    if task == "classification":
        ids = torch.tensor(np.nan_to_num(steps.astype(np.float64), nan=0).astype(np.int64).reshape(steps.shape[:2]))
        result = classification_metrics(flat, ids[valid], {"task": "single_label"}, 0.5)
        confusion = result.pop("confusion_matrix")          # after the other keys, as seqtrain writes them
    elif task == "multi_label":
        targets = torch.tensor(steps.astype(np.float32).reshape(*steps.shape[:2], -1))[valid]    # (steps, C)
        loss = F.binary_cross_entropy_with_logits(flat.double(), targets.double()).item()
        predicted = torch.sigmoid(flat) > config.get("eval", {}).get("threshold", 0.5)
        truth = targets > 0.5
        tp = (predicted & truth).sum(0).double()
        fp = (predicted & ~truth).sum(0).double()
        fn = (~predicted & truth).sum(0).double()
        present = (tp + fp + fn) > 0
        f1 = torch.where(present, 2 * tp / (2 * tp + fp + fn).clamp(min=1), torch.zeros_like(tp))
        pairs = truth.numel()
        result = {"loss": loss, "accuracy": (pairs - (fp + fn).sum().item()) / pairs,
                  "macro_f1": (f1.sum() / present.sum()).item(),
                  "micro_f1": (2 * tp.sum() / (2 * tp.sum() + fp.sum() + fn.sum())).item()}
        result.update({"f1_" + name: f1[k].item() for k, name in enumerate(outputs_named)})
    else:
        values = torch.tensor(steps.astype(np.float32).reshape(*steps.shape[:2], -1))[valid]     # (steps, K)
        t_mean, t_std = pre.get("targetMean"), pre.get("targetStd")
        mean = torch.tensor(t_mean or [0.0] * len(outputs_named), dtype=torch.float32)
        std = torch.tensor(t_std or [1.0] * len(outputs_named), dtype=torch.float32)
        targets = (values - mean) / std if t_mean is not None else values    # standardized, as the model's
        d = (flat - targets).double()
        loss = (d.abs() if config["model"].get("loss", "auto") == "l1" else d ** 2).mean().item()
        restored = (flat * std + mean) if t_mean is not None else flat
        truth = (targets * std + mean) if t_mean is not None else targets
        e = (restored.double() - truth.double())
        result = {"loss": loss, "rmse": math.sqrt((e ** 2).mean().item()), "mae": e.abs().mean().item()}
    result.update({"samples": len(x), "steps": int(valid.sum()), "task": task})
    if task == "classification":
        result["confusion_matrix"] = confusion
    result["classes" if task == "classification" else "outputs"] = outputs_named
    return result


def evaluate_autoencoder(module, info, data, labels):
    pre, config = info["preprocessing"], info["config"]
    settings = {"header": pre.get("header", False), "ignoreColumns": pre.get("ignoreColumns") or [],
                "inputColumns": pre.get("inputColumns")}
    raw, _ = read_samples(settings, data, [], vector=False)
    raw, lengths = lengths_of(raw)
    if raw.shape[2] != pre["features"]:
        raise CheckpointError(f"--data: sequences have {raw.shape[2]} features per step, the model was trained "
                              f"on {pre['features']}")
    Fn = pre["features"]
    mean = np.array(pre.get("mean") or [0.0] * Fn, dtype=np.float32)
    std = np.array(pre.get("std") or [1.0] * Fn, dtype=np.float32)
    x = torch.tensor(standardize(raw.astype(np.float32), lengths, pre.get("mean"), pre.get("std")), dtype=torch.float32)
    lengths_t = torch.tensor(lengths)
    with torch.no_grad():
        recon = module(x, lengths_t)
    valid = (torch.arange(x.shape[1])[None, :] < lengths_t[:, None])[:, :, None].expand_as(x)
    diff = (recon - x)[valid].double()
    per_element = diff.abs() if config["loss"].get("kind", "mse") == "l1" else diff ** 2
    loss = per_element.sum().item() / valid.sum().item()
    scaled = (recon - x).double() * torch.tensor(std, dtype=torch.float64)
    mse = (scaled ** 2)[valid].sum().item() / valid.sum().item()
    values = (x.double() * torch.tensor(std, dtype=torch.float64) + torch.tensor(mean, dtype=torch.float64))
    per_feature = valid[:, :, 0].sum().item()
    sums = (values * valid).sum((0, 1))
    squares = (values ** 2 * valid).sum((0, 1))
    variance = (squares / per_feature - (sums / per_feature) ** 2).clamp(min=0).mean().item()
    return {"loss": loss, "reconstruction_mse": mse, "variance_ratio": mse / variance, "samples": len(x)}


def word_sequences(text):
    """seqtrain's data.sequences = "words": runs of non-space characters, punctuation and symbols
    taken off their ends."""
    def edge(c):
        return unicodedata.category(c)[0] in "PS"
    words = []
    for word in text.split():
        a, b = 0, len(word)
        while a < b and edge(word[a]):
            a += 1
        while b > a and edge(word[b - 1]):
            b -= 1
        if a < b:
            words.append(word[a:b])
    return words


def evaluate_seq2seq(module, info, data, labels):
    config, tokens = info["config"], info["tokens"]
    index = {token: i for i, token in enumerate(tokens)}
    rules = config["data"]
    seen, sequences = set(), []
    for path in expand(data):
        text = read_text(path)
        if rules.get("sequences", "lines") == "words":
            parts = word_sequences(text)
        else:
            parts = [line.strip(" \t") for line in text.splitlines() if line.strip(" \t")]
        for sequence in parts:
            if rules.get("unique", False):
                if sequence in seen:
                    continue
                seen.add(sequence)
            cut = sequence.split() if rules.get("tokens", "characters") == "words" else list(sequence)
            if len(cut) <= rules.get("max_length", 64):
                sequences.append(cut)
    if not sequences:
        raise CheckpointError("--data: no sequences of 1 to data.max_length tokens")
    ids = [[index.get(token, UNKNOWN) for token in sequence] for sequence in sequences]
    unknown = sum(i == UNKNOWN and t not in index for s, seq in zip(ids, sequences) for i, t in zip(s, seq))
    cross, count, right_forced, right_free, exact, kl = 0.0, 0, 0, 0, 0, 0.0
    with torch.no_grad():
        for start in range(0, len(ids), 64):
            chunk = ids[start:start + 64]
            B, S = len(chunk), max(1, max(len(s) for s in chunk))
            T = S + 1
            sources = torch.zeros(B, S, dtype=torch.long)
            inputs = torch.zeros(B, T, dtype=torch.long)
            targets = torch.zeros(B, T, dtype=torch.long)
            mask = torch.zeros(B, T, dtype=torch.bool)
            for r, s in enumerate(chunk):
                sources[r, :len(s)] = torch.tensor(s, dtype=torch.long)
                inputs[r, 0] = START
                inputs[r, 1:len(s) + 1] = torch.tensor(s, dtype=torch.long)
                targets[r, :len(s)] = torch.tensor(s, dtype=torch.long)
                targets[r, len(s)] = END
                mask[r, :len(s) + 1] = True
            lengths = torch.tensor([max(len(s), 1) for s in chunk])
            mean, logvar = module.encode(sources, lengths)
            if logvar is not None:
                kl += (-0.5 * (1 + logvar - mean ** 2 - logvar.exp()).double().sum()).item()
            logits, _ = module.decode(inputs, module.start(mean))
            cross += F.cross_entropy(logits[mask].double(), targets[mask], reduction="sum").item()
            count += int(mask.sum())
            right_forced += int((logits.argmax(-1) == targets)[mask].sum())
            states, step, predicted = module.start(mean), torch.full((B, 1), START), []
            for _ in range(T):
                logits, states = module.decode(step, states)
                step = logits[:, -1].argmax(-1, keepdim=True)
                predicted.append(step)
            predicted = torch.cat(predicted, 1)
            for r, s in enumerate(chunk):
                right = int((predicted[r, :len(s) + 1] == targets[r, :len(s) + 1]).sum())
                right_free += right
                exact += right == len(s) + 1
    result = {"loss": (cross + kl) / count, "token_accuracy_teacher_forced": right_forced / count,
              "token_accuracy_free_running": right_free / count, "exact_match": exact / len(ids)}
    if module.variational:
        result["kl"] = kl / len(ids)
    result.update({"sequences": len(ids), "unknown_tokens": unknown})
    return result


def read_series(pre, data):
    """Each file one series (T, F) of the checkpoint's columns, as seqtrain's SeriesReader."""
    series = []
    for path in expand(data):
        if path.lower().endswith(".npy"):
            array = load_array(path, "--data").astype(np.float64)
            array = array[:, None] if array.ndim == 1 else array
            picked = [int(c) for c in pre["columns"]]
            series.append(array[:, picked])
            continue
        names, rows = read_table(path, pre["header"])
        width = len(rows[0]) if rows else 0
        picked = column_indices(pre["columns"], names, width, path, "data.columns")
        first = 2 if names is not None else 1
        series.append(np.array([[number(r[j], path, first + i, j) for j in picked] for i, r in enumerate(rows)]))
    return series


def evaluate_forecaster(module, info, data, labels):
    pre, config = info["preprocessing"], info["config"]
    fraction = config["data"].get("validation_fraction", 0.0)
    if fraction <= 0:
        raise CheckpointError(f"{info['path']}: trained with data.validation_fraction = 0, so eval has no "
                              "held-out part to forecast; use seqtrain forecast")
    Fn, targets, h = len(pre["columns"]), pre["targets"], module.horizon
    o = 1 if pre["difference"] else 0
    mean = np.array(pre.get("mean") or [0.0] * Fn, dtype=np.float32)
    std = np.array(pre.get("std") or [1.0] * Fn, dtype=np.float32)
    stateful, look_back = config["training"].get("stateful", False), config["training"].get("look_back", 1)
    season = config.get("eval", {}).get("season", 0)
    l1 = config["loss"].get("kind", "mse") == "l1"
    sums = dict(loss=0.0, loss_count=0, absolute=0.0, squared=0.0, count=0, naive_a=0.0, naive_s=0.0,
                season_a=0.0, season_s=0.0, season_count=0)
    series = read_series(pre, data)
    for s in series:
        s32 = s.astype(np.float32)
        view = (s32[1:] - s32[:-1]) if o else s32                 # (T − o, F)
        values = ((view - mean) / std).astype(np.float32) if pre.get("mean") is not None else view
        steps = len(s) - o
        training = max(0, len(s) - int(math.floor(len(s) * fraction + 0.5)) - o)
        if training < 1 or steps <= training:
            continue
        origins = list(range(training - 1, steps - 1))
        with torch.no_grad():
            if stateful:
                y, _ = module(torch.tensor(values[:origins[-1] + 1])[None])
                forecasts = {origin: y[0, origin].numpy() for origin in origins}
            else:
                windows = np.zeros((len(origins), look_back, Fn), dtype=np.float32)
                for r, origin in enumerate(origins):
                    for t in range(look_back):
                        if origin - look_back + 1 + t >= 0:
                            windows[r, t] = values[origin - look_back + 1 + t]
                y, _ = module(torch.tensor(windows))
                forecasts = {origin: y[r, -1].numpy() for r, origin in enumerate(origins)}
        for origin in origins:
            predicted = forecasts[origin]                       # (horizon, K)
            for q, f in enumerate(targets):
                level = float(s32[origin + o, f])
                known = level
                for step in range(h):
                    target = origin + 1 + step
                    if target >= steps:
                        break
                    z = np.float32(predicted[step, q])
                    d = float(np.float32(z - values[target, f]))
                    sums["loss"] += abs(d) if l1 else d * d
                    sums["loss_count"] += 1
                    value = float(z) * float(std[f]) + float(mean[f]) if pre.get("mean") is not None else float(z)
                    level = level + value if o else value
                    truth = float(s32[target + o, f])
                    error, naive = level - truth, known - truth
                    sums["absolute"] += abs(error); sums["squared"] += error * error; sums["count"] += 1
                    sums["naive_a"] += abs(naive); sums["naive_s"] += naive * naive
                    if season > 0:
                        back = target + o - season * (1 + step // season)
                        if back >= 0:
                            seasonal = float(s32[back, f]) - truth
                            sums["season_a"] += abs(seasonal); sums["season_s"] += seasonal ** 2
                            sums["season_count"] += 1
    n = sums["count"]
    if n == 0:
        raise CheckpointError("--data: the series are too short to forecast any held-out step")
    result = {"loss": sums["loss"] / sums["loss_count"], "mae": sums["absolute"] / n,
              "rmse": math.sqrt(sums["squared"] / n), "naive_mae": sums["naive_a"] / n,
              "naive_rmse": math.sqrt(sums["naive_s"] / n)}
    if season > 0:
        m = sums["season_count"]
        result["seasonal_naive_mae"] = sums["season_a"] / m if m else math.nan
        result["seasonal_naive_rmse"] = math.sqrt(sums["season_s"] / m) if m else math.nan
    result.update({"forecasts": n, "series": len(series)})
    return result


EVALUATORS = {"char_lm": evaluate_char_lm, "sequence_classifier": evaluate_classifier,
              "mlp_classifier": evaluate_classifier, "sequence_tagger": evaluate_tagger,
              "autoencoder": evaluate_autoencoder, "seq2seq": evaluate_seq2seq, "forecaster": evaluate_forecaster}


def evaluate(checkpoint, data, labels=()):
    """The figures of `seqtrain eval CHECKPOINT --data ... --json`, computed by PyTorch."""
    torch.set_grad_enabled(False)
    module, info = load(checkpoint)
    result = EVALUATORS[info["kind"]](module, info, list(data), list(labels))
    result["checkpoint"] = info["path"]
    return result


# MARK: bench: what a PyTorch user writes for `seqtrain bench --classifier`

def bench(a):
    """An LSTM (hidden 64; --cell, --layers, --bidirectional as seqtrain's flags) over curves of 1500
    steps and one feature, max pooling, a linear head to 7 labels, BCEWithLogitsLoss,
    clip_grad_norm_(5), Adam; a batch per process; samples/s."""
    import torch.distributed as dist
    torch.set_num_threads(a.threads)
    if a.flush_denormal:
        torch.set_flush_denormal(True)
    ddp = "RANK" in os.environ
    if ddp:
        dist.init_process_group("gloo")
    torch.manual_seed(0)
    recurrent = {"lstm": nn.LSTM, "gru": nn.GRU, "rnn": nn.RNN}[a.cell]
    directions = 2 if a.bidirectional else 1

    class Curves(nn.Module):
        def __init__(s):
            super().__init__()
            s.rnn = recurrent(1, a.hidden, a.layers, batch_first=True, bidirectional=a.bidirectional)
            s.head = nn.Linear(directions * a.hidden, a.labels)

        def forward(s, x):                     # x (B, T, 1)
            out, _ = s.rnn(x)                  # (B, T, directions * H)
            return s.head(out.amax(1))

    m = Curves()
    if ddp:
        m = nn.parallel.DistributedDataParallel(m)
    opt = torch.optim.Adam(m.parameters(), 1e-3)
    x = torch.randn(a.batch, a.seq, 1)
    y = (torch.rand(a.batch, a.labels) < 0.4).float()
    loss_fn = nn.BCEWithLogitsLoss()
    times = []
    for i in range(3 + a.steps):
        t = time.perf_counter()
        opt.zero_grad()
        loss = loss_fn(m(x), y)
        loss.backward()
        nn.utils.clip_grad_norm_(m.parameters(), 5.0)
        opt.step()
        if i >= 3:
            times.append(time.perf_counter() - t)
    world = dist.get_world_size() if ddp else 1
    median = sorted(times)[len(times) // 2]
    if not ddp or dist.get_rank() == 0:
        shape = f"{'bidirectional ' if a.bidirectional else ''}{a.layers}-layer {a.cell.upper()}"
        print(f"torch {torch.__version__} procs={world} threads={a.threads} flush_denormal={a.flush_denormal} "
              f"{shape} H={a.hidden} T={a.seq} B={a.batch}: {a.batch * world / median:.1f} samples/s")
    if ddp:
        dist.destroy_process_group()


def positive(text):
    """argparse type: an integer of at least 1."""
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text}")
    return value


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    ev = commands.add_parser("eval", help="the figures of seqtrain eval, computed by PyTorch")
    ev.add_argument("checkpoint")
    ev.add_argument("--data", action="append", required=True, help="data files or globs (repeatable)")
    ev.add_argument("--labels", action="append", default=[], help="label files (repeatable)")
    ev.add_argument("--json", action="store_true", help="print one JSON object")
    show = commands.add_parser("show", help="the module and preprocessing of a checkpoint")
    show.add_argument("checkpoint")
    b = commands.add_parser("bench", help="the PyTorch side of seqtrain bench --classifier")
    b.add_argument("--batch", type=int, default=32, help="per process")
    b.add_argument("--seq", type=int, default=1500)
    b.add_argument("--hidden", type=int, default=64)
    b.add_argument("--labels", type=int, default=7)
    b.add_argument("--steps", type=int, default=5)
    b.add_argument("--threads", type=int, default=1)
    b.add_argument("--cell", choices=("lstm", "gru", "rnn"), default="lstm")
    b.add_argument("--layers", type=positive, default=1, help="num_layers of the recurrent module")
    b.add_argument("--bidirectional", action="store_true", help="bidirectional=True: the head reads 2H")
    b.add_argument("--flush-denormal", action="store_true", help="torch.set_flush_denormal(True), as seqtrain")
    a = parser.parse_args()
    try:
        if a.command == "bench":
            bench(a)
        elif a.command == "show":
            module, info = load(a.checkpoint)
            print(f"{info['path']}: {info['kind']}")
            print(module)
            for key in ("preprocessing", "vocabulary", "tokens", "eval"):
                if info.get(key) is not None:
                    print(f"{key}: {json.dumps(info[key])[:2000]}")
        else:
            result = evaluate(a.checkpoint, a.data, a.labels)
            if a.json:
                print(json.dumps(result))
            else:
                print(", ".join(f"{k} {v:.6g}" if isinstance(v, float) else f"{k} {v}" for k, v in result.items()
                                if k not in ("confusion_matrix", "classes")))
    except CheckpointError as error:
        print(f"seqtrain_torch: {error}", file=sys.stderr)
        sys.exit(1)
    except (KeyError, ValueError, IndexError, RuntimeError, OSError) as error:
        # Inputs this script does not check yet; one line, not a traceback.
        print(f"seqtrain_torch: {type(error).__name__}: {error} (if the checkpoint and the data are valid for "
              "seqtrain eval, this is a bug in launch/seqtrain_torch.py)", file=sys.stderr)
        sys.exit(1)


if __name__ == "__main__":
    main()
