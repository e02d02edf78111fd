import hashlib
import os

import pytest

import moat


def test_fifty_mib_round_trip_by_sha256(sb, tmp_path):
    data = os.urandom(50 * 1024 * 1024)
    digest = hashlib.sha256(data).hexdigest()
    sb.files.write("/tmp/big", data)
    assert sb.exec(["sha256sum", "/tmp/big"]).stdout.split()[0].decode() == digest
    back = sb.files.read("/tmp/big")
    assert hashlib.sha256(back).hexdigest() == digest
    # Streaming both ways through host files.
    src = tmp_path / "src"
    src.write_bytes(data[:5_000_000])
    with open(src, "rb") as f:
        sb.files.upload(f, "/tmp/up", mode=0o600)
    with open(tmp_path / "down", "wb") as f:
        sb.files.download("/tmp/up", f)
    assert (tmp_path / "down").read_bytes() == data[:5_000_000]
    assert sb.files.stat("/tmp/up")["mode"] == 0o600
    sb.files.remove("/tmp/big")


def test_list_stat_mkdir_rename_chmod_remove(sb):
    sb.files.mkdir("/work/a/b", parents=True)
    sb.files.write("/work/a/f.txt", "hello")
    sb.files.write("/work/a/f.txt", " world", append=True)
    assert sb.files.read_text("/work/a/f.txt") == "hello world"
    names = sorted(e["name"] for e in sb.files.list("/work/a"))
    assert names == ["b", "f.txt"]
    info = sb.files.stat("/work/a/f.txt")
    assert (info["type"], info["size"], info["mode"]) == ("file", 11, 0o644)
    sb.files.rename("/work/a/f.txt", "/work/a/g.txt")
    sb.files.chmod("/work/a/g.txt", 0o700)
    assert sb.files.stat("/work/a/g.txt")["mode"] == 0o700
    with pytest.raises(moat.AlreadyExistsError):
        sb.files.write("/work/a/g.txt", b"x", exclusive=True)
    sb.files.remove("/work", recursive=True)
    assert not sb.files.exists("/work")


def test_copy_in_and_out_of_a_tree(sb, tmp_path):
    tree = tmp_path / "tree"
    (tree / "sub").mkdir(parents=True)
    (tree / "sub" / "x").write_bytes(b"xx")
    sb.files.copy_in(str(tree), "/tmp")
    assert sb.files.read("/tmp/tree/sub/x") == b"xx"
    sb.files.copy_out("/tmp/tree", str(tmp_path / "back"))
    assert (tmp_path / "back" / "sub" / "x").read_bytes() == b"xx"


def test_a_tree_as_a_tar_and_back(sb, tmp_path):
    import io
    import tarfile
    sb.files.mkdir("/arch/sub", parents=True)
    sb.files.write("/arch/sub/x", b"xyz", mode=0o600)
    data = sb.files.read_archive("/arch")
    with tarfile.open(fileobj=io.BytesIO(data)) as t:
        assert sorted(t.getnames()) == ["arch", "arch/sub", "arch/sub/x"]
        assert t.getmember("arch/sub/x").mode == 0o600
    with open(tmp_path / "a.tar", "wb") as f:
        assert sb.files.read_archive("/arch/sub", f) is None
    sb.files.mkdir("/back")
    with open(tmp_path / "a.tar", "rb") as f:
        assert sb.files.write_archive("/back", f) == 2
    assert sb.files.read("/back/sub/x") == b"xyz"
    with pytest.raises(moat.InvalidArgumentError):
        with open(tmp_path / "a.tar", "rb") as f:
            sb.files.write_archive("/back/sub/x", f)


def test_missing_files_are_not_found_with_the_guests_errno(sb):
    with pytest.raises(moat.NotFoundError) as e:
        sb.files.read("/no/such/file")
    assert e.value.code == 2 and e.value.kind == "not_found"
    with pytest.raises(moat.NotFoundError):
        sb.files.list("/no/such/dir")
