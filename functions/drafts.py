"""Cloud Function ``drafts`` (/v1/drafts/)."""

import flask
import functions_framework

from shared.api.http import dispatch


@functions_framework.http
def drafts(request: flask.Request) -> flask.Response:
    return dispatch("drafts", request)
