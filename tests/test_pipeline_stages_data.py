"The gan, dual and r2r stages of `xaimm run` on your own data (a CSV through `data.source`), and their refusals."
import csv, json, os
import numpy as np, pytest
from matplotlib.text import Text
from PIL import Image
from xaimm_nb.core import ConfigError, load_json, load_state
from xaimm_nb.pipeline import run_pipeline

os.environ.setdefault('HF_HUB_OFFLINE', '1')
CLASSES, COLOURS = ('circle', 'square', 'triangle'), ('red', 'blue', 'yellow', 'orange')
RGB = dict(red=(220, 40, 40), blue=(40, 70, 220), yellow=(235, 215, 40), orange=(240, 140, 30))

def _image(k, colour, x0, y0, s, grey, tag):
    "A 32 px image: shape k of side s at (x0, y0) on a grey background, a magenta corner tag when `tag`."
    im = np.full((32, 32, 3), grey, np.uint8)
    yy, xx = np.mgrid[:s, :s] + .5
    m = [(yy - s/2)**2 + (xx - s/2)**2 <= (s/2)**2, np.ones((s, s), bool), np.abs(xx - s/2) <= yy/2][k]
    im[y0:y0+s, x0:x0+s][m] = RGB[colour]
    if tag: im[:6, :6] = (230, 40, 230)
    return im

