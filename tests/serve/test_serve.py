"""The Serve app over real HTTP: OpenAI client, streaming, sources, auth, errors, replicas."""

from __future__ import annotations

import json
import time
from pathlib import Path

import httpx
import pytest

from tests.helpers import make_adapter
from tests.serve.http import BASE, chat


def test_openai_client_completion_and_stream_with_sources(served):
    import openai

    client = openai.OpenAI(base_url=f"{BASE}/v1", api_key="unused")
    messages = [{"role": "user", "content": "How long should green tea steep?"}]
    completion = client.chat.completions.create(model="qa", messages=messages, max_tokens=6)
    text = completion.choices[0].message.content
    assert completion.model == "qa" and completion.choices[0].finish_reason in {"stop", "length"}
    assert completion.usage.completion_tokens <= 6
    sources = completion.model_extra["sources"]
    assert len(sources) == 2 and sources[0]["source"].endswith("tea.md")

    stream = client.chat.completions.create(model="qa", messages=messages, max_tokens=6, stream=True)
    chunks = list(stream)
    streamed = "".join(c.choices[0].delta.content or "" for c in chunks)
    assert streamed == text  # greedy decoding: streaming yields the same answer
    assert chunks[0].model_extra["sources"][0]["source"].endswith("tea.md")
    assert chunks[-1].choices[0].finish_reason in {"stop", "length"}


def test_models_and_retrieve(served):
    models = httpx.get(f"{BASE}/v1/models").json()["data"]
    assert {m["id"] for m in models} == {"base", "qa"}
    hits = httpx.post(f"{BASE}/v1/retrieve", json={"query": "pruning roses", "k": 3}).json()
    assert len(hits["data"]) == 3 and hits["data"][0]["source"].endswith("roses.md")
    assert hits["data"][0]["rerank_score"] is None and isinstance(hits["data"][0]["score"], float)
    base_answer = chat({"model": "base", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 4})
    assert base_answer.status_code == 200


def test_responses_say_where_their_time_went(served):
    """Server-Timing: the ingress's own steps and each replica's queue and compute time, each
    inside the round trip that holds it, all inside the total."""
    from ragtune.serve.timing import parse_header

    slack = 0.05  # each duration is rounded to 0.01 ms
    retrieved = httpx.post(f"{BASE}/v1/retrieve", json={"query": "pruning roses"}, timeout=60)
    spans = parse_header(retrieved.headers["server-timing"])
    assert spans["retrieve.queue"] + spans["retrieve.search"] <= spans["retrieve"] + slack
    assert spans["read"] + spans["retrieve"] <= spans["total"] + slack
    body = {"messages": [{"role": "user", "content": "How long should green tea steep?"}], "max_tokens": 4}
    spans = parse_header(chat(body).headers["server-timing"])
    replica = spans["generate.prompt"] + spans["generate.queue"] + spans["generate.decode"]
    assert 0 < spans["generate.decode"] and replica <= spans["generate"] + slack
    assert sum(spans[name] for name in ("read", "plan", "retrieve", "generate")) <= spans["total"] + slack
    with httpx.stream("POST", f"{BASE}/v1/chat/completions", json={**body, "stream": True}) as response:
        spans = parse_header(response.headers["server-timing"])  # up to the first decoded piece
        assert response.status_code == 200 and 0 < spans["generate"] <= spans["total"]
        assert response.read().decode().rstrip().endswith("data: [DONE]")


def test_concurrent_completions_decode_as_a_batch_with_the_same_answers(served):
    from concurrent.futures import ThreadPoolExecutor

    questions = ["How long should green tea steep?", "When are roses pruned?", "What is Ray Serve?"]

    def ask(question, model="qa"):
        body = {"model": model, "messages": [{"role": "user", "content": question}], "max_tokens": 6}
        reply = chat(body)
        assert reply.status_code == 200, reply.text
        return reply.json()

    alone = [ask(q)["choices"][0]["message"]["content"] for q in questions]
    with ThreadPoolExecutor(6) as pool:  # both models at once: batched per model
        together = list(pool.map(ask, questions * 2, ["qa"] * 3 + ["base"] * 3))
    assert [r["choices"][0]["message"]["content"] for r in together[:3]] == alone
    assert all(r["usage"]["completion_tokens"] <= 6 for r in together)


