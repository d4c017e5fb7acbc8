#!/usr/bin/python3
"""Data-efficient training on Fashion-MNIST with cnn-bn, judged at equal compute.

Arms (each for SEEDS seeds, the same training settings, no augmentation unless
the arm is the augmentation itself):
  full                  every sample, EPOCHS epochs
  random / top / stratified @ keep 0.7, 0.5, 0.3
                        a fixed subset, EPOCHS epochs (equal epochs); top and
                        stratified rank by value = 0.6 entropy + 0.4 grad_norm
                        from `leanai value` (a 2-epoch proxy run per seed, whose
                        cost is counted in those arms' sample-gradient steps)
  full @ 2, 4, 6 epochs every sample for fewer epochs: with `full` these give
                        the full-data accuracy as a function of sample-gradient
                        steps; every other arm is compared with it at its own
                        steps (linear interpolation between those runs)
  dynamic r=0.7         InfoBatch-style pruning, EPOCHS epochs, the last
                        epoch on all data
  light / value-aware   augmentation arms on the 30% stratified subset (crop+flip
                        for all vs CutMix/MixUp for value >= 0.7, crop+flip below)

Hyper-parameters were fixed before any test-set number was seen: AdamW 2e-3,
cosine, batch 128 (the cnn-bn settings of docs/benchmarks.md). Stratified's
hard-prune share was fixed a priori, not tuned: CCS drops the hardest samples
only at high pruning rates (its README's example uses 0.3 at 90% pruning), so
0 at 30% and 50% pruning and 0.1 at 70%.

Run via bench/data_bench.sh. Env: EPOCHS (8), SEEDS (3), THREADS (2), RATIOS (0.7),
LEANAI (build/leanai), OUT (bench/out). Writes $OUT/data_results.jsonl
(one line per run) and $OUT/data_table.md; prints the tables. A re-run skips
the runs already recorded; `data_bench.py --report` only prints the tables.
"""
import json, os, statistics, subprocess, sys, time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
LEANAI = os.environ.get("LEANAI", os.path.join(ROOT, "build", "leanai"))
OUT = os.environ.get("OUT", os.path.join(HERE, "out"))
EPOCHS = int(os.environ.get("EPOCHS", "8"))
SEEDS = int(os.environ.get("SEEDS", "3"))
THREADS = os.environ.get("THREADS", "2")
KEEPS = [0.7, 0.5, 0.3]
HARD_PRUNE = {0.7: 0.0, 0.5: 0.0, 0.3: 0.1}
RATIOS = [float(r) for r in os.environ.get("RATIOS", "0.7").split(",")]
CURVE = [2, 4, 6]  # shorter full-data runs (epochs)
os.makedirs(OUT, exist_ok=True)
results_path = os.path.join(OUT, "data_results.jsonl")
COMMON = ["--model", "cnn-bn", "--data", "fashion-mnist", "--optimizer", "adamw", "--lr", "2e-3", "--schedule", "cosine",
          "--batch-size", "128", "--threads", THREADS, "--json", "-q"]


def load_done():
    """Runs already recorded (a re-run resumes where it stopped)."""
    done = {}
    if os.path.exists(results_path):
        for line in open(results_path):
            r = json.loads(line)
            done[(r["arm"], r["keep"], r["seed"])] = r
    return done


done = load_done()
results = open(results_path, "a")


def record(row):
    print(json.dumps(row), flush=True)
    results.write(json.dumps(row) + "\n")
    results.flush()
    done[(row["arm"], row["keep"], row["seed"])] = row


def train(arm, keep, seed, epochs, extra, proxy_steps=0):
    if (arm, keep, seed) in done:
        return done[(arm, keep, seed)]
    cmd = [LEANAI, "train"] + COMMON + ["--epochs", str(epochs), "--seed", str(seed),
                                        "--out", os.path.join(OUT, "data-model.leanai")] + extra
    t0 = time.time()
    out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
    wall = time.time() - t0
    result = [json.loads(l) for l in out.splitlines() if '"result"' in l][-1]
    c = result["compute"]
    row = {"arm": arm, "keep": keep, "seed": seed, "epochs": epochs, "accuracy": result["test"]["accuracy"],
           "samples_seen": c["samples_seen"], "proxy_steps": proxy_steps,
           "steps_with_proxy": c["samples_seen"] + proxy_steps,
           "share_of_full": (c["samples_seen"] + proxy_steps) / (EPOCHS * 60000),
           "train_seconds": result["train_seconds"], "wall_seconds": wall, "command": " ".join(cmd[1:])}
    record(row)
    return row


def value(seed):
    path = os.path.join(OUT, f"scores-seed{seed}.csv")
    key = ("value", 0, seed)
    if key not in done or not os.path.exists(path):
        cmd = [LEANAI, "value", "--model", "cnn-bn", "--data", "fashion-mnist", "--proxy-epochs", "2", "--threads", THREADS,
               "--seed", str(seed), "--out", path, "--json", "-q"]
        t0 = time.time()
        r = json.loads(subprocess.run(cmd, check=True, capture_output=True, text=True).stdout.splitlines()[-1])
        record({"arm": "value", "keep": 0, "seed": seed, "proxy_steps": r["cost"]["proxy_samples"],
                "wall_seconds": time.time() - t0, "command": " ".join(cmd[1:])})
    return path, done[key]["proxy_steps"]


