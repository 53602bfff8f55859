"""The control plane's FastAPI app: strategy factory, market, trading, risk, system and job endpoints,
bearer-token auth and the web dashboard. Ray-free: ``arbray.actors.serve`` mounts it on Ray Serve."""

from arbray.api.app import create_app
from arbray.api.context import ApiContext
from arbray.api.settings import ApiSettings

__all__ = ["ApiContext", "ApiSettings", "create_app"]
