"""The console's forms (WTForms through Flask-WTF).

CSRF is checked once for every console POST by the blueprint (``CSRFProtect.protect`` in
:mod:`gateway.console.auth`), also for the few forms that have no class here (logout, redeliver), so the
forms themselves do not add a second token. Every field has a label and a translated error message.
"""

from __future__ import annotations

from typing import Any

from flask_babel import lazy_gettext
from flask_wtf import FlaskForm
from wtforms import (
    BooleanField,
    IntegerField,
    PasswordField,
    SelectChoice,
    SelectField,
    StringField,
    TextAreaField,
)
from wtforms.validators import DataRequired, Length, NumberRange, Optional, Regexp, ValidationError

from gateway.domain.money import MAX_AMOUNT
from gateway.services.staff import MAX_PASSWORD, MIN_PASSWORD, ROLES


class ConsoleForm(FlaskForm):
    class Meta:
        csrf = False  # checked for every console POST by the blueprint


_REQUIRED = lazy_gettext("This field is required.")


class VndField(IntegerField):
    """A whole number of VND; ``5.000.000``, ``5,000,000``, ``5 000 000 ₫`` all read as 5000000."""

    def process_formdata(self, valuelist: list[Any]) -> None:
        if not valuelist:
            return
        raw = str(valuelist[0])
        cleaned = raw.replace(".", "").replace(",", "").replace(" ", "").replace("₫", "").strip()
        if not cleaned.isdigit():
            self.data = None
            raise ValueError(lazy_gettext("Enter a whole number of đồng."))
        self.data = int(cleaned)


class LoginForm(ConsoleForm):
    email = StringField(lazy_gettext("Email"), validators=[DataRequired(message=_REQUIRED), Length(max=200)])
    password = PasswordField(
        lazy_gettext("Password"), validators=[DataRequired(message=_REQUIRED), Length(max=MAX_PASSWORD)]
    )
    # Only sent when the user has a second factor: on the second page, or with the password at once.
    totp = StringField(lazy_gettext("One-time code"), validators=[Optional(), Length(max=10)])


class TotpForm(ConsoleForm):
    totp = StringField(
        lazy_gettext("One-time code"), validators=[DataRequired(message=_REQUIRED), Length(max=10)]
    )


class RefundForm(ConsoleForm):
    amount = VndField(
        lazy_gettext("Amount (VND)"),
        validators=[
            DataRequired(message=_REQUIRED),
            NumberRange(min=1, max=MAX_AMOUNT, message=lazy_gettext("Enter an amount greater than zero.")),
        ],
    )
    reason = TextAreaField(
        lazy_gettext("Reason"), validators=[DataRequired(message=_REQUIRED), Length(max=1000)]
    )


class RejectForm(ConsoleForm):
    note = StringField(lazy_gettext("Note"), validators=[Optional(), Length(max=500)])


class BankTransferForm(ConsoleForm):
    bank_transfer_ref = StringField(
        lazy_gettext("Bank transfer reference"),
        validators=[DataRequired(message=_REQUIRED), Length(max=100)],
    )


def _strong(_form: Any, field: Any) -> None:
    if field.data and len(field.data) < MIN_PASSWORD:
        raise ValidationError(lazy_gettext("Use at least 12 characters."))


class UserCreateForm(ConsoleForm):
    email = StringField(
        lazy_gettext("Email"),
        validators=[
            DataRequired(message=_REQUIRED),
            Regexp(r"^[^@\s]+@[^@\s]+\.[^@\s]+$", message=lazy_gettext("Enter a valid email address.")),
            Length(max=200),
        ],
    )
    role = SelectField(lazy_gettext("Role"), choices=[SelectChoice(r) for r in ROLES])
    password = PasswordField(
        lazy_gettext("Initial password"),
        validators=[DataRequired(message=_REQUIRED), _strong, Length(max=MAX_PASSWORD)],
    )


class PasswordChangeForm(ConsoleForm):
    current_password = PasswordField(
        lazy_gettext("Current password"), validators=[DataRequired(message=_REQUIRED)]
    )
    new_password = PasswordField(
        lazy_gettext("New password"),
        validators=[DataRequired(message=_REQUIRED), _strong, Length(max=MAX_PASSWORD)],
    )


class ClientCreateForm(ConsoleForm):
    name = StringField(
        lazy_gettext("Portal name"), validators=[DataRequired(message=_REQUIRED), Length(max=200)]
    )
    webhook_url = StringField(lazy_gettext("Webhook URL"), validators=[Optional(), Length(max=2000)])
    finance = BooleanField(lazy_gettext("Also grant read access to reconciliation (finance scope)"))


class RotateForm(ConsoleForm):
    overlap_hours = IntegerField(
        lazy_gettext("Overlap (hours)"),
        default=24,
        validators=[
            Optional(),
            NumberRange(min=0, max=720, message=lazy_gettext("Enter between 0 and 720 hours.")),
        ],
    )


class ItemActionForm(ConsoleForm):
    """Resolve, reopen or query a reconciliation item: a reason is required for every action."""

    reason = TextAreaField(
        lazy_gettext("Reason"), validators=[DataRequired(message=_REQUIRED), Length(max=1000)]
    )


class ManualMatchForm(ItemActionForm):
    """Match an item by hand with its counterpart (choices: the open exceptions on the other side)."""

    counterpart = SelectField(
        lazy_gettext("Counterpart"),
        choices=[],
        validators=[DataRequired(message=lazy_gettext("Choose the counterpart."))],
    )
