#!/usr/bin/python3
"""Mixed-precision quantization benchmark (issue 4): on Fashion-MNIST, for the
reference MLP (784-512-256-10), the reference CNN (conv32-conv64-fc128-fc10),
cnn-bn and a ResNet-style net (quant_models.py), side by side in one run:

  pytorch      fp32, int8-dynamic (Linear), int8-static (FX, onednn engine)
  onnxruntime  fp32; int8-dynamic (hand-made like ORT's quantize_dynamic, onnx_dynq.py);
               int8-static (torch's own QDQ export of its static model; ORT's own
               quantizer is Python-only, not in onnxruntime-node);
               int8 / mixed: `leanai export-onnx` of leanai's quantized models
  leanai       fp32, int8 (`leanai quantize --uniform int8`), mixed
               (`leanai quantize --target max-drop=0.3%`)

Every tool runs the same PyTorch-trained weights (leanai imports the fp32 ONNX
file; leanai has no ResNet-style preset), so accuracy differences come from
quantization alone. For each: bytes of weights, test accuracy (SAMPLES test
images), median latency at batch 1 and 256 with THREADS threads (the median of
ROUNDS rounds of each tool's median; tools take turns within a round, the
order rotating, so drift hits all alike). Before `leanai quantize` exists the
leanai int8/mixed rows say "leanai quantize: not available" and the rest runs.

Run via bench/quant_bench.sh. Env: MODELS (mlp,cnn,cnn-bn,resnet), EPOCHS of
PyTorch training (2), LEANAI_WEIGHTS (import; "train" makes leanai train its
own presets instead, for a quantize that wants a model trained by leanai),
SAMPLES (10000), CALIB images for static int8 (2048),
ROUNDS (3), SECONDS per cell (2), THREADS (2), LEANAI (build/leanai),
LEANAI_CALIB (the --calib data for leanai quantize: fashion-mnist), TARGET
(max-drop=0.3%), OUT (bench/out/quant). Writes OUT/quant_results.jsonl (one
JSON line per model, tool and variant, also printed) and OUT/quant_table.md.
  quant_bench.py --report   only prints the table of the recorded results
  quant_bench.py --smoke    checks the harness end to end in about a minute:
                            untrained weights, 500 images, 1 round of 0.05 s
"""
import json, os, statistics, subprocess, sys

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
SMOKE = "--smoke" in sys.argv
REPORT_ONLY = "--report" in sys.argv
OUT = os.environ.get("OUT", os.path.join(HERE, "out", "quant-smoke" if SMOKE else "quant"))
MODELS = os.environ.get("MODELS", "mlp,cnn,cnn-bn,resnet").split(",")
EPOCHS = os.environ.get("EPOCHS", "0" if SMOKE else "2")
SAMPLES = os.environ.get("SAMPLES", "500" if SMOKE else "10000")
CALIB = os.environ.get("CALIB", "256" if SMOKE else "2048")
ROUNDS = int(os.environ.get("ROUNDS", "1" if SMOKE else "3"))
SECONDS = os.environ.get("SECONDS", "0.05" if SMOKE else "2")
THREADS = os.environ.get("THREADS", "2")
LEANAI = os.environ.get("LEANAI", os.path.join(ROOT, "build", "leanai"))
LEANAI_CALIB = os.environ.get("LEANAI_CALIB", "fashion-mnist")
TARGET = os.environ.get("TARGET", "max-drop=0.3%")
# import: leanai runs PyTorch's trained weights (the same in every tool); train:
# leanai trains its own mlp / cnn / cnn-bn presets (resnet is always imported).
LEANAI_WEIGHTS = os.environ.get("LEANAI_WEIGHTS", "import")
BATCHES = "1,256"
RESULTS = os.path.join(OUT, "quant_results.jsonl")
# OpenMP keeps its default wait policy (see infer_bench.py).
ENV = {k: v for k, v in os.environ.items() if k != "OMP_WAIT_POLICY"}
ENV.update(OUT=OUT, NODE_PATH=os.path.join(HERE, "out", "ort", "node_modules"), EPOCHS=EPOCHS, SAMPLES=SAMPLES,
           CALIB=CALIB, THREADS=THREADS)
PY = ["/usr/bin/python3"]


def log(*a):
    print(*a, file=sys.stderr, flush=True)


def run(cmd, must=True):
    """(ok, JSON lines of stdout, last stderr line); exits on failure when `must`."""
    r = subprocess.run(cmd, capture_output=True, text=True, env=ENV)
    lines = [json.loads(l) for l in r.stdout.splitlines() if l.startswith("{") or l.startswith("[")]
    err = (r.stderr.strip().splitlines() or [""])[-1]
    if r.returncode != 0 and must:
        sys.exit(f"quant_bench: {' '.join(cmd)} failed:\n{r.stderr[-2000:]}")
    return r.returncode == 0, lines, err


