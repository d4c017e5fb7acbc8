#!/usr/bin/python3
"""PyTorch 1.13 side of bench/quant_bench.py (int8 on the onednn engine, as in
../shared/anchors/torch_bench.py; Debian's torch has no fbgemm).

  torch_quant.py data                  OUT/test_x.f32, OUT/test_y.u8: the first SAMPLES
                                       normalized test images and their labels
  torch_quant.py prepare MODEL         trains EPOCHS (0 = untrained weights), writes
                                       OUT/MODEL.pt and OUT/MODEL.onnx (fp32, opset 13),
                                       tries OUT/MODEL.torch_qdq.onnx (the static int8
                                       model exported by torch, linear+relu unfused);
                                       one JSON line per variant
                                       with test accuracy and bytes of weights
  torch_quant.py time MODEL VARIANT THREADS BATCHES SECONDS
                                       median latency per batch size (JSON lines)

Variants: fp32; int8-dynamic (quantize_dynamic of nn.Linear, per-tensor
weights, activations quantized per batch); int8-static (FX graph mode,
default onednn qconfig: per-channel weights, histogram-observed activations,
CALIB training images). Static int8 is rebuilt from MODEL.pt in `time`
(calibration is deterministic), as quantized modules do not pickle reliably.
"""
import copy, json, os, sys, time

os.environ.setdefault("GLOG_minloglevel", "2")
os.environ.setdefault("TORCH_CPP_LOG_LEVEL", "ERROR")
import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import fmnist  # noqa: E402
from quant_models import MODELS  # noqa: E402
from torch_timing import p50_ms  # noqa: E402
from torch_fit import fit  # noqa: E402

OUT = os.environ.get("OUT", os.path.join(os.path.dirname(os.path.abspath(__file__)), "out", "quant"))
EPOCHS = int(os.environ.get("EPOCHS", "2"))
SAMPLES = int(os.environ.get("SAMPLES", "10000"))
CALIB = int(os.environ.get("CALIB", "2048"))
torch.backends.quantized.engine = "onednn"


def emit(**row):
    print(json.dumps({"tool": "pytorch", **row}), flush=True)


def weight_bytes(model):
    """Bytes of every stored weight and buffer (quantized tensors count 1 byte per value)."""
    def size(v):
        if isinstance(v, torch.Tensor):
            return v.numel() * v.element_size()
        if isinstance(v, (tuple, list)):
            return sum(size(x) for x in v)
        return 0
    return sum(size(v) for k, v in model.state_dict().items() if not k.endswith("num_batches_tracked"))


def export_backend_config():
    """FX's default backend config without the linear+relu fusions: torch 1.13's
    ONNX exporter has no symbolic for quantized::linear_relu (the anchors'
    export_qcnn_qdq.py leaves fc1+relu unfused for the same reason)."""
    from torch.ao.quantization.backend_config import BackendConfig, get_native_backend_config

    def names(p):
        return [y for x in p for y in names(x)] if isinstance(p, tuple) else [getattr(p, "__name__", str(p))]

    configs = get_native_backend_config().configs
    configs = configs.values() if isinstance(configs, dict) else configs
    keep = [c for c in configs if not ("Linear" in " ".join(names(c.pattern)) and "relu" in " ".join(names(c.pattern)).lower())]
    return BackendConfig("native_without_linear_relu").set_backend_pattern_configs(keep)


def build(name, variant, calib, backend_config=None):
    model = MODELS[name]()
    model.load_state_dict(torch.load(f"{OUT}/{name}.pt"))
    model.eval()
    if variant == "fp32":
        return model
    if variant == "int8-dynamic":
        return torch.ao.quantization.quantize_dynamic(model, {torch.nn.Linear}, dtype=torch.qint8)
    if variant == "int8-static":
        from torch.ao.quantization import get_default_qconfig_mapping
        from torch.ao.quantization.quantize_fx import convert_fx, prepare_fx
        prepared = prepare_fx(model, get_default_qconfig_mapping("onednn"), (calib[:1],), backend_config=backend_config)
        with torch.inference_mode():
            for i in range(0, len(calib), 256):
                prepared(calib[i:i + 256])
        return convert_fx(prepared, backend_config=backend_config)
    sys.exit(f"torch_quant: unknown variant {variant}")


