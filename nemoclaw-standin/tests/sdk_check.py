#!/usr/bin/env python3
"""Manual check: the official `openai` and `anthropic` SDKs parse every answer of the stand-in.

Run: python sdk_check.py PATH/TO/nemoclaw-standin   (in a venv with both SDKs installed).
Not part of `cargo test`; it starts the binary, drives each endpoint (whole and streamed),
the echoing models, the auth errors and the faults, then checks the record file.
"""

import base64
import json
import os
import subprocess
import sys
import tempfile
import time

import anthropic
import openai

try:
    import httpx
except ImportError:  # the SDKs' newer releases ship it as httpx2
    import httpx2 as httpx

failures = []


def check(name, cond, detail=""):
    print(("ok   " if cond else "FAIL ") + name + (f"  [{detail}]" if detail and not cond else ""))
    if not cond:
        failures.append(name)


def main():
    binary = sys.argv[1]
    tmp = tempfile.mkdtemp()
    record = os.path.join(tmp, "record.jsonl")
    ready = os.path.join(tmp, "ready")
    proc = subprocess.Popen(
        [binary, "--listen", "127.0.0.1:0", "--record", record, "--ready-file", ready,
         "--slow-interval-ms", "300"],
        stdout=subprocess.PIPE, text=True)
    try:
        line = proc.stdout.readline().strip()
        check("stdout says listening", line.startswith("listening on "), line)
        addr = line.removeprefix("listening on ")
        check("ready file has the address", open(ready).read().strip() == addr)
        run(addr, record)
    finally:
        proc.kill()
        proc.wait()
    print(f"\n{len(failures)} failure(s)")
    sys.exit(1 if failures else 0)


