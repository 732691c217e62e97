"Edge cases and known answers of xaimm_nb.explain.m2ib that would clutter the notebook."
import os, sys
from pathlib import Path
os.environ.setdefault('HF_HUB_OFFLINE', '1'); os.environ.setdefault('TRANSFORMERS_OFFLINE', '1')
import pytest, torch, torch.nn.functional as F
from transformers import CLIPConfig, CLIPModel
from xaimm_nb.explain.core import explain, methods, hooks, check_batch
from xaimm_nb.explain.m2ib import ALPHA0, bottleneck_kl, noise_stats, default_layer, _after, _capture
from xaimm_nb.models.dual import CLIPAdapter, build_dual
from xaimm_nb.models.fusion import build_model

sys.path.insert(0, str(Path(__file__).parents[1] / 'benchmarks'))
from m2ib_speed import reference_m2ib, draw_noise, as_maps  # the one-pair-at-a-time reference algorithm
from xaimm_nb.test_utils import tiny_clip

torch.set_num_threads(1)




def clip_batch(n=3, size=32):
    g = torch.Generator().manual_seed(1)
    ids = torch.randint(2, 100, (n, 7), generator=g); ids[:, 0] = 0
    eot = torch.tensor([6, 4, 5, 6, 3][:n]); ids[torch.arange(n), eot] = 1
    m = (torch.arange(7) <= eot[:, None]).long(); ids[m == 0] = 1
    return dict(images=torch.randn(n, 3, size, size, generator=g), input_ids=ids, attention_mask=m)


@pytest.fixture(scope='module')
def ad():
    torch.manual_seed(0); return CLIPAdapter(tiny_clip(layers=3))


def test_registered():
    assert 'm2ib' in methods()


def test_deterministic_under_a_seed(ad):
    b = clip_batch()
    e1, e2, e3 = (explain(ad, b, 'm2ib', steps=3, seed=s) for s in (7, 7, 8))
    assert torch.equal(e1.image, e2.image) and torch.equal(e1.text, e2.text)
    assert not torch.equal(e1.image, e3.image) and not torch.equal(e1.text, e3.text)


def test_lambda_at_init(ad):
    "α₀ = 5 → λ ≈ 0.9933; with lr=0 the map is the capacity Σ_d KL at α₀ of block k's output."
    assert abs(torch.sigmoid(torch.tensor(ALPHA0)).item() - 0.9933) < 1e-4
    b = clip_batch()
    e = explain(ad, b, 'm2ib', lr=0., layer=1, modality='text')
    feats = []
    with torch.no_grad(), hooks(ad.text_blocks[1], forward=lambda m, i, o: feats.append(o)): ad.encode_text(b['input_ids'], b['attention_mask'])
    lam = 0.9933071490757153
    cap = (.5*((lam*feats[0])**2 + (1-lam)**2 - 1) - torch.log(torch.tensor(1-lam))).sum(-1)
    cap = cap.masked_fill(ad.special_mask(b['input_ids'], b['attention_mask']), 0)
    torch.testing.assert_close(e.text, cap, rtol=1e-4, atol=1e-3)
    assert e.image is None and e.meta['layer'] == dict(text=1)


@pytest.mark.parametrize('patch,grid', [(32, 7), (16, 14)])
def test_vit_b_grids(patch, grid):
    torch.manual_seed(0)
    c = CLIPAdapter(tiny_clip(224, patch, layers=2))
    b = clip_batch(size=224)
    e = explain(c, b, 'm2ib', steps=2, n_samples=2)
    assert e.image.shape == (3, 224, 224) and e.text.shape == (3, 7) and e.meta['grid'] == (grid, grid)
    for m in (e.image, e.text): assert torch.isfinite(m).all() and (m >= 0).all()
    assert e.text[b['attention_mask'] == 0].abs().sum() == 0 and e.text[:, 0].abs().sum() == 0   # pads, SOT
    assert e.text[torch.arange(3), c.eot(b['input_ids'])].abs().sum() == 0                     # EOT
    assert e.image.flatten(1).std(1).gt(0).all()


