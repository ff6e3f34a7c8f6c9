"""Everything the mapper needs about one practice, loaded once per poll or push."""

from __future__ import annotations

from dataclasses import dataclass, field

from sqlalchemy import select

from webapp.extensions import db
from webapp.models import Mapping, Practice, XeroAccount, XeroConnection, XeroTaxRate, XeroTrackingOption
from webapp.sync import catalogue
from webapp.sync.settings import Mappings, PracticeSettings, XeroRefs
from webapp.sync.snapshot import from_json


@dataclass
class PracticeContext:
    """A practice with its parsed settings, mappings, Xero lists and Cliniko catalogue."""

    practice: Practice
    settings: PracticeSettings
    mappings: Mappings
    refs: XeroRefs
    connection: XeroConnection | None
    businesses: dict[str, dict] = field(default_factory=dict)
    practitioners: dict[str, dict] = field(default_factory=dict)
    #: Kept as a plain value: reading practice.id after a commit would reload the row every time.
    practice_id: int = 0

    def __post_init__(self) -> None:
        self.practice_id = self.practice_id or self.practice.id


def active_connection(practice_id: int) -> XeroConnection | None:
    """The practice's first active Xero connection."""
    return db.session.scalar(
        select(XeroConnection)
        .where(XeroConnection.practice_id == practice_id, XeroConnection.status == "active")
        .order_by(XeroConnection.id)
    )


def load(practice: Practice) -> PracticeContext:
    """Load settings (SettingsError on bad ones), mappings, the Xero lists and the catalogue."""
    settings = PracticeSettings.from_dict({"time_zone": practice.time_zone, **(practice.settings or {})})
    connection = active_connection(practice.id)
    rows = db.session.scalars(select(Mapping).where(Mapping.practice_id == practice.id)).all()
    if connection is not None:
        options = db.session.scalars(
            select(XeroTrackingOption).where(XeroTrackingOption.connection_id == connection.id)).all()
        accounts = db.session.scalars(select(XeroAccount).where(XeroAccount.connection_id == connection.id)).all()
        rates = db.session.scalars(select(XeroTaxRate).where(XeroTaxRate.connection_id == connection.id)).all()
        refs = XeroRefs.from_rows(accounts, rates) if accounts else XeroRefs()
    else:
        options, refs = [], XeroRefs()
    return PracticeContext(
        practice=practice,
        settings=settings,
        mappings=Mappings.from_rows(rows, options),
        refs=refs,
        connection=connection,
        businesses={k: from_json(v) for k, v in catalogue.lookup(practice.id, "business").items()},
        practitioners={k: from_json(v) for k, v in catalogue.lookup(practice.id, "practitioner").items()},
    )
