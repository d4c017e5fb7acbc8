#!/usr/bin/python3
"""Dynamic sparsity: dense vs 50% vs 70% gated neurons, and MoE vs dense at
equal active FLOPs, judged by FLOPs, measured latency and test accuracy.

Tasks (each trained for SEEDS seeds with fixed settings chosen before any test
number was seen):
  fmnist-mlp     Fashion-MNIST, `mlp` (784-512-256-10), Adam 1e-3, 10 epochs
  fmnist-cnn-bn  Fashion-MNIST, `cnn-bn`, AdamW 2e-3 cosine, 8 epochs
                 (the settings of the data benchmark)
  letter-mlp     UCI Letter Recognition (20,000 rows, 16 features, 26 classes,
                 from Debian's r-cran-mlbench), `mlp`, Adam 1e-3, 40 epochs
Arms per task: dense; quantile gates at sparsity 0.5 and 0.7 (`--sparsity S`,
ramped over the first half of training); L0 gates and input-conditional
block gates at 0.7 (`--gates l0|input`); on cnn-bn also conv2-0.5 and
conv2-0.75, quantile gates on conv2 alone (`--dense-layers conv1,fc1`,
chosen on a validation split after the first run), and conv12-0.5: conv1 and
conv2 at 0.5 with fc1 dense and the ramp over the first quarter (chosen on a
validation split after the second run). MoE arms: the `mlp-moe` preset (fc256,
16 experts 256-64-256 with 2 routed + 1 shared, fc) against `moe-dense`, the
same net with one dense 256-200-256 block in place of the MoE: equal
multiply-adds per sample (router 16x256 + 3 expert MLPs = 2x256x200).

FLOPs are the compiled model's per sample (gated-off neurons compacted away;
for input gates and MoE, only the blocks/experts each input runs). Latency is
`leanai bench --threads 2` at batch 1 and 256, p50 of each round; in each of
ROUNDS rounds one `leanai bench` times all arms of a task side by side (in
turns of about 5 ms, 1 s per arm and batch size), choosing kernels and splits
afresh, and speed-ups are per-round ratios to the dense model, medians over
rounds. Only seed 0's models are timed.

Run via bench/sparsity_bench.sh. Env: SEEDS (3), ROUNDS (5), THREADS (2),
TASKS (all), LEANAI, OUT (bench/out/sparsity). Writes $OUT/results.jsonl and
$OUT/table.md; a re-run skips what is recorded; `--report` only prints.
"""
import json, os, statistics, subprocess, sys, tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
LEANAI = os.environ.get("LEANAI", os.path.join(ROOT, "build", "leanai"))
OUT = os.environ.get("OUT", os.path.join(HERE, "out", "sparsity"))
SEEDS = int(os.environ.get("SEEDS", "3"))
ROUNDS = int(os.environ.get("ROUNDS", "5"))
THREADS = os.environ.get("THREADS", "2")
os.makedirs(OUT, exist_ok=True)
LETTER = os.path.join(OUT, "letter.csv")

