"""/metrics parses with Prometheus' own text-format parser, has a series per
running sandbox, and its numbers move when the guest burns CPU or fills
memory."""
import time

from prometheus_client.parser import text_string_to_metric_families


def scrape(api):
    status, headers, data = api.request("GET", "/metrics")
    assert status == 200 and headers["content-type"].startswith("text/plain; version=0.0.4")
    values = {}
    for family in text_string_to_metric_families(data.decode()):
        for s in family.samples:
            values[(s.name, s.labels.get("name", ""))] = s.value
    return values


def test_metrics_move_with_the_guest(api, sandbox):
    name = sandbox["name"]
    before = scrape(api)
    assert before[("moat_sandboxes", "")] >= 0
    cpu0 = before[("moat_sandbox_cpu_seconds_total", name)]
    mem0 = before[("moat_sandbox_memory_bytes", name)]
    guest0 = before[("moat_sandbox_guest_memory_bytes", name)]
    execs0 = before[("moat_sandbox_execs_total", name)]
    assert 0 < guest0 < before[("moat_sandbox_guest_memory_total_bytes", name)]
    assert before[("moat_sandbox_host_resident_bytes", name)] > 0
    assert before[("moat_sandbox_memory_limit_bytes", name)] > 0
    api.json("POST", "/v1/sandboxes/%s/exec" % name,
             {"argv": ["sh", "-c", "i=0; while [ $i -lt 200000 ]; do i=$((i+1)); done"], "wait": True})
    # 96 MiB the guest touches and keeps while the scrape happens.
    api.json("POST", "/v1/sandboxes/%s/exec" % name,
             {"argv": ["sh", "-c", "mkdir -p /m && mount -t tmpfs -o size=120m tmpfs /m && "
                                   "head -c 100663296 /dev/urandom > /m/fill"], "wait": True})
    after = scrape(api)
    assert after[("moat_sandbox_cpu_seconds_total", name)] > cpu0 + 0.5
    assert after[("moat_sandbox_memory_bytes", name)] > mem0 + 64 * 2**20
    assert after[("moat_sandbox_guest_memory_bytes", name)] > guest0 + 90 * 2**20
    assert after[("moat_sandbox_execs_total", name)] == execs0 + 2
    assert after[("moat_server_requests_total", "")] > before[("moat_server_requests_total", "")]
    api.json("POST", "/v1/sandboxes/%s/exec" % name, {"argv": ["sh", "-c", "rm /m/fill; umount /m"], "wait": True})
