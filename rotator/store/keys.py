"""The store's schema: every Redis key name and every hash field, in one place.

The docstring below describes it; the declarations after it are what the code uses (the
Lua scripts spell the same names as literals, and tests/lua/test_schema.py fails when a
script reads or writes a field not declared here). `SCHEMA_VERSION` is the data format this
code reads and writes (rotator/store/migrations.py brings an older store up to it).

All of a tenant's keys carry the hash tag `{t:<tenant>}`, so every script touches
one cluster slot and the same code runs on one Redis and on a Redis Cluster.
The few global keys (registries that span tenants) are only ever used by single
commands, never inside a tenant's script.

Schema (per tenant T):

  {t:T}:tenant          HASH  name, demo (0|1), created_ms,
                              admin   sha256 hex of the admin token's secret
                              client  sha256 hex of the client token's secret; '' while
                                      suspended (the hash waits in client_held), so every
                                      reader of it refuses the tenant's client and app tokens
                              suspended  '1' while the operator has suspended the tenant
                              client_imported  '1' when the client token was imported (its
                                      hash is of the whole token, indexed in kr:tok:<hash>)
                              allow   packed IP ranges (domain/iprange.py), allow_src JSON list
                              wh_url, wh_secret (sealed), events ",type,type," subscribed
                                     (empty unless a webhook is configured)
  {t:T}:seq             STRING INCR: ids of provider keys and apps (unique within the tenant)
  {t:T}:services        SET   service slugs
  {t:T}:svc:<slug>      HASH  policy, max ('' = none), ttl_ms ('' unless time), created_ms,
                              warn  limit warning percent ('' or absent = none)
                              ids   comma-separated key ids in rotation order ("3,7,9";
                                    '' when none; creation order unless moved; Lua only)
                              cur   the manual primary, or the time policy's key in use: the
                                    current key is the first usable key from there
                                    (domain/rotation.py, scripts/lua/lib/rotation.lua)
                              mcur  the manual primary, put aside while the service uses
                                    another policy (service_update.lua puts it back)
                              noact 1 while service.no_active_keys has been recorded
                              rpm   max requests per minute ('' or absent = none)
                              rr    round_robin: the key id delivered last (the next is the
                                    next higher id that is available, wrapping)
                              lseq  least_recently_used: deliveries so far (lu:N orders keys)
                              cool  key health: the keys cooling down, "id:until_ms" joined
                                    by ',' (report.lua; next_key.lua skips them, and drops
                                    an entry whose time has passed when it delivers the key)
                              h_cd, h_cdmax, h_reset, h_fn, h_fw, h_bc: the service's health
                                    settings (domain/health.py FIELDS; absent = default)
                              per key id N: l:N label, c:N sealed secret, a:N active (1|0),
                              m:N max daily ('' = none), t:N entered rotation (ms),
                              x:N expiry recorded by the sweep (ms), n:N created (ms),
                              k:N masked form (domain/masking.py), so listings never decrypt
                              w:N weight (weighted policy; absent = 1), q:N max requests per
                              minute ('' or absent = none), cw:N current weight (weighted:
                              nginx's smooth weighted round robin state; absent = 0),
                              lu:N lseq at its last delivery (least_recently_used; absent =
                              never delivered)
                              key health (report.lua): f:N failures in the window that
                              started at fw:N (ms), b:N the breaker's consecutive openings,
                              dr:N why a report disabled it, r:N the last report (JSON)
                              @client, @demo, @allow, @events: copies of the tenant's fields,
                                    written with them by tenant_update.lua (and by
                                    service_create.lua), so a delivery reads one hash fewer
  {t:T}:apps            SET   app ids
  {t:T}:app:<id>        HASH  name, token (sha256 hex), allow, allow_src, max, created_ms,
                              suspended ('1' while suspended: next_key.lua refuses its token)
                              token_imported ('1' when the token was imported, as client_imported)
  {t:T}:use:<day>       HASH  s:<slug> service count, k:<id> key count, a:<id> app count,
                              df:<id> decrypt failures (delivery_refund.lua), sdf:<slug>
                              their sum over a service's keys (read by the usage policy),
                              rp:<slug>:<class> reports by status class (report.lua,
                              domain/health.py REPORT_CLASSES); once-a-day event
                              flags, set only when the event was recorded (next_key.lua):
                              lr:<slug>:<max> service.limit_reached, lra:<id>:<max>
                              app.limit_reached, lw:<slug>:<max> service.limit_warning,
                              ku:<key id> key.rotated (reason usage); expires by itself
  {t:T}:rid:<id>        STRING '<key id>:<app id>' a proxy's request id was answered with, and
                              by whom ('' app: the client token); a retry of that request by
                              the same caller gets the key again, uncounted, while it is usable
                              (next_key.lua); expires by itself
  {t:T}:wins:<slug>     LIST  the service's delivery times (ms) in its per-minute window, newest
                              first, trimmed to its max_requests_per_minute (next_key.lua);
                              expires by itself
  {t:T}:wink:<id>       LIST  the same for key <id> under its own per-minute limit
  {t:T}:gcra:<iphex>    STRING demo throttle: theoretical arrival time (ms); expires by itself;
                              per address: IPv4 whole, IPv6 its /64 (iprange.throttled_part)
  {t:T}:events          STREAM type, data (JSON); capped (MAXLEN ~); consumer group "webhooks"
                              (the event pumps); event id = evt_<T>_<entry id>
  {t:T}:void            ZSET  entry ids of events taken back after a pump had read them
                              (delivery_refund.lua: a delivery that failed to decrypt), -> ms;
                              a delivery job checks it before POSTing; expires by itself
  {t:T}:deliveries      LIST  webhook delivery log, newest first, capped (store/webhooks.py):
                              one JSON object per attempt, starting {"seq":N, (contiguous
                              along the list: the page cursor), event_id, type, attempts,
                              status_code, error, outcome (delivered|retrying|failed), updated_at
  {t:T}:audit           STREAM r: one audit record (JSON, rotator/store/audit.py) per
                              management write, appended by the write's own script
                              (scripts/lua/lib/audit.lua), and per refused attempt; entry
                              id = <ms>-<seq>; trimmed by MINID (AUDIT_RETENTION_DAYS)
  {t:T}:session:<h>     HASH  a console session (store/sessions.py): created_ms, seen_ms;
                              h = sha256 hex of the session secret in the cookie;
                              PEXPIRE = the idle limit, refreshed at most once a minute
  {t:T}:sessions        SET   the h of the tenant's sessions (members may have expired), so
                              revoking them all is one script on one slot

Global:

  kr:schema             STRING the store's data format version (SCHEMA_VERSION; `rotator migrate`)
  kr:tenants            SET   every tenant id
  kr:webhook_tenants    SET   tenants with a webhook configured (read by the event pump)
  kr:time_services      SET   "<tenant>:<slug>" of time-policy services (read by the sweep)
  kr:demo_tenant        STRING the tenant `rotator run` created for the demo
  kr:deleting_tenants   ZSET  tenants being deleted -> ms the deletion began: their tokens
                              stopped, their keys are being removed (store/tenant_deletion.py;
                              the worker finishes and re-checks them)
  kr:tok:<h>            STRING the tenant ("<T>") or app ("<T>:<app id>") an imported token
                              belongs to ("<owner> <ms> <nonce>" from its claim until the
                              owner's hash is written); h = sha256 hex of the whole token
                              (store/token_index.py).
                              Its own slot, written before the tenant's hash and removed after
                              it changes, so it may point where the token no longer works
                              (the delivery script refuses it) but never the reverse; rebuilt
                              by a restore from client_imported / token_imported
  kr:keyring            HASH  canary  a known plaintext sealed by a master key the data is
                                      sealed with (own AAD; store/keyring.py): every process
                                      that opens or seals secrets refuses to start unless
                                      its key ring opens it; `rotator rewrap` re-seals it
                              fp:<fingerprint>  ms first seen, plus one per write sealed
                                      by it since: the master keys (hex sha256[:8]) data
                                      may be sealed with since the last rewrap, which
                                      forgets one only if its value did not change
  kr:opsession:<h>      HASH  an operator console session: a tenant's fields, and by (sha256
                              hex of the operator token it was opened with: live only while
                              the API runs with that token)
  kr:signin_fail:<hex>  STRING console sign-in attempts, less those that succeeded, from one
                              address (ip_hex: IPv4 whole, IPv6 its /64; "n" and a digest of
                              an address that is no IP) in the current window
                              (signin_attempt.lua; expires with the window)
  kr:audit              STREAM the operator's audit log: every tenant's records (copied
                              right after the tenant's own) and the operator writes that
                              name no tenant; same fields and trimming as {t:T}:audit
  kr:authfail:<minute>  HASH  unauthenticated management requests per client IP in that
                              minute (HINCRBY; expires by itself): counted, never logged
                              one record each
  kr:restore            HASH  the last `rotator restore` (store/backup/load.py): mac (the
                              file's last line MAC, hex), file, tenants, started_ms,
                              finished_ms (absent while it runs: the same file may resume it)
  kr:restore_claim      STRING the restore running now (store/claims.py: who, since when);
                              lapses a minute after its holder stops keeping it (at
                              once taken over when that process is gone from this machine)

On the job queue's Redis (ROTATOR_QUEUE_URL, by default the same server), besides arq's own:

  kr:worker_alive:<host> STRING written by each running worker of that host every few
                              seconds (arq's health check record: "<time> j_complete=N
                              ... queued=N"), expiring soon after; `rotator worker --check`
                              reads it (workers/health.py)

What a backup holds of all this: store/backup/selection.py.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping

from rotator.domain.iprange import ip_hex, throttled_part

SCHEMA_VERSION = 4
"""The data format of this code (kr:schema). 1: services stored before they held copies of
the tenant's fields (or no kr:schema at all); 2: every service holds them; 3: allowlists
packed with an IPv6 range that holds ::ffff:0:0/96 split around it (iprange._spans); 4: masked
forms (k:N) show a known provider prefix only (domain/masking.py)."""

# --- hash fields --------------------------------------------------------------------------
TENANT_FIELDS = (
    "name", "demo", "created_ms", "admin", "client", "client_held", "suspended", "allow",
    "allow_src", "wh_url", "wh_secret", "events", "client_imported",
)  # fmt: skip
"""The fields of {t:T}:tenant (meanings in the module docstring)."""

COPIED_TENANT_FIELDS = ("client", "demo", "allow", "events")
"""The tenant fields each service hash holds a copy of, as '@<field>' (tenant_update.lua;
scripts/lua/lib/prelude.lua copy_tenant_fields)."""

COPIES = tuple("@" + f for f in COPIED_TENANT_FIELDS)
"""The copies' field names in a service hash ('@client', ...)."""