def test_concurrent_streams_decode_together_and_a_dropped_one_leaves_the_rest(served):
    from concurrent.futures import ThreadPoolExecutor

    questions = ["How long should green tea steep?", "When are roses pruned?", "What is Ray Serve?"]

    def body(question, model):
        return {"model": model, "messages": [{"role": "user", "content": question}], "max_tokens": 6}

    def streamed(question, model="qa", drop=False):
        with httpx.stream(
            "POST", f"{BASE}/v1/chat/completions", json={**body(question, model), "stream": True}, timeout=60
        ) as response:
            assert response.status_code == 200
            chunks = []
            for line in response.iter_lines():
                if line.startswith("data: {"):
                    chunks.append(json.loads(line[6:])["choices"][0])
                    if drop:
                        return None  # the client goes away mid-stream
            assert chunks[-1]["finish_reason"] in ("stop", "length")
            return "".join(c["delta"].get("content") or "" for c in chunks)

    alone = [
        chat(body(q, m)).json()["choices"][0]["message"]["content"] for m in ("qa", "base") for q in questions
    ]
    with ThreadPoolExecutor(8) as pool:
        dropped = [pool.submit(streamed, q, "qa", True) for q in questions[:2]]
        together = list(pool.map(streamed, questions * 2, ["qa"] * 3 + ["base"] * 3))
    assert together == alone
    assert [d.result() for d in dropped] == [None, None]


def test_query_plan_rides_on_responses_and_routes_intent(served):
    greeting = chat({"messages": [{"role": "user", "content": "hello!"}], "max_tokens": 2}).json()
    assert greeting["sources"] == [] and greeting["query"]["retrieval"] is False
    assert greeting["query"]["reason"] == "greeting or small talk"
    forced = chat(
        {"messages": [{"role": "user", "content": "hello!"}], "max_tokens": 2, "retrieval": "always"}
    ).json()
    assert len(forced["sources"]) == 2 and forced["query"]["reason"] == "request forced retrieval"

    followup = [
        {"role": "user", "content": "Tell me about pruning roses."},
        {"role": "assistant", "content": "Sure."},
        {"role": "user", "content": "When should I do it?"},
    ]
    reply = chat({"messages": followup, "max_tokens": 2}).json()
    assert reply["query"]["strategy"] == "recent_turns" and "pruning roses" in reply["query"]["query"]
    assert reply["sources"][0]["source"].endswith("roses.md")
    body = {"messages": followup, "max_tokens": 2, "stream": True}
    with httpx.stream("POST", f"{BASE}/v1/chat/completions", json=body, timeout=60) as response:
        first = next(line for line in response.iter_lines() if line.startswith("data: "))
    assert json.loads(first.removeprefix("data: "))["query"] == reply["query"]


def test_generator_condenses_a_conversation_into_one_line(served):
    from ragtune.serve.config import GeneratorDeploymentConfig
    from ragtune.serve.generator import GeneratorModel

    config, root = served
    model = GeneratorModel(GeneratorDeploymentConfig(base_model=config.generator.base_model))
    conversations = [
        [
            {"role": "user", "content": "Tell me about roses."},
            {"role": "assistant", "content": "Sure."},
            {"role": "user", "content": "When do I prune them?"},
        ]
    ] * 2
    condensed = model.condense_batch(conversations, max_tokens=5)
    assert len(condensed) == 2 and condensed[0] == condensed[1] and "\n" not in condensed[0]
    assert "Standalone question:" in model.condense_prompt(conversations[0])


def test_retrieval_never_answers_without_sources(served):
    body = {"messages": [{"role": "user", "content": "How long should green tea steep?"}], "max_tokens": 4}
    assert len(chat(body).json()["sources"]) == 2
    assert chat({**body, "retrieval": "never"}).json()["sources"] == []
    bad = chat({**body, "retrieval": "sometimes"})
    assert bad.status_code == 400 and "retrieval" in bad.json()["error"]["message"]