ANNEAL = f"{1.0 / EPOCHS + 1e-3:.4f}"  # the last epoch on all data
REPORT_ONLY = "--report" in sys.argv  # tables from the runs recorded so far, no training
for seed in ([] if REPORT_ONLY else range(SEEDS)):
    train("full", 1.0, seed, EPOCHS, [])
    scores, proxy = value(seed)
    for keep in KEEPS:
        train("random", keep, seed, EPOCHS, ["--select", "random", "--keep", str(keep)])
        train("top", keep, seed, EPOCHS, ["--select", "top", "--keep", str(keep), "--scores", scores], proxy)
        train("stratified", keep, seed, EPOCHS, ["--select", "stratified", "--keep", str(keep), "--scores", scores,
                                                  "--hard-prune", str(HARD_PRUNE[keep])], proxy)
    for epochs in CURVE:
        train("full", epochs / EPOCHS, seed, epochs, [])
    for ratio in RATIOS:
        train("dynamic", ratio, seed, EPOCHS, ["--prune", "dynamic", "--prune-ratio", str(ratio),
                                               "--prune-anneal", ANNEAL])
    for aug in ["light", "value-aware"]:
        train("stratified+" + aug, 0.3, seed, EPOCHS, ["--select", "stratified", "--keep", "0.3", "--scores", scores,
                                                      "--hard-prune", "0.1", "--augment", aug], proxy)


def stats(arm, keep):
    rows = [r for (a, k, s), r in done.items() if a == arm and k == keep and s < SEEDS]
    if not rows:
        return None
    acc = [100 * r["accuracy"] for r in rows]
    return {"n": len(rows), "mean": statistics.mean(acc), "sd": statistics.stdev(acc) if len(acc) > 1 else 0.0,
            "min": min(acc), "max": max(acc), "share": statistics.mean(r["share_of_full"] for r in rows),
            "share_no_proxy": statistics.mean(r["samples_seen"] / (EPOCHS * 60000) for r in rows),
            "epochs": rows[0]["epochs"], "wall": statistics.median(r["wall_seconds"] for r in rows)}


def cell(s):
    if not s:
        return "-"
    return f"{s['mean']:.2f} ± {s['sd']:.2f}" + (f" ({s['n']} seeds)" if s["n"] < SEEDS else "")


def full_at(share):
    """Full-data accuracy (mean over seeds) at a share of full training's steps, interpolated."""
    pts = sorted((stats("full", e / EPOCHS)["share"], stats("full", e / EPOCHS)["mean"]) for e in CURVE + [EPOCHS])
    if share <= pts[0][0]:
        return pts[0][1], share < pts[0][0]
    for (x0, y0), (x1, y1) in zip(pts, pts[1:]):
        if share <= x1:
            return y0 + (y1 - y0) * (share - x0) / (x1 - x0), False
    return pts[-1][1], share > pts[-1][0]


def vs_full_at(s):
    acc, outside = full_at(s["share"])
    return f"{s['mean'] - acc:+.2f}{' (beyond the curve)' if outside else ''}"


lines = []
full = stats("full", 1.0)
lines.append(f"### Equal epochs ({EPOCHS}), test accuracy % (mean ± sd over {SEEDS} seeds)\n")
lines.append("| arm | keep | accuracy | vs full | vs random | sample-gradient steps: training; with proxy | "
             "vs full data at equal steps | wall s (median) |")
lines.append("|---|---|---|---|---|---|---|---|")
lines.append(f"| full | 100% | {cell(full)} | - | - | 100% | - | {full['wall']:.0f} |")
for keep in KEEPS:
    rnd = stats("random", keep)
    for arm in ["random", "top", "stratified", "stratified+light", "stratified+value-aware"]:
        s = stats(arm, keep)
        if not s:
            continue
        lines.append(f"| {arm} | {int(keep * 100)}% | {cell(s)} | {s['mean'] - full['mean']:+.2f} | "
                     f"{s['mean'] - rnd['mean']:+.2f} | {100 * s['share_no_proxy']:.0f}%; {100 * s['share']:.0f}% | "
                     f"{vs_full_at(s)} | {s['wall']:.0f} |")
lines.append("\n### Full data for fewer epochs (the equal-steps reference)\n")
lines.append("| epochs | share of full steps | accuracy |")
lines.append("|---|---|---|")
for e in CURVE + [EPOCHS]:
    s = stats("full", e / EPOCHS)
    lines.append(f"| {e} | {100 * s['share']:.0f}% | {cell(s)} |")
lines.append(f"\n### Dynamic pruning ({EPOCHS} epochs, the last on all data)\n")
lines.append("| prune ratio | accuracy | vs full | sample-gradient steps saved | vs full data at equal steps | wall s (median) |")
lines.append("|---|---|---|---|---|---|")
for ratio in RATIOS:
    d = stats("dynamic", ratio)
    if d:
        lines.append(f"| {ratio} | {cell(d)} | {d['mean'] - full['mean']:+.2f} | {100 * (1 - d['share']):.1f}% | "
                     f"{vs_full_at(d)} | {d['wall']:.0f} |")
table = "\n".join(lines) + "\n"
with open(os.path.join(OUT, "data_table.md"), "w") as f:
    f.write(table)
print(table)
