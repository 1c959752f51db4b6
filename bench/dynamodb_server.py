"""The embedded DynamoDB (moto, serialized) in a process of its own, seeded.

`python bench/dynamodb_server.py PORT TABLE` creates the table and a bench account
with a large balance, prints one JSON line {"key": ..., "account": ...}, and
serves until terminated.
"""

from __future__ import annotations

import json
import signal
import sys
import threading

from afk.local.dynamodb import EmbeddedDynamoDB
from afk.money import parse_usd, to_pico
from afk.store import Dynamo, Store, create_table

if __name__ == "__main__":
    port, table = int(sys.argv[1]), sys.argv[2]
    db = EmbeddedDynamoDB(port=port).start()
    store = Store(Dynamo(table, endpoint_url=db.endpoint))
    create_table(store.dynamo.client, table)
    account = store.accounts.create("Bench", credits=to_pico(parse_usd("100000")))
    key, _ = store.keys.create(account.id, "bench")
    print(json.dumps({"key": key, "account": account.id, "endpoint": db.endpoint}), flush=True)
    done = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: done.set())
    while not done.wait(1.0):
        pass
    db.stop()
