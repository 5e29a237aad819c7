"""Cloud Function ``usage`` (/v1/usage)."""

import flask
import functions_framework

from shared.api.http import dispatch


@functions_framework.http
def usage(request: flask.Request) -> flask.Response:
    return dispatch("usage", request)
