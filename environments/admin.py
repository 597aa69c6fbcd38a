from django.contrib import admin

from environments.models import Environment, EnvironmentAccess, FrontEnd


class FrontEndInline(admin.TabularInline):
    model = FrontEnd
    extra = 0


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
