#!/usr/bin/python3
"""PyTorch 1.13 side of bench/train_bench.py: trains the reference MLP and CNN
on Fashion-MNIST exactly as ../shared/anchors/torch_bench.py does (batch 128,
Adam 1e-3, same models, same normalization) and prints one JSON line per epoch.

Usage: torch_train.py MODEL EPOCHS THREADS SEED
"""
import gzip, json, os, sys, time

os.environ.setdefault("GLOG_minloglevel", "2")
os.environ.setdefault("TORCH_CPP_LOG_LEVEL", "ERROR")
import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

model_name, epochs, threads, seed = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
torch.set_num_threads(threads)
torch.manual_seed(seed)
D = "/usr/share/datasets/fashion-mnist"


def idx(path):
    with gzip.open(path, "rb") as f:
        b = f.read()
    nd = b[3]
    dims = [int.from_bytes(b[4 + 4 * i:8 + 4 * i], "big") for i in range(nd)]
    return np.frombuffer(b, dtype=np.uint8, offset=4 + 4 * nd).reshape(dims)


def norm(x):
    return ((torch.from_numpy(x.astype(np.float32)) / 255.0 - 0.2860) / 0.3530).unsqueeze(1)


Xtr = norm(idx(f"{D}/train-images-idx3-ubyte.gz"))
ytr = torch.from_numpy(idx(f"{D}/train-labels-idx1-ubyte.gz").astype(np.int64))
Xte = norm(idx(f"{D}/t10k-images-idx3-ubyte.gz"))
yte = torch.from_numpy(idx(f"{D}/t10k-labels-idx1-ubyte.gz").astype(np.int64))


class MLP(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc1, self.fc2, self.fc3 = nn.Linear(784, 512), nn.Linear(512, 256), nn.Linear(256, 10)

    def forward(self, x):
        x = torch.flatten(x, 1)
        return self.fc3(F.relu(self.fc2(F.relu(self.fc1(x)))))


class CNN(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv1, self.conv2 = nn.Conv2d(1, 32, 3), nn.Conv2d(32, 64, 3)
        self.fc1, self.fc2 = nn.Linear(1600, 128), nn.Linear(128, 10)

    def forward(self, x):
        x = F.max_pool2d(F.relu(self.conv1(x)), 2)
        x = F.max_pool2d(F.relu(self.conv2(x)), 2)
        return self.fc2(F.relu(self.fc1(torch.flatten(x, 1))))


@torch.inference_mode()
def accuracy(model):
    model.eval()
    c = 0
    for i in range(0, Xte.shape[0], 1000):
        c += (model(Xte[i:i + 1000]).argmax(1) == yte[i:i + 1000]).sum().item()
    return c / Xte.shape[0]


model = {"mlp": MLP, "cnn": CNN}[model_name]()
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
