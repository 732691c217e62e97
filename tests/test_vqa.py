"Edge cases of SynthMM-VQA (`data.vqa`) and its training helpers (`train_vqa`)."
import pytest, torch
from xaimm_nb.core import from_dict, to_dict, ConfigError
from xaimm_nb.data.synth import SynthConfig, SynthMM, SHAPES
from xaimm_nb.data.vqa import QTYPES, VQAConfig, SynthVQA, vqa_answer, vqa_collate, vqa_tokenizer
from xaimm_nb.train_vqa import train_vqa, vilt_qa, warmup_cosine


def test_config_round_trip():
    c = VQAConfig(synth=SynthConfig(task='image', n_classes=5, n_groups=2), size=32, seed=4, qtypes=('tag', 'band'),
                  single=('train',))
    d = to_dict(c)
    assert d['synth']['size'] == 32 and d['synth']['seed'] == 4 and d['qtypes'] == ['tag', 'band']
    assert from_dict(VQAConfig, d) == c
    assert c.answers == [*SHAPES[:5], 'magenta', 'cyan', 'yes', 'no', 'wooden', 'metal', 'none']


def test_bad_keys_name_the_key():
    with pytest.raises(ConfigError, match='qtype'): from_dict(VQAConfig, dict(qtype=['shape']))
    with pytest.raises(ConfigError, match='grid=5'): from_dict(VQAConfig, dict(grid=5))
    with pytest.raises(ValueError, match="VQAConfig.synth"): VQAConfig(synth=dict(task='image'))


def test_subset_of_types_and_uneven_n():
    c = VQAConfig(qtypes=('band', 'material'), n_test=7)
    ds = SynthVQA(c, 'test', features=False)
    assert len(ds) == 7 and len(ds.pixels) == 4  # ceil(7 / 2) images
    assert ds.t['qtype'].tolist() == [1, 3] * 3 + [1]
    src = SynthMM(c.synth, 'test', n=4)
    assert [ds.answer_words[i] for i in range(7)] == [vqa_answer(q, src[i // 2]) for i, q in
                                                     zip(range(7), ['band', 'material'] * 4)]


def test_negative_indices_and_collate():
    ds = SynthVQA(VQAConfig(n_valid=10), 'valid', features=False)
    assert torch.equal(ds.batch([-1])['input_ids'], ds.batch([9])['input_ids'])
    with pytest.raises(IndexError, match='out of range'): ds.batch([-11])
    b = vqa_collate([ds[0], ds[3]])
    assert all(torch.equal(v, ds.batch([0, 3])[k]) for k, v in b.items())


def test_train_rejects_unknown_or_absent_types():
    c = VQAConfig(qtypes=('band',), n_train=8)
    ds = SynthVQA(c, 'train', features=False)
    m = vilt_qa(len(c.answers), 64, len(vqa_tokenizer(c)))
    with pytest.raises(ValueError, match="unknown question type"): train_vqa(m, ds, qtypes=['colour'], steps=1)
    with pytest.raises(ValueError, match="asks none of these"): train_vqa(m, ds, qtypes=['shape'], steps=1)


def test_warmup_cosine_ends_at_zero():
    f = [warmup_cosine(s, 100, 10) for s in range(101)]
    assert f[9] == 1 and f[100] == 0 and all(a >= b for a, b in zip(f[10:], f[11:]))
