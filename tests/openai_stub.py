"""A small OpenAI-compatible streaming server on 127.0.0.1 for the openai engine's fault tests.

The model name in each request picks how the stub behaves, so one server serves several Compare
columns that fail in different ways at once:
- "ok": streams "Answer from <model>" word by word over SSE, then `data: [DONE]`;
- "missing": 404 with an OpenAI-style error body; any request without the right key: 401 when `key` is set;
- "flaky": 503 on the first request, then as "ok" (a bounded retry recovers);
- "silent": headers, then nothing for `silent_s` seconds (read timeout);
- "malformed": one valid delta, then a line that is not JSON;
- "half": two deltas, then the connection closes without finish_reason or [DONE];
- "endless": a delta every 50 ms until the client goes away (cancel must stop it).
With strict=True it answers 400 to fields OpenAI's own API does not know (repeat_penalty), as that API does.
"""
from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class OpenAIStub:
    def __init__(self, key: str | None = None, silent_s: float = 5.0, strict: bool = False):
        self.key, self.silent_s, self.strict = key, silent_s, strict  # strict: 400 on fields OpenAI does not know
        self.requests: list[dict] = []
        self.headers: list[dict] = []
        self.served: dict[str, int] = {}
        self.endless_closed = threading.Event()
        stub = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):
                pass

            def _json(self, status: int, body: dict) -> None:
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def _event(self, payload) -> None:
                line = payload if isinstance(payload, str) else json.dumps(payload)
                self.wfile.write(f"data: {line}\n\n".encode())
                self.wfile.flush()

            def _delta(self, model: str, text: str, finish: str | None = None) -> dict:
                return {"id": "stub", "object": "chat.completion.chunk", "model": model,
                        "choices": [{"index": 0, "delta": {"content": text} if text else {}, "finish_reason": finish}]}

            def do_POST(self):
                body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))) or b"{}")
                stub.requests.append(body)
                stub.headers.append(dict(self.headers))
                model = body.get("model", "")
                count = stub.served[model] = stub.served.get(model, 0) + 1
                if stub.key and self.headers.get("Authorization") != f"Bearer {stub.key}":
                    return self._json(401, {"error": {"message": "Incorrect API key provided", "type": "invalid_request_error"}})
                if stub.strict and "repeat_penalty" in body:
                    return self._json(400, {"error": {"message": "Unrecognized request argument supplied: repeat_penalty"}})
                if model == "missing":
                    return self._json(404, {"error": {"message": f"model '{model}' not found", "type": "not_found_error"}})
                if model == "flaky" and count == 1:
                    return self._json(503, {"error": {"message": "loading model"}})
                self.send_response(200)
                self.send_header("Content-Type", "text/event-stream")
                self.send_header("Connection", "close")
                self.end_headers()
                self.close_connection = True
                try:
                    if model == "silent":
                        time.sleep(stub.silent_s)
                        return
                    if model == "malformed":
                        self._event(self._delta(model, "Partly"))
                        self._event("{this is not json")
                        return
                    if model == "half":
                        self._event(self._delta(model, "Cut"))
                        self._event(self._delta(model, " short"))
                        return
                    if model == "endless":
                        while True:
                            self._event(self._delta(model, " more"))
                            time.sleep(0.05)
                    words = f"Answer from {model}".split(" ")
                    for number, word in enumerate(words):
                        self._event(self._delta(model, word if number == 0 else " " + word))
                    self._event(self._delta(model, "", "stop"))
                    self._event({"id": "stub", "choices": [], "usage": {"prompt_tokens": 11, "completion_tokens": len(words)}})
                    self._event("[DONE]")
                except (BrokenPipeError, ConnectionResetError):
                    if model == "endless":
                        stub.endless_closed.set()

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/v1"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> "OpenAIStub":
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.server.shutdown()
        self.server.server_close()
