"""The customer page, `GET /` on the storefront: a person's own purchases in a browser.

Signed out: what the service is, and "Sign in". Signed in (`identity.session_principal`,
the bearer check on the session's access token): a form that records a purchase through
/buy's own rules and service, the history newest first and paged, the all-time count and
total, and spending per month as a chart with a table beside it. Support staff
(`purchases:read-all`) open anyone's page read-only with `/?userid=<id>`; others get 403.
The history and months come from the ledger with the customer's token, as for the API.
A recorded purchase redirects (303) back to the page, so a reload never records it twice,
and the form's one-time Idempotency-Key makes a double submit record it once.
"""

from __future__ import annotations

import time
import uuid
from urllib.parse import parse_qs, urlsplit

from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import render
from django.utils.http import urlencode
from django.views import View

from purchases_project import identity
from purchases_project.api_docs import FORBIDDEN_READ
from purchases_project.errors import json_error
from purchases_project.middleware import private_answers
from purchases_project.rules import InvalidPurchase, parse_userid
from storefront import chart, ledger_client, services
from storefront.apis import purchase_parse
from storefront.producer import PublishError

PAGE_SIZE = 10
# After recording, the page waits this long at most for the consumer to store the purchase.
RECORDED_WAIT_S = 2.0
TITLE = "Purchases"


def _ledger(fetch, **kwargs) -> tuple[dict | None, str | None]:
    """(body, None) from the ledger, or (None, what to tell the person)."""
    try:
        status, body = fetch(**kwargs)
    except ledger_client.LedgerTimeout:
        return None, "The ledger did not answer in time; reload the page to try again."
    except ledger_client.LedgerUnavailable:
        return None, "The ledger is unavailable; reload the page to try again."
    if status != 200:
        return None, str(body.get("error", f"The ledger answered {status}"))
    return body, None


def _cursor(next_url: str | None) -> str | None:
    if not next_url:
        return None
    return parse_qs(urlsplit(next_url).query).get("cursor", [None])[0]


@private_answers
class CustomerPage(View):
    http_method_names = ["get", "post", "head"]

    def get(self, request: HttpRequest) -> HttpResponse:
        who = identity.session_principal(request)
        if who is None:
            return self._render(request, "storefront/welcome.html", {"who": None})
        userid = request.GET.get("userid") or who.userid
        try:
            parse_userid(userid)
        except InvalidPurchase as exc:
            return json_error(str(exc), 400)
        if not who.may_read(userid):
            return json_error(FORBIDDEN_READ, 403)
        return self._customer(request, who, userid, form={}, error=None)

    def post(self, request: HttpRequest) -> HttpResponse:
        # Django's CSRF middleware has already refused a post without the page's token (403 JSON).
        who = identity.session_principal(request)
        if who is None:
            return HttpResponseRedirect("/login/?next=/")
        form = {name: request.POST.get(name, "").strip() for name in ("username", "price")}
        # An empty field is a missing one, as /buy names it.
        data = {name: value for name, value in form.items() if value}
        data["userid"] = who.userid
        key = request.POST.get("key") or None
        try:
            username, userid, price = purchase_parse(data, idempotency_key=key)
            event = services.purchase_publish(
                username=username, userid=userid, price=price, idempotency_key=key
            )
        except InvalidPurchase as exc:
            return self._customer(request, who, who.userid, form=form, error=str(exc))
        except PublishError:
            message = "Purchase could not be recorded: the broker is unavailable"
            return self._customer(request, who, who.userid, form=form, error=message)
        return HttpResponseRedirect("/?" + urlencode({"recorded": event.purchase_id}), status=303)

    def _customer(self, request, who, userid: str, *, form: dict, error: str | None) -> HttpResponse:
        own = userid == who.userid
        cursor = request.GET.get("cursor")
        params = {"order": "desc", "limit": str(PAGE_SIZE), **({"cursor": cursor} if cursor else {})}
        recorded = request.GET.get("recorded") if own and not cursor else None
        deadline = time.monotonic() + RECORDED_WAIT_S
        while True:
            history, history_error = _ledger(
                ledger_client.user_purchases_fetch, userid=userid, params=params, token=who.token
            )
            listed = history and any(p["purchase_id"] == recorded for p in history["purchases"])
            if not recorded or history is None or listed or time.monotonic() > deadline:
                break
            time.sleep(0.1)
        spending, spending_error = _ledger(
            ledger_client.user_spending_fetch, userid=userid, params={}, token=who.token
        )
        next_cursor = _cursor(history["next"]) if history else None
        base = {"userid": userid} if not own else {}
        context = {
            "who": who,
            "userid": userid,
            "own": own,
            "form": form,
            "error": error,
            "key": uuid.uuid4().hex,
            "recorded": recorded,
            "recorded_listed": bool(recorded and history and listed),
            "history": history,
            "history_error": history_error,
            "spending_error": spending_error,
            "count": (history or spending or {}).get("count"),
            "total_spent": (history or spending or {}).get("total_spent"),
            "bars": chart.month_bars(spending["months"]) if spending else [],
            "months": list(reversed(spending["months"])) if spending else [],
            "chart": {"width": chart.WIDTH, "height": chart.HEIGHT, "axis": chart.HEIGHT - chart.BOTTOM},
            "first_page": not cursor,
            "newest_url": "/?" + urlencode(base) if base else "/",
            "older_url": "/?" + urlencode({**base, "cursor": next_cursor}) if next_cursor else None,
        }
        return self._render(request, "storefront/customer.html", context)

    @staticmethod
    def _render(request, template: str, context: dict) -> HttpResponse:
        return render(request, template, {"title": TITLE, "next_path": "/", **context})
