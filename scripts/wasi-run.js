// Runs a wasm32-wasip1 program (a cargo test binary) under Node.js's WASI, passing its
// arguments and exit code through. Used as the cargo runner for wasm32-wasip1:
//   CARGO_TARGET_WASM32_WASIP1_RUNNER="node --no-incremental-marking scripts/wasi-run.js" \
//     cargo test --target wasm32-wasip1
// (--no-incremental-marking: Node 20's V8 crashes in incremental marking, started by the
// external-memory pressure of a wasm memory that grows by hundreds of MiB, in about half of the
// runs of the core's tests on this machine; with it, 0 crashes in 20 runs.)
'use strict';
const fs = require('node:fs');
const { WASI } = require('node:wasi');
const [file, ...args] = process.argv.slice(2);
const wasi = new WASI({ version: 'preview1', args: [file, ...args], env: process.env, preopens: { '.': '.' }, returnOnExit: true });
(async () => {
  const module = await WebAssembly.compile(fs.readFileSync(file));
  const instance = await WebAssembly.instantiate(module, wasi.getImportObject());
  process.exitCode = wasi.start(instance);
})().catch((e) => { console.error(e); process.exitCode = 1; });
