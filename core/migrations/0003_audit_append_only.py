"""The audit trail becomes append-only, and /admin/ changes reach it.

1. URLs already written into audit rows lose their path, query and credentials (webhook URLs are
   often credentials), as every new row does in core.audit.record.
2. A trigger refuses UPDATE and DELETE of an audit row for every role, the application's
   included. The one update allowed is the one Django makes when an account is deleted
   (``actor`` set to NULL; ``actor_name`` keeps who it was).
3. A trigger copies every row the Django admin writes into its own log (additions, changes,
   deletions, one by one or in bulk) into the audit trail, in the same transaction.
"""

from django.db import migrations

from core.audit_masking import mask_text, mask_value


def mask_existing_rows(apps, schema_editor):
    AuditEvent = apps.get_model("lifetime", "AuditEvent")
    for event in AuditEvent.objects.iterator():
        label, message, changes = mask_text(event.object_label), mask_text(event.message), mask_value(event.changes)
        if (label, message, changes) != (event.object_label, event.message, event.changes):
            AuditEvent.objects.filter(pk=event.pk).update(object_label=label, message=message, changes=changes)


APPEND_ONLY = r"""
CREATE FUNCTION lifetime_audit_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'UPDATE' AND OLD.actor_id IS NOT NULL AND NEW.actor_id IS NULL
       AND (to_jsonb(NEW) - 'actor_id') = (to_jsonb(OLD) - 'actor_id') THEN
        RETURN NEW;
    END IF;
    RAISE EXCEPTION 'the audit trail is append-only: % of an audit row is refused', TG_OP
        USING ERRCODE = 'insufficient_privilege';
END
$$;
CREATE TRIGGER lifetime_audit_append_only
    BEFORE UPDATE OR DELETE ON lifetime_auditevent
    FOR EACH ROW EXECUTE FUNCTION lifetime_audit_append_only();

CREATE FUNCTION lifetime_audit_admin_change() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO lifetime_auditevent
        (at, actor_id, actor_name, action, object_type, object_key, object_label, environment_key, changes, message)
    SELECT NEW.action_time, NEW.user_id, coalesce(u.username, ''),
           CASE NEW.action_flag WHEN 1 THEN 'admin.added' WHEN 2 THEN 'admin.changed'
                                WHEN 3 THEN 'admin.deleted' ELSE 'admin.action' END,
           left(coalesce(ct.app_label || '.' || ct.model, 'unknown'), 60),
           left(coalesce(NEW.object_id, ''), 64),
           left(regexp_replace(NEW.object_repr, '([A-Za-z][A-Za-z0-9+.-]*)://[^[:space:]]*', '\1://…', 'g'), 200),
           NULL, '{}'::jsonb,
           'Through /admin/' || CASE WHEN coalesce(NEW.change_message, '') IN ('', '[]') THEN ''
                                     ELSE ': ' || NEW.change_message END
    FROM (SELECT 1) AS one
    LEFT JOIN auth_user u ON u.id = NEW.user_id
    LEFT JOIN django_content_type ct ON ct.id = NEW.content_type_id;
    RETURN NEW;
END
$$;
CREATE TRIGGER lifetime_audit_admin_change
    AFTER INSERT ON django_admin_log
    FOR EACH ROW EXECUTE FUNCTION lifetime_audit_admin_change();
"""

DROP = """
DROP TRIGGER IF EXISTS lifetime_audit_admin_change ON django_admin_log;
DROP FUNCTION IF EXISTS lifetime_audit_admin_change();
DROP TRIGGER IF EXISTS lifetime_audit_append_only ON lifetime_auditevent;
DROP FUNCTION IF EXISTS lifetime_audit_append_only();
"""


class Migration(migrations.Migration):
    dependencies = [
        ("lifetime", "0002_single_sign_on_identity"),
        ("admin", "0003_logentry_add_action_flag_choices"),
        ("contenttypes", "0002_remove_content_type_name"),
        ("auth", "0012_alter_user_first_name_max_length"),
    ]

    operations = [
        migrations.RunPython(mask_existing_rows, migrations.RunPython.noop),
        migrations.RunSQL(APPEND_ONLY, DROP),
    ]
