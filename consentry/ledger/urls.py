"""/ledger/...: the published log (consentry/ledger/views.py)."""

from django.urls import path

from consentry.ledger import views

urlpatterns = [
    path("checkpoint", views.checkpoint_view, name="ledger-checkpoint"),
    path("vkey", views.vkey_view, name="ledger-vkey"),
    path("tile/<path:path>", views.tile_view, name="ledger-tile"),
]
