"""Poll a URL until a stop file appears (or a deadline), then write {requests, failed, errors} as JSON.

Used by the swarm scenario to show that the old task keeps serving while Swarm rolls a failed update back.
usage: poll.py URL STOP_FILE OUT_FILE [MAX_SECONDS]
"""

from __future__ import annotations

import json
import os
import sys
import time
import urllib.error
import urllib.request


def main() -> int:
    url, stop, out = sys.argv[1:4]
    deadline = time.monotonic() + float(sys.argv[4] if len(sys.argv) > 4 else 300)
    requests = failed = 0
    errors: list[str] = []
    while not os.path.exists(stop) and time.monotonic() < deadline:
        requests += 1
        try:
            with urllib.request.urlopen(url, timeout=3) as resp:
                if resp.status != 200:
                    raise urllib.error.HTTPError(url, resp.status, "not 200", resp.headers, None)
                resp.read()
        except (OSError, urllib.error.URLError) as exc:
            failed += 1
            if len(errors) < 5:
                errors.append(f"{time.strftime('%H:%M:%S')} {exc}")
        time.sleep(0.2)
    with open(out, "w", encoding="utf-8") as fh:
        json.dump({"url": url, "requests": requests, "failed": failed, "errors": errors}, fh)
    return 0


if __name__ == "__main__":
    sys.exit(main())
