"Edge cases of xaimm_nb.explain.lime: agreement with the `lime` package, determinism, batching, model kinds, errors."
import os
os.environ.setdefault('HF_HUB_OFFLINE', '1'); os.environ.setdefault('TRANSFORMERS_OFFLINE', '1')
import numpy as np, pytest, torch, torch.nn as nn
from scipy.stats import spearmanr
from sklearn.metrics import pairwise_distances
from xaimm_nb.explain.core import explain, methods
from xaimm_nb.explain.lime import grid_segments, superpixels, weighted_ridge, _design, _kernel, _fill


class Toy(nn.Module):
    "Class-1 logit = mean of the image's top-right quarter + 1 if token 7 is attended (class 0: 0)."
    def __init__(self):
        super().__init__()
        self.image_encoder, self.text_encoder = nn.Identity(), nn.Module()
        self.text_encoder.embeddings = nn.Embedding(10, 1)
    def forward(self, images, input_ids, attention_mask):
        h, w = images.shape[-2:]
        l = images[:, :, :h//2, w//2:].mean((1, 2, 3)) + ((input_ids == 7) & attention_mask.bool()).float().sum(1)
        return torch.stack([torch.zeros_like(l), l], 1)


def toy_batch(B=3, S=16):
    g = torch.Generator().manual_seed(0)
    ids = torch.tensor([[2, 4, 7, 5, 3, 0], [2, 7, 5, 6, 4, 3], [2, 5, 4, 7, 3, 0]])[:B]
    tok = lambda r: ['[CLS]' if i == 2 else '[SEP]' if i == 3 else '[PAD]' if i == 0 else f'w{i}' for i in r.tolist()]
    return dict(images=torch.rand(B, 3, S, S, generator=g) + 1, input_ids=ids, attention_mask=(ids > 0).long(),
                tokens=[tok(r) for r in ids])


OPTS = dict(target=1, segmentation=grid_segments(16, 16, 2), hide_color=0., num_samples=200)


def test_registered():
    assert 'lime' in methods()


def test_known_answer_joint():
    b = toy_batch()
    e = explain(Toy(), b, 'lime', **OPTS)
    assert (e.meta['weights_image'].argmax(1) == 1).all()
    assert e.meta['weights_text'].argmax(1).tolist() == [2, 1, 3]
    pos = (b['input_ids'] == 7)
    assert (e.text[~pos] < .1 * e.text[pos].min()).all()  # the other tokens weigh ~0
    assert (e.text[:, 0] == 0).all() and (e.text[b['input_ids'] == 3] == 0).all()  # [CLS]/[SEP] are never features
    assert e.meta['n_features'].tolist() == [4 + 3, 4 + 4, 4 + 3]
    torch.testing.assert_close(e.meta['local_pred'], e.meta['intercept'] + e.meta['weights_image'].double().sum(1) + e.meta['weights_text'].double().sum(1))


def test_seeded_and_position_independent():
    b, m = toy_batch(), Toy()
    e1, e2 = explain(m, b, 'lime', seed=3, **OPTS), explain(m, b, 'lime', seed=3, **OPTS)
    assert torch.equal(e1.image, e2.image) and torch.equal(e1.text, e2.text)
    e3 = explain(m, b, 'lime', seed=4, **OPTS)
    assert not torch.equal(e1.meta['weights_image'], e3.meta['weights_image'])
    one = {k: v[1:2] for k, v in b.items()}  # sample 1 alone gets the same design as inside the batch
    e4 = explain(m, one, 'lime', seed=3, **OPTS)
    torch.testing.assert_close(e4.text, e1.text[1:2]); torch.testing.assert_close(e4.image, e1.image[1:2])


def test_batch_size_does_not_change_results():
    b, m = toy_batch(), Toy()
    e1, e2 = explain(m, b, 'lime', batch_size=7, **OPTS), explain(m, b, 'lime', batch_size=1000, **OPTS)
    torch.testing.assert_close(e1.image, e2.image); torch.testing.assert_close(e1.text, e2.text)
    assert e1.meta['n_forward'] == 1 + -(-3 * 200 // 7) and e2.meta['n_forward'] == 2
    e3 = explain(m, b, 'lime', **OPTS)  # default on a CPU: 16 perturbed inputs per call
    torch.testing.assert_close(e3.image, e1.image); assert e3.meta['n_forward'] == 1 + -(-3 * 200 // 16)


def test_surrogate_matches_lime_base():
    "Same design and predictions: our kernel + batched ridge = lime's LimeBase (cosine distance, kernel 0.25, Ridge(1))."
    from lime.lime_base import LimeBase
    tf = torch.tensor([[False, True, True, False], [False, True, False, False]])
    Z, S = _design([5, 3], tf, 100, 0)
    d = torch.tensor([5 + 2, 3 + 1], dtype=torch.float64)
    y = torch.rand(2, 100, generator=torch.Generator().manual_seed(1))
    w = _kernel(Z, d, .25)
    coef, icpt, r2 = weighted_ridge(Z, y, w)
    base = LimeBase(lambda x: np.sqrt(np.exp(-x**2 / .25**2)))
    for i, cols in enumerate([[0, 1, 2, 3, 4, 6, 7], [0, 1, 2, 6]]):
        z = Z[i][:, cols].numpy()
        assert (z[0] == 1).all()
        dist = pairwise_distances(z, z[:1], metric='cosine').ravel()
        np.testing.assert_allclose(w[i].numpy(), base.kernel_fn(dist), atol=1e-6)
        it, exp, score, lp = base.explain_instance_with_data(z, y[i].numpy()[:, None], dist, 0, 100000)
        ref = np.zeros(len(cols)); ref[[j for j, _ in exp]] = [v for _, v in exp]
        np.testing.assert_allclose(coef[i, cols].numpy(), ref, atol=1e-6)
        np.testing.assert_allclose([icpt[i], r2[i]], [it, score], atol=1e-6)
        assert coef[i, [c for c in range(Z.shape[2]) if c not in cols]].abs().max() == 0  # padding weighs 0


def test_mean_colour_fill_matches_lime():
    x = torch.rand(2, 3, 8, 8, generator=torch.Generator().manual_seed(0))
    seg = torch.stack([grid_segments(8, 8, 2), grid_segments(8, 8, 4)])
    f = _fill(x, seg, 16, None)
    for i in range(2):
        im, s = x[i].permute(1, 2, 0).numpy(), seg[i].numpy()
        ref = im.copy()
        for k in np.unique(s): ref[s == k] = im[s == k].mean(0)  # lime's fudged image
        np.testing.assert_allclose(f[i].permute(1, 2, 0).numpy(), ref, atol=1e-6)
    assert (_fill(x, seg, 16, -1.5) == -1.5).all()


def test_agrees_with_lime_package():
    "Image LIME on the same segmentation ranks superpixels like lime's LimeImageExplainer (different random draws)."
    from lime.lime_image import LimeImageExplainer
    torch.manual_seed(0)
    net = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(2), nn.Flatten(), nn.Linear(16, 3)).eval()
    x = torch.rand(1, 3, 16, 16)
    seg = grid_segments(16, 16, 4)
    e = explain(net, x, 'lime', target=0, segmentation=seg, num_samples=1000)
    fn = lambda ims: net(torch.from_numpy(ims).permute(0, 3, 1, 2).float()).softmax(-1).detach().numpy()
    r = LimeImageExplainer(random_state=0).explain_instance(x[0].permute(1, 2, 0).double().numpy(), fn, labels=(0,), top_labels=None,
                                                           num_samples=1000, segmentation_fn=lambda im: seg.numpy())
    ref = np.zeros(16); ref[[j for j, _ in r.local_exp[0]]] = [v for _, v in r.local_exp[0]]
    assert spearmanr(e.meta['weights_image'][0].numpy(), ref)[0] > .8


def test_image_only_and_text_only_models():
    from transformers import BertConfig, BertForSequenceClassification
    torch.manual_seed(0)
    net = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(4, 2)).eval()
    e = explain(net, torch.rand(2, 3, 16, 16), 'lime', segmentation='grid', num_samples=32)
    assert e.image.shape == (2, 16, 16) and e.text is None and e.meta['n_features'].tolist() == [64, 64]
    with pytest.raises(ValueError, match="modality='text'"): explain(net, torch.rand(1, 3, 16, 16), 'lime', modality='text')
    bert = BertForSequenceClassification(BertConfig(vocab_size=20, hidden_size=16, num_hidden_layers=1, num_attention_heads=2,
                                                    intermediate_size=16, num_labels=2)).eval()
    ids = torch.tensor([[2, 5, 6, 7, 3], [2, 8, 3, 0, 0]])
    e = explain(bert, dict(input_ids=ids, attention_mask=(ids > 0).long()), 'lime', num_samples=32)
    assert e.image is None and e.text.shape == (2, 5) and (e.text[1, 3:] == 0).all()
    assert e.meta['n_features'].tolist() == [5, 3]  # no token strings: every attended token is a feature


def test_sample_without_features_is_finite():
    b = toy_batch(1)
    b['tokens'] = [['[CLS]', '[SEP]', '[SEP]', '[SEP]', '[SEP]', '[PAD]']]
    e = explain(Toy(), b, 'lime', target=1, num_samples=16, modality='text')
    assert e.meta['n_features'].tolist() == [0] and (e.text == 0).all() and torch.isfinite(e.meta['intercept']).all()


def test_superpixels():
    rng = np.random.default_rng(0)
    img = rng.integers(0, 255, (2, 24, 24, 3), dtype=np.uint8)
    for m in ('quickshift', 'slic', 'grid'):
        s = superpixels(img, m)
        assert s.shape == (2, 24, 24) and s.dtype == torch.long
        for i in range(2): assert torch.equal(s[i].unique(), torch.arange(int(s[i].max()) + 1))  # labels 0..S-1
    assert torch.equal(superpixels(img, 'quickshift', seed=1), superpixels(img, 'quickshift', seed=1))
    assert torch.equal(superpixels(img, lambda im: (im[..., 0] > .5).astype(int))[0], torch.from_numpy((img[0, ..., 0] / 255 > .5).astype(int)))
    assert superpixels(img, grid_segments(24, 24, 3)).shape == (2, 24, 24)


def test_errors():
    b, m = toy_batch(), Toy()
    with pytest.raises(ValueError, match="segmentation='felz'"): explain(m, b, 'lime', segmentation='felz')
    with pytest.raises(ValueError, match=r"segmentation has shape \(8, 8\)"): explain(m, b, 'lime', segmentation=torch.zeros(8, 8))
    with pytest.raises(ValueError, match='num_samples must be a positive int'): explain(m, b, 'lime', num_samples=0)
    with pytest.raises(ValueError, match='batch_size'): explain(m, b, 'lime', batch_size=-1)
    with pytest.raises(ValueError, match=r"batch\['raw'\]"): explain(m, dict(b, raw=torch.zeros(3, 8, 8, 3, dtype=torch.uint8)), 'lime')
    with pytest.raises(ValueError, match='cells=0'): grid_segments(8, 8, 0)
