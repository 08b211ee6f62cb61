"""Sign-in URLs, the same on both web roles."""

from django.urls import path

from purchases_project.web import signin

signin_urlpatterns = [
    path("login/", signin.login, name="login"),
    path("login/callback/", signin.callback, name="login-callback"),
    path("logout/", signin.logout, name="logout"),
]
