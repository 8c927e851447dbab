"""The engine's core: the problem-family protocol and registry, the one dispatch ``solve``,
errors that name their field, JSON decoding, the alpha-fair utility kernel,
and the decorator of the compiled (numba) kernels."""

from gnnalloc.core._compiled import compiled
from gnnalloc.core._errors import (
    MAX_COUNT, MAX_SEED, MAX_TIME_LIMIT, AllocationError, InputError, InstanceError, SolverError, check_allocation_types,
    check_bound, check_count, check_fraction, check_nonnegative, check_positive, check_seed, check_time_limit, cut_message, is_real,
)
from gnnalloc.core._family import Generator, Method, ProblemFamily, Score, Setting, SolveResult
from gnnalloc.core._fields import (
    entries_by_id, list_field, number_field, object_field, required_field, string_field,
)
from gnnalloc.core._json import NonFiniteLiteral, decode_json, parse_document, read_document
from gnnalloc.core._registry import (
    allocation_formats, check_method, check_options, families, family_for_format, family_of, get_family,
    load_instance, offered_options, parse_instance, register_family, score, solve,
)
from gnnalloc.core._threads import THREADS_ENV, configure_threads
from gnnalloc.core._utility import resource_utility
from gnnalloc.core._vectors import as_nonnegative_vector

__all__ = [
    "MAX_COUNT", "MAX_SEED", "MAX_TIME_LIMIT", "AllocationError", "Generator", "as_nonnegative_vector", "InputError", "InstanceError", "Method", "NonFiniteLiteral", "ProblemFamily", "Score",
    "SolveResult", "SolverError", "THREADS_ENV", "check_allocation_types", "check_bound", "check_count", "check_method", "check_options", "check_fraction", "check_nonnegative",
    "check_positive", "check_seed", "check_time_limit", "compiled", "configure_threads", "cut_message", "entries_by_id", "list_field", "number_field", "object_field",
    "required_field", "string_field",
    "allocation_formats", "decode_json", "families", "family_for_format", "family_of", "get_family", "is_real",
    "load_instance", "offered_options", "parse_document", "parse_instance", "read_document", "register_family",
    "resource_utility", "score", "Setting", "solve",
]
