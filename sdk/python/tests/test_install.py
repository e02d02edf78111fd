"""`pip install sdk/python` gives a package that works from anywhere.

This machine has no package index, so pip builds with the system's own
setuptools and wheel (--no-build-isolation --no-index, into a venv that sees
Debian's site packages); with an index, plain `pip install sdk/python` fetches
the same setuptools. The sources are copied first: setuptools writes build/
and *.egg-info beside the tree it builds."""
import os
import shutil
import subprocess
import sys

SDK = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")

PROGRAM = r"""
import os, moat
assert os.path.dirname(moat.__file__).startswith(os.environ["VENV"]), moat.__file__
with moat.Sandbox.create(memory_mib=256) as sb:
    r = sb.exec(["sh", "-c", "echo installed; exit 7"])
    print(r.exit_code, r.stdout.decode().strip())
"""


def test_pip_install_then_run_a_command_from_another_directory(tmp_path):
    source = tmp_path / "src"
    shutil.copytree(SDK, source, ignore=shutil.ignore_patterns("tests", "__pycache__", "build", "*.egg-info"))
    venv = tmp_path / "venv"
    subprocess.run(["/usr/bin/python3", "-m", "venv", "--system-site-packages", str(venv)], check=True)
    pip = subprocess.run([str(venv / "bin" / "pip"), "install", "--no-index", "--no-build-isolation", str(source)],
                         capture_output=True, timeout=300)
    assert pip.returncode == 0, pip.stdout.decode() + pip.stderr.decode()

    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env["VENV"] = str(venv)
    r = subprocess.run([str(venv / "bin" / "python"), "-c", PROGRAM], cwd=str(tmp_path), env=env,
                       capture_output=True, timeout=300)
    assert r.returncode == 0, r.stderr.decode()
    assert r.stdout == b"7 installed\n"