@torch.inference_mode()
def accuracy(model, x, y):
    hits = sum(int((model(x[i:i + 500]).argmax(1) == y[i:i + 500]).sum()) for i in range(0, len(x), 500))
    return hits / len(x)


def test_set():
    x = torch.from_numpy(np.fromfile(f"{OUT}/test_x.f32", dtype="<f4").reshape(-1, 1, 28, 28).copy())
    y = torch.from_numpy(np.fromfile(f"{OUT}/test_y.u8", dtype=np.uint8).astype(np.int64))
    return x, y


def train(name, xtr, ytr):
    torch.manual_seed(0)
    return fit(MODELS[name](), xtr, ytr, EPOCHS)


def prepare(name):
    torch.set_num_threads(int(os.environ.get("THREADS", "2")))
    xtr, ytr, _, _ = fmnist.load()
    t0 = time.time()
    model = train(name, xtr, ytr)
    torch.save(model.state_dict(), f"{OUT}/{name}.pt")
    x1 = xtr[:1]
    torch.onnx.export(model, x1, f"{OUT}/{name}.onnx", input_names=["input"], output_names=["logits"],
                      dynamic_axes={"input": {0: "N"}, "logits": {0: "N"}}, opset_version=13)
    emit(model=name, event="trained", epochs=EPOCHS, train_s=round(time.time() - t0, 1))
    x, y = test_set()
    calib = xtr[:CALIB]
    for variant in ("fp32", "int8-dynamic", "int8-static"):
        try:
            m = build(name, variant, calib)
            emit(model=name, variant=variant, accuracy=accuracy(m, x, y), size_bytes=weight_bytes(m))
        except Exception as e:  # a variant torch cannot build is reported, not fatal
            emit(model=name, variant=variant, error=f"{type(e).__name__}: {str(e)[:300]}")
            continue
        if variant == "int8-static":
            path = f"{OUT}/{name}.torch_qdq.onnx"
            try:
                m = build(name, variant, calib, export_backend_config())
                torch.onnx.export(m, x1, path, input_names=["input"], output_names=["logits"],
                                  dynamic_axes={"input": {0: "N"}, "logits": {0: "N"}}, opset_version=13)
                emit(model=name, event="torch_qdq_export", path=path)
            except Exception as e:
                if os.path.exists(path):
                    os.remove(path)
                emit(model=name, event="torch_qdq_export", error=f"{type(e).__name__}: {str(e)[:300]}")


def timed(name, variant, threads, batches, seconds):
    torch.set_num_threads(threads)
    calib = fmnist.images("train")[:CALIB] if variant == "int8-static" else None
    model = build(name, variant, calib)
    x_all, _ = test_set()
    for batch in batches:
        x = x_all[:batch].contiguous() if batch <= len(x_all) else torch.randn(batch, 1, 28, 28)
        p50, runs = p50_ms(model, x, seconds)
        emit(model=name, variant=variant, threads=threads, batch=batch, p50_ms=p50, runs=runs)


if __name__ == "__main__":
    os.makedirs(OUT, exist_ok=True)
    mode = sys.argv[1]
    if mode == "data":
        xte, yte = fmnist.images("t10k")[:SAMPLES], fmnist.labels("t10k")[:SAMPLES]
        xte.numpy().astype("<f4").tofile(f"{OUT}/test_x.f32")
        yte.numpy().astype(np.uint8).tofile(f"{OUT}/test_y.u8")
        emit(event="data", samples=len(yte))
    elif mode == "prepare":
        prepare(sys.argv[2])
    elif mode == "time":
        timed(sys.argv[2], sys.argv[3], int(sys.argv[4]), [int(b) for b in sys.argv[5].split(",")], float(sys.argv[6]))
    else:
        sys.exit(__doc__)
