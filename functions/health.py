"""Cloud Function ``health`` (/healthz, /readyz, /openapi.json)."""

import flask
import functions_framework

from shared.api.http import dispatch


@functions_framework.http
def health(request: flask.Request) -> flask.Response:
    return dispatch("health", request)
