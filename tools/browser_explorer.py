#!/usr/bin/env python3
"""Check the `Explorer` (xaimm_nb.viz) in a real browser: JupyterLab serves a small explorer notebook, Playwright drives
Chromium through it.

    pip install -e '.[browser]'    # JupyterLab, ipywidgets' lab support, the Playwright client
    apt-get install -y chromium    # Debian's Chromium (Playwright's own browser download needs the internet)
    python tools/browser_explorer.py [--out /tmp/explorer_shots] [--run runs/default] [--docs nbs/images]

What it does: writes `explorer.ipynb` into a temporary folder (a tiny classifier trained for a few seconds on SynthMM,
or the trained model of `--run DIR` on its own data), starts JupyterLab on 127.0.0.1 with a random token, opens the
notebook in headless Chromium, runs all cells, waits for the Explorer's picture, then changes the method dropdown and
then the sample dropdown and checks after each change that the picture changed (the PNG the kernel sent, and the
pixels on screen). Screenshots go to `--out`: `1_first.png`, `2_method.png`, `3_sample.png` (the page) and
`explorer_*.png` (the widget alone); `--docs DIR` also writes the first two, cropped and palette-compressed, as
`explorer_<method>.png`. Every wait is bounded (`--timeout`); the server and its kernel are stopped at the end. Prints
the time of each step and the total; exits 1 with the reason (and the server log's tail) on any failure.

Not part of `./test.sh`/CI: Chromium comes from apt, and JupyterLab's start, the kernel and the training take 1-2
minutes on a laptop CPU. Run it after changing `Explorer` or the widget packages' versions.
"""
from __future__ import annotations
import argparse, hashlib, io, json, os, re, secrets, shutil, signal, socket, subprocess, sys, tempfile, time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

class CheckFailed(Exception): pass

def log(msg): print(msg, flush=True)

# ---------------------------------------------------------------------------------------------- the notebook
TINY = '''\
# A tiny classifier trained for a few seconds on SynthMM (CPU), and 6 test samples to explore.
from xaimm_nb.test_utils import tiny_learner, tiny_batch
learn = tiny_learner(n={n_train}, n_classes=3, seed=0)
learn.fit_one_cycle({epochs}, 1e-2)
model, batch = learn.model.eval().cpu(), tiny_batch({n_show}, n_classes=3)
'''

RUN = '''\
# The trained classifier of a run directory and the first samples of its test split.
from pathlib import Path
from types import SimpleNamespace
from xaimm_nb.core import load_yaml
from xaimm_nb.data.core import MMDataset
from xaimm_nb.pipeline import parse_config, load_classifier, data_splits
run = Path({run!r})
cfg = parse_config(load_yaml(run/'config.yaml'), stages=['classifier'])
model, tok, _ = load_classifier(cfg, SimpleNamespace(models=run/'models'))
splits = data_splits(cfg)
split = next(s for s in ('test', 'valid', 'train') if s in splits)
ds = MMDataset(splits[split], tok, model.preset['size'], model.preset['mean'], model.preset['std'])
batch = ds.batch(range(min({n_show}, len(ds))))
'''

EXPLORER = '''\
from xaimm_nb.viz import Explorer
x = Explorer(model, batch, methods={methods!r},
             opts=dict(lime=dict(num_samples={lime_samples}, segmentation='slic', seed=0)))  # slic: 32-px images
x
'''

def notebook(run:str|None, methods, n_show=6, n_train=256, epochs=6, lime_samples=200)->dict:
    "The explorer notebook as an nbformat-4 dict."
    src = (RUN.format(run=str(Path(run).resolve()), n_show=n_show) if run
           else TINY.format(n_train=n_train, epochs=epochs, n_show=n_show))
    cell = lambda t, s: dict(cell_type=t, id=secrets.token_hex(4), metadata={}, source=s,
                             **(dict(execution_count=None, outputs=[]) if t == 'code' else {}))
    return dict(nbformat=4, nbformat_minor=5, cells=[
        cell('markdown', '# Explorer check\nWritten by `tools/browser_explorer.py`.'),
        cell('code', src), cell('code', EXPLORER.format(methods=tuple(methods), lime_samples=lime_samples))],
        metadata=dict(kernelspec=dict(name='python3', display_name='Python 3 (ipykernel)', language='python'),
                      language_info=dict(name='python')))

# ---------------------------------------------------------------------------------------------- the server
def free_port()->int:
    with socket.socket() as s: s.bind(('127.0.0.1', 0)); return s.getsockname()[1]

