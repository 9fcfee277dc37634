#!/bin/sh
# Rebuild the WebAssembly side module that Pyodide loads (apt-get install emscripten; Debian's 3.1.6 works
# with Pyodide 0.27.7's 3.1.58 for this libc-free code). The .so is committed: CI and users need no emcc.
set -eu
cd "$(dirname "$0")"
# -fno-builtin: no calls to memcpy/memset for copy or zeroing loops (clang's loop idioms). The int16 direct
# conv copied each tap's weight pairs through a memcpy call, 2.4 ms per Kodak image in Pyodide's libc and more
# through the helper thread's JavaScript one (webdecoder/parallel.py); the module now imports neither.
emcc -O3 -msimd128 -fno-builtin -sSIDE_MODULE=1 matmul.c -o nicmm.wasm.so
ls -l nicmm.wasm.so
