"The `xaimm` command end to end, as a user runs it (subprocess, tiny config)."
import json, os, subprocess, sys
from pathlib import Path
import pytest

ROOT = Path(__file__).resolve().parents[1]
# One intra-op thread in every `xaimm` process, whatever the caller's OMP_NUM_THREADS: reductions split across threads
# round differently, so metrics.json is byte-identical only between runs with the same thread count on one machine.
ENV = {**os.environ, 'HF_HUB_OFFLINE': '1', 'TRANSFORMERS_OFFLINE': '1', 'MPLBACKEND': 'Agg',
       'OMP_NUM_THREADS': '1', 'MKL_NUM_THREADS': '1'}
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
    """Two runs on this machine, same config, seed, thread count (ENV) and CPU kernels: the same bytes. Not promised
    across machines or thread counts: ATEN_CPU_CAPABILITY=default/avx2 or OMP_NUM_THREADS=2 changes ~1/3 of the
    tiny run's values (float32 summation order; up to 4e-3 absolute, 1.6 % relative, on an Intel AVX-512 Xeon)."""
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
    assert r.returncode == 2 and 'MultimodalClassifier: 16 unexpected key(s): fusion.i2t.q.weight [64, 64]' in r.stderr
    assert 'Fix: pass the config it was trained with (this one builds the tiny preset, fusion=concat' in r.stderr
    (tmp_path/'afile').write_text('')
    r = xaimm('eval', '--config', 'configs/tiny.yaml', '--ckpt', str(out/'models'/'best.pt'),
              '--out', str(tmp_path/'afile'))
    assert r.returncode == 2 and f"--out: cannot write to {tmp_path/'afile'/'results'}" in r.stderr
    assert '"accuracy"' not in r.stdout   # refused before evaluating
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
    assert r.returncode == 2 and "nope.yaml': no such file" in r.stderr

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

def test_a_run_directory_in_use_exits_2_naming_the_holder(tmp_path):
    "Another process writes the run directory: `xaimm train --out` on it stops before writing anything, exit code 2."
    run = tmp_path/'run'
    code = ("import sys, time; from xaimm_nb.core import RunDir; r = RunDir(sys.argv[1]); "
            "print('ready', flush=True); time.sleep(300)")
    with subprocess.Popen([sys.executable, '-c', code, str(run)], stdout=subprocess.PIPE, text=True, env=ENV) as p:
        try:
            assert p.stdout.readline().strip() == 'ready'
            r = xaimm('train', '--config', 'configs/tiny.yaml', '--out', str(run))
            ra = xaimm('ablate', '--config', 'configs/tiny.yaml', '--out', str(run), '--seeds', '0')
        finally: p.kill()
    assert r.returncode == 2, r.stderr[-2000:]
    assert f"RunLockedError: {run} is in use by PID {p.pid} on host " in r.stderr
    assert not (run/'config.yaml').exists() and not (run/'models'/'last.pt').exists()
    assert ra.returncode == 2 and f"{run} is in use by PID {p.pid}" in ra.stderr and not (run/'full').exists()


# --- a bad value stops the command before anything is written (issue 17, item 4)
from xaimm_nb.cli import main

@pytest.mark.parametrize('cmd, override, msg', [
    ('synth', 'seed=100000000000000000000', 'seed=100000000000000000000: must be an int in [0, 4294967295]'),
    ('synth', 'data.n_train=-1', 'data.n_train=-1: must be an int >= 0'),
    ('train', 'train.size=0', 'train.size=0: must be an int >= 1'),
    ('run', 'seed=-1', 'seed=-1: must be an int in [0, 4294967295]'),
    ('explain', 'explain.n=0', 'explain.n=0: must be an int >= 1'),
    ('train-wgan', 'gan.bs=1', 'gan.bs=1: must be an int >= 2'),
    ('r2r', 'r2r.lr=0', 'r2r.lr=0.0: must be a float > 0'),
    ('eval', 'model.dropout=2', 'model.dropout=2.0: must be a float in [0, 1]'),
])
def test_bad_value_exits_2_naming_the_file_and_writes_nothing(cmd, override, msg, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(ROOT)
    out = tmp_path/'fresh'
    extra = ['--ckpt', str(tmp_path/'none.pt')] if cmd == 'eval' else []
    rc = main([cmd, '--config', 'configs/tiny.yaml', '--set', override, '--out', str(out), *extra])
    err = capsys.readouterr().err
    assert rc == 2 and f"config error: configs/tiny.yaml: {msg}" in err and 'Traceback' not in err
    assert not out.exists()

def test_duplicate_key_in_the_config_file(tmp_path, capsys):
    (tmp_path/'c.yaml').write_text('seed: 0\ndata: {size: 32}\nseed: 5\n')
    rc = main(['synth', '--config', str(tmp_path/'c.yaml'), '--out', str(tmp_path/'o')])
    err = capsys.readouterr().err
    assert rc == 2 and f"{tmp_path/'c.yaml'}: key 'seed' is given twice, on lines 1 and 3" in err
    assert not (tmp_path/'o').exists()

@pytest.mark.parametrize('args, msg', [
    (['eval', '--ckpt', 'x.pt', '--bs', '0'], "argument --bs: '0': must be an int >= 1"),
    (['eval', '--ckpt', 'x.pt', '--bs', '-5'], "argument --bs: '-5': must be an int >= 1"),
    (['eval', '--ckpt', 'x.pt', '--bs', 'many'], "argument --bs: 'many': must be an int >= 1"),
    (['ablate', '--seeds', '0', '-1'], "argument --seeds: '-1': must be an int in [0, 4294967295]"),
    (['sweep', '--space', 's.yaml', '--trials', '0'], "argument --trials: '0': must be an int >= 1"),
])
def test_number_flags_are_range_checked_by_argparse(args, msg, capsys):
    with pytest.raises(SystemExit) as e: main(args)
    assert e.value.code == 2 and msg in capsys.readouterr().err


@pytest.mark.skipif(__import__('torch').cuda.is_available(), reason='needs a machine without CUDA')
def test_absent_device_is_a_config_error(tmp_path):
    "`device: cuda` (e.g. configs/full.yaml) on a CPU-only machine: exit 2 naming the device, nothing written."
    r = xaimm('run', '--config', 'tiny', '--set', 'device=cuda', '--out', str(tmp_path/'run'))
    assert r.returncode == 2, r.stderr
    assert 'CUDA is not available' in r.stderr and 'device' in r.stderr
    assert not (tmp_path/'run').exists()
