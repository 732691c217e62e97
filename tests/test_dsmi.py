"Edge cases and known answers of xaimm_nb.explain.dsmi (fiedler, dsmi, dsmi_grad, dsmi_grad_attn) that would clutter the notebook."
import os
os.environ.setdefault('HF_HUB_OFFLINE', '1'); os.environ.setdefault('TRANSFORMERS_OFFLINE', '1')
import pytest, timm, torch, torch.nn as nn, torch.nn.functional as F
import scipy.linalg as sl
from transformers import BertConfig, BertForSequenceClassification, CLIPConfig, CLIPModel
from xaimm_nb.explain.core import explain, hooks
from xaimm_nb.explain.attention import AttentionRecorder, mean_heads
from xaimm_nb.explain.dsmi import fiedler
from xaimm_nb.models.dual import CLIPAdapter, build_dual
from xaimm_nb.models.fusion import build_model
from xaimm_nb.test_utils import tiny_clip

torch.set_num_threads(1)
METHODS = ('dsmi', 'dsmi_grad', 'dsmi_grad_attn')




def clip_batch(n=3, size=32):
    ids = torch.randint(2, 100, (n, 7)); ids[:, 0] = 0
    eot = torch.tensor([6, 4, 5][:n]); ids[torch.arange(n), eot] = 1
    m = (torch.arange(7) <= eot[:, None]).long(); ids[m == 0] = 1
    return dict(images=torch.randn(n, 3, size, size), input_ids=ids, attention_mask=m)


def dual_batch():
    ids = torch.tensor([[2, 10, 11, 12, 3], [2, 13, 14, 3, 0]])
    return dict(images=torch.randn(2, 3, 32, 32), input_ids=ids, attention_mask=(ids > 0).long())


@pytest.fixture(scope='module')
def ad():
    torch.manual_seed(0); return CLIPAdapter(tiny_clip())


@pytest.fixture(scope='module')
def dual():
    torch.manual_seed(0); return build_dual('tiny', vocab_size=100).eval()


def generalised(f, m):
    "Reference: scipy's dense generalised solver on the masked tokens; the 2nd eigenvector, unit norm, largest entry positive."
    x = F.normalize(f[m].double(), dim=-1)
    W = (x @ x.T).clamp(min=0); W = W / W.max()
    D = torch.diag(W.sum(1))
    mu, V = sl.eigh((D - W).numpy(), D.numpy())                          # L v = mu D v, eigenvalues ascending
    u = torch.from_numpy(V[:, 1]); u = u / u.norm()
    v = torch.zeros(len(m), dtype=torch.float64); v[m] = u
    return v * v[v.abs().argmax()].sign(), mu


def test_matches_scipy_generalised_eigenproblem():
    torch.manual_seed(1)
    f = torch.randn(3, 12, 6) + 2 * torch.randn(3, 1, 6)          # a shared component keeps the graph connected
    m = torch.ones(3, 12, dtype=torch.bool); m[1, 9:] = False; m[2, [0, 5]] = False
    v = fiedler(f, m)
    for i in range(3):
        ref, mu = generalised(f[i], m[i])
        assert mu[1] - mu[0] > 1e-3 and mu[2] - mu[1] > 1e-3        # a unique Fiedler vector
        torch.testing.assert_close(v[i].double(), ref, atol=1e-5, rtol=0)


def test_two_cliques_one_edge_split_by_sign():
    torch.manual_seed(0)
    e = torch.eye(10)
    f = torch.stack([e[0]]*4 + [e[0] + .3*e[2], e[1] + .3*e[2]] + [e[1]]*4) + .01*torch.randn(10, 10)
    v = fiedler(f[None])[0]
    assert (v[:5] > 0).all() and (v[5:] < 0).all() or (v[:5] < 0).all() and (v[5:] > 0).all()
    p = torch.randperm(10)
    torch.testing.assert_close(fiedler(f[p][None])[0], v[p])             # permutation-equivariant, sign convention included
    torch.testing.assert_close(fiedler(3 * f[None])[0], v)              # rows are normalised: scale does not matter


