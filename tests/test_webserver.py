"""bot.webserver on its own, in a process whose open-file limit is far below its connection cap: when
accept() runs out of descriptors the oldest idle connection is closed and the server goes on
answering, without a traceback per attempt."""
from __future__ import annotations

import socket
import subprocess
import sys
import textwrap
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

SERVER = textwrap.dedent('''
    import asyncio, logging, resource, sys
    resource.setrlimit(resource.RLIMIT_NOFILE, (64, 64))
    logging.basicConfig(level=logging.INFO, stream=sys.stderr)
    from tornado.netutil import bind_sockets
    from tornado.web import Application, RequestHandler
    from bot.webserver import GuardedServer

    class Ok(RequestHandler):
        def get(self):
            self.write("ok")

    async def main():
        server = GuardedServer(Application([("/ok", Ok)]), max_connections=10_000)
        sockets = bind_sockets(0, "127.0.0.1")
        server.add_sockets(sockets)
        print(sockets[0].getsockname()[1], flush=True)
        await asyncio.sleep(3600)

    asyncio.run(main())
''')


def test_out_of_descriptors_the_server_closes_idle_connections_and_goes_on_answering():
    process = subprocess.Popen([sys.executable, "-c", SERVER], cwd=ROOT, stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True)
    held: list[socket.socket] = []
    try:
        port = int(process.stdout.readline())
        for _ in range(200):                         # three times the process's open-file limit
            held.append(socket.create_connection(("127.0.0.1", port), timeout=5))
        for _ in range(3):
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/ok", timeout=10) as response:
                assert response.read() == b"ok"
    finally:
        for s in held:
            s.close()
        process.kill()
        _, err = process.communicate(timeout=10)
    assert "Traceback" not in err and "Too many open files" not in err.replace("(Too many open files)", "")
    assert "closed to make room" in err, err
    assert len(err.splitlines()) < 10, err
