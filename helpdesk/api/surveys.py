"""Surveys: the customer's public page (`/surveys/<token>`, no login) and supervisors' list."""

from __future__ import annotations

from html import escape
from typing import Any

from flask import Blueprint, Response, current_app, jsonify, request

from helpdesk.api.common import UNSTORABLE, json_body, paginate, query_args, storable
from helpdesk.api.security import requires
from helpdesk.api.v1 import bp as v1
from helpdesk.errors import ApiError, Invalid
from helpdesk.models import SURVEY_KINDS, Survey
from helpdesk.schemas.surveys import (
    SurveyAnswerSchema,
    SurveyFormSchema,
    SurveyListSchema,
    survey_answer_out_schema,
    survey_schema,
)
from helpdesk.services.outbound import surveys

bp = Blueprint("surveys", __name__)
FORM_TYPES = ("application/x-www-form-urlencoded", "multipart/form-data")
# The token in the URL is the customer's key: keep it out of referrers and caches.
PAGE_HEADERS = {"Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'; "
                                           "form-action 'self'",
                "Referrer-Policy": "no-referrer", "Cache-Control": "no-store"}
PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Your feedback</title>
<style>body{{font-family:sans-serif;max-width:32rem;margin:2rem auto;padding:0 1rem}}
label{{margin-right:.6rem}}textarea{{width:100%}}</style></head>
<body><h1>{question}</h1>{body}</body></html>
"""
THANKS = "<p>Thank you: your answer is recorded. You can close this page.</p>"
# What the ends of each scale mean, shown beside the choices.
SCALE_ENDS = {"csat": ("very dissatisfied", "very satisfied"),
              "ces": ("very difficult", "very easy"),
              "nps": ("not at all likely", "extremely likely")}


@bp.get("/surveys/<token>")
def survey_page(token: str) -> Response:
    survey = surveys.by_token(token)
    return Response(_page(survey), content_type="text/html; charset=utf-8",
                    headers=PAGE_HEADERS)


@bp.post("/surveys/<token>")
def answer_survey(token: str):
    data = _answer_body()
    survey = surveys.answer(token, data["score"], data.get("comment"))
    if request.is_json:
        return jsonify(survey_answer_out_schema.dump(survey))
    # A browser posted the page's form: it gets a page back, not JSON.
    return Response(PAGE.format(question="Thank you", body=THANKS),
                    content_type="text/html; charset=utf-8", headers=PAGE_HEADERS)


@v1.get("/surveys")
@requires("supervisor")
def list_surveys():
    args = query_args(SurveyListSchema())
    return jsonify(paginate(surveys.search(args), args["page"], args["per_page"],
                            survey_schema))


def _answer_body() -> dict[str, Any]:
    """JSON or the page's form: 415 otherwise, 413 too large, 400 invalid."""
    if request.is_json:
        return json_body(SurveyAnswerSchema())
    if request.mimetype not in FORM_TYPES:
        raise ApiError(415, "send a form or JSON", "unsupported_media_type")
    limit = current_app.config["MAX_WEBHOOK_BYTES"]
    if (request.content_length or 0) > limit:
        raise ApiError(413, f"body larger than {limit} bytes", "too_large")
    form = request.form.to_dict()
    bad = [name for name, value in form.items() if not (storable(name) and storable(value))]
    if bad:
        raise Invalid("invalid form", {name if storable(name) else "_body": [UNSTORABLE]
                                       for name in bad})
    return SurveyFormSchema().load(form)


def _page(survey: Survey) -> str:
    question = escape(surveys.question(survey.kind))
    if survey.status == "answered":
        body = "<p>Thank you: your answer is recorded.</p>"
    elif survey.status != "sent":
        body = "<p>This survey is closed.</p>"
    else:
        body = _form(survey.kind)
    return PAGE.format(question=question, body=body)


def _form(kind: str) -> str:
    low, high = SURVEY_KINDS[kind]
    low_means, high_means = SCALE_ENDS[kind]
    choices = "".join(f'<label><input type="radio" name="score" value="{n}" required> {n}'
                      "</label>" for n in range(low, high + 1))
    return (f'<form method="post"><p>{choices}</p>'
            f'<p class="scale">{low} = {low_means}, {high} = {high_means}</p>'
            '<p><textarea name="comment" rows="4" maxlength="5000" '
            'placeholder="Anything you would like to add? (optional)"></textarea></p>'
            '<p><button type="submit">Send</button></p></form>')
