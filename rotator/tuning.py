"""Tunables: the numbers that trade latency, memory, load or patience for one another.

They are constants, not settings (rotator/settings.py), because none of them is a choice
an operator makes about their deployment: each is fixed by a measurement, a protocol or
the behaviour of a peer, and a wrong value breaks something quietly. Each says why it
has its value (and the figure, where it was measured), so whoever changes one knows what
to re-measure. Rules of the API (name lengths, body and page caps, secret sizes) are not
here: they are part of the contract (SPEC.md) and live with the checks that apply them.
The worker's own intervals and batch sizes, which tests shrink instead of sleeping, are
fields of workers/config.py's WorkerConfig for that reason.
"""

from __future__ import annotations

# --- the hot-path client (rotator/store/fast) ----------------------------------------------

FLUSH_EVERY = 8
"""Commands are written once per loop tick, or as soon as this many are queued: Valkey then
starts on the first ones while this process is still parsing the tick's other requests.
Measured (make bench --quick, -c32, one worker): per tick only 72% of the bare handler's
rate and p99 20 ms; every 4-8 commands 96-97% and p99 2.6 ms; every command 89%."""

RECONNECT_AFTER_S = 0.2
"""After a failed connect, calls fail at once with 503 for this long instead of each waiting a
connect timeout: five attempts a second find a restarted Valkey within a fifth of a second,
and a down one costs requests microseconds."""

CLUSTER_MAX_ATTEMPTS = 6
"""Redirections (MOVED, ASK, TRYAGAIN) one call follows before it gives up with 503: a
resharding moves a slot once; more hops mean the map is changing under us."""

CLUSTER_REFRESH_EVERY_S = 0.25
"""At most one slot-map refresh (CLUSTER SLOTS) this often: a failover answers MOVED to every
call at once, and one refresh serves them all."""

CLUSTER_MAX_PAUSES = 2
"""TRYAGAIN / CLUSTERDOWN answers one call waits out (a slot migrating, a failover being
elected) before it answers 503: the client retries sooner than a longer wait would end."""

CLUSTER_PAUSE_S = 0.05
"""The first such pause; the second is twice as long (0.15 s in all, well under a client's
patience, and the time a replica's promotion takes on a quiet cluster)."""

# --- the delivery path (rotator/store/delivery.py) -----------------------------------------

MANAGEMENT_CONNECTIONS = 128
"""Connections of one process's management client (redis-py) to one store; a request that
finds them all busy waits MANAGEMENT_POOL_WAIT_S for one, then is answered 503. Requests
hold one for a command or a pipeline (a durable write: up to its fsync, well under 1 s)."""

MANAGEMENT_POOL_WAIT_S = 5

REQUEST_RECORD_TTL_MS = 60_000
"""How long a proxy's retry of a request (same X-Request-Id) is recognised and answered with
the same key, uncounted: nginx and the cloud balancers retry within seconds."""

MAX_ID_HINTS = 100_000
"""(tenant, service) pairs whose key-id list each API worker remembers to shorten the script's
reply; past this the memory is dropped at once and refills with the next deliveries, so it
stays bounded whatever the number of services."""

# --- imported tokens (rotator/store/token_resolver.py) -------------------------------------

IMPORTED_CACHE_ENTRIES = 10_000
"""Imported tokens each API process remembers the owner of (LRU, about 200 bytes each: 2 MB).
A tenant moving over from the hosted service has one client token and a handful of app
tokens; past this many, the least recently used cost a second round trip again."""

IMPORTED_CACHE_TTL_MS = 5_000
"""How long a remembered owner is trusted. Revocation does not wait for it (the delivery
script compares the stored hash on every request); it bounds how long a token given up by
one tenant and imported by another (a migration rehearsed in a scratch tenant) is still sent
to the first (403) by a process that had it cached: 5 s. Its cost: one lookup per imported
token per process every 5 s (at 1,000 requests/s with one token, 1 request in 5,000 takes a
second round trip)."""

IMPORTED_UNKNOWN_TTL_MS = 5_000
"""How long an unknown token stays known as unknown: repeated requests with one bad token
cost no round trip within it (a random token costs one lookup, never a script call too); a
token imported just after a client tried it works within 5 s on every process."""

IMPORT_CLAIM_PENDING_MS = 60_000
"""How long an imported token's claim in the index counts as an import in progress, by the
clock of the entry's node (store/token_index.py): an import claims the entry, writes its
hash, then confirms the claim, and another import of the same value within this window is
refused (409) instead of taking the entry over. Far longer than the writes take (each
gives up after ROTATOR_REDIS_TIMEOUT_MS, or WAITAOF's timeout), and than clocks of one
store's nodes differ; the cost is that an import that failed between its writes keeps the
value for this long."""

# --- webhooks --------------------------------------------------------------------------------

WEBHOOK_LOG_KEEP = 1000
"""Delivery log entries kept per tenant (GET /v1/webhooks/deliveries pages through them): enough
to see what went wrong lately, and bounded so the log cannot grow a tenant's memory."""

