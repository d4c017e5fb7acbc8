#!/usr/bin/python3
"""PyTorch 1.13 side of bench/infer_bench.py: loads a model's state dict written
by export_onnx.py and prints one JSON line per batch size with the median
latency of model(x) under torch.inference_mode().

Usage: torch_infer.py MODEL THREADS BATCHES SECONDS   (BATCHES like 1,256)
"""
import json, os, sys

os.environ.setdefault("GLOG_minloglevel", "2")
os.environ.setdefault("TORCH_CPP_LOG_LEVEL", "ERROR")
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from torch_models import MODELS  # noqa: E402
from torch_timing import p50_ms  # noqa: E402

name, threads, batches, seconds = sys.argv[1], int(sys.argv[2]), sys.argv[3], float(sys.argv[4])
OUT = os.environ.get("OUT", os.path.join(os.path.dirname(os.path.abspath(__file__)), "out", "infer"))
torch.set_num_threads(threads)
model = MODELS[name]()
model.load_state_dict(torch.load(f"{OUT}/{name}.pt"))
model.eval()
for batch in [int(b) for b in batches.split(",")]:
    p50, runs = p50_ms(model, torch.randn(batch, 1, 28, 28), seconds)
    print(json.dumps({"tool": "pytorch", "model": name, "threads": threads, "batch": batch,
                      "p50_ms": p50, "runs": runs}), flush=True)
