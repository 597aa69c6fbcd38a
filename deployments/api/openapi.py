"""The OpenAPI 3 document of exactly what the API serves, for client generators and for fuzzing.

Written by hand next to the views (the views are plain functions, nothing to introspect); the
fuzzing test in tests/api checks every answer against it, so a drift shows up as a failure.
"""

from __future__ import annotations

import functools
from typing import Any

from django.http import HttpRequest, JsonResponse
from django.views.decorators.http import require_safe

from deployments.api.paging import MAX_PAGE, OPENAPI_PARAMETERS
from deployments.api.serializers import UNSET_DATE
from deployments.state.machine import ApiInfo, ApiStatus

JSON = "application/json"


def ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def array_of(schema: dict[str, Any]) -> dict[str, Any]:
    return {"type": "array", "items": schema}


def obj(properties: dict[str, Any], *, required: list[str] | None = None, description: str = "") -> dict[str, Any]:
    schema: dict[str, Any] = {
        "type": "object",
        "properties": properties,
        "required": list(properties) if required is None else required,
    }
    if description:
        schema["description"] = description
    return schema


STRING = {"type": "string"}
BOOLEAN = {"type": "boolean"}
INTEGER = {"type": "integer"}
KEY = {"type": "string", "format": "uuid", "pattern": "^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$"}
OPTIONAL_KEY = {"anyOf": [KEY, {"type": "string", "enum": [""]}], "description": 'A key, or "" when unset.'}
DATE_TIME = {
    "type": "string",
    "pattern": r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}Z?$",
    "description": f'UTC, "YYYY-MM-DDTHH:MM:SSZ"; "{UNSET_DATE}" when unset.',
}

