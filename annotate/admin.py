from django.contrib import admin

from annotate import models


@admin.register(models.Project)
class ProjectAdmin(admin.ModelAdmin):
    list_display = ("name", "slug", "kind", "overlap", "created_at")
    search_fields = ("name", "slug")


@admin.register(models.Membership)
class MembershipAdmin(admin.ModelAdmin):
    list_display = ("project", "user", "role", "is_active")
    list_filter = ("role", "is_active")


@admin.register(models.Guideline)
class GuidelineAdmin(admin.ModelAdmin):
    list_display = ("project", "version", "author", "created_at")

    def has_change_permission(self, request, obj=None):  # versions are immutable
        return False


@admin.register(models.AuditEvent)
class AuditEventAdmin(admin.ModelAdmin):
    """Read-only: audit events are written by the services, never added, edited or deleted here."""

    list_display = ("created_at", "project", "actor", "action", "target_type", "target_id")
    list_filter = ("action",)

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False
