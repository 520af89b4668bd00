#!/usr/bin/env python3
"""gRPC through the facade, with real gRPC peers on both sides: grpcio (gRPC's C core) as the
legacy app, as the new service and as the client, over HTTP/2 with prior knowledge (h2c).

Checked: unary calls with metadata both ways and trailers; streaming from the server, from the
client and both ways at once (each answer read before the next request is sent, so nothing is
buffered on the way); a 1 MiB message; a status code and its message; the deadline reaching the
service (grpc-timeout); a canary over `reads` routes that keeps each user on one side; a gRPC
UNAVAILABLE (HTTP 200) counted as the new side's error; and, once those failures open the
service's breaker, reads answered by legacy.

    python3 tests/grpc/check.py path/to/strangler        (tests/grpc/run.sh builds it first)
"""

import json
import os
import queue
import re
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from concurrent import futures

import grpc

BIN = sys.argv[1]


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


class Echo:
    """One side: every answer says which side gave it."""

    def __init__(self, side):
        self.side = side.encode()

    def unary(self, request, context):
        seen = dict(context.invocation_metadata()).get("x-tenant", "-")
        context.send_initial_metadata((("x-tenant-seen", seen),))
        context.set_trailing_metadata((("x-side", self.side.decode()),))
        return self.side + b":" + request

    def server_stream(self, request, context):
        for i in range(int(request)):
            yield self.side + b":" + str(i).encode()

    def client_stream(self, requests, context):
        return self.side + b":" + b"".join(requests)

    def bidi(self, requests, context):
        for r in requests:
            yield self.side + b":" + r

    def fail(self, request, context):
        context.abort(grpc.StatusCode.UNAVAILABLE, "down for the test")

    def deadline(self, request, context):
        remaining = context.time_remaining()
        return b"none" if remaining is None else str(remaining).encode()


def serve(side):
    port = free_port()
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=16))
    h = Echo(side)
    handlers = {
        "Unary": grpc.unary_unary_rpc_method_handler(h.unary),
        "ServerStream": grpc.unary_stream_rpc_method_handler(h.server_stream),
        "ClientStream": grpc.stream_unary_rpc_method_handler(h.client_stream),
        "Bidi": grpc.stream_stream_rpc_method_handler(h.bidi),
        "Fail": grpc.unary_unary_rpc_method_handler(h.fail),
        "Deadline": grpc.unary_unary_rpc_method_handler(h.deadline),
    }
    server.add_generic_rpc_handlers(
        tuple(grpc.method_handlers_generic_handler(svc, handlers) for svc in ("demo.Echo", "demo.Reads", "demo.Legacy"))
    )
    server.add_insecure_port(f"127.0.0.1:{port}")
    server.start()
    return server, port


def check(cond, what):
    if not cond:
        raise SystemExit(f"FAILED: {what}")
    print(f"ok - {what}")


def metric(admin, name, labels):
    text = urllib.request.urlopen(f"http://{admin}/metrics", timeout=5).read().decode()
    total = 0.0
    for line in text.splitlines():
        if line.startswith(name + "{") and all(f'{k}="{v}"' in line for k, v in labels.items()):
            total += float(line.rsplit(" ", 1)[1])
    return total


def main():
    legacy, legacy_port = serve("legacy")
    new, new_port = serve("new")
    public, admin = f"127.0.0.1:{free_port()}", f"127.0.0.1:{free_port()}"
    work = tempfile.mkdtemp(prefix="strangler-grpc-")
    config = os.path.join(work, "strangler.toml")
    with open(config, "w") as f:
        f.write(f"""
listen = "{public}"
admin = "{admin}"

[legacy]
url = "http://127.0.0.1:{legacy_port}"
protocol = "h2c"

[[services]]
name = "echo-svc"
urls = ["http://127.0.0.1:{new_port}"]
policy = {{ protocol = "h2c", breaker_min_requests = 5, breaker_failure_percent = 50, breaker_cool_down_ms = 60000 }}

[[contexts]]
name = "echo"
target = "echo-svc"
state = "migrated"
# Protocol Buffers bodies cannot be redacted, so the writes are not mirrored back to legacy.
routes = [{{ methods = ["POST"], path = "/demo.Echo/{{method}}", shadow = {{ writes = "off" }} }}]

[[contexts]]
name = "reads"
target = "echo-svc"
state = "canary"
weight = 5000
sticky = "header:x-user"
routes = [{{ methods = ["POST"], path = "/demo.Reads/{{method}}", reads = true }}]
""")
    env = dict(os.environ)
    env.update(
        STRANGLER_CATALOG_URL=f"sqlite://{work}/catalog.db",
        STRANGLER_SHADOW_WAL_DIR=f"{work}/wal",
        STRANGLER_SHUTDOWN_DRAIN_DELAY="0s",
        STRANGLER_LOG_LEVEL="warn",
    )
    subprocess.run([BIN, "import", "--config", config], env=env, check=True, stdout=subprocess.DEVNULL)
    proc = subprocess.Popen([BIN, "serve", "--config", config], env=env)
    try:
        for _ in range(200):
            try:
                urllib.request.urlopen(f"http://{admin}/readyz", timeout=1)
                break
            except OSError:
                time.sleep(0.05)
        else:
            raise SystemExit("FAILED: strangler did not become ready")
        run(public, admin)
    finally:
        proc.terminate()
        proc.wait(timeout=20)
        legacy.stop(None)
        new.stop(None)


