"""ValidateOrder: checks an order and returns it in one normalised shape, with its total.

Input: the order itself (`securecart run`), or the EventBridge `OrderPlaced` event whose
`detail` is the order (the `order_placed` rule). A bad order raises `InvalidOrderError`,
which the workflow catches and sends to its `OrderRejected` state.
"""


class InvalidOrderError(Exception):
    """The order cannot be processed as placed (its errorType in Step Functions)."""


def _order_of(event):
    # EventBridge delivers the whole event; the order is its detail.
    if isinstance(event, dict) and "detail-type" in event and "detail" in event:
        return event["detail"]
    return event


def handler(event, context):
    order = _order_of(event)
    if not isinstance(order, dict):
        raise InvalidOrderError("an order is a JSON object")
    problems = []
    order_id = order.get("order_id")
    if not isinstance(order_id, str) or not order_id.strip():
        problems.append("order_id is missing")
    customer = order.get("customer")
    email = customer.get("email") if isinstance(customer, dict) else None
    if not isinstance(email, str) or "@" not in email:
        problems.append("customer.email is not an email address")
    items = order.get("items")
    clean_items = []
    if not isinstance(items, list) or not items:
        problems.append("the order has no items")
    else:
        for i, item in enumerate(items):
            if not isinstance(item, dict):
                problems.append(f"items[{i}] is not an object")
                continue
            sku, qty, price = item.get("sku"), item.get("quantity"), item.get("unit_price")
            if not isinstance(sku, str) or not sku:
                problems.append(f"items[{i}].sku is missing")
            if not isinstance(qty, int) or isinstance(qty, bool) or qty < 1:
                problems.append(f"items[{i}].quantity must be a whole number of at least 1")
            if not isinstance(price, (int, float)) or isinstance(price, bool) or price < 0:
                problems.append(f"items[{i}].unit_price must be a price of at least 0")
            clean_items.append({"sku": sku, "quantity": qty, "unit_price": price})
    payment = order.get("payment")
    if not isinstance(payment, dict) or not payment.get("token"):
        problems.append("payment.token is missing")
    if problems:
        raise InvalidOrderError("; ".join(problems))
    total = round(sum(i["quantity"] * i["unit_price"] for i in clean_items), 2)
    print(f"order {order_id}: {len(clean_items)} item(s), total {total}")
    return {
        "order_id": order_id,
        "customer": {"name": customer.get("name", ""), "email": email},
        "items": clean_items,
        "payment": {"method": payment.get("method", "card"), "token": payment["token"]},
        "currency": order.get("currency", "EUR"),
        "total": total,
    }
