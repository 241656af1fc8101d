"""Person sign-in. Passwords are argon2 (settings.PASSWORD_HASHERS); django-axes locks a
username+address pair after repeated failures, and the lockout page says so plainly."""

from __future__ import annotations

from django.contrib.auth import views as auth_views


class LoginView(auth_views.LoginView):
    template_name = "registration/login.html"
    redirect_authenticated_user = True
