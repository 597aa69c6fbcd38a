from django.contrib import admin

from environments.models import Environment, EnvironmentAccess, FrontEnd


class ReadOnlyAdmin:
    """Environments, front-ends and rights change through the console's pages, whose services
    check the rights and write the audit trail; /admin/ only shows them."""

    def has_add_permission(self, request, obj=None) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False


class FrontEndInline(ReadOnlyAdmin, admin.TabularInline):
    model = FrontEnd
    extra = 0
    # Folders, queues and URLs are checked by the environment pages (environments.services): no
    # other environment's folder, a queue of this environment, a health URL on the front-end's own
    # host. Here they can only be read.
    readonly_fields = ("queue", "releases_root", "base_url", "health_url")
    can_delete = False

    def has_add_permission(self, request, obj=None) -> bool:
        return False


@admin.register(Environment)
class EnvironmentAdmin(ReadOnlyAdmin, admin.ModelAdmin):
    list_display = ("name", "order", "kind", "two_stage_deployments", "app_db_summary")
    exclude = ("app_db_dsn_encrypted",)
    readonly_fields = ("app_db_summary",)
    inlines = [FrontEndInline]


@admin.register(EnvironmentAccess)
class EnvironmentAccessAdmin(ReadOnlyAdmin, admin.ModelAdmin):
    list_display = ("user", "environment", "level")
    list_filter = ("environment", "level")
