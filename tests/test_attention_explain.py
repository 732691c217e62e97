"Edge cases and known answers of xaimm_nb.explain.attention (AttentionRecorder, rollout, chefer) that would clutter the notebook."
import os
os.environ.setdefault('HF_HUB_OFFLINE', '1'); os.environ.setdefault('TRANSFORMERS_OFFLINE', '1')
import pytest, timm, torch, torch.nn as nn, torch.nn.functional as F
from transformers import BertConfig, BertModel, CLIPConfig, CLIPModel
from xaimm_nb.explain.core import explain, methods
from xaimm_nb.explain.attention import (AttentionRecorder, attention_layers, rollout_relevance, self_relevance, mean_heads,
                                        co_attention, layer_index, _bar)
from xaimm_nb.models.dual import CLIPAdapter, build_dual
from xaimm_nb.models.fusion import build_model
from xaimm_nb.test_utils import tiny_clip




def clip_batch(n=3, size=32):
    ids = torch.randint(2, 100, (n, 7)); ids[:, 0] = 0
    eot = torch.tensor([6, 4, 5, 6, 3][:n]); ids[torch.arange(n), eot] = 1
    m = (torch.arange(7) <= eot[:, None]).long(); ids[m == 0] = 1
    return dict(images=torch.randn(n, 3, size, size), input_ids=ids, attention_mask=m)


@pytest.fixture(scope='module')
def ad():
    torch.manual_seed(0); return CLIPAdapter(tiny_clip())


def test_registered():
    assert {'rollout', 'chefer'} <= set(methods())


def test_recorded_maps_are_hf_attentions(ad):
    b = clip_batch()
    clip = tiny_clip(); clip.set_attn_implementation('eager')
    with torch.no_grad(), AttentionRecorder(clip) as rec:
        o = clip(input_ids=b['input_ids'], pixel_values=b['images'], attention_mask=b['attention_mask'], output_attentions=True)
    for a, r in zip(o.vision_model_output.attentions, rec.attn['image']): torch.testing.assert_close(a, r)
    for a, r in zip(o.text_model_output.attentions, rec.attn['text']): torch.testing.assert_close(a, r)
    bert = BertModel(BertConfig(vocab_size=100, hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=37,
                                attn_implementation='eager')).eval()
    with torch.no_grad(), AttentionRecorder(bert) as rec:
        o = bert(input_ids=b['input_ids'], attention_mask=b['attention_mask'], output_attentions=True)
    assert len(rec.attn['text']) == 2
    for a, r in zip(o.attentions, rec.attn['text']): torch.testing.assert_close(a, r)


def test_recorded_timm_maps_are_softmax_qk():
    torch.manual_seed(0)
    v = timm.create_model('vit_tiny_patch16_224', img_size=32, patch_size=8, depth=2, embed_dim=32, num_heads=2, num_classes=0).eval()
    x, ins = torch.randn(2, 3, 32, 32), []
    h = v.blocks[1].attn.register_forward_hook(lambda m, i, o: ins.append(i[0]))
    try:
        with torch.no_grad(), AttentionRecorder(v) as rec: v(x)
    finally: h.remove()
    at = v.blocks[1].attn
    q, k, _ = at.qkv(ins[0]).reshape(2, 17, 3, 2, 16).permute(2, 0, 3, 1, 4)
    torch.testing.assert_close(rec.attn['image'][1], (q @ k.transpose(-1, -2) * at.scale).softmax(-1))


def test_fused_attn_restored_after_error():
    v = timm.create_model('vit_tiny_patch16_224', img_size=32, patch_size=8, depth=1, embed_dim=32, num_heads=2).eval()
    v.blocks[0].attn.fused_attn = True
    with pytest.raises(RuntimeError, match='boom'):
        with AttentionRecorder(v):
            assert v.blocks[0].attn.fused_attn is False
            raise RuntimeError('boom')
    assert v.blocks[0].attn.fused_attn is True


def test_recorder_errors(ad):
    with pytest.raises(ValueError, match="kind='bert' is not known"): AttentionRecorder(ad, kind='bert')
    with pytest.raises(ValueError, match="model has no attention outputs.*gradcam"): AttentionRecorder(nn.Sequential(nn.Conv2d(3, 3, 1)))
    with pytest.raises(ValueError, match="model has no attention outputs.*'sdpa'.*set_attn_implementation"): AttentionRecorder(tiny_clip())
    b = clip_batch()
    with pytest.raises(RuntimeError, match="needs the forward pass to run with gradients"):
        with torch.no_grad(), AttentionRecorder(ad, grad=True): ad(b['images'], b['input_ids'], b['attention_mask'])


