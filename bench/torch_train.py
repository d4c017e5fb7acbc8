#!/usr/bin/python3
"""PyTorch 1.13 side of bench/train_bench.py: trains the reference MLP and CNN
on Fashion-MNIST exactly as ../shared/anchors/torch_bench.py does (batch 128,
Adam 1e-3, same models, same normalization) and prints one JSON line per epoch.

Usage: torch_train.py MODEL EPOCHS THREADS SEED
"""
import json, os, sys, time

os.environ.setdefault("GLOG_minloglevel", "2")
os.environ.setdefault("TORCH_CPP_LOG_LEVEL", "ERROR")
import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import fmnist  # noqa: E402
from torch_models import MODELS  # noqa: E402

model_name, epochs, threads, seed = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
torch.set_num_threads(threads)
torch.manual_seed(seed)
Xtr, ytr, Xte, yte = fmnist.load()


@torch.inference_mode()
def accuracy(model):
    model.eval()
    c = 0
    for i in range(0, Xte.shape[0], 1000):
        c += (model(Xte[i:i + 1000]).argmax(1) == yte[i:i + 1000]).sum().item()
    return c / Xte.shape[0]


model = MODELS[model_name]()
opt = torch.optim.Adam(model.parameters(), lr=1e-3)
gen = torch.Generator().manual_seed(seed)
for ep in range(1, epochs + 1):
    model.train()
    perm = torch.randperm(Xtr.shape[0], generator=gen)
    t0 = time.perf_counter()
    tot = 0.0
    for i in range(0, Xtr.shape[0], 128):
        ii = perm[i:i + 128]
        xb, yb = Xtr[ii], ytr[ii]
        opt.zero_grad(set_to_none=True)
        loss = F.cross_entropy(model(xb), yb)
        loss.backward()
        opt.step()
        tot += loss.item() * xb.shape[0]
    dt = time.perf_counter() - t0
    print(json.dumps({"tool": "pytorch", "model": model_name, "epoch": ep, "seconds": dt,
                      "samples_per_s": Xtr.shape[0] / dt, "train_loss": tot / Xtr.shape[0],
                      "test_accuracy": accuracy(model)}), flush=True)