def run(addr, record):
    base = f"http://{addr}/v1"
    oa = openai.OpenAI(base_url=base, api_key="sk-test-openai", max_retries=0, timeout=10)
    an = anthropic.Anthropic(base_url=f"http://{addr}", api_key="sk-ant-test", max_retries=0, timeout=10)
    msgs = [{"role": "user", "content": "secret prompt 4111 1111 1111 1111"}]

    models = oa.models.list()
    check("openai models.list", [m.id for m in models.data][:1] == ["gpt-4o-mini"])

    c = oa.chat.completions.create(model="gpt-4o-mini", messages=msgs)
    check("chat non-stream", c.object == "chat.completion" and c.model == "gpt-4o-mini"
          and c.choices[0].message.role == "assistant" and c.choices[0].finish_reason == "stop"
          and "stand-in" in c.choices[0].message.content and "secret" not in c.choices[0].message.content
          and c.usage.total_tokens == c.usage.prompt_tokens + c.usage.completion_tokens, c)

    chunks = list(oa.chat.completions.create(model="gpt-4o-mini", messages=msgs, stream=True,
                                             stream_options={"include_usage": True}))
    text = "".join(ch.choices[0].delta.content or "" for ch in chunks if ch.choices)
    check("chat stream text", text == c.choices[0].message.content, text)
    check("chat stream role first", chunks[0].choices[0].delta.role == "assistant")
    check("chat stream finish", any(ch.choices and ch.choices[0].finish_reason == "stop" for ch in chunks))
    check("chat stream usage chunk", chunks[-1].choices == [] and chunks[-1].usage.total_tokens > 0)
    chunks = list(oa.chat.completions.create(model="gpt-4o-mini", messages=msgs, stream=True))
    check("chat stream without usage", all(ch.usage is None for ch in chunks) and chunks[-1].choices[0].finish_reason == "stop")

    with oa.chat.completions.stream(model="gpt-4o-mini", messages=msgs) as s:
        final = s.get_final_completion()
    check("chat stream helper", final.choices[0].message.content == c.choices[0].message.content)

    r = oa.responses.create(model="gpt-4o-mini", input="secret prompt")
    check("responses non-stream", r.object == "response" and r.status == "completed"
          and "stand-in" in r.output_text and r.usage.total_tokens > 0, r)
    events = list(oa.responses.create(model="gpt-4o-mini", input="secret prompt", stream=True))
    types = [e.type for e in events]
    check("responses stream events", types[0] == "response.created" and types[-1] == "response.completed"
          and "response.output_text.delta" in types and "response.output_text.done" in types, types)
    check("responses stream sequence", [e.sequence_number for e in events] == list(range(len(events))))
    deltas = "".join(e.delta for e in events if e.type == "response.output_text.delta")
    check("responses stream text", deltas == r.output_text and events[-1].response.output_text == r.output_text)
    with oa.responses.stream(model="gpt-4o-mini", input="secret prompt") as s:
        fr = s.get_final_response()
    check("responses stream helper", fr.output_text == r.output_text)

    e = oa.embeddings.create(model="text-embedding-3-small", input=["a", "b", "c"])
    check("embeddings default (base64)", len(e.data) == 3 and len(e.data[0].embedding) == 16
          and isinstance(e.data[0].embedding[0], float) and e.data[2].index == 2)
    e = oa.embeddings.create(model="text-embedding-3-small", input="a", encoding_format="float", dimensions=8)
    check("embeddings float, dimensions", len(e.data) == 1 and len(e.data[0].embedding) == 8 and e.usage.total_tokens > 0)

    m = an.messages.create(model="claude-sonnet-4-5", max_tokens=100, messages=msgs)
    check("anthropic non-stream", m.type == "message" and m.role == "assistant" and m.stop_reason == "end_turn"
          and m.content[0].type == "text" and "stand-in" in m.content[0].text and m.usage.output_tokens > 0, m)
    with an.messages.stream(model="claude-sonnet-4-5", max_tokens=100, messages=msgs) as s:
        streamed = "".join(s.text_stream)
        fm = s.get_final_message()
    check("anthropic stream helper", streamed == m.content[0].text and fm.stop_reason == "end_turn"
          and fm.usage.output_tokens == m.usage.output_tokens, (streamed, fm))
    raw = list(an.messages.create(model="claude-sonnet-4-5", max_tokens=100, messages=msgs, stream=True))
    kinds = [ev.type for ev in raw]
    check("anthropic stream events", kinds[:3] == ["message_start", "content_block_start", "content_block_delta"]
          and kinds[-3:] == ["content_block_stop", "message_delta", "message_stop"], kinds)
    ct = an.messages.count_tokens(model="claude-sonnet-4-5", messages=msgs)
    check("anthropic count_tokens", ct.input_tokens > 0)
    am = an.models.list()
    check("anthropic models.list", am.data[0].id == "claude-sonnet-4-5")

    # The models that use the request: echo (one character per event), echo-tool, inject.
    said = "Café 😀 <EMAIL_1_3f9a0c2e> \"q\""
    sys_msgs = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": said}]
    want = f"{said} | system: Be brief."
    c = oa.chat.completions.create(model="echo", messages=sys_msgs)
    check("chat echo", c.choices[0].message.content == f"You said: {want}", c)
    with oa.chat.completions.stream(model="echo", messages=sys_msgs) as s:
        final = s.get_final_completion()
    check("chat echo stream helper", final.choices[0].message.content == f"You said: {want}", final)
    with oa.chat.completions.stream(model="echo-tool", messages=sys_msgs) as s:
        final = s.get_final_completion()
    tc = final.choices[0].message.tool_calls[0]
    check("chat echo-tool stream helper", final.choices[0].finish_reason == "tool_calls"
          and tc.function.name == "echo" and json.loads(tc.function.arguments) == {"text": want}, final)
    c = oa.chat.completions.create(model="inject", messages=sys_msgs)
    check("chat inject", "leaked.person@example.net" in c.choices[0].message.content
          and "4111 1111 1111 1111" in c.choices[0].message.content, c)
    with oa.responses.stream(model="echo", input=said, instructions="Be brief.") as s:
        fr = s.get_final_response()
    check("responses echo stream helper", fr.output_text == f"You said: {want}", fr)
    with oa.responses.stream(model="echo-tool", input=said, instructions="Be brief.") as s:
        fr = s.get_final_response()
    check("responses echo-tool stream helper", fr.output[0].type == "function_call"
          and fr.output[0].name == "echo" and json.loads(fr.output[0].arguments) == {"text": want}, fr)
    with an.messages.stream(model="echo", max_tokens=100, system="Be brief.",
                            messages=[{"role": "user", "content": said}]) as s:
        streamed = "".join(s.text_stream)
    check("anthropic echo stream helper", streamed == f"You said: {want}", streamed)
    with an.messages.stream(model="echo-tool", max_tokens=100, system="Be brief.",
                            messages=[{"role": "user", "content": said}]) as s:
        fm = s.get_final_message()
    check("anthropic echo-tool stream helper", fm.stop_reason == "tool_use" and fm.content[0].type == "tool_use"
          and fm.content[0].input == {"text": want}, fm)
    m = an.messages.create(model="inject", max_tokens=100, messages=[{"role": "user", "content": said}])
    check("anthropic inject", m.content[0].text == f"You said: {said}. Also contact leaked.person@example.net"
          " or card 4111 1111 1111 1111.", m)

    # Auth errors, parsed by the SDKs into their error classes.
    try:
        httpx.post(f"{base}/chat/completions", json={"model": "x"}).raise_for_status()
        check("openai 401", False)
    except httpx.HTTPStatusError as err:
        body = err.response.json()
        check("openai 401", err.response.status_code == 401 and body["error"]["type"] == "invalid_request_error")
    try:
        httpx.post(f"http://{addr}/v1/messages", headers={"anthropic-version": "2023-06-01"},
                   json={"model": "x"}).raise_for_status()
        check("anthropic 401", False)
    except httpx.HTTPStatusError as err:
        body = err.response.json()
        check("anthropic 401", err.response.status_code == 401 and body["type"] == "error"
              and body["error"]["type"] == "authentication_error", body)
    # The SDK parses a 401 into its error class (an empty anthropic-version is refused).
    try:
        anthropic.Anthropic(base_url=f"http://{addr}", api_key="k", max_retries=0,
                            default_headers={"anthropic-version": ""}).messages.create(
            model="claude-sonnet-4-5", max_tokens=10, messages=msgs)
        check("anthropic SDK AuthenticationError", False)
    except anthropic.AuthenticationError as err:
        check("anthropic SDK AuthenticationError", err.status_code == 401, err.body)
    except Exception as err:  # noqa: BLE001
        check("anthropic SDK AuthenticationError", False, repr(err))
    try:
        openai.OpenAI(base_url=base, api_key="k", max_retries=0,
                      default_headers={"Authorization": "Basic k"}).models.list()
        check("openai SDK AuthenticationError", False)
    except openai.AuthenticationError as err:
        check("openai SDK AuthenticationError", err.status_code == 401, err.body)
    except Exception as err:  # noqa: BLE001
        check("openai SDK AuthenticationError", False, repr(err))

    # Faults.
    try:
        oa.chat.completions.create(model="fault-500", messages=msgs)
        check("openai fault-500", False)
    except openai.InternalServerError as err:
        check("openai fault-500", err.status_code == 500 and err.body["type"] == "server_error", err.body)
    try:
        an.messages.create(model="fault-500", max_tokens=10, messages=msgs)
        check("anthropic fault-500", False)
    except anthropic.InternalServerError as err:
        check("anthropic fault-500", err.status_code == 500 and err.body["error"]["type"] == "api_error", err.body)
    got = []
    try:
        for ch in oa.chat.completions.create(model="fault-cut", messages=msgs, stream=True):
            got.append(ch)
        check("openai fault-cut raises", False, f"{len(got)} chunks, no error")
    except (openai.APIError, httpx.HTTPError) as err:
        check("openai fault-cut raises after 2 chunks", len(got) == 2, f"{len(got)} {err!r}")
    got = []
    try:
        for ev in an.messages.create(model="fault-cut", max_tokens=10, messages=msgs, stream=True):
            got.append(ev)
        check("anthropic fault-cut raises", False, f"{len(got)} events, no error")
    except (anthropic.APIError, httpx.HTTPError) as err:
        check("anthropic fault-cut raises after 2 events", len(got) == 2, f"{len(got)} {err!r}")
    t = time.monotonic()
    got = list(oa.chat.completions.create(model="fault-slow", messages=msgs, stream=True))
    dt = time.monotonic() - t
    check("openai fault-slow paced", dt >= 0.3 * (len(got) - 1) and got[-1].choices[0].finish_reason == "stop", dt)
    try:
        openai.OpenAI(base_url=base, api_key="k", max_retries=0, timeout=1.0).chat.completions.create(
            model="fault-hang", messages=msgs)
        check("openai fault-hang times out", False)
    except openai.APITimeoutError:
        check("openai fault-hang times out", True)

    # The record: every request, with the keys the clients sent.
    lines = [json.loads(x) for x in open(record)]
    first_chat = next(x for x in lines if x["path"] == "/v1/chat/completions")
    check("record has the bearer key", first_chat["headers"]["authorization"] == "Bearer sk-test-openai")
    body = base64.b64decode(first_chat["body_b64"])
    check("record body decodes", len(body) == first_chat["body_len"] and b"secret prompt" in body)
    first_msg = next(x for x in lines if x["path"] == "/v1/messages")
    check("record has the anthropic key", (first_msg["headers"].get("x-api-key") == "sk-ant-test"
           or first_msg["headers"].get("authorization") == "Bearer sk-ant-test")
          and "anthropic-version" in first_msg["headers"])
    check("record has the hang request", any(b"fault-hang" in base64.b64decode(x["body_b64"]) for x in lines))
    print(f"({len(lines)} requests recorded)")


if __name__ == "__main__":
    main()
