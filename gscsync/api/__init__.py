"""Talking to the Search Console API: auth, the client and its retry policy, the rate
limiter and the circuit breaker. Nothing here touches storage."""

from gscsync.api.auth import load_credentials
from gscsync.api.breaker import Breaker
from gscsync.api.client import GscClient, Site
from gscsync.api.session import identity, open_client

__all__ = ["Breaker", "GscClient", "Site", "identity", "load_credentials", "open_client"]
