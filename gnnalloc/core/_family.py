"""The problem-family interface: what a family hands to the generic engine.

A *family* is one allocation problem (edge compute + bandwidth, wireless power control, ...). The
engine (``solve``, the CLI, the HTTP server, evaluation, training) never imports a family's
modules: it looks the family up by the ``format`` string of an instance document and calls the
members of :class:`ProblemFamily`. As in cvxpylayers, where the problem is a value handed to the
machinery, a family is a value handed to the engine.

Every family *maximises* an objective (a sum of per-user utilities); a minimisation problem
(e.g. round latency) reports the negated cost, so that a proven ``upper_bound`` on the optimal
objective always certifies ``upper_bound - objective`` as the largest possible shortfall.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Mapping, Protocol, runtime_checkable

__all__ = ["Generator", "Method", "ProblemFamily", "Score", "Setting", "SolveResult"]


@dataclass(frozen=True)
class SolveResult:
    """An allocation with how it was obtained, the same for every method of every family.

    Args:
        allocation: the family's allocation object.
        method: the method's name.
        seconds: wall time of the method (model loading excluded).
        status: solver status (``"optimal"`` for a certified exact solve, ``"ok"`` otherwise).
        certified_optimal: whether the allocation is a certified global optimum.
        upper_bound: a proven upper bound on the optimal objective, or ``None`` if the method
            proves none; ``upper_bound - objective`` bounds how far the answer is from optimal.
    """

    allocation: Any
    method: str
    seconds: float
    status: str = "ok"
    certified_optimal: bool = False
    upper_bound: float | None = None


def _any_model(model: Any) -> bool:
    return True


@dataclass(frozen=True)
class Method:
    """One way to allocate an instance of a family.

    Args:
        name: the name users pass as ``method`` (``"exact"``, ``"gnn"``, ...).
        run: ``run(instance, **options) -> SolveResult``; raises
            :class:`~gnnalloc.core.InputError` naming an unknown or bad option, or the field of an
            instance it does not handle (the CLI's exit 2, the server's 422), and
            :class:`~gnnalloc.core.SolverError` when it fails on a valid request (exit 3, a 422
            naming ``method``); anything else is reported as a bug (a traceback, a 500).
        description: one line for ``--help`` and the server's ``/v1/methods``.
        options: names of the keyword options ``run`` accepts (besides ``instance``).
        kind: ``"reference"`` (exact or the classical algorithm results are compared with),
            ``"classical"``, ``"baseline"`` or ``"learned"``.
        accepts: for a method with an ``allocator`` option, whether a model loaded for the family
            (the server's ``--checkpoint``, or its shipped model) suits it (default: any model);
            the server hands the model over only then, and otherwise the method uses its own.
    """

    name: str
    run: Callable[..., SolveResult]
    description: str
    options: tuple[str, ...] = ()
    kind: str = "classical"
    accepts: Callable[[Any], bool] = _any_model


@dataclass(frozen=True)
class Setting:
    """One keyword setting of a :class:`Generator` (the CLI makes it a ``--name`` flag).

    Args:
        name: the keyword (``"load"``, ``"servers"``).
        type: ``int``, ``float`` or ``str``: how a flag's text is converted.
        default: its value when not given.
        help: one line for ``--help``.
    """

    name: str
    type: type
    default: Any
    help: str = ""


@dataclass(frozen=True)
class Generator:
    """An instance generator of a family: ``generator(size, seed, **settings) -> instance``.

    Args:
        name: what users type (``gnnalloc generate NAME``).
        make: ``make(size, seed, **settings)``; raises :class:`~gnnalloc.core.InputError` naming a bad setting.
        description: one line for ``--help``.
        size: what ``size`` counts, the CLI's required flag (``"users"`` -> ``--users``).
        settings: the keyword settings ``make`` takes, with defaults.

    A family may also list plain callables ``f(size, seed=0, *, setting=default, ...)``: the CLI
    then reads the size name and the settings from the signature.
    """

    name: str
    make: Callable[..., Any]
    description: str = ""
    size: str = "size"
    settings: tuple[Setting, ...] = ()

    def __call__(self, size: int, seed: int = 0, **settings: Any) -> Any:
        return self.make(size, seed, **settings)


@runtime_checkable
class Score(Protocol):
    """What every family's score report offers the engine (a family adds its own metrics)."""

    objective: float
    gap: float | None
    gap_bound: float | None
    max_violation: float

    def as_dict(self) -> dict[str, Any]:
        """Every metric by name (the server's ``metrics`` object)."""
        ...

    def rows(self) -> list[tuple[str, str]]:
        """``(label, formatted value)`` lines for the command line's summary."""
        ...


@runtime_checkable
class ProblemFamily(Protocol):
    """The contract between a problem family and the engine.

    Attributes:
        name: short name (``"edge"``, ``"power"``), used by configs, checkpoints and the CLI.
        title: one line describing the problem.
        instance_format: the ``format`` string of its instance documents.
        allocation_format: the ``format`` string of its allocation documents.
        instance_type: the class of its instances (``family_of(instance)`` dispatches on it).
        methods: its methods by name; ``gnn`` is the learned one.
        reference_method: the method gaps are measured against (``"exact"``, ``"wmmse"``).
        generators: instance generators by name, each ``generator(size, seed, **settings) ->
            instance`` (a :class:`Generator`, or a plain callable with that signature).
        value_ranges: the serving ranges of its numbers, ``name -> (lowest nonzero, highest)``.
        instance_schema: a pydantic model of the instance document, for OpenAPI.
        default_checkpoint: the shipped model of its ``gnn`` method, or ``None``.

    Optional members the engine uses when present: ``extra_allocation_formats`` (the ``format``
    strings of further allocation documents ``parse_allocation`` reads and ``dump_allocation``
    writes, e.g. the power family's time-sharing frames), ``load_allocation(instance, path)``,
    ``allocation_schema`` (a pydantic model of the allocation document, or a tuple of them, one
    per allocation format, for OpenAPI),
    ``load_allocator(checkpoint_data, path)`` (the model of a checkpoint recording this family),
    ``warm_up()`` (lazy set-up a server pays before its first request), ``demo(out_dir) -> int``
    (its section of ``gnnalloc demo``), ``evaluate(args) -> int`` (``gnnalloc evaluate`` for its
    checkpoints) with ``evaluate_flags`` (the options of the command it reads),
    ``lightning_classes() -> (module, data module)`` and ``lightning_links`` (``gnnalloc fit``
    with ``family: NAME`` in the config).
    """

    name: str
    title: str
    instance_format: str
    allocation_format: str
    instance_type: type
    methods: Mapping[str, Method]
    reference_method: str
    generators: Mapping[str, Callable[..., Any]]
    value_ranges: Mapping[str, tuple[float, float]]
    instance_schema: type
    default_checkpoint: Path | None

    def parse_instance(self, data: Any) -> Any:
        """An instance from a decoded JSON document; ``InstanceError`` names the bad field."""
        ...

    def dump_instance(self, instance: Any) -> dict[str, Any]:
        """The JSON document of ``instance`` (``parse_instance`` inverts it)."""
        ...

    def parse_allocation(self, instance: Any, data: Any) -> Any:
        """An allocation of ``instance``; ``AllocationError`` names the bad field."""
        ...

    def dump_allocation(self, instance: Any, allocation: Any) -> dict[str, Any]:
        """The JSON document of ``allocation``."""
        ...

    def size(self, instance: Any) -> int:
        """The number of decision-makers (users, links, clients): what serving limits count."""
        ...

    def check_ranges(self, instance: Any, ranges: Mapping[str, tuple[float, float]]) -> None:
        """Raise ``InstanceError`` naming the first number outside ``ranges``."""
        ...

    def score(
        self, instance: Any, allocation: Any, reference: Any | None = None,
        upper_bound: float | None = None,
    ) -> Score:
        """Quality and fairness of ``allocation`` (gap to ``reference`` and proven gap bound
        from ``upper_bound`` when given)."""
        ...