def write_data(folder, n=90, artefact=True, truth=True, per_class=None, seed=0):
    "A CSV of n rows: 3 shapes, protected f/m, captions (shape = rationale), bboxes and an artefact column."
    # the artefact: a corner tag on 80 % of the circles and 10 % of the others
    rng = np.random.default_rng(seed); (folder/'img').mkdir(parents=True, exist_ok=True)
    head = ['image_path', 'text', 'label', 'protected'] + ['bbox', 'rationale'] * truth + ['artefact'] * artefact
    rows = []
    for i in range(n):
        k = i % 3 if per_class is None else min(i // per_class, 2)
        g, c, s = 'fm'[rng.integers(2)], COLOURS[rng.integers(4)], int(rng.integers(12, 18))
        x0, y0 = (int(v) for v in rng.integers(7, 32 - s, 2))
        a = int(rng.random() < (.8 if k == 0 else .1))
        Image.fromarray(_image(k, c, x0, y0, s, 90 if g == 'f' else 150, a)).save(folder/f'img/{i}.png')
        text = f"a small {c} {CLASSES[k]} on a {'dotted' if g == 'f' else 'striped'} background"
        rows.append([f'img/{i}.png', text, CLASSES[k], g] + [f'{x0} {y0} {x0+s} {y0+s}', CLASSES[k]] * truth + [a] * artefact)
    with open(folder/'data.csv', 'w', newline='') as f: csv.writer(f).writerows([head, *rows])
    return folder/'data.csv'

GAN = dict(g_dim=8, d_dim=8, z_dim=32, bs=16, steps=2, n_critic=1, clf_dim=4, clf_epochs=1, eval_every=0, eval_n=48,
           sample_every=0, ckpt_every=0)
DUAL = dict(dual=dict(n_train=128, depth=1, epochs=1, bs=16), n=8, bs=8, n_recall=32, n_candidates=16,
            methods={'m2ib': {'steps': 3, 'n_samples': 3}, 'chefer': {}, 'saliency': {}})
R2R = dict(n_reveal=32, bs=16, epochs=1, methods=['pclarc', 'rrr'], max_rounds=1, extra={})

def config(path, stages, **data):
    return dict(seed=0, device='cpu', stages=stages, data=dict(source='csv', path=str(path), **data),
                model=dict(preset='tiny'), gan=GAN, dual=DUAL, r2r=R2R)

@pytest.fixture(scope='module')
def run(tmp_path_factory):
    "One run of the three stages on the CSV, with the texts of every figure the stages saved."
    import xaimm_nb.gan, xaimm_nb.explain.benchmark, xaimm_nb.fairness.r2r
    tmp = tmp_path_factory.mktemp('stages')
    texts, mods = {}, (xaimm_nb.gan, xaimm_nb.explain.benchmark, xaimm_nb.fairness.r2r)
    def spy(save):
        def f(fig, path, *a, **k):
            texts[os.path.basename(path)] = {t.get_text() for t in fig.findobj(Text)}
            return save(fig, path, *a, **k)
        return f
    old = [m.save_fig for m in mods]
    for m in mods: m.save_fig = spy(m.save_fig)
    try: m = run_pipeline(config(write_data(tmp/'data'), ['gan', 'dual', 'r2r']), tmp/'run', log=lambda s: None)
    finally:
        for m_, s in zip(mods, old): m_.save_fig = s
    return m, texts, tmp/'run'

def test_gan_on_data(run):
    m, texts, out = run
    g = m['gan']
    assert {'fid_data', 'kid_data', 'ssim_nearest', 'conditional_accuracy', 'fairness_discrepancy'} <= set(g)
    assert 'fid_synthmm' not in g and g['n'] == 48 and {'gan/fid_data', 'gan/fairness_discrepancy'} <= set(m['summary'])
    arch = load_state(out/'models'/'wgan_last.pt')['arch']  # 3 classes; the protected values f, m are the attribute
    assert (arch['n_classes'], arch['n_groups']) == (3, 2)     # the bias regulariser and the fairness discrepancy use
    assert set(CLASSES) <= texts['gan_samples.png'] and (out/'models'/'wgan_last.pt').exists()

def test_dual_on_data(run):
    m, texts, out = run
    d = m['dual']
    assert d['n'] == 8 and d['recall']['n_candidates'] == 16 and set(d['table']) == {'m2ib', 'chefer', 'saliency', 'random'}
    for meth, row in d['table'].items():  # boxes give the image ground truth, rationales the text's: all measured, no NaN
        assert {'image/iou', 'image/pointing', 'text/pointing', 'image/auc_pos'} <= set(row) or meth == 'saliency', meth
        assert not any(isinstance(v, float) and v != v for v in row.values()), (meth, row)
    assert any('data test pairs' in t for t in texts['dual_xai_table.png'])  # titled with the data's name, not SynthMM
    assert 'dual/recall@1/i2t' in m['summary'] and (out/'results'/'dual_xai.json').exists()

def test_dual_without_ground_truth(tmp_path):
    "No boxes, no rationales: the localisation metrics are left out of the table, not NaN; the others stay."
    m = run_pipeline(config(write_data(tmp_path/'data', n=60, truth=False), ['dual']), tmp_path/'run', log=lambda s: None)
    for meth, row in m['dual']['table'].items():
        assert not {'image/iou', 'image/pointing', 'text/iou', 'text/pointing'} & set(row), (meth, row)
        assert {'image/auc_pos', 'image/conf_drop'} <= set(row) and not any(v != v for v in row.values()), (meth, row)
    assert not any(k.endswith(('/iou', '/pointing')) for k in m['summary'])

def test_r2r_on_data(run):
    m, texts, out = run
    r = m['r2r']
    assert r['data']['artefact_class_name'] == 'circle' and r['data']['artefact_class'] == 0
    assert set(r['base']) == {'clean_acc', 'artefact_acc', 'conflict_acc', 'delta_bias', 'tcav_sens'}  # no mask: no art_rel
    assert not (out/'visualizations'/'r2r_relevance.png').exists() and 'reliance' not in load_json(out/'results'/'r2r.json')['diagnosis']
    assert 'artefact mask' in r['data']['not_measured'] and 'rrr' in r['skipped'] and list(r['methods']) == ['pclarc']
    js = load_json(out/'results'/'r2r.json')
    ev = js['base']['eval']
    assert set(ev) == {'test', 'clean', 'artefact', 'conflict'} and not any('art_rel' in e for e in ev.values())
    assert ev['test']['acc'] >= 0 and js['data']['n']['clean'] + js['data']['n']['artefact'] == js['data']['n']['test']
    assert any("'circle'" in t for t in texts['r2r_rounds.png']) and {'r2r/pclarc/clean_acc', 'r2r/base/delta_bias'} <= set(m['summary'])

def test_text_only_data_refused(tmp_path):
    p = write_data(tmp_path, n=30)
    for st, msg in (('gan', "remove 'gan'"), ('dual', "remove 'dual'"), ('r2r', "remove 'r2r'")):
        with pytest.raises(ConfigError, match=msg):
            run_pipeline(config(p, [st], columns={'image': None}), tmp_path/'out')
    assert not (tmp_path/'out').exists()  # refused before anything is written

def test_too_few_images_per_class(tmp_path):
    p = write_data(tmp_path, n=40, per_class=10)  # circles and squares: 10 rows each, 6 of them in the training split
    with pytest.raises(ValueError, match=r"too few training images for the WGAN in class\(es\) \{'circle': \d, 'square': \d\}"):
        run_pipeline(config(p, ['gan']), tmp_path/'out')
    assert not (tmp_path/'out').exists()

def test_r2r_needs_an_artefact_column(tmp_path):
    p = write_data(tmp_path, n=30, artefact=False)
    with pytest.raises(ConfigError, match=r"name it in data\.columns\.artefact"):
        run_pipeline(config(p, ['r2r']), tmp_path/'out')
    assert not (tmp_path/'out').exists()

def test_train_wgan_from_config_on_data(tmp_path):
    "The Python entry point reads your data too, its path relative to the config file's folder."
    import yaml
    from xaimm_nb.gan import train_wgan_from_config
    write_data(tmp_path/'cfg'/'data', n=60)
    cfg = dict(config('data/data.csv', ['gan']), gan=dict(GAN, img_size=64))
    (tmp_path/'cfg'/'my.yaml').write_text(yaml.safe_dump(cfg))
    r = train_wgan_from_config(tmp_path/'cfg'/'my.yaml', tmp_path/'g')
    assert (r.G.n_classes, r.G.img_size) == (3, 64) and 'fid_data' in r.metrics
