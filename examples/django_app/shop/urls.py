from django.urls import path

from shop import views

urlpatterns = [
    path("items/<int:item_id>", views.get_item),
    path("checkout/<int:item_id>", views.checkout),
]
