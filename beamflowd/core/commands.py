"""The log contract: every replicated command, its fields and their meaning. This module IS the log format.

Wire form
    What the proposer hands to Raft and every replica applies is a plain dict of primitives (pysyncobj
    pickles it; the recorded logs in ``tests/fixtures/recorded`` are its JSON form)::

        {"v": 1, "op": "start", "wf": "w-1", "epoch": 2, "step": "a", "attempt": 1, "ts": 1700000000000}

    ``v`` is the schema version, ``op`` names one of the classes below, and every other key is a field of
    that class, spelled as on the wire. Values are ``str``, ``int``, ``bool``, lists and (for a definition)
    JSON objects; never objects of our classes, whose shape may change between versions. A field with a
    default may be absent; a field whose default is ``None`` is absent when unset (absence means something).

Building and reading
    Proposers build commands only through these constructors and send ``cmd.to_plain()``;
    ``StateMachine.apply`` reads them only through :func:`decode`, which checks the version, the op, that
    every required field is present, that no unknown field is, and each field's type (strictly: ``True`` is
    not an ``int``, an ``Enum`` is not a ``str``), and raises :class:`CommandError` naming the op and field.
    A malformed command is therefore refused before it touches the state, identically on every replica.

Versions
    :data:`SCHEMA_VERSION` is what this code writes; :data:`SUPPORTED_VERSIONS` is what it applies. A change
    of wire shape (a renamed or newly required field, a changed meaning) bumps the version, and ``decode``
    must keep accepting the previous one (converting it) for as long as a cluster may hold such entries:
    during a rolling upgrade, new nodes apply entries old nodes wrote. Adding an optional field whose absence
    means the old behaviour needs no bump. ``tests/unit/test_recorded_log.py`` guards v1.

Times are milliseconds since the Unix epoch, taken by the proposer (``ts``, ``*_ms``, ``wake``,
``retry_at``, ``before``); node ids are the ``--node-id`` of a member; ``wf`` is a workflow id.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import MISSING, dataclass, field, fields
from typing import Any, ClassVar, Final, TypeAlias

from beamflowd.core.vocabulary import DLQ_CLOSED, ID_CONFLICT_POLICIES, ID_REUSE_POLICIES

#: Version this code writes.
SCHEMA_VERSION: Final = 1
#: Versions this code applies (keep the previous one while a cluster may still hold its entries).
SUPPORTED_VERSIONS: Final = (1,)
#: Default bound on the workflows one ``gc`` command forgets, so one entry's apply time stays bounded.
GC_BATCH_MAX: Final = 10_000

#: Bounds on a workflow's labels (``Submit.labels``): count, key and value length.
LABELS_MAX: Final = 16
LABEL_KEY_CHARS_MAX: Final = 63
LABEL_VALUE_CHARS_MAX: Final = 255
_LABEL_KEY: Final = re.compile(r"^[A-Za-z][A-Za-z0-9_.-]{0,62}$")

#: How much of a bad value an error message quotes (an unknown op or field may be anything, of any size).
QUOTE_CHARS_MAX: Final = 40

#: ``(step_id, wake_ms)`` first attempts a command starts in the same entry (see :class:`Submit`).
Starts = tuple[tuple[str, int], ...]


class CommandError(ValueError):
    """A malformed command: ``op`` and ``field`` say where, ``message`` what is wrong."""

    def __init__(self, op: str, field: str, message: str) -> None:
        super().__init__(f"{op}.{field}: {message}")
        self.op = op
        self.field = field
        self.message = message


@dataclass(frozen=True, slots=True)
class _Command:
    """Base of all commands: the wire encoding, shared."""

    #: The ``op`` of this command on the wire.
    OP: ClassVar[str]

    def to_plain(self) -> dict[str, Any]:
        """The wire form: ``{"v": SCHEMA_VERSION, "op": OP, <field>: <value>, ...}``."""
        plain: dict[str, Any] = {"v": SCHEMA_VERSION, "op": self.OP}
        for name in _FIELD_NAMES[type(self)]:
            value = getattr(self, name)
            if value is None:
                continue  # an unset optional field is absent on the wire
            if name == "start":
                value = [[step_id, wake] for step_id, wake in value]
            plain[name] = value
        return plain

    def _check(self) -> None:
        """Rules across fields, beyond what each field's type says (none by default)."""


