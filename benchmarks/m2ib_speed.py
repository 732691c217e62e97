"""Speed and agreement of our batched M2IB (xaimm_nb.explain.m2ib) against a straightforward implementation of the reference algorithm.

    python benchmarks/m2ib_speed.py [--pairs 8] [--width 128] [--depth 12] [--patch 32] [--threads 1] [--device cpu]

Model: a random-init HF CLIPModel through CLIPAdapter, ViT-B/32 geometry in a small width (224 px, patch 32 → 7×7 grid,
`--depth` blocks per tower, eager attention), captions of 6..24 tokens padded to the longest. Both implementations explain
the same `--pairs` (image i, caption i) pairs with the paper's defaults (bottleneck after block 9 of 12, β 0.1, Adam lr 1,
10 steps, 10 Monte-Carlo samples, α₀ = 5, ε ~ N(0,1)) and the same noise: the reference reads, for pair i and step s,
the slice i of the tensor our implementation draws at step s from the same seeded generator.

The reference does what the released code does, written plainly: one pair at a time, the pair replicated as a batch of
10 noisy copies, the whole tower run every step with the bottleneck in a forward hook on block k, the other modality's
embedding recomputed (without gradients) every step, and the map read from the KL of the last forward pass (α after 9
of the 10 updates). For fairness it differentiates only w.r.t. α (no parameter gradients), as ours does.

Prints (times are CPU seconds of this process on the CPU, wall seconds on a GPU): both times and their ratio (target ≥ 3×);
the Pearson correlation per pair of our maps with the reference's own maps (target ≥ 0.95) and with the reference's maps read from the final α (the same quantity as ours: checks the
batching/caching is exact); our time per pair against its floor = one clean forward of both towers + steps × samples
forward/backward passes of the blocks after the bottleneck and the read-out, timed on their own.
"""
import argparse, os, time
os.environ.setdefault('HF_HUB_OFFLINE', '1'); os.environ.setdefault('TRANSFORMERS_OFFLINE', '1')
import torch, torch.nn.functional as F
from transformers import CLIPConfig, CLIPModel
from xaimm_nb.explain.core import explain, hooks, check_batch
from xaimm_nb.explain.attention import _upsample
from xaimm_nb.explain.m2ib import ALPHA0
from xaimm_nb.models.dual import CLIPAdapter


def clock(dev):
    "Seconds: CPU time of this process on the CPU (the test machine's cores are shared, so wall time says more about the neighbours), wall time after a sync on a GPU."
    if torch.device(dev).type == 'cuda': torch.cuda.synchronize(); return time.perf_counter()
    return time.process_time()


