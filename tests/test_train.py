"Edge cases of xaimm_nb.train: the bias penalty, metrics, checkpoints, and an exact resume after a killed process."
import os, sys, json, subprocess
os.environ.setdefault('HF_HUB_OFFLINE', '1'); os.environ.setdefault('TRANSFORMERS_OFFLINE', '1')
from pathlib import Path
import pytest, torch, torch.nn.functional as F
from fastai.callback.core import Callback, CancelFitException
from xaimm_nb.core import load_json, load_state, save_json, ConfigError
from xaimm_nb.fairness import r_bias
from xaimm_nb.train import BiasLoss, scores, evaluate, train_classifier, MetricsJSONCallback, TrainConfig

ROOT = Path(__file__).resolve().parents[1]
TINY = dict(seed=0, device='cpu', data=dict(n_classes=3, size=32, n_train=64, n_valid=32, n_test=32, n_conflict=32),
            model=dict(preset='tiny'), train=dict(epochs=2, lr=3e-3, bs=16, freeze_image='none', freeze_text='none', progress=False))

def test_r_bias_zero_at_group_label_rates():
    g = torch.Generator().manual_seed(0)
    y, s = torch.randint(0, 4, (200,), generator=g), torch.randint(0, 3, (200,), generator=g)
    q = torch.stack([F.one_hot(y[s == k], 4).float().mean(0) for k in range(3)])[s]    # each group's label rates
    torch.testing.assert_close(r_bias(q, y, s), torch.tensor(0.))
    z = torch.randn(200, 4, generator=g, requires_grad=True)
    r = r_bias(z.softmax(-1), y, s); r.backward()
    assert r > 0 and z.grad.abs().sum() > 0
    # by hand: one group, predictions all class 0, labels half 0 / half 1 -> (1 - .5)² + (0 - .5)² = .5
    torch.testing.assert_close(r_bias(torch.tensor([[1., 0], [1, 0]]), torch.tensor([0, 1]), torch.tensor([0, 0])), torch.tensor(.5))

def test_bias_loss_lambda():
    z, y, s = torch.randn(8, 3), torch.randint(0, 3, (8,)), torch.randint(0, 2, (8,))
    torch.testing.assert_close(BiasLoss(0.)(z, y), F.cross_entropy(z, y))
    torch.testing.assert_close(BiasLoss(2.)(z, y, s), F.cross_entropy(z, y) + 2*r_bias(z.softmax(-1), y, s))

def test_scores_known_answer():
    p, y, s = torch.tensor([0, 0, 1, 1]), torch.tensor([0, 1, 1, 1]), torch.tensor([0, 0, 1, 1])
    sc = scores(p, y, s, K=2)
    assert sc['accuracy'] == .75 and sc['delta_bias'] == .5 and sc['worst_group_acc'] == 0.
    assert abs(sc['macro_f1'] - (2/3 + .8)/2) < 1e-6

def test_evaluate_batches_and_errors():
    class M(torch.nn.Module):
        image_encoder = text_encoder = None
        def __init__(s): super().__init__(); s.w = torch.nn.Parameter(torch.zeros(1))
        def forward(s, images, input_ids, attention_mask): return torch.stack([images[:, 0, 0, 0], -images[:, 0, 0, 0]], 1) + s.w
    m = M()
    b = dict(images=torch.tensor([1., -1, 1, -1]).view(4, 1, 1, 1).expand(4, 3, 2, 2), input_ids=torch.ones(4, 2, dtype=torch.long),
             attention_mask=torch.ones(4, 2, dtype=torch.long), y=torch.tensor([0, 1, 1, 1]), protected=torch.tensor([0, 0, 1, 1]))
    r = evaluate(m, [b, b])
    assert r['n'] == 8 and r['accuracy'] == .75 and r['delta_bias'] == .5
    assert set(evaluate(m, {'test': [b], 'conflict': [b]})) == {'test', 'conflict'}
    with pytest.raises(ValueError, match='no samples'): evaluate(m, [])

def test_metrics_json_keeps_other_sections(tmp_path):
    save_json(tmp_path/'m.json', {'synth': {'n': 1}})
    cb = MetricsJSONCallback(tmp_path/'m.json', 'train'); cb.update(test={'accuracy': 1.})
    assert load_json(tmp_path/'m.json') == {'synth': {'n': 1}, 'train': {'test': {'accuracy': 1.}}}

def test_train_config_errors():
    with pytest.raises(ValueError, match="train.freeze_image='half'"): TrainConfig(freeze_image='half')
    with pytest.raises(ConfigError, match="did you mean 'lam_bias'"): train_classifier(dict(TINY, train=dict(lam_bais=1.)), '/tmp/never_written')
    assert not Path('/tmp/never_written/models/last.pt').exists()

_SCRIPT = '''
import os, sys, json
from fastai.callback.core import Callback
from xaimm_nb.train import train_classifier
class Kill(Callback):
    "Simulate a crash: end the process abruptly after KILL_AFTER training batches (their TensorBoard events on disk)."
    order = 100  # after TensorBoardScalars logged the step
    def after_batch(self):
        if self.training and self.train_iter >= int(os.environ.get('KILL_AFTER', 10**9)):
            self.learn.tensor_board_scalars.w.flush(); os._exit(3)
train_classifier(json.loads(sys.argv[1]), sys.argv[2], cbs=[Kill()])
'''