@dataclass(frozen=True, slots=True)
class Join(_Command):
    """A node announces itself (at start-up, retried until committed); also revives a dead member.

    A new member owns nothing yet; workflows of dead members move to whoever is alive after it.
    """

    OP: ClassVar[str] = "join"
    #: The joining node's id.
    node: str
    #: Its Raft address ``host:port``.
    raft: str
    #: Its gRPC address ``host:port``, where peers and clients reach it.
    grpc: str
    #: Proposer's clock; becomes the member's join time and last heartbeat.
    ts: int
    #: Started with ``beamflowd --join``: it must have been added (``member_add``) first. Absent: any id.
    existing: bool | None = None


@dataclass(frozen=True, slots=True)
class Submit(_Command):
    """A new workflow. Idempotent by ``rid``: a repeated request returns the workflow it created."""

    OP: ClassVar[str] = "submit"
    #: Client request id; the same id always answers with the same workflow.
    rid: str
    #: Workflow id (client-chosen or generated by the proposer).
    wf: str
    #: The validated definition in its plain form (``WorkflowSpec.to_plain()``); stored once per hash.
    #: A mutable dict (a frozen dataclass does not freeze it): treat it as read-only; excluded from hash.
    spec: dict[str, Any] = field(hash=False)
    #: Workflow input, as JSON text.
    input: str
    #: Proposer's clock: creation time.
    ts: int
    #: Proposing node (recorded in the history).
    node: str = ""
    #: Steps the proposer found ready, started in the same entry as ``(step_id, wake_ms)``; wake 0 runs at
    #: once, otherwise it is a durable timer's wake-up time. Re-checked by apply; unready ones are skipped.
    start: Starts = ()
    #: Content hash of ``spec`` (``spec_digest``); absent: apply computes it.
    spec_hash: str | None = None
    #: The workflow this one was resubmitted from (``beamctl workflow resubmit``); absent: none.
    origin: str | None = None
    #: When ``wf`` names a finished workflow: ``allow-duplicate`` replaces it, ``allow-duplicate-failed-only``
    #: only if it failed or was cancelled, ``reject-duplicate`` refuses. Absent: refuse (ALREADY_EXISTS).
    id_reuse: str | None = None
    #: When ``wf`` names a running workflow: ``fail`` (ALREADY_EXISTS, also when absent) or ``use-existing``
    #: (answer with it, ``existing`` true).
    id_conflict: str | None = None
    #: Labels ``{key: value}`` stored on the workflow, for finding it (``list --label k=v``); bounded by
    #: :data:`LABELS_MAX`, :data:`LABEL_KEY_CHARS_MAX`, :data:`LABEL_VALUE_CHARS_MAX`. Absent: none.
    labels: dict[str, Any] | None = field(default=None, hash=False)
    #: A node to own the workflow if it is among the least loaded live members: the proposer names the Raft
    #: leader it knows, whose actor then learns each commit first and proposes without a forwarding hop.
    #: Absent, unknown or more loaded than another live member: least loaded, ties broken by id.
    prefer: str | None = None
    #: The proposer, when it ran the root steps ahead of this submit (their results ride in the same
    #: entry): it owns the workflow whatever the loads, if a live member, so a race with other submits
    #: cannot make those attempts run twice. Absent or not a live member: placed as ``prefer`` says.
    owner: str | None = None

    def _check(self) -> None:
        if self.labels is not None:
            if len(self.labels) > LABELS_MAX:
                raise CommandError(self.OP, "labels", f"{len(self.labels)} labels, at most {LABELS_MAX}")
            for key, value in self.labels.items():
                if not _LABEL_KEY.match(key):
                    raise CommandError(
                        self.OP, "labels", f"key {key!r:.{QUOTE_CHARS_MAX}} must match {_LABEL_KEY.pattern}"
                    )
                if type(value) is not str or len(value) > LABEL_VALUE_CHARS_MAX:
                    raise CommandError(
                        self.OP,
                        "labels",
                        f"value of {key}: a string of at most {LABEL_VALUE_CHARS_MAX} characters",
                    )
        if self.id_reuse is not None and self.id_reuse not in ID_REUSE_POLICIES:
            raise CommandError(self.OP, "id_reuse", f"expected one of {', '.join(ID_REUSE_POLICIES)}")
        if self.id_conflict is not None and self.id_conflict not in ID_CONFLICT_POLICIES:
            raise CommandError(self.OP, "id_conflict", f"expected one of {', '.join(ID_CONFLICT_POLICIES)}")