SERVICE_FIELDS = (
    "policy", "max", "ttl_ms", "created_ms", "warn", "ids", "cur", "mcur", "noact", "rpm", "rr",
    "lseq", *COPIES, "cool", "h_cd", "h_cdmax", "h_reset", "h_fn", "h_fw", "h_bc",
)  # fmt: skip
"""The fixed fields of {t:T}:svc:<slug>; its per-key fields are KEY_FIELDS."""

KEY_FIELDS: Mapping[str, str] = {
    "l:": "label",
    "c:": "sealed secret (AES-256-GCM, AAD bound to tenant, service and id)",
    "a:": "active, 1|0",
    "m:": "own max daily requests ('' = none)",
    "t:": "when the key entered rotation, ms (time policy)",
    "x:": "expiry recorded by the sweep, ms",
    "n:": "created, ms",
    "k:": "masked form of the secret (listings never decrypt)",
    "w:": "weight under the weighted policy (absent = 1)",
    "q:": "own max requests per minute ('' or absent = none)",
    "cw:": "current weight of the smooth weighted round robin (absent = 0)",
    "lu:": "the service's lseq at the key's last delivery (least_recently_used)",
    "f:": "failures (5xx, no response) reported in the current window (key health)",
    "fw:": "when that failure window started, ms",
    "b:": "the circuit breaker's consecutive openings (its backoff; cleared by a 2xx)",
    "dr:": "why a report disabled the key (cleared when a person enables it)",
    "r:": "the last report, JSON {status, error, at_ms}",
}
"""Per-key fields of a service hash: prefix + key id (`l:7`), prefix -> meaning."""

