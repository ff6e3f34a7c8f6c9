"""The Accounting API (`/api.xro/2.0/…`): routes, business rules and rendering."""
