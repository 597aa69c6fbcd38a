from django.contrib import admin

from environments.models import Environment, EnvironmentAccess, FrontEnd


class FrontEndInline(admin.TabularInline):
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
class EnvironmentAdmin(admin.ModelAdmin):
    list_display = ("name", "order", "kind", "two_stage_deployments", "app_db_summary")
    exclude = ("app_db_dsn_encrypted",)
    readonly_fields = ("app_db_summary",)
    inlines = [FrontEndInline]


@admin.register(EnvironmentAccess)
class EnvironmentAccessAdmin(admin.ModelAdmin):
    list_display = ("user", "environment", "level")
    list_filter = ("environment", "level")
