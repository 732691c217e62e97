"Edge cases of `explain.vlm`: the adapter protocol, keep, the bi-modal rules and the method engine on tiny HF models."
import os
os.environ.setdefault('HF_HUB_OFFLINE', '1')
import pytest, torch
from xaimm_nb.explain.core import explain
from xaimm_nb.explain.vlm import (vlm, kept_positions, co_rule, self_rule, bimodal_relevance, rollout_streams,
                                  read_out, image_map, ViltAdapter, LxmertAdapter)
from xaimm_nb.explain.attention import _bar
from xaimm_nb.test_utils import tiny_vilt, tiny_lxmert, tiny_vqa_batch, tiny_model, tiny_batch

@pytest.fixture(scope='module')
def b(): return tiny_vqa_batch()

@pytest.fixture(scope='module')
def lx(): return vlm(tiny_lxmert())

@pytest.fixture(scope='module')
def vi(): return vlm(tiny_vilt())

def test_method_registries_are_separate(b, lx):
    with pytest.raises(ValueError, match="explains VLM adapters"): explain(tiny_model(), tiny_batch(), 'raw_attention')
    with pytest.raises(ValueError, match="unknown method 'gradcam' for a VLM adapter"): explain(lx, b, 'gradcam')
    with pytest.raises(TypeError, match="has no option 'nope'"): explain(lx, b, 'chefer', nope=1)

def test_missing_batch_key_is_named(lx, b):
    with pytest.raises(ValueError, match=r"no \['visual_feats'\]"): explain(lx, {k: v for k, v in b.items() if k != 'visual_feats'}, 'rollout')

def test_keep_validation(b):
    sp = torch.zeros(2, 5, dtype=torch.bool)
    with pytest.raises(ValueError, match='integer tensor'): kept_positions(torch.ones(2, 2), sp)
    with pytest.raises(ValueError, match='integer tensor'): kept_positions(torch.ones(3, 2, dtype=torch.long), sp)
    with pytest.raises(ValueError, match='5 tokens'): kept_positions(torch.tensor([[0], [5]]), sp)

def test_duplicates_and_order(b):
    sp = torch.zeros(2, 5, dtype=torch.bool)
    assert kept_positions(torch.tensor([[3, 1], [4, 0]]), sp).tolist() == [[1, 3], [0, 4]]
    with pytest.raises(ValueError, match=r'\[1, 2\]'): kept_positions(torch.tensor([[3, 3], [4, 0]]), sp)

def test_vilt_rejects_padded_images_and_two_image_models(vi, b):
    with pytest.raises(ValueError, match='pixel_mask'): vi(dict(b, pixel_mask=torch.zeros_like(b['pixel_mask'])))
    m = tiny_vilt(images_and_text=True); m.config.num_images = 2
    with pytest.raises(ValueError, match='num_images=2'): ViltAdapter(m)

def test_vilt_image_tokens_are_the_models_own(vi, b):
    "The adapter's sorted image tokens reproduce the model's forward; the patch order does not matter to ViLT."
    m = vi.model
    y = m(input_ids=b['input_ids'], attention_mask=b['attention_mask'], token_type_ids=b['token_type_ids'],
          pixel_values=b['images']).logits
    torch.testing.assert_close(vi(b), y, atol=1e-5, rtol=1e-5)
    e, g = vi.embed(b)
    assert e.shape == (2, 17, 32) and g == (4, 4)
    # raster order: token 1 + r*4 + c is the patch at row r, column c (its conv output plus its position embedding)
    emb = m.vilt.embeddings
    p = emb.patch_embeddings(b['images']).flatten(2).transpose(1, 2) + emb.position_embeddings[:, 1:]
    torch.testing.assert_close(e[:, 1:], p)

def test_keep_really_drops_tokens(lx, vi, b):
    with vi.record() as ev: vi(b, dict(image=torch.tensor([[5], [6]])))
    assert {tuple(e.attn.shape[-2:]) for e in ev} == {(9 + 2, 9 + 2)} and all(e.out.shape[1] == 11 for e in ev)
    with lx.record() as ev: lx(b, dict(text=torch.tensor([[1], [1]]), image=torch.tensor([[0, 1, 2], [3, 4, 5]])))
    assert {(e.q, tuple(e.attn.shape[-2:])) for e in ev} == {('text', (4, 4)), ('text', (4, 3)), ('image', (3, 3)),
                                                              ('image', (3, 4))}
    y_drop = lx(b, dict(image=torch.tensor([[0], [1]])))
    assert not torch.allclose(y_drop, lx(b))

