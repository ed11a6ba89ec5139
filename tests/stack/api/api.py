"""Tiny vector API of the homeport test stack: stores and reads vectors through PostgreSQL + pgvector.

GET  /health              200 {"status": "ok", "version": ...} when the database answers (503 otherwise)
POST /vectors             {"name": str, "embedding": [3 floats]} -> 201 {"id": n}   (Authorization: Bearer TOKEN)
GET  /vectors/<id>        {"id", "name", "embedding"}
GET  /nearest?v=1,2,3&k=1 the k nearest rows by L2 distance (pgvector <->)
GET  /count               {"count": n}
Settings from the environment: DATABASE_HOST/USER/NAME/PASSWORD, API_TOKEN, API_VERSION, API_PORT,
API_FAIL_HEALTH=1 makes /health answer 503 (a release whose healthcheck fails).
"""

from __future__ import annotations

import json
import os
import sys
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlparse

import psycopg

DIM = 3
VERSION = os.environ.get("API_VERSION", "0")


def connect() -> psycopg.Connection:
    return psycopg.connect(
        host=os.environ.get("DATABASE_HOST", "db"),
        user=os.environ.get("DATABASE_USER", "postgres"),
        dbname=os.environ.get("DATABASE_NAME", "postgres"),
        password=os.environ.get("DATABASE_PASSWORD", ""),
        connect_timeout=3,
        client_encoding="UTF8",  # the database may be SQL_ASCII (no locale in the image): psycopg would hand back bytes
        autocommit=True,
    )


def vec_literal(values) -> str:
    if not isinstance(values, list) or len(values) != DIM:
        raise ValueError(f"embedding must be a list of {DIM} numbers")
    return "[" + ",".join(str(float(v)) for v in values) + "]"


def parse_vec(text: str | bytes) -> list[float]:
    if isinstance(text, bytes | bytearray | memoryview):  # psycopg hands back unregistered types as bytes
        text = bytes(text).decode()
    return [float(x) for x in text.strip("[]").split(",")]


def init_schema() -> None:
    for attempt in range(60):
        try:
            with connect() as conn:
                conn.execute("CREATE EXTENSION IF NOT EXISTS vector")
                conn.execute(
                    f"CREATE TABLE IF NOT EXISTS items (id serial PRIMARY KEY, name text, embedding vector({DIM}))"
                )
            return
        except psycopg.OperationalError as exc:
            print(f"database not ready ({attempt}): {exc}", file=sys.stderr, flush=True)
            time.sleep(1)
    sys.exit("database never became ready")


class Handler(BaseHTTPRequestHandler):
    def _send(self, code: int, body: dict) -> None:
        data = json.dumps(body).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, fmt, *args) -> None:
        print(f"{self.address_string()} {fmt % args}", file=sys.stderr, flush=True)

    def do_GET(self) -> None:
        url = urlparse(self.path)
        try:
            if url.path == "/health":
                if os.environ.get("API_FAIL_HEALTH") == "1":
                    self._send(503, {"status": "failing on purpose (API_FAIL_HEALTH=1)", "version": VERSION})
                    return
                with connect() as conn:
                    conn.execute("SELECT 1")
                self._send(200, {"status": "ok", "version": VERSION})
            elif url.path == "/count":
                with connect() as conn:
                    (n,) = conn.execute("SELECT count(*) FROM items").fetchone()
                self._send(200, {"count": n})
            elif url.path.startswith("/vectors/"):
                with connect() as conn:
                    row = conn.execute(
                        "SELECT id, name, embedding::text FROM items WHERE id = %s", (int(url.path.rsplit("/", 1)[1]),)
                    ).fetchone()
                if row is None:
                    self._send(404, {"error": "not found"})
                else:
                    self._send(200, {"id": row[0], "name": row[1], "embedding": parse_vec(row[2])})
            elif url.path == "/nearest":
                q = parse_qs(url.query)
                vec = vec_literal([float(x) for x in q["v"][0].split(",")])
                k = int(q.get("k", ["1"])[0])
                with connect() as conn:
                    rows = conn.execute(
                        "SELECT id, name, embedding::text, embedding <-> %s::vector AS d"
                        " FROM items ORDER BY d LIMIT %s",
                        (vec, k),
                    ).fetchall()
                self._send(200, {"items": [{"id": r[0], "name": r[1], "embedding": parse_vec(r[2])} for r in rows]})
            else:
                self._send(404, {"error": "not found"})
        except (psycopg.Error, ValueError, KeyError) as exc:
            self._send(503 if isinstance(exc, psycopg.Error) else 400, {"error": str(exc)})
        except Exception as exc:  # answer 500 instead of dropping the connection
            self._send(500, {"error": f"{type(exc).__name__}: {exc}"})

    def do_POST(self) -> None:
        if self.path != "/vectors":
            self._send(404, {"error": "not found"})
            return
        token = os.environ.get("API_TOKEN", "")
        if not token or self.headers.get("Authorization") != f"Bearer {token}":
            self._send(401, {"error": "missing or wrong bearer token"})
            return
        try:
            body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", "0"))) or b"{}")
            with connect() as conn:
                (new_id,) = conn.execute(
                    "INSERT INTO items (name, embedding) VALUES (%s, %s::vector) RETURNING id",
                    (str(body.get("name", "")), vec_literal(body.get("embedding"))),
                ).fetchone()
            self._send(201, {"id": new_id})
        except (psycopg.Error, ValueError) as exc:
            self._send(400, {"error": str(exc)})


def main() -> None:
    init_schema()
    port = int(os.environ.get("API_PORT", "8080"))
    print(f"api version {VERSION} listening on :{port}", file=sys.stderr, flush=True)
    ThreadingHTTPServer(("0.0.0.0", port), Handler).serve_forever()


if __name__ == "__main__":
    main()
