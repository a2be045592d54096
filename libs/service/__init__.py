"""What every Goldwire service process shares (presence, sessions, activity): API-key
auth, the health, readiness and metrics routes, a supervised arq worker, and the
process entry point. Each service keeps only its own logic."""

from goldwire.service.clients import redis_clients, redis_from_url
from goldwire.service.http import (
    add_health_routes,
    api_key_checker,
    ascii_validation_errors,
    document_error_details,
)
from goldwire.service.jobs import cron_name, each_record, job_id, run_supervised
from goldwire.service.process import freeze_startup_heap, run_service
from goldwire.store.lua import run_loading_scripts

__all__ = [
    "add_health_routes",
    "api_key_checker",
    "ascii_validation_errors",
    "cron_name",
    "document_error_details",
    "each_record",
    "freeze_startup_heap",
    "job_id",
    "redis_clients",
    "redis_from_url",
    "run_loading_scripts",
    "run_service",
    "run_supervised",
]
