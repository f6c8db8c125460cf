// scripts/clients.sh's check of the TypeScript types that
// openapi-typescript generates from the served OpenAPI document (./api.d.ts
// beside it): tsc --strict accepts this file only if the status fields are
// unions of literals, the operation's response body is the union of the
// recorded bodies, and each gateway route's body follows its schema.
import type { components, paths } from "./api";

type Schemas = components["schemas"];
type Operation = Schemas["Operation"];
type RecordedBody = Schemas["RecordedBody"];
type Payment = Schemas["Payment"];
type Refund = Schemas["Refund"];
type Problem = Schemas["Problem"];

// Exact type equality: Equal<string, "a"> is false.
type Equal<A, B> = (<T>() => T extends A ? 1 : 2) extends <T>() => T extends B ? 1 : 2 ? true : false;
const assertType = <T extends true>(): T => true as T;

assertType<Equal<Operation["status"], "pending" | "outcome_unknown" | "completed">>();
assertType<Equal<Schemas["Pending"]["status"], "pending" | "outcome_unknown">>();
assertType<Equal<Payment["status"], "succeeded">>();
assertType<Equal<Refund["status"], "succeeded">>();
assertType<Equal<Schemas["Liveness"]["status"], "ok">>();
assertType<Equal<Schemas["Readiness"]["status"], "ready" | "degraded">>();
assertType<Equal<paths["/v1/operations/{operationID}"]["get"]["responses"][200]["content"]["application/json"], Operation>>();
assertType<Equal<paths["/v1/payments"]["post"]["responses"][201]["content"]["application/json"], Payment>>();
assertType<Equal<paths["/v1/payments"]["post"]["parameters"]["header"]["Prefer"], string | undefined>>();

function isPayment(b: RecordedBody): b is Payment {
  return typeof b === "object" && b !== null && !Array.isArray(b) && "currency" in b && "refunded_amount" in b;
}
function isRefund(b: RecordedBody): b is Refund {
  return typeof b === "object" && b !== null && !Array.isArray(b) && "payment_id" in b;
}
function isProblem(b: RecordedBody): b is Problem {
  return typeof b === "object" && b !== null && !Array.isArray(b) && "type" in b && "detail" in b;
}

// What a client does with GET /v1/operations/{id}: one decode, then the
// body read by its fields.
export function describe(op: Operation): string {
  const status: "pending" | "outcome_unknown" | "completed" = op.status;
  if (status === "outcome_unknown") {
    return `outcome unknown ${op.operation_id}: an operator must redrive it`;
  }
  if (status === "pending" || op.response === undefined) {
    return `pending ${op.operation_id}`;
  }
  const code: number = op.response.status;
  const body = op.response.body;
  if (isPayment(body)) {
    const s: "succeeded" = body.status;
    const amount: number = body.amount;
    const description: string | null = body.description;
    return `${code} payment ${body.id} ${s} ${amount} ${body.currency} ${description ?? ""}`;
  }
  if (isRefund(body)) {
    return `${code} refund ${body.id} of ${body.payment_id}: ${body.amount}`;
  }
  if (isProblem(body)) {
    const problemStatus: number = body.status;
    return `${code} problem ${body.type} ${problemStatus}: ${body.detail}`;
  }
  if (typeof body === "string") {
    return `${code} upstream text ${body.length} characters`;
  }
  const attempts: number | undefined = op.upstream?.attempts;
  return `${code} upstream JSON ${JSON.stringify(body)} after ${attempts ?? 0} attempts`;
}

// Bodies a gateway route accepts follow the route's schema.
type Order = Schemas["GatewayOrdersCreateRequest"];
export const order: Order = { sku: "sku-1", quantity: 2, note: "gift" };
// @ts-expect-error quantity is required by order.schema.json
export const incomplete: Order = { sku: "sku-1" };
// @ts-expect-error quantity is an integer, not a string
export const wrongType: Order = { sku: "sku-1", quantity: "2" };
assertType<Equal<paths["/v1/orders"]["post"]["requestBody"], { content: { "application/json": Order } }>>();

// Upstream answers of any JSON shape are recorded bodies too.
export const bodies: RecordedBody[] = ["plain text", 3, true, null, [1, "a"], { any: "object" }];
// @ts-expect-error a Payment's status is "succeeded"
export const badPayment: Payment["status"] = "failed";
