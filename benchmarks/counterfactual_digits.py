"""Counterfactuals for a digits CNN: Growing Spheres (patch space) and gradient counterfactuals on 100 held-out digits.

    python benchmarks/counterfactual_digits.py                                   # trains resnet10t + CBAM first (~2 CPU min)
    python benchmarks/counterfactual_digits.py --weights /tmp/best_digits.pt     # a model saved by digits_attention.py --save
    python benchmarks/counterfactual_digits.py --n 20 --fig /tmp/cf_overlay.png

Prints, per method, validity (target: >= 95 %), median L2 and L0 of x' - x (L0 in elements of the 3x32x32 input and
in pixels), median plausibility (L2 distance to the nearest training digit of the counterfactual's class) and CPU
seconds per counterfactual. One thread (see digits_attention.py).
"""
import argparse, os, time
os.environ.setdefault('OMP_NUM_THREADS', '1')
import torch
from xaimm_nb.core import save_fig
from xaimm_nb.models.digits import digits_data, train_cnn, evaluate, CNN
from xaimm_nb.counterfactual import growing_spheres, gradient_cf, cf_metrics, plot_cf

if __name__ == '__main__':
    p = argparse.ArgumentParser()
    p.add_argument('--weights', default=None)
    p.add_argument('--n', type=int, default=100)
    p.add_argument('--gs-n', type=int, default=200, help='points per Growing Spheres layer')
    p.add_argument('--fig', default=None)
    a = p.parse_args()
    torch.set_num_threads(1)
    dd = digits_data()
    if a.weights:
        ck = torch.load(a.weights, map_location='cpu', weights_only=True)
        model = CNN(ck['backbone'], ck['kind'], 10, ck['where']); model.load_state_dict(ck['state']); model.eval()
    else: model = train_cnn('resnet10t', 'cbam', dd, epochs=15)['model']
    acc, _ = evaluate(model, dd.x_test, dd.y_test)
    print(f"model: {model.backbone} + {model.kind}, held-out accuracy {acc:.4f}; {a.n} test digits", flush=True)
    x = dd.x_test[:a.n]
    rows = {}
    for name, fn in [('growing_spheres (patch 8x8, grey, sparse)', lambda: growing_spheres(model, x, grid=8, grey=True, n=a.gs_n)),
                     ('gradient (L1 + TV, grey)', lambda: gradient_cf(model, x, grey=True))]:
        c0 = time.process_time(); r = fn(); cpu = time.process_time() - c0
        m = cf_metrics(model, x, r.cf, r.target, dd.x_train, dd.y_train)
        v = m['valid']
        rows[name] = dict(validity=v.float().mean().item(), l2_median=m['l2'][v].median().item(), l0_median=m['l0'][v].float().median().item(),
                          l0_pixels_median=((r.cf - x).abs().amax(1) > 1/255)[v].flatten(1).sum(1).float().median().item(),
                          plausibility_median=m['plausibility'][v].median().item(), cpu_s_per_cf=cpu / len(x))
        print(name, {k: round(v, 4) for k, v in rows[name].items()}, flush=True)
        if a.fig and name.startswith('growing'): save_fig(plot_cf(model, r, n=4, layer='net.layer2'), a.fig.replace('.png', '_gs.png'))
        if a.fig and name.startswith('gradient'): save_fig(plot_cf(model, r, n=4, layer='net.layer2'), a.fig.replace('.png', '_grad.png'))
    ok = all(r['validity'] >= 0.95 for r in rows.values())
    print(f"validity >= 0.95 for both methods: {'PASS' if ok else 'FAIL'}")
