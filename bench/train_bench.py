#!/usr/bin/python3
"""Training throughput and accuracy: leanai vs PyTorch 1.13, side by side in one run.

Same models, data, normalization and hyper-parameters as
../shared/anchors/torch_bench.py: batch 128, Adam 1e-3, 2 threads; the MLP for
5 epochs and the CNN for 2. Then cnn-bn (leanai only) for the accuracy target.
Each tool runs in turn, ROUNDS times (default 3); a tool's speed is the median
of its per-epoch samples/s over all rounds, and the ratio is leanai / PyTorch.

Run via bench/train_bench.sh (installs PyTorch, builds leanai). Env:
  ROUNDS (3), THREADS (2), LEANAI (build/leanai), OUT (bench/out), SKIP_CNN_BN=1
Writes $OUT/train_results.jsonl and $OUT/train_table.md; prints the table.
"""
import json, os, statistics, subprocess, sys, time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
LEANAI = os.environ.get("LEANAI", os.path.join(ROOT, "build", "leanai"))
OUT = os.environ.get("OUT", os.path.join(HERE, "out"))
ROUNDS = int(os.environ.get("ROUNDS", "3"))
THREADS = os.environ.get("THREADS", "2")
os.makedirs(OUT, exist_ok=True)
results_path = os.path.join(OUT, "train_results.jsonl")
results = open(results_path, "w")


def record(row):
    print(json.dumps(row), flush=True)
    results.write(json.dumps(row) + "\n")
    results.flush()


def run_leanai(model, epochs, overrides=None, seed=0):
    """leanai train with the anchor's settings; `overrides` replaces some of them."""
    opts = {"--data": "fashion-mnist", "--batch-size": "128", "--optimizer": "adam", "--lr": "1e-3",
            "--threads": THREADS, "--seed": str(seed), "--out": os.path.join(OUT, f"{model}-seed{seed}.leanai")}
    opts.update(overrides or {})
    cmd = [LEANAI, "train", "--model", model, "--epochs", str(epochs), "--json"]
    for k, v in opts.items():
        cmd += [k, v]
    out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
    epochs_rows, final = [], None
    for line in out.splitlines():
        j = json.loads(line)
        if j["event"] == "epoch":
            s = j["stats"]
            epochs_rows.append({"tool": "leanai", "model": model, "epoch": s["epoch"], "seconds": s["seconds"],
                                "samples_per_s": s["samples_per_s"], "train_loss": s["train_loss"]})
        elif j["event"] == "result":
            final = j["test"]["accuracy"]
    for r in epochs_rows:
        record(r)
    return epochs_rows, final


def run_torch(model, epochs, seed=0):
    env = dict(os.environ, OMP_NUM_THREADS=THREADS)
    out = subprocess.run(["/usr/bin/python3", os.path.join(HERE, "torch_train.py"), model, str(epochs), THREADS, str(seed)],
                         check=True, capture_output=True, text=True, env=env).stdout
    rows = [json.loads(l) for l in out.splitlines() if l.startswith("{")]
    for r in rows:
        record(r)
    return rows, rows[-1]["test_accuracy"]


table = []
for model, epochs in (("mlp", 5), ("cnn", 2)):
    speeds = {"leanai": [], "pytorch": []}
    accs = {"leanai": [], "pytorch": []}
    for rnd in range(ROUNDS):  # round r uses seed r in both tools: accuracy is compared over seeds
        rows, acc = run_leanai(model, epochs, seed=rnd)
        speeds["leanai"] += [r["samples_per_s"] for r in rows]
        accs["leanai"].append(acc)
        rows, acc = run_torch(model, epochs, seed=rnd)
        speeds["pytorch"] += [r["samples_per_s"] for r in rows]
        accs["pytorch"].append(acc)
    lean, torch_ = statistics.median(speeds["leanai"]), statistics.median(speeds["pytorch"])
    table.append({"model": model, "epochs": epochs, "leanai_samples_per_s": lean, "pytorch_samples_per_s": torch_,
                  "speedup": lean / torch_, "leanai_test_acc": statistics.mean(accs["leanai"]),
                  "pytorch_test_acc": statistics.mean(accs["pytorch"]),
                  "leanai_test_accs": accs["leanai"], "pytorch_test_accs": accs["pytorch"]})
    record({"summary": table[-1]})

# The MLP accuracy target, with the same optimizer, rate and batch but the
# learning rate decayed over the 5 epochs (cosine) instead of held constant.
rows, acc = run_leanai("mlp", 5, {"--schedule": "cosine"})
mlp_cosine = {"model": "mlp (cosine)", "epochs": 5,
              "leanai_samples_per_s": statistics.median(r["samples_per_s"] for r in rows), "leanai_test_acc": acc}
record({"summary": mlp_cosine})

cnn_bn = None
if os.environ.get("SKIP_CNN_BN") != "1":
    t0 = time.time()
    rows, acc = run_leanai("cnn-bn", 10, {"--schedule": "cosine", "--warmup": "200", "--weight-decay": "0.05",
                                          "--optimizer": "adamw", "--lr": "2e-3"})
    cnn_bn = {"model": "cnn-bn", "epochs": 10, "leanai_samples_per_s": statistics.median(r["samples_per_s"] for r in rows),
              "leanai_test_acc": acc, "wall_s": time.time() - t0}
    record({"summary": cnn_bn})

def accs_str(mean, values):
    return f"{mean:.4f} ({min(values):.4f}-{max(values):.4f})" if len(values) > 1 else f"{mean:.4f}"


lines = [f"| model | epochs | leanai samples/s | PyTorch samples/s | speed-up | leanai test acc, mean (range) over {ROUNDS} seeds"
         " | PyTorch test acc, mean (range) |",
         "|---|---|---|---|---|---|---|"]
for t in table:
    lines.append(f"| {t['model']} | {t['epochs']} | {t['leanai_samples_per_s']:.0f} | {t['pytorch_samples_per_s']:.0f} | "
                 f"{t['speedup']:.2f}x | {accs_str(t['leanai_test_acc'], t['leanai_test_accs'])} | "
                 f"{accs_str(t['pytorch_test_acc'], t['pytorch_test_accs'])} |")
lines.append(f"| mlp, cosine schedule | 5 | {mlp_cosine['leanai_samples_per_s']:.0f} | - | - | "
             f"{mlp_cosine['leanai_test_acc']:.4f} | - |")
if cnn_bn:
    lines.append(f"| cnn-bn | 10 | {cnn_bn['leanai_samples_per_s']:.0f} | - | - | {cnn_bn['leanai_test_acc']:.4f} | - |")
md = "\n".join(lines)
with open(os.path.join(OUT, "train_table.md"), "w") as f:
    f.write(md + "\n")
print(md)