def onnx_weight_bytes(path):
    """Initializers plus Constant nodes' tensors (torch's QDQ export keeps its int8 weights there)."""
    import onnx
    from onnx import numpy_helper
    g = onnx.load(path).graph
    consts = [a.t for n in g.node if n.op_type == "Constant" for a in n.attribute if a.name == "value"]
    return sum(numpy_helper.to_array(t).nbytes for t in list(g.initializer) + consts)


def leanai_accuracy(model):
    _, out, _ = run([LEANAI, "predict", model, "-i", f"{OUT}/test_x.f32", "--logits", "--json"])
    with open(f"{OUT}/test_y.u8", "rb") as f:
        labels = f.read()
    preds = out[0]
    return sum(max(range(len(p["prediction"])), key=p["prediction"].__getitem__) == labels[i]
               for i, p in enumerate(preds)) / len(labels)


def ort_row(model, variant, path, note=""):
    ok, out, err = run(["node", os.path.join(HERE, "ort_eval.js"), path, f"{OUT}/test_x.f32", f"{OUT}/test_y.u8"], False)
    if not ok:
        return {"model": model, "tool": "onnxruntime", "variant": variant, "file": path, "error": f"onnxruntime: {err}"}
    return {"model": model, "tool": "onnxruntime", "variant": variant, "file": path, "accuracy": out[0]["accuracy"],
            "size_bytes": onnx_weight_bytes(path), "note": note}


def leanai_row(model, variant, path, note=""):
    info = run([LEANAI, "info", path, "--json"])[1][0]
    return {"model": model, "tool": "leanai", "variant": variant, "file": path, "accuracy": leanai_accuracy(path),
            "size_bytes": info["param_bytes"], "note": note}


def prepare(model, quantize_available):
    """Trains and quantizes `model` in every tool; returns its rows (no latency yet)."""
    rows = []
    qdq = None
    for j in run(PY + [os.path.join(HERE, "torch_quant.py"), "prepare", model])[1]:
        if j.get("event") == "torch_qdq_export":
            qdq = j.get("path")
            if not qdq:
                log(f"{model}: torch's QDQ export failed ({j['error'][:120]}); no ORT int8-static row")
        elif "variant" in j:
            rows.append({k: v for k, v in j.items() if k != "tool"} | {"tool": "pytorch", "file": model})
    onnx_fp32 = f"{OUT}/{model}.onnx"
    rows.append(ort_row(model, "fp32", onnx_fp32))
    run(PY + [os.path.join(HERE, "onnx_dynq.py"), onnx_fp32, f"{OUT}/{model}.ort_dynq.onnx"])
    rows.append(ort_row(model, "int8-dynamic", f"{OUT}/{model}.ort_dynq.onnx", "Gemm/MatMul layers; convs stay f32"))
    if qdq:
        rows.append(ort_row(model, "int8-static", qdq, "torch's QDQ export (linear+relu unfused)"))

    base = f"{OUT}/{model}.leanai"
    if LEANAI_WEIGHTS == "train" and model != "resnet":  # leanai's own preset, trained by leanai
        run([LEANAI, "train", "--model", model, "--epochs", str(max(int(EPOCHS), 1)), "--threads", THREADS,
             "--out", base, "--json", "-q"])
        rows.append(leanai_row(model, "fp32", base, f"trained by leanai ({max(int(EPOCHS), 1)} epochs)"))
    else:
        run([LEANAI, "import", onnx_fp32, "-o", base, "--task", "classification"])
        rows.append(leanai_row(model, "fp32", base, "imported from the PyTorch ONNX file"))
    # The exporter round trip: ORT on leanai's own export of the fp32 model must match ORT on torch's.
    run([LEANAI, "export-onnx", base, "-o", f"{OUT}/{model}.leanai.onnx"])
    rows[-1]["ort_accuracy_of_export"] = ort_row(model, "fp32", f"{OUT}/{model}.leanai.onnx").get("accuracy")
    for variant, args in (("int8", ["--uniform", "int8"]), ("mixed", ["--target", TARGET])):
        if not quantize_available:
            rows.append({"model": model, "tool": "leanai", "variant": variant, "error": "leanai quantize: not available"})
            continue
        path = f"{OUT}/{model}.{variant}.leanai"
        ok, out, err = run([LEANAI, "quantize", base, "--calib", LEANAI_CALIB, *args, "--out", path], False)
        if not ok:
            rows.append({"model": model, "tool": "leanai", "variant": variant, "error": f"leanai quantize: {err}"})
            continue
        rows.append(leanai_row(model, variant, path, " ".join(args)))
        ok, _, err = run([LEANAI, "export-onnx", path, "-o", f"{OUT}/{model}.{variant}.onnx"], False)
        rows.append(ort_row(model, variant, f"{OUT}/{model}.{variant}.onnx", "leanai export-onnx")
                    if ok else {"model": model, "tool": "onnxruntime", "variant": variant, "error": f"leanai export-onnx: {err}"})
    return rows


