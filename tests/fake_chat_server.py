"""A real OpenAI-compatible HTTP server on 127.0.0.1 for tests: scripted, counting requests."""

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class FakeChatServer:
    """`POST /v1/chat/completions`, non-streaming. `answer(body, n)` scripts the judge: it gets
    the request body and the 1-based number of this HTTP request and returns (status, text,
    headers)."""

    def __init__(self, answer):
        self.answer, self.bodies, self.auth = answer, [], []
        lock, outer = threading.Lock(), self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                with lock:
                    outer.bodies.append(body)
                    outer.auth.append(self.headers.get("Authorization"))
                    n = len(outer.bodies)
                if self.path != "/v1/chat/completions":
                    status, text, headers = 404, f"no route {self.path}", {}
                else:
                    status, text, headers = outer.answer(body, n)
                if status == 200:
                    payload = {"id": f"chatcmpl-{n}", "object": "chat.completion", "created": 0,
                               "model": body["model"],
                               "choices": [{"index": 0, "finish_reason": "stop",
                                            "message": {"role": "assistant", "content": text}}],
                               "usage": {"prompt_tokens": 1, "completion_tokens": 1,
                                         "total_tokens": 2}}
                else:
                    payload = {"error": {"message": text, "type": "scripted", "code": status}}
                data = json.dumps(payload).encode()
                try:
                    self.send_response(status)
                    for k, v in {"Content-Type": "application/json", **headers}.items():
                        self.send_header(k, v)
                    self.send_header("Content-Length", str(len(data)))
                    self.end_headers()
                    self.wfile.write(data)
                except (BrokenPipeError, ConnectionResetError):  # the client timed out
                    pass

            def log_message(self, *args):
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/v1"
        threading.Thread(target=self.httpd.serve_forever, args=(0.05,), daemon=True).start()

    @property
    def n_requests(self) -> int:
        return len(self.bodies)

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()