TASKS = {
    "fmnist-mlp": ["--model", "mlp", "--data", "fashion-mnist", "--epochs", "10"],
    "fmnist-cnn-bn": ["--model", "cnn-bn", "--data", "fashion-mnist", "--optimizer", "adamw", "--lr", "2e-3",
                      "--schedule", "cosine", "--epochs", "8"],
    "letter-mlp": ["--model", "mlp", "--data", LETTER, "--label", "lettr", "--epochs", "40"],
}
ARMS = {
    "dense": [],
    "quantile-0.5": ["--sparsity", "0.5"],
    "quantile-0.7": ["--sparsity", "0.7"],
    "l0-0.7": ["--sparsity", "0.7", "--gates", "l0"],
    "input-0.7": ["--sparsity", "0.7", "--gates", "input"],
    # cnn-bn, gating only conv2, which holds most of its FLOPs: 32 or 16 of its
    # 64 channels kept (multiples of 16, oneDNN's channel block); conv1 and fc1
    # stay dense (chosen on a validation split: see docs/benchmarks.md).
    "conv2-0.5": ["--sparsity", "0.5", "--dense-layers", "conv1,fc1"],
    "conv2-0.75": ["--sparsity", "0.75", "--dense-layers", "conv1,fc1"],
    # cnn-bn, conv1 and conv2 at half width (16 and 32 channels): conv2's cost
    # is its input channels times its outputs, so this cuts its FLOPs as much
    # as conv2-0.75 does while each layer keeps half its channels.
    "conv12-0.5": ["--sparsity", "0.5", "--dense-layers", "fc1", "--sparsity-ramp", "0.25"],
    "mlp-moe": ["--model", "mlp-moe"],
    "moe-dense": ["--model", os.path.join(OUT, "moe-dense.json")],
}
# Input gates replace only linear layers, so on cnn-bn (93% of its FLOPs in
# convolutions) they would leave the cost almost unchanged: not run there.
# The MoE comparison is on the flat-input tasks.
MLP_ARMS = ["dense", "quantile-0.5", "quantile-0.7", "l0-0.7", "input-0.7", "mlp-moe", "moe-dense"]
TASK_ARMS = {
    "fmnist-mlp": MLP_ARMS,
    "fmnist-cnn-bn": ["dense", "quantile-0.5", "quantile-0.7", "l0-0.7", "conv2-0.5", "conv2-0.75", "conv12-0.5"],
    "letter-mlp": MLP_ARMS,
}
MOE_DENSE_SPEC = {"layers": [{"type": "flatten"}, {"type": "linear", "out": 256}, {"type": "relu"},
                             {"type": "linear", "out": 200}, {"type": "relu"}, {"type": "linear", "out": 256},
                             {"type": "relu"}, {"type": "linear"}]}
# What each arm is compared with (speed-up, FLOP reduction, accuracy change).
REFERENCE = {"mlp-moe": "moe-dense", "moe-dense": "moe-dense"}
results_path = os.path.join(OUT, "results.jsonl")


def load_done():
    done = {}
    if os.path.exists(results_path):
        for line in open(results_path):
            r = json.loads(line)
            done[(r["kind"], r["task"], r["arm"], r.get("seed", r.get("round")))] = r
    return done


def record(row, done):
    print(json.dumps(row), flush=True)
    with open(results_path, "a") as f:
        f.write(json.dumps(row) + "\n")
    done[(row["kind"], row["task"], row["arm"], row.get("seed", row.get("round")))] = row


def model_path(task, arm, seed):
    return os.path.join(OUT, f"{task}-{arm}-seed{seed}.leanai")


def run_json(cmd, env=None):
    out = subprocess.run(cmd, check=True, capture_output=True, text=True, env=env).stdout
    return [json.loads(l) for l in out.splitlines() if l.startswith("{")]


def train(task, arm, seed, done):
    if ("train", task, arm, seed) in done:
        return
    # The arm's --model (MoE arms) replaces the task's.
    base = TASKS[task]
    extra = ARMS[arm]
    if "--model" in extra:
        i = base.index("--model")
        base = base[:i] + base[i + 2:]
    path = model_path(task, arm, seed)
    lines = run_json([LEANAI, "train"] + base + extra + ["--seed", str(seed), "--threads", THREADS, "--json", "-q",
                                                          "--out", path])
    result = [l for l in lines if l.get("event") == "result"][-1]
    info = run_json([LEANAI, "info", path, "--json"])[-1]
    record({"kind": "train", "task": task, "arm": arm, "seed": seed, "test_accuracy": result["test"]["accuracy"],
            "flops_per_sample": info["flops_per_sample"], "active_flops_per_sample": info.get("active_flops_per_sample", info["flops_per_sample"]),
            "parameters": info["parameters"], "train_seconds": result["train_seconds"],
            "sparsity": result.get("sparsity")}, done)


