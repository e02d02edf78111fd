"""docs/openapi.yaml describes exactly the routes the server registers, and
real responses validate against its schemas."""
import json
import os
import re
import subprocess

import jsonschema
import yaml

from conftest import MOAT

SPEC_PATH = os.path.join(os.path.dirname(__file__), "..", "..", "docs", "openapi.yaml")


def spec():
    with open(SPEC_PATH) as f:
        return yaml.safe_load(f)


def test_every_route_is_documented_and_nothing_else():
    served = set()
    for line in subprocess.run([MOAT, "serve", "--routes"], capture_output=True, text=True, check=True).stdout.split("\n"):
        if line:
            method, pattern = line.split(" ", 1)
            served.add((method.lower(), re.sub(r"\{(\w+)\*\}", r"{\1}", pattern)))
    documented = set()
    for path, item in spec()["paths"].items():
        for method in item:
            if method in ("get", "put", "post", "delete", "patch", "head", "options"):
                documented.add((method, path))
    assert served - documented == set(), "served but not in docs/openapi.yaml"
    assert documented - served == set(), "in docs/openapi.yaml but not served"


def test_the_router_fuzzer_knows_every_route_in_order():
    """fuzz/server_router_fuzz.cpp checks matching against a copy of the
    route table (it links the router alone): the copy must be the table."""
    served = [tuple(line.split(" ", 1)) for line in
              subprocess.run([MOAT, "serve", "--routes"], capture_output=True, text=True, check=True).stdout.splitlines()
              if line]
    with open(os.path.join(os.path.dirname(__file__), "..", "..", "fuzz", "server_router_fuzz.cpp")) as f:
        copied = re.findall(r'^\s*\{"([A-Z]+)", "([^"]+)"\},$', f.read(), re.M)
    assert copied == served


def validator(schema_ref):
    s = spec()
    schema = {"$ref": schema_ref, "components": s["components"]}
    return jsonschema.Draft202012Validator(schema)


def response_schema(path, method, status):
    op = spec()["paths"][path][method]
    resp = op["responses"].get(str(status)) or op["responses"].get(status) or op["responses"]["default"]
    while "$ref" in resp:
        name = resp["$ref"].split("/")[-1]
        resp = spec()["components"]["responses"][name]
    return resp["content"]["application/json"]["schema"]


def check(api, method, url, path, status, body=None):
    code, _, data = api.request(method.upper(), url, body)
    assert code == status, (url, code, data[:300])
    schema = response_schema(path, method, status)
    s = spec()
    jsonschema.Draft202012Validator({**schema, "components": s["components"]}).validate(json.loads(data))


def test_responses_match_their_schemas(api, sandbox):
    sid = sandbox["id"]
    check(api, "get", "/v1/health", "/v1/health", 200)
    check(api, "get", "/v1/version", "/v1/version", 200)
    check(api, "get", "/v1/sandboxes", "/v1/sandboxes", 200)
    check(api, "get", "/v1/sandboxes/" + sid, "/v1/sandboxes/{id}", 200)
    check(api, "get", "/v1/sandboxes/%s/stats" % sid, "/v1/sandboxes/{id}/stats", 200)
    check(api, "post", "/v1/sandboxes/%s/exec" % sid, "/v1/sandboxes/{id}/exec", 200,
          {"argv": ["echo", "x"], "wait": True})
    check(api, "post", "/v1/sandboxes/%s/exec" % sid, "/v1/sandboxes/{id}/exec", 201, {"argv": ["true"]})
    check(api, "post", "/v1/sandboxes/%s/dirs/srv?parents=true" % sid, "/v1/sandboxes/{id}/dirs/{path}", 201)
    check(api, "get", "/v1/sandboxes/%s/dirs/" % sid, "/v1/sandboxes/{id}/dirs/{path}", 200)
    check(api, "get", "/v1/sandboxes/%s/stat/srv" % sid, "/v1/sandboxes/{id}/stat/{path}", 200)
    check(api, "get", "/v1/images", "/v1/images", 200)
    check(api, "get", "/v1/volumes", "/v1/volumes", 200)
    check(api, "post", "/v1/volumes", "/v1/volumes", 201, {"name": "schema-vol"})
    check(api, "get", "/v1/volumes/schema-vol", "/v1/volumes/{name}", 200)
    check(api, "get", "/v1/sandboxes/nosuch", "/v1/sandboxes/{id}", 404)
    check(api, "post", "/v1/sandboxes", "/v1/sandboxes", 400, {"bogus": 1})
    assert api.request("DELETE", "/v1/volumes/schema-vol")[0] == 204
