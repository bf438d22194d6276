"""catalog-refresher: keeps a product catalog current from ten external systems."""

__version__ = "0.1.0"
