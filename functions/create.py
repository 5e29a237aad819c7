"""Cloud Function ``create`` (/v1/create)."""

import flask
import functions_framework

from shared.api.http import dispatch


@functions_framework.http
def create(request: flask.Request) -> flask.Response:
    return dispatch("create", request)
