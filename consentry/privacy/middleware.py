"""Remember a signed-in person's language on their account, so the choice follows them
to every device: the language switch sets Django's language cookie; this keeps
Person.language equal to it, and a browser without the cookie gets the account's
language (and the cookie) when the person chose one other than the site's default."""

from __future__ import annotations

from collections.abc import Callable

from django.conf import settings
from django.http import HttpRequest, HttpResponse
from django.utils import translation

from consentry.people.models import Person
from consentry.privacy.actions import do_set_language

LANGUAGES = {code for code, _ in settings.LANGUAGES}


class RememberLanguageMiddleware:
    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        user = getattr(request, "user", None)
        if not isinstance(user, Person) or not user.is_authenticated:
            return self.get_response(request)
        cookie = request.COOKIES.get(settings.LANGUAGE_COOKIE_NAME)
        if cookie in LANGUAGES:
            do_set_language(user, cookie)
            return self.get_response(request)
        language = user.language
        if language not in LANGUAGES or language == settings.LANGUAGE_CODE:
            # Never chose (the column defaults to the site language): the browser's
            # Accept-Language, as LocaleMiddleware negotiated it, stays in charge.
            return self.get_response(request)
        translation.activate(language)
        request.LANGUAGE_CODE = language
        response = self.get_response(request)
        if settings.LANGUAGE_COOKIE_NAME in response.cookies:
            # The language switch answered this request: its choice wins.
            chosen = response.cookies[settings.LANGUAGE_COOKIE_NAME].value
            if chosen in LANGUAGES:
                do_set_language(user, chosen)
            return response
        response.set_cookie(
            settings.LANGUAGE_COOKIE_NAME,
            language,
            max_age=settings.LANGUAGE_COOKIE_AGE,
            samesite="Lax",
            secure=settings.LANGUAGE_COOKIE_SECURE,
        )
        return response
