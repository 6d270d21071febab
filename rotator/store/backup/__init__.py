"""`rotator backup` / `rotator restore`: every tenant's data in one portable, checked file.

- format.py    the file: JSON lines (header, one line per tenant, end record), each line
               authenticated by a chained HMAC-SHA256 under a key derived from a master key
- selection.py which of a tenant's keys are data (backed up) and which are left out
- snapshot.py  reading one tenant in one script (backup_read.lua): each tenant as of its
               own instant, never half-changed
- derived.py   what a tenant's keys imply elsewhere: global registries, sealed secrets
- dump.py      the backup: every tenant, spooled, then written with its MACs and renamed
- load.py      the restore: the whole file verified first, then each tenant in one script
               (restore_tenant.lua)

Operator's view and the decisions behind it: docs/operations.md, "Backup and restore".
"""
