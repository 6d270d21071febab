"""A reference model of the delivery decisions: pure Python, written to be read.

scripts/lua/next_key.lua and the management scripts decide on the hot path, tuned for
microseconds; this package states the same rules plainly, and a Hypothesis state machine
(tests/model/) runs random sequences of operations against both and requires identical
answers, counters and events. Where is each rule stated?

- tokens, allowlists, the demo throttle: access.py
- daily limits, the policies' selection, counting, the delivery's events: delivery.py
- the current key and the rotation order: rotation.py
- what management operations and the expiry sweep change: management.py
- the state it keeps: state.py; the answer a client sees: answers.py

No Redis, no HTTP, no asyncio: a rule that needs them is not a delivery rule.
"""
