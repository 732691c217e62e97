"Edge cases of xaimm_nb.models.encoders / models.fusion (the notebooks hold the narrative tests)."
import os, socket
os.environ.setdefault('HF_HUB_OFFLINE', '1'); os.environ.setdefault('TRANSFORMERS_OFFLINE', '1')
import numpy as np, pytest, timm, torch
from PIL import Image
from xaimm_nb.core import load_state, save_state
from xaimm_nb.models.encoders import (ImageEncoder, TextEncoder, build_encoders, freeze, unfreeze, n_trainable, load_by_position,
                                      lite0_weights, minilm_path, masked_mean, tiny_bert)
from xaimm_nb.models.fusion import CrossModalAttentionFusion, MultimodalClassifier, build_model

V = 30  # vocabulary of the tiny text tower in these tests

def _batch(B=3, T=6, S=32, seed=0):
    g = torch.Generator().manual_seed(seed)
    ids = torch.randint(4, V, (B, T), generator=g); ids[1, T-2:] = 0
    return torch.randn(B, 3, S, S, generator=g), ids, (ids > 0).long()

def test_lite0_cat():
    m = timm.create_model('tf_efficientnet_lite0').eval()
    load_by_position(m, load_state(lite0_weights()))
    from skimage import data
    x = torch.tensor(np.array(Image.fromarray(data.chelsea()).resize((224, 224)))).permute(2, 0, 1)[None]/255
    with torch.no_grad(): p = m((x - .5)/.5).softmax(1)[0]
    assert 281 <= int(p.argmax()) <= 285 and p.max() > .5

def test_load_by_position_errors(tmp_path):
    m = timm.create_model('test_resnet')
    sd = list(m.state_dict().values())
    with pytest.raises(ValueError, match='needs'): load_by_position(m, {f'k{i}': v for i, v in enumerate(sd[:-3])})
    bad = {f'k{i}': v for i, v in enumerate(sd)}; bad['k0'] = torch.zeros(1)
    with pytest.raises(ValueError, match="tensor 0: 'k0' has shape"): load_by_position(m, bad)
    # by name (a timm state dict) and by position give the same weights; extra trailing tensors are returned
    m2 = timm.create_model('test_resnet')
    assert load_by_position(m2, {f'k{i}': v for i, v in enumerate(sd)} | {'extra': torch.zeros(2)}) == ['extra']
    assert all(torch.equal(a, b) for a, b in zip(m2.state_dict().values(), sd))
    save_state(tmp_path/'w.pt', m.state_dict())
    enc = ImageEncoder('test_resnet', dim=8, weights=tmp_path/'w.pt')
    msd = m.state_dict()
    assert all(torch.equal(v, msd[k]) for k, v in enc.backbone.state_dict().items())   # loaded by name, classifier left out
    (tmp_path/'junk.pt').write_bytes(b'not a checkpoint')
    with pytest.raises(ValueError, match='not a readable'): ImageEncoder('test_resnet', weights=tmp_path/'junk.pt')

def test_minilm_paraphrase():
    from transformers import AutoTokenizer
    tok, txt = AutoTokenizer.from_pretrained(minilm_path()), TextEncoder(minilm_path(), dim=8).eval()
    b = tok(["A man is playing a guitar.", "Someone plays an instrument.", "The recipe needs two eggs."], padding=True, return_tensors='pt')
    with torch.no_grad(): h = txt.model(**b).last_hidden_state
    e = torch.nn.functional.normalize(masked_mean(h, b['attention_mask']), dim=-1)
    assert e[0] @ e[1] > e[0] @ e[2] + .2

def _hub_reachable(host='huggingface.co', port=443, timeout=3.):
    if os.environ.get('HF_HUB_OFFLINE') == '1': return False
    try: socket.create_connection((host, port), timeout=timeout).close(); return True
    except OSError: return False

def test_full_preset():
    if not _hub_reachable():
        print("SKIP full preset: the HuggingFace hub is unreachable here (or HF_HUB_OFFLINE=1); resnet50 + bert-base-uncased need a download")
        pytest.skip("hub unreachable: the full preset (resnet50 + bert-base-uncased) needs a download")
    m = build_model('full', n_classes=3).eval()
    from transformers import AutoTokenizer
    b = AutoTokenizer.from_pretrained('bert-base-uncased')(['a red circle'], return_tensors='pt')
    with torch.no_grad(): assert m(torch.randn(1, 3, 224, 224), b['input_ids'], b['attention_mask']).shape == (1, 3)
    assert m.image_encoder.grid == (7, 7)

def test_full_preset_offline_fails_fast(monkeypatch):
    monkeypatch.setenv('HF_HUB_OFFLINE', '1')
    with pytest.raises(OSError, match='preset=.offline.|Offline'): build_encoders('full')

