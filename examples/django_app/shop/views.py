"""Views: ``GET /items/<id>`` answers; ``POST /checkout/2`` raises, as in the FastAPI example."""

from django.http import Http404, HttpRequest, JsonResponse
from django.views.decorators.csrf import csrf_exempt

_ITEMS = {1: {"id": 1, "name": "widget"}, 2: {"id": 2, "name": "gadget"}}


class CheckoutError(RuntimeError):
    """A domain error the example raises on purpose."""


def get_item(request: HttpRequest, item_id: int) -> JsonResponse:
    item = _ITEMS.get(item_id)
    if item is None:
        raise Http404("no such item")
    return JsonResponse(item)


@csrf_exempt
def checkout(request: HttpRequest, item_id: int) -> JsonResponse:
    item = _ITEMS.get(item_id)
    if item is None:
        raise Http404("no such item")
    if item["name"] == "gadget":
        raise CheckoutError(f"price service returned nothing for item {item['id']}")
    return JsonResponse({"item": item, "total": 9.99})
