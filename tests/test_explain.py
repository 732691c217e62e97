"Edge cases and sanity checks of xaimm_nb.explain (core, cam, grad) that would clutter the notebooks."
import copy, os
os.environ.setdefault('HF_HUB_OFFLINE', '1'); os.environ.setdefault('TRANSFORMERS_OFFLINE', '1')
import pytest, torch, torch.nn as nn, torch.nn.functional as F
from scipy.stats import spearmanr
from xaimm_nb.explain.core import explain, methods, hooks, check_batch, Explanation
from xaimm_nb.explain.cam import ImageOnly, cam_layer

ALL = dict(gradcam={}, gradcampp={}, scorecam={}, saliency={}, smoothgrad=dict(n=16), ig=dict(n_steps=16))


@pytest.fixture(scope='module')
def mm():
    from xaimm_nb.models.fusion import build_model
    torch.manual_seed(0)
    ids = torch.randint(1, 20, (4, 6)); ids[1, 4:] = 0
    return build_model('tiny', n_classes=3, vocab_size=20).eval(), dict(images=torch.randn(4, 3, 32, 32), input_ids=ids, attention_mask=(ids > 0).long())


def cnn(c=8, k=3):
    return nn.Sequential(nn.Conv2d(3, c, 3, padding=1), nn.ReLU(), nn.Conv2d(c, 16, 3, padding=1, stride=2), nn.ReLU(),
                         nn.Conv2d(16, 16, 3, padding=1, stride=2), nn.ReLU(), nn.AdaptiveMaxPool2d(1), nn.Flatten(), nn.Linear(16, k))


def test_registry():
    assert {'gradcam', 'gradcampp', 'scorecam', 'saliency', 'smoothgrad', 'ig'} <= set(methods())


def test_scorecam_matches_pytorch_grad_cam():
    from pytorch_grad_cam import ScoreCAM
    from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget
    torch.manual_seed(1); net, x, t = cnn().eval(), torch.randn(3, 3, 16, 16), torch.tensor([0, 2, 1])
    e = explain(net, x, 'scorecam', target=t, batch_size=5)
    with ScoreCAM(net, [net[5]]) as cam: ref = cam(x, [ClassifierOutputTarget(int(c)) for c in t])
    assert e.meta['layer'] == '5'
    torch.testing.assert_close(e.image_norm(), torch.from_numpy(ref), atol=1e-4, rtol=0)
    torch.testing.assert_close(e.meta['weights'].sum(1), torch.ones(3))


def test_timm_efficientnet_default_layer_matches_pytorch_grad_cam():
    import timm
    from pytorch_grad_cam import GradCAMPlusPlus
    from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget
    torch.manual_seed(0); m = timm.create_model('tf_efficientnet_lite0', num_classes=3).eval(); x = torch.randn(2, 3, 64, 64)
    e = explain(m, x, 'gradcampp', target=1)
    with GradCAMPlusPlus(m, [m.bn2]) as cam: ref = cam(x, [ClassifierOutputTarget(1)] * 2)
    assert e.meta['layer'] == 'bn2'
    torch.testing.assert_close(e.image_norm(), torch.from_numpy(ref), atol=1e-4, rtol=0)


def test_cam_layer_errors():
    net = cnn().eval(); x = torch.randn(2, 3, 16, 16)
    with pytest.raises(ValueError, match='not a feature map'): explain(net, x, 'gradcam', layer='8')
    twice = nn.Sequential(nn.Conv2d(3, 3, 3, padding=1)); twice.forward = lambda x: twice[0](twice[0](x)).mean((2, 3))
    with pytest.raises(ValueError, match='more than once'): explain(twice, x, 'gradcam', layer='0')
    with pytest.raises(ValueError, match='not a submodule'): explain(net, x, 'gradcam', layer=nn.ReLU())
    from transformers import BertConfig, BertForSequenceClassification
    bert = BertForSequenceClassification(BertConfig(vocab_size=30, hidden_size=16, num_hidden_layers=1, num_attention_heads=2, intermediate_size=32))
    with pytest.raises(ValueError, match='text classifier'): explain(bert, dict(input_ids=torch.ones(1, 4, dtype=torch.long)), 'gradcam')
    with pytest.raises(ValueError, match='batch_size'): explain(net, x, 'scorecam', batch_size=0)


