#!/usr/bin/env python3
"""Convert between percent-format text and notebooks, so notebooks can be written and reviewed as text.

    python tools/nb.py py2nb draft.py nbs/01_x.ipynb   # '# %%' code cells, '# %% [markdown]' markdown cells
    python tools/nb.py nb2py nbs/01_x.ipynb draft.py   # the reverse (outputs dropped)

Cell tags: '# %% tags=["parameters"]' keeps papermill's parameters tag.
"""
import json, re, sys, hashlib
from pathlib import Path

HDR = re.compile(r'^# %%(?P<md> \[markdown\])?(?: tags=(?P<tags>\[.*\]))?\s*$')

def py2nb(src, dst):
    cells, cur = [], None
    for line in Path(src).read_text().splitlines():
        m = HDR.match(line)
        if m:
            cur = dict(md=bool(m['md']), tags=json.loads(m['tags']) if m['tags'] else None, lines=[])
            cells.append(cur); continue
        if cur is None: cur = dict(md=False, tags=None, lines=[]); cells.append(cur)
        cur['lines'].append(line)
    out = []
    for c in cells:
        ls = c['lines']
        while ls and not ls[-1].strip(): ls.pop()
        while ls and not ls[0].strip(): ls.pop(0)
        if c['md']: ls = [l[2:] if l.startswith('# ') else l.lstrip('#') for l in ls]
        if not ls: continue
        src_ = '\n'.join(ls)
        meta = {'tags': c['tags']} if c['tags'] else {}
        cid = hashlib.sha1(f'{len(out)}:{src_}'.encode()).hexdigest()[:8]  # stable ids keep exports deterministic
        cell = dict(cell_type='markdown' if c['md'] else 'code', id=cid, metadata=meta, source=src_)
        if not c['md']: cell.update(execution_count=None, outputs=[])
        out.append(cell)
    nb = dict(cells=out, metadata=dict(kernelspec=dict(display_name='python3', language='python', name='python3')),
              nbformat=4, nbformat_minor=5)
    Path(dst).write_text(json.dumps(nb, indent=1) + '\n')

def nb2py(src, dst):
    nb, parts = json.loads(Path(src).read_text()), []
    for c in nb['cells']:
        s = ''.join(c['source']) if isinstance(c['source'], list) else c['source']
        tags = c.get('metadata', {}).get('tags')
        t = f' tags={json.dumps(tags)}' if tags else ''
        if c['cell_type'] == 'markdown': parts.append(f'# %% [markdown]{t}\n' + '\n'.join('# ' + l if l else '#' for l in s.splitlines()))
        else: parts.append(f'# %%{t}\n' + s)
    Path(dst).write_text('\n\n'.join(parts) + '\n')

if __name__ == '__main__':
    cmd, a, b = sys.argv[1:4]
    {'py2nb': py2nb, 'nb2py': nb2py}[cmd](a, b)
