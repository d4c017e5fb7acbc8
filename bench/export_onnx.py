#!/usr/bin/python3
"""Trains the reference models briefly in PyTorch 1.13 and exports them to ONNX,
for bench/infer_bench.py: leanai, ONNX Runtime and PyTorch then run the same
weights. Writes to OUT (default bench/out/infer):
  {mlp,cnn,resnet}.onnx    opset 13, dynamic batch axis, input "input"
  {mlp,cnn,resnet}.pt      the state dict (PyTorch's own side of the benchmark)
  {name}_parity_out.f32    PyTorch's logits on parity_in.f32 (16 test images)
  parity_in.f32            16 normalized Fashion-MNIST test images, [16,1,28,28]
  test_x.f32 / test_y.u8   the 10k test set, normalized, for accuracy checks

Usage: export_onnx.py [EPOCHS]   (default 1; 0 = untrained weights)
"""
import json, os, sys, time

os.environ.setdefault("GLOG_minloglevel", "2")
os.environ.setdefault("TORCH_CPP_LOG_LEVEL", "ERROR")
import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import fmnist  # noqa: E402
from torch_models import MODELS  # noqa: E402
from torch_fit import fit  # noqa: E402

EPOCHS = int(sys.argv[1]) if len(sys.argv) > 1 else 1
OUT = os.environ.get("OUT", os.path.join(os.path.dirname(os.path.abspath(__file__)), "out", "infer"))
os.makedirs(OUT, exist_ok=True)
torch.set_num_threads(int(os.environ.get("THREADS", "2")))

Xtr, ytr, Xte, yte = fmnist.load()
yte = yte.numpy()
Xte.numpy().astype("<f4").tofile(f"{OUT}/test_x.f32")
yte.astype(np.uint8).tofile(f"{OUT}/test_y.u8")
parity = Xte[:16].contiguous()
parity.numpy().astype("<f4").tofile(f"{OUT}/parity_in.f32")

for name, cls in MODELS.items():
    torch.manual_seed(0)
    model = cls()
    t0 = time.time()
    fit(model, Xtr, ytr, EPOCHS)
    with torch.no_grad():
        acc = float((model(Xte).argmax(1).numpy() == yte).mean())
        ref = model(parity)
    ref.numpy().astype("<f4").tofile(f"{OUT}/{name}_parity_out.f32")
    torch.save(model.state_dict(), f"{OUT}/{name}.pt")
    torch.onnx.export(model, parity[:1], f"{OUT}/{name}.onnx", input_names=["input"], output_names=["logits"],
                      dynamic_axes={"input": {0: "N"}, "logits": {0: "N"}}, opset_version=13)
    print(json.dumps({"model": name, "epochs": EPOCHS, "train_s": round(time.time() - t0, 1), "torch_test_acc": acc}),
          flush=True)