def start_lab(work:Path, port:int, token:str):
    "JupyterLab on 127.0.0.1:`port`, isolated from the user's Jupyter config, data, settings and workspaces."
    cfg = work/'.jupyter'; (cfg/'labconfig').mkdir(parents=True)
    # no "receive Jupyter news?" toast over the screenshots
    (cfg/'labconfig'/'page_config.json').write_text(json.dumps(
        {'disabledExtensions': {'@jupyterlab/apputils-extension:announcements': True}}))
    env = dict(os.environ, JUPYTER_CONFIG_DIR=str(cfg), JUPYTER_DATA_DIR=str(work/'.data'),
               JUPYTER_RUNTIME_DIR=str(work/'.runtime'), IPYTHONDIR=str(work/'.ipython'), JUPYTER_PLATFORM_DIRS='1',
               HF_HUB_OFFLINE=os.environ.get('HF_HUB_OFFLINE', '1'),
               TRANSFORMERS_OFFLINE=os.environ.get('TRANSFORMERS_OFFLINE', '1'), TOKENIZERS_PARALLELISM='false',
               PYTHONPATH=os.pathsep.join(p for p in (str(ROOT), os.environ.get('PYTHONPATH')) if p))
    env.pop('MPLBACKEND', None)  # the kernel uses the inline backend
    root = ['--allow-root'] if hasattr(os, 'geteuid') and os.geteuid() == 0 else []
    cmd = [sys.executable, '-m', 'jupyterlab', '--no-browser', '--ServerApp.ip=127.0.0.1', f'--ServerApp.port={port}',
           '--ServerApp.port_retries=0', f'--IdentityProvider.token={token}', f'--ServerApp.root_dir={work}',
           '--LabApp.expose_app_in_browser=True', f'--LabApp.workspaces_dir={work/".workspaces"}',
           f'--LabApp.user_settings_dir={work/".settings"}', '--ServerApp.terminals_enabled=False',
           '--LabApp.extension_manager=readonly'] + root
    with open(work/'server.log', 'wb') as f:
        return subprocess.Popen(cmd, cwd=work, env=env, stdout=f, stderr=subprocess.STDOUT, start_new_session=True)

def wait_server(proc, url:str, timeout:float):
    t = time.time()
    while time.time() - t < timeout:
        if proc.poll() is not None: raise CheckFailed(f"JupyterLab exited with code {proc.returncode} while starting")
        try:
            with urllib.request.urlopen(url, timeout=2) as r:
                if r.status == 200: return
        except OSError: pass
        time.sleep(.3)
    raise CheckFailed(f"JupyterLab did not answer {url.split('?')[0]} within {timeout:.0f} s")

def stop(proc):
    "Stop the server and its kernel (the server's own process group): SIGTERM, then SIGKILL after 10 s."
    if proc is None or proc.poll() is not None: return
    for sig, wait in ((signal.SIGTERM, 10), (signal.SIGKILL, 5)):
        try: os.killpg(proc.pid, sig)
        except ProcessLookupError: return
        try: proc.wait(wait); return
        except subprocess.TimeoutExpired: pass

# ---------------------------------------------------------------------------------------------- the browser
KERNEL_IDLE = '''() => { const w = window.jupyterapp && window.jupyterapp.shell.currentWidget;
  const k = w && w.sessionContext && w.sessionContext.session && w.sessionContext.session.kernel;
  return !!k && k.connectionStatus === 'connected' && k.status === 'idle'; }'''
IMG_BYTES = '''async (el) => {
  const r = await fetch(el.src); return Array.from(new Uint8Array(await r.arrayBuffer())); }'''
IMG = 'img.widget-image'

def errors(page)->str:
    "Tracebacks shown in the notebook's outputs ('' when none)."
    return '\n'.join(page.locator('[data-mime-type="application/vnd.jupyter.error"]').all_inner_texts())

def wait_for(page, what:str, cond, timeout:float, poll:float=.25):
    "Poll `cond()` until truthy; fail on a traceback in the notebook or after `timeout` s."
    t = time.time()
    while time.time() - t < timeout:
        v = cond()
        if v: return v
        err = errors(page)
        if err: raise CheckFailed(f"the notebook raised while waiting for {what}:\n{err[-3000:]}")
        page.wait_for_timeout(int(poll * 1000))
    raise CheckFailed(f"timed out after {timeout:.0f} s waiting for {what}")