def _train(tmp_path, out, kill=None):
    # both processes of a comparison get one thread: exact equality holds for one machine and one thread count
    env = {**os.environ, 'IN_TEST': '1', 'HF_HUB_OFFLINE': '1', 'TRANSFORMERS_OFFLINE': '1', 'MPLBACKEND': 'Agg',
           'OMP_NUM_THREADS': '1', 'MKL_NUM_THREADS': '1'}
    env.pop('KILL_AFTER', None)
    if kill is not None: env['KILL_AFTER'] = str(kill)
    (tmp_path/'train_script.py').write_text(_SCRIPT)
    return subprocess.run([sys.executable, str(tmp_path/'train_script.py'), json.dumps(TINY), str(out)], env=env, cwd=ROOT,
                          capture_output=True, text=True, timeout=600)

def _final(run):
    d = load_json(run/'results'/'metrics.json')['train']
    return dict(test=d['test'], conflict=d['conflict'], valid=d['valid'], best_epoch=d['best_epoch'],
                history=[{k: v for k, v in h.items() if k != 'seconds'} for h in d['history']])

def test_kill_and_resume_matches_uninterrupted(tmp_path):
    "Kill a training process in the middle of its second epoch, rerun the same command: same final metrics and weights as an uninterrupted run."
    r = _train(tmp_path, tmp_path/'full'); assert r.returncode == 0, r.stderr[-3000:]
    per_epoch = 64 // 16
    r = _train(tmp_path, tmp_path/'resumed', kill=per_epoch + 2); assert r.returncode == 3, r.stderr[-3000:]
    st = load_state(tmp_path/'resumed'/'models'/'last.pt')
    assert st['epoch'] == 0                                                     # only epoch 0 finished before the kill
    assert len(load_json(tmp_path/'resumed'/'results'/'metrics.json')['train']['history']) == 1
    r = _train(tmp_path, tmp_path/'resumed'); assert r.returncode == 0, r.stderr[-3000:]
    assert _final(tmp_path/'resumed') == _final(tmp_path/'full')
    a, b = load_state(tmp_path/'full'/'models'/'last.pt'), load_state(tmp_path/'resumed'/'models'/'last.pt')
    assert all(torch.equal(v, b['model'][k]) for k, v in a['model'].items())
    assert a['train_iter'] == b['train_iter'] == 2*per_epoch
    # TensorBoard: two event files, one stream - the steps the killed process logged after its checkpoint are hidden
    from xaimm_nb.train import tensorboard_scalars
    assert len(list((tmp_path/'resumed'/'tensorboard').glob('events.out.tfevents.*'))) == 2
    tb = {k: tensorboard_scalars(tmp_path/k/'tensorboard') for k in ('full', 'resumed')}
    assert [s for s, _ in tb['resumed']['train/loss']] == list(range(1, 2*per_epoch + 1))
    assert tb['resumed'] == tb['full'] and {'train/loss', 'train/lr', 'valid/accuracy'} <= set(tb['full'])

def test_checkpoint_from_other_schedule_is_refused(tmp_path):
    class Stop(Callback):
        order = 100
        def after_epoch(self): raise CancelFitException
    train_classifier(TINY, tmp_path/'run', cbs=[Stop()])
    assert load_state(tmp_path/'run'/'models'/'last.pt')['epoch'] == 0
    with pytest.raises(ValueError, match='written by a run of 2 epochs, this one asks for 5'):
        train_classifier(dict(TINY, train=dict(TINY['train'], epochs=5)), tmp_path/'run')

def test_train_wandb_offline(tmp_path, monkeypatch):
    "train.wandb: true logs through fastai's WandbCallback into <run>/wandb (offline: no account, no network)."
    wandb = pytest.importorskip('wandb')
    monkeypatch.setenv('WANDB_MODE', 'offline'); monkeypatch.setenv('WANDB_SILENT', 'true')
    seen = {}
    class Peek(Callback):  # the W&B run's summary as the fit ends
        order = 100
        def after_fit(self): seen.update(wandb.run.summary)
    out = train_classifier(dict(TINY, train=dict(TINY['train'], wandb=True)), tmp_path/'run', cbs=[Peek()])
    assert wandb.run is None                                            # finished by train_classifier
    assert {'train_loss', 'valid_loss', 'accuracy', 'worst_group_acc'} <= set(seen), seen
    assert abs(seen['accuracy'] - out['valid']['accuracy']) < 1e-6
    runs = list((tmp_path/'run'/'wandb').glob('offline-run-*/run-*.wandb'))
    assert len(runs) == 1 and runs[0].stat().st_size > 0

def test_train_without_wandb_by_default(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, 'wandb', None)                     # as if not installed: the default never asks
    train_classifier(dict(TINY, train=dict(TINY['train'], epochs=1)), tmp_path/'run')
    assert not (tmp_path/'run'/'wandb').exists()
    with pytest.raises(ImportError, match=r"pip install 'xaimm-nb\[wandb\]'"):
        train_classifier(dict(TINY, train=dict(TINY['train'], epochs=1, wandb=True)), tmp_path/'run2')
