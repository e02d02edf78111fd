"""The SDK's tests boot real sandboxes (QEMU, TCG here) from the bundled
busybox root. Each run gets a state directory of its own ($MOAT_HOME), set
before libmoat is loaded; libmoat itself is $MOAT_LIBRARY (the build's)."""
import os
import shutil
import sys
import tempfile

import pytest

_home = tempfile.mkdtemp(prefix="moat-sdk-test-")
os.environ["MOAT_HOME"] = _home
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

import moat  # noqa: E402


def pytest_sessionfinish(session, exitstatus):
    # A test that failed half-way may leave sandboxes running: they go
    # before their state directory does, so no VM outlives the run.
    try:
        for info in moat.list_sandboxes():
            try:
                moat.remove_sandbox(info["id"], force=True)
            except moat.MoatError:
                pass
    except moat.MoatError:
        pass
    shutil.rmtree(_home, ignore_errors=True)


@pytest.fixture(scope="module")
def sb():
    """One sandbox shared by a module's tests (booting one per test would
    dominate the run on TCG)."""
    with moat.Sandbox.create(memory_mib=256) as s:
        yield s