@dataclass(frozen=True, slots=True)
class Start(_Command):
    """The owner starts attempt ``attempt`` of a step (pending or waiting to retry, needs succeeded)."""

    OP: ClassVar[str] = "start"
    #: Workflow id.
    wf: str
    #: Ownership epoch the owner holds; a stale one is rejected (fencing).
    epoch: int
    #: Step id.
    step: str
    #: The attempt being started: the step's attempts so far + 1.
    attempt: int
    #: Proposer's clock: the attempt's start time.
    ts: int
    #: Durable wake-up time of a timer step (sleep), 0 to run at once.
    wake: int = 0
    #: Proposing node.
    node: str = ""


@dataclass(frozen=True, slots=True)
class Succeed(_Command):
    """A running attempt succeeded; may start the steps this makes ready, in the same entry."""

    OP: ClassVar[str] = "succeed"
    wf: str
    epoch: int
    step: str
    #: The attempt that succeeded; must be the step's current, running attempt.
    attempt: int
    #: The step's output, as JSON text.
    output: str
    #: Proposer's clock: the attempt's end time.
    ts: int
    node: str = ""
    #: Dependents now ready, as in :attr:`Submit.start`.
    start: Starts = ()


@dataclass(frozen=True, slots=True)
class Fail(_Command):
    """A running attempt failed: retried at ``retry_at`` if the step's policy allows, else final."""

    OP: ClassVar[str] = "fail"
    wf: str
    epoch: int
    step: str
    attempt: int
    #: Error message (truncated by apply to ``MAX_EVENT_MESSAGE``).
    error: str
    #: Error class (``transient``, ``timeout``, ``permanent``, ...), matched against the retry policy.
    error_class: str
    ts: int
    node: str = ""
    #: Next attempt's committed time (backoff with jitter, drawn by the proposer); 0: do not retry.
    retry_at: int = 0
    #: Set when the attempt killed the process that ran it (class ``crashed`` or ``memory``): that counts as
    #: a delivery, and the step is ``poisoned`` once its deliveries reach this many. Absent: a normal
    #: failure, which resets the count (poison is consecutive deaths of what ran the step).
    deliveries_max: int | None = None
    #: Set: a final failure enters the dead-letter queue, which keeps at most this many entries (the
    #: node's ``dlq_max``). Absent: no entry (logs written before the queue existed apply as they did).
    dlq_max: int | None = None


@dataclass(frozen=True, slots=True)
class Redeliver(_Command):
    """A running attempt is about to run again because the process running it died (its owner restarted
    or was declared dead). Counted per step; at ``deliveries_max`` the step fails as ``poisoned`` instead,
    so a workflow that kills whatever runs it ends alone instead of walking the cluster."""

    OP: ClassVar[str] = "redeliver"
    wf: str
    epoch: int
    step: str
    attempt: int
    #: What happened to the previous delivery (for the history), e.g. "n2 restarted while running it".
    reason: str
    #: Deliveries that end the step as poisoned (the node's ``max_deliveries``).
    deliveries_max: int
    #: The step's delivery count the proposer saw; the command counts only if it is still so, so a
    #: proposal retried after an unknown outcome is not counted twice.
    seen: int
    ts: int
    #: The node that would run it now.
    node: str = ""
    #: Set: a final failure enters the dead-letter queue, which keeps at most this many entries (the
    #: node's ``dlq_max``). Absent: no entry (logs written before the queue existed apply as they did).
    dlq_max: int | None = None


