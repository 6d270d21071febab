"""Sign in and out: a token typed into a form becomes a session cookie.

The tenant admin token is checked exactly as the API checks it (rotator/api/auth.py):
the tenant named by the token's prefix, and the SHA-256 of its secret compared in
constant time with the stored hash. Failed attempts are counted per client IP; once an
address used up its window it is told when to retry (Retry-After) and its attempts are
not even checked, so guessing stays slow whatever the guesses are.
"""

from __future__ import annotations

import hmac

from litestar import Controller, Request, Response, get, post
from litestar.params import FromQuery
from litestar.response import Redirect
from litestar.status_codes import HTTP_303_SEE_OTHER

from rotator import request_scope
from rotator.api.state import AppState
from rotator.console import auth
from rotator.console.forms import FormErrors, text
from rotator.console.pages import OPERATOR_SIGNIN, SIGNIN, page, see_other
from rotator.console.security import CONSOLE_PATH
from rotator.domain import tokens
from rotator.store import sessions, tenants

TENANT_FORM = {
    "title": "Sign in",
    "action": SIGNIN,
    "token_label": "Admin token",
    "token_hint": "The tenant admin token (it starts with kta_) that your operator gave you "
    "when your tenant was created.",
    "operator": False,
}
OPERATOR_FORM = {
    "title": "Operator sign in",
    "action": OPERATOR_SIGNIN,
    "token_label": "Operator token",
    "token_hint": "The value of ROTATOR_ADMIN_TOKEN (make run prints it).",
    "operator": True,
}
WRONG = "That token is not right. Check that you copied all of it."


def client_ip(request: Request, state: AppState) -> str:
    """The address the request scope resolved (api/request_id.py: every X-Forwarded-For
    line, from trusted proxies only), which the audit log records too."""
    scope = request_scope.current()
    if scope is not None and scope.address:
        return scope.address
    peer = request.scope["client"][0] if request.scope.get("client") else ""
    return state.client_ip.resolve(peer, None)


