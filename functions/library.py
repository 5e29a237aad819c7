"""Cloud Function ``library`` (/v1/library/assets)."""

import flask
import functions_framework

from shared.api.http import dispatch


@functions_framework.http
def library(request: flask.Request) -> flask.Response:
    return dispatch("library", request)
