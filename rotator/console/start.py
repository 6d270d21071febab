"""Get started: the hosted guide's curl, Python and Node snippets, filled in for this
server and this tenant's services, so the first key is one copy away.

Never a real token: the snippets carry a placeholder the user pastes the Client Access
Token into (tokens are shown only once, on the page that issued them).
"""

from __future__ import annotations

from litestar import Controller, Request, Response, get

from rotator.api.state import AppState
from rotator.console.auth import TENANT_PAGES, State, TenantId
from rotator.console.pages import page
from rotator.console.security import came_over_https
from rotator.store import services as store

TOKEN_PLACEHOLDER = "YOUR_TENANT_CLIENT_TOKEN"
EXAMPLE_SLUG = "openai"


def server_address(request: Request, state: AppState) -> str:
    base = str(request.base_url).rstrip("/")
    if base.startswith("http://") and came_over_https(request, state.client_ip):
        base = "https://" + base.removeprefix("http://")
    return base


def snippets(base: str, slug: str) -> dict[str, str]:
    url = f"{base}/v1/next"
    query = f"service={slug}&token={TOKEN_PLACEHOLDER}&mask=1"
    return {
        "curl": f'curl -s "{url}?{query}"',
        "python": (
            "import requests\n"
            f'r = requests.get("{url}", params={{"service": "{slug}", '
            f'"token": "{TOKEN_PLACEHOLDER}", "mask": "1"}})\n'
            "data = r.json()\n"
            'api_key = data["key"]'
        ),
        "node": (
            f'const res = await fetch("{url}?{query}");\n'
            "const data = await res.json();\n"
            "const apiKey = data.key; // masked if mask=1 (recommended)"
        ),
    }


class StartPage(Controller):
    path = "/app/start"
    dependencies = TENANT_PAGES

    @get("/", include_in_schema=False)
    async def start(self, request: Request, tenant: TenantId, app_state: State) -> Response:
        slugs = [s.slug for s in await app_state.call(store.list_services, tenant)]
        chosen = request.query_params.get("service", "")
        slug = chosen if chosen in slugs else (slugs[0] if slugs else EXAMPLE_SLUG)
        return page(
            "start.html",
            title="Get started",
            section="start",
            slugs=slugs,
            slug=slug,
            base=server_address(request, app_state),
            snippets=snippets(server_address(request, app_state), slug),
            placeholder=TOKEN_PLACEHOLDER,
        )