def test_pads_and_batch_independence():
    torch.manual_seed(0)
    f, m = torch.randn(4, 9, 5), torch.ones(4, 9, dtype=torch.bool)
    m[1, 6:] = False; m[3, :2] = False
    v = fiedler(f, m)
    g = f.clone(); g[~m] = 1e4 * torch.randn(int((~m).sum()), 5)      # whatever the pads hold
    torch.testing.assert_close(fiedler(g, m), v)
    assert (v[~m] == 0).all()
    for i in range(4): torch.testing.assert_close(fiedler(f[i:i+1, m[i]])[0], v[i, m[i]])
    torch.testing.assert_close(v.norm(dim=1), torch.ones(4))
    assert v.dtype == torch.float32 and fiedler(f.double()).dtype == torch.float64


def test_degenerate_graphs_give_zeros():
    e = torch.eye(6)
    assert (fiedler(torch.zeros(2, 5, 4)) == 0).all()                  # no edges
    assert (fiedler(torch.ones(1, 5, 4)) == 0).all()                   # identical tokens
    assert (fiedler(torch.stack([e[0]]*2 + [e[1]]*2 + [e[2]]*2)[None]) == 0).all()  # three components: no unique cut
    assert fiedler(torch.randn(3, 1, 4)).shape == (3, 1) and (fiedler(torch.randn(3, 1, 4)) == 0).all()
    two = fiedler(torch.stack([e[0]]*2 + [e[1]]*3)[None])[0]            # two components: the cut between them
    assert (two[:2] > 0).all() and (two[2:] < 0).all()
    assert fiedler(torch.randn(2, 5, 4)).isfinite().all()


def test_fiedler_errors():
    with pytest.raises(ValueError, match=r"features has shape \(5, 4\); expected \[B,n,d\]"): fiedler(torch.randn(5, 4))
    with pytest.raises(ValueError, match=r"mask has shape \(2, 4\) but features has 2 samples of 5 tokens"): fiedler(torch.randn(2, 5, 3), torch.ones(2, 4))


@pytest.mark.parametrize('meth', METHODS)
def test_clip_maps(ad, meth):
    b = clip_batch()
    e = explain(ad, b, meth)
    assert e.image.shape == (3, 32, 32) and e.text.shape == (3, 7) and e.meta['grid'] == (4, 4)
    assert e.image.isfinite().all() and (e.image >= 0).all() and (e.text >= 0).all()
    assert (e.text[ad.special_mask(b['input_ids'], b['attention_mask'])] == 0).all()
    assert (e.meta['n_forward'], e.meta['n_backward']) == (1, int(meth != 'dsmi'))
    assert torch.equal(e.text, explain(ad, b, meth).text)


def test_grad_attn_is_chefer_weights_times_fiedler(ad):
    torch.manual_seed(0); b = clip_batch()
    e = explain(ad, b, 'dsmi_grad_attn', layers={'text': 0})
    assert e.image is None and e.meta['layers'] == dict(text=[0])
    feats = []
    with AttentionRecorder(ad) as rec, hooks(ad.text_blocks[0], forward=lambda m, i, o: feats.append(o[0] if isinstance(o, tuple) else o)):
        y = ad(b['images'], b['input_ids'], b['attention_mask'])
    A = mean_heads(rec.attn['text'][0], rec.gradients(y.diagonal().sum())['text'][0])
    k = ~ad.special_mask(b['input_ids'], b['attention_mask'])
    r = (A @ fiedler(feats[0], k).abs()[..., None])[..., 0] * k
    torch.testing.assert_close(e.text, r.detach())
    assert (e.text > 0).any()


def test_cls_pooled_last_block_adds_nothing_to_grad_variants(ad):
    b = clip_batch()
    for meth in ('dsmi_grad', 'dsmi_grad_attn'):
        e = explain(ad, b, meth, layers=-1)
        assert (e.image == 0).all() and (e.text == 0).all()             # only the CLS / EOT row of the gradient is non-zero
        assert (explain(ad, b, meth, layers=0).image > 0).any()
    assert (explain(ad, b, 'dsmi', layers=-1).image > 0).all()


