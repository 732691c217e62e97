"Edge cases of xaimm_nb.data.core: tokenizers, MMDataset, splits, DataLoaders, CSV/folder sources."
import os, pickle, warnings
os.environ.setdefault('HF_HUB_OFFLINE', '1'); os.environ.setdefault('TRANSFORMERS_OFFLINE', '1'); os.environ.setdefault('MPLBACKEND', 'Agg')
from pathlib import Path
import numpy as np, pytest, torch
from PIL import Image
from xaimm_nb.data.core import *
from xaimm_nb.data.synth import ROLES, SHAPES, SynthConfig, SynthMM, synth_vocab

CFG = SynthConfig(n_classes=3, size=32, p_text_s=1., n_train=40, n_valid=12, n_test=12, n_conflict=12, n_clean=12, n_attacked=12)

# ---------------------------------------------------------------- tokenizers
def test_word_tokenizer_basics():
    t = WordTokenizer(['Red', 'circle', 'red'], max_len=6)
    test = t('RED Circle')                       # a single string, lower-cased
    assert test['input_ids'].tolist() == [[2, 4, 5, 3, 0, 0]] and test['attention_mask'].tolist() == [[1, 1, 1, 1, 0, 0]]
    assert len(t) == 6 and t.itos[4:] == ['red', 'circle']
    assert t([''])['input_ids'].tolist() == [[2, 3, 0, 0, 0, 0]]
    e = t(['red square circle circle circle'], max_length=4, padding='longest')
    assert e['input_ids'].tolist() == [[2, 4, 1, 3]] and e.word_ids(0) == [None, 0, 1, None]
    e = t([['red,', 'circle']], is_split_into_words=True)
    assert t.convert_ids_to_tokens(e['input_ids'][0]) == ['[CLS]', 'red', '[UNK]', 'circle', '[SEP]', '[PAD]']
    assert e.word_ids(0) == [None, 0, 0, 1, None, None]
    with pytest.raises(ValueError, match="pad_to='sideways'"): WordTokenizer([], pad_to='sideways')
    with pytest.raises(ValueError, match="pad_to='left'"): t(['a'], padding='left')

def test_word_tokenizer_unknown_words_warn_once():
    "Real captions through the `tiny` tokenizer: one warning per tokenizer (share + examples + the fix), all counted."
    im = np.zeros((8, 8, 3), np.uint8)
    src = [dict(image=im, caption=c, y=0, s=0) for c in ['a ginger tabby cat on a sofa', 'A cat!', 'a red circle'] * 4]
    with warnings.catch_warnings(record=True) as ws:
        warnings.simplefilter('always')
        ds = MMDataset(src, 'word')
        for _ in range(2): [ds[i] for i in range(len(ds))]; ds.batch(range(len(ds)))
        [get_tokenizer('word')(['the cat'])]                 # a second tokenizer warns for itself
    msgs = [str(w.message) for w in ws]
    assert len(msgs) == 2, msgs
    assert '4 of 7 words (57%)' in msgs[0] and "'ginger', 'tabby', 'cat', 'sofa'" in msgs[0], msgs[0]
    assert 'WordTokenizer.from_texts' in msgs[0] and "get_tokenizer('minilm')" in msgs[0]
    assert dict(ds.tok.unknown) == {'ginger': 4, 'tabby': 4, 'cat': 8, 'sofa': 4, '!': 4}
    with warnings.catch_warnings():                        # SynthMM captions are all in the vocabulary
        warnings.simplefilter('error'); MMDataset(SynthMM(CFG), 'word').batch(range(40))

def test_word_tokenizer_from_texts():
    g = WordTokenizer.from_texts(['b c c', 'C d'], base=['a'], min_freq=2, max_len=8, pad_to='longest')
    assert g.itos == ['[PAD]', '[UNK]', '[CLS]', '[SEP]', 'a', 'c'] and (g.max_len, g.pad_to) == (8, 'longest')
    s = WordTokenizer.from_texts([])
    assert s.itos == get_tokenizer('word').itos      # default base: the SynthMM vocabulary, same ids

