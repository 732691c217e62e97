"Edge cases of xaimm_nb.viz: image conversions, overlays, token strips, grids, atomic PNG saving and the widget explorer."
import os
os.environ.setdefault('HF_HUB_OFFLINE', '1'); os.environ.setdefault('TRANSFORMERS_OFFLINE', '1'); os.environ.setdefault('MPLBACKEND', 'Agg')
import numpy as np, pytest, torch, torch.nn as nn
import matplotlib.pyplot as plt
from PIL import Image
from xaimm_nb.explain.core import Explanation
from xaimm_nb.viz import (to_rgb, overlay, show_overlays, merge_pieces, token_strip, token_strip_png, explanation_grid,
                          Explorer, save_fig)


class Toy(nn.Module):
    "Multimodal stand-in: class-1 logit = mean of the top-right quarter + (token 7 attended)."
    def __init__(self):
        super().__init__()
        self.image_encoder, self.text_encoder = nn.Conv2d(3, 1, 1), nn.Module()
        self.text_encoder.embeddings = nn.Embedding(10, 1)
        with torch.no_grad(): self.text_encoder.embeddings.weight.copy_((torch.arange(10) == 7).float()[:, None])
    def forward(self, images, input_ids, attention_mask):
        l = self.image_encoder(images)[:, 0, :8, 8:].mean((1, 2)) + (self.text_encoder.embeddings(input_ids)[..., 0] * attention_mask).sum(1)
        return torch.stack([torch.zeros_like(l), l, -l], 1)


@pytest.fixture
def batch():
    g = torch.Generator().manual_seed(0)
    ids = torch.tensor([[2, 4, 7, 3, 0], [2, 7, 5, 6, 3]])
    return dict(images=torch.randn(2, 3, 16, 16, generator=g), input_ids=ids, attention_mask=(ids > 0).long(),
                raw=torch.randint(0, 255, (2, 16, 16, 3), generator=g, dtype=torch.uint8), y=torch.tensor([1, 0]),
                tokens=[['[CLS]', 'a', 'red', '[SEP]', '[PAD]'], ['[CLS]', 'red', 'cube', 'on', '[SEP]']])


def test_to_rgb():
    u = np.arange(12, dtype=np.uint8).reshape(2, 2, 3)
    assert to_rgb(u) is u
    assert to_rgb(torch.ones(3, 4, 5)).shape == (4, 5, 3) and (to_rgb(torch.ones(3, 4, 5)) == 255).all()  # CHW in [0,1]
    x = to_rgb(torch.tensor([[-2., 2.]]))  # gray, out of [0,1]: min-max scaled
    assert x.shape == (1, 2, 3) and x[0, 0, 0] == 0 and x[0, 1, 0] == 255
    with pytest.raises(ValueError, match='image has shape'): to_rgb(np.zeros((2, 2, 5)))


def test_overlay():
    img = np.full((8, 8, 3), 100, np.uint8)
    assert (overlay(img, np.ones((8, 8)), alpha=0) == img).all()
    full = overlay(img, np.arange(64.).reshape(8, 8), alpha=1, cmap='gray')
    assert full[0, 0, 0] == 0 and full[7, 7, 0] == 255  # min-max scaled map
    assert overlay(img, torch.rand(2, 2)).shape == (8, 8, 3)  # upsampled
    with pytest.raises(ValueError, match='alpha=2'): overlay(img, np.ones((8, 8)), alpha=2)
    fig = show_overlays(torch.randint(0, 255, (5, 8, 8, 3), dtype=torch.uint8), torch.rand(5, 8, 8), ncols=3, titles=list('abcde'))
    assert len(fig.axes) == 6; plt.close(fig)
    with pytest.raises(ValueError, match='3 images but 2 maps'): show_overlays(np.zeros((3, 8, 8, 3), np.uint8), np.zeros((2, 8, 8)))


