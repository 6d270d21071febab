"""Management API ("the app"): operator, tenant settings, services, keys, apps.

`ROUTES` is a plain list: each management module's controllers are appended here.
Controllers subclass rotator.api.auth.TenantAdminBase or OperatorBase (their guards).
"""

from rotator.api.management.apps import AppController
from rotator.api.management.audit import AuditController
from rotator.api.management.imports import ImportController
from rotator.api.management.keys import KeyController
from rotator.api.management.operator import OperatorController
from rotator.api.management.rotation import RotationController
from rotator.api.management.services import ServiceController
from rotator.api.management.tenant import TenantController
from rotator.api.management.usage import UsageController
from rotator.api.management.webhooks import WebhookController

ROUTES: list = [
    OperatorController,
    TenantController,
    ServiceController,
    KeyController,
    ImportController,
    AppController,
    RotationController,
    UsageController,
    WebhookController,
    AuditController,
]
