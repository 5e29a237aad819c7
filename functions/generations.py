"""Cloud Function ``generations`` (/v1/generations/)."""

import flask
import functions_framework

from shared.api.http import dispatch


@functions_framework.http
def generations(request: flask.Request) -> flask.Response:
    return dispatch("generations", request)
