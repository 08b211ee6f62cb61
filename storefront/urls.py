from django.urls import path

from purchases_project.api_docs import docs_urlpatterns
from storefront import apis

urlpatterns = [
    path("buy", apis.PurchaseCreateApi.as_view(), name="purchase-create"),
    path("getAllUserBuys/<str:userid>", apis.UserPurchaseListApi.as_view(), name="user-purchases"),
    path("health", apis.HealthApi.as_view(), name="storefront-health"),
    *docs_urlpatterns(
        title="Purchase storefront",
        description=(
            "Record purchases and read a user's purchases. Customers are authenticated by the "
            "operator's gateway in front of this API; it does not authenticate them itself."
        ),
        hooks=("storefront.schema.add_purchase_create",),
    ),
]

handler400 = "purchases_project.errors.handler400"
handler404 = "purchases_project.errors.handler404"
handler500 = "purchases_project.errors.handler500"
