"""Cloud Function ``admin`` (/v1/admin/)."""

import flask
import functions_framework

from shared.api.http import dispatch


@functions_framework.http
def admin(request: flask.Request) -> flask.Response:
    return dispatch("admin", request)
