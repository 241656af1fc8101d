"""Person sign-in. Passwords are argon2 (settings.PASSWORD_HASHERS); django-axes locks a
username+address pair after repeated failures, and the lockout page says so plainly.
Staff accounts with a TOTP device go on to the second-factor step."""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import urlencode

from django import forms
from django.contrib.auth import views as auth_views
from django.contrib.auth.forms import AuthenticationForm
from django.http import HttpResponse
from django.utils.translation import gettext_lazy as _
from django_otp.plugins.otp_totp.models import TOTPDevice

# An email address is at most 254 characters (RFC 5321 4.5.3.1.3, Django's EmailField);
# django-axes records failed usernames in a 255-character column.
MAX_USERNAME = 254
CONTROL = re.compile(r"[\x00-\x1f\x7f]")


class SignInForm(AuthenticationForm):
    """Django's sign-in form, refusing before any lookup a username that no account can
    have: too long, or with control characters (a NUL is an error on PostgreSQL)."""

    def clean_username(self) -> str:
        username = str(self.cleaned_data.get("username") or "")
        if len(username) > MAX_USERNAME or CONTROL.search(username):
            raise forms.ValidationError(
                _("Enter the email address of your account."), code="invalid_username"
            )
        return username


class LoginView(auth_views.LoginView):
    template_name = "registration/login.html"
    redirect_authenticated_user = True
    authentication_form = SignInForm

    def form_invalid(self, form: Any) -> HttpResponse:
        """A malformed username is a 400 (wrong credentials stay a 200 with the error)."""
        response = super().form_invalid(form)
        if form.has_error("username"):
            response.status_code = 400
        return response

    def get_success_url(self) -> str:
        url = super().get_success_url()
        user = self.request.user
        if (
            user.is_authenticated
            and user.is_staff
            and TOTPDevice.objects.filter(user=user, confirmed=True).exists()
        ):
            return "/accounts/two-factor/?" + urlencode({"next": url})
        return url