def test_grad_hooks_match_gradients(ad):
    b = clip_batch()
    with AttentionRecorder(ad, grad=True) as rec: s = ad(b['images'], b['input_ids'], b['attention_mask']).diagonal().sum()
    s.backward(retain_graph=True)
    hooked = {k: [g.clone() for g in v] for k, v in rec.grads.items()}
    ad.zero_grad()
    for k, v in rec.gradients(s).items():
        for g, h in zip(v, hooked[k]): torch.testing.assert_close(g, h)


def test_rollout_rows_sum_to_one_and_start_layer():
    torch.manual_seed(0)
    maps = [torch.rand(2, 3, 5, 5).softmax(-1) for _ in range(4)]
    for s in (0, 2, -1): torch.testing.assert_close(rollout_relevance(maps, s).sum(-1), torch.ones(2, 5))
    A = [(m.mean(1) + torch.eye(5)) / 2 for m in maps]  # rownorm(mean_h A + I) = (A + I)/2 for stochastic A
    torch.testing.assert_close(rollout_relevance(maps, 2), A[3] @ A[2])


def test_chefer_identity_without_gradients():
    maps = [torch.rand(2, 3, 5, 5).softmax(-1) for _ in range(3)]
    torch.testing.assert_close(self_relevance(maps, [torch.zeros_like(m) for m in maps]), torch.eye(5).expand(2, 5, 5))
    g = [-torch.ones_like(m) for m in maps]  # only negative contributions: clamped away
    torch.testing.assert_close(self_relevance(maps, g), torch.eye(5).expand(2, 5, 5))


def test_chefer_identity_when_attention_cannot_matter():
    "Zero value projections: the image tower's attention output is 0 whatever A is, so all its gradients are 0 and R = I."
    torch.manual_seed(0); clip = tiny_clip(); ad = CLIPAdapter(clip)
    with torch.no_grad():
        for l in clip.vision_model.encoder.layers: l.self_attn.v_proj.weight.zero_(); l.self_attn.v_proj.bias.zero_()
    e = explain(ad, clip_batch(), 'chefer', start_layer=0)
    assert e.image.abs().max() == 0 and e.text.abs().max() > 0


def test_bar_and_co_attention():
    R = torch.eye(3)[None] + torch.tensor([[[0., 2, 2], [0, 0, 0], [1, 0, 0]]])
    torch.testing.assert_close(_bar(R)[0], torch.tensor([[1., .5, .5], [0, 1, 0], [1, 0, 1]]))
    torch.manual_seed(0)
    Rtt, Rii = torch.eye(4)[None] + torch.rand(1, 4, 4), torch.eye(3)[None]
    Ati, Ait = torch.rand(1, 4, 3), torch.rand(1, 3, 4)
    Rti, Rit = co_attention(Rtt, Rii, Ati, Ait)
    torch.testing.assert_close(Rti, _bar(Rtt).mT @ Ati)          # R̄ii = I for an attention-free image tower
    torch.testing.assert_close(Rit, Ait @ _bar(Rtt))
    Rti0, _ = co_attention(Rtt, Rii, Ati, Ait, normalise=False)
    torch.testing.assert_close(Rti0, Rtt.mT @ Ati)


def test_layer_index():
    assert layer_index(-1, 4) == 3 and layer_index(2, 4) == 2
    for i in (4, -5, 1.0):
        with pytest.raises(ValueError, match="out of range"): layer_index(i, 4)


def test_dual_errors_and_grids(ad):
    b = clip_batch()
    with pytest.raises(ValueError, match="layer index 2 is out of range: the image tower of CLIPAdapter has 2"):
        explain(ad, b, 'chefer', start_layer=2)
    with pytest.raises(ValueError, match="input_ids'] has 20 tokens but CLIPAdapter's text tower has 16 positions"):
        explain(ad, dict(b, input_ids=torch.ones(3, 20, dtype=torch.long), attention_mask=torch.ones(3, 20, dtype=torch.long)), 'rollout')
    with pytest.raises(ValueError, match="explained on its pairs"): explain(ad, b, 'rollout', target=torch.tensor([1, 0, 2]))
    for p, g in ((32, 7), (16, 14)):
        c = CLIPAdapter(tiny_clip(224, p, layers=1))
        e = explain(c, dict(b, images=torch.randn(3, 3, 224, 224)), 'chefer')
        assert e.image.shape == (3, 224, 224) and e.meta['grid'] == (g, g) and (e.image >= 0).all()