def test_batched_equals_one_pair_at_a_time(ad):
    "Same noise: our batched, cached optimisation gives the reference's per-pair maps (read from the final α), padded captions included."
    b = check_batch(ad, clip_batch(3))
    e = explain(ad, b, 'm2ib', steps=4, n_samples=3, seed=5)
    k = e.meta['layer']
    n, T = 1 + ad.grid[0]*ad.grid[1], b['input_ids'].shape[1]
    ri = reference_m2ib(ad, b, 'image', k['image'], draw_noise((3, 3, n, 32), 4, 5, 'cpu'))[1]
    rt = reference_m2ib(ad, b, 'text', k['text'], draw_noise((3, 3, T, 32), 4, 6, 'cpu'))[1]
    ri, rt = as_maps(ad, b, ri, rt)
    torch.testing.assert_close(e.image, ri, rtol=1e-3, atol=1e-3)
    torch.testing.assert_close(e.text, rt, rtol=1e-3, atol=1e-3)


def test_dual_encoder_and_pads():
    torch.manual_seed(0)
    d = build_dual('tiny', depth=2).eval()
    ids = torch.tensor([[2, 10, 11, 12, 3], [2, 13, 3, 0, 0]])
    b = dict(images=torch.randn(2, 3, 32, 32), input_ids=ids, attention_mask=(ids > 0).long())
    e = explain(d, b, 'm2ib', steps=3, noise='empirical')
    assert e.meta['layer'] == dict(image=0, text=0)
    assert torch.isfinite(e.image).all() and (e.image >= 0).all() and torch.isfinite(e.text).all()
    assert e.text[d.special_mask(ids, b['attention_mask'])].abs().sum() == 0 and e.text[0, 1:4].gt(0).all()


def test_beta_compresses(ad):
    "A larger β lets less through: the total capacity falls."
    b = clip_batch()
    lo, hi = (explain(ad, b, 'm2ib', beta=v, modality='image') for v in (.01, 10.))
    assert (hi.image.flatten(1).sum(1) < lo.image.flatten(1).sum(1)).all()


def test_kl_and_noise_stats():
    x = torch.randn(2, 5, 4) * 2 + 3
    mask = torch.tensor([[1, 1, 1, 0, 0], [1, 1, 1, 1, 1]])
    mu, s = noise_stats(x, mask, 'empirical')
    torch.testing.assert_close(mu[0, 0], x[0, :3].mean(0)); torch.testing.assert_close(s[1, 0], x[1].std(0, unbiased=False))
    a = torch.randn(2, 5, 4) * 3
    lam = torch.sigmoid(a); xs = (x - mu) / s
    torch.testing.assert_close(bottleneck_kl(a, x, mu, s), .5*((lam*xs)**2 + (1-lam)**2 - 1 - torch.log((1-lam)**2)), rtol=1e-4, atol=1e-4)
    assert (bottleneck_kl(a, x, mu, s) >= 0).all()
    assert [default_layer(n) for n in (3, 6, 12)] == [1, 4, 9]


def test_blocks_restored_after_an_error(ad):
    blocks, b = ad.image_blocks, clip_batch()
    _, x, tup = _capture(blocks, 1, lambda: ad.encode_image(b['images']))
    with pytest.raises(RuntimeError, match='boom'):
        with _after(blocks, 1, lambda: (_ for _ in ()).throw(RuntimeError('boom')), tup): ad.encode_image(b['images'])
    assert not any('forward' in m.__dict__ for m in blocks) and not blocks[1]._forward_hooks


def test_clear_errors(ad):
    b = clip_batch()
    with pytest.raises(ValueError, match="m2ib explains dual encoders"):
        mm = build_model('tiny', n_classes=3, vocab_size=100).eval()
        explain(mm, dict(b, images=torch.randn(3, 3, 32, 32)), 'm2ib')
    long = torch.ones(3, 20, dtype=torch.long)
    with pytest.raises(ValueError, match="20 tokens but CLIPAdapter's text tower has 16 positions"):
        explain(ad, dict(b, input_ids=long, attention_mask=long), 'm2ib')
    with pytest.raises(ValueError, match="layer index 3 is out of range: the image tower of CLIPAdapter has 3"):
        explain(ad, b, 'm2ib', layer=3)
    with pytest.raises(ValueError, match="layer index -4 is out of range: the text tower"):
        explain(ad, b, 'm2ib', layer=(0, -4))
    with pytest.raises(ValueError, match="n_samples=0"):
        explain(ad, b, 'm2ib', n_samples=0)
    with pytest.raises(ValueError, match="explained on its pairs"):
        explain(ad, b, 'm2ib', target=1)