@dataclass(frozen=True, slots=True)
class Cancel(_Command):
    """Cancel a workflow: its unfinished steps are cancelled. A finished workflow is left as it is."""

    OP: ClassVar[str] = "cancel"
    wf: str
    ts: int
    #: Why (shown as the workflow's error); empty: "cancelled by request".
    reason: str = ""
    node: str = ""
    #: Run the compensations of its succeeded steps first (saga), as a final failure would. Absent: no.
    compensate: bool | None = None


@dataclass(frozen=True, slots=True)
class Heartbeat(_Command):
    """A node is alive. Changes the state only when it revives a member declared dead."""

    OP: ClassVar[str] = "heartbeat"
    node: str
    ts: int


@dataclass(frozen=True, slots=True)
class NodeDown(_Command):
    """The leader declares a silent node dead; its workflows move to live nodes with a new epoch."""

    OP: ClassVar[str] = "node_down"
    #: The node declared dead.
    node: str
    ts: int
    #: The declaring node (the leader).
    by: str = ""
    #: The member's last heartbeat stamp when it was judged; if it changed since (it revived or rejoined),
    #: the declaration is stale and ignored. Absent: unconditional.
    since: int | None = None


@dataclass(frozen=True, slots=True)
class Abort(_Command):
    """The owner gives up on a workflow (its actor crashed too often): it fails. Fenced by epoch."""

    OP: ClassVar[str] = "abort"
    wf: str
    epoch: int
    #: Why (the workflow's error).
    reason: str
    ts: int
    node: str = ""
    #: Set: a final failure enters the dead-letter queue, which keeps at most this many entries (the
    #: node's ``dlq_max``). Absent: no entry (logs written before the queue existed apply as they did).
    dlq_max: int | None = None


@dataclass(frozen=True, slots=True)
class Gc(_Command):
    """Forget finished workflows last updated before ``before``, and the oldest beyond ``keep_max``."""

    OP: ClassVar[str] = "gc"
    #: Retention cut-off time.
    before: int
    #: Finished workflows to keep at most.
    keep_max: int
    ts: int
    #: At most this many workflows forgotten by this command (the rest by the next one).
    limit: int = GC_BATCH_MAX
    #: Take the oldest finished first, in O(collected). Absent (false): the first version's rule, a scan of
    #: every workflow taking terminal ones in submission order; kept so its log entries apply as they did.
    by_completion: bool = False


@dataclass(frozen=True, slots=True)
class ChaosMonkey(_Command):
    """The cluster-wide chaos monkey setting (replicated: it survives node deaths); disabled clears it."""

    OP: ClassVar[str] = "chaos_monkey"
    ts: int
    enabled: bool = False
    #: Fault profile name; required when enabled.
    profile: str = ""
    #: Whether the monkey may kill nodes.
    kill_nodes: bool = False
    #: Whether the monkey may partition the network.
    partitions: bool = False
    #: When the setting ends; 0: never.
    until_ms: int = 0
    #: The node that set it.
    node: str = ""

    def _check(self) -> None:
        if self.enabled and not self.profile:
            raise CommandError(self.OP, "profile", "required when enabled")


@dataclass(frozen=True, slots=True)
class MemberAdd(_Command):
    """An operator adds a member (``beamctl cluster member add``) before starting it with ``--join``.

    It is known but not alive (owns nothing, is never placed) until its own ``join`` commits. Idempotent:
    the same id with the same addresses is OK again; an id or address already taken otherwise is refused.
    """

    OP: ClassVar[str] = "member_add"
    node: str
    #: Its Raft address ``host:port``.
    raft: str
    #: Its gRPC address ``host:port``.
    grpc: str
    ts: int
    #: The node that proposed it.
    by: str = ""


@dataclass(frozen=True, slots=True)
class MemberRemove(_Command):
    """An operator removes a member: its workflows move as after a death, then it is forgotten.

    A removed id cannot ``join`` again unless it is added again. Removing an unknown id is OK (idempotent).
    """

    OP: ClassVar[str] = "member_remove"
    node: str
    ts: int
    by: str = ""


