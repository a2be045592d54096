"""What every Goldwire service process shares (presence, sessions, activity): API-key
auth, the health, readiness and metrics routes, a supervised arq worker, and the
process entry point. Each service keeps only its own logic."""

from goldwire.service.clients import redis_clients
from goldwire.service.http import add_health_routes, api_key_checker, prometheus_text
from goldwire.service.jobs import run_supervised
from goldwire.service.process import run_service

__all__ = ["add_health_routes", "api_key_checker", "prometheus_text", "redis_clients",
           "run_service",
           "run_supervised"]
