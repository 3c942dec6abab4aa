"""A static HTTP server with full Range support (suffix ranges ``bytes=-N`` too, as nginx and S3
have) that logs the bytes it sends, for the remote tests and bench/remote.py:
``python counting_http_server.py PORT ROOT LOG``. RangeHTTPServer, which it extends, answers
suffix ranges with 400."""

from __future__ import annotations

import functools
import os
import re
import sys
from http.server import ThreadingHTTPServer

from RangeHTTPServer import RangeRequestHandler


class _Counting:
    """A write-only stream that counts what passes through it."""

    def __init__(self, raw):
        self.raw, self.n = raw, 0

    def write(self, data) -> int:
        self.n += len(data)
        return self.raw.write(data)


class CountingHandler(RangeRequestHandler):
    log_path = ""

    def send_head(self):
        m = re.fullmatch(r"bytes=-(\d+)", self.headers.get("Range", "").strip())
        if m:  # a suffix range: the last N bytes, written out as an explicit range
            try:
                size = os.path.getsize(self.translate_path(self.path))
            except OSError:
                size = None
            if size is not None:
                start = max(0, size - int(m.group(1)))
                del self.headers["Range"]
                self.headers["Range"] = f"bytes={start}-{max(size - 1, start)}"
        return super().send_head()

    def copyfile(self, source, outputfile) -> None:
        counted = _Counting(outputfile)
        super().copyfile(source, counted)
        with open(self.log_path, "a", encoding="utf-8") as log:
            log.write(f"{self.path} {counted.n}\n")

    def log_message(self, *args) -> None:  # quiet: the byte log is what matters
        pass


def main() -> None:
    port, root, log = int(sys.argv[1]), sys.argv[2], sys.argv[3]
    CountingHandler.log_path = log
    handler = functools.partial(CountingHandler, directory=root)
    ThreadingHTTPServer(("127.0.0.1", port), handler).serve_forever()


if __name__ == "__main__":
    main()