SCHEMAS: dict[str, Any] = {
    "Error": obj(
        {"Errors": array_of(STRING), "StatusCode": INTEGER},
        description="Every non-2xx answer has this body.",
    ),
    "Environment": obj(
        {
            "Key": KEY,
            "Name": STRING,
            "OSVersion": STRING,
            "Order": INTEGER,
            "DetailsURL": STRING,
            "HostName": STRING,
            "UseHTTPS": BOOLEAN,
            "EnvironmentType": {"type": "string", "enum": ["Development", "Test", "Production"]},
            "NumberOfFrontEnds": INTEGER,
            "ApplicationServerType": STRING,
            "ApplicationServer": STRING,
            "DatabaseProvider": STRING,
            "IsCloudEnvironment": BOOLEAN,
        }
    ),
    "DeploymentTechnology": obj({"Key": KEY, "Name": STRING}),
    "FrontEndDrift": obj({"Application": STRING, "Recorded": STRING, "Actual": STRING}),
    "FrontEnd": obj(
        {
            "Key": KEY,
            "Name": STRING,
            "Enabled": BOOLEAN,
            "LastSeen": DATE_TIME,
            "IsDrifted": BOOLEAN,
            "DriftSince": DATE_TIME,
            "Drift": array_of(ref("FrontEndDrift")),
        },
        description="Extension of the console: a front-end and where its links differ from the running versions.",
    ),
    "DeploymentZone": obj(
        {"Key": KEY, "Name": STRING, "IsDefault": BOOLEAN, "DeploymentTechnology": ref("DeploymentTechnology")}
    ),
    "MobileAppStatusInEnv": obj(
        {
            "EnvironmentKey": KEY,
            "NativePlatform": STRING,
            "VersionNumber": STRING,
            "HasBinaryAvailable": BOOLEAN,
            "IsConfigured": BOOLEAN,
            "IsConfigurationChanged": BOOLEAN,
            "IsModified": BOOLEAN,
        }
    ),
    "AppStatusInEnv": obj(
        {
            "EnvironmentKey": KEY,
            "BaseApplicationVersionKey": KEY,
            "BaseApplicationVersionLabel": STRING,
            "IsModified": BOOLEAN,
            "MobileAppsStatus": array_of(ref("MobileAppStatusInEnv")),
            "DeploymentZoneKey": KEY,
            "ConsistencyStatus": STRING,
        }
    ),
    "Application": obj(
        {
            "Key": KEY,
            "Name": STRING,
            "Kind": {"type": "string", "enum": ["Mobile", "WebResponsive"]},
            "Team": STRING,
            "Description": STRING,
            "URLPath": STRING,
            "IsSystem": BOOLEAN,
            "AppStatusInEnvs": {
                **array_of(ref("AppStatusInEnv")),
                "description": "With IncludeEnvStatus (always on GET /environments/{EnvironmentKey}/applications/{ApplicationKey}).",
            },
            "AppModules": {**array_of({"type": "object"}), "description": "With IncludeModules: always empty."},
        },
        required=["Key", "Name", "Kind", "Team", "Description", "URLPath", "IsSystem"],
    ),
    "MobileVersion": obj(
        {"NativePlatform": STRING, "VersionNumber": STRING, "VersionDescription": STRING},
        required=[],
    ),
    "ApplicationVersion": obj(
        {
            "Key": KEY,
            "ApplicationKey": KEY,
            "Version": {**STRING, "description": "PEP 440."},
            "ChangeLog": STRING,
            "CreatedOn": DATE_TIME,
            "InUse": BOOLEAN,
            "MobileVersions": array_of(ref("MobileVersion")),
            "NativeHash": STRING,
        }
    ),
    "ApplicationVersionCreate": obj(
        {
            "Version": {**STRING, "description": "The new version number, PEP 440 (e.g. 1.2.0), never used before."},
            "ChangeLog": {"type": ["string", "null"]},
            "MobileVersions": {"type": ["array", "null"], "items": ref("MobileVersion")},
        },
        required=["Version"],
    ),
    "ApplicationVersionCreated": obj({"ApplicationVersionKey": KEY}),
    "ApplicationVersionContent": obj(
        {
            "url": {
                **STRING,
                "description": "A signed link to the version's package, valid until ExpiresOn; fetched without the "
                "bearer token.",
            },
            "Sha256": {**STRING, "description": "The package's SHA-256, also sent as X-Content-SHA256 by the link."},
            "Size": INTEGER,
            "ExpiresOn": DATE_TIME,
        },
        required=["url"],
    ),
    "ApplicationOperation": obj(
        {
            "ApplicationKey": KEY,
            "ApplicationVersionKey": OPTIONAL_KEY,
            "DeploymentOperation": {**STRING, "description": 'e.g. "Deploy 1.5".'},
            "DeploymentZoneKey": KEY,
        }
    ),
    "ApplicationOperationCreate": obj(
        {
            "ApplicationVersionKey": KEY,
            "DeploymentZoneKey": {"type": ["string", "null"], "description": '"" or the target\'s zone key.'},
        },
        required=["ApplicationVersionKey"],
    ),
    "Deployment": obj(
        {
            "Key": KEY,
            "SourceEnvironmentKey": KEY,
            "TargetEnvironmentKey": KEY,
            "Notes": STRING,
            "CreatedOn": DATE_TIME,
            "CreatedBy": STRING,
            "CreatedByUsername": STRING,
            "SavedOn": DATE_TIME,
            "SavedBy": STRING,
            "SavedByUsername": STRING,
            "StartedOn": DATE_TIME,
            "StartedBy": STRING,
            "StartedByUsername": STRING,
            "AbortedOn": DATE_TIME,
            "AbortedBy": STRING,
            "AbortedByUsername": STRING,
            "ApplicationOperations": array_of(ref("ApplicationOperation")),
        }
    ),
    "DeploymentCreate": obj(
        {
            "SourceEnvironmentKey": KEY,
            "TargetEnvironmentKey": KEY,
            "Notes": {"type": ["string", "null"]},
            "ApplicationOperations": {"type": ["array", "null"], "items": ref("ApplicationOperationCreate")},
            "ApplicationVersionKeys": {
                "type": ["array", "null"],
                "items": KEY,
                "description": "The older form, accepted when ApplicationOperations is absent.",
            },
        },
        required=["SourceEnvironmentKey", "TargetEnvironmentKey"],
    ),
    "DeploymentUpdate": obj(
        {
            "Notes": {"type": ["string", "null"]},
            "ApplicationOperations": {"type": ["array", "null"], "items": ref("ApplicationOperationCreate")},
            "ApplicationVersionKeys": {"type": ["array", "null"], "items": KEY},
        },
        required=[],
        description="What is absent stays as it was; the operations given replace the plan's.",
    ),
    "ApplicationToDeploy": obj({"ApplicationKey": KEY, "ApplicationName": STRING, "IsNew": BOOLEAN}),
    "ApplicationConflict": obj({"Message": STRING}),
    "DeploymentDetails": obj(
        {
            "Deployment": ref("Deployment"),
            "ApplicationsToDeploy": array_of(ref("ApplicationToDeploy")),
            "ApplicationsToRedeploy": {**array_of(KEY), "description": "Keys of applications already running there."},
            "ApplicationConflicts": array_of(ref("ApplicationConflict")),
            "ModulesToDelete": array_of({"type": "object"}),
        }
    ),
    "DeploymentMessage": obj(
        {"Instant": DATE_TIME, "Message": STRING, "Type": {"type": "string", "enum": ["Info", "Warning", "Error"]}}
    ),
    "DeploymentStatus": obj(
        {
            "DeploymentStatus": {"type": "string", "enum": [s.value for s in ApiStatus]},
            "Info": {
                "type": "string",
                "description": f"With {ApiStatus.NEEDS_USER_INTERVENTION.value}: "
                + " or ".join(info.value for info in ApiInfo)
                + '; "" otherwise.',
            },
            "DeploymentLog": array_of(ref("DeploymentMessage")),
            "ContinueEstimate": {
                **ref("ContinueEstimate"),
                "description": "Extension of the console, only while the plan is prepared: how long Continue "
                "should take against the time left in the target's deployment window.",
            },
            "Approvals": {
                **ref("Approvals"),
                "description": "Extension of the console, on a target that asks for approvals before Continue, "
                "once the plan was prepared: who approved the plan as prepared and what is missing.",
            },
        },
        required=["DeploymentStatus", "Info", "DeploymentLog"],
    ),
    "ContinueEstimate": obj(
        {
            "TypicalSeconds": {"type": "number", "description": "Continue (SQL and switch), typical."},
            "PessimisticSeconds": {"type": "number", "description": "Continue, pessimistic end."},
            "SqlTypicalSeconds": {"type": "number"},
            "SqlPessimisticSeconds": {"type": "number"},
            "WindowRemainingSeconds": {
                "type": ["number", "null"],
                "description": "Left in the open window, or the length of the next one; null without a window.",
            },
            "WindowOpen": BOOLEAN,
            "Fits": {"type": ["boolean", "null"], "description": "The pessimistic end fits in what is left."},
            "Basis": {"type": "string", "description": "What the SQL throughputs were calibrated from."},
        }
    ),
    "Approvals": obj(
        {
            "Needed": {"type": "integer", "description": "Approvals the target asks for before Continue."},
            "Missing": {
                "type": "integer",
                "description": "How many are still missing (all of them after a rejection).",
            },
            "Complete": {"type": "boolean", "description": "Continue may run as far as approvals go."},
            "Rejected": BOOLEAN,
            "Summary": STRING,
            "Decisions": array_of(
                obj(
                    {
                        "User": STRING,
                        "Decision": {"type": "string", "enum": ["Approved", "Rejected"]},
                        "Comment": STRING,
                        "At": DATE_TIME,
                        "Counted": {
                            "type": "boolean",
                            "description": "False for an approval by whoever prepared or scheduled the plan.",
                        },
                    }
                )
            ),
        }
    ),
    "ApprovalRequest": obj(
        {"Comment": {"type": "string", "description": "Why, kept with the decision and in the audit trail."}},
        required=[],
    ),
    "ContinueRequest": obj(
        {
            "Reason": {
                "type": "string",
                "description": "Why continue although the pessimistic estimate exceeds the time left in the window "
                "(needs the manage right), outside an enforced window, or during a freeze of the target (needs the "
                "manage right); kept in the audit trail and the plan's log.",
            },
            "ContinueAt": {
                "type": "string",
                "description": 'Extension of the console: "NextWindow" schedules Continue for the start of the '
                "target's next deployment window outside every freeze; a date and time with its offset (ISO 8601) "
                "schedules it then. The plan stays prepared until then (202).",
            },
        },
        required=[],
    ),
    "StartRequest": obj(
        {
            "Reason": {
                "type": "string",
                "description": "Extension of the console: why deploy versions that do not run in the source on a "
                "target that deploys only those (needs the manage right), or, on a target in one stage (Deploy "
                "Now), why deploy outside its enforced window or during its freeze (needs the manage right); kept "
                "in the audit trail.",
            }
        },
        required=[],
    ),
    "RollbackRequest": obj(
        {
            "ApplicationKeys": {
                "type": "array",
                "items": KEY,
                "description": "Roll back only these applications of the plan (all of them when absent).",
            }
        },
        required=[],
    ),
}

