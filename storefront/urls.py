from django.urls import path

from storefront import apis

urlpatterns = [
    path("buy", apis.PurchaseCreateApi.as_view(), name="purchase-create"),
    path("getAllUserBuys/<str:userid>", apis.UserPurchaseListApi.as_view(), name="user-purchases"),
    path("health", apis.HealthApi.as_view(), name="storefront-health"),
]

handler404 = "purchases_project.errors.handler404"
handler500 = "purchases_project.errors.handler500"