def test_token_strip():
    h = token_strip(['a', '<b>', 'c', '[PAD]'], torch.tensor([0., 2., 1., 5.]), mask=[1, 1, 1, 0]).data
    assert h.count('<span') == 3 and '&lt;b&gt;' in h and '[PAD]' not in h
    assert 'title="2"' in h and 'rgb(255, 255, 255)' not in h.split('&lt;b&gt;')[0][-200:]  # the top token is coloured
    assert token_strip(['a'], [0.]).data.count('<span') == 1  # all-zero scores: no division by zero
    h = token_strip(['[CLS]', 'tab', '##by', 'cat', '[SEP]'], [5., 1., 2., 1., 5.]).data
    assert h.count('<span') == 2 and '>tabby</span>' in h and 'title="3 = tab + ##by"' in h and '[CLS]' not in h
    assert token_strip(['[CLS]', 'cat'], [5., 1.], specials=True).data.count('<span') == 2


def test_merge_pieces_wordpiece():
    "MiniLM's WordPieces join into words with summed scores, by word_ids and by the '##' rule alike; specials hidden."
    from xaimm_nb.data.core import get_tokenizer
    tok = get_tokenizer('minilm', max_len=24)  # pads to 24
    e = tok(['an unrecognisable dachshund naps'])
    ts, wid = tok.convert_ids_to_tokens(e['input_ids'][0]), e.word_ids(0)
    assert ts[:11] == ['[CLS]', 'an', 'un', '##re', '##co', '##gni', '##sable', 'da', '##chs', '##hun', '##d']
    s = torch.arange(24.)  # token j scores j
    want = (['an', 'unrecognisable', 'dachshund', 'naps'], [1., 2 + 3 + 4 + 5 + 6, 7 + 8 + 9 + 10, 11 + 12])
    for w in (wid, None):  # the tokenizer's words, then the '##' rule
        words, sc = merge_pieces(ts, s, e['attention_mask'][0], word_ids=w)
        assert (words, sc.tolist()) == want
    words, _ = merge_pieces(ts, s, e['attention_mask'][0], specials=True)
    assert words == ['[CLS]', *want[0], '[SEP]']  # pads stay out: the mask drops them
    assert merge_pieces(ts, s, specials=True)[0][-2:] == ['[PAD]', '[PAD]']  # no mask: pads are specials, shown
    assert merge_pieces(ts, s)[0] == want[0]  # no mask: [PAD] hidden as a special


def test_merge_pieces_edges():
    assert merge_pieces(['[CLS]', '[UNK]', 'cat', '[SEP]'], [1, 2, 3, 4])[0] == ['[UNK]', 'cat']  # [UNK] is a word
    assert merge_pieces(['<s>', 'Ġtab', 'by', '</s>', '<pad>'], [9, 1, 2, 9, 9], word_ids=[None, 0, 0, None, None]) == \
        (['tabby'], [3.])  # byte-level BPE with the tokenizer's words
    assert merge_pieces(['##x', 'a', '[SEP]', '##y'], [1, 2, 3, 4])[0] == ['x', 'a', 'y']  # nothing to continue
    assert merge_pieces(['<b>', 'c'], [1, 2])[0] == ['<b>', 'c']  # an angle-bracketed word is no special token
    assert merge_pieces([], [])[0] == []
    with pytest.raises(ValueError, match='3 word_ids for 2 tokens'):
        merge_pieces(['a', 'b'], [1, 2], word_ids=[0, 1, 2])


def test_token_strip_png_and_save_fig(tmp_path):
    p = token_strip_png(['w%d' % i for i in range(40)], np.linspace(0, 1, 40), tmp_path / 'sub' / 's.png')
    assert Image.open(p).format == 'PNG' and not list((tmp_path / 'sub').glob('*.tmp'))
    fig = plt.figure(figsize=(1, 1)); save_fig(fig, tmp_path / 'f.png', dpi=20)
    assert Image.open(tmp_path / 'f.png').size[0] <= 30


