"""Roll Back: a plan state for it (rolling back holds the target), its stage, and what each operation
replaced (recorded by Continue: version and settings) and whether it was rolled back. Settings: their
values per environment and the step that puts them on the front-ends."""

import django.db.models.deletion
from django.conf import settings
from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ('deployments', '0008_fencing'),
        ('environments', '0006_drift'),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        migrations.CreateModel(
            name='SettingValue',
            fields=[
                ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                ('name', models.CharField(max_length=63)),
                ('value', models.JSONField(blank=True, null=True)),
                ('secret', models.BooleanField(default=False)),
                ('value_encrypted', models.TextField(blank=True)),
                ('updated_at', models.DateTimeField(auto_now=True)),
            ],
        ),
        migrations.RemoveConstraint(
            model_name='deploymentplan',
            name='one_holding_plan_per_target',
        ),
        migrations.AddField(
            model_name='planoperation',
            name='previous_known',
            field=models.BooleanField(default=False),
        ),
        migrations.AddField(
            model_name='planoperation',
            name='previous_settings_sha',
            field=models.CharField(blank=True, max_length=64),
        ),
        migrations.AddField(
            model_name='planoperation',
            name='previous_version',
            field=models.ForeignKey(blank=True, null=True, on_delete=django.db.models.deletion.PROTECT, related_name='+', to='deployments.applicationversion'),
        ),
        migrations.AddField(
            model_name='planoperation',
            name='rollback_requested_at',
            field=models.DateTimeField(blank=True, null=True),
        ),
        migrations.AddField(
            model_name='planoperation',
            name='rolled_back_at',
            field=models.DateTimeField(blank=True, null=True),
        ),
        migrations.AddField(
            model_name='planoperation',
            name='settings_sha',
            field=models.CharField(blank=True, max_length=64),
        ),
        migrations.AlterField(
            model_name='deploymentplan',
            name='state',
            field=models.CharField(choices=[('saved', 'Saved'), ('preparing', 'Preparing'), ('prepared', 'Prepared'), ('scheduled', 'Prepared, Continue scheduled'), ('suspended', 'Needs intervention'), ('continuing', 'Continuing'), ('applying', 'Applying (past the point of no return)'), ('aborting', 'Aborting'), ('aborted', 'Aborted'), ('finished_successful', 'Finished successful'), ('finished_with_warnings', 'Finished with warnings'), ('finished_with_errors', 'Finished with errors'), ('rolling_back', 'Rolling back'), ('rolled_back', 'Rolled back')], db_index=True, default='saved', max_length=30),
        ),
        migrations.AlterField(
            model_name='stage',
            name='kind',
            field=models.CharField(choices=[('prepare', 'Prepare'), ('continue', 'Continue'), ('rollback', 'Roll Back')], max_length=10),
        ),
        migrations.AlterField(
            model_name='step',
            name='kind',
            field=models.CharField(choices=[('validate', 'Validate'), ('compile', 'Compile'), ('generate_sql', 'Generate SQL'), ('upload', 'Upload'), ('check', 'Check plan is still valid'), ('settings', 'Put settings in place'), ('execute_sql', 'Execute SQL'), ('switch', 'Switch'), ('mobile_package', 'Mobile package')], max_length=20),
        ),
        migrations.AlterField(
            model_name='transition',
            name='from_state',
            field=models.CharField(blank=True, choices=[('saved', 'Saved'), ('preparing', 'Preparing'), ('prepared', 'Prepared'), ('scheduled', 'Prepared, Continue scheduled'), ('suspended', 'Needs intervention'), ('continuing', 'Continuing'), ('applying', 'Applying (past the point of no return)'), ('aborting', 'Aborting'), ('aborted', 'Aborted'), ('finished_successful', 'Finished successful'), ('finished_with_warnings', 'Finished with warnings'), ('finished_with_errors', 'Finished with errors'), ('rolling_back', 'Rolling back'), ('rolled_back', 'Rolled back')], max_length=30),
        ),
        migrations.AlterField(
            model_name='transition',
            name='to_state',
            field=models.CharField(choices=[('saved', 'Saved'), ('preparing', 'Preparing'), ('prepared', 'Prepared'), ('scheduled', 'Prepared, Continue scheduled'), ('suspended', 'Needs intervention'), ('continuing', 'Continuing'), ('applying', 'Applying (past the point of no return)'), ('aborting', 'Aborting'), ('aborted', 'Aborted'), ('finished_successful', 'Finished successful'), ('finished_with_warnings', 'Finished with warnings'), ('finished_with_errors', 'Finished with errors'), ('rolling_back', 'Rolling back'), ('rolled_back', 'Rolled back')], max_length=30),
        ),
        migrations.AddConstraint(
            model_name='deploymentplan',
            constraint=models.UniqueConstraint(condition=models.Q(('state__in', ['aborting', 'applying', 'continuing', 'prepared', 'preparing', 'rolling_back', 'scheduled', 'suspended'])), fields=('target',), name='one_holding_plan_per_target'),
        ),
        migrations.AddField(
            model_name='settingvalue',
            name='application',
            field=models.ForeignKey(on_delete=django.db.models.deletion.CASCADE, related_name='+', to='deployments.application'),
        ),
        migrations.AddField(
            model_name='settingvalue',
            name='environment',
            field=models.ForeignKey(on_delete=django.db.models.deletion.CASCADE, related_name='+', to='environments.environment'),
        ),
        migrations.AddField(
            model_name='settingvalue',
            name='updated_by',
            field=models.ForeignKey(blank=True, null=True, on_delete=django.db.models.deletion.SET_NULL, related_name='+', to=settings.AUTH_USER_MODEL),
        ),
        migrations.AddConstraint(
            model_name='settingvalue',
            constraint=models.UniqueConstraint(fields=('environment', 'application', 'name'), name='one_setting_value_per_env'),
        ),
    ]
