"""Forms of the staff console, the public abuse report and the developer's audit answer."""

from __future__ import annotations

from typing import Any

from django import forms
from django.utils.translation import gettext_lazy as _

from consentry.incidents.models import AbuseReport
from consentry.oauth.models import Application, AppStatus


class CaseForm(forms.Form):
    summary = forms.CharField(
        label="What is being investigated",
        max_length=2000,
        required=False,
        widget=forms.Textarea(attrs={"rows": 2}),
    )


class AuditForm(forms.Form):
    questions = forms.CharField(
        label="What the developer must answer",
        max_length=5000,
        widget=forms.Textarea(attrs={"rows": 3}),
    )
    days = forms.IntegerField(label="Days to answer", min_value=1, max_value=90, initial=14)


class BanForm(forms.Form):
    reason = forms.CharField(label="Reason (goes into the incident report)", max_length=2000)
    confirm = forms.BooleanField(
        label="I understand: every grant and token of this app is revoked now and every "
        "affected person is notified.",
    )


class AttestationForm(forms.Form):
    statement = forms.CharField(
        label="The developer's deletion statement",
        max_length=5000,
        widget=forms.Textarea(attrs={"rows": 2}),
    )
    attested_on = forms.DateTimeField(
        label="Attested at (UTC, blank for now)", required=False, help_text="YYYY-MM-DD HH:MM"
    )


class TriageForm(forms.Form):
    status = forms.ChoiceField(choices=AbuseReport.Status.choices)
    case = forms.IntegerField(label="Case number", required=False, min_value=1, max_value=2**62)
    reward_amount = forms.DecimalField(
        label="Reward amount", required=False, min_value=0, max_digits=10, decimal_places=2
    )
    staff_note = forms.CharField(
        label="Note", required=False, max_length=5000, widget=forms.Textarea(attrs={"rows": 2})
    )


class AbuseReportForm(forms.Form):
    OTHER = ""
    app = forms.ChoiceField(label=_("Which app?"), required=False)
    app_name = forms.CharField(
        label=_("Or name the app if it is not in the list"), max_length=200, required=False
    )
    description = forms.CharField(
        label=_("What did the app do with people's data?"),
        max_length=10_000,
        widget=forms.Textarea(attrs={"rows": 6}),
    )
    contact_email = forms.EmailField(
        label=_("Your email address (optional, for questions and a reward)"), required=False
    )

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        apps = Application.objects.exclude(status=AppStatus.DEVELOPMENT).order_by("name")
        self.fields["app"].choices = [  # type: ignore[attr-defined]
            (self.OTHER, _("Another app (name it below)")),
            *((str(a.pk), a.name) for a in apps),
        ]

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        if not data.get("app") and not (data.get("app_name") or "").strip():
            self.add_error("app_name", _("Choose the app or write its name."))
        return data

    def chosen_app(self) -> tuple[int | None, str]:
        raw = self.cleaned_data.get("app") or ""
        if raw:
            app = Application.objects.filter(pk=int(raw)).first()
            if app is not None:
                return app.pk, app.name
        return None, self.cleaned_data["app_name"].strip()


class AuditAnswerForm(forms.Form):
    answer = forms.CharField(
        label="Your answer", max_length=20_000, widget=forms.Textarea(attrs={"rows": 8})
    )