@pytest.mark.parametrize(
    ("body", "status", "fragment"),
    [
        ("{not json", 400, "malformed JSON"),
        ({"model": "qa"}, 400, "messages"),
        (
            {"messages": [{"role": "user", "content": "x"}], "temperature": "hot"},
            400,
            "temperature",
        ),
        ({"messages": [{"role": "assistant", "content": "x"}]}, 400, "last message"),
        ({"messages": [{"role": "user", "content": "x" * 600}]}, 400, "exceeds the limit"),
        ({"messages": [{"role": "user", "content": "x"}], "k": 9}, 400, "k must be between"),
        ({"messages": [{"role": "user", "content": "x"}], "k": 0}, 400, "k"),
        ({"messages": [{"role": "user", "content": "x"}], "model": "nope"}, 404, "not served"),
        ({"messages": []}, 400, "messages"),
        ({"messages": [{"role": "user", "content": "  \n "}]}, 400, "last user message is empty"),
        ({"messages": [{"role": "user", "content": "x"}] * 65}, 400, "the limit is 64"),
    ],
)
def test_bad_requests_get_openai_shaped_4xx(served, body, status, fragment):
    raw = body if isinstance(body, str) else json.dumps(body)
    response = httpx.post(
        f"{BASE}/v1/chat/completions", content=raw, headers={"content-type": "application/json"}, timeout=60
    )
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert fragment in error["message"] and error["type"] == "invalid_request_error"


def test_auth_on_and_off(served, monkeypatch):
    from ray import serve

    from ragtune.serve.app import build_app

    config, _ = served
    monkeypatch.setenv("RAGTUNE_TEST_KEYS", "s3cret,other")
    secured = config.model_copy(
        update={"app_name": "secured", "route_prefix": "/secured", "api_keys_env": "RAGTUNE_TEST_KEYS"}
    )
    serve.run(build_app(secured), name="secured", route_prefix="/secured")
    try:
        body = {"messages": [{"role": "user", "content": "tea?"}], "max_tokens": 2}
        denied = chat(body, base=f"{BASE}/secured")
        assert denied.status_code == 401 and denied.json()["error"]["code"] == "invalid_api_key"
        wrong = chat(body, {"Authorization": "Bearer nope"}, base=f"{BASE}/secured")
        assert wrong.status_code == 401
        allowed = chat(body, {"Authorization": "Bearer s3cret"}, base=f"{BASE}/secured")
        assert allowed.status_code == 200
        assert chat(body).status_code == 200  # the open app needs no key
    finally:
        serve.delete("secured")


def deployment_details(app: str) -> dict:
    """Serve's details of each deployment of a running app, by name."""
    from ray.serve.context import _get_global_client

    return _get_global_client().get_serve_details()["applications"][app]["deployments"]


def test_autoscaling_bounds_and_rollout_options_are_applied(served):
    """A replica being stopped may finish requests up to their deadline (with Serve's 20 s, an
    old ingress was killed with requests waiting for a one-replica generator's replacement: 500s
    under load); no deployment surges on a redeploy unless its config says so."""
    from ragtune.serve.app import SHUTDOWN_MARGIN_S

    config, _ = served
    deployments = deployment_details("ragtune")
    autoscaling = deployments["RetrieverDeployment"]["deployment_config"]["autoscaling_config"]
    assert (autoscaling["min_replicas"], autoscaling["max_replicas"]) == (1, 2)
    generator = deployments["Generator"]["deployment_config"]
    assert generator["num_replicas"] == 1
    assert generator["ray_actor_options"]["resources"] == {"tier:local": 1.0}
    for deployment in deployments.values():
        options = deployment["deployment_config"]
        assert options["graceful_shutdown_timeout_s"] == config.request_timeout_s + SHUTDOWN_MARGIN_S
        assert options["max_surge_percent"] == 0


def test_a_deployment_configured_to_surge_does(served):
    from ray import serve

    from ragtune.serve.app import build_app

    config, _ = served
    scaling = config.generator.scaling.model_copy(update={"surge_percent": 100})
    surged = config.model_copy(
        update={
            "app_name": "surged",
            "generator": config.generator.model_copy(update={"scaling": scaling}),
        }
    )
    serve.run(build_app(surged), name="surged", route_prefix="/surged")
    try:
        deployments = deployment_details("surged")
    finally:
        serve.delete("surged")
    surges = {name: d["deployment_config"]["max_surge_percent"] for name, d in deployments.items()}
    assert surges == {"Ingress": 0, "RetrieverDeployment": 0, "Generator": 100}


