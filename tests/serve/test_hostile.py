"""Hostile and malformed requests get a 4xx in OpenAI's error shape, never a 500; slow clients
cannot starve the app or its health check; a lost retriever replica fails no search; answers
show no server paths; auth fails closed; one bad item of a batch fails alone; `ragtune status`
reads a running app."""

from __future__ import annotations

import json
import socket
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest

from ragtune.core.errors import ConfigError
from ragtune.serve.api import load_api_key_hashes
from ragtune.serve.app import app_builder
from ragtune.serve.config import ServeJobConfig
from ragtune.serve.replicas import each_alone
from tests.serve.http import BASE, PORT

USER = '{"messages": [{"role": "user", "content": %s}]%s}'


def post(path: str, raw: bytes | str, content_type: str | None = "application/json") -> httpx.Response:
    headers = {"content-type": content_type} if content_type else {}
    return httpx.post(f"{BASE}{path}", content=raw, headers=headers, timeout=60)


@pytest.mark.parametrize(
    ("raw", "content_type", "status", "fragment"),
    [
        (b'{"messages": [{"role": "user", "content": "\xff\xfe"}]}', "application/json", 400, "UTF-8"),
        ("[" * 10_000 + "]" * 10_000, "application/json", 400, "nested too deeply"),
        (USER % ('"tea?"', ', "max_tokens": ' + "9" * 5000), "application/json", 400, "malformed JSON"),
        (USER % ('"\\ud800 tea?"', ""), "application/json", 400, "Unicode"),
        (USER % ('"tea?"', ""), "text/plain", 415, "application/json"),
        (USER % ('"tea?"', ', "n": 2'), "application/json", 400, "n"),
        (USER % ('"tea?"', ', "stop": ["a", "b", "c", "d", "e"]'), "application/json", 400, "stop"),
        (USER % ('"tea?"', ', "stop": "' + "a" * 65 + '"'), "application/json", 400, "stop"),
        (USER % (json.dumps("x" * 40_000), ""), "application/json", 413, "request body over"),
    ],
    ids=[
        "invalid-utf8",
        "deep-nesting",
        "huge-integer",
        "lone-surrogate",
        "content-type",
        "n",
        "stops",
        "long-stop",
        "size",
    ],
)
def test_malformed_bodies_get_openai_shaped_4xx(served, raw, content_type, status, fragment):
    response = post("/v1/chat/completions", raw, content_type)
    assert response.status_code == status, response.text[:500]
    assert fragment in response.json()["error"]["message"]


def test_fastapis_own_errors_are_openai_shaped(served):
    unknown = httpx.get(f"{BASE}/v1/nope", timeout=30)
    method = httpx.get(f"{BASE}/v1/chat/completions", timeout=30)
    docs = httpx.get(f"{BASE}/docs", timeout=30)
    assert (unknown.status_code, method.status_code, docs.status_code) == (404, 405, 404)
    assert all(r.json()["error"]["type"] == "invalid_request_error" for r in (unknown, method, docs))
    assert "POST" in method.headers["allow"]
    models = httpx.get(f"{BASE}/v1/models", timeout=30).json()["data"]
    assert models and not any(m["root"].startswith("/") for m in models)  # no server paths


def test_limits_count_characters_not_escaped_bytes(served):
    emoji = "🙂" * 450  # under the test app's 500-character limit; 5,400 bytes as escaped JSON
    response = post("/v1/retrieve", json.dumps({"query": emoji, "k": 1}))
    assert response.status_code == 200, response.text[:300]
    over = post("/v1/retrieve", json.dumps({"query": "🙂" * 501, "k": 1}))
    assert over.status_code == 400 and "exceeds the limit" in over.json()["error"]["message"]


def test_one_failing_item_of_a_batch_fails_alone():
    def search(queries: list[str]) -> list[str]:
        if any("bad" in q for q in queries):
            raise ValueError("cannot embed")
        return [q.upper() for q in queries]

    results = each_alone(search, ["tea", "bad", "roses"])
    assert results[0] == "TEA" and results[2] == "ROSES" and isinstance(results[1], ValueError)
    assert each_alone(search, ["tea", "roses"]) == ["TEA", "ROSES"]


