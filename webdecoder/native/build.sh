#!/bin/sh
# Rebuild the WebAssembly side module that Pyodide loads (apt-get install emscripten; Debian's 3.1.6 works
# with Pyodide 0.27.7's 3.1.58 for this libc-free code). The .so is committed: CI and users need no emcc.
set -eu
cd "$(dirname "$0")"
emcc -O3 -msimd128 -sSIDE_MODULE=1 matmul.c -o nicmm.wasm.so
ls -l nicmm.wasm.so
