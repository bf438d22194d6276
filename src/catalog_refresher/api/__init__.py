"""The HTTP API (contract section 6): ``create_app`` builds it over a running service."""

from catalog_refresher.api.app import create_app

__all__ = ["create_app"]
