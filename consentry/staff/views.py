"""The staff console's entry and the second-factor step of staff sign-in."""

from __future__ import annotations

from django import forms
from django.contrib.auth.decorators import login_required
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.utils.http import url_has_allowed_host_and_scheme
from django.utils.translation import gettext_lazy as _
from django_otp import login as otp_login
from django_otp import match_token
from django_otp.plugins.otp_totp.models import TOTPDevice

from consentry.staff.access import staff_required


class TokenForm(forms.Form):
    code = forms.CharField(
        label=_("Code from your authenticator app"),
        min_length=6,
        max_length=8,
        widget=forms.TextInput(attrs={"autocomplete": "one-time-code", "inputmode": "numeric"}),
    )

    def clean_code(self) -> str:
        code = self.cleaned_data["code"].strip().replace(" ", "")
        if not code.isdigit():
            raise forms.ValidationError(_("Enter the digits your authenticator app shows."))
        return code


def _safe_next(request: HttpRequest, default: str) -> str:
    target = request.POST.get("next") or request.GET.get("next") or default
    if url_has_allowed_host_and_scheme(target, {request.get_host()}, request.is_secure()):
        return target
    return default


@login_required
def two_factor(request: HttpRequest) -> HttpResponse:
    """Ask a signed-in staff member for their TOTP code (django-otp throttles guesses).
    People without a device have nothing to verify here: 404."""
    user = request.user
    if not user.is_staff or not TOTPDevice.objects.filter(user=user, confirmed=True).exists():
        raise Http404
    next_url = _safe_next(request, "/staff/")
    form = TokenForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        device = match_token(user, form.cleaned_data["code"])
        if device is not None:
            otp_login(request, device)
            return redirect(next_url)
        form.add_error("code", _("That code is not valid. Wait for the next one and try again."))
    return render(request, "staff/two_factor.html", {"form": form, "next": next_url})


@staff_required
def index(request: HttpRequest) -> HttpResponse:
    return render(request, "staff/index.html")
