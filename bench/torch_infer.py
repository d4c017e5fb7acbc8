#!/usr/bin/python3
"""PyTorch 1.13 side of bench/infer_bench.py: loads a model's state dict written
by export_onnx.py and prints one JSON line per batch size with the median
latency of model(x) under torch.inference_mode().

Usage: torch_infer.py MODEL THREADS BATCHES SECONDS   (BATCHES like 1,256)
"""
import json, os, sys, time

os.environ.setdefault("GLOG_minloglevel", "2")
os.environ.setdefault("TORCH_CPP_LOG_LEVEL", "ERROR")
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from torch_models import MODELS  # noqa: E402

name, threads, batches, seconds = sys.argv[1], int(sys.argv[2]), sys.argv[3], float(sys.argv[4])
OUT = os.environ.get("OUT", os.path.join(os.path.dirname(os.path.abspath(__file__)), "out", "infer"))
torch.set_num_threads(threads)
model = MODELS[name]()
model.load_state_dict(torch.load(f"{OUT}/{name}.pt"))
model.eval()
for batch in [int(b) for b in batches.split(",")]:
    x = torch.randn(batch, 1, 28, 28)
    with torch.inference_mode():
        for _ in range(10):
            model(x)
        ts, start = [], time.perf_counter()
        while len(ts) < 10 or (time.perf_counter() - start < seconds and len(ts) < 5000):
            t0 = time.perf_counter()
            model(x)
            ts.append((time.perf_counter() - t0) * 1e3)
    ts.sort()
    print(json.dumps({"tool": "pytorch", "model": name, "threads": threads, "batch": batch,
                      "p50_ms": ts[len(ts) // 2], "runs": len(ts)}), flush=True)
