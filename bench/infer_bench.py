#!/usr/bin/python3
"""Inference benchmark: leanai vs ONNX Runtime 1.30 vs PyTorch 1.13, side by
side in one run, on the same ONNX files (export_onnx.py): the reference MLP
and CNN and a ResNet-style net, fp32, batch 1 and 256, 1 and 2 threads.

For each cell: the median over ROUNDS rounds of each tool's median latency
(tools take turns within a round, so drift hits all alike), leanai's speed as
a ratio of ONNX Runtime's (the median of the per-round ratios), and the fraction of this machine's fp32 peak as
`leanai hw` measures it. Also: output parity against PyTorch (max abs diff),
test accuracy through leanai's import, and leanai's before/after-optimization
table (latency, throughput, memory).

Env: ROUNDS (3), SECONDS per cell and tool (2), EPOCHS of PyTorch training before
export (1), OUT (bench/out/infer), MODELS (mlp,cnn,resnet).
Writes OUT/results.json and OUT/results.md.
"""
import json, os, statistics, subprocess, sys

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
OUT = os.environ.get("OUT", os.path.join(HERE, "out", "infer"))
ROUNDS = int(os.environ.get("ROUNDS", "3"))
SECONDS = os.environ.get("SECONDS", "2")
EPOCHS = os.environ.get("EPOCHS", "1")
MODELS = os.environ.get("MODELS", "mlp,cnn,resnet").split(",")
LEANAI = os.path.join(ROOT, "build", "leanai")
NODE_PATH = os.path.join(HERE, "out", "ort", "node_modules")
# OpenMP keeps its default wait policy: "passive" puts threads to sleep between
# layers, and waking them costs PyTorch and leanai ~50 us per layer at batch 1.
ENV = {k: v for k, v in os.environ.items() if k != "OMP_WAIT_POLICY"}
ENV.update(OUT=OUT, NODE_PATH=NODE_PATH)


def run(cmd, env=ENV):
    r = subprocess.run(cmd, capture_output=True, text=True, env=env)
    if r.returncode != 0:
        sys.exit(f"infer_bench: {' '.join(cmd)} failed:\n{r.stderr[-2000:]}")
    return [json.loads(l) for l in r.stdout.splitlines() if l.startswith("{") or l.startswith("[")]


def log(*a):
    print(*a, file=sys.stderr, flush=True)


os.makedirs(OUT, exist_ok=True)
log(f"exporting {MODELS} from PyTorch ({EPOCHS} epoch(s) of training first)")
exported = {j["model"]: j for j in run(["/usr/bin/python3", os.path.join(HERE, "export_onnx.py"), EPOCHS])}

results = {"rounds": ROUNDS, "seconds": float(SECONDS), "models": {}}
hw = run([LEANAI, "hw", "--full", "--json"])[0]
results["hardware"] = hw
fp32 = hw["measured"]["gemm"]["fp32"]
peak = {1: fp32["one_thread"]["median"], fp32["all_threads"]["threads"]: fp32["all_threads"]["median"]}
log(f"measured fp32 peak: {peak[1]:.0f} GFLOP/s on 1 thread, {peak[2]:.0f} on all")

for m in MODELS:
    onnx_file, model_file = f"{OUT}/{m}.onnx", f"{OUT}/{m}.leanai"
    run([LEANAI, "import", onnx_file, "-o", model_file])
    info = run([LEANAI, "info", model_file, "--json"])[0]
    r = results["models"][m] = {"flops_per_sample": info["flops_per_sample"], "torch_test_acc": exported[m]["torch_test_acc"]}
    # Parity with PyTorch on 16 test images, through the compiled runtime.
    rows = run([LEANAI, "predict", model_file, "-i", f"{OUT}/parity_in.f32", "--logits", "--json"])[0]
    import array
    ref = array.array("f")
    with open(f"{OUT}/{m}_parity_out.f32", "rb") as f:
        ref.frombytes(f.read())
    got = [v for row in rows for v in row["prediction"]]
    r["leanai_parity_max_abs_diff"] = max(abs(a - b) for a, b in zip(got, ref))
    ort_parity = run(["node", os.path.join(HERE, "ort_infer.js"), onnx_file, "1", "1", "0.01",
                      f"{OUT}/parity_in.f32", f"{OUT}/{m}_parity_out.f32"])
    r["ort_parity_max_abs_diff"] = ort_parity[0]["parity_max_abs_diff"]
    # Test accuracy through the import (10k images).
    preds = run([LEANAI, "predict", model_file, "-i", f"{OUT}/test_x.f32", "--logits", "--json"])[0]
    with open(f"{OUT}/test_y.u8", "rb") as f:
        labels = f.read()
    r["leanai_test_acc"] = sum(max(range(len(p["prediction"])), key=p["prediction"].__getitem__) == labels[i]
                               for i, p in enumerate(preds)) / len(labels)
    log(f"{m}: parity leanai {r['leanai_parity_max_abs_diff']:.2e}, ORT {r['ort_parity_max_abs_diff']:.2e}; "
        f"test acc leanai {r['leanai_test_acc']:.4f}, PyTorch {r['torch_test_acc']:.4f}")

