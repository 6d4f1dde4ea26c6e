"""A loopback HTTP server speaking the OpenAI chat API, answering what a test tells it to: the way to feed the
real client and engine the malformed answers and failures a real model or endpoint gives now and then."""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

# A reply: the assistant's text, or an HTTP status the endpoint fails with.
Reply = Callable[[dict], "str | int"]


def completion(text: str, model: str) -> dict:
    return {
        "id": "chatcmpl-double",
        "object": "chat.completion",
        "created": 0,
        "model": model,
        "choices": [{"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}],
        "usage": {"prompt_tokens": 100, "completion_tokens": 10, "total_tokens": 110},
    }


@contextmanager
def openai_double(reply: Reply):
    """Yields (base_url, requests): every chat request's body is appended to `requests` as it comes."""
    requests: list[dict] = []
    lock = threading.Lock()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self):
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            with lock:
                requests.append(body)
            answer = reply(body)
            status, payload = (answer, {"error": {"message": "failing"}}) if isinstance(answer, int) else (200, None)
            data = json.dumps(payload or completion(answer, body["model"])).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/v1", requests
    finally:
        server.shutdown()
        server.server_close()
