"""The states of a deployment plan and of a stage, the moves allowed between them, and the
questions people ask of them ("is it prepared?", "may it still be aborted?", "does it hold its
target?").

This is the only place where a state is spelled. Everything else — services, pages, templates,
raw SQL, the API's LifeTime words, database constraints — asks here. Pure: no model, no query.

A plan's **state** is what people talk about (Prepared, Suspended, past the point of no return…);
LifeTime's API speaks of a ``DeploymentStatus`` plus an ``Info`` for ``needs_user_intervention``:
both are derived from the state (``api_status``).
"""

from __future__ import annotations

from django.db import models


class PlanState(models.TextChoices):
    SAVED = "saved", "Saved"
    # Started while its target was held (queue on): waits its turn, first in first out, and starts
    # Prepare (or Deploy Now) when the target can take it. Holds nothing.
    QUEUED = "queued", "Queued"
    # Prepare (or the first stage of Deploy Now) runs; Abort stops it at the next safe point.
    PREPARING = "preparing", "Preparing"
    # Prepare finished on a two-stage target: binaries on every front-end, nothing running changed.
    PREPARED = "prepared", "Prepared"
    # Prepared, with Continue scheduled at a set time (beat starts it then).
    SCHEDULED = "scheduled", "Prepared, Continue scheduled"
    # A stage stopped on something a person must look at; Continue, Prepare Again or Abort.
    SUSPENDED = "suspended", "Needs intervention"
    # Continue runs, before its first change to the target: Abort still possible.
    CONTINUING = "continuing", "Continuing"
    # Continue has changed the target (the point of no return): it can only finish.
    APPLYING = "applying", "Applying (past the point of no return)"
    ABORTING = "aborting", "Aborting"
    ABORTED = "aborted", "Aborted"
    FINISHED_SUCCESSFUL = "finished_successful", "Finished successful"
    FINISHED_WITH_WARNINGS = "finished_with_warnings", "Finished with warnings"
    FINISHED_WITH_ERRORS = "finished_with_errors", "Finished with errors"
    # Roll Back of a finished plan: every front-end switches back to the releases that ran before it.
    ROLLING_BACK = "rolling_back", "Rolling back"
    # The plan's applications run the versions that ran before it again (its SQL stays: it only added).
    ROLLED_BACK = "rolled_back", "Rolled back"


P = PlanState

FINISHED: frozenset[str] = frozenset({P.FINISHED_SUCCESSFUL, P.FINISHED_WITH_WARNINGS, P.FINISHED_WITH_ERRORS})
FINAL: frozenset[str] = FINISHED | {P.ABORTED, P.ROLLED_BACK}
# A stage of the plan runs (or is queued): the page polls fast, the board shows the step.
RUNNING: frozenset[str] = frozenset({P.PREPARING, P.CONTINUING, P.APPLYING, P.ABORTING, P.ROLLING_BACK})
# Waiting for a person: Continue, Prepare Again, Abort, or expiry.
WAITING: frozenset[str] = frozenset({P.PREPARED, P.SCHEDULED, P.SUSPENDED})
# Prepared and not yet continued (scheduled or not).
PREPARED: frozenset[str] = frozenset({P.PREPARED, P.SCHEDULED})
# A plan in one of these holds its target environment: another plan may start there only when the
# target allows several at once and the plans share no application and no dependency.
HOLDING: frozenset[str] = RUNNING | WAITING
# Abort is allowed until Continue changes the target.
ABORTABLE: frozenset[str] = frozenset({P.PREPARING, P.CONTINUING, P.QUEUED}) | WAITING
# Nothing runs for these: Abort moves them straight to aborted.
ABORTS_AT_ONCE: frozenset[str] = WAITING | {P.QUEUED}
# Abort of a plan whose stage runs asks the stage to stop (aborting); a waiting plan aborts at once.
ABORT_ASKS_STAGE: frozenset[str] = frozenset({P.PREPARING, P.CONTINUING})
# Continue Deployment applies to these.
CONTINUABLE: frozenset[str] = WAITING
# Prepare Again applies to these.
PREPARABLE_AGAIN: frozenset[str] = WAITING
# A prepared plan expires after its target's time limit.
EXPIRABLE: frozenset[str] = WAITING
# A stage that fails finishes the plan with errors from any of these.
FAILABLE: frozenset[str] = frozenset({P.PREPARING, P.CONTINUING, P.APPLYING})
# A failure a person can act on (the target changed, say) suspends the plan instead, until Continue
# has changed the target.
SUSPENDABLE: frozenset[str] = frozenset({P.PREPARING, P.CONTINUING})
# A Continue is moving the target's front-ends: their links are in flux, not drifted.
SWITCHING: frozenset[str] = frozenset({P.CONTINUING, P.APPLYING})
# Roll Back applies to a finished plan (whether its switch happened is the service's question).
ROLLBACKABLE: frozenset[str] = FINISHED

