"""Property tests against the live app: any body, well-formed or not, gets a 200 or a 4xx in
OpenAI's error shape; never a 5xx."""

from __future__ import annotations

import json

import httpx
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.serve.http import BASE

SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(10**20), max_value=10**20),
    st.floats(),
    st.text(max_size=30),
)
JSON = st.recursive(
    SCALARS,
    lambda inner: st.one_of(
        st.lists(inner, max_size=3), st.dictionaries(st.text(max_size=10), inner, max_size=3)
    ),
    max_leaves=10,
)
MESSAGE = st.fixed_dictionaries(
    {
        "role": st.sampled_from(["user", "assistant", "system", "tool", "robot"]),
        "content": st.one_of(st.text(max_size=60), JSON),
    }
)
CHAT = st.fixed_dictionaries(
    {"messages": st.lists(MESSAGE, max_size=3)},
    optional={
        "model": st.sampled_from(["base", "qa", "nope", ""]),
        "max_tokens": st.integers(-2, 40),
        "temperature": st.floats(-1, 3),
        "top_p": st.floats(-1, 2),
        "stop": st.one_of(st.text(max_size=70), st.lists(st.text(max_size=5), max_size=6)),
        "stream": st.booleans(),
        "k": st.integers(-1, 50),
        "n": st.integers(0, 3),
        "retrieval": st.sampled_from(["auto", "always", "never", "sometimes"]),
        "retrieval_mode": st.sampled_from(["dense", "bm25", "hybrid", "fuzzy"]),
    },
)
RETRIEVE = st.fixed_dictionaries(
    {"query": st.one_of(st.text(max_size=60), JSON)},
    optional={"k": st.integers(-1, 50), "mode": st.sampled_from(["dense", "bm25", "hybrid", "x"])},
)
FUZZ = settings(max_examples=40, deadline=None, suppress_health_check=list(HealthCheck))


def check(path: str, content: bytes) -> None:
    reply = httpx.post(
        f"{BASE}{path}", content=content, headers={"content-type": "application/json"}, timeout=60
    )
    assert reply.status_code < 500, reply.text
    if reply.status_code >= 400:
        assert reply.json()["error"]["message"]


@FUZZ
@given(st.one_of(CHAT, JSON))
def test_any_chat_body_gets_an_answer_or_a_4xx(served, body):
    check("/v1/chat/completions", json.dumps(body).encode())


@FUZZ
@given(st.one_of(RETRIEVE, JSON))
def test_any_retrieve_body_gets_an_answer_or_a_4xx(served, body):
    check("/v1/retrieve", json.dumps(body).encode())


@FUZZ
@given(st.binary(max_size=200))
def test_any_bytes_get_a_4xx(served, raw):
    check("/v1/chat/completions", raw)
