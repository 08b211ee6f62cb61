from django.urls import path

from purchases_project.api_docs import docs_urlpatterns
from purchases_project.web.urls import signin_urlpatterns
from storefront import apis, pages

urlpatterns = [
    # Bearer tokens only: BrowserSessionMiddleware runs no session and no CSRF check here.
    path("buy", apis.PurchaseCreateApi.as_view(), name="purchase-create"),
    path("getAllUserBuys/<str:userid>", apis.UserPurchaseListApi.as_view(), name="user-purchases"),
    path("getSpending/<str:userid>", apis.UserSpendingApi.as_view(), name="user-spending"),
    path("health", apis.HealthApi.as_view(), name="storefront-health"),
    path("", pages.CustomerPage.as_view(), name="customer-page"),
    *signin_urlpatterns,
    *docs_urlpatterns(
        title="Purchase storefront",
        description=(
            "Record purchases; read a user's purchases and spending per month. Every request carries "
            "a bearer token (JWT) from the OpenID Connect issuer: customers record and read their "
            "own purchases; the scope purchases:read-all reads anyone's. Use Authorize to set a token."
        ),
        hooks=("storefront.schema.add_purchase_create",),
    ),
]

handler400 = "purchases_project.errors.handler400"
handler404 = "purchases_project.errors.handler404"
handler500 = "purchases_project.errors.handler500"
