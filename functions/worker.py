"""Cloud Function ``worker`` (/worker/)."""

import flask
import functions_framework

from shared.api.http import dispatch


@functions_framework.http
def worker(request: flask.Request) -> flask.Response:
    return dispatch("worker", request)
