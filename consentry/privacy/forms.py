"""Typed input of the privacy pages. Every field refuses NUL bytes and lone surrogates
(Django's form fields do), and the views answer an invalid form with its errors in place."""

from __future__ import annotations

from typing import Any

from django import forms
from django.utils.translation import gettext_lazy as _

from consentry.grants.permissions import RELEASE_FIELDS
from consentry.people.fields import PROFILE_FIELDS
from consentry.privacy.labels import AUDIENCE_LABELS, FIELD_LABELS

MAX_ID = 2**53


class HistoryFilterForm(forms.Form):
    app = forms.IntegerField(required=False, min_value=1, max_value=MAX_ID, label=_("App"))
    field = forms.ChoiceField(required=False, label=_("Field"))
    friend = forms.IntegerField(required=False, min_value=1, max_value=MAX_ID, label=_("Through"))
    since = forms.DateField(required=False, label=_("From"))
    until = forms.DateField(required=False, label=_("Until"))
    before = forms.IntegerField(required=False, min_value=0, max_value=MAX_ID)

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        choices = [("", _("Any field"))]
        choices += [(f, FIELD_LABELS[f]) for f in RELEASE_FIELDS]
        self.fields["field"].choices = choices  # type: ignore[attr-defined]


AUDIENCE_CHOICES = [(value, label) for value, label in AUDIENCE_LABELS.items()]


class SharingForm(forms.Form):
    """One audience per profile field, and the friend-sharing opt-in per field."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        for name in PROFILE_FIELDS:
            self.fields[f"audience_{name}"] = forms.ChoiceField(
                choices=AUDIENCE_CHOICES, label=FIELD_LABELS[name]
            )
            if name != "email":  # an app never receives someone else's email
                self.fields[f"share_{name}"] = forms.BooleanField(
                    required=False, label=FIELD_LABELS[name]
                )


class EmailForm(forms.Form):
    email = forms.EmailField(label=_("New email address"), max_length=254)
    password = forms.CharField(
        label=_("Your password"), widget=forms.PasswordInput, max_length=4096, strip=False
    )


class DeleteAccountForm(forms.Form):
    password = forms.CharField(
        label=_("Your password"), widget=forms.PasswordInput, max_length=4096, strip=False
    )
    confirm = forms.BooleanField(label=_("I understand that this cannot be undone"))
