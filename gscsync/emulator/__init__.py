"""A local emulator of the Search Console API, for the demo, tests and benchmarks."""

from gscsync.emulator.data import SiteData
from gscsync.emulator.keys import ServiceAccountKey, new_service_account_key
from gscsync.emulator.server import Emulator, EmulatorConfig, EmulatorServer, Faults

DEMO_SITES = (
    "sc-domain:demo-shop.example",
    "https://blog.demo.example/",
    "sc-domain:news.demo.example",
)

__all__ = [
    "DEMO_SITES",
    "Emulator",
    "EmulatorConfig",
    "EmulatorServer",
    "Faults",
    "ServiceAccountKey",
    "SiteData",
    "new_service_account_key",
]
