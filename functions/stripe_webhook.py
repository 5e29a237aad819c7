"""Cloud Function ``stripe-webhook`` (/webhooks/stripe)."""

import flask
import functions_framework

from shared.api.http import dispatch


@functions_framework.http
def stripe_webhook(request: flask.Request) -> flask.Response:
    return dispatch("stripe-webhook", request)