@dataclass(frozen=True, slots=True)
class Retry(_Command):
    """Run a failed or cancelled workflow again from its failed step, under a new epoch.

    Succeeded steps keep their outputs and never run again, except ``from_step`` and every step downstream of
    it when given; the reset steps continue their attempt numbers (idempotency keys are never reused). Its
    open dead-letter entry, if any, moves to ``retrying``. Idempotent by ``seen``.
    """

    OP: ClassVar[str] = "retry"
    wf: str
    #: The workflow's retry count the proposer saw (``retries``): the command applies only if it is still
    #: so, and a proposal retried after an unknown outcome finds ``seen + 1`` and changes nothing.
    seen: int
    #: Why (recorded in the ``retried`` event).
    reason: str
    ts: int
    #: Also re-run this succeeded step and everything downstream of it. Absent: only what did not succeed.
    from_step: str | None = None
    node: str = ""


@dataclass(frozen=True, slots=True)
class DlqClose(_Command):
    """An operator closes a pending dead-letter entry as ``resolved`` or ``abandoned`` (final)."""

    OP: ClassVar[str] = "dlq_close"
    #: The entry id.
    entry: str
    #: ``resolved`` or ``abandoned``.
    state: str
    #: Why (required, kept on the entry).
    reason: str
    ts: int
    node: str = ""

    def _check(self) -> None:
        if self.state not in DLQ_CLOSED:
            expected = " or ".join(sorted(DLQ_CLOSED))
            raise CommandError(
                self.OP, "state", f"expected {expected}, got {self.state!r:.{QUOTE_CHARS_MAX}}"
            )


@dataclass(frozen=True, slots=True)
class Pause(_Command):
    """Pause a running workflow: no new attempt starts (running ones finish and record their result; due
    retries and timers wait) until :class:`Resume`. Committed, so it survives failover and restarts."""

    OP: ClassVar[str] = "pause"
    wf: str
    ts: int
    #: Why (shown with the workflow).
    reason: str = ""
    node: str = ""


@dataclass(frozen=True, slots=True)
class Resume(_Command):
    """Resume a paused workflow: its owner starts what is ready again."""

    OP: ClassVar[str] = "resume"
    wf: str
    ts: int
    node: str = ""


@dataclass(frozen=True, slots=True)
class Expire(_Command):
    """The workflow's deadline (its ``timeout`` after submit, or after its latest retry), or a step's
    ``deadline`` (with :attr:`step`), has passed: it fails with ``deadline_exceeded``. Proposed by the
    owner with its clock in ``ts``; apply checks ``ts`` against the committed deadline (the core has no
    clock). Fenced by epoch like a step result."""

    OP: ClassVar[str] = "expire"
    wf: str
    epoch: int
    ts: int
    node: str = ""
    #: As in :attr:`Fail.dlq_max`.
    dlq_max: int | None = None
    #: Set: this step's own ``deadline`` (across all its attempts, from its first one's start) passed
    #: instead; the step fails with ``deadline_exceeded`` (never retried), then the workflow. Absent: the
    #: workflow's deadline.
    step: str | None = None


@dataclass(frozen=True, slots=True)
class Skip(_Command):
    """The owner decides a pending step will never run: its ``when`` is false (evaluated by the proposer on
    committed outputs), it is a branch its ``choice`` did not take, or its needs were skipped. Apply
    re-checks what it can without evaluating anything: the needs are done and let the step be skipped."""

    OP: ClassVar[str] = "skip"
    wf: str
    epoch: int
    step: str
    #: Why (the ``step_skipped`` event's message), e.g. "when ${{ input.vip }} is false".
    reason: str
    ts: int
    node: str = ""


