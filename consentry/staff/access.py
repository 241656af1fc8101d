"""Who may see `/staff/`: an active staff account that passed its second factor (a TOTP
device confirmed with django-otp in this session). Anyone else gets the same 404 as an
unknown page, so the staff console does not announce itself."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

from django.http import Http404, HttpRequest, HttpResponse


def is_verified_staff(request: HttpRequest) -> bool:
    user = getattr(request, "user", None)
    if user is None or not user.is_authenticated or not user.is_active or not user.is_staff:
        return False
    is_verified = getattr(user, "is_verified", None)
    return bool(is_verified and is_verified())


def staff_required(view: Callable[..., HttpResponse]) -> Callable[..., HttpResponse]:
    """View decorator: 404 unless the request comes from verified staff."""

    @functools.wraps(view)
    def wrapped(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        if not is_verified_staff(request):
            raise Http404
        return view(request, *args, **kwargs)

    return wrapped
