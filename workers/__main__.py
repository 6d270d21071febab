"""`python -m workers`: a worker configured from ROTATOR_* variables (same as `rotator worker`)."""

from rotator.settings import Settings, SettingsError
from workers import run_worker

if __name__ == "__main__":
    try:
        settings = Settings.from_env()
    except SettingsError as exc:
        raise SystemExit(f"rotator worker: {exc}") from None
    run_worker(settings)
