"""Template context for every page: whether browser sign-in is on."""

from django.http import HttpRequest

from purchases_project.web import signin


def signin_state(request: HttpRequest) -> dict:
    return {"signin_enabled": signin.enabled()}
