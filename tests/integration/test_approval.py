"""Tool-call approval over real WebSockets: a tool registered with approval=True runs only once a
user of the session approves that call (docs/protocol.md, section 9.9)."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from typing import Any

import pandas as pd
import pytest

from llmsock_widget.client import Client as PythonClient
from llmsock_widget.models import BuiltinModel
from llmsock_widget.server.thread import ServerThread
from llmsock_widget.tools import ToolRegistry, default_registry
from tests import fakeopenai
from tests.conftest import TIMEOUT
from tests.fakeopenai import FakeOpenAI

from .conftest import Client, MakeServer, aclose, is_turn_end, open_client

PROMPT = '/tool set_value {"value": 7}'


class Namespace:
    """What the approval tool changes: a value, and how often it was set (by any thread)."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.value = 0
        self.calls = 0

    def set_value(self, value: int) -> str:
        """Set the value (a change of state: each call needs the user's approval).

        Args:
            value: the new value.
        """
        with self.lock:
            self.value = value
            self.calls += 1
        return f"value is {value}"


PRICES = pd.DataFrame({"price": [1.5, 2.5, 3.5], "city": ["Oslo", "Rome", "Lima"]})


def load_prices() -> pd.DataFrame:
    """Load the price table."""
    return PRICES


def registry(namespace: Namespace) -> ToolRegistry:
    tools = default_registry()
    tools.register(namespace.set_value, name="set_value", approval=True)
    tools.register(load_prices)
    return tools


@pytest.fixture
def namespace() -> Namespace:
    return Namespace()


@pytest.fixture
def server(make_server: MakeServer, namespace: Namespace) -> ServerThread:
    return make_server(model=BuiltinModel(tokens_per_second=None), tools=registry(namespace))


def model_event(m: dict[str, Any]) -> dict[str, Any] | None:
    return m["data"]["event"] if m.get("name") == "interaction.model" else None


def is_approval(m: dict[str, Any]) -> bool:
    event = model_event(m)
    return event is not None and "approval" in event


def is_control(action: str) -> Any:
    def test(m: dict[str, Any]) -> bool:
        return m.get("name") == "interaction.control" and m["data"]["event"].get("action") == action

    return test


async def connect(server: ServerThread, session: str = "approvals", dialect: str = "envelope") -> Client:
    client = await open_client(server, session=session, dialect=dialect)
    await client.recv()  # ready
    return client


async def ask(client: Client, prompt: str = PROMPT) -> dict[str, Any]:
    """Send ``prompt``; return the approval request the session sends for its call."""
    await client.send({"type": "user_message", "id": "u1", "data": {"text": prompt}})
    return model_event((await client.recv_until(is_approval))[-1])["approval"]  # type: ignore[index]


async def answer(client: Client, call_id: str, approved: bool, request: str = "a1") -> dict[str, Any]:
    """Answer the call's approval; return the control result (the data of the envelope's event)."""
    await client.send(
        {"type": "approval", "id": request, "data": {"toolCallId": call_id, "approved": approved}}
    )
    return (await client.recv_until(is_control("approval")))[-1]["data"]["event"]


