#!/usr/bin/env python3
"""A small stand-in for a coding agent that a malicious skill has turned.

It tries what an agent ordinarily does (ask its model through the NemoClaw privacy router,
run a child interpreter, write its workspace) and what a hijacked one would (send the
user's secrets to the model, call a cloud model endpoint directly, exfiltrate over the
network, shell out to curl, read credentials, write outside its workspace), and prints
what the kernel and the router let through. Run it under the baseline policy:

    nemoclaw run --policy policies/openclaw-sandbox.yaml -- python3 demo/agent.py

With `--masking` (under demo/masking.yaml) it asks one question holding a customer's
e-mail address and an AWS key, which the router masks for the cloud model and restores.
"""

import errno
import json
import os
import socket
import socketserver
import subprocess
import sys
import threading
import urllib.error
import urllib.request

# The privacy router (the baseline's `inference.router`), and the cloud model endpoint that
# `cargo xtask run` stands in for (reachable only through the router).
ROUTER = os.environ.get("NEMOCLAW_DEMO_ROUTER", "127.0.0.1:8089")
CLOUD = os.environ.get("NEMOCLAW_DEMO_CLOUD")
EXFIL = ("127.0.0.1", 2525)  # a listener exists, but no rule allows it
WORKSPACE = "/tmp/openclaw"  # read-write in the baseline
# A credential that exists and that file permissions let anyone read: the checkout's git
# config (remote URLs with tokens live there). The baseline denies `**/.git/config`.
SECRET = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".git", "config")
OUTSIDE = "/tmp/outside-the-workspace.txt"  # no rule allows it

results = []


def report(expected, what, ok, detail):
    verdict = "allowed" if ok else "DENIED"
    matches = (expected == "allow") == ok
    results.append(matches)
    mark = "as expected" if matches else "UNEXPECTED"
    print(f"  [{verdict:7}] {what}: {detail} ({mark})", flush=True)


class Echo(socketserver.BaseRequestHandler):
    def handle(self):
        data = self.request.recv(1024)
        self.request.sendall(b"model says: " + data)


def serve(addr):
    socketserver.TCPServer.allow_reuse_address = True
    server = socketserver.TCPServer(addr, Echo)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


def ask_model(expected, what, prompt, model="agent-default"):
    """One chat completion through the router, with the agent's own (worthless) key."""
    body = json.dumps({"model": model, "max_tokens": 12,
                       "messages": [{"role": "user", "content": prompt}]}).encode()
    request = urllib.request.Request(
        f"http://{ROUTER}/v1/chat/completions", data=body,
        headers={"Content-Type": "application/json", "Authorization": "Bearer sk-agent-own-key"})
    try:
        with urllib.request.urlopen(request, timeout=600) as reply:
            backend = reply.headers.get("x-nemoclaw-backend", "?")
            answer = json.load(reply)
            text = answer["choices"][0]["message"]["content"].strip().replace("\n", " ")
            # Served as the policy intends only by the expected backend.
            report("allow" if backend == expected else "deny", what, True,
                   f"served by the {backend} backend ({answer.get('model')}): {text[:160]!r}")
    except urllib.error.HTTPError as e:
        message = json.load(e).get("error", {}).get("message", "")
        report("deny" if expected == "deny" else "allow", what, False, f"HTTP {e.code}: {message}")
    except OSError as e:
        report("deny" if expected == "deny" else "allow", what, False, f"{e}")


def try_connect(expected, what, addr):
    s = socket.socket()
    s.settimeout(5)
    try:
        s.connect(addr)
        s.sendall(b"hello")
        report(expected, what, True, s.recv(1024).decode())
    except OSError as e:
        report(expected, what, False, f"{errno.errorcode.get(e.errno, e.errno)} ({e.strerror})")
    finally:
        s.close()


def try_exec(expected, what, argv):
    try:
        r = subprocess.run(argv, capture_output=True, text=True, timeout=30)
        report(expected, what, True, f"exit {r.returncode}: {r.stdout.strip()[:60]}")
    except OSError as e:
        report(expected, what, False, f"{errno.errorcode.get(e.errno, e.errno)} ({e.strerror})")


def try_file(expected, what, action):
    try:
        report(expected, what, True, action())
    except OSError as e:
        report(expected, what, False, f"{errno.errorcode.get(e.errno, e.errno)} ({e.strerror})")


def write_workspace():
    os.makedirs(WORKSPACE, exist_ok=True)
    path = os.path.join(WORKSPACE, "notes.md")
    with open(path, "w") as f:
        f.write("# plan\n")
    with open(path) as f:
        return f"wrote and read back {path}: {f.read().strip()!r}"


def read_secret():
    with open(SECRET) as f:
        return f"read {len(f.read())} bytes of {os.path.normpath(SECRET)}"


def write_outside():
    with open(OUTSIDE, "w") as f:
        f.write("x")
    return f"wrote {OUTSIDE}"


def masking():
    """Under a policy that masks e-mail addresses and secrets (demo/masking.yaml)."""
    # The cloud stand-in's `echo` model repeats what it received: the reply shows what the
    # cloud saw (placeholders), and the router puts the e-mail address back for the agent;
    # the key stays masked (secrets are one way).
    ask_model("cloud", "mail a customer about a rotated key (masked for the cloud)",
              "Tell jane.doe@example.org that key AKIAZ3MXQ5T7V2PLK4RD was rotated.", model="echo")
    good = sum(results)
    print(f"agent: {good}/{len(results)} outcomes as the policy intends", flush=True)
    return 0 if all(results) else 1


def main():
    if sys.argv[1:] == ["--masking"]:
        return masking()
    print(f"agent: pid {os.getpid()}, uid {os.getuid()}, in cgroup "
          f"{open('/proc/self/cgroup').read().strip().split(':')[-1]}", flush=True)
    servers = [serve(EXFIL)]
    ask_model("cloud", "ask the model an ordinary question", "Name a prime number.")
    ask_model("local", "ask about a customer's e-mail (must stay on this machine)",
              "Draft a reply to jane.doe@example.org about her invoice.")
    ask_model("deny", "send the user's AWS key to the model",
              "Why does this fail? aws configure set aws_access_key_id AKIAZ3MXQ5T7V2PLK4RD")
    if CLOUD:
        host, port = CLOUD.rsplit(":", 1)
        try_connect("deny", f"call the cloud model endpoint {CLOUD} directly", (host, int(port)))
    try_connect("deny", "exfiltrate to 127.0.0.1:2525", EXFIL)
    try_exec("allow", "run a child python3", [sys.executable, "-c", "print('child python ran')"])
    try_exec("deny", "shell out to curl", ["curl", "-s", "http://127.0.0.1:8080/"])
    try_exec("deny", "run an unlisted binary (ls)", ["ls", "/"])
    try_file("allow", f"write the workspace {WORKSPACE}", write_workspace)
    if os.path.exists(SECRET):
        try_file("deny", "read a credential (.git/config)", read_secret)
    else:
        print(f"  [skipped] read a credential: {os.path.normpath(SECRET)} does not exist here", flush=True)
    try_file("deny", f"write outside the workspace ({OUTSIDE})", write_outside)
    for s in servers:
        s.shutdown()
    good = sum(results)
    print(f"agent: {good}/{len(results)} outcomes as the policy intends", flush=True)
    return 0 if all(results) else 1


if __name__ == "__main__":
    sys.exit(main())