def test_auth_fails_closed(tmp_path, monkeypatch):
    base = {"retriever": {"index_dir": str(tmp_path)}, "generator": {"base_model": "m"}}
    with pytest.raises(ValueError, match="no API keys"):
        ServeJobConfig.model_validate({**base, "host": "0.0.0.0"})
    assert ServeJobConfig.model_validate({**base, "host": "0.0.0.0", "auth": "none"}).auth == "none"
    with pytest.raises(ValueError, match="needs api_keys_file or api_keys_env"):
        ServeJobConfig.model_validate({**base, "auth": "api_keys"})
    with pytest.raises(ValueError, match="api_keys_env"):
        ServeJobConfig.model_validate({**base, "host": "0.0.0.0", "api_keys_env": ""})
    service = tmp_path / "service.yaml"
    service.write_text(f"kind: serve\nretriever: {{index_dir: {tmp_path}}}\ngenerator: {{base_model: m}}\n")
    with pytest.raises(ConfigError, match="RayService app is reachable beyond this host"):
        app_builder({"config": str(service)})
    monkeypatch.delenv("RAGTUNE_UNSET_KEYS", raising=False)
    with pytest.raises(ConfigError, match="RAGTUNE_UNSET_KEYS is unset or empty"):
        load_api_key_hashes(None, "RAGTUNE_UNSET_KEYS")
    empty = tmp_path / "keys.txt"
    empty.write_text("\n  \n")
    with pytest.raises(ConfigError, match="holds no API key"):
        load_api_key_hashes(empty, None)


def test_status_reads_a_running_serve_app(served):
    from ragtune.cluster.status import format_status, gather_status

    text = format_status(gather_status(None))
    app_line = next(line for line in text.splitlines() if line.strip().startswith("ragtune "))
    assert "RUNNING" in app_line and "(3 deployments)" in app_line, text


def trickle(results: list) -> None:
    """A client that sends its headers, then one byte of body every 0.3 s until answered (or
    for 15 s)."""
    started = time.monotonic()
    with socket.create_connection(("127.0.0.1", PORT), timeout=30) as conn:
        head = (
            "POST /v1/retrieve HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            "Content-Length: 1000\r\n\r\n"
        )
        conn.sendall(head.encode())
        conn.settimeout(0.3)
        while time.monotonic() - started < 15:
            try:
                reply = conn.recv(200)
                break
            except TimeoutError:
                conn.sendall(b" ")
        else:
            reply = b""
    results.append((reply.split(b"\r\n", 1)[0].decode(), time.monotonic() - started))


def test_trickling_clients_get_408_or_503_and_never_delay_the_health_check(served):
    config, _ = served
    results: list = []
    clients = [threading.Thread(target=trickle, args=(results,)) for _ in range(10)]
    for client in clients:
        client.start()
    time.sleep(1)
    health = []
    for _ in range(5):
        started = time.monotonic()
        assert httpx.get(f"{BASE}/healthz", timeout=10).json() == {"status": "ok"}
        health.append(time.monotonic() - started)
        time.sleep(0.3)
    for client in clients:
        client.join()
    assert max(health) < 1.0, health
    statuses = sorted(status.split(" ")[1] for status, _ in results)
    assert statuses == ["408"] * 8 + ["503"] * 2, results  # 8 user slots, 2 refused at once
    assert all(seconds < 1 for status, seconds in results if " 503" in status)
    assert all(seconds >= config.body_timeout_s for status, seconds in results if " 408" in status)
    retrieve = httpx.post(f"{BASE}/v1/retrieve", json={"query": "tea"}, timeout=30)
    assert retrieve.status_code == 200  # the slots came back


def test_answers_name_sources_relative_to_the_corpus(served):
    _, root = served
    hits = httpx.post(f"{BASE}/v1/retrieve", json={"query": "roses", "k": 3}, timeout=30).json()["data"]
    assert {hit["source"] for hit in hits} == {"tea.md", "roses.md", "ray.md"}
    assert {hit["doc_id"] for hit in hits} == {"tea.md", "roses.md", "ray.md"}
    assert str(root) not in json.dumps(hits)


def test_a_killed_retriever_replica_fails_no_search(served):
    import ray

    def replicas():
        return [
            a["name"]
            for a in ray.util.list_named_actors(all_namespaces=True)
            if "ragtune#RetrieverDeployment" in a["name"]
        ]

    def search(_):
        try:
            return httpx.post(f"{BASE}/v1/retrieve", json={"query": "tea"}, timeout=60).status_code
        except httpx.HTTPError as exc:
            return type(exc).__name__

    victims = replicas()
    with ThreadPoolExecutor(4) as pool:
        before = pool.map(search, range(8))
        for name in victims:
            ray.kill(ray.get_actor(name, namespace="serve"), no_restart=True)
        during = list(pool.map(search, range(40)))
    assert list(before) == [200] * 8 and during == [200] * 40, during
    assert not set(replicas()) & set(victims)  # replaced
