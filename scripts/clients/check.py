"""scripts/clients.sh's check of the Python client that openapi-python-client
generates from the served OpenAPI document (package idemgate_client beside
it): mypy --strict accepts this file only if the status fields are enums and
the operation's response body is the union of the recorded bodies; run
against the live idemgate dev, it decodes each recorded body once.

Usage: python check.py <base URL> <API key> <unique tag>
"""

import sys
import time
from uuid import UUID

from idemgate_client import AuthenticatedClient
from idemgate_client.api.operations import get_operation
from idemgate_client.api.payments import create_payment
from idemgate_client.models import (
    CreatePaymentRequest,
    GatewayOrdersCreateRequest,
    Operation,
    OperationStatus,
    Payment,
    PaymentStatus,
    Pending,
    PendingStatus,
    Problem,
    RecordedResponse,
)
from idemgate_client.types import UNSET, Unset


def command(client: AuthenticatedClient, key: str, amount: int, prefer: str | Unset) -> Operation:
    """Creates a payment and returns its completed operation."""
    body = CreatePaymentRequest(amount=amount, currency="EUR", customer="cus_clients")
    answer = create_payment.sync(client=client, body=body, idempotency_key=key, prefer=prefer)
    if isinstance(answer, Payment):
        op_id: UUID = answer.operation_id
    elif isinstance(answer, Pending):
        pending: PendingStatus = answer.status
        if pending != PendingStatus.PENDING:
            raise SystemExit(f"python client: 202 with status {pending}")
        op_id = answer.operation_id
    else:
        raise SystemExit(f"python client: POST /v1/payments answered {answer!r}")
    deadline = time.monotonic() + 60
    while True:
        op = get_operation.sync(op_id, client=client)
        if not isinstance(op, Operation):
            raise SystemExit(f"python client: GET /v1/operations/{op_id} answered {op!r}")
        status: OperationStatus = op.status
        if status == OperationStatus.COMPLETED:
            return op
        if time.monotonic() > deadline:
            raise SystemExit(f"python client: operation {op_id} still pending")
        time.sleep(0.1)


def recorded(op: Operation) -> RecordedResponse:
    if isinstance(op.response, Unset):
        raise SystemExit("python client: a completed operation without its response")
    return op.response


def main(base: str, key: str, tag: str) -> None:
    client = AuthenticatedClient(base_url=base, token=key, raise_on_unexpected_status=True)

    paid = recorded(command(client, f"py-{tag}-ok", 1000, "wait=10"))
    payment = paid.body
    if paid.status != 201 or not isinstance(payment, Payment):
        raise SystemExit(f"python client: payment recorded {paid.status} {payment!r}")
    succeeded: PaymentStatus = payment.status
    if succeeded != PaymentStatus.SUCCEEDED or payment.amount != 1000 or payment.currency != "EUR":
        raise SystemExit(f"python client: payment {payment!r}")

    declined = recorded(command(client, f"py-{tag}-declined", 2000000, UNSET))
    problem = declined.body
    if declined.status != 402 or not isinstance(problem, Problem) or not problem.type_.endswith("/payment-declined"):
        raise SystemExit(f"python client: declined payment recorded {declined.status} {problem!r}")

    order = GatewayOrdersCreateRequest(sku="sku-1", quantity=2)
    if order.to_dict() != {"sku": "sku-1", "quantity": 2}:
        raise SystemExit(f"python client: order {order.to_dict()}")
    print(f"python client: payment {payment.id} ({succeeded}), declined payment ({problem.type_})")


if __name__ == "__main__":
    if len(sys.argv) != 4:
        raise SystemExit("usage: check.py <base URL> <API key> <unique tag>")
    main(sys.argv[1], sys.argv[2], sys.argv[3])
