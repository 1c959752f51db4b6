"""cProfile of a built run.sh function from import to its first answered call
(bench/LEVERS.md): imports `app` and serves it on $PORT as run.sh does
(`afk.serve`: uvicorn without its command line), sends one request
(`python first_call.py PATH BODY KEY [SORT [CALLERS]]`) once `GET /` answers, then
stops and prints the top frames. Run it in the function's build folder with the
function and the merged layers on PYTHONPATH (bench/functions.py builds them in
bench/out/functions/opt)."""

import cProfile
import http.client
import os
import pstats
import sys
import threading
import time

PORT = int(os.environ["PORT"])
PATH, BODY, KEY = sys.argv[1], sys.argv[2], sys.argv[3]


def _client(server: object) -> None:
    while True:
        try:
            conn = http.client.HTTPConnection("127.0.0.1", PORT)
            conn.request("GET", "/")
            conn.getresponse().read()
            break
        except OSError:
            time.sleep(0.002)
    start = time.perf_counter()
    conn = http.client.HTTPConnection("127.0.0.1", PORT)
    conn.request("POST", PATH, body=BODY, headers={
        "content-type": "application/json", "authorization": f"Bearer {KEY}",
        "x-goog-api-key": KEY})
    response = conn.getresponse()
    response.read()
    print("first request", response.status, (time.perf_counter() - start) * 1000, "ms",
          file=sys.stderr)
    server.should_exit = True  # type: ignore[attr-defined]


if __name__ == "__main__":
    profile = cProfile.Profile()
    profile.enable()
    started = time.perf_counter()
    import app  # type: ignore[import-not-found]  # noqa: F401 - timed here; served below

    from afk.serve import server as serve

    print("import ms", (time.perf_counter() - started) * 1000, file=sys.stderr)
    server = serve("app:app", PORT)
    threading.Thread(target=_client, args=(server,), daemon=True).start()
    server.run()
    profile.disable()
    print("total ms", (time.perf_counter() - started) * 1000, file=sys.stderr)
    stats = pstats.Stats(profile, stream=sys.stderr)
    stats.sort_stats(sys.argv[4] if len(sys.argv) > 4 else "cumulative").print_stats(60)
    if len(sys.argv) > 5:
        stats.print_callers(sys.argv[5])
