// ONNX Runtime accuracy for bench/quant_bench.py: runs MODEL.onnx on the test
// images (raw float32 [N,1,28,28]) in batches of 500 and prints one JSON line
// with the top-1 accuracy against the labels (uint8).
//
// Usage: node ort_eval.js MODEL.onnx TEST_X.f32 TEST_Y.u8
// Run with NODE_PATH pointing at a node_modules that holds onnxruntime-node.
'use strict';
const fs = require('fs');
const ort = require('onnxruntime-node');

const [file, xPath, yPath] = process.argv.slice(2);
(async () => {
  const b = fs.readFileSync(xPath);
  const x = new Float32Array(b.buffer, b.byteOffset, b.byteLength / 4);
  const y = fs.readFileSync(yPath);
  const sess = await ort.InferenceSession.create(file, { intraOpNumThreads: 2, graphOptimizationLevel: 'all' });
  let hits = 0;
  for (let i = 0; i < y.length; i += 500) {
    const n = Math.min(500, y.length - i);
    const feeds = { [sess.inputNames[0]]: new ort.Tensor('float32', x.slice(i * 784, (i + n) * 784), [n, 1, 28, 28]) };
    const out = (await sess.run(feeds))[sess.outputNames[0]].data;
    const classes = out.length / n;
    for (let r = 0; r < n; r++) {
      let best = 0;
      for (let c = 1; c < classes; c++) if (out[r * classes + c] > out[r * classes + best]) best = c;
      hits += best === y[i + r];
    }
  }
  console.log(JSON.stringify({ tool: 'onnxruntime', file, accuracy: hits / y.length, samples: y.length }));
})().catch((e) => { console.error('ort_eval: ' + e); process.exit(1); });