def test_inplace_relu_after_layer():
    "torchvision's bn1 feeds an in-place ReLU: the hooked activation must survive it."
    import torchvision
    m = torchvision.models.resnet18(num_classes=3).eval(); x = torch.randn(2, 3, 64, 64)
    e = explain(m, x, 'gradcam', layer='bn1')
    assert e.image.shape == (2, 64, 64) and (e.image >= 0).all() and e.meta['layer'] == 'bn1'
    assert cam_layer(m, x) is m.layer4  # same output tensor as layer4[-1]


def test_text_held_fixed_per_sample(mm):
    "Each image of a batch is explained with its own caption: batch results equal one-sample results (SmoothGrad's noise depends on the batch)."
    model, b = mm
    for meth, o in ALL.items():
        if meth == 'smoothgrad': continue
        e = explain(model, b, meth, target=torch.tensor([0, 1, 2, 1]), **o)
        one = explain(model, {k: v[2:3] for k, v in b.items()}, meth, target=2, **o)
        torch.testing.assert_close(e.image[2:3], one.image, atol=1e-5, rtol=1e-4, msg=meth)
        assert e.image.shape == (4, 32, 32) and (e.image >= 0).all()
        if e.text is not None: assert (e.text[1, 4:] == 0).all()


def test_chunking_does_not_change_results(mm):
    model, b = mm
    a, c = explain(model, b, 'ig', n_steps=8, internal_batch_size=5), explain(model, b, 'ig', n_steps=8, internal_batch_size=1000)
    torch.testing.assert_close(a.image, c.image); torch.testing.assert_close(a.text, c.text)
    assert a.meta['n_forward'] == 1 + -(-9*4 // 5) + 1 and a.meta['n_backward'] == -(-9*4 // 5)


def test_model_state_untouched(mm):
    model, b = mm
    model.train(); model.head[1].eval()
    with torch.no_grad(): e = explain(model, b, 'gradcampp')  # works inside no_grad, too
    assert model.training and model.image_encoder.training and not model.head[1].training
    assert all(p.grad is None for p in model.parameters())
    for p in model.parameters(): p.requires_grad_(False)
    try: torch.testing.assert_close(explain(model, b, 'gradcampp').image, e.image)
    finally:
        for p in model.parameters(): p.requires_grad_(True)
    model.eval()


def test_batch_errors(mm):
    model, b = mm
    with pytest.raises(ValueError, match='4 images but 3 rows'): check_batch(model, {**b, 'input_ids': b['input_ids'][:3], 'attention_mask': b['attention_mask'][:3]})
    with pytest.raises(ValueError, match='attention_mask'): check_batch(model, {**b, 'attention_mask': b['attention_mask'][:, :3]})
    with pytest.raises(TypeError, match="no option 'steps'"): explain(model, b, 'ig', steps=3)
    with pytest.raises(ValueError, match="baseline='gray'"): explain(model, b, 'ig', baseline='gray')
    with pytest.raises(ValueError, match='must broadcast'): explain(model, b, 'ig', baseline=torch.zeros(3, 8, 8))
    with pytest.raises(TypeError, match='integer class'): explain(model, b, 'saliency', target=torch.tensor([0., 1, 0, 1]))


def test_ablation_modes():
    "mode='image' / 'text' models: the unused modality gets no map, and CAMs explain why they cannot run on text only."
    from xaimm_nb.models.fusion import build_model
    ids = torch.randint(1, 20, (2, 5)); b = dict(images=torch.randn(2, 3, 32, 32), input_ids=ids, attention_mask=torch.ones_like(ids))
    img, txt = (build_model('tiny', n_classes=3, vocab_size=20, mode=m).eval() for m in ('image', 'text'))
    e = explain(img, b, 'ig', n_steps=8); assert e.text is None and e.image.shape == (2, 32, 32)
    e = explain(txt, b, 'saliency'); assert e.image is None and e.text.shape == (2, 5)
    with pytest.raises(ValueError, match="does not use its images"): explain(txt, b, 'gradcam')


def test_black_baseline_needs_stats():
    net = cnn().eval()
    with pytest.raises(ValueError, match="needs the image normalisation"): explain(net, torch.randn(1, 3, 8, 8), 'ig', baseline='black')


def test_hooks_removed_on_error():
    lin = nn.Linear(2, 2)
    with pytest.raises(RuntimeError):
        with hooks(lin, forward=lambda m, i, o: o, backward=lambda m, g: g): raise RuntimeError
    assert not lin._forward_hooks


def test_image_norm_constant_and_dtype():
    e = Explanation(image=torch.zeros(2, 3, 3))
    assert (e.image_norm() == 0).all() and e.text_norm() is None


@pytest.mark.skipif(not torch.cuda.is_available(), reason='needs CUDA')
def test_cuda_matches_cpu(mm):
    model, b = mm
    for meth, o in ALL.items():
        c = explain(model, b, meth, **o)
        g = explain(copy.deepcopy(model).cuda(), {k: v.cuda() for k, v in b.items()}, meth, **o)
        assert g.image.is_cuda
        if meth != 'smoothgrad': torch.testing.assert_close(g.image.cpu(), c.image, atol=1e-4, rtol=1e-3, msg=meth)


# --- Adebayo et al. (2018) cascading model-parameter randomisation ---------------------------------------------

def blobs(n, g):
    "3 classes: an 8x8 patch (+2) in colour channel y at a random place on N(0, 0.3) noise."
    y, x = torch.randint(0, 3, (n,), generator=g), 0.3 * torch.randn(n, 3, 32, 32, generator=g)
    pos, m = torch.randint(0, 24, (n, 2), generator=g), torch.zeros(n, 32, 32)
    for i, (r, c) in enumerate(pos.tolist()): x[i, y[i], r:r+8, c:c+8] += 2.; m[i, r:r+8, c:c+8] = 1
    return x, y, m


@pytest.fixture(scope='module')
def trained():
    g = torch.Generator().manual_seed(0); torch.manual_seed(0)
    (x, y, _), test = blobs(1024, g), blobs(16, g)
    net = cnn(); opt = torch.optim.Adam(net.parameters(), 3e-3)
    for _ in range(3):
        for i in range(0, len(x), 64):
            loss = F.cross_entropy(net(x[i:i+64]), y[i:i+64]); opt.zero_grad(); loss.backward(); opt.step()
    net.eval()
    assert (net(test[0]).argmax(1) == test[1]).float().mean() >= .9
    return net, test


@pytest.mark.filterwarnings('ignore::scipy.stats.ConstantInputWarning')  # a constant randomised map has no rank correlation: counted as 0
def test_randomisation_sanity(trained):
    "Original maps sit on the patch; after randomising the layers from the top down every method's maps change (Spearman < 0.5)."
    net, (x, y, m) = trained
    orig = {k: explain(net, x, k, target=y, **o).image for k, o in ALL.items()}
    for k, a in orig.items():  # meaningful to begin with: at least twice the mass on the patch (6.25 % of the pixels) that chance gives
        assert ((a * m).flatten(1).sum(1) / a.flatten(1).sum(1)).mean() > 2 * m.mean(), k
    rnd, rho = copy.deepcopy(net), {}
    for i, j in enumerate((8, 4, 2, 0)):  # cascade: head, conv3, conv2, conv1
        torch.manual_seed(100 + i); rnd[j].reset_parameters()
        for k, o in ALL.items():
            r = explain(rnd, x, k, target=y, **o).image
            rho[k] = torch.tensor([spearmanr(a.flatten(), b.flatten())[0] for a, b in zip(orig[k], r)]).nan_to_num(0).mean().item()
    bad = {k: round(v, 3) for k, v in rho.items() if not v < .5}
    assert not bad, f"maps barely change under full randomisation: {bad}"
