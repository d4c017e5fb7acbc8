#!/usr/bin/python3
"""ONNX Runtime's dynamic int8 quantization, by hand (the npm onnxruntime-node
has no quantization tool and Debian has no onnxruntime Python package): every
Gemm (transB=1, alpha=beta=1) and MatMul with an initializer weight becomes
  DynamicQuantizeLinear(x) -> MatMulInteger(x_u8, W_s8, x_zp) -> Cast -> Mul(x_scale * w_scale) [-> Add(bias)]
the pattern onnxruntime.quantization.quantize_dynamic emits and ORT fuses into
DynamicQuantizeMatMul. Weights per-tensor symmetric int8 (its default). Convs
stay f32, as in quantize_dynamic. Adapted from ../shared/anchors/make_dynq_onnx.py.

Usage: onnx_dynq.py IN.onnx OUT.onnx   (prints one JSON line: the layers converted)
"""
import json, sys

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

src, dst = sys.argv[1], sys.argv[2]
m = onnx.load(src)
g = m.graph
inits = {i.name: i for i in g.initializer}
nodes, new_inits, converted = [], [], []
for n in g.node:
    attrs = {a.name: helper.get_attribute_value(a) for a in n.attribute}
    gemm = n.op_type == "Gemm" and attrs.get("transB", 0) == 1 and attrs.get("alpha", 1.0) == 1.0 \
        and attrs.get("beta", 1.0) == 1.0 and attrs.get("transA", 0) == 0
    matmul = n.op_type == "MatMul"
    if not (gemm or matmul) or n.input[1] not in inits:
        nodes.append(n)
        continue
    x, wname = n.input[0], n.input[1]
    w = numpy_helper.to_array(inits[wname]).astype(np.float32)
    w = w.T if gemm else w  # K x N
    s = max(float(np.abs(w).max()) / 127.0, 1e-12)
    p = (n.name.strip("/").replace("/", "_") or wname) + f"_{len(converted)}"
    new_inits += [numpy_helper.from_array(np.clip(np.round(w / s), -127, 127).astype(np.int8), f"{p}_Wq"),
                  numpy_helper.from_array(np.array(0, np.int8), f"{p}_Wzp"),
                  numpy_helper.from_array(np.array(s, np.float32), f"{p}_Ws")]
    nodes += [helper.make_node("DynamicQuantizeLinear", [x], [f"{p}_xq", f"{p}_xs", f"{p}_xzp"]),
              helper.make_node("MatMulInteger", [f"{p}_xq", f"{p}_Wq", f"{p}_xzp", f"{p}_Wzp"], [f"{p}_i32"]),
              helper.make_node("Cast", [f"{p}_i32"], [f"{p}_f"], to=TensorProto.FLOAT),
              helper.make_node("Mul", [f"{p}_xs", f"{p}_Ws"], [f"{p}_scale"])]
    bias = n.input[2] if gemm and len(n.input) > 2 and n.input[2] else None
    nodes.append(helper.make_node("Mul", [f"{p}_f", f"{p}_scale"], [f"{p}_mm" if bias else n.output[0]]))
    if bias:
        nodes.append(helper.make_node("Add", [f"{p}_mm", bias], [n.output[0]]))
    converted.append(n.name or wname)
used = {i for n in nodes for i in n.input}
keep = [i for i in g.initializer if i.name in used]
g.ClearField("node")
g.node.extend(nodes)
g.ClearField("initializer")
g.initializer.extend(keep + new_inits)
onnx.checker.check_model(m)
onnx.save(m, dst)
print(json.dumps({"event": "onnx_dynq", "out": dst, "converted": converted}))
