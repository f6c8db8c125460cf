"""A consumer of idemgate's topics that is not written in Go.

scripts/interop.sh runs it to prove that a Python service reads idemgate's
events with the ordinary libraries: kafka-python (pure Python, no codec
library beside it) and the CloudEvents Python SDK's Kafka binding.

It reads <prefix>.commands and <prefix>.results from their start to their
current end, parses every record as a CloudEvent in binary mode (ce_*
headers, content-type header, JSON data), checks each event's attributes
and data, and checks that the operation given with --operation-id was
accepted on the commands topic and completed on the results topic.

Exit status: 0 on success; 1 with one line on any failure; 3 with one line
when kafka-python cannot decompress the records (a codec it needs an extra
library for), which scripts/interop.sh expects of snappy.
"""

import argparse
import json
import sys
import time
from importlib.metadata import version

from cloudevents.core.bindings.kafka import KafkaMessage, from_binary
from cloudevents.core.formats.json import JSONFormat
from kafka import KafkaConsumer, TopicPartition
from kafka.errors import UnsupportedCodecError

SPECVERSION = "1.0"
SOURCE = "/idemgate"
CONTENT_TYPE = "application/json"
TYPES = {
    "commands": "dev.idemgate.command.accepted.v1",
    "results": "dev.idemgate.command.completed.v1",
}


class Failure(Exception):
    """A check that failed; its message is the one line printed."""


def read_topic(brokers, topic, deadline):
    """Every record of topic, from its start to its end offsets now."""
    consumer = KafkaConsumer(
        bootstrap_servers=brokers.split(","),
        group_id=None,
        enable_auto_commit=False,
        client_id="idemgate-interop",
    )
    try:
        partitions = None
        while not partitions:
            partitions = consumer.partitions_for_topic(topic)
            if time.monotonic() > deadline:
                raise Failure(f"topic {topic} has no partitions (does it exist?)")
            if not partitions:
                time.sleep(0.2)
        tps = [TopicPartition(topic, p) for p in sorted(partitions)]
        consumer.assign(tps)
        consumer.seek_to_beginning(*tps)
        ends = consumer.end_offsets(tps)
        records = []
        while any(consumer.position(tp) < ends[tp] for tp in tps):
            if time.monotonic() > deadline:
                got = sum(consumer.position(tp) for tp in tps)
                raise Failure(f"read {got} of {sum(ends.values())} records of {topic} in time")
            for batch in consumer.poll(timeout_ms=500).values():
                records.extend(batch)
        return records
    finally:
        consumer.close()


def parse(record, kind):
    """The record as a CloudEvent, its attributes and data checked."""
    where = f"{record.topic}[{record.partition}]@{record.offset}"
    headers = {}
    for key, value in record.headers:
        if key in headers:
            raise Failure(f"{where}: header {key} appears twice")
        headers[key] = value
    # The SDK fills in a missing id (a new UUID): the headers are checked
    # first, so that only what idemgate wrote counts.
    for required in ("ce_specversion", "ce_id", "ce_type", "ce_source", "content-type"):
        if not headers.get(required):
            raise Failure(f"{where}: no {required} header")
    if headers["ce_specversion"] != SPECVERSION.encode():
        raise Failure(f"{where}: ce_specversion header is {headers['ce_specversion']!r}, not 1.0")
    try:
        event = from_binary(KafkaMessage(headers=headers, key=record.key, value=record.value), JSONFormat())
    except Exception as e:  # the SDK's validation errors name the attribute
        raise Failure(f"{where}: not a CloudEvent: {type(e).__name__}: {e}".replace("\n", " ")) from e
    checks = [
        ("specversion", event.get_specversion(), SPECVERSION),
        ("type", event.get_type(), TYPES[kind]),
        ("source", event.get_source(), SOURCE),
        ("datacontenttype", event.get_datacontenttype(), CONTENT_TYPE),
    ]
    for name, got, want in checks:
        if got != want:
            raise Failure(f"{where}: {name} is {got!r}, want {want!r}")
    if event.get_id() != headers["ce_id"].decode():
        raise Failure(f"{where}: id {event.get_id()!r} is not the ce_id header {headers['ce_id']!r}")
    data = event.get_data()
    if not isinstance(data, dict) or data != json.loads(record.value):
        raise Failure(f"{where}: data is not the JSON object of the record's value: {record.value[:80]!r}")
    if not data.get("operation_id"):
        raise Failure(f"{where}: data has no operation_id")
    if kind == "commands" and event.get_id() != data["operation_id"]:
        raise Failure(f"{where}: command event id {event.get_id()!r} is not its operation_id {data['operation_id']!r}")
    if kind == "results" and not event.get_id().startswith(data["operation_id"] + ":completed:"):
        raise Failure(f"{where}: result event id {event.get_id()!r} does not name operation {data['operation_id']!r}")
    if event.get_subject() != data.get("operation"):
        raise Failure(f"{where}: subject {event.get_subject()!r} is not the operation {data.get('operation')!r}")
    return event, data


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--brokers", required=True)
    ap.add_argument("--prefix", required=True, help="IDEMGATE_TOPIC_PREFIX")
    ap.add_argument("--operation-id", required=True, help="an operation that must be accepted and completed")
    ap.add_argument("--timeout", type=float, default=60)
    args = ap.parse_args()
    deadline = time.monotonic() + args.timeout
    events = {}
    for kind in ("commands", "results"):
        topic = f"{args.prefix}.{kind}"
        records = read_topic(args.brokers, topic, deadline)
        if not records:
            raise Failure(f"{topic} is empty")
        events[kind] = [parse(r, kind) for r in records]
    commands = [d for e, d in events["commands"] if d["operation_id"] == args.operation_id]
    results = [d for e, d in events["results"] if d["operation_id"] == args.operation_id]
    if not commands:
        raise Failure(f"no command event for operation {args.operation_id} among {len(events['commands'])}")
    if not results:
        raise Failure(f"no result event for operation {args.operation_id} among {len(events['results'])}")
    cmd, res = commands[0], results[0]
    for field in ("tenant", "operation", "idempotency_key"):
        if cmd[field] != res[field]:
            raise Failure(f"operation {args.operation_id}: {field} {cmd[field]!r} in the command, {res[field]!r} in the result")
    print(
        f"interop: OK: kafka-python {version('kafka-python')} and cloudevents {version('cloudevents')} parsed "
        f"{len(events['commands'])} command and {len(events['results'])} result events as CloudEvents 1.0; "
        f"operation {args.operation_id} ({cmd['operation']}) accepted and completed with status {res['status']}"
    )


if __name__ == "__main__":
    try:
        main()
    except UnsupportedCodecError as e:
        print(f"interop: UNSUPPORTED CODEC: kafka-python cannot decompress the records: {e}".replace("\n", " "))
        sys.exit(3)
    except Failure as e:
        print(f"interop: FAIL: {e}")
        sys.exit(1)
    except Exception as e:
        print(f"interop: FAIL: {type(e).__name__}: {e}".replace("\n", " "))
        sys.exit(1)
