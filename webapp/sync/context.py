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
    """The practice's default organisation: its first active Xero connection."""
    return db.session.scalar(
        select(XeroConnection)
        .where(XeroConnection.practice_id == practice_id, XeroConnection.status == "active")
        .order_by(XeroConnection.id)
    )


def settings_for(practice: Practice, connection: XeroConnection | None = None) -> PracticeSettings:
    """The practice's settings, with the organisation's own default accounts over the practice's."""
    own = {k: v for k, v in ((connection.settings or {}) if connection is not None else {}).items() if v}
    return PracticeSettings.from_dict({"time_zone": practice.time_zone, **(practice.settings or {}), **own})


def mapping_rows(practice_id: int, connection_id: int | None) -> list[Mapping]:
    """The practice-wide mapping rows, each replaced by the organisation's own row for the same item."""
    rows = db.session.scalars(select(Mapping).where(
        Mapping.practice_id == practice_id,
        Mapping.connection_id.is_(None) if connection_id is None
        else (Mapping.connection_id.is_(None) | (Mapping.connection_id == connection_id)))
        .order_by(Mapping.connection_id.nulls_first(), Mapping.id)).all()
    merged: dict[tuple[str, str], Mapping] = {}
    for row in rows:
        merged[(row.kind, row.cliniko_id)] = row
    return list(merged.values())


def load(practice: Practice, connection: XeroConnection | None = None) -> PracticeContext:
    """Load settings (SettingsError on bad ones), mappings, the Xero lists and the catalogue, for one of the
    practice's organisations (default: its first active connection)."""
    if connection is None:
        connection = active_connection(practice.id)
    settings = settings_for(practice, connection)
    rows = mapping_rows(practice.id, connection.id if connection is not None else None)
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
