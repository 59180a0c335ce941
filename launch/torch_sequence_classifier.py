#!/usr/bin/env python3
"""What a PyTorch user writes for seqtrain's sequence-classifier workload, timed the same way as
`seqtrain bench --classifier`: an LSTM (hidden 64) over curves of 1500 steps and one feature, max
pooling over the steps, a linear head to 7 labels, BCEWithLogitsLoss, clip_grad_norm_(5), Adam;
a batch of 32 per process. Prints samples/s over the timed steps.

Single process:  python3 launch/torch_sequence_classifier.py --threads 1
DDP over gloo:   torchrun --nproc_per_node 2 launch/torch_sequence_classifier.py --threads 1
"""
import argparse, os, time, torch
import torch.distributed as dist

p = argparse.ArgumentParser()
p.add_argument("--batch", type=int, default=32)   # per process
p.add_argument("--seq", type=int, default=1500)
p.add_argument("--hidden", type=int, default=64)
p.add_argument("--labels", type=int, default=7)
p.add_argument("--steps", type=int, default=5)
p.add_argument("--threads", type=int, default=1)
p.add_argument("--flush-denormal", action="store_true", help="torch.set_flush_denormal(True), as seqtrain flushes")
a = p.parse_args()
torch.set_num_threads(a.threads)
if a.flush_denormal:
    torch.set_flush_denormal(True)
ddp = "RANK" in os.environ
if ddp:
    dist.init_process_group("gloo")
torch.manual_seed(0)

class SequenceClassifier(torch.nn.Module):
    def __init__(s):
        super().__init__()
        s.lstm = torch.nn.LSTM(1, a.hidden, 1, batch_first=True)
        s.head = torch.nn.Linear(a.hidden, a.labels)
    def forward(s, x):
        out, _ = s.lstm(x)
        return s.head(out.amax(1))

m = SequenceClassifier()
if ddp:
    m = torch.nn.parallel.DistributedDataParallel(m)
opt = torch.optim.Adam(m.parameters(), 1e-3)
x = torch.randn(a.batch, a.seq, 1)
y = (torch.rand(a.batch, a.labels) < 0.4).float()
loss_fn = torch.nn.BCEWithLogitsLoss()

times = []
for i in range(3 + a.steps):
    t = time.perf_counter()
    opt.zero_grad()
    loss = loss_fn(m(x), y)
    loss.backward()
    torch.nn.utils.clip_grad_norm_(m.parameters(), 5.0)
    opt.step()
    if i >= 3:
        times.append(time.perf_counter() - t)
world = dist.get_world_size() if ddp else 1
median = sorted(times)[len(times) // 2]
if not ddp or dist.get_rank() == 0:
    print(f"torch {torch.__version__} procs={world} threads={a.threads} flush_denormal={a.flush_denormal} LSTM H={a.hidden} T={a.seq} B={a.batch}: "
          f"{a.batch * world / median:.1f} samples/s")
if ddp:
    dist.destroy_process_group()
