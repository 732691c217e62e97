"Known-answer and edge-case tests of xaimm_nb.counterfactual (Growing Spheres, gradient counterfactuals, metrics)."
import math
import pytest, torch, torch.nn as nn
from xaimm_nb.counterfactual import (CFResult, sample_layer, growing_spheres, gradient_cf, cf_metrics, tv, _select, _enemy)


class Linear2(nn.Module):
    "Two-class logits [0, wᵀx + b]."
    def __init__(self, w, b=0.):
        super().__init__(); self.lin = nn.Linear(len(w), 1)
        self.lin.weight.data, self.lin.bias.data = w[None].clone(), torch.tensor([float(b)])
    def forward(self, x): s = self.lin(x)[:, 0]; return torch.stack([torch.zeros_like(s), s], 1)


class Const(nn.Module):
    "Always class 0, whatever the input."
    def __init__(self): super().__init__(); self.p = nn.Parameter(torch.zeros(1))
    def forward(self, x): return torch.tensor([[1., 0.]]).expand(len(x), 2) + 0 * self.p


class TinyConv(nn.Module):
    def __init__(self, k=3):
        super().__init__(); torch.manual_seed(0)
        self.c, self.h = nn.Conv2d(3, 4, 3, padding=1), nn.Linear(4 * 8 * 8, k)
    def forward(self, x): return self.h(torch.relu(self.c(x)).flatten(1))


@pytest.mark.parametrize('d', [1, 2, 7, 100, 3072, 20_000])
@pytest.mark.parametrize('a,b', [(0., 1.), (2., 3.), (5., 5.001)])
def test_sample_layer_radii(d, a, b):
    r = sample_layer(500, d, a, b, torch.Generator().manual_seed(0)).norm(dim=1)
    assert torch.isfinite(r).all() and r.min() >= a * (1 - 1e-5) and r.max() <= b * (1 + 1e-5)


def test_sample_layer_uniform_in_volume():
    g = torch.Generator().manual_seed(1)
    for d in (1, 3, 5):
        r = sample_layer(40000, d, 1., 2., g).norm(dim=1)
        for q in (1.25, 1.5, 1.75):  # CDF of the radius: (q^d - 1) / (2^d - 1)
            assert abs((r < q).float().mean() - (q**d - 1) / (2**d - 1)) < 0.01
        z = sample_layer(40000, d, 0., 1., g)
        assert z.mean(0).abs().max() < 0.02  # isotropic


@pytest.mark.parametrize('d', [2, 5, 10])
@pytest.mark.parametrize('seed', [0, 1, 2])
def test_gs_linear_known_distance(d, seed):
    torch.manual_seed(seed)
    w, b = torch.randn(d), float(torch.randn(()))
    m, x = Linear2(w, b), torch.randn(12, d)
    true = (x @ w + b).abs() / w.norm()
    r = growing_spheres(m, x, sparse=False, bounds=None, eta=3., n=2000, seed=seed)
    found = (r.cf - x).norm(dim=1)
    width = torch.tensor([s['width'] for s in r.meta['samples']])
    assert r.valid.all()
    assert (found >= true - 1e-4).all() and (found <= true + width + 1e-4).all()
    s = growing_spheres(m, x, sparse=True, bounds=None, eta=3., n=2000, seed=seed)
    assert s.valid.all()
    assert ((s.cf - x) != 0).sum(1).le(d).all()


def test_gs_target_class_and_seed():
    torch.manual_seed(0)
    m, x = nn.Linear(4, 3), torch.randn(8, 4)
    pred = m(x).argmax(1)
    t = (pred + 1) % 3
    r1 = growing_spheres(m, x, target=t, bounds=None, n=300, seed=3)
    r2 = growing_spheres(m, x, target=t, bounds=None, n=300, seed=3)
    assert torch.equal(r1.cf, r2.cf) and r1.valid.all() and torch.equal(r1.pred, t)
    assert torch.equal(r1.target, t) and torch.equal(r1.orig, pred)


