from django.contrib import admin

from consentry.people.models import Person


@admin.register(Person)
class PersonAdmin(admin.ModelAdmin):
    list_display = ("email", "name", "friend_count", "is_staff")
    search_fields = ("email", "name", "external_id")
    readonly_fields = ("friend_count", "password")
