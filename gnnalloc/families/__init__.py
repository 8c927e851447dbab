"""Problem families. Each subpackage exposing ``FAMILY`` (a :class:`gnnalloc.core.ProblemFamily`)
is registered by :func:`gnnalloc.core.families`; nothing here lists them."""