PLAN_MOVES: dict[str, frozenset[str]] = {
    P.SAVED: frozenset({P.PREPARING, P.QUEUED}),
    P.QUEUED: frozenset({P.PREPARING, P.ABORTED}),
    P.PREPARING: frozenset({P.PREPARED, P.CONTINUING, P.SUSPENDED, P.ABORTING, P.ABORTED, P.FINISHED_WITH_ERRORS}),
    P.PREPARED: frozenset({P.PREPARING, P.CONTINUING, P.SCHEDULED, P.ABORTED}),
    P.SCHEDULED: frozenset({P.PREPARED, P.PREPARING, P.CONTINUING, P.ABORTED}),
    P.SUSPENDED: frozenset({P.PREPARING, P.CONTINUING, P.ABORTED}),
    P.CONTINUING: frozenset({P.APPLYING, P.SUSPENDED, P.ABORTING, P.ABORTED, P.FINISHED_WITH_ERRORS}),
    P.APPLYING: FINISHED,
    P.ABORTING: frozenset({P.ABORTED}),
    # Retry: an aborted plan is saved again, its operations kept.
    P.ABORTED: frozenset({P.SAVED}),
    P.FINISHED_SUCCESSFUL: frozenset({P.ROLLING_BACK}),
    P.FINISHED_WITH_WARNINGS: frozenset({P.ROLLING_BACK}),
    P.FINISHED_WITH_ERRORS: frozenset({P.ROLLING_BACK}),
    # A failed Roll Back put every front-end back on the plan's releases: the plan is finished as before.
    P.ROLLING_BACK: FINISHED | {P.ROLLED_BACK},
    P.ROLLED_BACK: frozenset(),
}


def plan_may_move(source: str, to: str) -> bool:
    return to in PLAN_MOVES.get(source, frozenset())


# --- questions --------------------------------------------------------------------------------


def is_final(state: str) -> bool:
    return state in FINAL


def is_saved(state: str) -> bool:
    return state == P.SAVED


def is_prepared(state: str) -> bool:
    return state in PREPARED


def is_scheduled(state: str) -> bool:
    return state == P.SCHEDULED


def is_suspended(state: str) -> bool:
    return state == P.SUSPENDED


def is_queued(state: str) -> bool:
    return state == P.QUEUED


def is_running(state: str) -> bool:
    return state in RUNNING


def is_aborted(state: str) -> bool:
    return state == P.ABORTED


def is_waiting(state: str) -> bool:
    return state in WAITING


def holds_target(state: str) -> bool:
    return state in HOLDING


def may_abort(state: str) -> bool:
    return state in ABORTABLE


def may_continue(state: str) -> bool:
    return state in CONTINUABLE


def may_prepare_again(state: str) -> bool:
    return state in PREPARABLE_AGAIN


def may_retry(state: str) -> bool:
    return state == P.ABORTED


def past_point_of_no_return(state: str) -> bool:
    return state == P.APPLYING


def may_roll_back(state: str) -> bool:
    return state in ROLLBACKABLE


def is_rolling_back(state: str) -> bool:
    return state == P.ROLLING_BACK


