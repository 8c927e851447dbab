"""Instance generators: random geometric networks and the real EUA Melbourne topology."""

from gnnalloc.families.edge.generators._eua import JITTER_M, LINK_RADIUS_M, eua_instance, eua_positions
from gnnalloc.families.edge.generators._random import random_instance
from gnnalloc.families.edge.generators._synthesis import (
    MAX_SERVERS, MAX_USERS, SERVICES, hosted_services, radius_links, synthesise,
)

__all__ = [
    "eua_instance", "eua_positions", "hosted_services", "random_instance", "radius_links", "synthesise", "SERVICES",
    "LINK_RADIUS_M", "JITTER_M", "MAX_SERVERS", "MAX_USERS",
]