REASONS = {
    200: "OK.",
    201: "Created.",
    202: "Accepted: the status has already moved; poll the status.",
    204: "No content.",
    400: "Invalid request; Errors says why.",
    401: "Missing, unknown or revoked bearer token.",
    403: "The service account lacks the right on the environment.",
    404: "Not found.",
    409: "Already running (a second Continue while one runs).",
    413: "Request body too large.",
    500: "Internal error.",
}


def responses(success: dict[int, dict[str, Any] | None], *errors: int) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for code, schema in success.items():
        out[str(code)] = {"description": REASONS[code]}
        if schema is not None:
            out[str(code)]["content"] = {JSON: {"schema": schema}}
    for code in sorted({401, 500, *errors}):
        out[str(code)] = {"description": REASONS[code], "content": {JSON: {"schema": ref("Error")}}}
    return out


def path_key(name: str) -> dict[str, Any]:
    return {"name": name, "in": "path", "required": True, "schema": KEY}


def query(name: str, schema: dict[str, Any], description: str = "") -> dict[str, Any]:
    param = {"name": name, "in": "query", "required": False, "schema": schema}
    if description:
        param["description"] = description
    return param


BOOL_QUERY = {"type": "boolean", "description": "True or False, any case."}
INCLUDE = [
    query("IncludeModules", BOOL_QUERY, "Accepted; the console has no modules (AppModules is empty)."),
    query("IncludeEnvStatus", BOOL_QUERY, "Include AppStatusInEnvs."),
]


