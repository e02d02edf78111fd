import glob
import json
import os
import subprocess
import sys
import textwrap
import threading
import time

import pytest

import moat


def test_unknown_sandbox_is_not_found():
    with pytest.raises(moat.NotFoundError) as e:
        moat.Sandbox.open("no-such-sandbox")
    assert "no-such-sandbox" in str(e.value)
    with pytest.raises(moat.NotFoundError):
        moat.inspect_sandbox("no-such-sandbox")
    with pytest.raises(moat.NotFoundError):
        moat.inspect_image("no-such-image:1")


@pytest.mark.parametrize("options, message", [
    ({"memory_mib": -1}, "memory_mib"),
    ({"bogus": 1}, "unknown sandbox option(s): bogus"),
    ({"network": {"mode": "everything"}}, "network.mode"),
    ({"network": {"rules": [{"allow": True, "rul": "x"}]}}, "network.rules[0].rul: not a field of this form"),
    ({"network": "{not json"}, "network: not valid JSON"),
    ({"volumes": ["/tmp:relative"]}, "must be absolute"),
    ({"pull": "sometimes"}, "pull"),
    ({"labels": {"": "x"}}, "label"),
])
def test_invalid_options_are_typed_errors_and_nothing_is_left(options, message):
    before = moat.list_sandboxes()
    with pytest.raises(moat.InvalidArgumentError) as e:
        moat.Sandbox.create(**options)
    assert message in str(e.value)
    assert e.value.kind == "invalid_argument"
    assert moat.list_sandboxes() == before


def test_exec_argv_must_not_be_empty(sb):
    with pytest.raises(moat.InvalidArgumentError):
        sb.exec([])


def test_calls_on_a_closed_or_stopped_sandbox_are_clear_errors():
    s = moat.Sandbox.create(keep=True, name="sdk-stop")
    try:
        assert s.info()["state"] == "running"
        s.stop()
        with pytest.raises(moat.NotRunningError) as e:
            s.exec(["true"])
        assert e.value.code == 107 and "closed" in str(e.value)
        with pytest.raises(moat.NotRunningError):
            s.spawn(["true"])
        assert moat.inspect_sandbox("sdk-stop")["state"] == "stopped"
        s.close()
        with pytest.raises(moat.NotRunningError):
            s.exec(["true"])
        with pytest.raises(moat.NotRunningError):
            s.files.read("/etc/hostname")
    finally:
        s.close()
        moat.remove_sandbox("sdk-stop", force=True)
    with pytest.raises(moat.NotFoundError):
        moat.inspect_sandbox("sdk-stop")


def test_manager_define_start_open_stop_remove_by_name():
    info = moat.define_sandbox(name="sdk-managed", labels={"suite": "sdk"})
    assert (info["name"], info["state"], info["labels"]) == ("sdk-managed", "created", {"suite": "sdk"})
    assert [i["name"] for i in moat.list_sandboxes(labels={"suite": "sdk"})] == ["sdk-managed"]
    moat.start_sandbox("sdk-managed")
    with moat.Sandbox.open("sdk-managed") as s:
        assert s.exec(["hostname"]).stdout.startswith(b"moat-")
        assert s.stats()["uptime_ms"] > 0
        s.pause()
        assert s.info()["paused"] is True and s.info()["state"] == "running"
        with pytest.raises(moat.BusyError) as e:
            s.exec(["true"])
        assert "paused" in str(e.value)
        moat.resume_sandbox("sdk-managed")
        assert s.exec(["true"]).exit_code == 0
        moat.pause_sandbox("sdk-managed")
        assert moat.inspect_sandbox("sdk-managed")["paused"] is True
        s.resume()
        assert moat.inspect_sandbox("sdk-managed")["paused"] is False
        # To disk: nothing runs until the resume restores it.
        s.exec(["sh", "-c", "echo kept > /dev/shm/k"])
        s.pause(to_disk=True)
        info = moat.inspect_sandbox("sdk-managed")
        assert (info["state"], info["saved"], info["reason"]) == ("stopped", True, "paused to disk")
        s.resume()
        assert moat.inspect_sandbox("sdk-managed")["saved"] is False
        assert s.exec(["cat", "/dev/shm/k"]).stdout == b"kept\n"
    # Closing an opened handle leaves the sandbox running.
    assert moat.inspect_sandbox("sdk-managed")["state"] == "running"
    moat.stop_sandbox("sdk-managed")
    moat.remove_sandbox("sdk-managed")
    assert moat.list_sandboxes(labels={"suite": "sdk"}) == []


def test_an_ephemeral_sandbox_goes_away_with_its_handle():
    s = moat.Sandbox.create()
    sid = s.id
    assert moat.inspect_sandbox(sid)["state"] == "running"
    s.close()
    with pytest.raises(moat.NotFoundError):
        moat.inspect_sandbox(sid)