def clip_model(width=128, depth=12, patch=32, size=224, vocab=1000, max_len=32):
    "A random-init CLIPAdapter(CLIPModel) with ViT geometry `size`/`patch` and `depth` blocks of `width` in each tower."
    kw = dict(hidden_size=width, intermediate_size=4*width, num_hidden_layers=depth, num_attention_heads=max(1, width // 32))
    t = dict(vocab_size=vocab, max_position_embeddings=max_len, bos_token_id=0, eos_token_id=1, pad_token_id=1, **kw)
    return CLIPAdapter(CLIPModel(CLIPConfig(text_config=t, vision_config=dict(image_size=size, patch_size=patch, **kw), projection_dim=width)).eval())


def clip_pairs(n, vocab=1000, size=224, lens=(6, 24), seed=0):
    "n random (image, caption) pairs: [SOT, words, EOT], pads (id 1) after EOT."
    g = torch.Generator().manual_seed(seed)
    L = torch.randint(lens[0], lens[1] + 1, (n,), generator=g); T = int(L.max())
    ids = torch.randint(2, vocab, (n, T), generator=g); ids[:, 0] = 0
    mask = (torch.arange(T) < L[:, None]).long(); ids[torch.arange(n), L - 1] = 1; ids[mask == 0] = 1
    return dict(images=torch.randn(n, 3, size, size, generator=g), input_ids=ids, attention_mask=mask)


def draw_noise(shape, steps, seed, device):
    "The noise our implementation draws: one standard normal tensor [B,S,n,W] per step from a generator seeded with `seed`."
    g = torch.Generator(device).manual_seed(seed)
    return [torch.randn(shape, generator=g, device=device) for _ in range(steps)]


def reference_m2ib(model, b, tower, layer, noise, beta=.1, lr=1.):
    """Per-token maps [B,n] ('image') or [B,T] ('text', 0 at pads) of the reference algorithm, one pair at a time (see the module doc):
    (read from the last forward pass, as released; read from the final α)."""
    blocks = model.image_blocks if tower == 'image' else model.text_blocks
    S, maps, fins = noise[0].shape[1], [], []
    for i in range(len(b['images'])):
        L = int(b['attention_mask'][i].sum())
        img, ids, am = b['images'][i:i+1], b['input_ids'][i:i+1, :L], b['attention_mask'][i:i+1, :L]  # the caption unpadded
        st = {}
        def bottleneck(m, inp, o):
            x = o[0] if isinstance(o, tuple) else o
            if 'alpha' not in st:  # the first pass only reads the hidden state to size α
                st['alpha'] = torch.full_like(x[0], ALPHA0, requires_grad=True); return o
            lam = torch.sigmoid(st['alpha'])
            st['x'], st['kl'] = x, .5*((lam*x)**2 + (1-lam)**2 - 1 - torch.log((1-lam)**2))
            z = lam*x + (1-lam)*st['eps']
            return (z, *o[1:]) if isinstance(o, tuple) else z
        with hooks(blocks[layer], forward=bottleneck):
            with torch.no_grad(): model.encode_image(img) if tower == 'image' else model.encode_text(ids, am)
            opt = torch.optim.Adam([st['alpha']], lr=lr)
            for eps in noise:
                st['eps'] = eps[i] if tower == 'image' else eps[i, :, :L]
                if tower == 'image':
                    e = model.encode_image(img.expand(S, -1, -1, -1))
                    with torch.no_grad(): o = model.encode_text(ids, am)
                else:
                    e = model.encode_text(ids.expand(S, -1), am.expand(S, -1))
                    with torch.no_grad(): o = model.encode_image(img)
                loss = beta*st['kl'].mean() - (e @ o.T).mean()
                st['alpha'].grad, = torch.autograd.grad(loss, st['alpha'])
                opt.step()
        with torch.no_grad():
            lam, x, pad = torch.sigmoid(st['alpha']), st['x'], (0, b['input_ids'].shape[1] - L if tower == 'text' else 0)
            maps.append(F.pad(st['kl'][0].sum(-1), pad))
            fins.append(F.pad((.5*((lam*x)**2 + (1-lam)**2 - 1 - torch.log((1-lam)**2)))[0].sum(-1), pad))
    return torch.stack(maps), torch.stack(fins)


def as_maps(model, b, image, text):
    "Reference token maps laid out like an Explanation: image upsampled from the grid, text 0 at special tokens."
    return (_upsample(image[:, model.n_prefix:], tuple(model.grid), b['images'].shape[-2:]),
            text.masked_fill(model.special_mask(b['input_ids'], b['attention_mask']), 0))


def pearson(a, b, keep=None):
    "Pearson r per row of a, b [B,...] over the positions `keep`."
    r = []
    for i in range(len(a)):
        x, y = a[i].flatten(), b[i].flatten()
        if keep is not None: x, y = x[keep[i].flatten()], y[keep[i].flatten()]
        r.append(torch.corrcoef(torch.stack([x, y]))[0, 1].item())
    return torch.tensor(r)


def floor_time(model, b, layers, steps, S):
    "Seconds of the unavoidable work: one clean pass of both towers, and per tower steps × (forward + backward of blocks k+1.. and the read-out on B·S rows)."
    B, dev = len(b['images']), b['images'].device
    t0 = clock(dev)
    with torch.no_grad(): ei, et = model.encode_image(b['images']), model.encode_text(b['input_ids'], b['attention_mask'])
    total = clock(dev) - t0
    vm, tm = model.image_encoder.model, model.text_encoder.model
    eot = model.eot(b['input_ids']).repeat_interleave(S)
    heads = dict(image=lambda h: model.image_proj(vm.post_layernorm(h[:, 0])),
                 text=lambda h: model.text_proj(tm.final_layer_norm(h)[torch.arange(len(h), device=dev), eot]))
    runs = dict(image=lambda: model.encode_image(b['images'].repeat_interleave(S, 0)),
                text=lambda: model.encode_text(b['input_ids'].repeat_interleave(S, 0), b['attention_mask'].repeat_interleave(S, 0)))
    for t, k in layers.items():
        blocks, other = (model.image_blocks, et) if t == 'image' else (model.text_blocks, ei)
        cap = {}
        h_ = blocks[k + 1].register_forward_pre_hook(lambda m, a, kw: cap.update(a=a, kw=kw), with_kwargs=True)
        with torch.no_grad(): runs[t]()
        h_.remove()
        x0, rest = cap['a'][0], cap['a'][1:]
        def step():
            h = x0.clone().requires_grad_()
            y = h
            for blk in blocks[k + 1:]: y = blk(y, *rest, **cap['kw'])
            y = y[0] if isinstance(y, tuple) else y
            cos = (F.normalize(heads[t](y), dim=-1).view(B, S, -1) * other[:, None]).sum(-1).mean(1)
            torch.autograd.grad(cos.sum(), h)
        step()  # warm-up
        t0 = clock(dev)
        for _ in range(steps): step()
        total += clock(dev) - t0
    return total


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument('--pairs', type=int, default=8); ap.add_argument('--width', type=int, default=128)
    ap.add_argument('--depth', type=int, default=12); ap.add_argument('--patch', type=int, default=32)
    ap.add_argument('--threads', type=int, default=1); ap.add_argument('--device', default='cpu')
    a = ap.parse_args()
    torch.set_num_threads(a.threads); torch.manual_seed(0); dev = a.device
    model = clip_model(a.width, a.depth, a.patch).to(a.device)
    b = check_batch(model, clip_pairs(a.pairs))
    steps, S, seed = 10, 10, 0
    print(f"model: random-init CLIP, {a.depth} blocks of width {a.width} per tower, 224 px / patch {a.patch} "
          f"({model.grid[0]}×{model.grid[1]} grid); {a.pairs} pairs, captions of {b['attention_mask'].sum(1).tolist()} tokens; "
          f"{a.threads} thread(s) on {a.device}")

    run = lambda: explain(model, b, 'm2ib', steps=steps, n_samples=S, seed=seed)
    run()  # warm-up
    t0 = clock(dev); ours = run(); t_ours = clock(dev) - t0
    layers = ours.meta['layer']
    print(f"ours:      {t_ours:7.2f} s  ({t_ours / a.pairs:.3f} s/pair), bottleneck after blocks {layers}")

    B, W, n, T = a.pairs, a.width, 1 + model.grid[0]*model.grid[1], b['input_ids'].shape[1]
    noise = dict(image=draw_noise((B, S, n, W), steps, seed, a.device), text=draw_noise((B, S, T, W), steps, seed + 1, a.device))
    reference_m2ib(model, {k: v[:1] for k, v in b.items()}, 'image', layers['image'], [e[:1] for e in noise['image']])  # warm-up
    t0 = clock(dev)
    ref = {t: reference_m2ib(model, b, t, layers[t], noise[t]) for t in ('image', 'text')}
    t_ref = clock(dev) - t0
    print(f"reference: {t_ref:7.2f} s  ({t_ref / a.pairs:.3f} s/pair)")
    print(f"speed-up:  {t_ref / t_ours:.1f}x (target >= 3x)")

    words = ~model.special_mask(b['input_ids'], b['attention_mask'])
    for j, name in enumerate(('reference (map from the last forward, as released)', 'reference, map from the final α (same quantity as ours)')):
        ri, rt = as_maps(model, b, ref['image'][j], ref['text'][j])
        ci, ct = pearson(ours.image, ri), pearson(ours.text, rt, words)
        print(f"Pearson r vs {name}: image mean {ci.mean():.4f} min {ci.min():.4f}; text mean {ct.mean():.4f} min {ct.min():.4f}")

    t_floor = floor_time(model, b, layers, steps, S)
    print(f"floor:     {t_floor:7.2f} s  ({t_floor / a.pairs:.3f} s/pair): ours is {t_ours / t_floor:.2f}x its floor")


if __name__ == '__main__':
    main()