def picture(page)->tuple:
    "(sha256 of the PNG the kernel sent, sha256 of the picture's pixels on screen) of the Explorer's image."
    from PIL import Image
    img = page.locator(IMG).first
    sent = hashlib.sha256(bytes(img.evaluate(IMG_BYTES))).hexdigest()
    shown = hashlib.sha256(Image.open(io.BytesIO(img.screenshot())).convert('RGB').tobytes()).hexdigest()
    return sent, shown

def dropdown(page, name:str):
    "The <select> of the Explorer's dropdown whose description is `name`."
    label = page.locator('label', has_text=re.compile(f'^{name}$'))
    return page.locator('.widget-dropdown', has=label).locator('select')

def info(page)->str: return page.locator('.widget-html').first.inner_text()

def shoot(page, out:Path, step:str):
    page.screenshot(path=str(out/f'{step}.png'))
    page.locator('.jp-OutputArea-output', has=page.locator(IMG)).first.screenshot(path=str(out/f'explorer_{step}.png'))

def change(page, out, step, what, select, timeout, info_changes=False):
    "Make a dropdown change with `select()`, wait until the picture (and the info line) differs, screenshot; seconds."
    before, text = picture(page), info(page)
    t = time.time(); select()
    after = wait_for(page, f"the picture to change after {what}",
                     lambda: (p := picture(page))[0] != before[0] and p, timeout)
    if after[1] == before[1]:
        raise CheckFailed(f"after {what} the kernel sent a new picture but the screen shows the old one")
    if info_changes: wait_for(page, f"the info line to change after {what}", lambda: info(page) != text, timeout)
    page.wait_for_timeout(300)  # let the token strip settle
    dt = time.time() - t; shoot(page, out, step)
    return dt

def drive(url:str, out:Path, chromium:str, method:str, sample:int, timeout:float, times:dict)->dict:
    "Open the notebook, run it, change method and sample; fills `times`, returns what the dropdowns and info showed."
    from playwright.sync_api import sync_playwright
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=chromium, headless=True, args=['--no-sandbox', '--disable-gpu'])
        try:
            page = browser.new_page(viewport=dict(width=1280, height=800), device_scale_factor=1)
            page.set_default_timeout(timeout * 1000)
            t = time.time(); page.goto(url, wait_until='domcontentloaded')
            page.wait_for_function('() => window.jupyterapp && window.jupyterapp.shell.currentWidget',
                                   timeout=timeout * 1000)
            page.evaluate('() => window.jupyterapp.shell.collapseLeft()')
            wait_for(page, "the kernel to start", lambda: page.evaluate(KERNEL_IDLE), timeout)
            times['open notebook + kernel'] = time.time() - t
            t = time.time(); page.evaluate("() => window.jupyterapp.commands.execute('notebook:run-all-cells')")
            wait_for(page, "the Explorer's picture", lambda: page.locator(IMG).count() > 0
                     and page.locator(IMG).first.evaluate('e => e.complete && e.naturalWidth > 0'), timeout)
            times['run cells (train + first explanation)'] = time.time() - t
            page.locator(IMG).first.scroll_into_view_if_needed(); page.wait_for_timeout(300)
            shoot(page, out, '1_first')
            opts = dropdown(page, 'method').locator('option').all_inner_texts()
            if method not in opts: raise CheckFailed(f"--method {method!r} is not in the method dropdown {opts}")
            times[f'method -> {method}'] = change(page, out, '2_method', f'choosing method {method!r}',
                lambda: dropdown(page, 'method').select_option(label=method), timeout, info_changes=True)
            n = dropdown(page, 'sample').locator('option').count()
            if not 0 <= sample < n: raise CheckFailed(f"--sample {sample}: the sample dropdown has {n} entries")
            times[f'sample -> {sample}'] = change(page, out, '3_sample', f'choosing sample {sample}',
                lambda: dropdown(page, 'sample').select_option(index=sample), timeout)
            return dict(samples=dropdown(page, 'sample').locator('option').all_inner_texts(),
                        targets=dropdown(page, 'target').locator('option').all_inner_texts(), info=info(page))
        finally: browser.close()