def test_get_tokenizer_kinds():
    w = get_tokenizer('word', max_len=16, pad_to='longest')
    assert isinstance(w, WordTokenizer) and len(w) == 4 + len(synth_vocab()) and w.max_len == 16
    assert get_tokenizer(w) is w
    m = get_tokenizer('minilm')
    assert isinstance(m, HFTokenizer) and m.pad_token_id == 0 and len(m) == 30522
    assert m([''])['input_ids'][0].tolist()[:3] == [101, 102, 0] and m([''])['input_ids'].shape == (1, 128)
    raw = m.tok
    w2 = get_tokenizer(raw, max_len=8)             # a loaded HF tokenizer gets wrapped
    assert isinstance(w2, HFTokenizer) and w2(['a b c d e f g h i j'])['input_ids'].shape == (1, 8)
    assert pickle.loads(pickle.dumps(m)).max_len == 128

def test_get_tokenizer_unloadable(tmp_path):
    with pytest.raises(ValueError, match="could not be loaded") as e: get_tokenizer(str(tmp_path))
    assert 'HF_HUB_OFFLINE=0' in str(e.value) and 'local folder' in str(e.value)

# ---------------------------------------------------------------- token ground truth
def _spell(b, i, role):
    return ''.join(t.lstrip('#') for t, g in zip(b['tokens'][i], b['token_gt'][i].tolist()) if g == ROLES.index(role))

@pytest.mark.parametrize('tok', ['word', 'minilm'])
def test_token_gt_shape_and_artefact_roles(tok):
    cfg = SynthConfig(n_classes=8, size=32, task='redundant', rho_ya=1., artefact_class=6, p_text_a=1., n_train=64)
    src = SynthMM(cfg); b = MMDataset(src, tok).batch(range(64))
    seen = set()
    for i in range(64):
        d = src[i]; w = d['words']
        assert _spell(b, i, 'shape') == w[4] == SHAPES[d['visual']]   # 'hexagon' is 3 WordPiece tokens
        assert _spell(b, i, 'artefact') == ('andacornertag' if d['a'] else '')
        assert _spell(b, i, 'label') == ''                             # redundant task: no material role
        seen.add(w[4])
    assert 'hexagon' in seen

def test_token_gt_truncated():
    b = MMDataset(SynthMM(CFG), get_tokenizer('minilm', max_len=6)).batch(range(4))
    assert b['input_ids'].shape == b['token_gt'].shape == (4, 6)
    assert b['token_gt'][:, 4].eq(ROLES.index('label')).all() and b['token_gt'][:, [0, 5]].eq(0).all()  # [CLS] a size colour material [SEP]

# ---------------------------------------------------------------- MMDataset
def test_mmdataset_stats_idxs_and_resize():
    src = SynthMM(CFG)
    ds = MMDataset(src, 'word', size=48, mean=(.5, .5, .5), std=(.25, .25, .25), idxs=[5, 2])
    assert len(ds) == 2 and ds.size == 48
    x, ids, am, y, s = ds[1]
    assert x.shape == (3, 48, 48) and y.item() == src[2]['y'] and s.item() == src[2]['s']
    raw = ds.batch([1])['raw'][0].permute(2, 0, 1).float() / 255
    assert torch.allclose(x * .25 + .5, raw, atol=1 / 255)
    with pytest.raises(IndexError): ds[2]

def test_mmdataset_tokenises_once():
    src = SynthMM(CFG); calls = []
    class Counting(WordTokenizer):
        def __call__(self, *a, **k): calls.append(1); return super().__call__(*a, **k)
    ds = MMDataset(src, Counting(synth_vocab()))
    for _ in range(2): [ds[i] for i in range(5)]; ds.batch(range(5))
    assert len(calls) == 5

