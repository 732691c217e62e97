"The `xaimm` command end to end, as a user runs it (subprocess, tiny config)."
import json, os, subprocess, sys
from pathlib import Path
import pytest

ROOT = Path(__file__).resolve().parents[1]
ENV = {**os.environ, 'HF_HUB_OFFLINE': '1', 'TRANSFORMERS_OFFLINE': '1', 'MPLBACKEND': 'Agg'}
STAGES = ['synth', 'classifier', 'explain', 'gan', 'dual', 'r2r']

def xaimm(*args, cwd=ROOT):
    return subprocess.run([sys.executable, '-c', 'import sys; from xaimm_nb.cli import main; sys.exit(main())', *args],
                          cwd=cwd, capture_output=True, text=True, env=ENV, timeout=900)

@pytest.fixture(scope='module')
def tiny_run(tmp_path_factory):
    out = tmp_path_factory.mktemp('cli')/'run'
    r = xaimm('run', '--config', 'configs/tiny.yaml', '--out', str(out))
    assert r.returncode == 0, r.stderr[-2000:]
    return out, r

def test_run_tiny_pipeline_then_resume(tiny_run):
    out, _ = tiny_run
    m = json.loads((out/'results'/'metrics.json').read_text())
    assert set(STAGES) <= set(m) and 0 <= m['classifier']['test']['accuracy'] <= 1
    s = m['summary']
    assert {'test/accuracy', 'test/macro_f1', 'test/delta_bias', 'gan/fid_synthmm', 'gan/ssim_nearest',
            'xai/gradcampp/image/iou', 'xai/gradcampp/image/pointing', 'xai/chefer/text/auc_pos', 'r2r/pclarc/conflict_acc', 'dual/recall@1/i2t', 'dual_xai/m2ib/text/auc_pos'} <= set(s)
    for f in ('models/best.pt', 'models/wgan_last.pt', 'visualizations/confusion_test.png', 'visualizations/explanations.png',
              'visualizations/xai_table.png', 'visualizations/gan_samples.png', 'visualizations/r2r_rounds.png',
              'results/xai_metrics.json', 'results/r2r.json', 'results/dual_xai.json', 'visualizations/dual_explanations.png', 'results/gan_metrics.json', 'results/summary.md'):
        assert (out/f).exists(), f
    r2 = xaimm('run', '--config', 'configs/tiny.yaml', '--out', str(out))
    assert r2.returncode == 0 and r2.stdout.count('skipped') == len(STAGES)

def test_same_config_and_seed_give_byte_identical_metrics(tiny_run, tmp_path):
    out, _ = tiny_run
    r = xaimm('run', '--config', 'configs/tiny.yaml', '--out', str(tmp_path/'again'))
    assert r.returncode == 0, r.stderr[-2000:]
    assert (tmp_path/'again'/'results'/'metrics.json').read_bytes() == (out/'results'/'metrics.json').read_bytes()
    t = json.loads((tmp_path/'again'/'results'/'timings.json').read_text())
    assert 'fit_seconds' in t['classifier']   # durations are kept, apart from the metrics

def test_eval_checkpoint_on_a_split_and_bad_checkpoints(tiny_run, tmp_path):
    out, _ = tiny_run
    r = xaimm('eval', '--config', 'configs/tiny.yaml', '--ckpt', str(out/'models'/'best.pt'), '--data', 'conflict', '--out', str(tmp_path/'ev'))
    assert r.returncode == 0, r.stderr[-2000:]
    e = json.loads((tmp_path/'ev'/'results'/'eval_conflict.json').read_text())
    assert e['n'] == 64 and 0 <= e['accuracy'] <= 1 and 'delta_bias' in e
    (tmp_path/'junk.pt').write_bytes(b'not a checkpoint')
    r = xaimm('eval', '--config', 'configs/tiny.yaml', '--ckpt', str(tmp_path/'junk.pt'))
    assert r.returncode == 2 and 'not a readable state-dict checkpoint' in r.stderr and 'Traceback' not in r.stderr
    r = xaimm('eval', '--config', 'configs/tiny.yaml', '--set', 'model.fusion=concat', '--ckpt', str(out/'models'/'best.pt'))
    assert r.returncode == 2 and 'does not fit the model the config builds' in r.stderr
    r = xaimm('eval', '--config', 'configs/tiny.yaml', '--ckpt', str(out/'models'/'best.pt'), '--data', 'nope.csv')
    assert r.returncode == 2 and 'no such CSV file' in r.stderr

