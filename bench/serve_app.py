"""Serve one function app the way functions/<name>/app.py builds it, under uvicorn.

`python bench/serve_app.py NAME PORT`: NAME is one of afk.http.apps.APPS, or
"local" for every route. Configuration comes from the environment, as on Lambda.
"""

from __future__ import annotations

import sys

import uvicorn

from afk.http.apps import create_app

if __name__ == "__main__":
    name, port = sys.argv[1], int(sys.argv[2])
    uvicorn.run(create_app(name), host="127.0.0.1", port=port, log_level="warning",
                access_log=False, lifespan="off")