def test_layers_sum(dual):
    b = dual_batch()
    one = [explain(dual, b, 'dsmi_grad', layers={'image': i}).image for i in range(4)]
    torch.testing.assert_close(explain(dual, b, 'dsmi_grad', layers={'image': None}).image, sum(one))
    torch.testing.assert_close(explain(dual, b, 'dsmi', layers=[-1, 1, 0]).text, explain(dual, b, 'dsmi', layers=[0, 1]).text)  # duplicates count once


@pytest.mark.parametrize('patch,grid', [(32, 7), (16, 14)])
def test_grids_224(patch, grid):
    torch.manual_seed(0)
    d = build_dual('tiny', patch=patch, depth=1, width=32, size=224, vocab_size=100).eval()
    v = timm.create_model('vit_tiny_patch16_224', patch_size=patch, depth=1, embed_dim=32, num_heads=2, num_classes=3).eval()
    b = dict(dual_batch(), images=torch.randn(2, 3, 224, 224))
    for meth in METHODS:
        e = explain(d, b, meth)
        assert e.image.shape == (2, 224, 224) and e.meta['grid'] == (grid, grid) and e.image.isfinite().all()
        e = explain(v, b['images'], meth, target=1)
        assert e.image.shape == (2, 224, 224) and e.text is None and e.meta['grid'] == (grid, grid) and (e.image >= 0).all()


def test_text_classifier_and_fusion_modes():
    torch.manual_seed(0)
    bert = BertForSequenceClassification(BertConfig(vocab_size=100, hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                                                    intermediate_size=37, num_labels=3, attn_implementation='eager')).eval()
    ids = torch.tensor([[2, 10, 11, 12, 3, 0], [2, 13, 14, 15, 16, 3]]); m = (ids > 0).long()
    for meth in METHODS:
        e = explain(bert, dict(input_ids=ids, attention_mask=m), meth)
        assert e.image is None and e.text.shape == (2, 6)
        assert (e.text[0, [0, 4, 5]] == 0).all() and (e.text[1, [0, 5]] == 0).all() and (e.text[:, 1:4] > 0).any()
    b = dual_batch()
    mt = build_model('tiny', n_classes=3, mode='text').eval()
    e = explain(mt, b, 'dsmi_grad')
    assert e.image is None and e.text.shape == (2, 5) and e.meta['layers'] == dict(text=[0, 1])


def test_errors(dual):
    b = dual_batch()
    with pytest.raises(ValueError, match="layer index -5 is out of range: the image tower of DualEncoder has 4 attention layers; use 0..3"):
        explain(dual, b, 'dsmi_grad', layers=-5)
    with pytest.raises(TypeError, match=r"layers=1.5: use a block index"): explain(dual, b, 'dsmi', layers=1.5)
    with pytest.raises(ValueError, match=r"layers names towers \['txt'\] but DualEncoder has transformer towers \['image', 'text'\]"):
        explain(dual, b, 'dsmi', layers={'txt': 0})
    with pytest.raises(ValueError, match="has 128 positions; truncate"):
        explain(dual, dict(b, input_ids=torch.ones(2, 129, dtype=torch.long), attention_mask=torch.ones(2, 129, dtype=torch.long)), 'dsmi')
    with pytest.raises(ValueError, match="no transformer blocks whose outputs DSMI can read"):
        explain(nn.Sequential(nn.Conv2d(3, 4, 3), nn.AdaptiveAvgPool2d(1), nn.Flatten()).eval(), torch.randn(2, 3, 8, 8), 'dsmi')
    with pytest.raises(ValueError, match="none of MultimodalClassifier's transformer blocks ran"):
        explain(build_model('tiny', n_classes=3, mode='image').eval(), b, 'dsmi')
    sd = build_dual('tiny', vocab_size=100).eval(); sd.text_encoder.model.set_attn_implementation('sdpa')
    for meth in ('dsmi_grad', 'dsmi_grad_attn'):
        with pytest.raises(ValueError, match="model has no attention outputs.*'sdpa'"): explain(sd, b, meth)
    assert explain(sd, b, 'dsmi').text.shape == (2, 5)
    with pytest.raises(ValueError, match="explained on its pairs"): explain(dual, b, 'dsmi_grad', target=0)
