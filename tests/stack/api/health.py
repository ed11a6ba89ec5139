"""The test API's healthcheck: GET /health over a plain socket; exit 0 on HTTP 200, else 1 with the reason.

Run as ``python3 -I -S /app/health.py`` (the compose healthcheck of tests/stack/vars.yml and the scenarios). The stacks
of the test lane probe every 2 s for as long as they run, and ``python3 -c "import urllib.request; ..."`` costs about
five times the CPU of this probe (urllib.request pulls in http.client, email and ssl; -S skips site): 0.18 against
0.036 CPU-s per probe, measured in the testapi image under load (issue 34).
"""

import socket
import sys

try:
    with socket.create_connection(("127.0.0.1", 8080), timeout=2) as conn:
        # the request line urllib sent before (the API logs it, and molecule/stack checks that log line)
        conn.sendall(b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
        status = conn.makefile("rb").readline().split()
except OSError as exc:
    sys.exit(f"health: {exc}")
if status[1:2] != [b"200"]:
    sys.exit(f"health: {b' '.join(status).decode(errors='replace') or 'no answer'}")
