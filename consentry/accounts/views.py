"""Person sign-in. Passwords are argon2 (settings.PASSWORD_HASHERS); django-axes locks a
username+address pair after repeated failures, and the lockout page says so plainly.
Staff accounts with a TOTP device go on to the second-factor step."""

from __future__ import annotations

from urllib.parse import urlencode

from django.contrib.auth import views as auth_views
from django_otp.plugins.otp_totp.models import TOTPDevice


class LoginView(auth_views.LoginView):
    template_name = "registration/login.html"
    redirect_authenticated_user = True

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
