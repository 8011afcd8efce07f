"""The CRM: caller record prefetch and write-back."""

from __future__ import annotations

from pydantic import Field
from pydantic_settings import BaseSettings

from bot.setting_types import CRMName, Flag, Secret


class CRMSettings(BaseSettings):
    """The CRM: caller record prefetch and write-back."""

    crm: CRMName = Field(
        default="sqlite",
        validation_alias="CALLAGENT_CRM",
        description=(
            "Caller CRM: sqlite (embedded, CALLAGENT_CRM_DB), rest (any HTTP CRM, CRM_REST_*), "
            "hubspot (HUBSPOT_ACCESS_TOKEN) or none."
        ),
    )
    crm_db: str = Field(
        default="",
        validation_alias="CALLAGENT_CRM_DB",
        description="Embedded CRM file; empty = <CALLAGENT_DATA_DIR>/crm.db.",
    )
    crm_seed_demo: Flag = Field(
        default=True,
        validation_alias="CALLAGENT_CRM_SEED_DEMO",
        description=(
            "Seed the embedded CRM with the reference agent's demo customers when it is empty "
            "(set false in production)."
        ),
    )
    crm_prefetch_budget_ms: int = Field(
        default=500,
        validation_alias="CALLAGENT_CRM_PREFETCH_BUDGET_MS",
        description=(
            "The call goes on without the caller's record after this long "
            "(a late one is still used)."
        ),
    )
    crm_timeout_secs: float = Field(
        default=2.0,
        validation_alias="CRM_TIMEOUT_SECS",
        description="Per-request timeout of the REST and HubSpot CRMs.",
    )
    crm_retries: int = Field(
        default=2,
        validation_alias="CRM_RETRIES",
        description="Retries of a failed REST/HubSpot CRM request (429, 5xx, network).",
    )
    crm_rest_lookup_url: str = Field(
        default="",
        validation_alias="CRM_REST_LOOKUP_URL",
        description=(
            "REST CRM lookup URL template, e.g. https://crm.example.com/api/customers?phone={phone}."
        ),
    )
    crm_rest_write_url: str = Field(
        default="",
        validation_alias="CRM_REST_WRITE_URL",
        description=(
            "REST CRM write-back webhook (POST JSON), e.g. https://crm.example.com/api/"
            "customers/{customer_id}/events; empty = no write-back."
        ),
    )
    crm_rest_auth_header: Secret = Field(
        default="",
        validation_alias="CRM_REST_AUTH_HEADER",
        description="Header sent to the REST CRM, e.g. 'Authorization: Bearer abc123'.",
    )
    crm_rest_field_map: str = Field(
        default="",
        validation_alias="CRM_REST_FIELD_MAP",
        description=(
            "REST CRM JSON -> record fields, e.g. 'record=data,first_name=firstName,"
            "appointments=upcoming,appointments[].starts_at=start' "
            "(see integrations/crm/rest_crm.py)."
        ),
    )
    hubspot_access_token: Secret = Field(
        default="",
        validation_alias="HUBSPOT_ACCESS_TOKEN",
        description="HubSpot private app token (CRM scopes).",
    )
    hubspot_api_base_url: str = Field(
        default="https://api.hubapi.com",
        validation_alias="HUBSPOT_API_BASE_URL",
        description="HubSpot API root (a local fake in tests).",
    )
