"Dataset sources from the config (`xaimm_nb.data.sources`): tables, JSONL, COCO, HF datasets, splits, bad data."
import csv, json, os, warnings
import numpy as np, pytest
from PIL import Image
from xaimm_nb.core import ConfigError
from xaimm_nb.data.core import MMDataset
from xaimm_nb.data.synth import ROLES, SynthConfig, SynthMM
from xaimm_nb.data.sources import (COLUMNS, PLACEHOLDER, DataConfig, TableSource, JSONLSource, HFSource, COCOSource,
                                   SubsetSource, data_config, resolve_paths, split_source, load_splits)

os.environ.setdefault('HF_HUB_OFFLINE', '1')
HEAD = ['image_path', 'text', 'label', 'protected']

def write(p, header, rows, sep=','):
    p.parent.mkdir(parents=True, exist_ok=True)
    with open(p, 'w', newline='') as f: csv.writer(f, delimiter=sep).writerows([header, *rows])
    return p

@pytest.fixture
def tmp(tmp_path):
    (tmp_path/'img').mkdir()
    rng = np.random.default_rng(0)
    for i in range(4): Image.fromarray(rng.integers(0, 255, (12, 16, 3), np.uint8)).save(tmp_path/f'img/{i}.png')
    return tmp_path

def rows(n, split=None):
    "n rows: label i%2 (cat/dog), protected (i//2)%2, caption naming the animal; optional split column value."
    a = ['cat', 'dog']
    return [(f'img/{i % 4}.png', f'a {a[i % 2]} here', a[i % 2], 'fm'[(i//2) % 2], *([split(i)] if split else []))
            for i in range(n)]

# --- config section ---------------------------------------------------------------------------------------------------

def test_data_config_dispatch_and_errors():
    assert data_config(None) == SynthConfig() and data_config({'source': 'synth', 'n_classes': 3}).n_classes == 3
    dc = data_config(dict(source='jsonl', path='d.jsonl', classes=['a', 'b']))
    assert isinstance(dc, DataConfig) and dc.classes == ['a', 'b'] and data_config(dc) is dc
    for d, msg in [({'csv': 'x.csv'}, "unknown config key 'data.csv'"), ({'source': 'parquet'}, 'data.source: must be'),
                   (dict(source='csv', path='x', columns={'image': 3}), 'data.columns.image'),
                   (dict(source='csv', path='x', columns={'label': None}), 'data.columns.label'),
                   (dict(source='csv', path='x', columns={'image': None, 'text': None}), 'both null'),
                   (dict(source='csv', path='x', columns={'image': None, 'bbox': 'box'}), 'data.columns.bbox'),
                   (dict(source='coco', path='x', columns={'text': 'c'}), 'fixed fields'),
                   (dict(source='csv', path={'valid': 'v.csv'}), 'keys train'),
                   (dict(source='csv', path='x', test_frac=1.5), 'data.test_frac'),
                   (dict(source='csv', path='x', classes=['a', 'a']), 'data.classes'),
                   (dict(source='csv', path='x', image_size=0), 'data.image_size'),
                   (dict(source='coco', path='x', coco={'group_words': {'m': 'man'}}), 'data.coco.group_words.m'),
                   (dict(source='csv', path='x', on_error='ignore'), 'data.on_error')]:
        with pytest.raises(ConfigError, match=msg.replace('(', r'\(')): data_config(d)

def test_resolve_paths(tmp_path):
    d = {'seed': 1, 'data': dict(source='coco', path='coco', root='~/imgs', coco=dict(protected_file='g.csv'))}
    r = resolve_paths(d, tmp_path)
    assert r['data']['path'] == str(tmp_path/'coco') and r['data']['coco']['protected_file'] == str(tmp_path/'g.csv')
    assert r['data']['root'] == os.path.expanduser('~/imgs') and d['data']['path'] == 'coco'  # the input is unchanged
    assert resolve_paths({'data': {'n_classes': 2}}, tmp_path) == {'data': {'n_classes': 2}}

# --- splits -----------------------------------------------------------------------------------------------------------

def test_split_column(tmp):
    sp = ['train', 'train', 'train', 'train', 'validation', 'val', 'TEST', 'test']
    write(tmp/'d.csv', HEAD + ['split'], rows(8, lambda i: sp[i]))
    s = load_splits(dict(source='csv', path=str(tmp/'d.csv')))
    assert {k: len(v) for k, v in s.items()} == dict(train=4, valid=2, test=2)
    assert all(v.classes == ['cat', 'dog'] and v.groups == ['f', 'm'] for v in s.values())
    assert [s['test'][i]['caption'] for i in range(2)] == ['a cat here', 'a dog here']
    write(tmp/'d.csv', HEAD + ['split'], rows(4, lambda i: 'train') + [('img/0.png', 'a cow', 'cow', 'f', 'valid')])
    with pytest.raises(ValueError, match=r"d\.csv, row 5 \(line 6\): unknown label 'cow'"):
        load_splits(dict(source='csv', path=str(tmp/'d.csv')))
    write(tmp/'d.csv', HEAD + ['split'], rows(10, lambda i: 'train'))  # only train rows: valid and test are cut from it
    s = load_splits(dict(source='csv', path=str(tmp/'d.csv'), valid_frac=.2, test_frac=.2))
    assert {k: len(v) for k, v in s.items()} == dict(train=6, valid=2, test=2)

def test_separate_files(tmp):
    ps = {k: str(write(tmp/f'{k}.csv', HEAD, rows(n))) for k, n in dict(train=8, valid=4, test=4).items()}
    s = load_splits(dict(source='csv', path=ps))
    assert {k: len(v) for k, v in s.items()} == dict(train=8, valid=4, test=4)
    s = load_splits(dict(source='csv', path={'train': ps['train'], 'val': ps['valid']}, test_frac=.25), seed=3)
    assert {k: len(v) for k, v in s.items()} == dict(train=6, valid=4, test=2)
    assert s['valid'].path.name == 'valid.csv' and isinstance(s['test'], SubsetSource)
    s = load_splits(dict(source='csv', path=ps, classes=['dog', 'cat'], groups=['m', 'f', 'x']))  # the config's names
    assert s['test'].classes == ['dog', 'cat'] and s['test'][0]['y'] == 1 and s['train'].groups == ['m', 'f', 'x']
    write(tmp/'test.csv', HEAD, rows(2) + [('img/0.png', 'a pig', 'pig', 'x')])
    with pytest.raises(ValueError, match=r"test\.csv, row 3 \(line 4\): unknown label 'pig'"):
        load_splits(dict(source='csv', path=ps))
    with pytest.raises(ValueError, match=r"unknown label 'pig'"):
        load_splits(dict(source='csv', path=ps, groups=['f', 'm', 'x']))

@pytest.mark.parametrize('seed', range(6))
def test_stratified_split_keeps_proportions(tmp, seed):
    rng = np.random.default_rng(seed); n = int(rng.integers(40, 120))
    ys, ss = rng.integers(0, 3, n), rng.integers(0, 2, n)
    write(tmp/'d.csv', HEAD, [(f'img/{i % 4}.png', f'row {i}', y, s) for i, (y, s) in enumerate(zip(ys, ss))])
    vf, tf = rng.uniform(.1, .3), rng.uniform(.1, .3)
    s = load_splits(dict(source='csv', path=str(tmp/'d.csv'), valid_frac=vf, test_frac=tf), seed=seed)
    idx = {k: v.idxs for k, v in s.items()}
    assert sorted(np.concatenate(list(idx.values()))) == list(range(n))  # a partition
    for k, f in (('valid', vf), ('test', tf)):
        for st in set(zip(ys, ss)):
            m = (ys == st[0]) & (ss == st[1])
            assert abs(np.isin(np.flatnonzero(m), idx[k]).sum() - m.sum()*f) <= 1, (k, st)
    again = load_splits(dict(source='csv', path=str(tmp/'d.csv'), valid_frac=vf, test_frac=tf), seed=seed)
    assert all((again[k].idxs == idx[k]).all() for k in idx)

def test_split_source_and_subset(tmp):
    src = TableSource(write(tmp/'d.csv', HEAD, rows(20)))
    sp = split_source(src, .25, 0, seed=0)
    assert list(sp) == ['train', 'valid'] and (len(sp['train']), len(sp['valid'])) == (15, 5)
    v = sp['valid']
    assert v.classes == src.classes and v.modalities == ('image', 'text') and len(v.labels()['y']) == 5
    assert v[0]['caption'] == src[int(v.idxs[0])]['caption'] and 'valid' in repr(v)
    with pytest.raises(ValueError, match='together < 1'): split_source(src, .5, .5)
    with pytest.raises(ValueError, match='no sample'):
        split_source(TableSource(write(tmp/'e.csv', HEAD, rows(2))), .1, .1)

def test_synth_splits():
    s = load_splits({'n_classes': 2, 'n_train': 10})
    assert isinstance(s['train'], SynthMM) and len(s['train']) == 10 and 'conflict' in s

# --- table sources ----------------------------------------------------------------------------------------------------

def test_column_mapping_rationale_artefact(tmp):
    write(tmp/'d.tsv', ['file', 'caption', 'y', 'g', 'why', 'spurious', 'box'],
          [('img/0.png', 'A red car, parked.', 'car', 'a', 'red; car', 1, '2 2 8 6'),
           ('img/1.png', 'A bike.', 'bike', 'b', '', 0, '')], sep='\t')
    cols = dict(image='file', text='caption', label='y', protected='g', rationale='why', artefact='spurious',
                bbox='box')
    src = TableSource(tmp/'d.tsv', cols)
    d = src[0]
    assert d['words'] == ['A', 'red', 'car', ',', 'parked', '.'] and d['a'] == 1
    assert d['word_roles'] == ['other', 'label', 'label', 'other', 'other', 'other']
    assert d['masks']['object'].sum() == 24
    assert 'words' not in src[1] and src[1]['a'] == 0 and src[1]['masks'] == {}
    b = MMDataset(src, 'minilm').batch([0, 1])
    toks, gt = b['tokens'][0], b['token_gt'][0].tolist()
    assert [t for t, g in zip(toks, gt) if g == ROLES.index('label')] == ['red', 'car']
    assert b['token_gt'][1].sum() == 0 and b['artefact'].tolist() == [1, 0]
    with pytest.raises(ValueError, match=r"missing column\(s\) \['why2'\]"):
        TableSource(tmp/'d.tsv', dict(cols, rationale='why2'))

def test_text_only_and_image_only(tmp):
    write(tmp/'t.csv', ['comment', 'toxic', 'identity', 'words'],
          [('you are great', 0, 'x', ''), ('you are awful', 1, 'y', 'awful'), ('fine', 0, 'y', '')])
    cfg = dict(source='csv', path=str(tmp/'t.csv'), valid_frac=.34, test_frac=.33,
               columns=dict(image=None, text='comment', label='toxic', protected='identity', rationale='words'))
    src = TableSource(tmp/'t.csv', cfg['columns'])
    assert src.modalities == ('text',) and src.classes == ['0', '1'] and (src[0]['image'] == PLACEHOLDER).all()
    src[0]['image'][:] = 0; assert PLACEHOLDER.max() == 128  # items get a copy
    b = MMDataset(src, 'word').batch([1])
    assert b['images'].shape == (1, 3, 32, 32) and b['masks'] == {} and b['token_gt'][0].tolist()[3] == 1
    write(tmp/'bad.csv', ['comment', 'toxic', 'identity'], [('', 0, 'x')])
    with pytest.raises(ValueError, match=r"bad\.csv, row 1 \(line 2\): empty text \(column 'comment'\)"):
        TableSource(tmp/'bad.csv', dict(image=None, text='comment', label='toxic', protected='identity'))
    write(tmp/'i.csv', ['image_path', 'label', 'protected', 'bbox'], [('img/0.png', 'a', 'f', '0 0 4 4'),
                                                                      ('img/1.png', 'b', 'm', '')])
    im = TableSource(tmp/'i.csv', dict(text=None))
    assert im.modalities == ('image',) and im[0]['caption'] == '' and im[0]['masks']['object'].sum() == 16
    assert MMDataset(im, 'word').batch([0, 1])['input_ids'].shape[0] == 2
    with pytest.raises(ConfigError, match='columns.rationale'): TableSource(tmp/'i.csv', dict(text=None, rationale='r'))

def test_no_protected_column(tmp):
    write(tmp/'d.csv', ['image_path', 'text', 'label'], [r[:3] for r in rows(4)])
    src = TableSource(tmp/'d.csv', dict(protected=None))
    assert src.groups == ['all'] and set(src.labels()['s']) == {0}

def test_bad_rows(tmp):
    cases = [(('img/9.png', 'a', 'cat', 'f', '', ''), 'image file .* not found'),
             (('../x.png', 'a', 'cat', 'f', '', ''), r"image_path '\.\./x\.png' points outside"),
             (('img/0.png', 'a', '', 'f', '', ''), 'missing label'),
             (('img/0.png', 'a', 'cat', '', '', ''), 'missing protected'),
             (('img/0.png', 'a cat', 'cat', 'f', 'dog', ''), r"rationale word\(s\) \['dog'\]"),
             (('img/0.png', 'a', 'cat', 'f', '', 'maybe'), "artefact 'maybe' is not 0 or 1"),
             (('img/0.png', 'a', 'cat', 'f', '', '2'), "artefact '2'"),
             (('img/0.png', 'a', 'cat', 'f', '', ''), "artefact '' is not 0 or 1")]
    head = HEAD + ['rationale', 'artefact']
    for row, msg in cases:
        write(tmp/'d.csv', head, [('img/1.png', 'a dog', 'dog', 'm', 'dog', '0'), row])
        with pytest.raises((ValueError, FileNotFoundError), match=r'd\.csv, row 2 \(line 3\): ' + msg):
            TableSource(tmp/'d.csv')
    write(tmp/'d.csv', head, [('img/1.png', 'a dog', 'dog', 'm', 'dog', '0')] + [r for r, _ in cases])
    with pytest.warns(UserWarning, match='skipped 8 bad row'): src = TableSource(tmp/'d.csv', on_error='skip')
    assert len(src) == 1 and src.n_skipped == 8 and all(s.startswith(str(tmp/'d.csv')) for s in src.skipped)
    with pytest.raises(ValueError, match='no usable rows'):
        with warnings.catch_warnings():
            warnings.simplefilter('ignore'); TableSource(write(tmp/'e.csv', head, [cases[0][0]]), on_error='skip')
    assert len(TableSource(write(tmp/'o.csv', HEAD, [(str(tmp/'img/0.png'), 'a', 'b', 'c')]), root=tmp/'img',
                           allow_outside=True)) == 1

def test_bad_rows_through_the_config(tmp):
    write(tmp/'d.csv', HEAD + ['split'], rows(3, lambda i: 'train') + [('img/0.png', '', 'cat', 'f', 'train')])
    with pytest.raises(ValueError, match=r"d\.csv, row 4 \(line 5\): empty text"):
        load_splits(dict(source='csv', path=str(tmp/'d.csv')))
    write(tmp/'d.csv', HEAD + ['split'], rows(4, lambda i: ['train', 'tarin', 'valid', 'test'][i]))
    with pytest.raises(ValueError, match=r"row 2 \(line 3\): split 'tarin'"):
        load_splits(dict(source='csv', path=str(tmp/'d.csv')))
    with pytest.raises(FileNotFoundError, match='nope.csv'): load_splits(dict(source='csv', path=str(tmp/'nope.csv')))

# --- JSONL ------------------------------------------------------------------------------------------------------------

def test_jsonl(tmp):
    objs = [dict(img='img/0.png', txt='a red car', lab=1, grp='f', bbox=[1, 1, 5, 5], why=['red', 'car'], art=True),
            dict(img='img/1.png', txt='a bus', lab=0, grp='m', bbox=None, why=None, art=False)]
    (tmp/'d.jsonl').write_text('\n'.join(map(json.dumps, objs)) + '\n')
    cols = dict(image='img', text='txt', label='lab', protected='grp', rationale='why', artefact='art')
    src = JSONLSource(tmp/'d.jsonl', cols)
    assert src.classes == ['0', '1'] and src[0]['y'] == 1 and src[0]['box'].tolist() == [1, 1, 5, 5]
    assert src[0]['word_roles'] == ['other', 'label', 'label'] and src[0]['a'] == 1 and src[1]['a'] == 0
    (tmp/'b.jsonl').write_text(json.dumps(objs[0]) + '\n\n' + json.dumps({**objs[1], 'lab': None}) + '\n"x"\n'
                               + json.dumps({'img': 'img/0.png'}) + '\n{bad\n')
    with pytest.raises(ValueError, match=r"b\.jsonl, row 2 \(line 3\): missing label"): JSONLSource(tmp/'b.jsonl', cols)
    with pytest.warns(UserWarning): src = JSONLSource(tmp/'b.jsonl', cols, on_error='skip')
    assert len(src) == 1 and [s.split(': ', 1)[0].rsplit(', ', 1)[1] for s in src.skipped] == [
        'row 2 (line 3)', 'row 3 (line 4)', 'row 4 (line 5)', 'row 5 (line 6)']
    assert 'JSON str, not an object' in src.skipped[1]
    assert "missing key(s) ['txt', 'lab', 'grp', 'why'" in src.skipped[2]
    sp = [dict(objs[i % 2], split=k) for i, k in enumerate(['train', 'train', 'valid', 'test', 'test'])]
    (tmp/'s.jsonl').write_text('\n'.join(map(json.dumps, sp)))
    s = load_splits(dict(source='jsonl', path=str(tmp/'s.jsonl'), columns=cols))
    assert {k: len(v) for k, v in s.items()} == dict(train=2, valid=1, test=2)
    assert [s['test'][i]['y'] for i in (0, 1)] == [0, 1]

# --- COCO -------------------------------------------------------------------------------------------------------------

def _rle(m):
    "Uncompressed COCO RLE of mask `m` (column-major run lengths, starting with zeros), as in iscrowd annotations."
    f, counts, cur, n = m.flatten(order='F'), [], 0, 0
    for v in f:
        if v != cur: counts.append(n); cur, n = v, 0
        n += 1
    return {'counts': counts + [n], 'size': list(m.shape)}

def write_coco(root, sub, n=4, W=32, H=24, caps=None):
    "A COCO folder: image i has a person (small square) and a dog (polygon, larger) or a crowd of cats (RLE)."
    (root/sub).mkdir(parents=True, exist_ok=True); (root/'annotations').mkdir(exist_ok=True)
    imgs, anns, cap = [], [], []
    for i in range(1, n + 1):
        Image.new('RGB', (W, H), (30*i, 80, 120)).save(root/sub/f'{i:03d}.jpg')
        imgs.append(dict(id=i, file_name=f'{i:03d}.jpg', width=W, height=H))
        anns.append(dict(id=10*i, image_id=i, category_id=1, segmentation=[[1, 1, 5, 1, 5, 5, 1, 5]], area=16,
                         bbox=[1, 1, 4, 4], iscrowd=0))
        if i % 2:
            anns.append(dict(id=10*i + 1, image_id=i, category_id=2, segmentation=[[8, 2, 28, 2, 28, 20, 8, 20]],
                             area=360, bbox=[8, 2, 20, 18], iscrowd=0))
        else:
            m = np.zeros((H, W), np.uint8); m[10:22, 4:30] = 1
            anns.append(dict(id=10*i + 1, image_id=i, category_id=3, segmentation=_rle(m), area=int(m.sum()),
                             bbox=[4, 10, 26, 12], iscrowd=1))
        c = (caps or {}).get(i, [f"A {'man' if i < 3 else 'woman'} and {'dogs' if i % 2 else 'a cat'}.", 'Animals.'])
        cap += [dict(id=100*i + j, image_id=i, caption=t) for j, t in enumerate(c)]
    cats = [dict(id=1, name='person', supercategory='person'), dict(id=2, name='dog', supercategory='animal'),
            dict(id=3, name='cat', supercategory='animal')]
    inst = dict(images=imgs, annotations=anns, categories=cats)
    (root/f'annotations/instances_{sub}.json').write_text(json.dumps(inst))
    (root/f'annotations/captions_{sub}.json').write_text(json.dumps(dict(images=imgs, annotations=cap)))
    return root

def test_coco_masks_labels_captions(tmp_path):
    co = write_coco(tmp_path/'coco', 'train2017')
    src = COCOSource(co)
    assert (len(src), src.classes, src.groups) == (4, ['cat', 'dog'], ['female', 'male'])
    d = src[0]  # a man and dogs: label dog (the largest object), mask = the dog polygon only
    want = np.zeros((24, 32), bool); want[2:20, 8:28] = True
    assert d['y'] == 1 and d['s'] == 1 and (d['masks']['object'] == want).all() and d['box'].tolist() == [8, 2, 28, 20]
    assert d['caption'] == 'A man and dogs.'  # the first caption
    assert [w for w, r in zip(d['words'], d['word_roles']) if r != 'other'] == ['man', 'dogs']
    assert [r for w, r in zip(d['words'], d['word_roles']) if r != 'other'] == ['protected', 'label']
    m = np.zeros((24, 32), bool); m[10:22, 4:30] = True
    assert src[1]['y'] == 0 and (src[1]['masks']['object'] == m).all()  # crowd RLE through pycocotools
    b = MMDataset(src, 'word').batch([0, 1])
    assert b['masks']['object'].shape == (2, 24, 24) and (b['token_gt'] == ROLES.index('label')).sum() == 2
    assert COCOSource(co, 'supercategory').classes == ['animal']
    p = COCOSource(co, classes=['person'])
    assert p.classes == ['person'] and p[0]['masks']['object'].sum() == 16 and p[0]['y'] == 0

def test_coco_protected_and_drops(tmp_path):
    caps = {1: ['A man and a woman.'], 2: ['A cat.'], 3: ['A boy.', 'A dog.']}
    co = write_coco(tmp_path/'coco', 'val2017', caps=caps)
    with pytest.warns(UserWarning, match=r'left out 2 image\(s\)'):
        src = COCOSource(co/'annotations/instances_val2017.json')
    assert len(src) == 2 and src.groups == ['female', 'male'] and len(src.dropped) == 2
    assert 'several' in src.dropped[0] and '002.jpg: captions name no' in src.dropped[1]
    assert [src[i]['s'] for i in range(2)] == [1, 0]  # 003: a boy (captions of the image, not only the first)
    assert len(COCOSource(co, group_words=None).groups) == 1
    write(tmp_path/'g.csv', ['file_name', 'protected'], [('001.jpg', 'old'), ('002.jpg', 'young'), ('003.jpg', 'old')])
    with pytest.raises(ValueError, match=r"instances_val2017\.json, row 4 \(line 4\): missing protected"):
        COCOSource(co, protected_file=tmp_path/'g.csv')
    with pytest.warns(UserWarning): src = COCOSource(co, protected_file=tmp_path/'g.csv', on_error='skip')
    assert src.groups == ['old', 'young'] and src.n_skipped == 1 and src[1]['word_roles'] == ['other', 'label', 'other']
    assert 'words' not in src[0]  # 'A man and a woman.': no label word, and the group words are not the protected value

def test_coco_errors(tmp_path):
    co = write_coco(tmp_path/'coco', 'val2017', n=2)
    Image.new('RGB', (10, 10)).save(co/'val2017/002.jpg')
    with pytest.raises(ValueError, match=r"row 2 \(line 2\): image 002\.jpg is \(10, 10\).*annotations say \(32, 24\)"):
        COCOSource(co)
    (co/'val2017/002.jpg').unlink()
    with pytest.raises(FileNotFoundError, match='002.jpg not found'): COCOSource(co)
    write_coco(co, 'train2017', n=2)
    with pytest.raises(FileNotFoundError, match='expected one annotations/instances'): COCOSource(co)
    (co/'annotations/captions_train2017.json').unlink()
    with pytest.raises(FileNotFoundError, match='captions_train2017.json'):
        COCOSource(co/'annotations/instances_train2017.json')
    with pytest.raises(ValueError, match="label='area'"): COCOSource(co, 'area')

def test_coco_through_the_config(tmp_path):
    co = write_coco(tmp_path/'coco', 'train2017', n=8)
    write_coco(co, 'val2017', n=4)
    path = {k: str(co/f'annotations/instances_{s}.json') for k, s in (('train', 'train2017'), ('valid', 'val2017'))}
    s = load_splits(dict(source='coco', path=path, test_frac=.25), seed=0)
    assert {k: len(v) for k, v in s.items()} == dict(train=6, valid=4, test=2)
    assert s['valid'].classes == s['train'].classes == ['cat', 'dog'] and 'object' in s['test'][0]['masks']

# --- Hugging Face datasets --------------------------------------------------------------------------------------------

def _hf(n=4):
    import datasets
    rng = np.random.default_rng(1)
    ims = [Image.fromarray(rng.integers(0, 255, (10, 12, 3), np.uint8)) for _ in range(n)]  # in memory: stored as bytes
    return datasets.Dataset.from_dict(
        dict(image=ims, text=[f"a {'cat' if i % 2 == 0 else 'dog'}" for i in range(n)], label=[i % 2 for i in range(n)],
             group=[(i // 2) % 2 for i in range(n)], why=[['cat'], ['dog']]*(n//2)),
        features=datasets.Features(image=datasets.Image(), text=datasets.Value('string'),
                                   why=datasets.Sequence(datasets.Value('string')),
                                   label=datasets.ClassLabel(names=['cat', 'dog']),
                                   group=datasets.ClassLabel(names=['x', 'y']))), ims

def test_hf_in_memory_and_on_disk(tmp_path):
    import datasets
    ds, ims = _hf()
    cols = dict(image='image', protected='group', rationale='why')
    src = HFSource(ds, cols)
    assert (src.classes, src.groups, src.modalities) == (['cat', 'dog'], ['x', 'y'], ('image', 'text'))
    assert (src[1]['image'] == np.array(ims[1])).all() and src[1]['y'] == 1 and src[2]['s'] == 1
    assert src[1]['word_roles'] == ['other', 'label']
    ds.save_to_disk(tmp_path/'one')
    assert len(HFSource(tmp_path/'one', cols)) == 4
    s = load_splits(dict(source='hf', path=str(tmp_path/'one'), columns=cols, valid_frac=.25, test_frac=.25))
    assert {k: len(v) for k, v in s.items()} == dict(train=2, valid=1, test=1)
    datasets.DatasetDict(train=ds, validation=ds.select([0, 1]), test=ds.select([3])).save_to_disk(tmp_path/'dd')
    s = load_splits(dict(source='hf', path=str(tmp_path/'dd'), columns=cols))
    assert {k: len(v) for k, v in s.items()} == dict(train=4, valid=2, test=1) and s['test'][0]['y'] == 1
    with pytest.raises(ValueError, match=r"DatasetDict with splits \['train', 'validation', 'test'\]"):
        HFSource(tmp_path/'dd')
    with pytest.raises(ValueError, match=r"missing column\(s\) \['image_path', 'protected'\]"): HFSource(ds)
    with pytest.raises(FileNotFoundError, match='save_to_disk'): HFSource(tmp_path/'nothing')

def test_hf_paths_and_bad_rows(tmp):
    import datasets
    ds = datasets.Dataset.from_dict(dict(image_path=['img/0.png', 'img/1.png', '../etc/x.png'], text=['a', 'b', 'c'],
                                         label=['p', 'q', 'p'], protected=['f', 'm', 'f']))
    with pytest.raises(ValueError, match=r"row 3 \(line 3\): image_path '\.\./etc/x\.png' points outside"):
        HFSource(ds, root=tmp)
    with pytest.warns(UserWarning): src = HFSource(ds, root=tmp, on_error='skip')
    assert len(src) == 2 and src[1]['image'].shape == (12, 16, 3) and src.classes == ['p', 'q']

# --- image folder -----------------------------------------------------------------------------------------------------

def test_folder_through_the_config(tmp_path):
    for i, c in enumerate(['cat', 'dog']*5):
        (tmp_path/'imgs'/c).mkdir(parents=True, exist_ok=True)
        Image.new('RGB', (8, 8), (20*i, 0, 0)).save(tmp_path/f'imgs/{c}/{i}.png')
    write(tmp_path/'caps.csv', ['filename', 'caption', 'protected'],
          [(f"{c}/{i}.png", f'a {c}', 'fm'[i//2 % 2]) for i, c in enumerate(['cat', 'dog']*5)])
    s = load_splits(dict(source='folder', path=str(tmp_path/'caps.csv'), root=str(tmp_path/'imgs'), valid_frac=.2,
                         test_frac=.2))
    assert {k: len(v) for k, v in s.items()} == dict(train=6, valid=2, test=2) and s['valid'].classes == ['cat', 'dog']
