"""TCP needs the bearer token: none, a wrong one, or one in the query string
is refused with 401; the token file is made private and never logged."""
import json
import os
import stat

from conftest import Client


def test_token_file_is_private(home, tcp_server, token):
    path = os.path.join(home, "server.token")
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    assert len(token) == 64


def test_refusals(tcp_server, token):
    none = Client(tcp_server, token="")
    status, headers, data = none.request("GET", "/v1/health", headers={})
    assert status == 401 and json.loads(data)["error"]["kind"] == "unauthenticated"
    assert headers["www-authenticate"] == "Bearer"
    wrong = Client(tcp_server, token=token[:-1] + ("0" if token[-1] != "0" else "1"))
    assert wrong.request("GET", "/v1/health")[0] == 401
    shorter = Client(tcp_server, token=token[:10])
    assert shorter.request("GET", "/v1/health")[0] == 401
    anon = Client(tcp_server, token="")
    c = anon.connection()
    c.request("GET", "/v1/health?token=" + token + "&access_token=" + token)
    assert c.getresponse().status == 401
    c.close()


def test_right_token(tcp_server, token):
    ok = Client(tcp_server, token=token)
    assert ok.json("GET", "/v1/health") == {"status": "ok"}
    assert ok.request("GET", "/metrics")[0] == 200


def test_token_never_logged(tcp_server, token):
    Client(tcp_server, token=token).request("GET", "/v1/health?token=" + token)
    assert token not in open(tcp_server.log_path).read()