@dataclass(frozen=True, slots=True)
class Signal(_Command):
    """A signal for a workflow (``beamctl workflow signal``), from any node; not fenced (not the owner's).

    Delivered at once to a running ``wait`` step for ``name`` (its payload becomes the step's output),
    else buffered until such a step starts (bounded). Idempotent by ``sid``: a retried signal is delivered
    once. The proposer checked the payload against the step's schema; apply checks the bounds.
    """

    OP: ClassVar[str] = "signal"
    wf: str
    #: The signal's name (a ``wait`` step's ``signal``).
    name: str
    #: The payload, as canonical JSON text.
    payload: str
    #: Signal request id: the same id is delivered once.
    sid: str
    ts: int
    node: str = ""


@dataclass(frozen=True, slots=True)
class ItemDone(_Command):
    """One instance of a running ``for_each`` step succeeded. The first of an attempt fixes the item count
    (the proposer evaluated the list on committed outputs); the last one makes the step succeed, with the
    list of instance outputs in item order. A repeated index changes nothing."""

    OP: ClassVar[str] = "item_done"
    wf: str
    epoch: int
    step: str
    attempt: int
    #: The item's position in the list, from 0.
    index: int
    #: Items in the list (at most FOR_EACH_ITEMS_MAX).
    count: int
    #: The instance's output, as JSON text.
    output: str
    ts: int
    node: str = ""


#: Phases of a :class:`Compensate`.
COMPENSATE_PHASES: Final = ("start", "succeed", "fail")


@dataclass(frozen=True, slots=True)
class Compensate(_Command):
    """The owner runs the compensation of a succeeded step after the workflow failed for good (saga):
    ``start`` an attempt, or record that it ``succeed``-ed or ``fail``-ed. Compensations run one at a time,
    newest completion first; apply refuses any other than the next one."""

    OP: ClassVar[str] = "compensate"
    wf: str
    epoch: int
    #: The step whose compensation this is.
    step: str
    attempt: int
    #: ``start``, ``succeed`` or ``fail``.
    phase: str
    ts: int
    node: str = ""
    #: For ``fail``: the error, its class, and the next attempt's committed time (0: do not retry).
    error: str = ""
    error_class: str = ""
    retry_at: int = 0

    def _check(self) -> None:
        if self.phase not in COMPENSATE_PHASES:
            raise CommandError(self.OP, "phase", f"expected one of {', '.join(COMPENSATE_PHASES)}")


Command: TypeAlias = (
    Join
    | Submit
    | Start
    | Succeed
    | Fail
    | Redeliver
    | Cancel
    | Heartbeat
    | NodeDown
    | Abort
    | Gc
    | ChaosMonkey
    | MemberAdd
    | MemberRemove
    | Retry
    | DlqClose
    | Pause
    | Resume
    | Expire
    | Skip
    | Signal
    | ItemDone
    | Compensate
)

_CLASSES: tuple[type[_Command], ...] = (
    Join,
    Submit,
    Start,
    Succeed,
    Fail,
    Redeliver,
    Cancel,
    Heartbeat,
    NodeDown,
    Abort,
    Gc,
    ChaosMonkey,
    MemberAdd,
    MemberRemove,
    Retry,
    DlqClose,
    Pause,
    Resume,
    Expire,
    Skip,
    Signal,
    ItemDone,
    Compensate,
)
#: op -> class.
COMMANDS: Final[Mapping[str, type[_Command]]] = {cls.OP: cls for cls in _CLASSES}


# ------------------------------------------------------------------------------------------- decoding
class _Bad(Exception):
    """A field's value has the wrong type (the message says what was expected)."""


def _got(value: Any) -> str:
    return type(value).__name__


def _int(value: Any) -> int:
    if type(value) is not int:  # bool and IntEnum are not ints on the wire
        raise _Bad(f"expected int, got {_got(value)}")
    return value


def _str(value: Any) -> str:
    if type(value) is not str:  # a str Enum would leak into digests and snapshots
        raise _Bad(f"expected str, got {_got(value)}")
    return value


def _bool(value: Any) -> bool:
    if type(value) is not bool:
        raise _Bad(f"expected bool, got {_got(value)}")
    return value