APP_FIELDS = (
    "name", "token", "allow", "allow_src", "max", "created_ms", "suspended", "token_imported",
)  # fmt: skip
"""The fields of {t:T}:app:<id>."""

USAGE_FIELDS: Mapping[str, str] = {
    "s:": "deliveries of a service today (s:<slug>)",
    "k:": "deliveries of a key today (k:<id>)",
    "a:": "deliveries to an app today (a:<id>)",
    "df:": "decrypt failures of a key today (df:<id>)",
    "sdf:": "decrypt failures of a service's keys today (sdf:<slug>)",
    "rp:": "reports of a service today by status class (rp:<slug>:<class>)",
    "lr:": "service.limit_reached recorded (lr:<slug>:<max>)",
    "lra:": "app.limit_reached recorded (lra:<app id>:<max>)",
    "lw:": "service.limit_warning recorded (lw:<slug>:<max>)",
    "ku:": "key.rotated (reason usage) recorded for a key (ku:<id>)",
}
"""Fields of {t:T}:use:<day>: prefix -> meaning (counters, then once-a-day event flags)."""

SESSION_FIELDS = ("created_ms", "seen_ms")
OPERATOR_SESSION_FIELDS = (*SESSION_FIELDS, "by")
EVENT_FIELDS = ("type", "data")
"""The fields of an {t:T}:events stream entry."""
AUDIT_FIELDS = ("r",)
"""The field of an audit stream entry: the record as JSON."""
KEYRING_FIELDS = ("canary",)
KEYRING_FIELD_PREFIXES = ("fp:",)
RESTORE_FIELDS = ("mac", "file", "tenants", "started_ms", "finished_ms")