def run(public, admin):
    channel = grpc.insecure_channel(public)
    grpc.channel_ready_future(channel).result(timeout=10)
    unary = lambda svc, name="Unary": channel.unary_unary(f"/demo.{svc}/{name}")

    answer, call = unary("Echo").with_call(b"hello", metadata=(("x-tenant", "acme"),), timeout=10)
    check(answer == b"new:hello", "a unary call on a migrated context is answered by the new service")
    check(dict(call.initial_metadata()).get("x-tenant-seen") == "acme", "request metadata reaches the service")
    check(dict(call.trailing_metadata()).get("x-side") == "new", "trailing metadata comes back")
    check(call.code() == grpc.StatusCode.OK, "grpc-status OK arrives in the trailers")

    check(unary("Legacy")(b"hi", timeout=10) == b"legacy:hi", "an unclaimed method goes to legacy over h2c")

    got = list(channel.unary_stream("/demo.Echo/ServerStream")(b"200", timeout=10))
    check(got == [b"new:%d" % i for i in range(200)], "200 messages streamed from the server, in order")

    got = channel.stream_unary("/demo.Echo/ClientStream")(iter([b"x"] * 100), timeout=10)
    check(got == b"new:" + b"x" * 100, "100 messages streamed from the client")

    requests = queue.Queue()
    answers = channel.stream_stream("/demo.Echo/Bidi")(iter(requests.get, None), timeout=20)
    for i in range(50):
        requests.put(b"ping %d" % i)
        # The answer must arrive while the call is still open: nothing is held back.
        got = next(answers)
        if got != b"new:ping %d" % i:
            raise SystemExit(f"FAILED: bidirectional message {i} answered {got}")
    check(True, "50 bidirectional messages, each answered before the next was sent")
    requests.put(None)
    check(list(answers) == [], "the bidirectional call ends when the client's side ends")

    big = os.urandom(1 << 20)
    check(unary("Echo")(big, timeout=20) == b"new:" + big, "a 1 MiB message both ways")

    try:
        unary("Echo", "Fail")(b"", timeout=10)
        check(False, "a failed call fails")
    except grpc.RpcError as e:
        check(e.code() == grpc.StatusCode.UNAVAILABLE and e.details() == "down for the test",
              "a status code and its message reach the client")

    answer = unary("Echo", "Deadline")(b"", timeout=3.7)
    check(answer != b"none" and 3.0 < float(answer) < 3.8,
          f"the client's deadline (3.7 s) reaches the service through grpc-timeout (it had {float(answer):.2f} s left)")

    sides = {}
    for user in range(40):
        md = (("x-user", f"user-{user}"),)
        first = unary("Reads")(b"q", metadata=md, timeout=10)
        again = unary("Reads")(b"q", metadata=md, timeout=10)
        if first != again:
            raise SystemExit(f"FAILED: user-{user} got {first} then {again}")
        sides[first] = sides.get(first, 0) + 1
    check(set(sides) == {b"legacy:q", b"new:q"}, f"the canary over reads keeps each of 40 users on one side and splits them between both {sides}")

    before = metric(admin, "strangler_context_errors_total", {"context": "echo", "side": "new"})
    for _ in range(10):
        try:
            unary("Echo", "Fail")(b"", timeout=10)
        except grpc.RpcError:
            pass
    after = metric(admin, "strangler_context_errors_total", {"context": "echo", "side": "new"})
    check(after - before >= 10, f"gRPC UNAVAILABLE (HTTP 200) counts as the new side's error ({after - before:.0f} of 10)")

    # More failures than the successes of the window: the breaker's failure share passes 50 %.
    for _ in range(50):
        try:
            unary("Echo", "Fail")(b"", timeout=10)
        except grpc.RpcError:
            pass
    opened = metric(admin, "strangler_service_breaker_opened_total", {"service": "echo-svc"})
    check(opened >= 1, "those failures opened the service's breaker")
    for user in range(40):
        md = (("x-user", f"user-{user}"),)
        got = unary("Reads")(b"q", metadata=md, timeout=10)
        if got != b"legacy:q":
            raise SystemExit(f"FAILED: with the breaker open user-{user} got {got}")
    check(True, "with the breaker open, every user's reads are answered by legacy")
    fell_back = metric(admin, "strangler_context_fallbacks_total", {"context": "reads"})
    check(fell_back >= 1, f"and counted as fallbacks ({fell_back:.0f})")
    channel.close()


if __name__ == "__main__":
    main()
