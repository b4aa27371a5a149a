// Runs a wasm32-wasip1 program (a cargo test binary) under Node.js's WASI, passing its
// arguments and exit code through. Used as the cargo runner for wasm32-wasip1:
//   CARGO_TARGET_WASM32_WASIP1_RUNNER="node --wasm-enforce-bounds-checks scripts/wasi-run.js" \
//     cargo test --target wasm32-wasip1
// (--wasm-enforce-bounds-checks: V8's signal-based bounds checks crash node with SIGSEGV on
// some machines, this one among them, instead of trapping.)
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
