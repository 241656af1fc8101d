from django.urls import path

from consentry.privacy import views

app_name = "privacy"

urlpatterns = [
    path("", views.home, name="home"),
    path("apps/", views.apps, name="apps"),
    path("apps/<int:app_id>/remove", views.remove_app, name="remove_app"),
    path(
        "apps/<int:app_id>/permissions/<str:permission>/revoke",
        views.revoke_permission,
        name="revoke_permission",
    ),
    path("deletions/<str:code>/", views.deletion, name="deletion"),
    path("activity/", views.activity, name="activity"),
    path("activity/<int:index>/proof.json", views.proof, name="proof"),
    path("friends/", views.friends, name="friends"),
    path("friends/<int:friend_id>/route", views.friend_route, name="friend_route"),
    path("sharing/", views.sharing, name="sharing"),
    path("export/", views.export, name="export"),
    path("export/<int:export_id>/download", views.export_download, name="export_download"),
    path("notices/", views.notices, name="notices"),
    path("notices/<int:notice_id>/read", views.notice_read, name="notice_read"),
    path("account/", views.account, name="account"),
]

public_urlpatterns = [
    path("apps/<int:app_id>", views.transparency, name="app_card"),
]
