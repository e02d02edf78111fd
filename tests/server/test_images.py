"""The image routes against a real registry: Debian's docker-registry on
127.0.0.1 (tests/fixtures/local-registry.sh) holding the small busybox image
of tests/image/make_busybox_oci.py. A pull streams NDJSON or server-sent
events and ends with the image or a typed error record; list and inspect
show what was pulled, delete takes it away. No VM is booted."""
import json
import os
import subprocess
import sys
from collections import namedtuple

import pytest

from test_openapi import check, validator

ROOT = os.path.join(os.path.dirname(__file__), "..", "..")
LOCAL_REGISTRY = os.path.join(ROOT, "tests", "fixtures", "local-registry.sh")
MAKE_BUSYBOX = os.path.join(ROOT, "tests", "image", "make_busybox_oci.py")

Registry = namedtuple("Registry", "host ref digest")


@pytest.fixture(scope="module")
def registry(tmp_path_factory):
    work = tmp_path_factory.mktemp("registry")
    layout = str(work / "layout")
    made = subprocess.run([sys.executable, MAKE_BUSYBOX, layout, "1"], capture_output=True, text=True, check=True)
    digest = made.stdout.split()[-1]
    state = str(work / "registry")
    started = subprocess.run([LOCAL_REGISTRY, "start", state], capture_output=True, text=True)
    assert started.returncode == 0, started.stderr
    try:
        pushed = subprocess.run([LOCAL_REGISTRY, "push", state, layout, "1", "test/busybox"],
                                capture_output=True, text=True)
        assert pushed.returncode == 0, pushed.stderr
        yield Registry(started.stdout.strip(), pushed.stdout.strip(), digest)
    finally:
        subprocess.run([LOCAL_REGISTRY, "stop", state], capture_output=True)


def pull(api, ref, event_stream=False):
    """The whole answer of a pull: status, headers and body (read to the
    chunked stream's end, so a stream cut short fails here)."""
    headers = {"Accept": "text/event-stream"} if event_stream else {}
    return api.request("POST", "/v1/images/pull", {"ref": ref, "insecure_registry": True}, headers)


def ndjson_records(body):
    assert body.endswith(b"\n"), body[-200:]
    return [json.loads(line) for line in body.decode().split("\n")[:-1]]


def sse_events(body):
    """Events as the server-sent events spec (HTML, "Interpreting an event
    stream") reads them: lines end with CRLF, LF or CR; a blank line
    dispatches the data gathered so far; "data" lines append to it, with one
    space after the colon dropped; lines starting with ":" are comments."""
    text = body.decode().replace("\r\n", "\n").replace("\r", "\n")
    events, data, kind = [], [], "message"
    lines = text.split("\n")
    # The last element is what follows the final line end: a line without
    # its end is never read as one.
    assert lines[-1] == "", "the stream ends inside a line: %r" % lines[-1]
    for line in lines[:-1]:
        if line == "":
            if data:
                events.append((kind, "\n".join(data)))
            data, kind = [], "message"
            continue
        if line.startswith(":"):
            continue
        field, _, value = line.partition(":")
        if value.startswith(" "):
            value = value[1:]
        if field == "data":
            data.append(value)
        elif field == "event":
            kind = value
    # Data not followed by a blank line is never dispatched: a stream that
    # ends cleanly ends with one.
    assert data == [], "the last event was not ended by a blank line"
    return events


def check_pull_records(records, registry, built_root):
    """Every record is a PullRecord; progress ones come first and describe
    the image's two layers, each layer's completion is reported, and the
    last says pulled, with the digest the registry holds."""
    record_schema = validator("#/components/schemas/PullRecord")
    for r in records:
        record_schema.validate(r)
    *progress, last = records
    assert last["status"] == "pulled", last
    for p in progress:
        assert p["status"] == "progress", p
        assert p["layers"] == 2 and 1 <= p["layer"] <= p["layers"], p
        assert 0 <= p["layer_done"] <= p["layer_total"] and 0 <= p["done"] <= p["total"], p
        assert p["digest"].startswith("sha256:") and 0 <= p["layers_done"] <= p["layers"], p
    completed = {p["layer"] for p in progress if p["layer_complete"]}
    assert completed == {1, 2}, progress
    image = last["image"]
    assert image["ref"] == registry.ref
    assert image["manifestDigest"] == registry.digest
    assert image["builtRoot"] is built_root
    if built_root:
        assert image["bytesDownloaded"] > 0 and os.path.isfile(image["erofs"])
    return image


