"""Management API ("the app"): operator, tenant settings, services, keys, apps."""

ROUTES: list = []
