#!/usr/bin/env python3
"""Cold-start timer for a Lambda bootstrap, with a minimal local Lambda Runtime API emulator.

Starts the bootstrap as Lambda would (AWS_LAMBDA_RUNTIME_API pointing at the emulator), hands
it one API Gateway HTTP API (v2) event, and measures from process start to the moment the
emulator receives the response. Repeats with a fresh process each time and prints the median.
A benchmark, not a test: it prints figures and asserts nothing about time.

usage: cold_start.py BOOTSTRAP RUNS METHOD PATH TOKEN  (function environment from os.environ)
"""
import json
import os
import statistics
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

bootstrap, runs, method, path, token = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4], sys.argv[5]
EVENT = {
    "version": "2.0", "routeKey": f"{method} {path}", "rawPath": path, "rawQueryString": "",
    "headers": {"authorization": f"Bearer {token}", "content-type": "application/json"},
    "requestContext": {
        "accountId": "123456789012", "apiId": "local", "domainName": "localhost", "domainPrefix": "local",
        "http": {"method": method, "path": path, "protocol": "HTTP/1.1", "sourceIp": "127.0.0.1", "userAgent": "cold-start"},
        "requestId": "cold-start", "routeKey": f"{method} {path}", "stage": "$default",
        "time": "23/Nov/2026:21:00:00 +0000", "timeEpoch": 0,
    },
    "isBase64Encoded": False,
}


class State:
    handed_out = False
    response = None
    done = threading.Event()


class RuntimeApi(BaseHTTPRequestHandler):
    def log_message(self, *args):
        pass

    def do_GET(self):
        if not self.path.endswith("/runtime/invocation/next"):
            self.send_error(404)
            return
        if State.handed_out:
            # A second poll: hold it until the process is killed, then drop the connection.
            State.done.wait(30)
            self.close_connection = True
            return
        State.handed_out = True
        body = json.dumps(EVENT).encode()
        self.send_response(200)
        self.send_header("Lambda-Runtime-Aws-Request-Id", "cold-start-request")
        self.send_header("Lambda-Runtime-Deadline-Ms", str(int(time.time() * 1000) + 30000))
        self.send_header("Lambda-Runtime-Invoked-Function-Arn", "arn:aws:lambda:us-east-1:123456789012:function:cold-start")
        self.send_header("Lambda-Runtime-Trace-Id", "Root=1-00000000-000000000000000000000000")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_POST(self):
        length = int(self.headers.get("Content-Length", 0))
        payload = self.rfile.read(length)
        State.response = (time.perf_counter(), self.path, payload)
        self.send_response(202)
        self.send_header("Content-Length", "0")
        self.end_headers()
        State.done.set()


def one_run():
    State.handed_out, State.response = False, None
    State.done = threading.Event()
    server = ThreadingHTTPServer(("127.0.0.1", 0), RuntimeApi)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    env = dict(os.environ)
    env.update({
        "AWS_LAMBDA_RUNTIME_API": f"127.0.0.1:{server.server_address[1]}",
        "AWS_LAMBDA_FUNCTION_NAME": "cold-start", "AWS_LAMBDA_FUNCTION_VERSION": "$LATEST",
        "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": "256", "AWS_LAMBDA_LOG_FORMAT": "JSON",
    })
    started = time.perf_counter()
    process = subprocess.Popen([bootstrap], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    finished = State.done.wait(30)
    process.kill()
    _, stderr = process.communicate()
    server.shutdown()
    if not finished:
        sys.exit(f"no response within 30 s: {stderr.decode()[-2000:]}")
    at, where, payload = State.response
    if "/error" in where:
        sys.exit(f"the function reported an error: {payload.decode()}")
    status = json.loads(payload).get("statusCode")
    return (at - started) * 1000, status


timings = []
for _ in range(runs):
    ms, status = one_run()
    timings.append(ms)
print(json.dumps({
    "binary": os.path.basename(os.path.dirname(bootstrap)) or bootstrap, "status": status, "runs": runs,
    "median_ms": round(statistics.median(timings), 1), "min_ms": round(min(timings), 1), "max_ms": round(max(timings), 1),
}))