def timing_command(row):
    if row["tool"] == "pytorch":
        return PY + [os.path.join(HERE, "torch_quant.py"), "time", row["model"], row["variant"], THREADS, BATCHES, SECONDS]
    if row["tool"] == "onnxruntime":
        return ["node", os.path.join(HERE, "ort_infer.js"), row["file"], THREADS, BATCHES, SECONDS]
    return [LEANAI, "bench", row["file"], "--batch", BATCHES, "--threads", THREADS, "--seconds", SECONDS, "--json"]


def measure(rows):
    """Latency rounds; fills b1_ms / b256_ms (medians) and the per-round values."""
    timed = [r for r in rows if "error" not in r]
    # leanai times its kernel choices on first use and caches them: make them before the timed rounds.
    for r in timed:
        if r["tool"] == "leanai":
            run([LEANAI, "bench", r["file"], "--batch", BATCHES, "--threads", THREADS, "--seconds", "0.05", "--json"])
    for rnd in range(ROUNDS):
        for model in MODELS:
            cells = [r for r in timed if r["model"] == model]
            k = rnd % max(len(cells), 1)
            for r in cells[k:] + cells[:k]:
                ok, out, err = run(timing_command(r), False)
                if not ok:
                    r["error"] = f"timing failed: {err}"
                    continue
                for j in out:
                    if "p50_ms" in j and j.get("runner", "leanai") == "leanai":
                        r.setdefault("rounds", {}).setdefault(str(j["batch"]), []).append(j["p50_ms"])
        log(f"round {rnd + 1}/{ROUNDS} done")
    for r in timed:
        for b in BATCHES.split(","):
            if r.get("rounds", {}).get(b):
                r[f"b{b}_ms"] = statistics.median(r["rounds"][b])


def speedup(rows, model, slow, fast):
    """Median over rounds of slow / fast batch-256 latency, each (tool, variant)
    or a list of them (the fastest of the list in each round)."""
    def per_round(keys):
        found = [r for r in rows if r["model"] == model and (r["tool"], r["variant"]) in keys and r.get("rounds", {}).get("256")]
        return [min(r["rounds"]["256"][i] for r in found) for i in range(min(len(r["rounds"]["256"]) for r in found))] if found else []
    a = per_round(slow if isinstance(slow, list) else [slow])
    b = per_round(fast if isinstance(fast, list) else [fast])
    return statistics.median(x / y for x, y in zip(a, b)) if a and b else None


ORT_INT8 = [("onnxruntime", v) for v in ("int8-dynamic", "int8-static", "int8", "mixed")]


def targets(rows):
    """The issue's targets for leanai's mixed plan, per model: accuracy change,
    size, batch-256 speed against each tool's fp32, and leanai's int8 against
    ONNX Runtime's fastest int8 (per-round ratios, medians)."""
    def fmt(v, spec, suffix=""):
        return "-" if v is None else format(v, spec) + suffix
    out = ["", "Targets (mixed plan: at most 0.3 pp lost, at most 30% of fp32 size, at least 3x fp32 speed at batch 256; "
           "leanai int8 at least 2x ONNX Runtime's fastest int8), batch-256 speed-ups as medians of per-round ratios:", "",
           "| model | mixed vs fp32 (pp) | mixed size | mixed vs leanai fp32 | vs PyTorch fp32 | vs ORT fp32 | "
           "leanai int8 vs ORT int8 | leanai mixed vs ORT int8 |",
           "|---|---|---|---|---|---|---|---|"]
    for model in dict.fromkeys(r["model"] for r in rows):
        get = lambda tool, variant: next((r for r in rows if r["model"] == model and r["tool"] == tool and r["variant"] == variant), {})
        fp32, mixed = get("leanai", "fp32"), get("leanai", "mixed")
        if not mixed.get("accuracy") or not fp32.get("accuracy"):
            continue
        dacc = 100 * (mixed["accuracy"] - fp32["accuracy"])
        size = mixed["size_bytes"] / fp32["size_bytes"]
        out.append(f"| {model} | {dacc:+.2f} | {100 * size:.1f}% | "
                   f"{fmt(speedup(rows, model, ('leanai', 'fp32'), ('leanai', 'mixed')), '.2f', 'x')} | "
                   f"{fmt(speedup(rows, model, ('pytorch', 'fp32'), ('leanai', 'mixed')), '.2f', 'x')} | "
                   f"{fmt(speedup(rows, model, ('onnxruntime', 'fp32'), ('leanai', 'mixed')), '.2f', 'x')} | "
                   f"{fmt(speedup(rows, model, ORT_INT8, ('leanai', 'int8')), '.2f', 'x')} | "
                   f"{fmt(speedup(rows, model, ORT_INT8, ('leanai', 'mixed')), '.2f', 'x')} |")
    return out


