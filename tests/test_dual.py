"Edge cases of xaimm_nb.models.dual (DualEncoder, CLIPAdapter, contrastive training, retrieval) that would clutter the notebook."
import math, os
os.environ.setdefault('HF_HUB_OFFLINE', '1'); os.environ.setdefault('TRANSFORMERS_OFFLINE', '1')
import pytest, torch, torch.nn as nn, torch.nn.functional as F
from xaimm_nb.test_utils import tiny_clip
from xaimm_nb.data.core import get_tokenizer
from xaimm_nb.models.encoders import build_encoders, preset_info
from xaimm_nb.models.dual import (DualEncoder, CLIPAdapter, DualConfig, build_dual, clip_loss, special_ids, train_dual,
                                  retrieval_recall, load_clip)



@pytest.fixture(scope='module')
def dual():
    torch.manual_seed(0)
    return build_dual('tiny', depth=2).eval()


def test_clip_loss_is_symmetric_infonce():
    torch.manual_seed(0); L = torch.randn(5, 5) * 3
    t = torch.arange(5)
    torch.testing.assert_close(clip_loss(L), (F.cross_entropy(L, t) + F.cross_entropy(L.T, t)) / 2)
    torch.testing.assert_close(clip_loss(L), clip_loss(L.T))       # symmetric in images and texts ...
    assert not torch.isclose(clip_loss(L), F.cross_entropy(L, t))  # ... unlike one-directional InfoNCE
    assert clip_loss(torch.eye(4) * 100) < 1e-6


def test_dual_encoder_interface(dual):
    ids = torch.tensor([[2, 10, 11, 3, 0], [2, 12, 13, 14, 3]]); m = (ids > 0).long()
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        L = dual(x, ids, m)
        torch.testing.assert_close(L, dual.scale * dual.encode_image(x) @ dual.encode_text(ids, m).T)
        # embeddings are the towers' pooled outputs (patch mean / masked token mean), normalised
        torch.testing.assert_close(dual.encode_image(x), F.normalize(dual.image_encoder(x)[0], dim=-1))
        # the text read-out weights reproduce the text tower's pooling
        t = dual.text_encoder(ids, m)
        torch.testing.assert_close(torch.einsum('bt,btd->bd', dual.text_readout(ids, m), t[1]), t[0])
        h = dual.image_encoder.backbone.forward_features(x)
        torch.testing.assert_close(torch.einsum('n,bnd->bd', dual.image_readout(), dual.image_encoder.proj(h)), dual.image_encoder(x)[0])
    assert dual.image_readout().shape == (1 + 16,) and dual.image_readout()[0] == 0
    assert dual.special_ids.tolist() == [0, 2, 3]  # [PAD], [CLS], [SEP] of the word tokenizer
    assert dual.preset['tokenizer'] == 'word' and dual.preset['mean'] == (.5, .5, .5)


def test_temperature_clamped_at_100(dual):
    with torch.no_grad(): dual.logit_scale.fill_(10.)
    try: assert math.isclose(dual.scale.item(), 100, rel_tol=1e-5)
    finally:
        with torch.no_grad(): dual.logit_scale.fill_(math.log(1/.07))


def test_dual_encoder_errors():
    img, txt = build_encoders('tiny', vocab_size=30)
    img2, _ = build_encoders('tiny', vocab_size=30, dim=32)
    with pytest.raises(ValueError, match="projects to 32 and the text tower to 64"): DualEncoder(img2, txt)
    d = DualEncoder(img, txt)  # a CNN image tower: trainable, no image blocks for attention methods
    assert d.image_blocks is None and d.n_prefix == 0
    with pytest.raises(ValueError, match="input_ids has 129 tokens but the text tower has 128 positions"):
        d.encode_text(torch.ones(1, 129, dtype=torch.long), torch.ones(1, 129))


def test_special_ids_of_hf_tokenizer():
    assert special_ids(get_tokenizer('minilm')) == [0, 101, 102]


def test_offline_preset_text_tower():
    m = build_dual('offline', depth=1).eval()
    tok = get_tokenizer(m.preset['tokenizer'], pad_to='longest')
    e = tok(['a red circle', 'a large blue wooden square on a dotted background'])
    with torch.no_grad(): z = m.encode_text(e['input_ids'], e['attention_mask'])
    assert z.shape == (2, preset_info('offline')['dim']) and m.max_len == 512 and m.preset['size'] == preset_info('offline')['size']
    assert m.special_mask(e['input_ids'], e['attention_mask'])[0].tolist()[:5] == [True, False, False, False, True]