def test_explanation_grid(batch):
    e1 = Explanation(image=torch.rand(2, 16, 16), text=torch.rand(2, 5), method='a')
    e2 = Explanation(image=torch.rand(2, 4, 4), method='b')  # low-res map, no token scores
    e3 = Explanation(text=torch.rand(2, 5), method='c')  # text only
    fig = explanation_grid(batch, dict(a=e1, b=e2, c=e3), n=5)
    assert len(fig.axes) == 2 * 4 + 2 * 2; plt.close(fig)
    no_tokens = {k: v for k, v in batch.items() if k not in ('tokens', 'raw')}
    plt.close(explanation_grid(no_tokens, dict(a=e1), n=1))  # token ids as labels, normalised images as base
    with pytest.raises(ValueError, match='explanations is empty'): explanation_grid(batch, {})


def _texts(fig): return [t.get_text() for t in fig.texts]


def test_explanation_grid_names_predictions_and_outlines(batch):
    "Titles name the true and predicted class with its probability; the object is outlined; letters are readable."
    m = Toy().eval()
    p = m(batch['images'], batch['input_ids'], batch['attention_mask']).softmax(-1)
    b = dict(batch, classes=('cat', 'dog', 'bird'), box=torch.tensor([[2, 3, 10, 12], [0, 0, 16, 16]]))
    e = Explanation(image=torch.rand(2, 16, 16), text=torch.rand(2, 5), method='a', target=torch.tensor([2, 0]))
    fig = explanation_grid(b, dict(a=e), model=m)
    t, k = _texts(fig), p.argmax(1)
    assert t[:2] == ['input', 'a'] and t[2] == 'true: dog' and t[-1].startswith('white line: the object')
    assert t[3] == f"pred: {('cat', 'dog', 'bird')[k[0]]} ({p[0, k[0]]:.2f}) {'✓' if k[0] == 1 else '✗'}"
    labels = [x.get_text() for ax in fig.axes for x in ax.texts if x.get_text().startswith('explains')]
    assert labels == [f"explains: {c}" for c, kk, tt in zip(('bird', 'cat'), k, (2, 0)) if kk != tt]
    words = [x.get_text() for x in fig.axes[2].texts]
    assert words == ['a', 'red'] and min(x.get_fontsize() for x in fig.axes[2].texts) * fig.dpi / 72 >= 12  # px
    img = fig.axes[0].get_images()[0].get_array()  # the input, upscaled from 16 px: the box's border is white
    s = img.shape[0] / 16
    wy, wx = np.nonzero((np.asarray(img) == 255).all(-1))  # the white pixels: the border of box x 2..10, y 3..12
    assert all(abs(a - b * s) <= s for a, b in ((wx.min(), 2), (wx.max(), 10), (wy.min(), 3), (wy.max(), 12)))
    assert len(wy) < 2.5 * (8 + 9) * s  # a line one pixel wide around the box, not the box filled
    plt.close(fig)
    plain = explanation_grid({k: v for k, v in batch.items() if k != 'y'}, dict(a=e))  # no labels, no model: no titles
    assert _texts(plain) == ['input', 'a', 'words: summed relevance of their tokens, darker = more']; plt.close(plain)
    named = explanation_grid(batch, dict(a=e), classes=['x', 'y'])  # names for classes 0..1 (y = [1, 0])
    assert _texts(named)[2] == 'true: y'; plt.close(named)
    with pytest.raises(ValueError, match='2 class names for a model with 3 outputs'):
        explanation_grid(batch, dict(a=e), model=m, classes=['x', 'y'])


def test_explorer_updates_and_caches(batch):
    x = Explorer(Toy().eval(), batch, methods=('saliency', 'lime'), opts=dict(lime=dict(segmentation='grid', num_samples=16, hide_color=0.)))
    assert list(x.cache) == [(0, 'saliency', 'pred')] and x.image.value[:4] == b'\x89PNG'
    assert x.strip.value.count('<span') == 2 and '[CLS]' not in x.strip.value  # 'a red': [CLS], [SEP], pad hidden
    assert [o[1] for o in x.target.options] == ['pred', 0, 1, 2]
    s0, png0 = x.strip.value, x.image.value
    x.sample.value = 1
    assert (1, 'saliency', 'pred') in x.cache and x.strip.value != s0 and x.image.value != png0
    x.method.value, x.target.value = 'lime', 2
    assert int(x.cache[1, 'lime', 2].target[0]) == 2 and 'lime' in x.info.value
    n = len(x.cache); x.method.value = 'saliency'; x.target.value = 'pred'
    assert len(x.cache) == n + 1  # (1, 'saliency', 2) new, (1, 'saliency', 'pred') cached
    assert 'application/vnd.jupyter.widget-view+json' in x._repr_mimebundle_()