def docs_png(src:Path, dst:Path, pad:int=6)->str:
    "Crop `src` to its non-white content, reduce it to a 256-colour palette, write `dst`; returns 'dst (N KB)'."
    from PIL import Image, ImageChops
    im = Image.open(src).convert('RGB')
    box = ImageChops.difference(im, Image.new('RGB', im.size, 'white')).getbbox() or (0, 0) + im.size
    box = (max(box[0] - pad, 0), max(box[1] - pad, 0), min(box[2] + pad, im.width), min(box[3] + pad, im.height))
    dst.parent.mkdir(parents=True, exist_ok=True)
    im.crop(box).quantize(256, dither=Image.Dither.NONE).save(dst, optimize=True)
    return f"{dst} ({dst.stat().st_size // 1024} KB)"

# ---------------------------------------------------------------------------------------------- main
def main(argv=None)->int:
    ap = argparse.ArgumentParser(description=__doc__.split('\n\n')[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument('--out', default='/tmp/explorer_shots', help='folder for the screenshots (default %(default)s)')
    ap.add_argument('--run', help='a run directory (config.yaml + models/best.pt): explore its model on its data')
    ap.add_argument('--methods', default='gradcam,saliency,ig,lime', help='dropdown methods (default %(default)s)')
    ap.add_argument('--method', default='lime', help='the method to switch to (default %(default)s)')
    ap.add_argument('--sample', type=int, default=2, help='the sample to switch to (default %(default)s)')
    ap.add_argument('--timeout', type=float, default=180, help='seconds any one wait may take (default %(default)s)')
    ap.add_argument('--chromium', default='/usr/bin/chromium', help='the browser (default %(default)s)')
    ap.add_argument('--docs', help='also write the widget before/after the method change, small, into this folder')
    ap.add_argument('--keep', action='store_true', help='keep the temporary folder (notebook, server log)')
    a = ap.parse_args(argv)
    t0, times, out = time.time(), {}, Path(a.out)
    if not Path(a.chromium).exists():
        log(f"FAIL: no browser at {a.chromium}; install Debian's Chromium (apt-get install -y chromium) "
            "or pass --chromium PATH"); return 1
    try: import playwright, jupyterlab  # noqa: F401
    except ImportError as e:
        log(f"FAIL: {e.name} is not installed; pip install -e '.[browser]' (no browser download needed)"); return 1
    if a.run and not (Path(a.run)/'config.yaml').exists():
        log(f"FAIL: --run {a.run}: no config.yaml there; pass a run directory written by `xaimm run`/`xaimm train`")
        return 1
    methods = [m.strip() for m in a.methods.split(',') if m.strip()]
    out.mkdir(parents=True, exist_ok=True)
    for f in out.glob('*.png'): f.unlink()
    work, proc, rc = Path(tempfile.mkdtemp(prefix='xaimm_explorer_')), None, 1
    try:
        (work/'explorer.ipynb').write_text(json.dumps(notebook(a.run, methods), indent=1))
        port, token = free_port(), secrets.token_hex(16)
        t = time.time(); proc = start_lab(work, port, token)
        wait_server(proc, f'http://127.0.0.1:{port}/api/status?token={token}', a.timeout)
        times['start JupyterLab'] = time.time() - t
        seen = drive(f'http://127.0.0.1:{port}/lab/tree/explorer.ipynb?token={token}', out, a.chromium, a.method,
                     a.sample, a.timeout, times)
        log('dropdowns: sample ' + ' | '.join(seen['samples']) + '\n           target ' + ' | '.join(seen['targets']))
        log('info line: ' + seen['info'].replace('\n', ' '))
        if a.docs:
            shots = (('1_first', methods[0]), ('2_method', a.method))
            log("docs: " + ", ".join(docs_png(out/f"explorer_{s}.png", Path(a.docs)/f"explorer_{m}.png")
                                     for s, m in shots))
        rc = 0
    except CheckFailed as e: log(f"FAIL: {e}")
    except Exception as e: log(f"FAIL: {type(e).__name__}: {e}")
    finally:
        stop(proc)
        if rc and (work/'server.log').exists():
            log('---- JupyterLab log (tail)\n' + (work/'server.log').read_text(errors='replace')[-3000:])
        if a.keep: log(f"kept {work}")
        else: shutil.rmtree(work, ignore_errors=True)
    for k, v in times.items(): log(f"{k:>40}: {v:6.1f} s")
    log(f"{'total':>40}: {time.time() - t0:6.1f} s")
    log(("OK: the picture changed after each dropdown change; screenshots in " if rc == 0 else "screenshots so far in ")
        + f"{out}: {', '.join(sorted(p.name for p in out.glob('*.png')))}")
    return rc

if __name__ == '__main__': sys.exit(main())