@pytest.mark.parametrize('eos', [1, 2])
def test_clip_adapter_matches_hf(eos):
    torch.manual_seed(0); clip = tiny_clip(eos=eos); ad = CLIPAdapter(clip)
    ids = torch.randint(3, 100 if eos == 1 else 90, (3, 6)); ids[:, 0] = 0
    eot = torch.tensor([5, 3, 4])
    if eos == 2: ids[torch.arange(3), eot] = 99   # legacy configs: HF pools at the largest id
    else: ids[torch.arange(3), eot] = 1
    m = (torch.arange(6) <= eot[:, None]).long()
    x = torch.randn(3, 3, 32, 32)
    with torch.no_grad():
        ref = clip(input_ids=ids, pixel_values=x, attention_mask=m)
        torch.testing.assert_close(ad(x, ids, m), ref.logits_per_image, rtol=1e-4, atol=1e-5)
        torch.testing.assert_close(ad.encode_text(ids, m), F.normalize(ref.text_embeds, dim=-1), rtol=1e-4, atol=1e-5)
    assert ad.eot(ids).tolist() == eot.tolist()
    assert clip.config._attn_implementation == 'eager'


def test_clip_adapter_shares_weights():
    torch.manual_seed(0); clip = tiny_clip(); ad = CLIPAdapter(clip)
    assert ad.logit_scale is clip.logit_scale and ad.text_encoder.embeddings is clip.text_model.embeddings.token_embedding
    ad2 = CLIPAdapter(tiny_clip(image_size=224, patch_size=32))
    assert ad2.grid == (7, 7) and ad2.image_readout().shape == (50,) and ad2.image_encoder.input_size == (224, 224)


def test_load_clip_says_why():
    with pytest.raises(OSError, match="could not load CLIP 'xaimm/no-such-clip'.*HF_HUB_OFFLINE"): load_clip('xaimm/no-such-clip')


def test_train_dual_is_seeded():
    cfg = DualConfig(n_train=64, depth=1, epochs=1, bs=32)
    (m1, h1), (m2, h2) = train_dual(cfg, 'cpu', verbose=False), train_dual(cfg, 'cpu', verbose=False)
    assert h1 == h2
    for p, q in zip(m1.parameters(), m2.parameters()): torch.testing.assert_close(p, q)
    assert m1.logit_scale.item() != math.log(1/.07)  # the temperature is learnt


class _Pairs:
    "Stand-in dataset: `batch` gives one-hot 'images' and token ids that identify the pair."
    def __init__(self, n): self.n = n
    def __len__(self): return self.n
    def batch(self, idxs):
        i = torch.as_tensor(idxs)
        return dict(images=i.float()[:, None], input_ids=i[:, None], attention_mask=torch.ones(len(i), 1, dtype=torch.long))


class _Oracle(nn.Module):
    "Scores pair (i, j) by -|id_i - id_j| (perm: the caption of image i is at a shifted place)."
    def __init__(self, shift=0): super().__init__(); self.w, self.shift = nn.Parameter(torch.zeros(1)), shift
    def forward(self, images, input_ids, attention_mask):
        return -(images + self.shift - input_ids.T.float()).abs()


def test_retrieval_recall_known_answers():
    r = retrieval_recall(_Oracle(), _Pairs(250), 100)
    assert r == dict(i2t=1.0, t2i=1.0, n_queries=200, n_candidates=100)  # the partial block of 50 is dropped
    r = retrieval_recall(_Oracle(shift=1), _Pairs(200), 100)
    assert r['i2t'] == pytest.approx(1/100) and r['t2i'] == pytest.approx(1/100)  # only the last of each block stays right
    with pytest.raises(ValueError, match="fewer than n_candidates=100"): retrieval_recall(_Oracle(), _Pairs(50), 100)


def test_gradient_methods_run_on_dual_models(dual):
    "The interface also serves explain's gradient methods: `text_encoder.embeddings` and the pair target as a class index."
    from xaimm_nb.explain.core import explain
    torch.manual_seed(0); ad = CLIPAdapter(tiny_clip())
    ids = torch.randint(2, 100, (2, 6)); ids[:, 0] = 0; ids[:, -1] = 1
    for m, b in ((ad, dict(images=torch.randn(2, 3, 32, 32), input_ids=ids, attention_mask=torch.ones_like(ids))),
                 (dual, dict(images=torch.randn(2, 3, 32, 32), input_ids=torch.tensor([[2, 10, 3], [2, 11, 3]]), attention_mask=torch.ones(2, 3, dtype=torch.long)))):
        e = explain(m, b, 'saliency', target=torch.arange(2))
        assert e.image.shape == (2, 32, 32) and e.text.shape == b['input_ids'].shape and (e.text > 0).all()