# leanai times its kernel and batch-split choices on first use and caches them
# (~/.cache/leanai); make those choices before the timed rounds, as a deployment would.
for m in MODELS:
    for threads in (1, 2):
        run([LEANAI, "bench", f"{OUT}/{m}.leanai", "--batch", "1,256", "--threads", str(threads), "--seconds", "0.2",
             "--json"])

cells = {}  # (model, threads, batch, tool) -> [p50 per round]
compare = {}  # (model, batch, runner) -> [row per round]
for rnd in range(ROUNDS):
    for m in MODELS:
        for threads in (1, 2):
            order = [("leanai", [LEANAI, "bench", f"{OUT}/{m}.leanai", "--batch", "1,256", "--threads", str(threads),
                                 "--seconds", SECONDS, "--json"]),
                     ("onnxruntime", ["node", os.path.join(HERE, "ort_infer.js"), f"{OUT}/{m}.onnx", str(threads),
                                      "1,256", SECONDS]),
                     ("pytorch", ["/usr/bin/python3", os.path.join(HERE, "torch_infer.py"), m, str(threads), "1,256",
                                  SECONDS])]
            order = order[rnd % 3:] + order[:rnd % 3]
            for tool, cmd in order:
                for j in run(cmd):
                    cells.setdefault((m, threads, j["batch"], tool), []).append(j["p50_ms"])
        for j in run([LEANAI, "bench", f"{OUT}/{m}.leanai", "--batch", "1,256", "--threads", "2", "--seconds", SECONDS,
                      "--compare", "--json"]):
            compare.setdefault((m, j["batch"], j["runner"]), []).append(j)
    log(f"round {rnd + 1}/{ROUNDS} done")

md = ["| model | batch | threads | leanai ms | ONNX Runtime ms | PyTorch ms | leanai speed / ORT | leanai speed / PyTorch | leanai % of fp32 peak |",
      "|---|---|---|---|---|---|---|---|---|"]
table = []
for m in MODELS:
    flops = results["models"][m]["flops_per_sample"]
    for batch in (1, 256):
        for threads in (1, 2):
            med = {t: statistics.median(cells[(m, threads, batch, t)]) for t in ("leanai", "onnxruntime", "pytorch")}
            gflops = flops * batch / (med["leanai"] / 1e3) / 1e9
            # Speed ratios per round (the tools ran back to back, so drift cancels), then the median.
            per_round = lambda t: statistics.median(
                a / b for a, b in zip(cells[(m, threads, batch, t)], cells[(m, threads, batch, "leanai")]))
            row = {"model": m, "batch": batch, "threads": threads, **{f"{t}_ms": v for t, v in med.items()},
                   "speed_vs_ort": per_round("onnxruntime"), "speed_vs_torch": per_round("pytorch"),
                   "fraction_of_peak": gflops / peak[threads],
                   "rounds": {t: cells[(m, threads, batch, t)] for t in ("leanai", "onnxruntime", "pytorch")}}
            table.append(row)
            md.append(f"| {m} | {batch} | {threads} | {med['leanai']:.4f} | {med['onnxruntime']:.4f} | {med['pytorch']:.4f} "
                      f"| {row['speed_vs_ort']:.2f}x | {row['speed_vs_torch']:.1f}x | {100 * row['fraction_of_peak']:.0f}% |")
results["table"] = table

md += ["", "| model | batch | runner | p50 ms | samples/s | memory MB |", "|---|---|---|---|---|---|"]
before_after = []
for m in MODELS:
    for batch in (1, 256):
        rows = {}
        for runner in ("unoptimized", "leanai"):
            rs = compare[(m, batch, runner)]
            rows[runner] = {k: statistics.median(r[k] for r in rs) for k in ("p50_ms", "samples_per_s", "memory_mb")}
            md.append(f"| {m} | {batch} | {runner} | {rows[runner]['p50_ms']:.4f} | {rows[runner]['samples_per_s']:.0f} "
                      f"| {rows[runner]['memory_mb']:.2f} |")
        b, a = rows["unoptimized"], rows["leanai"]
        change = {"latency": a["p50_ms"] / b["p50_ms"] - 1, "throughput": a["samples_per_s"] / b["samples_per_s"] - 1,
                  "memory": a["memory_mb"] / b["memory_mb"] - 1}
        md.append(f"| {m} | {batch} | change | {100 * change['latency']:+.0f}% | {100 * change['throughput']:+.0f}% "
                  f"| {100 * change['memory']:+.0f}% |")
        before_after.append({"model": m, "batch": batch, "before": b, "after": a, "change": change})
results["before_after"] = before_after

with open(f"{OUT}/results.json", "w") as f:
    json.dump(results, f, indent=1)
with open(f"{OUT}/results.md", "w") as f:
    f.write("\n".join(md) + "\n")
print("\n".join(md))
