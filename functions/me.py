"""Cloud Function ``me`` (/v1/me: account export and deletion)."""

import flask
import functions_framework

from shared.api.http import dispatch


@functions_framework.http
def me(request: flask.Request) -> flask.Response:
    return dispatch("me", request)
