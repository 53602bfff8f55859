"""Venue clients behind ``arbray.execution.venue.Venue``: Binance USD-M (live, testnet or the local simulator)."""

from arbray.venue.binance import (
    PRODUCTION_REST,
    PRODUCTION_WS,
    REJECT_REASONS,
    TESTNET_REST,
    TESTNET_WS,
    BinanceVenue,
    BinanceVenueConfig,
    ReconcileReport,
    VenueOrderView,
)
from arbray.venue.client_ids import ClientIdMap, wire_id
from arbray.venue.credentials import BinanceCredentials, CredentialsError
from arbray.venue.rest import BinanceApiError, BinanceRest

__all__ = [
    "PRODUCTION_REST", "PRODUCTION_WS", "REJECT_REASONS", "TESTNET_REST", "TESTNET_WS", "BinanceApiError",
    "BinanceCredentials", "BinanceRest", "BinanceVenue", "BinanceVenueConfig", "ClientIdMap", "CredentialsError",
    "ReconcileReport", "VenueOrderView", "wire_id",
]
