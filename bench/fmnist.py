"""Fashion-MNIST for the PyTorch side of the benchmarks: Debian's gzip IDX files,
normalized with the standard mean and std, images as [N, 1, 28, 28] float32."""
import gzip

import numpy as np
import torch

DIR = "/usr/share/datasets/fashion-mnist"
MEAN, STD = 0.2860, 0.3530


def idx(path):
    with gzip.open(path, "rb") as f:
        b = f.read()
    nd = b[3]
    dims = [int.from_bytes(b[4 + 4 * i:8 + 4 * i], "big") for i in range(nd)]
    return np.frombuffer(b, dtype=np.uint8, offset=4 + 4 * nd).reshape(dims)


def images(split):
    x = idx(f"{DIR}/{split}-images-idx3-ubyte.gz")
    return ((torch.from_numpy(x.astype(np.float32)) / 255.0 - MEAN) / STD).unsqueeze(1)


def labels(split):
    return torch.from_numpy(idx(f"{DIR}/{split}-labels-idx1-ubyte.gz").astype(np.int64))


def load():
    """(train images, train labels, test images, test labels)"""
    return images("train"), labels("train"), images("t10k"), labels("t10k")