def test_chefer_dual_batch_is_per_pair(ad):
    "One backward over the diagonal gives each pair the map it gets alone."
    b = clip_batch()
    e = explain(ad, b, 'chefer')
    for i in range(3):
        ei = explain(ad, {k: v[i:i+1] for k, v in b.items()}, 'chefer')
        torch.testing.assert_close(ei.image[0], e.image[i], atol=1e-5, rtol=1e-4)
        torch.testing.assert_close(ei.text[0], e.text[i], atol=1e-5, rtol=1e-4)
    assert e.meta['n_backward'] == 1 and all(p.grad is None for p in ad.parameters())


def test_dual_encoder_maps():
    torch.manual_seed(0); d = build_dual('tiny', depth=2, size=64).eval()
    ids = torch.tensor([[2, 10, 11, 12, 3], [2, 13, 3, 0, 0]])
    b = dict(images=torch.randn(2, 3, 64, 64), input_ids=ids, attention_mask=(ids > 0).long())
    for m in ('chefer', 'rollout'):
        e = explain(d, b, m)
        assert e.image.shape == (2, 64, 64) and e.meta['grid'] == (8, 8) and e.text.shape == (2, 5)
        assert (e.text[ids <= 3] == 0).all() and (e.text[ids > 3] > 0).all()


def test_fusion_classifier_chefer_is_class_specific_rollout_is_not():
    torch.manual_seed(0); mm = build_model('tiny', n_classes=3, vocab_size=100).eval()
    ids = torch.randint(4, 100, (2, 6)); ids[1, 4:] = 0
    b = dict(images=torch.randn(2, 3, 32, 32), input_ids=ids, attention_mask=(ids > 0).long())
    c0, c1 = explain(mm, b, 'chefer', target=0), explain(mm, b, 'chefer', target=1)
    r0, r1 = explain(mm, b, 'rollout', target=0), explain(mm, b, 'rollout', target=1)
    assert not torch.allclose(c0.image, c1.image) and not torch.allclose(c0.text, c1.text)
    torch.testing.assert_close(r0.image, r1.image); torch.testing.assert_close(r0.text, r1.text)
    assert (c0.text[1, 4:] == 0).all() and c0.meta['layers'] == dict(text=2, i2t=1, t2i=1)


def test_fusion_classifier_known_formula():
    "CNN image tower: R^ii = I, so image relevance = 1/N + mean_t(R̄ttᵀ·Ā_ti), text = mean_t(R_tt) + mean_i(Ā_it·R̄tt)."
    torch.manual_seed(0); mm = build_model('tiny', n_classes=3, vocab_size=100).eval()
    ids = torch.randint(4, 100, (2, 6)); ids[1, 4:] = 0; m = (ids > 0).long()
    b = dict(images=torch.randn(2, 3, 32, 32), input_ids=ids, attention_mask=m)
    e = explain(mm, b, 'chefer', target=2)
    with AttentionRecorder(mm) as rec: y = mm(b['images'], ids, m)
    G = rec.gradients(y[:, 2].sum())
    Rtt = self_relevance(rec.attn['text'], G['text'])
    Ati, Ait = mean_heads(rec.attn['t2i'][0], G['t2i'][0]), mean_heads(rec.attn['i2t'][0], G['i2t'][0])
    pt = m / m.sum(1, keepdim=True); N = Ati.shape[-1]
    img = 1/N + torch.einsum('bt,btn->bn', pt.float(), _bar(Rtt).mT @ Ati)
    txt = torch.einsum('bt,bts->bs', pt.float(), Rtt) + (Ait @ _bar(Rtt)).mean(1)
    g = mm.image_encoder.grid
    torch.testing.assert_close(e.image, F.interpolate(img.reshape(2, 1, *g), size=(32, 32), mode='bilinear')[:, 0].detach())
    torch.testing.assert_close(e.text, (txt * m).detach())


def test_vit_classifier_avg_pool_readout():
    v = timm.create_model('vit_tiny_patch16_224', img_size=32, patch_size=8, depth=1, embed_dim=32, num_heads=2, num_classes=3,
                          global_pool='avg', class_token=False).eval()
    v.pretrained_cfg['input_size'] = (3, 32, 32)
    x = torch.randn(2, 3, 32, 32)
    e = explain(v, x, 'rollout')
    with torch.no_grad(), AttentionRecorder(v) as rec: v(x)
    r = rollout_relevance(rec.attn['image']).mean(1)
    torch.testing.assert_close(e.image, F.interpolate(r.reshape(2, 1, 4, 4), size=(32, 32), mode='bilinear')[:, 0])
