"""numpy's float32 matmul speed on the GEMM benchmark shapes (the reference for bench/gemm.ts).

Usage: python3 bench/gemm_numpy.py '<json list of [M, N, K, transA, transB]>' REPS
Prints one JSON object: {"blas": "...", "gflops": [best GFLOP/s per shape], "cpu_gflops": [...]}
(cpu_gflops: from process CPU time instead of wall time; meaningful at 1 thread on a busy machine).
The thread count comes from the environment (OPENBLAS_NUM_THREADS / OMP_NUM_THREADS), set by the
caller. Not part of the project: only the benchmark runs it.
"""
import json
import sys
import time

import numpy as np


def blas_name():
    try:
        from threadpoolctl import threadpool_info

        info = [i for i in threadpool_info() if i.get("user_api") == "blas"]
        if info:
            i = info[0]
            return f"{i.get('internal_api')} {i.get('version')} core={i.get('architecture')} threads={i.get('num_threads')}"
    except Exception:
        pass
    name = "unknown"
    try:
        cfg = np.show_config(mode="dicts")["Build Dependencies"]["blas"]
        name = f"{cfg.get('name')} {cfg.get('version')}"
    except Exception:
        pass
    # numpy wheels bundle OpenBLAS (DYNAMIC_ARCH): ask it which core kernel it picked.
    try:
        import ctypes
        import glob
        import os

        libdir = os.path.join(os.path.dirname(np.__file__), "..", "numpy.libs")
        for path in glob.glob(os.path.join(libdir, "*openblas*")):
            lib = ctypes.CDLL(path)
            for sym in ("scipy_openblas_get_corename64_", "scipy_openblas_get_corename", "openblas_get_corename"):
                if hasattr(lib, sym):
                    fn = getattr(lib, sym)
                    fn.restype = ctypes.c_char_p
                    return f"{name} core={fn().decode()}"
    except Exception:
        pass
    return name


def main():
    shapes = json.loads(sys.argv[1])
    reps = int(sys.argv[2])
    rng = np.random.default_rng(0)
    out, cpu = [], []
    for M, N, K, ta, tb in shapes:
        # Stored as the kernel sees them; .T gives numpy the transposed view (no copy).
        A = (rng.random((K, M) if ta else (M, K), dtype=np.float32) - 0.5)
        B = (rng.random((N, K) if tb else (K, N), dtype=np.float32) - 0.5)
        a = A.T if ta else A
        b = B.T if tb else B
        C = np.empty((M, N), dtype=np.float32)
        np.matmul(a, b, out=C)  # warm-up
        best = best_cpu = float("inf")
        for _ in range(reps):
            t0, c0 = time.perf_counter(), time.process_time()
            np.matmul(a, b, out=C)
            best = min(best, time.perf_counter() - t0)
            best_cpu = min(best_cpu, time.process_time() - c0)
        out.append(2.0 * M * N * K / best / 1e9)
        cpu.append(2.0 * M * N * K / max(best_cpu, 1e-9) / 1e9)
    print(json.dumps({"blas": blas_name(), "numpy": np.__version__, "gflops": out, "cpu_gflops": cpu}))


if __name__ == "__main__":
    main()
