// ONNX Runtime side of bench/infer_bench.py (npm onnxruntime-node, CPU, all
// graph optimizations, sequential execution). Prints one JSON line per batch
// size with the median latency of session.run, and with --parity the largest
// difference from PyTorch's logits on export_onnx.py's parity input.
//
// Usage: node ort_infer.js MODEL.onnx THREADS BATCHES SECONDS [PARITY_IN PARITY_OUT]
// Run with NODE_PATH pointing at a node_modules that holds onnxruntime-node.
'use strict';
const fs = require('fs');
const ort = require('onnxruntime-node');

const [file, threads, batches, seconds, parityIn, parityOut] = process.argv.slice(2);

function f32(path) {
  const b = fs.readFileSync(path);
  return new Float32Array(b.buffer, b.byteOffset, b.byteLength / 4);
}

(async () => {
  const sess = await ort.InferenceSession.create(file, {
    intraOpNumThreads: +threads, interOpNumThreads: 1, executionMode: 'sequential',
    graphOptimizationLevel: 'all', executionProviders: ['cpu'],
  });
  const input = sess.inputNames[0];
  if (parityIn) {
    const x = f32(parityIn);
    const ref = f32(parityOut);
    const out = (await sess.run({ [input]: new ort.Tensor('float32', x, [x.length / 784, 1, 28, 28]) }))[sess.outputNames[0]].data;
    let maxDiff = 0;
    for (let i = 0; i < out.length; i++) maxDiff = Math.max(maxDiff, Math.abs(out[i] - ref[i]));
    console.log(JSON.stringify({ tool: 'onnxruntime', file, parity_max_abs_diff: maxDiff }));
  }
  for (const batch of batches.split(',').map(Number)) {
    const x = new Float32Array(batch * 784);
    for (let i = 0; i < x.length; i++) x[i] = Math.sin(i * 12.9898) * 1.5;
    const feeds = { [input]: new ort.Tensor('float32', x, [batch, 1, 28, 28]) };
    for (let i = 0; i < 10; i++) await sess.run(feeds);
    const ts = [];
    const start = process.hrtime.bigint();
    while (ts.length < 10 || (Number(process.hrtime.bigint() - start) / 1e9 < +seconds && ts.length < 5000)) {
      const t0 = process.hrtime.bigint();
      await sess.run(feeds);
      ts.push(Number(process.hrtime.bigint() - t0) / 1e6);
    }
    ts.sort((a, b) => a - b);
    console.log(JSON.stringify({ tool: 'onnxruntime', file, threads: +threads, batch, p50_ms: ts[ts.length >> 1], runs: ts.length }));
  }
})().catch((e) => { console.error('ort_infer: ' + e); process.exit(1); });
