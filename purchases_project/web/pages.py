"""Pages both web roles share: the ledger's home page (what it is, who is signed in)."""

from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.views import View

from purchases_project import identity
from purchases_project.middleware import private_answers


@private_answers
class ServiceHome(View):
    """`GET /` on the ledger: where its browsable pages and docs are, and sign-in."""

    http_method_names = ["get", "head"]

    def get(self, request: HttpRequest) -> HttpResponse:
        who = identity.session_principal(request)
        return render(request, "web/ledger_home.html", {"who": who, "title": "Purchase ledger"})
