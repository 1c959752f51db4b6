"""A generation (or token count) from checked request to settled answer.

* `generate.py`: the order of one generation; `count_tokens`.
* `checks.py`: what must pass before money moves (the request, rate limits,
  the model, credit).
* `reservation.py`: the call's money, reserved on entry and settled exactly once.
* `deadline.py`: the call's time budget and the upstream retries within it.
* `relay.py`: a streamed answer as an explicit state machine.
* `answering.py`: what answering a reserved call needs, and what the HTTP layer gets.
"""

from afk.pipeline.answering import Outcome, Turn
from afk.pipeline.checks import enforce_rate_limit, parse_caller
from afk.pipeline.generate import Admission, Generation, count_tokens, generate
from afk.pipeline.reservation import Reservation

__all__ = ["Admission", "Generation", "Outcome", "Reservation", "Turn", "count_tokens",
           "enforce_rate_limit", "generate", "parse_caller"]