def test_explorer_names_outline_and_errors(batch):
    "Dropdowns and info name the classes; the object outline is optional; failures and flat maps are said in the info."
    m = Toy().eval()
    plain = Explorer(m, batch, methods=('saliency',))
    assert [o[0] for o in plain.target.options] == ['predicted class', 'class 0', 'class 1', 'class 2']
    assert plain.sample.options[0][0].startswith('#0: class ') and 'class 1' in plain.info.value  # y[0] = 1
    assert plain.box.layout.display == 'none'  # no object mask: no checkbox
    b = dict(batch, classes=('cat', 'dog', 'bird'), masks=dict(object=torch.zeros(2, 16, 16, dtype=torch.bool)))
    b['masks']['object'][:, 4:12, 4:12] = True
    x = Explorer(m, b, methods=('saliency', 'nope'), size=64)
    assert [o[0] for o in x.target.options] == ['predicted class', '0: cat', '1: dog', '2: bird']
    assert '<b>true</b>: dog' in x.info.value and x.sample.options[1][0].endswith(('✓', '✗'))
    png = x.image.value; x.box.value = False
    assert x.image.value != png and 'white line' not in x.info.value
    x.box.value = True; assert x.image.value == png  # the outline comes back, same picture
    x.method.value = 'nope'  # an unknown method: the error is shown, the picture stays the input
    assert 'failed on sample 0' in x.info.value and "unknown method &#x27;nope&#x27;" in x.info.value
    x.cache[0, 'saliency', 2] = Explanation(image=torch.zeros(1, 16, 16), method='saliency', target=torch.tensor([2]))
    x.method.value, x.target.value = 'saliency', 2
    assert 'explains <b>bird</b>' in x.info.value and 'the image map is constant' in x.info.value
    with pytest.raises(ValueError, match='2 class names for a model with 3 outputs'):
        Explorer(m, batch, classes=['a', 'b'])


def test_explorer_picture_is_upscaled_and_outlined():
    from xaimm_nb.viz import _upscale, _outline
    rgb = np.zeros((4, 8, 3), np.uint8); rgb[:, 4:] = 200
    up = _upscale(rgb, 32)
    assert up.shape == (16, 32, 3) and (up[:, 16:] == 200).all() and (up[:, :16] == 0).all()  # aspect kept, nearest
    mask = torch.zeros(4, 8, dtype=torch.bool); mask[1:3, 2:6] = True
    o = _outline(up, mask)
    assert (o[4:12, 8] == 255).all() and (o[4:12, 23] == 255).all()  # left and right borders of the box, white
    assert (o[6:10, 10:22] == up[6:10, 10:22]).all() and (o[0] == up[0]).all()  # inside and outside untouched
    check = np.indices((8, 8)).sum(0) % 2 * 255  # shrinking averages (Lanczos), not picks (nearest)
    small = _upscale(np.repeat(check[..., None], 3, -1).astype(np.uint8), 4)
    assert small.shape == (4, 4, 3) and 60 < small.mean() < 200 and (small != 0).all() and (small != 255).all()


def test_explorer_box_outline(batch):
    "A CSV batch's `box` (no masks) is outlined in the Explorer too."
    x = Explorer(Toy().eval(), dict(batch, box=torch.tensor([[2, 2, 12, 12]] * 2)), methods=('saliency',), size=64)
    assert x.box.layout.display == '' and 'white line = the object' in x.info.value
