"""DynamoDB access: keys, accounts, holds, the ledger. Nothing above this
package touches boto3.

One table, single-table design. Item layout (PK / SK):

  ACCOUNT#<id> / ACCOUNT        the account: name, balance, caps, open holds, totals
      balance   N  pico-USD available to spend (never negative: every debit is
                   conditional on it)
      holds     M  hold_id -> {amount, created_ms, model, endpoint, key_id}; a
                   hold lives inside the account item so that reserving is ONE
                   conditional UpdateItem (balance -= quote, holds.id = quote)
      caps      M  model id -> per-call cap in pico-USD
      charged   N  sum of every charge ever settled        } kept in the same
      credited  N  sum of every credit ever added          } writes, so the
                   invariant balance + Σholds + charged − credited = 0 can be
                   checked on one item; the ledger holds the details
  ACCOUNT#<id> / LEDGER#<ms:013>#<id>   one immutable ledger entry (charge or credit)
  ACCOUNT#<id> / KEY#<key_id>           key metadata for listing (name, prefix,
                                        created, last_used, status);
                                        GSI1PK=KEYID#<key_id> finds it by key id
  KEY#<sha256 hex> / KEY                the auth lookup: account_id, key_id, status
  ACCOUNT#<id> / RESPONSE#<id>[#n]      a stored Responses-API turn (see responses.py)
  RATE#<key_id> / <minute>              a key's request count in one minute (rate limits)

Money attributes are integers of pico-USD (see afk.billing.money).
"""

from afk.store.accounts import Account, Accounts
from afk.store.dynamo import Dynamo, create_table
from afk.store.keys import KeyRecord, Keys
from afk.store.ledger import Hold, Ledger, LedgerEntry, Settlement
from afk.store.responses import Responses, StoredResponse


class Store:
    """The three repositories over one table."""

    def __init__(self, dynamo: Dynamo) -> None:
        self.dynamo = dynamo
        self.accounts = Accounts(dynamo)
        self.keys = Keys(dynamo)
        self.ledger = Ledger(dynamo)
        self.responses = Responses(dynamo)


__all__ = ["Account", "Accounts", "Dynamo", "Hold", "KeyRecord", "Keys", "Ledger",
           "LedgerEntry", "Responses", "Settlement", "Store", "StoredResponse", "create_table"]
