"""Cloud Function ``billing`` (/v1/billing/)."""

import flask
import functions_framework

from shared.api.http import dispatch


@functions_framework.http
def billing(request: flask.Request) -> flask.Response:
    return dispatch("billing", request)
