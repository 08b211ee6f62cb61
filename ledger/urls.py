from django.urls import path

from ledger import apis
from purchases_project.api_docs import docs_urlpatterns
from purchases_project.web.pages import ServiceHome
from purchases_project.web.urls import signin_urlpatterns

urlpatterns = [
    path("purchases/<str:userid>", apis.UserPurchaseListApi.as_view(), name="ledger-purchases"),
    path("spending/<str:userid>", apis.UserSpendingApi.as_view(), name="ledger-spending"),
    path("health", apis.HealthApi.as_view(), name="ledger-health"),
    path("", ServiceHome.as_view(), name="ledger-home"),
    *signin_urlpatterns,
    *docs_urlpatterns(
        title="Purchase ledger (internal)",
        description=(
            "A user's purchases from MongoDB: pages oldest or newest first, all-time count and "
            "total; their spending per month."
        ),
    ),
]

handler400 = "purchases_project.errors.handler400"
handler404 = "purchases_project.errors.handler404"
handler500 = "purchases_project.errors.handler500"