def test_select_chunked_equals_one_by_one():
    torch.manual_seed(0)
    m = nn.Sequential(nn.Linear(20, 16), nn.Tanh(), nn.Linear(16, 3))
    z0 = torch.randn(20)
    orig = m(z0[None]).argmax(1)[0]
    r = growing_spheres(m, z0[None], bounds=None, sparse=False, n=500)
    assert r.valid.all()
    is_enemy = lambda z: _enemy(m(z).argmax(1), orig, torch.tensor(-1))
    delta = (r.cf[0] - z0)
    a, _ = _select(is_enemy, z0, delta.clone(), 1)
    for c in (3, 7, 64):
        b, _ = _select(is_enemy, z0, delta.clone(), c)
        assert torch.equal(a, b)
    assert is_enemy((z0 + a)[None]).all() and (a == 0).sum() > 0


def test_latent_identity_equals_pixel():
    m, x = TinyConv(), torch.rand(2, 3, 8, 8)
    enc, dec = (lambda v: v.flatten(1)), (lambda z: z.view(-1, 3, 8, 8))
    p = growing_spheres(m, x, eta=2., n=100, sparse=False)
    l = growing_spheres(m, x, encode=enc, decode=dec, eta=2., n=100, sparse=False)
    torch.testing.assert_close(p.cf, l.cf)


def test_patch_and_grey_spaces():
    m, x = TinyConv(), torch.rand(3, 1, 8, 8).expand(-1, 3, -1, -1).contiguous() * .8 + .1
    r = growing_spheres(m, x, grid=4, grey=True, n=200, sparse=False, bounds=None)
    d = r.cf - x
    assert torch.equal(d[:, 0], d[:, 1]) and torch.equal(d[:, 0], d[:, 2])  # grey: one change for all channels
    blocks = d[:, 0].unfold(1, 2, 2).unfold(2, 2, 2)  # [B,4,4,2,2] patches of the 4×4 grid
    torch.testing.assert_close(blocks, blocks[..., :1, :1].expand_as(blocks), atol=1e-6, rtol=0)  # constant within each patch ((x+δ)-x rounds)
    g = gradient_cf(m, x, grey=True)
    assert torch.equal(g.cf[:, 0], g.cf[:, 1]) and g.cf.min() >= 0 and g.cf.max() <= 1


def test_no_enemy_reports_invalid():
    r = growing_spheres(Const(), torch.rand(2, 5), bounds=None, n=50, max_layers=5, eta=1.)
    assert not r.valid.any() and torch.equal(r.cf, r.x)
    assert all(math.isnan(s['dist']) and s['layers'] == 5 for s in r.meta['samples'])
    g = gradient_cf(Const(), torch.rand(2, 5), target=1, lam_tv=0., steps=5)
    assert not g.valid.any() and g.meta['steps'] == [-1, -1]


def test_gradient_logistic_reaches_target():
    torch.manual_seed(1)
    w = torch.tensor([3., -2., 0.001, 2.5, -3., 0.002])
    m, x = Linear2(w), torch.rand(32, 6) * .6 + .2
    r = gradient_cf(m, x, target=1 - m(x).argmax(1), lam_l1=0.05, lam_tv=0., threshold=0.9, lr=0.05, steps=1000, patience=10**6)
    p = m(r.cf).softmax(1).gather(1, r.target[:, None])[:, 0]
    assert r.valid.all() and (p >= 0.9).all() and r.cf.min() >= 0 and r.cf.max() <= 1
    assert ((r.cf - x)[:, [2, 5]] == 0).all()  # |dCE/dx_i| <= |w_i| < lam_l1: those coordinates never move


def test_gradient_runner_up_and_threshold():
    torch.manual_seed(0)
    m, x = nn.Linear(5, 4), torch.rand(16, 5)
    lg = m(x)
    r = gradient_cf(m, x, lam_tv=0., lam_l1=0., bounds=None, steps=2000, lr=0.05, threshold=0.8)
    assert torch.equal(r.target, lg.topk(2, dim=1).indices[:, 1])
    assert r.valid.all() and (m(r.cf).softmax(1).gather(1, r.target[:, None]) >= 0.8).all()