def test_access_log_off_leaves_no_request_lines(served):
    import ray

    assert httpx.post(f"{BASE}/v1/retrieve", json={"query": "green tea", "k": 1}).status_code == 200
    deployments = deployment_details("ragtune")
    logs = Path(ray._private.worker._global_node.get_session_dir_path()) / "logs"
    replica_log = logs / deployments["Ingress"]["replicas"][0]["log_file_path"].lstrip("/")
    text = replica_log.read_text()
    assert text and "POST /v1/retrieve" not in text


def test_killed_generator_replica_is_replaced(served):
    import ray

    replicas = [
        a["name"] for a in ray.util.list_named_actors(all_namespaces=True) if "ragtune#Generator" in a["name"]
    ]
    assert len(replicas) == 1
    ray.kill(ray.get_actor(replicas[0], namespace="serve"), no_restart=True)
    body = {"messages": [{"role": "user", "content": "roses?"}], "max_tokens": 2}
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        try:
            if chat(body).status_code == 200:
                break
        except httpx.HTTPError:
            pass
        time.sleep(1)
    else:
        pytest.fail("no successful request after the generator replica was killed")
    assert chat(body).status_code == 200


def test_redeploy_adding_an_adapter_drops_no_in_flight_request(served):
    import threading

    from ragtune.serve.app import deploy

    config, root = served
    statuses: list[int | str] = []
    done = threading.Event()

    def keep_asking():
        body = {"model": "qa", "messages": [{"role": "user", "content": "tea?"}], "max_tokens": 4}
        while not done.is_set():
            try:
                reply = chat(body)
                statuses.append(
                    200 if reply.status_code == 200 else f"{reply.status_code}: {reply.text[:300]}"
                )
            except httpx.HTTPError as exc:  # a dropped connection is a dropped request
                statuses.append(type(exc).__name__)

    askers = [threading.Thread(target=keep_asking) for _ in range(2)]
    for thread in askers:
        thread.start()
    time.sleep(2)
    adapters = {**config.generator.adapters, "qa2": make_adapter(config.generator.base_model, root / "qa2")}
    deploy(
        config.model_copy(update={"generator": config.generator.model_copy(update={"adapters": adapters})})
    )  # serve.run returns once the new replicas are up
    time.sleep(2)
    done.set()
    for thread in askers:
        thread.join()
    assert len(statuses) > 4 and set(statuses) == {200}, statuses
    assert {m["id"] for m in httpx.get(f"{BASE}/v1/models").json()["data"]} == {"base", "qa", "qa2"}


def test_the_retriever_replica_reranks_a_batch_of_queries(served, tmp_path):
    """A retriever deployment with a reranker, called through its handle: concurrent searches
    come back reranked, with both scores."""
    from ray import serve

    from ragtune.retrieval.config import RerankConfig
    from ragtune.serve.replicas import RetrieverDeployment
    from tests.helpers import cross_encoder

    _, root = served
    rerank = RerankConfig(model=str(cross_encoder(tmp_path / "ce")), candidates=3)
    replica = RetrieverDeployment.options(ray_actor_options={"num_cpus": 0.1}).bind(
        str(root / "index"), 1, False, rerank
    )
    handle = serve.run(replica, name="rerank-test", route_prefix=None)
    try:
        calls = [handle.search.remote("pruning roses", 2, "dense"), handle.search.remote("tea", 1, "bm25")]
        found = [call.result(timeout_s=120) for call in calls]
    finally:
        serve.delete("rerank-test")
    roses, tea = (result["hits"] for result in found)
    assert [len(roses), len(tea)] == [2, 1]
    assert all(set(result["timing"]) == {"queue", "search"} for result in found)
    assert roses[0]["rerank_score"] >= roses[1]["rerank_score"] and isinstance(roses[0]["score"], float)
    assert tea[0]["rerank_score"] is not None
