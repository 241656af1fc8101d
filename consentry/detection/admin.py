"""Operators change detection thresholds here (Django admin, behind the staff second
factor): one RuleSetting per rule, for every app (no app id) or for one app."""

from django.contrib import admin

from consentry.detection.models import Firing, RuleSetting


@admin.register(RuleSetting)
class RuleSettingAdmin(admin.ModelAdmin):
    list_display = ("rule", "app_id", "enabled", "when", "throttle_seconds", "updated_at")
    list_filter = ("rule",)


@admin.register(Firing)
class FiringAdmin(admin.ModelAdmin):
    list_display = ("fired_at", "app_id", "rule", "action", "figures", "cleared_at")
    list_filter = ("action", "rule")
    readonly_fields = (
        "app_id",
        "rule",
        "action",
        "fired_at",
        "figures",
        "thresholds",
        "snapshot",
        "throttle_seconds",
    )

    def has_add_permission(self, request: object) -> bool:  # firings come from the rules only
        return False
