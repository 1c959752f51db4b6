"""DynamoDB access: keys, accounts, holds, the ledger. Nothing above this
package touches boto3.

One table, single-table design. Item layout (PK / SK):

  ACCOUNT#<id> / ACCOUNT        the account: name, balance, caps, totals. Written
                                per lease and per operator action, never per call.
      balance   N  pico-USD not leased (never negative: every debit is conditional)
      leased    N  Σ granted of the account's open leases
      caps      M  model id -> per-call cap in pico-USD
      charged   N  Σ charges of closed leases          } so the invariant
      credited  N  Σ credits                           } balance + leased + charged
                   − credited = 0 holds on this one item at every instant
  ACCOUNT#<id> / LEASE#<lease>  a credit lease of one environment (leases.py)
  LEASE#<lease> / CHARGE#<req>  one call's charge: its ledger entry (leases.py)
  ACCOUNT#<id> / LEDGER#<ms:013>#<id>   a credit (and v1's charges): ledger entries
  ACCOUNT#<id> / KEY#<key_id>           key metadata for listing (name, prefix,
                                        created, last_used, status);
                                        GSI1PK=KEYID#<key_id> finds it by key id
  KEY#<sha256 hex> / KEY                the auth lookup: account_id, key_id, status
  ACCOUNT#<id> / RESPONSE#<id>[#n]      a stored Responses-API turn (see responses.py)
  RATE#<key_id> / <minute>              a key's request count in one minute (rate limits)
  CREDIT#<idempotency key> / CREDIT     which account and amount a keyed credit was for
  ROLLUP#… / …, ROLLED#<entry> / ROLLED usage rollups kept by the aggregator (rollups.py)

Money attributes are integers of pico-USD (see afk.money).
"""

from afk.store.accounts import Account, Accounts
from afk.store.dynamo import Dynamo, create_table
from afk.store.keys import KeyRecord, Keys
from afk.store.leases import Lease, Leases, Statement
from afk.store.ledger import Hold, Ledger, LedgerEntry, Settlement
from afk.store.responses import Responses, StoredResponse
from afk.store.rollups import Rollups


class Store:
    """The repositories over one table."""

    def __init__(self, dynamo: Dynamo) -> None:
        self.dynamo = dynamo
        self.accounts = Accounts(dynamo)
        self.keys = Keys(dynamo)
        self.ledger = Ledger(dynamo)
        self.leases = Leases(dynamo)
        self.responses = Responses(dynamo)
        self.rollups = Rollups(dynamo)


__all__ = ["Account", "Accounts", "Dynamo", "Hold", "KeyRecord", "Keys", "Lease", "Leases",
           "Ledger", "LedgerEntry", "Responses", "Rollups", "Statement", "Settlement", "Store", "StoredResponse", "create_table"]
