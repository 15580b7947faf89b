"""UpdateInventory: takes the ordered items out of stock and publishes one
`InventoryLevelChanged` event (source `securecart.inventory`) per item on the shop's
event bus. The `low_stock` rule routes the events with `low_stock: true` to the restock
queue.

A real shop keeps its stock in a database; this lab uses a fixed table so that every run
behaves the same: ordering 3 posters (6 in stock) always leaves a low stock of 3.
"""

import json
import os

import boto3

STOCK = {"SKU-MUG": 40, "SKU-TEE": 12, "SKU-POSTER": 6, "SKU-CAP": 25}

events = boto3.client("events")


def handler(event, context):
    threshold = int(os.environ.get("LOW_STOCK_THRESHOLD", "5"))
    levels, entries = [], []
    for item in event["items"]:
        on_hand = STOCK.get(item["sku"], 0)
        remaining = max(on_hand - item["quantity"], 0)
        level = {
            "order_id": event["order_id"],
            "sku": item["sku"],
            "reserved": item["quantity"],
            "remaining": remaining,
            "low_stock": remaining <= threshold,
        }
        levels.append(level)
        entries.append(
            {
                "EventBusName": os.environ["EVENT_BUS_ARN"],
                "Source": "securecart.inventory",
                "DetailType": "InventoryLevelChanged",
                "Detail": json.dumps(level),
            }
        )
    for start in range(0, len(entries), 10):  # PutEvents takes at most 10 entries
        out = events.put_events(Entries=entries[start : start + 10])
        if out.get("FailedEntryCount"):
            raise RuntimeError(f"EventBridge refused {out['FailedEntryCount']} event(s): {out['Entries']}")
    low = [l["sku"] for l in levels if l["low_stock"]]
    print(f"order {event['order_id']}: stock updated, low: {low or 'none'}")
    return {"levels": levels, "low_stock": low}