# ---------------------------------------------------------------- stratified split
def test_stratified_split_properties():
    rng = np.random.default_rng(0)
    y, g = rng.choice(['a', 'b', 'c'], 97), rng.integers(0, 3, 97)
    for pct in (.1, .25, .5):
        tr, va = stratified_split(y, g, pct, seed=2)
        assert len(va) == round(97 * pct) and len(np.union1d(tr, va)) == 97 and not np.intersect1d(tr, va).size
        for k in set(zip(y, g)):
            n = sum((y == k[0]) & (g == k[1])); nv = sum((y[va] == k[0]) & (g[va] == k[1]))
            assert abs(nv - pct * n) < 1
    tr, va = stratified_split([0] * 5 + [1] * 5, valid_pct=.2)
    assert sorted(np.asarray([0] * 5 + [1] * 5)[va].tolist()) == [0, 1]
    with pytest.raises(ValueError, match="valid_pct=1.2"): stratified_split(y, g, 1.2)

# ---------------------------------------------------------------- DataLoaders
def test_dataloaders_shapes_and_passthrough():
    dd = synth_datasets(CFG, 'word', splits=('train', 'valid'))
    dls = mm_dataloaders(dd['train'], dd['valid'], bs=16, device='cpu')
    assert dls.train_ds is dd['train'] and dls.n_inp == 3 and len(dls.train) == 2  # 40 // 16, last partial batch dropped
    assert len(dls.valid) == 1 and dls.valid.one_batch()[0].shape == (12, 3, 32, 32)
    assert len(mm_dataloaders(dd['train'], dd['valid'], bs=64).train) == 1        # fewer samples than bs: kept

# ---------------------------------------------------------------- CSV / folder sources
def _png(p, c=(10, 20, 30), size=(16, 12)):
    p.parent.mkdir(parents=True, exist_ok=True); Image.new('RGB', size, c).save(p); return p

def _csv(tmp, text, name='d.csv'):
    (tmp / name).write_text(text); return tmp / name

@pytest.fixture
def imgs(tmp_path):
    for i in range(3): _png(tmp_path / f'i/{i}.png', (50 * i, 0, 0))
    return tmp_path

def test_csv_header_and_file_errors(imgs):
    with pytest.raises(FileNotFoundError, match="table not found"): CSVSource(imgs / 'nope.csv')
    with pytest.raises(ValueError, match=r"missing column\(s\) \['protected'\]"): CSVSource(_csv(imgs, 'image_path,text,label\ni/0.png,a,b\n'))
    with pytest.raises(ValueError, match="no usable rows"): CSVSource(_csv(imgs, 'image_path,text,label,protected\n'))
    with pytest.raises(ValueError, match="on_error='ignore'"): CSVSource(_csv(imgs, 'image_path,text,label,protected\n'), on_error='ignore')

def test_csv_line_numbers_multiline_caption(imgs):
    p = _csv(imgs, 'image_path,text,label,protected\ni/0.png,a,x,f\ni/1.png,"two\nlines",x,f\ni/none.png,c,x,f\n')
    with pytest.raises(FileNotFoundError, match=r"d.csv, row 3 \(line 5\): image file .*none.png not found"): CSVSource(p)

def test_csv_escapes_and_absolute_inside(imgs):
    for v in ('i/../../x.png', '../i/0.png'):
        with pytest.raises(ValueError, match="points outside"): CSVSource(_csv(imgs, f'image_path,text,label,protected\n{v},a,x,f\n'))
    assert len(CSVSource(_csv(imgs, f'image_path,text,label,protected\n{imgs / "i/0.png"},a,x,f\n'))) == 1  # absolute, inside
    assert len(CSVSource(_csv(imgs, 'image_path,text,label,protected\ni/../i/0.png,a,x,f\n'))) == 1

