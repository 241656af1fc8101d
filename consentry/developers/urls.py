"""The developer console under /developers/ (docs/rules.md "Interfaces")."""

from django.urls import path

from consentry.developers import views

app_name = "developers"

urlpatterns = [
    path("", views.console, name="console"),
    path("docs", views.docs, name="docs"),
    path("apps/new", views.new_app, name="new_app"),
    path("apps/<int:app_id>/", views.app_detail, name="app"),
    path("apps/<int:app_id>/icon", views.icon, name="icon"),
    path("apps/<int:app_id>/edit", views.edit_app, name="edit"),
    path("apps/<int:app_id>/secret", views.rotate_secret, name="rotate_secret"),
    path("apps/<int:app_id>/mode", views.set_mode, name="mode"),
    path("apps/<int:app_id>/roles", views.invite, name="invite"),
    path("apps/<int:app_id>/roles/<int:person_id>/remove", views.remove_role, name="remove_role"),
    path("apps/<int:app_id>/declarations", views.declarations, name="declarations"),
    path("apps/<int:app_id>/recertify", views.recertify, name="recertify"),
    path("invitations/<int:invitation_id>/accept", views.accept_invitation, name="accept"),
    path("deletion/<str:code>", views.deletion_status, name="deletion_status"),
    path("callbacks/data-deletion-complete", views.confirm_deletion, name="confirm_deletion"),
]
