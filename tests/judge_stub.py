"""A stand-in judge: a tiny OpenAI-compatible HTTP server on 127.0.0.1, for the RAGAS tests.

It enters through the same seam as a real judge (Ollama, llama.cpp server, vLLM): the
`/v1/chat/completions` and `/v1/models` endpoints. RAGAS asks for JSON that fits a schema it puts
in the prompt (instructor's JSON mode); the stub answers with a small instance of that schema:
every integer verdict 1 ("supported", "attributed", "useful") except `noncommittal` 0, every string
"stub". That makes faithfulness, context precision and context recall come out as exactly 1.0.

Modes (`JudgeStub.mode`): "agree" (above), "garbage" (prose, not JSON), "slow" (sleeps past any
sensible timeout), "empty" (valid JSON with empty lists, so RAGAS has nothing to score -> NaN),
"overrate" (verdicts of 10 instead of 0/1, as a tiny real judge did: RAGAS then reports 10.0).
"""
from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


def _instance(schema: dict, defs: dict, mode: str, name: str = "") -> object:
    if "$ref" in schema:
        return _instance(defs[schema["$ref"].split("/")[-1]], defs, mode, name)
    for key in ("anyOf", "allOf", "oneOf"):
        if key in schema:
            return _instance(schema[key][0], defs, mode, name)
    kind = schema.get("type")
    if kind == "object":
        return {prop: _instance(sub, defs, mode, prop) for prop, sub in schema.get("properties", {}).items()}
    if kind == "array":
        return [] if mode == "empty" else [_instance(schema.get("items", {}), defs, mode, name)]
    if kind in ("integer", "number"):
        return 0 if name == "noncommittal" else (10 if mode == "overrate" else 1)
    if kind == "boolean":
        return True
    if "enum" in schema:
        return schema["enum"][0]
    return "stub"


def _schema_from(messages: list[dict]) -> dict | None:
    """The JSON schema instructor puts in the system prompt (the first balanced {...} after 'json_schema')."""
    text = "\n".join(str(m.get("content", "")) for m in messages)
    start = text.find("{", max(text.find("json_schema"), 0))
    while start != -1:
        depth = 0
        for end in range(start, len(text)):
            depth += {"{": 1, "}": -1}.get(text[end], 0)
            if depth == 0:
                try:
                    candidate = json.loads(text[start:end + 1])
                except ValueError:
                    break
                if isinstance(candidate, dict) and ("properties" in candidate or "$defs" in candidate):
                    return candidate
                break
        start = text.find("{", start + 1)
    return None


class JudgeStub:
    def __init__(self, mode: str = "agree", delay_s: float = 30.0):
        self.mode = mode
        self.delay_s = delay_s
        self.requests: list[dict] = []
        stub = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):  # keep test output quiet
                pass

            def _send(self, status: int, payload: dict) -> None:
                body = json.dumps(payload).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def do_GET(self):
                if self.path.rstrip("/") == "/v1/models":
                    self._send(200, {"object": "list", "data": [{"id": "stub-judge", "object": "model"}]})
                else:
                    self._send(404, {"error": {"message": "not found"}})

            def do_POST(self):
                length = int(self.headers.get("Content-Length", 0))
                request = json.loads(self.rfile.read(length) or b"{}")
                stub.requests.append(request)
                if self.path.rstrip("/") != "/v1/chat/completions":
                    self._send(404, {"error": {"message": "not found"}})
                    return
                if stub.mode == "slow":
                    time.sleep(stub.delay_s)
                if stub.mode == "garbage":
                    content = "I think the answer is probably fine, more or less."
                else:
                    schema = _schema_from(request.get("messages", []))
                    content = json.dumps(_instance(schema, schema.get("$defs", {}), stub.mode) if schema else {})
                self._send(200, {
                    "id": "stub", "object": "chat.completion", "created": int(time.time()), "model": request.get("model", "stub"),
                    "choices": [{"index": 0, "finish_reason": "stop", "message": {"role": "assistant", "content": content}}],
                    "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2},
                })

        class QuietServer(ThreadingHTTPServer):
            def handle_error(self, request, client_address):  # a client that timed out and hung up: expected here
                pass

        self.server = QuietServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/v1"

    def __enter__(self) -> "JudgeStub":
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.server.shutdown()
        self.server.server_close()