def test_csv_truncated_and_later_damage(imgs):
    d = (imgs / 'i/0.png').read_bytes(); (imgs / 'i/t.png').write_bytes(d[:len(d) // 2])
    with pytest.raises(ValueError, match=r"row 1 \(line 2\): image file .*t.png is not a readable image"):
        CSVSource(_csv(imgs, 'image_path,text,label,protected\ni/t.png,a,x,f\n'))
    src = CSVSource(_csv(imgs, 'image_path,text,label,protected\ni/2.png,a,x,f\n'))
    (imgs / 'i/2.png').write_bytes(b'garbage')
    with pytest.raises(ValueError, match=r"2.png: could not be decoded"): src[0]

def test_csv_label_mapping(imgs):
    h = 'image_path,text,label,protected\n'
    s = CSVSource(_csv(imgs, h + 'i/0.png,a,2,1.0\ni/1.png,b,0.0,0\n'))               # integers (pandas floats too)
    assert s.classes == ['0', '1', '2'] and s.labels()['y'].tolist() == [2, 0] and s.labels()['s'].tolist() == [1, 0]
    s = CSVSource(_csv(imgs, h + 'i/0.png,a,dog,m\ni/1.png,b,1,f\n'), classes=['cat', 'dog'], groups=['f', 'm'])
    assert s.labels()['y'].tolist() == [1, 1] and s.labels()['s'].tolist() == [1, 0]
    with pytest.raises(ValueError, match=r"row 1 \(line 2\): unknown protected value 'x'"):
        CSVSource(_csv(imgs, h + 'i/0.png,a,dog,x\n'), groups=['f', 'm'])
    with pytest.raises(ValueError, match=r"missing protected \(''\)"): CSVSource(_csv(imgs, h + 'i/0.png,a,dog,\n'))
    with pytest.raises(ValueError, match=r"missing label \(None\)"): CSVSource(_csv(imgs, h + 'i/0.png,a\n'))

def test_csv_masks_and_boxes(imgs):
    Image.new('L', (10, 10)).save(imgs / 'i/small.png')
    h = 'image_path,text,label,protected,mask_path,bbox\n'
    with pytest.raises(ValueError, match=r"mask .*small.png is \(10, 10\) but image .*0.png is \(16, 12\)"):
        CSVSource(_csv(imgs, h + 'i/0.png,a,x,f,i/small.png,\n'))
    for b in ('0 0 17 5', '1 2 3', '4 4 2 8', 'a b c d'):
        with pytest.raises(ValueError, match="is not 'x0 y0 x1 y1'"): CSVSource(_csv(imgs, h + f'i/0.png,a,x,f,,{b}\n'))
    s = CSVSource(_csv(imgs, h + 'i/0.png,a,x,f,,"0,0,16,12"\ni/1.png,b,x,f,,\n'))
    assert s[0]['masks']['object'].all() and s[0]['masks']['object'].shape == (12, 16) and s[1]['masks'] == {}
    b = MMDataset(s, 'word', size=16).batch([0, 1])
    assert b['masks'] == {} and b['raw'].shape == (2, 16, 16, 3) and 'artefact' not in b

def test_csv_tsv_and_dataloaders_split(imgs):
    rows = ''.join(f'i/{i % 3}.png\tcaption {i}\t{"ab"[i % 2]}\t{"fm"[i // 2 % 2]}\n' for i in range(20))
    s = CSVSource(_csv(imgs, 'image_path\ttext\tlabel\tprotected\n' + rows, 'd.tsv'))
    assert len(s) == 20 and s.classes == ['a', 'b'] and s.groups == ['f', 'm']
    dls = mm_dataloaders(s, tokenizer='minilm', size=32, bs=4, valid_pct=.2)
    assert len(dls.valid_ds) == 4 and sorted(dls.train_ds.idxs + dls.valid_ds.idxs) == list(range(20))
    va = s.labels()['y'][dls.valid_ds.idxs] * 2 + s.labels()['s'][dls.valid_ds.idxs]
    assert sorted(va.tolist()) == [0, 1, 2, 3]                         # one of each (label, group) stratum
    xb = dls.one_batch()
    assert xb[0].shape == (4, 3, 32, 32) and xb[1].shape == (4, 128)

def test_csv_skip_counts(imgs):
    text = 'image_path,text,label,protected\n' + 'i/0.png,a,x,f\n' + 'i/9.png,a,x,f\n' * 3 + ',a,x,f\n'
    with warnings.catch_warnings(record=True) as w:
        warnings.simplefilter('always'); s = CSVSource(_csv(imgs, text), on_error='skip')
    assert len(s) == 1 and s.n_skipped == 4 and len(w) == 1 and 'skipped 4 bad row(s)' in str(w[0].message)
    assert 'row 5 (line 6): empty image_path' in s.skipped[-1]
    with pytest.raises(ValueError, match="no usable rows"), warnings.catch_warnings():
        warnings.simplefilter('ignore'); CSVSource(_csv(imgs, 'image_path,text,label,protected\ni/9.png,a,x,f\n'), on_error='skip')

def test_folder_source(tmp_path):
    for c, i in (('cat', 0), ('dog', 1), ('dog', 2)): _png(tmp_path / f'im/{c}/{i}.png')
    caps = _csv(tmp_path, 'filename,caption,protected\ncat/0.png,a cat,m\ndog/1.png,a dog,f\ndog/2.png,dog,f\n', 'caps.csv')
    s = FolderSource(tmp_path / 'im', caps)
    assert s.classes == ['cat', 'dog'] and s.groups == ['f', 'm'] and s.labels()['s'].tolist() == [1, 0, 0]
    bad = _csv(tmp_path, 'filename,caption\ncat/0.png,a cat\ncat/7.png,a cat\n', 'bad.csv')
    with pytest.raises(FileNotFoundError, match=r"bad.csv, row 2 \(line 3\): image file .*cat/7.png not found"): FolderSource(tmp_path / 'im', bad)
    with pytest.raises(ValueError, match=r"missing column\(s\) \['caption'\]"):
        FolderSource(tmp_path / 'im', _csv(tmp_path, 'filename,text\ncat/0.png,a\n', 'h.csv'))

def test_show_batch_dict_and_names(imgs):
    s = CSVSource(_csv(imgs, 'image_path,text,label,protected\ni/0.png,a long caption that wraps over several lines,cat,f\n'))
    fig = show_batch(MMDataset(s, 'word'), n=4, ncols=2)
    assert len(fig.axes) == 2 and fig.axes[0].get_title() == 'y=0 (cat)\ns=0 (f)'

def test_dataloaders_seeded_order():
    import random
    def order(seed, g=0):
        random.seed(g); torch.manual_seed(g); np.random.seed(g)          # the global state must not matter
        dls = synth_dataloaders(CFG, 'word', bs=8, seed=seed)
        return [torch.cat([b[3] * 100 + b[4] for b in dls.train]).tolist() for _ in range(2)]
    a = order(1)
    assert a == order(1, g=5) and a != order(2) and a[0] != a[1]

# ---------------------------------------------------------------- paths stay inside the dataset (issue 17.2)
H = 'image_path,text,label,protected'

@pytest.fixture
def outside(tmp_path):
    "(a dataset folder holding i/0.png, an image outside it)"
    d = tmp_path / 'data'; _png(d / 'i/0.png')
    return d, _png(tmp_path / 'elsewhere/o.png')

def test_csv_paths_outside_refused(outside):
    d, o = outside
    (d / 'i/link.png').symlink_to(o); (d / 'i/dir').symlink_to(o.parent, target_is_directory=True)
    for v in (str(o), 'i/link.png', 'i/dir/o.png', '../elsewhere/o.png', 'i/../../elsewhere/o.png'):
        with pytest.raises(ValueError) as e: CSVSource(_csv(d, f'{H}\ni/0.png,a,x,f\n{v},a,x,f\n'))
        m = str(e.value)
        assert f"d.csv, row 2 (line 3): image_path {v!r} points outside {d.resolve()} (it resolves to {o.resolve()})" in m
        assert 'move the file inside' in m and 'allow_outside=True' in m
    with pytest.raises(ValueError, match=r"row 1 \(line 2\): mask_path '.*o.png' points outside"):
        CSVSource(_csv(d, f'{H},mask_path\ni/0.png,a,x,f,{o}\n'))
    s = CSVSource(_csv(d, f'{H}\n{o},a,x,f\ni/link.png,b,x,f\n../elsewhere/o.png,c,x,f\n'), allow_outside=True)
    assert len(s) == 3 and s[1]['image'].shape == (12, 16, 3) and s.allow_outside

def test_csv_paths_inside_and_root(outside):
    d, o = outside
    (d / 'i/alias.png').symlink_to(d / 'i/0.png')                     # a link that stays inside is fine
    assert len(CSVSource(_csv(d, f'{H}\n{d / "i/0.png"},a,x,f\ni/alias.png,a,x,f\n'))) == 2
    p = _csv(d, f'{H}\no.png,a,x,f\n')
    assert CSVSource(p, root=o.parent).rows[0]['image'] == o.resolve()  # `root` replaces the CSV's folder...
    with pytest.raises(ValueError, match=f"points outside {o.parent.resolve()}"):   # ...also as the fence
        CSVSource(_csv(d, f'{H}\n{d / "i/0.png"},a,x,f\n', 'e.csv'), root=o.parent)
    assert len(CSVSource(p, image_root=o.parent)) == 1                 # the former name still works
    with pytest.raises(TypeError, match="pass `root` only"): CSVSource(p, root=o.parent, image_root=o.parent)

def test_csv_skip_never_opens_outside(outside, monkeypatch):
    d, o = outside
    (d / 'i/link.png').symlink_to(o)
    opened, real = [], Image.open
    monkeypatch.setattr(Image, 'open', lambda fp, *a, **k: opened.append(Path(fp).resolve()) or real(fp, *a, **k))
    rows = f'{H},mask_path\n{o},a,x,f,\ni/link.png,a,x,f,\ni/0.png,a,x,f,{o}\ni/0.png,a,x,f,\n'
    with warnings.catch_warnings(record=True) as w:
        warnings.simplefilter('always'); s = CSVSource(_csv(d, rows), on_error='skip'); s[0]
    assert opened and all(p.is_relative_to(d.resolve()) for p in opened), opened      # nothing outside was opened
    assert len(s) == 1 and 'skipped 3 bad row(s)' in str(w[0].message) and all('points outside' in m for m in s.skipped)

def test_folder_source_outside(tmp_path):
    _png(tmp_path / 'im/cat/0.png'); o = _png(tmp_path / 'o/x.png')
    (tmp_path / 'im/dog').mkdir(); (tmp_path / 'im/dog/1.png').symlink_to(o)
    caps = _csv(tmp_path, 'filename,caption\ncat/0.png,a cat\ndog/1.png,a dog\n', 'caps.csv')
    with pytest.raises(ValueError, match=r"caps.csv, row 2 \(line 3\): filename 'dog/1.png' points outside"):
        FolderSource(tmp_path / 'im', caps)
    assert FolderSource(tmp_path / 'im', caps, allow_outside=True).labels()['y'].tolist() == [0, 1]
    with pytest.raises(ValueError, match="put the image in a subfolder"):   # absolute names carry no class folder
        FolderSource(tmp_path / 'im', _csv(tmp_path, f'filename,caption\n{tmp_path / "im/cat/0.png"},a cat\n', 'a.csv'))

# ---------------------------------------------------------------- image modes (issue 17.3)
def _save(p, im, **kw):
    p.parent.mkdir(parents=True, exist_ok=True); im.save(p, **kw); return p

def _one(tmp, name, **kw):
    "A CSVSource over the single image `name` in `tmp`."
    return CSVSource(_csv(tmp, f'{H}\n{name},a,x,f\n', Path(name).name + '.csv'), **kw)

def test_csv_16bit_grey_png(tmp_path):
    v = np.arange(0, 65536, 257, dtype=np.uint16)[None].repeat(3, 0)   # 3 x 256, 0..65535
    _save(tmp_path / 'g.png', Image.fromarray(v)); assert Image.open(tmp_path / 'g.png').mode == 'I;16'
    a = _one(tmp_path, 'g.png')[0]['image']
    assert a.dtype == np.uint8 and a.shape == (3, 256, 3) and (a == np.arange(256, dtype=np.uint8)[None, :, None]).all()

@pytest.mark.parametrize('mode', ['1', 'L', 'P', 'RGB', 'RGBX', 'CMYK', 'YCbCr'])
def test_to_rgb8_8bit_modes_as_pil(mode):
    im = Image.fromarray(np.random.default_rng(0).integers(0, 256, (5, 7, 3), np.uint8)).convert(mode)
    a = to_rgb8(im)
    assert a.dtype == np.uint8 and a.shape == (5, 7, 3) and (a == np.array(im.convert('RGB'))).all()

def test_to_rgb8_16_and_32_bit(tmp_path):
    v = np.array([[0, 1, 128, 129, 32896, 65534, 65535]], np.uint16)
    want = np.rint(v / 257).astype(np.uint8)
    tif = Image.open(_save(tmp_path / 't.tif', Image.fromarray(v)))
    for im in (Image.fromarray(v), Image.fromarray(v.astype('>u2')), tif):
        assert im.mode.startswith('I;16') and (to_rgb8(im)[..., 1] == want).all(), im.mode
    (tmp_path / 'g.pgm').write_bytes(b'P5\n7 1\n65535\n' + v.astype('>u2').tobytes())       # Pillow: mode 'I'
    im = Image.open(tmp_path / 'g.pgm'); assert im.mode == 'I' and (to_rgb8(im)[..., 0] == want).all()
    i32 = np.array([[0, 2**16, 2**30, 2**31 - 1]], np.int32)
    im = Image.open(_save(tmp_path / 'i.tif', Image.fromarray(i32))); assert im.mode == 'I'
    assert to_rgb8(im)[0, :, 2].tolist() == [0, 0, 128, 255]                # the type's range, not the image's
    with pytest.raises(ValueError, match=r"n.tif: mode 'I' \(32-bit integer\) has values down to -7"):
        to_rgb8(Image.open(_save(tmp_path / 'n.tif', Image.fromarray(np.array([[-7, 5]], np.int32)))))

def test_to_rgb8_float(tmp_path):
    im = Image.open(_save(tmp_path / 'f.tif', Image.fromarray(np.array([[0, .25, .5, 1]], np.float32))))
    assert im.mode == 'F' and to_rgb8(im)[0, :, 0].tolist() == [0, 64, 128, 255]
    for bad in ([[0, 1.5]], [[-.1, .5]], [[np.nan, .5]]):
        with pytest.raises(ValueError, match=r"x.tif, row 2: mode 'F' \(float\) values span .* not \[0, 1\]"):
            to_rgb8(Image.fromarray(np.array(bad, np.float32)), 'x.tif, row 2')
    _save(tmp_path / 'big.tif', Image.fromarray(np.array([[0, 300]], np.float32)))
    s = _one(tmp_path, 'big.tif')                                     # the range shows only when decoded
    with pytest.raises(ValueError, match=r"big.tif.csv, row 1 \(line 2\): .*big.tif: mode 'F' \(float\) values span"):
        s[0]

def test_to_rgb8_alpha_over_white(tmp_path):
    assert to_rgb8(Image.new('RGBA', (1, 1), (10, 20, 30, 0))).tolist() == [[[255, 255, 255]]]
    assert to_rgb8(Image.new('RGBA', (1, 1), (10, 20, 30, 255))).tolist() == [[[10, 20, 30]]]
    assert to_rgb8(Image.new('LA', (1, 1), (0, 128))).tolist() == [[[127, 127, 127]]]
    pa = Image.new('PA', (1, 1)); pa.putpalette([0, 0, 255]); assert to_rgb8(pa).tolist() == [[[255, 255, 255]]]
    p = Image.new('P', (2, 1)); p.putpalette([0, 0, 255, 255, 0, 0]); p.putpixel((1, 0), 1)
    p = Image.open(_save(tmp_path / 'p.png', p, transparency=0)); assert 'transparency' in p.info
    assert to_rgb8(p).tolist() == [[[255, 255, 255], [255, 0, 0]]]

@pytest.mark.parametrize('fmt', ['png', 'jpg'])
def test_exif_orientation_sizes_boxes_masks(tmp_path, fmt):
    ex = Image.Exif(); ex[274] = 6                      # turned 90°: the 16x12 pixels show a 12x16 picture
    im = Image.new('RGB', (16, 12), 'white'); im.paste((200, 0, 0), (0, 0, 4, 12))      # red left band: top once turned
    _save(tmp_path / f'r.{fmt}', im, exif=ex)
    m = np.zeros((16, 12), np.uint16); m[:4] = 40000; _save(tmp_path / 'm.png', Image.fromarray(m))
    s = CSVSource(_csv(tmp_path, f'{H},mask_path,bbox\nr.{fmt},a,x,f,m.png,\nr.{fmt},b,x,f,,0 0 12 16\n'))
    a = s[0]['image']
    assert a.shape == (16, 12, 3) and a[:4, :, 0].min() > 150 and a[4:, :, 1].min() > 200
    assert (s[0]['masks']['object'] == (m > 0)).all() and s[1]['masks']['object'].all()
    with pytest.raises(ValueError, match=r"bbox '0 0 16 12' is not .* <= 12, 0 <= y0 < y1 <= 16"):
        CSVSource(_csv(tmp_path, f'{H},bbox\nr.{fmt},b,x,f,0 0 16 12\n', 'b.csv'))
    _save(tmp_path / 'flat.png', Image.new('L', (16, 12)))
    with pytest.raises(ValueError, match=r"mask .*flat.png is \(16, 12\) but image .*r.\w+ is \(12, 16\)"):
        CSVSource(_csv(tmp_path, f'{H},mask_path\nr.{fmt},a,x,f,flat.png\n', 'c.csv'))

def test_masks_any_mode(tmp_path):
    v = np.zeros((12, 16), np.uint16); v[2:5, 3:9] = 1; v[6, 6] = 65535; _png(tmp_path / 'i.png')
    for name, im in (('m16.png', Image.fromarray(v)), ('m1.png', Image.fromarray(v > 0)),
                     ('mf.tif', Image.fromarray(v.astype(np.float32))),
                     ('mp.png', Image.fromarray((v > 0).astype(np.uint8) * 9).convert('P'))):
        _save(tmp_path / name, im)
        s = CSVSource(_csv(tmp_path, f'{H},mask_path\ni.png,a,x,f,{name}\n', name + '.csv'))
        assert (s[0]['masks']['object'] == (v > 0)).all(), name
    assert to_mask(Image.new('RGBA', (1, 1), (0, 0, 0, 255))).tolist() == [[False]]

def test_refused_modes_and_frames(tmp_path):
    _save(tmp_path / 'lab.tif', Image.new('LAB', (4, 4)))
    _save(tmp_path / 'a.gif', Image.new('RGB', (4, 4)), save_all=True, append_images=[Image.new('RGB', (4, 4), 'red')])
    _save(tmp_path / 'a.tif', Image.new('L', (4, 4)), save_all=True, append_images=[Image.new('L', (4, 4), 9)])
    for name, msg in (('lab.tif', r"image mode 'LAB' is not supported \(supported: 1, L, P"),
                      ('a.gif', r"GIF image \(mode 'P'\) with 2 frames"),
                      ('a.tif', r"TIFF image \(mode 'L'\) with 2 frames")):
        with pytest.raises(ValueError, match=rf"{name}.csv, row 1 \(line 2\): image file .*{name}: {msg}"):
            _one(tmp_path, name)
    hsv = Image.new('HSV', (1, 1))
    with pytest.raises(ValueError, match=r"hsv: image mode 'HSV' is not supported"): to_rgb8(hsv, 'hsv')
    with pytest.raises(ValueError, match=r"m: image mode 'HSV' is not supported"): to_mask(hsv, 'm')

def test_mpo_first_frame(tmp_path):
    p = _save(tmp_path / 'c.mpo', Image.new('RGB', (8, 6), (250, 0, 0)), save_all=True,
              append_images=[Image.new('RGB', (8, 6), (0, 0, 250))])
    assert Image.open(p).n_frames == 2
    a = _one(tmp_path, 'c.mpo')[0]['image']
    assert a.shape == (6, 8, 3) and a[..., 0].min() > 200

def test_csv_image_changed_after_build(imgs):
    s = _one(imgs, 'i/0.png'); _png(imgs / 'i/0.png', size=(8, 8))
    with pytest.raises(ValueError, match=r"row 1 \(line 2\): image .*0.png is \(8, 8\), not \(16, 12\) as when"):
        s[0]