def test_a_process_dying_mid_exec_takes_its_ephemeral_sandbox_along(tmp_path):
    script = textwrap.dedent("""
        import os, sys
        sys.path.insert(0, %r)
        import moat
        sb = moat.Sandbox.create()
        p = sb.spawn(["sleep", "600"])
        print(sb.id, flush=True)
        os._exit(0)
    """ % os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, timeout=120, check=True)
    sid = out.stdout.decode().strip()
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            moat.inspect_sandbox(sid)
        except moat.NotFoundError:
            return
        time.sleep(0.5)
    pytest.fail("sandbox %s outlived the process that made it" % sid)


def test_network_update_through_the_sdk():
    # A device only where a rule or port needs one: the allow rule gives it.
    with moat.Sandbox.create(network={"mode": "none", "rules": [{"allow": True, "rule": "127.0.0.1:1"}]}) as s:
        s.update_network([{"allow": True, "rule": "127.0.0.1:9"}], mode="none")
        rules = s.info()["network"]["rules"]
        assert rules == [{"allow": True, "rule": "127.0.0.1:9"}]
        with pytest.raises(moat.InvalidArgumentError):
            s.update_network([{"allow": True, "rule": "::1"}])


def test_version_and_doctor():
    assert moat.version().count(".") == 2
    report = moat.doctor()
    assert report["ready"] is True
    assert {c["what"] for c in report["checks"]} >= {"qemu", "kernel", "shim"}


def test_events_restart_and_stats_by_name():
    seq = max([e["seq"] for e in moat.events()] or [0])
    moat.define_sandbox(name="sdk-events")
    moat.start_sandbox("sdk-events")
    moat.restart_sandbox("sdk-events")
    assert moat.sandbox_stats("sdk-events")["uptime_ms"] > 0
    moat.stop_sandbox("sdk-events")
    moat.remove_sandbox("sdk-events")
    kinds = [e["event"] for e in moat.events(after=seq) if e["name"] == "sdk-events"]
    assert kinds == ["created", "started", "stopped", "started", "stopped", "removed"]


def test_a_followed_watch_sees_what_happens_next_and_can_be_stopped():
    seq = max([e["seq"] for e in moat.events()] or [0])
    threading.Timer(0.5, lambda: moat.define_sandbox(name="sdk-watched")).start()
    seen = []

    def on_event(e):
        seen.append(e)
        return False if e["name"] == "sdk-watched" else None

    moat.watch_events(on_event, after=seq, follow=True)
    assert [(e["event"], e["name"]) for e in seen] == [("created", "sdk-watched")]
    moat.remove_sandbox("sdk-watched")
    # A stop event ends a follow with nothing new to see.
    stop = threading.Event()
    threading.Timer(0.5, stop.set).start()
    start = time.monotonic()
    moat.watch_events(lambda e: None, after=10**9, follow=True, stop=stop)
    assert time.monotonic() - start < 10


def test_a_secret_is_a_placeholder_inside():
    with moat.Sandbox.create(secrets={"API_KEY@api.example.test": "s3cret-value"}) as s:
        inside = s.exec(["sh", "-c", "printf %s \"$API_KEY\""]).stdout
        assert inside and b"s3cret-value" not in inside
    with pytest.raises(moat.InvalidArgumentError):
        moat.Sandbox.create(secrets={"API_KEY": "no host"})


def test_image_store_checks_on_an_empty_store():
    assert moat.check_images() == []
    assert moat.prune_images()["images"] == 0
    with pytest.raises(moat.MoatError):
        moat.load_images(__file__)


def test_an_image_file_is_served_on_a_host_directory(sb, tmp_path):
    # The default root, packed to EROFS by the sandbox this module booted.
    roots = glob.glob(os.path.join(os.environ["MOAT_HOME"], "cache", "rootfs", "*.erofs"))
    assert len(roots) == 1, roots
    target = tmp_path / "mnt"
    target.mkdir()
    # What was packed: the bundled root beside the library (build/share/moat).
    source = os.path.join(os.path.dirname(os.path.dirname(os.path.realpath(os.environ["MOAT_LIBRARY"]))),
                          "share", "moat", "rootfs-busybox")
    with moat.mount_image(roots[0], str(target)).serve_in_background():
        assert sorted(os.listdir(target)) == sorted(os.listdir(source))
        with open(target / "bin" / "busybox", "rb") as a, open(os.path.join(source, "bin", "busybox"), "rb") as b:
            assert a.read() == b.read()
    assert os.listdir(target) == []
    with pytest.raises(moat.NotFoundError):
        moat.mount_image("no-such-image:1", str(target))
