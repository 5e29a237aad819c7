"""Cloud Function ``regenerate`` (/v1/regenerate)."""

import flask
import functions_framework

from shared.api.http import dispatch


@functions_framework.http
def regenerate(request: flask.Request) -> flask.Response:
    return dispatch("regenerate", request)
