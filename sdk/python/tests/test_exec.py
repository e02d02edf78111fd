import hashlib
import os
import signal
import threading
import time

import pytest

import moat


def test_exec_gives_exit_code_and_both_streams_exactly(sb):
    r = sb.exec(["sh", "-c", "printf 'out\\n'; printf 'err\\n' >&2; exit 3"])
    assert (r.exit_code, r.stdout, r.stderr, r.signal, r.timed_out) == (3, b"out\n", b"err\n", 0, False)
    assert not r.ok
    with pytest.raises(moat.CommandFailed):
        r.check()


def test_a_string_runs_with_sh_and_env_cwd_user_apply(sb):
    r = sb.exec("echo $GREETING $(pwd) $(id -u)", env={"GREETING": "hi"}, cwd="/tmp", user="1000")
    assert r.stdout == b"hi /tmp 1000\n"


def test_stdin_bytes_reach_the_command(sb):
    data = os.urandom(300_000)
    r = sb.exec(["sha256sum"], stdin=data)
    assert r.stdout.split()[0].decode() == hashlib.sha256(data).hexdigest()


def test_signal_death_reads_as_the_shell_does(sb):
    r = sb.exec(["sh", "-c", "kill -TERM $$"])
    assert (r.signal, r.exit_code) == (signal.SIGTERM, 128 + signal.SIGTERM)


def test_stream_yields_output_in_order_then_the_result(sb):
    pieces = list(sb.stream("for i in 1 2 3; do echo $i; sleep 0.1; done; echo e >&2"))
    out = b"".join(d for s, d in pieces if s == "stdout")
    err = b"".join(d for s, d in pieces if s == "stderr")
    assert (out, err) == (b"1\n2\n3\n", b"e\n")


def test_spawn_in_background_with_stdin_and_callbacks(sb):
    got = []
    p = sb.spawn(["cat"], stdin=True, on_stdout=got.append)
    p.write_stdin(b"one\n")
    p.write_stdin("two\n")
    p.close_stdin()
    r = p.wait()
    assert r.exit_code == 0
    assert p.pid > 0
    assert b"".join(got) == b"one\ntwo\n"
    p.close()


def test_spawned_process_can_be_signalled_and_wait_times_out(sb):
    p = sb.spawn(["sleep", "60"])
    assert p.wait(timeout=0.5) is None
    p.signal(signal.SIGKILL)
    r = p.wait(timeout=30)
    assert r.signal == signal.SIGKILL
    p.close()


def test_pty_sessions_see_a_terminal_and_its_size(sb):
    r = sb.exec(["sh", "-c", "[ -t 0 ] && [ -t 1 ] && stty size"], tty=True)
    assert r.exit_code == 0
    assert r.stdout.strip() == b"24 80"
    p = sb.spawn(["sh", "-c", "sleep 1; stty size"], tty=True, rows=40, cols=100)
    p.resize(50, 120)
    out = b"".join(d for _, d in p.output())
    assert out.strip() == b"50 120"
    p.close()


def test_timeout_kills_the_command_and_says_so(sb):
    start = time.monotonic()
    with pytest.raises(moat.CommandTimedOut) as e:
        sb.exec(["sh", "-c", "echo started; sleep 60"], timeout=1)
    assert time.monotonic() - start < 20
    assert e.value.result.timed_out
    assert e.value.result.stdout == b"started\n"
    assert isinstance(e.value, TimeoutError)
    # The sandbox goes on.
    assert sb.exec(["true"]).exit_code == 0


def test_a_callback_that_raises_kills_the_command_and_wait_raises_it(sb):
    class Boom(Exception):
        pass

    def explode(_):
        raise Boom("from the callback")

    p = sb.spawn(["sh", "-c", "echo x; sleep 60"], on_stdout=explode)
    start = time.monotonic()
    with pytest.raises(Boom):
        p.wait(timeout=30)
    assert time.monotonic() - start < 20
    p.close()


def test_a_reader_that_stops_holds_the_command_back(sb):
    # Unread output is not buffered without bound: the guest sends more only
    # as it is read, so `yes` blocks instead of the host's memory growing.
    p = sb.spawn(["sh", "-c", "yes | head -c 200000000 > /dev/stdout; echo done > /tmp/yes-done"])
    it = p.output()
    stream, first = next(it)
    assert stream == "stdout" and first.startswith(b"y\n")
    time.sleep(2)
    assert not sb.files.exists("/tmp/yes-done")
    p.close()  # kills it


def test_eight_concurrent_commands_keep_their_output_apart(sb):
    results = {}

    def run(i):
        p = sb.spawn(["sh", "-c", "for n in 1 2 3 4 5; do echo %d-$n; done" % i])
        results[i] = b"".join(d for _, d in p.output())
        p.close()

    threads = [threading.Thread(target=run, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for i in range(8):
        assert results[i] == b"".join(b"%d-%d\n" % (i, n) for n in range(1, 6))


def test_closing_a_process_another_thread_waits_on_ends_that_wait(sb):
    p = sb.spawn(["sleep", "60"])
    errors = []

    def waiter():
        try:
            p.wait()
        except moat.MoatError as e:
            errors.append(e)

    t = threading.Thread(target=waiter)
    t.start()
    time.sleep(0.5)
    start = time.monotonic()
    p.close()
    t.join(timeout=30)
    assert not t.is_alive()
    assert time.monotonic() - start < 20
    assert errors and isinstance(errors[0], moat.InterruptedError)
    with pytest.raises(moat.NotRunningError):
        p.wait()