def _starts(value: Any) -> Starts:
    if type(value) not in (list, tuple):
        raise _Bad(f"expected a list of [step_id, wake_ms], got {_got(value)}")
    pairs = []
    for i, pair in enumerate(value):
        if type(pair) not in (list, tuple) or len(pair) != 2:
            raise _Bad(f"[{i}]: expected [step_id, wake_ms], got {pair!r:.{QUOTE_CHARS_MAX}}")
        step_id, wake = pair
        if type(step_id) is not str or type(wake) is not int:
            raise _Bad(f"[{i}]: expected [str, int], got [{_got(step_id)}, {_got(wake)}]")
        pairs.append((step_id, wake))
    return tuple(pairs)


def _object(value: Any) -> dict[str, Any]:
    if type(value) is not dict or not all(type(k) is str for k in value):
        raise _Bad(f"expected an object with string keys, got {_got(value)}")
    return value


#: Annotation (as written above) -> check-and-convert of a wire value. An annotation missing here fails at
#: import, so a new field cannot go unchecked.
_CHECKS: dict[str, Callable[[Any], Any]] = {
    "int": _int,
    "str": _str,
    "bool": _bool,
    "int | None": _int,
    "str | None": _str,
    "bool | None": _bool,
    "Starts": _starts,
    "dict[str, Any]": _object,
    "dict[str, Any] | None": _object,
}

#: Annotation -> the one type a value may have to be taken as is (the fast path of :func:`decode`).
_EXACT: dict[str, type] = {
    "int": int,
    "str": str,
    "bool": bool,
    "int | None": int,
    "str | None": str,
    "bool | None": bool,
}

_Field = tuple[str, bool, "type | None", Callable[[Any], Any]]  # (name, required, exact type, check)


def _table(cls: type[_Command]) -> tuple[_Field, ...]:
    table = []
    for f in fields(cls):
        annotation = str(f.type)
        if annotation not in _CHECKS:
            raise TypeError(f"{cls.__name__}.{f.name}: no wire check for type {annotation!r}")
        required = f.default is MISSING and f.default_factory is MISSING
        table.append((f.name, required, _EXACT.get(annotation), _CHECKS[annotation]))
    return tuple(table)


_FIELDS: dict[type[_Command], tuple[_Field, ...]] = {cls: _table(cls) for cls in _CLASSES}
_FIELD_NAMES: dict[type[_Command], tuple[str, ...]] = {
    cls: tuple(f[0] for f in table) for cls, table in _FIELDS.items()
}
_ABSENT = object()


def decode(plain: Mapping[str, Any]) -> Command:
    """The typed command of a wire-form dict, or :class:`CommandError` naming the op and field."""
    if not isinstance(plain, Mapping):
        raise CommandError("?", "op", f"expected a command object, got {_got(plain)}")
    op = plain.get("op")
    op_name = op if type(op) is str else "?"
    version = plain.get("v")
    if type(version) is not int or version not in SUPPORTED_VERSIONS:
        supported = ", ".join(map(str, SUPPORTED_VERSIONS))
        quoted = f"{version!r:.{QUOTE_CHARS_MAX}}"
        raise CommandError(op_name, "v", f"unsupported version {quoted} (supported: {supported})")
    cls = COMMANDS.get(op_name)
    if cls is None:
        raise CommandError(op_name, "op", f"unknown operation {op!r:.{QUOTE_CHARS_MAX}}")
    kwargs: dict[str, Any] = {}
    for name, required, exact, check in _FIELDS[cls]:
        value = plain.get(name, _ABSENT)
        if value is _ABSENT:
            if required:
                raise CommandError(op_name, name, "required field is missing")
        elif type(value) is exact:
            kwargs[name] = value
        else:
            try:
                kwargs[name] = check(value)
            except _Bad as exc:
                raise CommandError(op_name, name, str(exc)) from None
    if len(plain) != len(kwargs) + 2:
        extra = sorted(str(k) for k in plain if k not in kwargs and k not in ("v", "op"))
        raise CommandError(op_name, extra[0][:QUOTE_CHARS_MAX], "unknown field")
    cmd = cls(**kwargs)
    cmd._check()
    return cmd  # type: ignore[return-value]  # every class in COMMANDS is a member of Command
