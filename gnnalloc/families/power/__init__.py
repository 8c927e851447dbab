"""The wireless power-control family (``gnnalloc.power/v1``): K links share a band and choose
transmit powers; see :mod:`gnnalloc.families.power.functional` for the rate model."""