def test_tv():
    d = torch.zeros(1, 1, 4, 4); d[..., 1, 1] = 1.
    assert tv(d).item() == 4.
    assert tv(torch.ones(2, 3, 5, 5)).eq(0).all()


def test_errors():
    m, x = TinyConv(), torch.rand(2, 3, 8, 8)
    pred = m(x).argmax(1)
    with pytest.raises(ValueError, match="already the model's prediction for sample 1"): growing_spheres(m, x, target=torch.stack([(pred[0] + 1) % 3, pred[1]]))
    with pytest.raises(ValueError, match=r"outside bounds=\(0.0, 1.0\)"): gradient_cf(m, x + 1)
    with pytest.raises(ValueError, match=r"outside bounds=\(-1, 0\)"): growing_spheres(m, x, bounds=(-1, 0))
    with pytest.raises(TypeError, match="float tensor"): gradient_cf(m, (x * 255).long())
    with pytest.raises(ValueError, match="one per sample"): gradient_cf(m, x, target=torch.tensor([0, 1, 2]))
    with pytest.raises(ValueError, match="both encode= and decode="): growing_spheres(m, x, decode=lambda z: z)
    with pytest.raises(ValueError, match="y_train"): cf_metrics(m, x, x, x_train=x)
    with pytest.raises(ValueError, match="no training sample of class"): cf_metrics(m, x, x, target=torch.tensor([2, 2]), x_train=x, y_train=torch.tensor([0, 1]))
    with pytest.raises(ValueError, match="out of range: the model has 3 classes"): cf_metrics(m, x, x, target=7)
    with pytest.raises(ValueError, match="out of range: the model has 3 classes"): gradient_cf(m, x, target=3)


def test_metrics_known_values():
    m = Linear2(torch.tensor([1., 0., 0.]))
    x = torch.tensor([[-1., 0., 0.], [-2., 0., 0.]])
    cf = torch.tensor([[1., 0., 0.], [-2., 1., 0.]])
    out = cf_metrics(m, x, cf, x_train=torch.tensor([[1., 0., 0.], [3., 0., 0.], [-5., 0., 0.]]), y_train=torch.tensor([1, 1, 0]), k=2)
    assert out['valid'].tolist() == [True, False]
    assert out['l0'].tolist() == [1, 1] and out['l1'].tolist() == [2., 1.] and out['l2'].tolist() == [2., 1.]
    torch.testing.assert_close(out['proximity'], torch.tensor([2/3, 1/3])); torch.testing.assert_close(out['sparsity'], torch.tensor([2/3, 2/3]))
    # plausibility: mean distance to the 2 nearest training points of the counterfactual's class (no target: its prediction)
    torch.testing.assert_close(out['plausibility'], torch.tensor([(0. + 2.) / 2, math.sqrt(9 + 1)]))
    torch.testing.assert_close(out['p_target'], torch.tensor([1 / (1 + math.exp(-1)), 1 / (1 + math.exp(-2))]))


def test_gradient_lam_schedule_unfreezes():
    "A threshold above every |gradient| freezes the search; halving lam_l1 per `patience` steps gets it going again."
    torch.manual_seed(0)
    m, x = Linear2(torch.tensor([.2, -.1, .05])), torch.rand(4, 3) * .2 + .4
    frozen = gradient_cf(m, x, target=1 - m(x).argmax(1), lam_l1=10., lam_tv=0., steps=200, patience=10**6)
    assert not frozen.valid.any() and torch.equal(frozen.cf, x)
    r = gradient_cf(m, x, target=1 - m(x).argmax(1), lam_l1=10., lam_tv=0., steps=2000, patience=10, lr=0.05)
    assert r.valid.all() and all(l < 0.2 for l in r.meta['lam_l1_final'])
