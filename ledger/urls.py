from django.urls import path

from ledger import apis

urlpatterns = [
    path("purchases/<str:userid>", apis.UserPurchaseListApi.as_view(), name="ledger-purchases"),
    path("health", apis.HealthApi.as_view(), name="ledger-health"),
]

handler404 = "purchases_project.errors.handler404"
handler500 = "purchases_project.errors.handler500"
