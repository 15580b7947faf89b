"""ProcessPayment: charges an order and records the payment on the payments queue, from
where the settlement service (not part of this lab) books it; messages it cannot handle
end in the queue's dead-letter queue.

Test tokens, like a payment provider's sandbox:
  tok_visa          approved
  tok_gateway_busy  the gateway is busy on the first 2 attempts (PaymentGatewayBusyError,
                    which the workflow retries with backoff), then approved
  tok_declined      declined for good (PaymentDeclinedError, not retried: the workflow
                    catches it and notifies support)

Input: {"order": <validated order>, "attempt": <$$.State.RetryCount>}. The attempt number
comes from Step Functions, so the transient failure is deterministic.
"""

import hashlib
import json
import os

import boto3

BUSY_ATTEMPTS = 2

sqs = boto3.client("sqs")


class PaymentGatewayBusyError(Exception):
    """A transient failure: trying again later may succeed."""


class PaymentDeclinedError(Exception):
    """The card was declined: trying again will not help."""


def handler(event, context):
    order = event["order"]
    attempt = int(event.get("attempt", 0))
    order_id = order["order_id"]
    token = order["payment"]["token"]
    print(f"order {order_id}: charging {order['total']} {order['currency']}, attempt {attempt + 1}")
    if token == "tok_declined":
        raise PaymentDeclinedError(f"the card for order {order_id} was declined")
    if token == "tok_gateway_busy" and attempt < BUSY_ATTEMPTS:
        raise PaymentGatewayBusyError(
            f"the payment gateway is busy (attempt {attempt + 1} of order {order_id}); try again"
        )
    payment_id = "pay_" + hashlib.sha256(order_id.encode()).hexdigest()[:12]
    record = {
        "payment_id": payment_id,
        "order_id": order_id,
        "amount": order["total"],
        "currency": order["currency"],
        "attempts": attempt + 1,
    }
    sqs.send_message(QueueUrl=os.environ["PAYMENTS_QUEUE_URL"], MessageBody=json.dumps(record))
    return {**record, "status": "CAPTURED"}
