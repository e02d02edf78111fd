"""The quick starts in README.md and sdk/python/README.md run as written."""
import os
import re
import subprocess
import sys

import pytest

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "..")
SDK = os.path.join(ROOT, "sdk", "python")


def snippets(path):
    with open(path) as f:
        return re.findall(r"```python\n(.*?)```", f.read(), re.S)


CASES = [(p, i, code) for p in ("README.md", "sdk/python/README.md")
         for i, code in enumerate(snippets(os.path.join(ROOT, p)))]


@pytest.mark.parametrize("path, index, code", CASES, ids=["%s#%d" % (p, i) for p, i, _ in CASES])
def test_snippet_runs(path, index, code):
    env = dict(os.environ, PYTHONPATH=SDK)
    r = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, timeout=300)
    assert r.returncode == 0, r.stderr.decode()
    assert r.stdout, "the snippet printed nothing"


def test_both_readmes_have_python_snippets():
    assert any(p == "README.md" for p, _, _ in CASES)
    assert any(p == "sdk/python/README.md" for p, _, _ in CASES)
