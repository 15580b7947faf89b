"""ShipOrder: books the parcel with the carrier and returns its tracking number.

The carrier is simulated: the tracking number is derived from the order id, so a run is
repeatable.
"""

import hashlib


def handler(event, context):
    order_id = event["order_id"]
    tracking = "SC" + hashlib.sha256(order_id.encode()).hexdigest()[:10].upper()
    parcels = sum(item["quantity"] for item in event["items"])
    print(f"order {order_id}: {parcels} item(s) shipped, tracking {tracking}")
    return {"tracking_number": tracking, "carrier": "SecureCart Post", "estimated_days": 3}