def events_of(messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [e for e in map(model_event, messages) if e is not None]


def one(events: list[dict[str, Any]], key: str) -> dict[str, Any]:
    found = [e[key] for e in events if key in e]
    assert len(found) == 1, (key, found)
    return found[0]


async def history(client: Client) -> dict[str, Any]:
    await client.send({"type": "control", "id": "h", "data": {"type": "get_history"}})
    return (await client.recv_until(is_control("get_history")))[-1]["data"]["event"]["data"]


# -- approve, deny, time out, stop --------------------------------------------------------------


def test_an_approved_call_runs_once(server: ServerThread, namespace: Namespace, run) -> None:
    async def scenario() -> tuple[dict[str, Any], dict[str, Any], list[dict[str, Any]]]:
        client = await connect(server)
        request = await ask(client)
        assert namespace.calls == 0  # asked, not run
        reply = await answer(client, request["toolCallId"], True)
        await client.recv_until(is_turn_end)
        await aclose(client)
        return request, reply, events_of(client.seen)

    request, reply, events = run(scenario())
    assert request["toolName"] == "set_value" and request["arguments"] == {"value": 7}
    assert request["timeoutMs"] == 120_000
    assert reply["ok"] is True and reply["data"] == {"toolCallId": request["toolCallId"], "approved": True}
    assert one(events, "approvalResult") == {
        "toolCallId": request["toolCallId"],
        "toolName": "set_value",
        "approved": True,
        "reason": "user",
    }
    assert one(events, "toolResult")["ok"] is True and one(events, "toolResult")["result"] == "value is 7"
    assert (namespace.calls, namespace.value) == (1, 7)
    assert "set_value returned value is 7" in events[-1]["text"]


def test_a_denied_call_never_runs_and_the_model_reads_the_denial(
    server: ServerThread, namespace: Namespace, run
) -> None:
    async def scenario() -> tuple[list[dict[str, Any]], dict[str, Any]]:
        client = await connect(server)
        request = await ask(client)
        await answer(client, request["toolCallId"], False)
        await client.recv_until(is_turn_end)
        result = events_of(client.seen), await history(client)
        await aclose(client)
        return result

    events, data = run(scenario())
    assert (
        one(events, "approvalResult")["approved"] is False
        and one(events, "approvalResult")["reason"] == "user"
    )
    result = one(events, "toolResult")
    assert result["ok"] is False
    assert result["error"] == {"code": "denied", "message": "the user denied this call"}
    assert namespace.calls == 0 and namespace.value == 0
    assert "the user denied this call" in events[-1]["text"]  # what the model was told, in its answer
    record = data["messages"][-1]["tools"][0]
    assert (record["approval"], record["status"], record["error"]["code"]) == ("denied", "error", "denied")


def test_no_answer_in_time_denies(server: ServerThread, namespace: Namespace, run) -> None:
    server.hub.approval_timeout = 0.3  # read by each turn as it starts

    async def scenario() -> tuple[dict[str, Any], list[dict[str, Any]], dict[str, Any]]:
        client = await connect(server)
        request = await ask(client)
        await client.recv_until(is_turn_end)
        late = await answer(client, request["toolCallId"], True)  # too late: nothing waits
        await aclose(client)
        return request, events_of(client.seen), late

    request, events, late = run(scenario())
    assert request["timeoutMs"] == 300
    assert one(events, "approvalResult") == {
        "toolCallId": request["toolCallId"],
        "toolName": "set_value",
        "approved": False,
        "reason": "timeout",
    }
    assert one(events, "toolResult")["error"] == {
        "code": "denied",
        "message": "the call was not approved within 0.3 s",
    }
    assert late["ok"] is False and namespace.calls == 0


def test_stop_while_waiting_aborts_the_call(server: ServerThread, namespace: Namespace, run) -> None:
    async def scenario() -> tuple[list[dict[str, Any]], dict[str, Any], dict[str, Any]]:
        client = await connect(server)
        request = await ask(client)
        await client.send({"type": "control", "id": "stop", "data": {"type": "abort"}})
        await client.recv_until(is_turn_end)
        late = await answer(client, request["toolCallId"], True)
        result = events_of(client.seen), late, await history(client)
        await aclose(client)
        return result

    events, late, data = run(scenario())
    assert one(events, "approvalResult")["reason"] == "aborted"
    assert one(events, "approvalResult")["approved"] is False
    assert not any("toolResult" in e for e in events)
    assert events[-1]["type"] == "end" and events[-1]["finishReason"] == "aborted"
    assert late["ok"] is False and namespace.calls == 0
    record = data["messages"][-1]["tools"][0]
    assert (record["approval"], record["status"]) == ("aborted", "error")


# -- who may answer -------------------------------------------------------------------------------


def test_another_client_of_the_session_sees_the_request_and_answers(
    server: ServerThread, namespace: Namespace, run
) -> None:
    """A typed client on the same session gets tool_approval, answers first; the second answer loses."""

    async def scenario() -> tuple[dict[str, Any], dict[str, Any], dict[str, Any], list[dict[str, Any]]]:
        asker = await connect(server, session="shared")
        viewer = await connect(server, session="shared", dialect="typed")
        request = await ask(asker)
        seen = (await viewer.recv_until(lambda m: m.get("type") == "tool_approval"))[-1]
        await viewer.send(
            {
                "type": "approval",
                "id": "v1",
                "data": {"toolCallId": seen["data"]["toolCallId"], "approved": True},
            }
        )
        reply = (await viewer.recv_until(lambda m: m.get("type") == "control_response"))[-1]
        second = await answer(asker, request["toolCallId"], False)
        if not any(map(is_turn_end, asker.seen)):  # the approved call may have ended the turn already
            await asker.recv_until(is_turn_end)
        await aclose(asker, viewer)
        return seen, reply, second, events_of(asker.seen)

    seen, reply, second, events = run(scenario())
    assert seen["data"] == {
        "toolCallId": seen["data"]["toolCallId"],
        "toolName": "set_value",
        "args": {"value": 7},
        "timeoutMs": 120_000,
    }
    assert seen["id"] == "u1"  # the turn's message id, as every frame of that turn
    assert reply["id"] == "v1" and reply["data"]["status"] == "approval" and reply["data"]["success"] is True
    assert second["ok"] is False
    assert second["message"] == f"no tool call {seen['data']['toolCallId']!r} is waiting for approval"
    assert one(events, "approvalResult")["approved"] is True and namespace.calls == 1


def test_a_late_view_finds_the_waiting_call_in_the_history(server: ServerThread, run) -> None:
    async def scenario() -> tuple[dict[str, Any], dict[str, Any]]:
        asker = await connect(server, session="late")
        request = await ask(asker)
        late = await connect(server, session="late")
        data = await history(late)
        await answer(late, request["toolCallId"], False)
        await asker.recv_until(is_turn_end)
        await aclose(asker, late)
        return request, data

    request, data = run(scenario())
    record = data["current"]["tools"][0]
    assert (record["id"], record["approval"], record["status"]) == (
        request["toolCallId"],
        "pending",
        "running",
    )
    # The time left, for the late view's countdown: how long the server waits, and since when.
    assert record["timeoutMs"] == request["timeoutMs"] == 120_000
    assert data["current"]["ts"] <= record["askedAt"]  # asked after the answer started


def test_an_unknown_call_id_gets_ok_false(server: ServerThread, run) -> None:
    async def scenario() -> dict[str, Any]:
        client = await connect(server)
        result = await answer(client, "call_nobody_made", True)
        await aclose(client)
        return result

    reply = run(scenario())
    assert reply["ok"] is False and reply["requestId"] == "a1"
    assert reply["message"] == "no tool call 'call_nobody_made' is waiting for approval"


def test_a_malformed_approval_is_refused(server: ServerThread, run) -> None:
    async def scenario() -> dict[str, Any]:
        client = await connect(server)
        await client.send({"type": "approval", "id": "bad", "data": {"toolCallId": "c1", "approved": "yes"}})
        result = (await client.recv_until(lambda m: m.get("name") == "interaction.error"))[-1]["data"][
            "event"
        ]
        await aclose(client)
        return result

    error = run(scenario())
    assert error["code"] == "invalid_message" and error["requestId"] == "bad"


def test_other_sessions_go_on_while_a_call_waits(server: ServerThread, run) -> None:
    async def scenario() -> dict[str, Any]:
        waiting = await connect(server, session="waits")
        await ask(waiting)
        other = await connect(server, session="free")
        await other.send({"type": "user_message", "id": "u2", "data": {"text": "/echo still here"}})
        result = events_of(await other.recv_until(is_turn_end))[-1]
        await aclose(waiting, other)
        return result

    end = run(scenario())
    assert end["type"] == "end" and end["text"] == "still here"


# -- live results ------------------------------------------------------------------------------------


def test_a_data_frame_result_gives_the_model_a_summary_and_the_user_the_object(
    server: ServerThread, run
) -> None:
    async def scenario() -> list[dict[str, Any]]:
        client = await connect(server)
        await client.send({"type": "user_message", "id": "u1", "data": {"text": "/tool load_prices"}})
        result = events_of(await client.recv_until(is_turn_end))
        await aclose(client)
        return result

    events = run(scenario())
    result = one(events, "toolResult")
    call_id = result["id"]
    assert set(result["result"]) == {"summary"} and "Oslo" in result["result"]["summary"]
    assert server.hub.results[call_id] is PRICES  # the very object, for the next cell
    assert "load_prices returned" in events[-1]["text"] and "DataFrame" in events[-1]["text"]
    assert "Lima" in events[-1]["text"]


# -- attachments -------------------------------------------------------------------------------------


def test_attachments_reach_the_model_and_every_view(server: ServerThread, run) -> None:
    attachments = [{"name": "df", "text": "df: DataFrame 3x2\nprice city"}, {"name": "n", "text": "n: int 3"}]

    async def scenario() -> tuple[dict[str, Any], list[dict[str, Any]]]:
        client = await connect(server)
        data = {"text": "/echo look", "options": {"attachments": attachments}}
        await client.send({"type": "user_message", "id": "u1", "data": data})
        messages = await client.recv_until(is_turn_end)
        echo = next(m for m in messages if m.get("name") == "interaction.user")["data"]["event"]
        await aclose(client)
        return echo, events_of(messages)

    echo, events = run(scenario())
    assert echo["text"] == "/echo look" and echo["options"]["attachments"] == attachments
    assert events[-1]["text"] == (
        "look\n\nContext `@df`:\n```text\ndf: DataFrame 3x2\nprice city\n```"
        "\n\nContext `@n`:\n```text\nn: int 3\n```"
    )


@pytest.mark.parametrize(
    ("attachments", "words"),
    [
        ([{"name": f"v{i}", "text": "x"} for i in range(9)], "at most 8"),
        ([{"name": "big", "text": "x" * 8001}], "at most 8000"),
    ],
    ids=["ninth", "too long"],
)
def test_too_many_or_too_long_attachments_are_refused(
    server: ServerThread, run, attachments: list[dict[str, str]], words: str
) -> None:
    async def scenario() -> dict[str, Any]:
        client = await connect(server)
        data = {"text": "/echo look", "options": {"attachments": attachments}}
        await client.send({"type": "user_message", "id": "u1", "data": data})
        result = (await client.recv_until(lambda m: m.get("name") == "interaction.error"))[-1]["data"][
            "event"
        ]
        await aclose(client)
        return result

    error = run(scenario())
    assert error["code"] == "invalid_message" and words in error["message"]


# -- the OpenAI-compatible adapter ---------------------------------------------------------------------


@pytest.fixture
def provider() -> Iterator[FakeOpenAI]:
    with FakeOpenAI() as fake:
        yield fake


@pytest.mark.parametrize("approved", [True, False], ids=["approved", "denied"])
def test_an_openai_model_calling_a_tool_that_needs_approval(
    provider: FakeOpenAI, make_server: MakeServer, namespace: Namespace, run, approved: bool
) -> None:
    """The provider's call waits for the user; the provider's next request holds the outcome."""
    server = make_server(
        model="openai:test-model",
        model_options={"base_url": provider.base_url, "api_key": "sk-test", "max_retries": 0, "tools": True},
        tools=registry(namespace),
    )
    provider.enqueue(
        fakeopenai.tool_calls(
            [{"id": "call_s", "name": "set_value", "arguments": '{"value": 5}'}], split_into=3
        ),
        fakeopenai.text(["Done."]),
    )

    async def scenario() -> tuple[dict[str, Any], list[dict[str, Any]]]:
        client = await connect(server)
        request = await ask(client, "set it to 5")
        await answer(client, request["toolCallId"], approved)
        result = request, events_of(await client.recv_until(is_turn_end))
        await aclose(client)
        return result

    request, events = run(scenario())
    assert request == {
        "toolCallId": "call_s",
        "toolName": "set_value",
        "arguments": {"value": 5},
        "timeoutMs": 120_000,
    }
    assert events[-1]["type"] == "end" and events[-1]["text"] == "Done."
    assert provider.wait_for_requests(2, TIMEOUT)
    tool_message = provider.chat_requests[1].body["messages"][-1]
    assert tool_message["role"] == "tool" and tool_message["tool_call_id"] == "call_s"
    if approved:
        assert tool_message["content"] == "value is 5" and namespace.calls == 1
    else:
        assert json.loads(tool_message["content"]) == {
            "error": {"code": "denied", "message": "the user denied this call"}
        }
        assert namespace.calls == 0


# -- the Python client ---------------------------------------------------------------------------------


@pytest.mark.parametrize("dialect", ["envelope", "typed"])
def test_the_python_client_approves(server: ServerThread, namespace: Namespace, run, dialect: str) -> None:
    """Client.approve answers a waiting call; a second answer gets ok false."""

    async def scenario() -> tuple[dict[str, Any], dict[str, Any]]:
        async with PythonClient(
            server.url, token=server.token, dialect=dialect, open_timeout=TIMEOUT
        ) as client:
            asker = await connect(server, session=client.session)
            call = (await ask(asker))["toolCallId"]
            first = await client.approve(call)
            second = await client.approve(call, False)
            await asker.recv_until(is_turn_end)
            await aclose(asker)
            return first, second

    first, second = run(scenario())
    assert first["action"] == "approval" and first["ok"] is True and first["message"] == "approved"
    assert second["ok"] is False and namespace.calls == 1


def test_attachments_reach_an_openai_compatible_model(
    provider: FakeOpenAI, make_server: MakeServer, run
) -> None:
    """The provider's request holds the prompt with each attachment's block; the next turn keeps them."""
    server = make_server(
        model="openai:test-model",
        model_options={"base_url": provider.base_url, "api_key": "sk-test", "max_retries": 0},
    )
    provider.enqueue(fakeopenai.text(["It has 3 rows."]), fakeopenai.text(["Yes."]))
    attachments = [{"name": "df", "text": "df: DataFrame, 3 rows x 2 columns"}]

    async def scenario() -> None:
        client = await connect(server)
        data = {"text": "How many rows?", "options": {"attachments": attachments}}
        await client.send({"type": "user_message", "id": "u1", "data": data})
        await client.recv_until(is_turn_end)
        await client.send({"type": "user_message", "id": "u2", "data": {"text": "Sure?"}})
        await client.recv_until(is_turn_end)
        await aclose(client)

    run(scenario())
    assert provider.wait_for_requests(2, TIMEOUT)
    sent = "How many rows?\n\nContext `@df`:\n```text\ndf: DataFrame, 3 rows x 2 columns\n```"
    first, second = (r.body["messages"] for r in provider.chat_requests[:2])
    assert first[-1] == {"role": "user", "content": sent}
    assert [m["content"] for m in second if m["role"] == "user"] == [sent, "Sure?"]
