"""A sandboxed agent's model calls, made with the official SDKs as agents make them.

Usage: client.py BASE_URL PLAN_FILE. PLAN_FILE holds a JSON list of calls (a file, so that
no prompt appears in the sandbox's command line, which the audit trail records), each
{"sdk": "openai"|"anthropic", "method": "chat"|"responses"|"embeddings"|"models"|"messages",
 "kwargs": {...}}; `kwargs["stream"]` chooses streaming. Prints one JSON line per call:
{"ok": true, "text": ...} (a tool call's reply: "tool:" and its JSON arguments; Anthropic
replies add the message's "id", "stop_reason" and "usage" {"input", "output"}) or {"ok": false, "status": N, "error": MESSAGE, "type": CLASS}.
The API key is the sandbox's own, which the router must strip: it never reaches a backend.
"""

import json
import sys

import anthropic
import openai

SANDBOX_KEY = "sk-sandbox-key-must-not-leave"
# A reply that is a tool call comes back as this prefix and the call's JSON arguments.
TOOL = "tool:"


def openai_call(client, method, kwargs):
    stream = kwargs.get("stream", False)
    if method == "models":
        return " ".join(m.id for m in client.models.list())
    if method == "embeddings":
        r = client.embeddings.create(**kwargs)
        return f"{len(r.data)} embeddings of {len(r.data[0].embedding)}"
    if method == "chat":
        r = client.chat.completions.create(**kwargs)
        if not stream:
            m = r.choices[0].message
            return m.content if not m.tool_calls else TOOL + m.tool_calls[0].function.arguments
        text, args = "", None
        for c in r:
            if not c.choices:
                continue
            d = c.choices[0].delta
            text += d.content or ""
            for call in d.tool_calls or []:
                args = (args or "") + (call.function.arguments or "")
        return text if args is None else TOOL + args
    if method == "responses":
        r = client.responses.create(**kwargs)
        if not stream:
            calls = [o.arguments for o in r.output if o.type == "function_call"]
            return TOOL + calls[0] if calls else r.output_text
        text, args = "", None
        for event in r:
            if event.type == "response.output_text.delta":
                text += event.delta
            elif event.type == "response.function_call_arguments.delta":
                args = (args or "") + event.delta
        return text if args is None else TOOL + args
    raise ValueError(method)


def anthropic_call(client, method, kwargs):
    assert method == "messages"
    if kwargs.pop("stream", False):
        with client.messages.stream(**kwargs) as s:
            text = "".join(s.text_stream)
            r = s.get_final_message()
    else:
        r = client.messages.create(**kwargs)
        text = "".join(b.text for b in r.content if b.type == "text")
    tools = [b.input for b in r.content if b.type == "tool_use"]
    return {
        "text": TOOL + json.dumps(tools[0]) if tools else text,
        "id": r.id,
        "stop_reason": r.stop_reason,
        "usage": {"input": r.usage.input_tokens, "output": r.usage.output_tokens},
    }


def main():
    base = sys.argv[1]
    with open(sys.argv[2]) as f:
        plan = json.load(f)
    oa = openai.OpenAI(base_url=base + "/v1", api_key=SANDBOX_KEY, max_retries=0, timeout=60)
    an = anthropic.Anthropic(base_url=base, api_key=SANDBOX_KEY, max_retries=0, timeout=60)
    for call in plan:
        try:
            if call["sdk"] == "openai":
                text = openai_call(oa, call["method"], dict(call["kwargs"]))
            else:
                text = anthropic_call(an, call["method"], dict(call["kwargs"]))
            out = {"ok": True, **(text if isinstance(text, dict) else {"text": text})}
        except (openai.APIStatusError, anthropic.APIStatusError) as e:
            out = {"ok": False, "status": e.status_code, "error": str(e), "type": type(e).__name__}
        except (openai.APIError, anthropic.APIError) as e:
            out = {"ok": False, "status": None, "error": str(e), "type": type(e).__name__}
        print(json.dumps(out), flush=True)


main()