def test_text_encoder_errors():
    with pytest.raises(OSError, match='could not load it'): TextEncoder('/no/such/model/folder')

def test_empty_text_row_no_nan():
    torch.manual_seed(0)
    m = build_model('tiny', 3, vocab_size=V).eval()
    x, ids, am = _batch()
    am[2] = 0; ids[2] = 0                                    # a sample with no text at all
    out = m(x, ids, am)
    assert torch.isfinite(out).all()

def test_padding_and_attention_rows():
    torch.manual_seed(0)
    m = build_model('tiny', 3, vocab_size=V, dim=32, n_heads=4).eval()
    x, ids, am = _batch()
    z = m(x, ids, am)
    a = m.fusion.attn
    assert a['i2t'].shape == (3, 4, 16, 6) and a['t2i'].shape == (3, 4, 6, 16)
    torch.testing.assert_close(a['i2t'].sum(-1), torch.ones(3, 4, 16))
    torch.testing.assert_close(a['t2i'].sum(-1), torch.ones(3, 4, 6))
    assert (a['i2t'][1, ..., -2:] == 0).all()
    ids2 = ids.clone(); ids2[1, -2:] = 7
    torch.testing.assert_close(m(x, ids2, am), z)
    # padding longer than needed changes nothing either
    ids3, am3 = torch.cat([ids, torch.zeros(3, 4, dtype=torch.long)], 1), torch.cat([am, torch.zeros(3, 4, dtype=torch.long)], 1)
    torch.testing.assert_close(m(x, ids3, am3), z, atol=1e-5, rtol=1e-4)

def test_attention_gradients():
    torch.manual_seed(0)
    m = build_model('tiny', 3, vocab_size=V).eval()
    x, ids, am = _batch()
    z = m(x, ids, am)
    a = m.fusion.attn['t2i']; a.retain_grad()
    z[:, 0].sum().backward()
    assert a.grad is not None and a.grad.shape == a.shape and a.grad.abs().sum() > 0

@pytest.mark.parametrize('fusion', ['cross', 'concat'])
def test_modes_are_independent(fusion):
    torch.manual_seed(0)
    x, ids, am = _batch()
    x2, ids2, _ = _batch(seed=1)
    mi, mt = build_model('tiny', 3, fusion=fusion, mode='image', vocab_size=V).eval(), build_model('tiny', 3, fusion=fusion, mode='text', vocab_size=V).eval()
    torch.testing.assert_close(mi(x, ids, am), mi(x, ids2, torch.ones_like(am)))
    torch.testing.assert_close(mt(x, ids, am), mt(x2, ids, am))
    # gradients: the image-only model gives no gradient to the text tower
    mi(x, ids, am).sum().backward()
    assert all(p.grad is None for p in mi.text_encoder.parameters())
    mb = build_model('tiny', 3, fusion=fusion, vocab_size=V).eval()
    assert not torch.allclose(mb(x, ids, am), mb(x2, ids, am)) and not torch.allclose(mb(x, ids, am), mb(x, ids2, am))

def test_classifier_errors():
    img, txt = build_encoders('tiny', vocab_size=V)
    with pytest.raises(ValueError, match='dim=32'): MultimodalClassifier(img, txt, 3, dim=32)
    with pytest.raises(ValueError, match="fusion='late'"): MultimodalClassifier(img, txt, 3, fusion='late', dim=64)
    with pytest.raises(ValueError, match='not divisible'): CrossModalAttentionFusion(dim=30, n_heads=4)
    with pytest.raises(TypeError, match='freeze expects'): freeze(torch.nn.Linear(2, 2))

def test_freeze_lite0():
    enc = ImageEncoder('tf_efficientnet_lite0', dim=8)
    n = n_trainable(enc)
    freeze(enc, 'but_last')
    names = [k for k, p in enc.backbone.named_parameters() if p.requires_grad]
    assert names[0].startswith('blocks.5') and all(k.startswith(('blocks.5', 'blocks.6', 'conv_head', 'bn2')) for k in names)
    assert enc.proj.weight.requires_grad
    assert n_trainable(unfreeze(enc)) == n

def test_vit_image_tower_in_classifier():
    torch.manual_seed(0)
    m = build_model('tiny', 3, vocab_size=V, image='test_vit', size=None).eval()
    x, ids, am = _batch(S=m.image_encoder.input_size[0])
    assert m(x, ids, am).shape == (3, 3)
    g = m.image_encoder.grid
    assert m.fusion.attn['i2t'].shape[2] == g[0]*g[1]

def test_tiny_bert_vocab():
    assert tiny_bert(50).vocab_size == 50