def is_rolled_back(state: str) -> bool:
    return state == P.ROLLED_BACK


def label(state: str) -> str:
    try:
        return P(state).label
    except ValueError:
        return state


# (label, css class) as the pages tag a plan.
_TAGS: dict[str, tuple[str, str]] = {
    P.SAVED: ("Saved", "saved"),
    P.QUEUED: ("Queued", "saved"),
    P.PREPARING: ("Running", "running"),
    P.CONTINUING: ("Running", "running"),
    P.APPLYING: ("Running", "running"),
    P.PREPARED: ("Prepared", "prepared"),
    P.SCHEDULED: ("Prepared", "prepared"),
    P.SUSPENDED: ("Needs intervention", "warnings"),
    P.ABORTING: ("Aborting", "running"),
    P.ABORTED: ("Aborted", "aborted"),
    P.FINISHED_SUCCESSFUL: ("Finished successful", "successful"),
    P.FINISHED_WITH_WARNINGS: ("Finished with warnings", "warnings"),
    P.FINISHED_WITH_ERRORS: ("Finished with errors", "errors"),
    P.ROLLING_BACK: ("Rolling back", "running"),
    P.ROLLED_BACK: ("Rolled back", "aborted"),
}


def tag(state: str) -> tuple[str, str]:
    return _TAGS.get(state, (state, ""))


# What the plans list offers to filter by: the tags people see, each a set of states.
FILTERS: dict[str, tuple[str, frozenset[str]]] = {
    "saved": ("Saved", frozenset({P.SAVED})),
    "queued": ("Queued", frozenset({P.QUEUED})),
    "running": ("Running", frozenset({P.PREPARING, P.CONTINUING, P.APPLYING})),
    "prepared": ("Prepared", PREPARED),
    "suspended": ("Needs intervention", frozenset({P.SUSPENDED})),
    "aborting": ("Aborting", frozenset({P.ABORTING})),
    "aborted": ("Aborted", frozenset({P.ABORTED})),
    "finished_successful": ("Finished successful", frozenset({P.FINISHED_SUCCESSFUL})),
    "finished_with_warnings": ("Finished with warnings", frozenset({P.FINISHED_WITH_WARNINGS})),
    "finished_with_errors": ("Finished with errors", frozenset({P.FINISHED_WITH_ERRORS})),
    "rolled_back": ("Rolled back", frozenset({P.ROLLING_BACK, P.ROLLED_BACK})),
}


# --- LifeTime's words, for the API ------------------------------------------------------------


class ApiStatus(models.TextChoices):
    """LifeTime's ``DeploymentStatus``."""

    SAVED = "saved", "Saved"
    RUNNING = "running", "Running"
    NEEDS_USER_INTERVENTION = "needs_user_intervention", "Needs user intervention"
    ABORTING = "aborting", "Aborting"
    ABORTED = "aborted", "Aborted"
    FINISHED_SUCCESSFUL = "finished_successful", "Finished successful"
    FINISHED_WITH_WARNINGS = "finished_with_warnings", "Finished with warnings"
    FINISHED_WITH_ERRORS = "finished_with_errors", "Finished with errors"
    # Beyond LifeTime: the plan was rolled back (its applications run what ran before it).
    ROLLED_BACK = "rolled_back", "Rolled back"


class ApiInfo(models.TextChoices):
    """LifeTime's ``Info`` of a ``needs_user_intervention`` plan."""

    PREPARED = "deployment_prepared", "Deployment prepared"
    SUSPENDED = "deployment_suspended", "Deployment suspended"
    # An extension: a running plan waiting in its target's queue. LifeTime's clients read any
    # status but running and needs_user_intervention as the end, so a queued plan is "running".
    QUEUED = "queued", "Queued"


