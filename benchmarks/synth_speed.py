"""SynthMM generation speed on ONE CPU core: a plain loop over `__getitem__`.

    python benchmarks/synth_speed.py [N]

Prints images/s at 64x64 against the target (>= 2,000 images/s: PASS/BELOW), then the rates at 32x32 and 128x128.
Each rate is the best of 3 passes over N samples (default 2000), so other load on the machine counts less.
"""
import os, sys, time
os.environ.setdefault('OMP_NUM_THREADS', '1')
import torch
from xaimm_nb.data.synth import SynthConfig, SynthMM

TARGET = 2000

def rate(size, n, reps=3):
    "Best images/s over `reps` passes of `n` samples of size `size`."
    ds = SynthMM(SynthConfig(size=size), n=n); ds[0]  # warm the per-size caches
    best = 0.
    for _ in range(reps):
        t = time.perf_counter()
        for i in range(n): ds[i]
        best = max(best, n / (time.perf_counter() - t))
    return best

if __name__ == '__main__':
    torch.set_num_threads(1)
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 2000
    r = rate(64, n)
    print(f"SynthMM 64x64: {r:,.0f} images/s on 1 core, N={n} (target >= {TARGET:,}): {'PASS' if r >= TARGET else 'BELOW'}")
    for s in (32, 128): print(f"SynthMM {s}x{s}: {rate(s, n):,.0f} images/s")
