"""Median latency of a PyTorch model, as every torch benchmark here times it:
10 warm-up calls, then at least 10 timed calls, for up to `seconds` (at most 5000)."""
import time

import torch


def p50_ms(model, x, seconds):
    """Returns (median ms per call, timed calls)."""
    with torch.inference_mode():
        for _ in range(10):
            model(x)
        ts, start = [], time.perf_counter()
        while len(ts) < 10 or (time.perf_counter() - start < seconds and len(ts) < 5000):
            t0 = time.perf_counter()
            model(x)
            ts.append((time.perf_counter() - t0) * 1e3)
    ts.sort()
    return ts[len(ts) // 2], len(ts)
