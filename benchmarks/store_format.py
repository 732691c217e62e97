"""Float16 map shards: safetensors files (one per shard, written whole and renamed) against zarr v3 arrays (one per
method, one chunk per shard; zarr's default zstd compression), as `explain.store` writes them.

    python benchmarks/store_format.py [--shards 4] [--n 64] [--size 224] [--methods 9]

Maps: smooth random fields (a 7x7 grid upsampled bilinearly, as CAMs are) plus a sparse gradient-like field, per sample
divided by its max, float16. Prints write and read speed (MB/s of raw float16; read: every map of every shard, and
one sample's maps for every method = the `Store.maps` access), size on disk and the ratio.
"""
import argparse, os, shutil, tempfile, time
from pathlib import Path
import numpy as np, torch, torch.nn.functional as F
from safetensors import safe_open
from safetensors.torch import save as st_save
from xaimm_nb.core import atomic_write

def maps(n, size, k, seed):
    g = torch.Generator().manual_seed(seed)
    out = {}
    for j in range(k):
        m = F.interpolate(torch.rand(n, 1, 7, 7, generator=g), size=(size, size), mode='bilinear')[:, 0]
        if j % 2: m = m * (torch.rand(n, size, size, generator=g) > .9)  # gradient-like: mostly zeros
        out[f'm{j}.image'] = (m / m.flatten(1).amax(1).view(-1, 1, 1)).half().contiguous()
    return out

def du(p): return sum(f.stat().st_size for f in Path(p).rglob('*') if f.is_file())

def run(a):
    import zarr
    tmp = Path(tempfile.mkdtemp()); raw = a.shards * a.n * a.methods * a.size ** 2 * 2 / 2**20
    data = [maps(a.n, a.size, a.methods, s) for s in range(a.shards)]
    t = time.perf_counter()
    for s, d in enumerate(data): atomic_write(tmp/'st'/f'{s:05d}.safetensors', st_save(d))
    w_st = time.perf_counter() - t
    t = time.perf_counter()
    root = zarr.open_group(str(tmp/'zarr'), mode='w')
    arrs = {k: root.create_array(k, shape=(a.shards * a.n, a.size, a.size), chunks=(a.n, a.size, a.size),
                                 dtype='float16') for k in data[0]}
    for s, d in enumerate(data):
        for k, v in d.items(): arrs[k][s * a.n:(s + 1) * a.n] = v.numpy()
    w_z = time.perf_counter() - t
    t = time.perf_counter()
    for s in range(a.shards):
        with safe_open(tmp/'st'/f'{s:05d}.safetensors', 'pt') as h: x = [h.get_tensor(k) for k in h.keys()]
    r_st = time.perf_counter() - t
    t = time.perf_counter()
    root = zarr.open_group(str(tmp/'zarr'), mode='r'); x = [root[k][:] for k in data[0]]
    r_z = time.perf_counter() - t
    idx = list(range(0, a.shards * a.n, 7))
    t = time.perf_counter()
    for i in idx:
        with safe_open(tmp/'st'/f'{i // a.n:05d}.safetensors', 'pt') as h:
            x = [h.get_slice(k)[i % a.n] for k in data[0]]
    s_st = (time.perf_counter() - t) / len(idx)
    t = time.perf_counter()
    for i in idx: x = [root[k][i] for k in data[0]]
    s_z = (time.perf_counter() - t) / len(idx)
    print(f"{a.shards} shards x {a.n} samples x {a.methods} methods, {a.size} px float16: {raw:.0f} MB raw")
    for n, w, r, s, sz in (('safetensors', w_st, r_st, s_st, du(tmp/'st')), ('zarr', w_z, r_z, s_z, du(tmp/'zarr'))):
        print(f"{n:12s} write {raw / w:7.0f} MB/s  read all {raw / r:7.0f} MB/s  one sample (all methods) "
              f"{s * 1e3:6.2f} ms  size {sz / 2**20:6.1f} MB ({sz / 2**20 / raw:.2f} of raw)")
    shutil.rmtree(tmp)

if __name__ == '__main__':
    p = argparse.ArgumentParser()
    for k, v in dict(shards=4, n=64, size=224, methods=9).items(): p.add_argument(f'--{k}', type=int, default=v)
    run(p.parse_args())
