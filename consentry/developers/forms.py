"""Forms of the developer console: they parse and validate input; actions do the work."""

from __future__ import annotations

from typing import Any

from django import forms

from consentry.developers.actions import Declaration
from consentry.developers.models import Role
from consentry.grants.permissions import PERMISSIONS
from consentry.oauth.actions import check_redirect_uri
from consentry.oauth.consent import LABELS

# Permissions a developer declares (basic login, openid and profile, needs no declaration).
DECLARABLE: tuple[str, ...] = tuple(p for p in PERMISSIONS if p not in ("openid", "profile"))


class AppForm(forms.Form):
    name = forms.CharField(max_length=100)
    description = forms.CharField(widget=forms.Textarea(attrs={"rows": 3}), required=False)
    website = forms.URLField(max_length=500, required=False, assume_scheme="https")
    privacy_policy_url = forms.URLField(
        max_length=500, required=False, assume_scheme="https", label="Privacy policy URL"
    )
    redirect_uris = forms.CharField(
        widget=forms.Textarea(attrs={"rows": 2}),
        label="Redirect URIs (one per line)",
        max_length=2000,
    )
    deauthorize_callback_url = forms.CharField(
        max_length=500, required=False, label="Deauthorize callback URL"
    )
    data_deletion_callback_url = forms.CharField(
        max_length=500, required=False, label="Data-deletion callback URL"
    )
    icon = forms.FileField(required=False, label="Icon (PNG or JPEG, at most 256 KB)")

    def clean_redirect_uris(self) -> list[str]:
        uris = [u.strip() for u in self.cleaned_data["redirect_uris"].splitlines() if u.strip()]
        if not uris:
            raise forms.ValidationError("Give at least one redirect URI.")
        if len(uris) > 10:
            raise forms.ValidationError("At most 10 redirect URIs.")
        for uri in uris:
            try:
                check_redirect_uri(uri)
            except ValueError as error:
                raise forms.ValidationError(str(error)) from None
        return uris


class RotateSecretForm(forms.Form):
    grace_hours = forms.IntegerField(
        min_value=0,
        max_value=24,
        initial=1,
        label="Keep the old secret valid for (hours, 0 to 24)",
    )


class InviteForm(forms.Form):
    email = forms.EmailField(max_length=254, label="Sign-in email")
    role = forms.ChoiceField(choices=Role.choices)


class TermsForm(forms.Form):
    accept = forms.BooleanField(label="I accept the Consentry platform terms")


class SignForm(forms.Form):
    signer_name = forms.CharField(max_length=200, label="Your full name (signature)")


class DeclarationsForm(forms.Form):
    """One row per declarable permission: ask for it, why, and for how long; plus the
    data-use agreement signature and test instructions for the reviewer."""

    signer_name = forms.CharField(
        max_length=200, required=False, label="Your full name (signs the data-use agreement)"
    )
    test_instructions = forms.CharField(
        widget=forms.Textarea(attrs={"rows": 3}),
        required=False,
        max_length=4000,
        label="Test instructions for the reviewer",
    )

    def __init__(self, *args: Any, current: dict[str, tuple[str, int]] | None = None, **kw: Any):
        super().__init__(*args, **kw)
        current = current or {}
        for perm in DECLARABLE:
            purpose, retention = current.get(perm, ("", 365))
            self.fields[f"request_{perm}"] = forms.BooleanField(
                required=False, initial=perm in current, label=str(LABELS[perm])
            )
            self.fields[f"purpose_{perm}"] = forms.CharField(
                required=False,
                max_length=1000,
                initial=purpose,
                label="Purpose, in plain words (shown to people on the consent screen)",
            )
            self.fields[f"retention_{perm}"] = forms.IntegerField(
                required=False,
                min_value=1,
                max_value=3650,
                initial=retention,
                label="Retention (days)",
            )

    def rows(self) -> list[dict[str, Any]]:
        return [
            {
                "permission": perm,
                "request": self[f"request_{perm}"],
                "purpose": self[f"purpose_{perm}"],
                "retention": self[f"retention_{perm}"],
                "review": PERMISSIONS[perm].review,
                "agreement": PERMISSIONS[perm].agreement,
            }
            for perm in DECLARABLE
        ]

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        declared = []
        for perm in DECLARABLE:
            if not data.get(f"request_{perm}"):
                continue
            purpose = (data.get(f"purpose_{perm}") or "").strip()
            retention = data.get(f"retention_{perm}")
            if not purpose:
                self.add_error(f"purpose_{perm}", "Say why the app needs this.")
            if retention is None:
                self.add_error(f"retention_{perm}", "Say how long the app keeps the data.")
            if purpose and retention:
                declared.append(Declaration(perm, purpose, retention))
        if not declared and not self.errors:
            raise forms.ValidationError("Request at least one permission.")
        needs_signature = any(PERMISSIONS[d.permission].agreement for d in declared)
        if needs_signature and not (data.get("signer_name") or "").strip():
            self.add_error(
                "signer_name",
                "user_likes and user_posts need the data-use agreement: type your name to sign.",
            )
        data["declared"] = declared
        return data