def report(rows, settings):
    def fmt(v, spec):
        return "-" if v is None else format(v, spec)

    lines = [f"Quantization benchmark: {settings['threads']} threads, latency = median of {settings['rounds']} round(s) "
             f"of {settings['seconds']} s (ms); accuracy on {settings['samples']} test images after {settings['epochs']} "
             "epoch(s) of PyTorch training; weights = bytes of stored weights and buffers.", "",
             "| model | tool | variant | weights KB | size vs fp32 | accuracy % | vs fp32 (pp) | batch 1 ms | "
             "batch 256 ms | b256 speed vs fp32 | notes |",
             "|---|---|---|---|---|---|---|---|---|---|---|"]
    for model in dict.fromkeys(r["model"] for r in rows):
        for r in [r for r in rows if r["model"] == model]:
            ref = next((x for x in rows if x["model"] == model and x["tool"] == r["tool"] and x["variant"] == "fp32"), {})
            size, acc = r.get("size_bytes"), r.get("accuracy")
            ratio = size / ref["size_bytes"] if size and ref.get("size_bytes") else None
            dacc = 100 * (acc - ref["accuracy"]) if acc is not None and ref.get("accuracy") is not None else None
            speed = ref.get("b256_ms") / r["b256_ms"] if r.get("b256_ms") and ref.get("b256_ms") else None
            note = r.get("error") or r.get("note", "")
            if r.get("ort_accuracy_of_export") is not None:
                note += f"; ORT on its export-onnx: {100 * r['ort_accuracy_of_export']:.2f}%"
            lines.append(f"| {model} | {r['tool']} | {r['variant']} | {fmt(size and size / 1024, '.1f')} | "
                         f"{fmt(ratio, '.2f')} | {fmt(acc and 100 * acc, '.2f')} | {fmt(dacc, '+.2f')} | "
                         f"{fmt(r.get('b1_ms'), '.4f')} | {fmt(r.get('b256_ms'), '.3f')} | {fmt(speed, '.2f')} | {note} |")
    lines += targets(rows)
    table = "\n".join(lines) + "\n"
    with open(os.path.join(OUT, "quant_table.md"), "w") as f:
        f.write(table)
    print(table)


os.makedirs(OUT, exist_ok=True)
if REPORT_ONLY:
    with open(RESULTS) as f:
        recorded = [json.loads(l) for l in f if l.strip()]
    report([r for r in recorded if r.get("event") != "settings"], next(r for r in recorded if r.get("event") == "settings"))
    sys.exit(0)
SETTINGS = {"event": "settings", "threads": THREADS, "rounds": ROUNDS, "seconds": SECONDS, "samples": SAMPLES,
            "epochs": EPOCHS, "calib": CALIB, "models": MODELS, "leanai_weights": LEANAI_WEIGHTS}
def has_quantize():
    """`leanai quantize` exists when its own help mentions --calib (an unknown
    subcommand with --help prints the top-level help and exits 0)."""
    r = subprocess.run([LEANAI, "quantize", "--help"], capture_output=True, text=True, env=ENV)
    return r.returncode == 0 and "--calib" in r.stdout


quantize_available = has_quantize()
log("leanai quantize: " + ("available" if quantize_available else "not available (its rows are marked so)"))
run(PY + [os.path.join(HERE, "torch_quant.py"), "data"])
rows = []
for m in MODELS:
    log(f"{m}: training {EPOCHS} epoch(s) in PyTorch, quantizing in every tool")
    rows += prepare(m, quantize_available)
measure(rows)
with open(RESULTS, "w") as f:
    for r in [SETTINGS] + rows:
        print(json.dumps(r), flush=True)
        f.write(json.dumps(r) + "\n")
report(rows, SETTINGS)
