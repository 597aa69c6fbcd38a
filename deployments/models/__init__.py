"""The models of the deployments app, one module per sub-domain (same app label, same tables)."""

from deployments.models.approvals import Approval, Decision
from deployments.models.catalog import Application, ApplicationKind, ApplicationVersion, RunningVersion
from deployments.models.mobile import MobileAppConfig, MobilePackage
from deployments.models.notifications import (
    DeliveryStatus,
    NotificationDelivery,
    NotificationEvent,
    NotificationKind,
    NotificationRule,
)
from deployments.models.plans import DeploymentPlan, GeneratedSql, OperationKind, PlanOperation, Transition
from deployments.models.settings import SettingValue
from deployments.models.sql import PreparedIndex, SqlTiming
from deployments.models.stages import LogLevel, LogLine, Stage, StageKind, Step, StepKind
from deployments.state.machine import PlanState, StageState, StepState

__all__ = [
    "Application",
    "Approval",
    "ApplicationKind",
    "ApplicationVersion",
    "Decision",
    "DeliveryStatus",
    "DeploymentPlan",
    "GeneratedSql",
    "LogLevel",
    "LogLine",
    "MobileAppConfig",
    "MobilePackage",
    "NotificationDelivery",
    "NotificationEvent",
    "NotificationKind",
    "NotificationRule",
    "OperationKind",
    "PlanOperation",
    "PlanState",
    "PreparedIndex",
    "RunningVersion",
    "SettingValue",
    "SqlTiming",
    "Stage",
    "StageKind",
    "StageState",
    "Step",
    "StepKind",
    "StepState",
    "Transition",
]
