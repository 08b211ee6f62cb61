"""URLs for a process without a web role (management commands): nothing to serve."""

urlpatterns: list = []

handler400 = "purchases_project.errors.handler400"
handler404 = "purchases_project.errors.handler404"
handler500 = "purchases_project.errors.handler500"