WEBHOOK_MAX_RESPONSE_BYTES = 64 * 1024
"""Of a receiver's response body, only this much is read (the status is what counts)."""

RESOLVE_TIMEOUT_S = 3.0
"""A webhook host's DNS lookup (the private-address check) gives up after this long: longer
than a healthy resolver's retry, shorter than the attempt's own timeout."""

# --- the console (rotator/store/sessions.py) --------------------------------------------------

SESSION_TOUCH_INTERVAL_MS = 60_000
"""A session's idle clock is refreshed at most this often: browsing costs one read per page,
not a write per click, and the idle limit (minutes) is kept to within a minute."""

SIGNIN_MAX_FAILURES = 10
"""Failed sign-ins one client IP may make per window before it must wait: enough for a person
mistyping, too few to guess a 32-byte token."""

SIGNIN_WINDOW_MS = 15 * 60_000
"""The window of SIGNIN_MAX_FAILURES; it starts at the first failure."""

# --- management writes that race with others ----------------------------------------------

TENANT_UPDATE_ATTEMPTS = 5
"""Times a tenant-wide write is sent again when a service came or went between reading the
slugs and the script: each retry needs a concurrent create or delete, so five never run out
in practice, and a sixth would hide a bug."""

POLICY_UPDATE_ATTEMPTS = 5
"""The same for a service's policy change racing with another change of that service (the
script refuses a write based on a stale read of the policy)."""

KEY_ADD_ATTEMPTS = 5
"""The same for adding keys while a key with the same masked form is added to or removed from
the service (key_add.lua refuses a write whose duplicate check compared other keys)."""

TENANT_COUNTS_PER_ROUND = 1000
"""Tenants whose counts one pipeline asks for (bounds the client's memory, not the rounds:
10,000 tenants are 10 round trips)."""

# --- tenant deletion (rotator/store/tenant_deletion.py, workers/deletions.py) ---------------

DELETION_SCAN_COUNT = 1000
"""Keys one SCAN call examines (a hint to the server); what it finds is one UNLINK."""

DELETION_REQUEST_STEPS = 10
"""SCAN calls the DELETE request makes before answering 202 and leaving the rest to the
worker: a tenant whose node holds up to about 10,000 keys is deleted within the request."""

DELETION_RECHECK_AFTER_MS = 60_000
"""A deletion is final after a pass that began this long after its first step: longer than any
request authenticated before the deletion can still be writing."""

DELETION_STOP_BEFORE_S = 5.0
"""How long before the job's arq timeout (sweep_timeout_s) a run stops on its own, between
two batches, so arq never cancels one midway (harmless, but logged as a failure)."""

# --- background jobs (workers/) ----------------------------------------------------------------

SWEEP_CHUNK = 500
"""Time services one sweep round sends as one pipeline of scripts: one round trip per 500
services, and a bounded reply."""

CANCEL_RETRY_S = 0.1
"""How long a cancelled task has to end before it is cancelled again."""

# --- backup and the key ring (rotator/store/backup, rotator/store/keyring.py) -------------------

RESTORE_BATCH_TENANTS = 32
"""Tenants restored per batch, at most: one fsync wait per batch, not per tenant."""

RESTORE_BATCH_BYTES = 4 << 20
"""A batch of tenants ends at this many argument bytes: one fsync wait per batch, not per
tenant (with appendfsync everysec each wait may take up to a second)."""

BACKUP_READS_PER_TENANT = 10
"""Reads of one tenant before giving up: each read after the first follows a service or
app created in the moment between the previous listing and its read."""

KEYRING_SAMPLE_BLOBS = 5
"""Stored blobs tried on a store without a canary: one that opens proves the key."""

# --- the processes (rotator/cli, rotator/api/proxies.py) -----------------------------------

RESTART_BASE_S = 1.0
"""A child (API or worker) that exits is restarted after this long, doubled at each exit..."""

RESTART_CAP_S = 30.0
"""... up to this: a crash loop costs a start every 30 s, and a fixed store is back within it."""

HEALTHY_AFTER_S = 60.0
"""A child that ran this long before exiting is restarted after RESTART_BASE_S again."""

STOP_TIMEOUT_S = 10.0
"""SIGTERM, then SIGKILL after this long: uvicorn's graceful shutdown ends in-flight requests
(milliseconds each) well within it."""

HEALTH_TIMEOUT_S = 60.0
"""`rotator run` waits this long for the API's /healthz before it gives up (a cold start with
a large AOF to load takes seconds)."""

PROGRESS_EVERY_S = 1.0
"""`rotator tenant delete --wait` says how far it got at most this often."""

STORE_MARKS_EVERY_S = 5.0
"""How often each API process checks that the store still holds the key-ring canary and
kr:schema (rotator/api/store_watch.py): two reads, so a store emptied under a running API
(FLUSHALL, Valkey restarted without its data) is said and marked again within seconds."""

PROXY_NAMES_REFRESH_S = 30.0
"""How often trusted proxies given by name are looked up again (a container's address changes
when it is recreated)."""

PROXY_NAMES_RETRY_S = 1.0
"""How often a name that never resolved is tried (the proxy may start after the API)."""
