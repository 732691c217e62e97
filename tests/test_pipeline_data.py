"Your own data through the classifier, explain and eval stages and `xaimm init` (issue 18): CSV, text-only, COCO."
import contextlib, csv, io, json, math, os
import numpy as np, pytest, yaml
from PIL import Image
from xaimm_nb.cli import main
from xaimm_nb.core import load_json

os.environ.setdefault('HF_HUB_OFFLINE', '1')
COLOURS = dict(red=(220, 40, 40), blue=(40, 70, 220), yellow=(235, 215, 40))  # words of the tiny preset's vocabulary
TINY = dict(model=dict(preset='tiny'), train=dict(epochs=2, bs=16, progress=False, n_show=4),
            explain=dict(n=8, bs=8, methods=dict(gradcampp={}, saliency={}, lime=dict(num_samples=16, segmentation='grid'))))

def write_csv(root, n=48, image=True, text=True, seed=0):
    "n rows of 3 classes (the colour of a square on noise; the caption names it), groups f/m, a bbox and a rationale."
    rng, rows = np.random.default_rng(seed), []
    (root/'img').mkdir(parents=True, exist_ok=True)
    for i in range(n):
        c, g = list(COLOURS)[i % 3], 'fm'[(i // 3) % 2]
        x0, y0, s = *rng.integers(0, 16, 2), int(rng.integers(10, 16))
        if image:
            a = rng.integers(60, 140, (32, 32, 3)).astype(np.uint8); a[y0:y0+s, x0:x0+s] = COLOURS[c]
            Image.fromarray(a).save(root/f'img/{i}.png')
        cap = f"a {'small' if s < 13 else 'large'} {c} object on a {['noisy', 'striped'][i % 2]} background"
        rows.append({**({'image_path': f'img/{i}.png', 'bbox': f'{x0} {y0} {x0+s} {y0+s}'} if image else {}),
                     **({'caption': cap, 'rationale': c} if text else {}), 'label': c, 'group': g})
    with open(root/'data.csv', 'w', newline='') as f:
        w = csv.DictWriter(f, list(rows[0])); w.writeheader(); w.writerows(rows)
    return root/'data.csv'

def xaimm(*argv):
    "`xaimm argv` in this process: (exit code, stdout, stderr)."
    with contextlib.redirect_stdout(io.StringIO()) as o, contextlib.redirect_stderr(io.StringIO()) as e:
        rc = main([str(a) for a in argv])
    return rc, o.getvalue(), e.getvalue()

def write_config(path, data, stages=('synth', 'classifier', 'explain'), **kw):
    path.write_text(yaml.safe_dump(dict(seed=0, device='cpu', stages=list(stages), data=data, **{**TINY, **kw})))
    return path

def nan_keys(d, p=''):
    "The dotted keys of the non-finite numbers in the nested dict/list `d` (metrics.json must have none)."
    if isinstance(d, dict): return [k for kk, v in d.items() for k in nan_keys(v, f'{p}{kk}.')]
    if isinstance(d, list): return [k for i, v in enumerate(d) for k in nan_keys(v, f'{p}{i}.')]
    return [p[:-1]] if isinstance(d, float) and not math.isfinite(d) else []

def test_csv_init_classifier_explain_eval(tmp_path, monkeypatch):
    write_csv(tmp_path/'d', n=36)
    (tmp_path/'cfg').mkdir()
    rc, out, err = xaimm('init', '--data', tmp_path/'d'/'data.csv', '--out', tmp_path/'cfg'/'my.yaml', '--preset', 'tiny')
    assert rc == 0, err
    text = (tmp_path/'cfg'/'my.yaml').read_text()
    d = yaml.safe_load(text)
    assert d['data']['path'] == '../d/data.csv' and d['data']['columns']['protected'] == 'group'  # relative to the config
    assert d['data']['classes'] == ['blue', 'red', 'yellow'] and d['data']['image_size'] == 32
    assert d['stages'] == ['synth', 'classifier', 'explain', 'dual'] and '# not run: gan: ' in text  # 7 blues < 8
    assert '# not run: r2r: ' in text and 'data.columns.artefact' in text  # the stages' own checks say why
    assert "# 2 groups: fairness" in text and d['model'] == dict(preset='tiny', mode='both')
    # from another folder: the data path resolves against the config's folder (gan and dual: test_pipeline_stages_data)
    monkeypatch.chdir(tmp_path/'d')
    rc, out, err = xaimm('run', '--config', tmp_path/'cfg'/'my.yaml', '--out', tmp_path/'run',
                         '--stages', 'synth', 'classifier', 'explain')
    assert rc == 0, err
    m = load_json(tmp_path/'run'/'results'/'metrics.json')
    t = m['classifier']['test']
    assert {'accuracy', 'macro_f1', 'delta_bias', 'worst_group_acc'} <= set(t) and t['n'] == m['synth']['n']['test']
    tab = m['explain']['table']
    assert {'image/iou', 'image/pointing', 'text/pointing', 'text/iou'} <= set(tab['saliency']) and nan_keys(m) == []
    assert 0 <= tab['gradcam']['image/iou'] <= 1 and 'text/pointing' not in tab['gradcam']  # CAMs: image only
    s = m['synth']  # the data summary: n and class x protected counts per split
    assert sum(s['n'].values()) == 36 and s['groups'] == ['f', 'm']
    assert all(sum(n for c in s['counts'][k].values() for n in c.values()) == s['n'][k] for k in s['n'])
    for f in ('data_train.png', 'confusion_test.png', 'predictions_test.png', 'explanations.png', 'xai_table.png'):
        assert (tmp_path/'run'/'visualizations'/f).exists(), f
    # eval on a split of the config's data, by name
    rc, out, err = xaimm('eval', '--config', tmp_path/'cfg'/'my.yaml', '--ckpt', tmp_path/'run'/'models'/'best.pt',
                         '--data', 'test')
    assert rc == 0, err
    r = json.loads(out)
    assert r['classes'] == ['blue', 'red', 'yellow'] and r['n'] == t['n'] and r['accuracy'] == t['accuracy']
    rc, out, err = xaimm('eval', '--config', tmp_path/'cfg'/'my.yaml', '--ckpt', tmp_path/'run'/'models'/'best.pt',
                         '--data', tmp_path/'d'/'data.csv')  # a table in your columns: read with the config's mapping
    assert rc == 0, err
    assert json.loads(out)['n'] == 36 and json.loads(out)['classes'] == ['blue', 'red', 'yellow']
    rc, out, err = xaimm('eval', '--config', tmp_path/'cfg'/'my.yaml', '--ckpt', tmp_path/'run'/'models'/'best.pt',
                         '--data', 'conflict')
    assert rc == 2 and "split of the config's data (train, valid, test)" in err

def test_class_names_in_pictures_and_explain_by_name(tmp_path):
    from xaimm_nb.data.core import MMDataset, get_tokenizer
    from xaimm_nb.data.sources import load_splits
    from xaimm_nb.explain.core import explain
    from xaimm_nb.train import build_classifier
    sp = load_splits(dict(source='csv', path=str(write_csv(tmp_path)), columns=dict(text='caption', protected='group')))
    m = build_classifier(dict(model=dict(preset='tiny')), sp['train']).eval()
    b = MMDataset(sp['test'], get_tokenizer('word'), 32).batch(range(4))
    assert b['classes'] == ('blue', 'red', 'yellow') and m.classes == ['blue', 'red', 'yellow']
    assert explain(m, b, 'saliency', target='yellow').target.tolist() == [2] * 4
    with pytest.raises(ValueError, match=r"target='green' is not a class name; the classes are \['blue', 'red', 'yellow'\]"):
        explain(m, b, 'saliency', target='green')

def test_text_only_csv(tmp_path):
    write_csv(tmp_path, n=36, image=False)
    rc, out, err = xaimm('init', '--data', tmp_path/'data.csv', '--out', tmp_path/'t.yaml', '--preset', 'tiny')
    assert rc == 0, err
    text = (tmp_path/'t.yaml').read_text(); d = yaml.safe_load(text)
    assert d['stages'] == ['synth', 'classifier', 'explain'] and d['model']['mode'] == 'text'
    assert d['data']['columns']['image'] is None and '# not run: gan: ' in text and '# not run: dual: ' in text
    assert 'gradcam' not in d['explain']['methods'] and 'chefer' in d['explain']['methods']
    rc, out, err = xaimm('run', '--config', tmp_path/'t.yaml', '--out', tmp_path/'run')
    assert rc == 0, err
    m = load_json(tmp_path/'run'/'results'/'metrics.json')
    assert {'delta_bias', 'worst_group_acc', 'macro_f1'} <= set(m['classifier']['test']) and nan_keys(m) == []
    tab = m['explain']['table']
    assert {'text/pointing', 'text/iou', 'text/auc_pos'} <= set(tab['saliency'])
    assert not any(k.startswith('image/') for r in tab.values() for k in r)  # the text tower alone: no image metrics
    x = load_json(tmp_path/'run'/'results'/'xai_metrics.json')
    assert 'gradcampp' not in x['metrics'] and set(x['skipped']) == set()  # init chose methods that explain text
    # the mode set against the data is an error before anything is written
    cfg = write_config(tmp_path/'bad.yaml', d['data'], model=dict(preset='tiny', mode='both'))
    rc, out, err = xaimm('train', '--config', cfg, '--out', tmp_path/'bad')
    assert rc == 2 and "model.mode='both', but the data has no image column" in err and not (tmp_path/'bad').exists()

def test_coco_folder_trains_with_polygon_iou(tmp_path):
    from test_sources import write_coco
    co = write_coco(tmp_path/'coco', 'train2017', n=12)
    cfg = write_config(tmp_path/'c.yaml', dict(source='coco', path='coco', valid_frac=.25, test_frac=.25, image_size=32),
                       explain=dict(n=4, bs=4, methods=['gradcampp', 'saliency']))
    rc, out, err = xaimm('run', '--config', cfg, '--out', tmp_path/'run')
    assert rc == 0, err
    m = load_json(tmp_path/'run'/'results'/'metrics.json')
    assert m['synth']['classes'] == ['cat', 'dog'] and m['synth']['groups'] == ['female', 'male']
    tab = m['explain']['table']
    assert 0 <= tab['gradcampp']['image/iou'] <= 1 and 'image/pointing' in tab['random'] and nan_keys(m) == []
    # the ground truth is the label's polygon (dog: 20 x 18 px) or crowd RLE (cat: 26 x 12 px) of each 32 x 24 image
    from xaimm_nb.pipeline import parse_config, data_splits
    tr = data_splits(parse_config(dict(stages=['synth'], data=dict(source='coco', path=str(co)))))['train']
    assert {(tr[i]['y'], int(tr[i]['masks']['object'].sum())) for i in range(len(tr))} == {(1, 360), (0, 312)}

def test_bad_data_through_the_config(tmp_path):
    p, data = write_csv(tmp_path), dict(source='csv', path='data.csv', columns=dict(text='caption', protected='group'))
    write_config(tmp_path/'s.yaml', data, explain=dict(split='conflict'))
    rc, out, err = xaimm('explain', '--config', tmp_path/'s.yaml', '--out', tmp_path/'out')
    assert rc == 2 and "explain.split='conflict': the data has no such split" in err and not (tmp_path/'out').exists()
    rows = p.read_text().splitlines()
    rows[5] = rows[5].replace('img/4.png', 'img/missing.png')
    p.write_text('\n'.join(rows) + '\n')
    cfg = write_config(tmp_path/'c.yaml', data)
    for cmd in (['run'], ['train'], ['explain']):
        rc, out, err = xaimm(*cmd, '--config', cfg, '--out', tmp_path/'out')
        assert rc == 2 and 'data.csv, row 5 (line 6)' in err and 'missing.png not found' in err, err
        assert not (tmp_path/'out').exists()  # nothing half-written
    rc, out, err = xaimm('init', '--data', p, '--out', tmp_path/'i.yaml')
    assert rc == 2 and 'row 5 (line 6)' in err and not (tmp_path/'i.yaml').exists()
    rc, out, err = xaimm('init', '--data', tmp_path/'img', '--out', tmp_path/'i.yaml')
    assert rc == 2 and 'a .csv/.tsv table, a .jsonl file, a COCO folder' in err