def test_stage_commands(tiny_run, tmp_path):
    r = xaimm('train-wgan', '--config', 'configs/tiny.yaml', '--out', str(tmp_path/'g'))
    assert r.returncode == 0, r.stderr[-2000:]
    assert (tmp_path/'g'/'results'/'gan_metrics.json').exists() and sorted(json.loads((tmp_path/'g'/'results'/'stages.json').read_text())) == ['gan']
    r = xaimm('r2r', '--config', 'configs/tiny.yaml', '--out', str(tmp_path/'r'))
    assert r.returncode == 0 and (tmp_path/'r'/'results'/'r2r.json').exists() and (tmp_path/'r'/'visualizations'/'r2r_rounds.png').exists()

def test_explain_needs_a_trained_classifier_or_trains_one(tmp_path):
    r = xaimm('run', '--config', 'configs/tiny.yaml', '--stages', 'explain', '--out', str(tmp_path/'e'))
    assert r.returncode == 2 and "best.pt not found" in r.stderr and "add 'classifier' to the stages" in r.stderr

def test_misspelt_key_is_one_paragraph_and_writes_nothing(tmp_path):
    r = xaimm('train', '--config', 'configs/tiny.yaml', '--set', 'train.epocs=2', '--out', str(tmp_path/'bad'))
    assert r.returncode == 2
    assert "unknown config key 'train.epocs'; did you mean 'epochs'?" in r.stderr and 'Traceback' not in r.stderr
    assert not (tmp_path/'bad').exists()

def test_missing_config_file(tmp_path):
    r = xaimm('run', '--config', str(tmp_path/'nope.yaml'))
    assert r.returncode == 2 and 'config file not found' in r.stderr

def test_eval_on_a_csv_keeps_the_models_class_order(tiny_run, tmp_path):
    "A test CSV with only some classes: integer labels stay class indices; names need --classes, and a wrong count is an error."
    import numpy as np
    from PIL import Image
    from xaimm_nb.core import load_yaml, from_dict
    from xaimm_nb.data.synth import SynthConfig, SynthMM
    out, _ = tiny_run
    ds = SynthMM(from_dict(SynthConfig, load_yaml(ROOT/'configs'/'tiny.yaml')['data']), 'test')
    rows = [ds[i] for i in range(len(ds)) if ds[i]['y'] in (1, 3)][:6]
    names = ['cat', 'dog', 'owl', 'yak']
    for kind, lab in (('int', lambda y: str(y)), ('name', lambda y: names[y])):
        lines = ['image_path,text,label,protected']
        for i, d in enumerate(rows):
            Image.fromarray(np.asarray(d['image'])).save(tmp_path/f'{i}.png')
            lines.append(f"{i}.png,{d['caption']},{lab(d['y'])},{d['s']}")
        (tmp_path/f'{kind}.csv').write_text('\n'.join(lines) + '\n')
    ck = str(out/'models'/'best.pt')
    r = xaimm('eval', '--config', 'configs/tiny.yaml', '--ckpt', ck, '--data', str(tmp_path/'int.csv'), '--out', str(tmp_path/'ev'))
    assert r.returncode == 0, r.stderr[-2000:]
    e = json.loads((tmp_path/'ev'/'results'/'eval_int.json').read_text())
    assert e['n'] == len(rows) and e['classes'] == ['0', '1', '2', '3']   # labels 1 and 3 keep their indices
    r = xaimm('eval', '--config', 'configs/tiny.yaml', '--ckpt', ck, '--data', str(tmp_path/'name.csv'))
    assert r.returncode == 2 and "its labels are ['dog', 'yak'] (2), but the checkpoint predicts 4 classes" in r.stderr and '--classes' in r.stderr
    r = xaimm('eval', '--config', 'configs/tiny.yaml', '--ckpt', ck, '--data', str(tmp_path/'name.csv'), '--classes', *names, '--out', str(tmp_path/'ev'))
    assert r.returncode == 0, r.stderr[-2000:]
    e2 = json.loads((tmp_path/'ev'/'results'/'eval_name.json').read_text())
    assert e2['classes'] == names and e2['accuracy'] == e['accuracy']   # same samples, same indices, same score
