"""Builds the process's CRM adapter from the settings (embedded SQLite, REST or HubSpot)."""

from __future__ import annotations

from pathlib import Path

from bot.settings import Settings, SettingsError
from integrations.crm.base import CRM


def crm_db_path(settings: Settings) -> Path:
    """The embedded CRM's file."""
    return Path(settings.crm_db).expanduser() if settings.crm_db else settings.data_dir / "crm.db"


def make_crm(settings: Settings) -> CRM | None:
    """The CRM the settings choose (None for ``CALLAGENT_CRM=none``).

    Raises:
        SettingsError: naming a malformed CRM setting.
    """
    if settings.crm == "sqlite":
        from integrations.crm.sqlite_crm import SQLiteCRM

        return SQLiteCRM(crm_db_path(settings), seed_demo=settings.crm_seed_demo)
    if settings.crm == "rest":
        from integrations.crm.rest_crm import FieldMapError, RestCRM, parse_field_map

        try:
            field_map = parse_field_map(settings.crm_rest_field_map)
        except FieldMapError as e:
            raise SettingsError([f"CRM_REST_FIELD_MAP: {e}"]) from e
        headers: dict[str, str] = {}
        if settings.crm_rest_auth_header:
            name, _, value = settings.crm_rest_auth_header.partition(":")
            headers[name.strip()] = value.strip()
        return RestCRM(
            settings.crm_rest_lookup_url,
            write_url=settings.crm_rest_write_url,
            headers=headers,
            field_map=field_map,
            timeout_s=settings.crm_timeout_secs,
            retries=settings.crm_retries,
        )
    if settings.crm == "hubspot":
        from integrations.crm.hubspot_crm import HubSpotCRM

        return HubSpotCRM(
            settings.hubspot_access_token,
            base_url=settings.hubspot_api_base_url,
            timeout_s=settings.crm_timeout_secs,
            retries=settings.crm_retries,
        )
    return None
