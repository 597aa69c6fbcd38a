"""A plan's state is what people talk about (prepared, scheduled, suspended, continuing, past the
point of no return…); LifeTime's status and info are derived from it. Converts the rows and the
history in place."""

from django.db import migrations, models

HOLDING = ["aborting", "applying", "continuing", "prepared", "preparing", "scheduled", "suspended"]
STATES = [
    ("saved", "Saved"),
    ("preparing", "Preparing"),
    ("prepared", "Prepared"),
    ("scheduled", "Prepared, Continue scheduled"),
    ("suspended", "Needs intervention"),
    ("continuing", "Continuing"),
    ("applying", "Applying (past the point of no return)"),
    ("aborting", "Aborting"),
    ("aborted", "Aborted"),
    ("finished_successful", "Finished successful"),
    ("finished_with_warnings", "Finished with warnings"),
    ("finished_with_errors", "Finished with errors"),
]

PLANS_FORWARD = """
update deployments_deploymentplan p set state = case
  when status = 'needs_user_intervention' and info = 'deployment_prepared' and continue_scheduled_at is not null
    then 'scheduled'
  when status = 'needs_user_intervention' and info = 'deployment_prepared' then 'prepared'
  when status = 'needs_user_intervention' then 'suspended'
  when status = 'running' and point_of_no_return_at is not null then 'applying'
  when status = 'running' and exists (select 1 from deployments_stage s where s.plan_id = p.id and s.kind = 'continue')
    then 'continuing'
  when status = 'running' then 'preparing'
  else status end
"""
PLANS_BACKWARD = """
update deployments_deploymentplan set
  status = case
    when state in ('prepared', 'scheduled', 'suspended') then 'needs_user_intervention'
    when state in ('preparing', 'continuing', 'applying') then 'running'
    else state end,
  info = case
    when state in ('prepared', 'scheduled') then 'deployment_prepared'
    when state = 'suspended' then 'deployment_suspended'
    else '' end
"""
HISTORY_FORWARD = """
update deployments_transition set to_status = case
  when to_status = 'needs_user_intervention' and info = 'deployment_prepared' then 'prepared'
  when to_status = 'needs_user_intervention' then 'suspended'
  when to_status = 'running' and from_status = 'needs_user_intervention' and reason like 'Prepare again%%'
    then 'preparing'
  when to_status = 'running' and from_status = 'needs_user_intervention' then 'continuing'
  when to_status = 'running' then 'preparing'
  else to_status end;
update deployments_transition t set from_status = previous.state
  from (select id, lag(to_status) over (partition by plan_id order by at, id) as state
          from deployments_transition) previous
 where previous.id = t.id and previous.state is not null;
"""
HISTORY_BACKWARD = """
update deployments_transition set
  info = case when to_status in ('prepared', 'scheduled') then 'deployment_prepared'
              when to_status = 'suspended' then 'deployment_suspended' else '' end,
  to_status = case when to_status in ('prepared', 'scheduled', 'suspended') then 'needs_user_intervention'
                   when to_status in ('preparing', 'continuing', 'applying') then 'running' else to_status end,
  from_status = case when from_status in ('prepared', 'scheduled', 'suspended') then 'needs_user_intervention'
                     when from_status in ('preparing', 'continuing', 'applying') then 'running'
                     else from_status end
"""


class Migration(migrations.Migration):
    dependencies = [
        ("deployments", "0004_window_schedule"),
    ]

    operations = [
        migrations.AddField(
            model_name="deploymentplan",
            name="state",
            field=models.CharField(choices=STATES, db_index=True, default="saved", max_length=30),
        ),
        migrations.RunSQL(PLANS_FORWARD, PLANS_BACKWARD),
        migrations.RunSQL(HISTORY_FORWARD, HISTORY_BACKWARD),
        migrations.RemoveConstraint(model_name="deploymentplan", name="one_holding_plan_per_target"),
        migrations.RemoveIndex(model_name="deploymentplan", name="deployments_target__d7b34c_idx"),
        migrations.RemoveField(model_name="deploymentplan", name="status"),
        migrations.RemoveField(model_name="deploymentplan", name="info"),
        migrations.AddIndex(
            model_name="deploymentplan",
            index=models.Index(fields=["target", "state"], name="plan_target_state"),
        ),
        migrations.AddConstraint(
            model_name="deploymentplan",
            constraint=models.UniqueConstraint(
                condition=models.Q(("state__in", HOLDING)), fields=("target",), name="one_holding_plan_per_target"
            ),
        ),
        migrations.RemoveField(model_name="transition", name="info"),
        migrations.RenameField(model_name="transition", old_name="from_status", new_name="from_state"),
        migrations.RenameField(model_name="transition", old_name="to_status", new_name="to_state"),
        migrations.AlterField(
            model_name="transition",
            name="from_state",
            field=models.CharField(blank=True, choices=STATES, max_length=30),
        ),
        migrations.AlterField(
            model_name="transition",
            name="to_state",
            field=models.CharField(choices=STATES, max_length=30),
        ),
    ]
