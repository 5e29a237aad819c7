"""Cloud Function ``me`` (/v1/me: account export and deletion)."""

import flask
import functions_framework

from shared.api.http import dispatch
from shared.bootstrap import check_startup

# A bad setting stops this instance at cold start, naming the variable (connects nothing).
check_startup()


@functions_framework.http
def me(request: flask.Request) -> flask.Response:
    return dispatch("me", request)
