from django.apps import AppConfig


class DeploymentsConfig(AppConfig):
    name = "deployments"
    verbose_name = "Deployments"

    def ready(self) -> None:
        # Listeners subscribe to the moves of plans here, so that the state module imports none of them.
        from deployments.notifications import services as notifications
        from deployments.plans import approvals
        from deployments.plans import services as plans
        from deployments.stages import drift, prepared_indexes
        from deployments.state import moves

        moves.on_plan_move(notifications.plan_moved)
        moves.on_plan_move(prepared_indexes.plan_moved)
        approvals.on_decision(notifications.approval_decided)
        drift.on_drift(notifications.frontend_drifted)
        moves.on_plan_move(plans.plan_moved)