def throttled(form: dict, retry_after_s: int) -> Response:
    minutes = max(1, -(-retry_after_s // 60))
    response = page(
        "signin.html",
        status=429,
        errors=FormErrors(
            "token",
            f"Too many failed sign-ins from your address. Try again in {minutes} "
            f"minute{'s' if minutes != 1 else ''}.",
        ),
        **form,
    )
    response.headers["retry-after"] = str(retry_after_s)
    return response


def refused(attempt: sessions.SigninAttempt, form: dict) -> Response:
    """A wrong token: 401, or 429 when this failure used up the window."""
    if attempt.last:
        return throttled(form, attempt.wait_s)
    return page("signin.html", status=401, errors=FormErrors("token", WRONG), **form)


async def admin_token(state: AppState, given: str) -> tokens.ParsedToken | None:
    """`given` parsed when it is a tenant's admin token, else None (the API's check,
    rotator/api/auth)."""
    parsed = tokens.parse(given) if given else None
    if parsed is None or parsed.kind != tokens.ADMIN:
        return None
    stored = await state.call(tenants.admin_token_hash, parsed.tenant)
    return parsed if tokens.same_hash(stored, parsed.secret_hash) else None


class SignInPages(Controller):
    path = CONSOLE_PATH

    @get("/", include_in_schema=False)
    async def home(self) -> Response:
        return Redirect(CONSOLE_PATH + "/services", status_code=HTTP_303_SEE_OTHER)

    @get("/signin", include_in_schema=False)
    async def signin_form(self, notice: FromQuery[str | None] = None) -> Response:
        message = "You were signed out." if notice == "out" else None
        return page("signin.html", notice=message, errors=FormErrors(), **TENANT_FORM)

    @post("/signin", include_in_schema=False)
    async def signin(self, request: Request) -> Response:
        state = auth.state_of(request)
        address = client_ip(request, state)
        attempt = await state.call(sessions.claim_signin_attempt, address)
        if not attempt.checked:
            return throttled(TENANT_FORM, attempt.wait_s)
        given = text(await request.form(), "token").strip()
        admin = await admin_token(state, given)
        if admin is None:
            return refused(attempt, TENANT_FORM)
        tenant = admin.tenant
        secret = await state.call(
            sessions.open_tenant_session,
            tenant,
            admin_hash=admin.secret_hash,
            idle_ms=auth.idle_ms(state),
            max_ms=auth.max_ms(state),
        )
        if secret is None:  # the token was reissued as it was checked: it is an old one now
            return refused(attempt, TENANT_FORM)
        await state.call(sessions.forgive_signin_attempt, address)
        held = auth.parse_tenant_cookie(request.cookies.get(auth.TENANT_COOKIE))
        if held is not None:  # the cookie is replaced: its session ends with it
            await sessions.close_tenant_session(state.redis, *held)
        response = see_other(request, CONSOLE_PATH + "/services")
        response.set_cookie(
            auth.session_cookie(
                request,
                auth.TENANT_COOKIE,
                f"{tenant}.{secret}",
                CONSOLE_PATH,
                auth.max_ms(state) // 1000,
            )
        )
        return response

    @post("/signout", include_in_schema=False)
    async def signout(self, request: Request) -> Response:
        parsed = auth.parse_tenant_cookie(request.cookies.get(auth.TENANT_COOKIE))
        if parsed is not None:
            await sessions.close_tenant_session(auth.state_of(request).redis, *parsed)
        response = see_other(request, SIGNIN + "?notice=out")
        response.set_cookie(auth.expired_cookie(auth.TENANT_COOKIE, CONSOLE_PATH))
        return response


class OperatorSignInPages(Controller):
    path = auth.OPERATOR_PATH

    @get("/signin", include_in_schema=False)
    async def signin_form(self, request: Request, notice: FromQuery[str | None] = None) -> Response:
        state = auth.state_of(request)
        message = "You were signed out." if notice == "out" else None
        return page(
            "signin.html",
            notice=message,
            errors=FormErrors(),
            disabled=state.settings.admin_token is None,
            **OPERATOR_FORM,
        )

    @post("/signin", include_in_schema=False)
    async def signin(self, request: Request) -> Response:
        state = auth.state_of(request)
        expected = state.settings.admin_token
        if expected is None:
            return page("signin.html", status=404, disabled=True, **OPERATOR_FORM)
        address = client_ip(request, state)
        attempt = await state.call(sessions.claim_signin_attempt, address)
        if not attempt.checked:
            return throttled(OPERATOR_FORM, attempt.wait_s)
        given = text(await request.form(), "token").strip()
        if not hmac.compare_digest(given.encode(), expected.encode()):
            return refused(attempt, OPERATOR_FORM)
        await state.call(sessions.forgive_signin_attempt, address)
        held = request.cookies.get(auth.OPERATOR_COOKIE)
        if held and len(held) <= auth.MAX_SECRET_CHARS:  # replaced: its session ends with it
            await sessions.close_operator_session(state.redis, held)
        secret = await state.call(
            sessions.open_operator_session, expected, idle_ms=auth.idle_ms(state)
        )
        response = see_other(request, auth.OPERATOR_PATH)
        response.set_cookie(
            auth.session_cookie(
                request,
                auth.OPERATOR_COOKIE,
                secret,
                auth.OPERATOR_PATH,
                auth.max_ms(state) // 1000,
            )
        )
        return response

    @post("/signout", include_in_schema=False)
    async def signout(self, request: Request) -> Response:
        secret = request.cookies.get(auth.OPERATOR_COOKIE)
        if secret and len(secret) <= auth.MAX_SECRET_CHARS:
            await sessions.close_operator_session(auth.state_of(request).redis, secret)
        response = see_other(request, OPERATOR_SIGNIN + "?notice=out")
        response.set_cookie(auth.expired_cookie(auth.OPERATOR_COOKIE, auth.OPERATOR_PATH))
        return response