_API: dict[str, tuple[str, str]] = {
    P.SAVED: (ApiStatus.SAVED, ""),
    P.QUEUED: (ApiStatus.RUNNING, ApiInfo.QUEUED),
    P.PREPARING: (ApiStatus.RUNNING, ""),
    P.CONTINUING: (ApiStatus.RUNNING, ""),
    P.APPLYING: (ApiStatus.RUNNING, ""),
    P.PREPARED: (ApiStatus.NEEDS_USER_INTERVENTION, ApiInfo.PREPARED),
    P.SCHEDULED: (ApiStatus.NEEDS_USER_INTERVENTION, ApiInfo.PREPARED),
    P.SUSPENDED: (ApiStatus.NEEDS_USER_INTERVENTION, ApiInfo.SUSPENDED),
    P.ABORTING: (ApiStatus.ABORTING, ""),
    P.ABORTED: (ApiStatus.ABORTED, ""),
    P.FINISHED_SUCCESSFUL: (ApiStatus.FINISHED_SUCCESSFUL, ""),
    P.FINISHED_WITH_WARNINGS: (ApiStatus.FINISHED_WITH_WARNINGS, ""),
    P.FINISHED_WITH_ERRORS: (ApiStatus.FINISHED_WITH_ERRORS, ""),
    P.ROLLING_BACK: (ApiStatus.RUNNING, ""),
    P.ROLLED_BACK: (ApiStatus.ROLLED_BACK, ""),
}


def api_status(state: str) -> tuple[str, str]:
    """(LifeTime ``DeploymentStatus``, ``Info``) of a plan in ``state``."""
    return _API[state]


def states_for_api_status(status: str) -> frozenset[str]:
    """The states LifeTime's ``status`` covers (the API's status filter)."""
    return frozenset(state for state, (api, _info) in _API.items() if api == status)


# API statuses of plans that are not over (the API lists them whatever their dates).
NOT_OVER: frozenset[str] = frozenset({P.SAVED, P.QUEUED}) | HOLDING


# --- stages ------------------------------------------------------------------------------------


class StageState(models.TextChoices):
    QUEUED = "queued", "Queued"
    RUNNING = "running", "Running"
    SUCCEEDED = "succeeded", "Succeeded"
    FAILED = "failed", "Failed"
    ERRORED = "errored", "Errored"
    CANCELLED = "cancelled", "Cancelled"


T = StageState

STAGE_FINAL: frozenset[str] = frozenset({T.SUCCEEDED, T.FAILED, T.ERRORED, T.CANCELLED})
STAGE_ACTIVE: frozenset[str] = frozenset({T.QUEUED, T.RUNNING})

STAGE_MOVES: dict[str, frozenset[str]] = {
    # Claimed by a worker, or cancelled by an Abort before any worker took it.
    T.QUEUED: frozenset({T.RUNNING, T.CANCELLED}),
    # Its ending: done, a known failure (a sentence for people), anything else (a traceback for
    # developers; also a worker that died), or stopped by an Abort.
    T.RUNNING: frozenset({T.SUCCEEDED, T.FAILED, T.ERRORED, T.CANCELLED}),
    T.SUCCEEDED: frozenset(),
    T.FAILED: frozenset(),
    T.ERRORED: frozenset(),
    T.CANCELLED: frozenset(),
}


def stage_may_move(source: str, to: str) -> bool:
    return to in STAGE_MOVES.get(source, frozenset())


_STAGE_CSS = {
    T.QUEUED: "running",
    T.RUNNING: "running",
    T.SUCCEEDED: "successful",
    T.FAILED: "errors",
    T.ERRORED: "errors",
    T.CANCELLED: "aborted",
}


def stage_css(state: str) -> str:
    return _STAGE_CSS.get(state, "")


def stage_is_active(state: str) -> bool:
    return state in STAGE_ACTIVE


# --- steps --------------------------------------------------------------------------------------


class StepState(models.TextChoices):
    PENDING = "pending", "Pending"
    RUNNING = "running", "Running"
    DONE = "done", "Done"
    SKIPPED = "skipped", "Skipped"
    FAILED = "failed", "Failed"


# A step with nothing left to do: its bar is full.
STEP_COMPLETE: frozenset[str] = frozenset({StepState.DONE, StepState.SKIPPED})


def step_is_complete(state: str) -> bool:
    return state in STEP_COMPLETE
