"""PyTorch reference values for seqtrain's sequence tagger (`model.kind = "sequence_tagger"`).

Each case is a tagger: a stack of PyTorch layers in an nn.ModuleList named `layers` (the rules of
Fixtures/make_stacks.py, whose Stack it imports: every layer's output is zero past each
sample's valid steps, bidirectional layers run as packed sequences) and a Linear `head` applied at
every step (Keras's TimeDistributed(Dense)), on variable-length inputs. The loss is the mean over
the valid steps only: F.cross_entropy on (N, T) class ids, F.binary_cross_entropy_with_logits on
(N, T, C) 0/1 labels, F.mse_loss on (N, T, K) values. Stored: the parameters (state_dict names), x,
lengths, y (class ids are -1 past a length, other targets NaN there), the per-step outputs
(B, T, C), the loss, every gradient ("grad." prefix) and the parameters after 3 Adam steps ("after."
prefix). "__metadata__" holds the stack as a config writes it, the task and the sizes.

Regenerate:  pip install torch safetensors && python make_tagger.py
"""
import json
import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence
from safetensors.torch import save_file

torch.set_default_dtype(torch.float32)
# The stack rules are make_stacks.py's: the same module, so both references compute one thing.
from make_stacks import Stack, toml  # noqa: E402


class Tagger(nn.Module):
    def __init__(s, specs, I, C):
        super().__init__()
        s.stack = Stack(specs, I)
        s.layers = s.stack.layers
        s.head = nn.Linear(s.stack.width, C)

    def forward(s, x, lengths):
        out, n = s.stack(x, lengths)
        assert torch.equal(n, lengths), "a tagger's stack keeps the steps"
        return s.head(out)                                   # (B, T, C)

    def state(s):
        return {k: v for k, v in s.state_dict().items() if not k.startswith("stack.")}


def loss_of(task, out, y, valid):
    if task == "classification":
        return F.cross_entropy(out[valid], y[valid])
    if task == "multi_label":
        return F.binary_cross_entropy_with_logits(out[valid], y[valid])
    return F.mse_loss(out[valid], y[valid])


def case(name, task, specs, I, C, B, T, lengths, seed):
    torch.manual_seed(seed)
    m = Tagger(specs, I, C)
    m.eval()  # dropout off: the reference is deterministic
    init = {k: v.clone() for k, v in m.state().items()}
    n = torch.tensor(lengths)
    valid = torch.arange(T)[None, :] < n[:, None]            # (B, T)
    x = torch.randn(B, T, I) * valid.float()[:, :, None]
    if task == "classification":
        y = torch.randint(0, C, (B, T))
        stored_y = y.masked_fill(~valid, -1)
    elif task == "multi_label":
        y = (torch.rand(B, T, C) < 0.4).float()
        stored_y = y.masked_fill(~valid[:, :, None], float("nan"))
    else:
        y = torch.randn(B, T, C)
        stored_y = y.masked_fill(~valid[:, :, None], float("nan"))
    out = m(x, n)
    loss = loss_of(task, out, y, valid)
    loss.backward()
    g = {f"grad.{k.removeprefix('stack.')}": p.grad.clone() for k, p in m.named_parameters()}
    opt = torch.optim.Adam(m.parameters(), lr=1e-2)
    for _ in range(3):
        opt.zero_grad()
        loss_of(task, m(x, n), y, valid).backward()
        opt.step()
    after = {f"after.{k}": v for k, v in m.state().items()}
    tensors = {**init, "x": x, "lengths": n, "y": stored_y, "outputs": out, "loss": loss.reshape(1), **g, **after}
    save_file({k: v.detach().contiguous() for k, v in tensors.items()}, f"tagger_{name}.safetensors",
              metadata={"stack": toml(specs), "task": task, "sizes": json.dumps({"I": I, "C": C, "B": B, "T": T})})
    print(name, out.shape, float(loss))


case("bilstm_ids", "classification", [{"type": "lstm", "hidden": 5, "layers": 2, "bidirectional": True}],
     I=3, C=4, B=4, T=7, lengths=[7, 3, 5, 6], seed=21)
case("conv_gru_multilabel", "multi_label",
     [{"type": "conv1d", "filters": 4, "kernel_size": 3, "padding": "causal", "activation": "relu"},
      {"type": "gru", "hidden": 6}],
     I=2, C=3, B=3, T=8, lengths=[8, 5, 6], seed=22)
case("regression", "regression",
     [{"type": "conv1d", "filters": 5, "kernel_size": 3, "padding": "same", "dilation": 2, "activation": "tanh"},
      {"type": "lstm", "hidden": 6}, {"type": "dense", "units": 4, "activation": "gelu"}],
     I=2, C=2, B=4, T=6, lengths=[6, 4, 2, 5], seed=23)