def key_field(prefix: str, key_id: int | str) -> str:
    """A per-key field of a service hash (`key_field("l:", 7)` = 'l:7'); prefix in KEY_FIELDS."""
    assert prefix in KEY_FIELDS, prefix
    return prefix + str(key_id)


def usage_field(prefix: str, name: int | str) -> str:
    """A counter or flag of a usage hash (`usage_field("s:", "openai")`); prefix in USAGE_FIELDS."""
    assert prefix in USAGE_FIELDS, prefix
    return prefix + str(name)


# --- key names ----------------------------------------------------------------------------
SCHEMA = "kr:schema"
"""STRING: the data format version of the store (SCHEMA_VERSION; absent = 1)."""

TENANTS = "kr:tenants"
WEBHOOK_TENANTS = "kr:webhook_tenants"
TIME_SERVICES = "kr:time_services"
DEMO_TENANT = "kr:demo_tenant"
DELETING_TENANTS = "kr:deleting_tenants"
KEYRING = "kr:keyring"
OPERATOR_SESSION_PREFIX = "kr:opsession:"
SIGNIN_FAILURES_PREFIX = "kr:signin_fail:"
RESTORE = "kr:restore"
RESTORE_CLAIM = "kr:restore_claim"
TOKEN_INDEX_PREFIX = "kr:tok:"


def token_index(token_hash: str) -> str:
    """kr:tok:<sha256 hex of an imported token>: whose token it is (its own cluster slot)."""
    return TOKEN_INDEX_PREFIX + token_hash


AUDIT = "kr:audit"
AUTH_FAILURES_PREFIX = "kr:authfail:"


def tag(tenant: str) -> str:
    return "{t:" + tenant + "}"


def every_key_of(t: str) -> str:
    """SCAN MATCH pattern of every key of a tenant (tenant ids hold no glob characters)."""
    return tag(t) + ":*"


def tenant(t: str) -> str:
    return tag(t) + ":tenant"


def seq(t: str) -> str:
    return tag(t) + ":seq"


def services(t: str) -> str:
    return tag(t) + ":services"


def service(t: str, slug: str) -> str:
    return tag(t) + ":svc:" + slug


def apps(t: str) -> str:
    return tag(t) + ":apps"


def app(t: str, app_id: int | str) -> str:
    return tag(t) + ":app:" + str(app_id)


def usage_prefix(t: str) -> str:
    """The usage hashes' name without the day: scripts name today's hash from their clock."""
    return tag(t) + ":use:"


def usage(t: str, day: int) -> str:
    return usage_prefix(t) + str(day)


def gcra(t: str, ip_hex: str) -> str:
    return tag(t) + ":gcra:" + ip_hex


def service_window(t: str, slug: str) -> str:
    """The service's per-minute window (next_key.lua KEYS[8])."""
    return tag(t) + ":wins:" + slug


def key_window_prefix(t: str) -> str:
    """Key windows without the id: next_key.lua appends the key it checks (KEYS[9])."""
    return tag(t) + ":wink:"


def key_window(t: str, key_id: int | str) -> str:
    return key_window_prefix(t) + str(key_id)


def events(t: str) -> str:
    return tag(t) + ":events"


def audit(t: str) -> str:
    return tag(t) + ":audit"


def auth_failures(minute: int) -> str:
    """kr:authfail:<minutes since the epoch>."""
    return AUTH_FAILURES_PREFIX + str(minute)


def deliveries(t: str) -> str:
    return tag(t) + ":deliveries"


def request_record(t: str, request_id: str) -> str:
    return tag(t) + ":rid:" + request_id


def void(t: str) -> str:
    return tag(t) + ":void"


def time_service_member(t: str, slug: str) -> str:
    return t + ":" + slug


def session(t: str, secret_hash: str) -> str:
    return tag(t) + ":session:" + secret_hash


def sessions(t: str) -> str:
    return tag(t) + ":sessions"


def operator_session(secret_hash: str) -> str:
    return OPERATOR_SESSION_PREFIX + secret_hash


def signin_failures(client_ip: str) -> str:
    """The counter of `client_ip`: by its hex, IPv4 whole and IPv6 by its /64 (iprange). An
    address that is no IP (a proxy's `unknown` or obfuscated `_name`) counts by a digest of
    its text: one shared counter would let anyone's guesses lock every such client out."""
    address_hex = ip_hex(client_ip)
    if not address_hex:
        return SIGNIN_FAILURES_PREFIX + "n" + hashlib.sha256(client_ip.encode()).hexdigest()[:32]
    return SIGNIN_FAILURES_PREFIX + throttled_part(address_hex)


WORKER_ALIVE_PREFIX = "kr:worker_alive:"


def worker_alive(host: str) -> str:
    return WORKER_ALIVE_PREFIX + host