def body(schema: dict[str, Any]) -> dict[str, Any]:
    return {"required": True, "content": {JSON: {"schema": schema}}}


def operation(op_id: str, summary: str, resp: dict[str, Any], **extra: Any) -> dict[str, Any]:
    return {"operationId": op_id, "summary": summary, "responses": resp, **extra}


ENV, APP, VERSION, PLAN = (
    path_key("EnvironmentKey"),
    path_key("ApplicationKey"),
    path_key("VersionKey"),
    path_key("DeploymentKey"),
)

PATHS: dict[str, Any] = {
    "/environments/": {
        "get": operation(
            "Environments_List",
            "Environments the service account may view, in promotion order.",
            responses({200: array_of(ref("Environment")), 204: None}),
        )
    },
    "/environments/{EnvironmentKey}/": {
        "parameters": [ENV],
        "get": operation("Environments_Get", "One environment.", responses({200: ref("Environment")}, 400, 403, 404)),
    },
    "/environments/{EnvironmentKey}/applications/": {
        "parameters": [ENV],
        "get": operation(
            "Environments_ListApplications",
            "The applications running in the environment (AppStatusInEnvs: this environment only).",
            responses({200: array_of(ref("Application")), 204: None}, 400, 403, 404),
            parameters=INCLUDE,
        ),
    },
    "/environments/{EnvironmentKey}/deployment/": {
        "parameters": [ENV],
        "post": operation(
            "Environments_DeployBinary",
            "Deploy a package (a version's content, fetched from this console or another): it is registered "
            "in the catalog (or found there with the same digest) and a saved plan deploying it to the "
            "environment is created; start it and poll its status. X-Content-SHA256, when sent, must match.",
            responses({201: KEY}, 400, 403, 404, 413),
            requestBody={
                "required": True,
                "content": {"application/octet-stream": {"schema": {"type": "string", "format": "binary"}}},
            },
            parameters=[
                {
                    "name": "X-Content-SHA256",
                    "in": "header",
                    "required": False,
                    "schema": {"type": "string", "pattern": "^[0-9a-fA-F]{64}$"},
                    "description": "The package's SHA-256 as the sender knows it.",
                }
            ],
        ),
    },
    "/environments/{EnvironmentKey}/applications/{ApplicationKey}/": {
        "parameters": [ENV, APP],
        "get": operation(
            "Environments_GetRunningApp",
            "The application as it runs in the environment (404 when it does not run there).",
            responses({200: ref("Application")}, 400, 403, 404),
            parameters=INCLUDE,
        ),
    },
    "/environments/{EnvironmentKey}/applications/{ApplicationKey}/versions/": {
        "parameters": [ENV, APP],
        "post": operation(
            "Environments_Applications_Versions_Create",
            "Tag what runs in the environment as a new version.",
            responses({201: ref("ApplicationVersionCreated")}, 400, 403, 404, 413),
            requestBody=body(ref("ApplicationVersionCreate")),
        ),
    },
    "/environments/{EnvironmentKey}/deploymentzones/": {
        "parameters": [ENV],
        "get": operation(
            "Environments_GetDeploymentZones",
            "The environment's deployment zones (one default zone).",
            responses({200: array_of(ref("DeploymentZone"))}, 400, 403, 404),
        ),
    },
    "/environments/{EnvironmentKey}/frontends/": {
        "parameters": [ENV],
        "get": operation(
            "Environments_FrontEnds_List",
            "Extension: the environment's front-ends and their drift from the running versions.",
            responses({200: array_of(ref("FrontEnd"))}, 400, 403, 404),
        ),
    },
    "/environments/{EnvironmentKey}/frontends/{FrontEndKey}/putback/": {
        "parameters": [ENV, path_key("FrontEndKey")],
        "post": operation(
            "Environments_FrontEnds_PutBack",
            "Extension: switch one drifted front-end back to the recorded versions (manage right, audited).",
            responses({200: ref("FrontEnd")}, 400, 403, 404, 409),
        ),
    },
    "/applications/": {
        "get": operation(
            "Applications_List",
            "Every application of the catalog.",
            responses({200: array_of(ref("Application")), 204: None}, 400),
            parameters=INCLUDE + OPENAPI_PARAMETERS,
        )
    },
    "/applications/{ApplicationKey}/": {
        "parameters": [APP],
        "get": operation(
            "Applications_Get",
            "One application.",
            responses({200: ref("Application")}, 400, 403, 404),
            parameters=INCLUDE,
        ),
    },
    "/applications/{ApplicationKey}/versions/": {
        "parameters": [APP],
        "get": operation(
            "Applications_Versions_List",
            "The application's versions, newest first.",
            responses({200: array_of(ref("ApplicationVersion")), 204: None}, 400, 403, 404),
            parameters=[
                query(
                    "MaximumVersionsToReturn",
                    {"type": "integer", "minimum": 0},
                    f"At most {MAX_PAGE}, also when absent.",
                )
            ],
        ),
    },
    "/applications/{ApplicationKey}/versions/{VersionKey}/": {
        "parameters": [APP, VERSION],
        "get": operation(
            "Applications_Versions_Get", "One version.", responses({200: ref("ApplicationVersion")}, 403, 404)
        ),
        "delete": operation(
            "Applications_Versions_Delete",
            "Delete a version nothing uses (400 when it runs somewhere or a plan names it); needs the Deploy "
            "right on some environment.",
            responses({204: None}, 400, 403, 404),
        ),
    },
    "/applications/{ApplicationKey}/versions/{VersionKey}/content/": {
        "parameters": [APP, VERSION],
        "get": operation(
            "Applications_Versions_GetContent",
            "A time-limited signed link to the version's package; needs the Deploy right on some environment.",
            responses({200: ref("ApplicationVersionContent")}, 403, 404),
        ),
    },
    "/downloads/{Token}/": {
        "parameters": [
            {
                "name": "Token",
                "in": "path",
                "required": True,
                "schema": {"type": "string", "minLength": 1, "pattern": "^[A-Za-z0-9_:.-]+$"},
                "description": "The signed token of a content link.",
            }
        ],
        "get": operation(
            "Downloads_Get",
            "The package a content link points to (the link is the credential: no bearer token).",
            {
                "200": {
                    "description": "The package; X-Content-SHA256 is its digest.",
                    "content": {"application/octet-stream": {"schema": {"type": "string", "format": "binary"}}},
                },
                **{
                    str(code): {"description": REASONS[code], "content": {JSON: {"schema": ref("Error")}}}
                    for code in (403, 404, 500)
                },
            },
            security=[],
        ),
    },
    "/deployments/": {
        "get": operation(
            "Deployments_List",
            "Deployment plans newest first; plans not finished are listed whatever the dates.",
            responses({200: array_of(ref("Deployment"))}, 400, 403),
            parameters=[
                query("MinDate", {"type": "string", "format": "date"}, "YYYY-MM-DD, inclusive, on CreatedOn."),
                query("MaxDate", {"type": "string", "format": "date"}, "YYYY-MM-DD, inclusive, on CreatedOn."),
                query("TargetEnvironmentKey", KEY),
                *OPENAPI_PARAMETERS,
            ],
        ),
        "post": operation(
            "Deployments_Create",
            "Create a saved deployment plan; the answer is the new key as a JSON string.",
            responses({201: KEY}, 400, 403, 404, 413),
            requestBody=body(ref("DeploymentCreate")),
        ),
    },
    "/deployments/{DeploymentKey}/": {
        "parameters": [PLAN],
        "get": operation(
            "Deployments_Get",
            "The plan, what it deploys and its conflicts.",
            responses({200: ref("DeploymentDetails")}, 403, 404),
        ),
        "put": operation(
            "Deployments_Update",
            "Change a saved plan's operations or notes (400 once it has started).",
            responses({200: ref("Deployment")}, 400, 403, 404, 413),
            requestBody=body(ref("DeploymentUpdate")),
        ),
        "delete": operation(
            "Deployments_Delete",
            "Delete a saved plan.",
            responses({204: None}, 400, 403, 404),
        ),
    },
    "/deployments/{DeploymentKey}/start/": {
        "parameters": [PLAN],
        "post": operation(
            "Deployments_Start",
            "Prepare (two-stage target) or deploy now; 202 once the plan has left saved.",
            responses({202: None}, 400, 403, 404),
            parameters=[
                query(
                    "RedeployOutdated",
                    BOOL_QUERY,
                    "Accepted, no effect: applications deploy whole, so no consumer is left outdated.",
                ),
                query(
                    "ContinueWithErrors",
                    BOOL_QUERY,
                    "Accepted, no effect: a plan with validation errors never starts (400 lists them).",
                ),
            ],
            requestBody={"required": False, "content": {JSON: {"schema": ref("StartRequest")}}},
        ),
    },
    "/deployments/{DeploymentKey}/continue/": {
        "parameters": [PLAN],
        "post": operation(
            "Deployments_Continue",
            "Continue a prepared plan; 202 once it is running, 409 if a Continue runs already. "
            "400 when the pessimistic estimate exceeds the time left in the window, unless a Reason is given by "
            "an account with the manage right on the target; 400 while approvals the target asks for are missing "
            "or after a rejection; 400 outside an enforced window or during a freeze, naming the parameter that "
            "would help (Reason, or ContinueAt to schedule it).",
            responses({202: None}, 400, 403, 404, 409),
            requestBody={"required": False, "content": {JSON: {"schema": ref("ContinueRequest")}}},
        ),
    },
    "/deployments/{DeploymentKey}/approve/": {
        "parameters": [PLAN],
        "post": operation(
            "Deployments_Approve",
            "Extension of the console: approve the plan as prepared (Prepare Again voids approvals). The account "
            "needs the target's approver right and must not have prepared or scheduled the plan; 409 when it "
            "already approved.",
            responses({200: ref("Approvals")}, 400, 403, 404, 409),
            requestBody={"required": False, "content": {JSON: {"schema": ref("ApprovalRequest")}}},
        ),
    },
    "/deployments/{DeploymentKey}/reject/": {
        "parameters": [PLAN],
        "post": operation(
            "Deployments_Reject",
            "Extension of the console: reject the plan as prepared; Continue (and a scheduled Continue) is "
            "refused until the plan is prepared again.",
            responses({200: ref("Approvals")}, 400, 403, 404, 409),
            requestBody={"required": False, "content": {JSON: {"schema": ref("ApprovalRequest")}}},
        ),
    },
    "/deployments/{DeploymentKey}/abort/": {
        "parameters": [PLAN],
        "post": operation(
            "Deployments_Abort",
            "Abort, until Continue executes its first SQL statement.",
            responses({202: None}, 400, 403, 404),
        ),
    },
    "/deployments/{DeploymentKey}/rollback/": {
        "parameters": [PLAN],
        "post": operation(
            "Deployments_Rollback",
            "Beyond LifeTime: switch every front-end of the target back to the releases that ran before this finished "
            "plan (all of its applications, or those listed), all or nothing; no SQL runs. 202 once the Roll Back is "
            "queued (the plan is running, then rolled_back); 400 with the reasons when it cannot be done (a release "
            "gone from a front-end, a later plan changed those applications, a script not backward compatible); "
            "409 if a Roll Back runs already.",
            responses({202: None}, 400, 403, 404, 409),
            requestBody={"required": False, "content": {JSON: {"schema": ref("RollbackRequest")}}},
        ),
    },
    "/deployments/{DeploymentKey}/status/": {
        "parameters": [PLAN],
        "get": operation(
            "Deployments_GetStatus",
            "Status, Info and the log.",
            responses({200: ref("DeploymentStatus")}, 403, 404),
        ),
    },
}


@functools.cache
def build(server_url: str = "/lifetimeapi/rest/v2") -> dict[str, Any]:
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "LifeTime console: LifeTime Deployment API v2",
            "version": "2",
            "description": "The deployment-plan subset of OutSystems LifeTime's API v2 that CI/CD pipelines use. "
            "Every path also answers without its trailing slash.",
        },
        "servers": [{"url": server_url}],
        "security": [{"bearer": []}],
        "components": {
            "securitySchemes": {
                "bearer": {"type": "http", "scheme": "bearer", "description": "Service account token."}
            },
            "schemas": SCHEMAS,
        },
        "paths": PATHS,
    }


@require_safe
def document(request: HttpRequest) -> JsonResponse:
    return JsonResponse(build())