def test_co_rule_formula():
    g = torch.Generator().manual_seed(0)
    R_ss, R_qq = torch.eye(3) + torch.rand(1, 3, 3, generator=g), torch.eye(2) + torch.rand(1, 2, 2, generator=g)
    R_sq, R_qs, A = torch.rand(1, 3, 2, generator=g), torch.rand(1, 2, 3, generator=g), torch.rand(1, 3, 2, generator=g)
    ss, sq = co_rule(R_ss, R_sq, R_qq, R_qs, A)
    torch.testing.assert_close(sq, R_sq + _bar(R_ss).mT @ A @ _bar(R_qq))
    torch.testing.assert_close(ss, R_ss + A @ R_qs)
    _, sq0 = co_rule(R_ss, R_sq, R_qq, R_qs, A, normalise=False)
    torch.testing.assert_close(sq0, R_sq + R_ss.mT @ A @ R_qq)
    torch.testing.assert_close(self_rule(R_ss, R_sq, A @ R_qs)[1], R_sq + A @ R_qs @ R_sq)

def test_events_must_fit_the_layout(lx, b):
    with lx.record() as ev: lx(b)
    with pytest.raises(ValueError, match='does not fit'): bimodal_relevance(ev, None, dict(text=9, image=5))

def test_rollout_cross_term_is_the_last_co_attention(lx, b):
    with lx.record() as ev: lx(b)
    R = rollout_streams(ev, dict(text=9, image=6))
    last = [e for e in ev if e.kind == 'cross' and e.q == 'text'][-1]
    torch.testing.assert_close(R['text', 'image'], R['text', 'text'].mT @ last.attn.mean(1) @ R['image', 'image'])

def test_raw_attention_reads_the_last_layers(lx, b):
    e = explain(lx, b, 'raw_attention')
    with lx.record() as ev: lx(b)
    cross = [x for x in ev if (x.q, x.k) == ('text', 'image')][-1].attn.mean(1)[:, 0]
    text = [x for x in ev if (x.q, x.k, x.kind) == ('text', 'text', 'self')][-1].attn.mean(1)[:, 0]
    lay = lx.layout(b)
    torch.testing.assert_close(e.meta['image_tokens'], cross)
    torch.testing.assert_close(e.text, text * lay['text']['content'])

def test_chefer_start_layer_and_counts(lx, b):
    e = explain(lx, b, 'chefer')
    assert (e.meta['n_forward'], e.meta['n_backward']) == (1, 1)
    late = explain(lx, b, 'chefer', start_layer=-1)
    assert late.meta['start_layer'] == -1 and not torch.allclose(late.text, e.text)
    with pytest.raises(ValueError, match='out of range'): explain(lx, b, 'chefer', start_layer=9)

def test_target_and_boxes(lx, b):
    e = explain(lx, b, 'chefer', target=3)
    assert e.target.tolist() == [3, 3]
    nb = {k: v for k, v in b.items() if k not in ('boxes',)}
    e2 = explain(lx, nb, 'chefer', target=3)
    assert e2.image is None and torch.equal(e2.meta['image_tokens'], e.meta['image_tokens'])

def test_dsmi_layers(lx, vi, b):
    assert explain(lx, b, 'dsmi').meta['layers'] == {'text': [3], 'image': [1]}
    assert explain(lx, b, 'dsmi_grad_attn').meta['layers'] == {'text': [2, 3], 'image': [1]}
    assert explain(vi, b, 'dsmi_grad').meta['layers'] == {'text': [0, 1], 'image': [0, 1]}
    assert explain(lx, b, 'dsmi', layers={'text': 0}).meta['layers'] == {'text': [0]}
    with pytest.raises(ValueError, match='towers'): explain(lx, b, 'dsmi', layers={'audio': 0})

def test_image_map_grid(vi, b):
    lay = vi.layout(b)
    r = torch.zeros(2, 17); r[:, 1] = 1  # patch (0, 0)
    m = image_map(r, lay, (32, 32))
    assert m.shape == (2, 32, 32) and m[0, 0, 0] > .9 and m[0, 31, 31] == 0

def test_read_out_both_and_weights():
    R = {('text', 'text'): torch.eye(3)[None] * 2, ('image', 'image'): torch.arange(16.).view(1, 4, 4)}
    lay = dict(text=dict(n=3, offset=0, content=torch.tensor([[False, True, True]])),
               image=dict(n=4, offset=0, content=torch.ones(1, 4, dtype=torch.bool)),
               readout=dict(stream='both', index=dict(text=torch.tensor([1]), image=None),
                            weights=dict(image=torch.tensor([[.5, .5, 0, 0]]))))
    txt, img = read_out(R, lay)
    assert txt.tolist() == [[0., 2., 0.]] and img.tolist() == [[2., 3., 4., 5.]]