def bench_round(task, rnd, done):
    if ("latency", task, "all", rnd) in done:
        return
    row = {"kind": "latency", "task": task, "arm": "all", "round": rnd, "side_by_side": True, "p50_ms": {}}
    arms = TASK_ARMS[task]
    # Each round chooses kernels and batch splits afresh: a choice cached once
    # for the whole run would carry one noisy timing into every round. All the
    # task's arms are timed side by side in one process, in turns of about 5 ms,
    # so each ratio compares nets run under the same load; --runs lifts the cap
    # on runs so the time budget decides.
    with tempfile.TemporaryDirectory() as cache:
        env = dict(os.environ, LEANAI_CACHE_DIR=cache)
        lines = run_json([LEANAI, "bench"] + [model_path(task, arm, 0) for arm in arms] +
                         ["--batch", "1,256", "--threads", THREADS, "--seconds", "1", "--runs", "1000000", "--json"], env)
    for arm in arms:
        path = model_path(task, arm, 0)
        row["p50_ms"][arm] = {str(l["batch"]): l["p50_ms"] for l in lines
                              if l.get("runner") == "leanai" and l.get("model") == path}
    record(row, done)


def mean_sd(xs):
    return statistics.mean(xs), (statistics.stdev(xs) if len(xs) > 1 else 0.0)


def report(done):
    lines = []
    for task, arms in TASK_ARMS.items():
        trains = {a: [r for (k, t, ar, _), r in done.items() if k == "train" and t == task and ar == a] for a in arms}
        rounds = [r for (k, t, _, _), r in done.items() if k == "latency" and t == task]
        if not trains["dense"]:
            continue
        def mean_acc(a):
            return statistics.mean(r["test_accuracy"] for r in trains[a]) if trains.get(a) else float("nan")

        lines += [f"\n**{task}** ({len(trains['dense'])} seeds, {len(rounds)} latency rounds; "
                  "ratios against `dense`, MoE against `moe-dense`)\n",
                  "| arm | active MFLOPs/sample | FLOP reduction | p50 b1 ms | speed-up b1 | p50 b256 ms | speed-up b256 |"
                  " test accuracy | change |",
                  "|---|---|---|---|---|---|---|---|---|"]
        for arm in arms:
            rs = trains[arm]
            if not rs:
                continue
            ref = REFERENCE.get(arm, "dense")
            acc, sd = mean_sd([r["test_accuracy"] for r in rs])
            flops = rs[0]["active_flops_per_sample"]
            ref_flops = trains[ref][0]["active_flops_per_sample"] if trains.get(ref) else float("nan")
            cells = []
            for b in ("1", "256"):
                timed = [r for r in rounds if arm in r["p50_ms"] and ref in r["p50_ms"]]
                ms = [r["p50_ms"][arm][b] for r in timed]
                ratio = [r["p50_ms"][ref][b] / r["p50_ms"][arm][b] for r in timed]
                cells += [f"{statistics.median(ms):.4f}" if ms else "-", f"{statistics.median(ratio):.2f}x" if ratio else "-"]
            lines.append(f"| {arm} | {flops / 1e6:.3f} | {ref_flops / flops:.2f}x | {cells[0]} | {cells[1]} | "
                         f"{cells[2]} | {cells[3]} | {100 * acc:.2f}% ± {100 * sd:.2f} | "
                         f"{100 * (acc - mean_acc(ref)):+.2f} pt |")
    text = "\n".join(lines) + "\n"
    print(text)
    with open(os.path.join(OUT, "table.md"), "w") as f:
        f.write(text)


def main():
    done = load_done()
    if "--report" not in sys.argv:
        with open(os.path.join(OUT, "moe-dense.json"), "w") as f:
            json.dump(MOE_DENSE_SPEC, f)
        tasks = os.environ.get("TASKS", ",".join(TASKS)).split(",")
        phases = os.environ.get("PHASES", "train,latency").split(",")
        if "train" in phases:
            for seed in range(SEEDS):
                for task in tasks:
                    for arm in TASK_ARMS[task]:
                        train(task, arm, seed, done)
        if "latency" in phases:
            for rnd in range(ROUNDS):
                for task in tasks:
                    bench_round(task, rnd, done)
    report(done)


if __name__ == "__main__":
    main()