def listed(api, ref):
    return [i for i in api.json("GET", "/v1/images")["images"] if i["ref"] == ref]


def test_pull_streams_ndjson_then_lists_and_inspects_the_image(api, registry):
    status, headers, body = pull(api, registry.ref)
    assert status == 200, body[:300]
    assert headers["content-type"] == "application/x-ndjson"
    assert headers.get("transfer-encoding") == "chunked"
    image = check_pull_records(ndjson_records(body), registry, built_root=True)

    check(api, "get", "/v1/images", "/v1/images", 200)
    [summary] = listed(api, registry.ref)
    assert summary["digest"] == image["digest"] and summary["manifestDigest"] == registry.digest
    assert summary["platform"] == "linux/amd64" and summary["size"] > 0

    url = "/v1/images/" + registry.ref
    check(api, "get", url, "/v1/images/{ref}", 200)
    details = api.json("GET", url)
    assert details["ref"] == registry.ref and details["manifestDigest"] == registry.digest
    assert details["digest"] == image["digest"] and details["erofs"] == image["erofs"]
    assert len(details["layers"]) == 2
    assert details["config"]["Entrypoint"] == ["/bin/sh", "-c"]
    # A digest names the image too, and the reference may be percent-encoded.
    assert api.json("GET", "/v1/images/" + registry.digest)["ref"] == registry.ref
    assert api.json("GET", "/v1/images/" + registry.ref.replace(":", "%3A"))["digest"] == image["digest"]


def test_pull_again_as_server_sent_events(api, registry):
    # Pulled already (by the test above, or here when run alone), so this
    # pull has nothing to download or build.
    assert ndjson_records(pull(api, registry.ref)[2])[-1]["status"] == "pulled"
    status, headers, body = pull(api, registry.ref, event_stream=True)
    assert status == 200, body[:300]
    assert headers["content-type"] == "text/event-stream"
    events = sse_events(body)
    assert events and all(kind == "message" for kind, _ in events), events
    # One JSON text per event, on one data line (docs: `data: JSON`).
    assert all("\n" not in data for _, data in events)
    records = [json.loads(data) for _, data in events]
    image = check_pull_records(records, registry, built_root=False)
    assert image["bytesDownloaded"] == 0
    assert len(listed(api, registry.ref)) == 1


@pytest.mark.parametrize("event_stream", [False, True])
def test_missing_tag_ends_with_a_typed_error_record(api, registry, event_stream):
    ref = registry.host + "/test/busybox:nosuch"
    status, headers, body = pull(api, ref, event_stream)
    # docs/openapi.yaml: a failed pull is a 200 whose last record says so.
    assert status == 200, body[:300]
    records = [json.loads(d) for _, d in sse_events(body)] if event_stream else ndjson_records(body)
    assert records, body
    record_schema = validator("#/components/schemas/PullRecord")
    for r in records:
        record_schema.validate(r)
    last = records[-1]
    assert last["status"] == "error", last
    assert last["error"]["kind"] == "not_found", last
    assert "nosuch" in last["error"]["message"]
    assert listed(api, ref) == []


def test_bad_pull_bodies_are_refused_before_the_stream(api):
    for body in ({}, {"ref": 7}, {"ref": "x", "insecure_registry": "yes"}, {"ref": "x", "tag": "1"}, [1]):
        check(api, "post", "/v1/images/pull", "/v1/images/pull", 400, body)
        assert api.json("POST", "/v1/images/pull", body, expect=400)["error"]["kind"] == "invalid_argument"


def test_delete_then_inspect_is_not_found(api, registry):
    status, _, body = pull(api, registry.ref)
    assert status == 200 and ndjson_records(body)[-1]["status"] == "pulled", body[-300:]
    url = "/v1/images/" + registry.ref
    status, _, body = api.request("DELETE", url)
    assert status == 204 and body == b""
    check(api, "get", url, "/v1/images/{ref}", 404)
    assert api.json("GET", url, expect=404)["error"]["kind"] == "not_found"
    assert listed(api, registry.ref) == []
    check(api, "delete", url, "/v1/images/{ref}", 404)
