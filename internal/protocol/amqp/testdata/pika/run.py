"""Runs pika against Weir (argument: the amqp:// URL) and prints what it saw
as JSON; clients_test.go checks it."""
import json
import sys
import time

import pika

res = {}
conn = pika.BlockingConnection(pika.URLParameters(sys.argv[1]))
ch = conn.channel()
ch.confirm_delivery()

ch.exchange_declare("py-dlx", "fanout", durable=True)
ch.queue_declare("py-dead", durable=True)
ch.queue_bind("py-dead", "py-dlx")
ch.queue_declare("py-work", durable=True, arguments={"x-dead-letter-exchange": "py-dlx"})

for i in range(10):
    ch.basic_publish("", "py-work", b"m%d" % i,
                     pika.BasicProperties(delivery_mode=2, content_type="text/plain", correlation_id="c%d" % i),
                     mandatory=True)
res["confirmed"] = 10

# Mandatory return: pika raises UnroutableError on the confirm.
try:
    ch.basic_publish("amq.direct", "nowhere", b"bounce", mandatory=True)
    res["returned"] = False
except pika.exceptions.UnroutableError:
    res["returned"] = True

# Prefetch 3, manual acks; reject every third to the dead-letter exchange,
# requeue the first one once.
ch.basic_qos(prefetch_count=3)
state = {"outstanding": 0, "max": 0, "acked": 0, "rejected": 0, "requeued": 0, "redelivered": 0, "props_ok": True}
pending = []

def on_message(channel, method, props, body):
    state["outstanding"] += 1
    state["max"] = max(state["max"], state["outstanding"])
    i = int(body[1:])
    if props.correlation_id != "c%d" % i or props.content_type != "text/plain":
        state["props_ok"] = False
    pending.append((method, i))

ch.basic_consume("py-work", on_message, auto_ack=False)
deadline = time.time() + 20
while state["acked"] + state["rejected"] < 10 and time.time() < deadline:
    conn.process_data_events(time_limit=0.1)
    while pending:
        method, i = pending.pop(0)
        state["outstanding"] -= 1
        if method.redelivered:
            state["redelivered"] += 1
        if i == 0 and state["requeued"] == 0:
            ch.basic_nack(method.delivery_tag, requeue=True)
            state["requeued"] += 1
        elif i % 3 == 0:
            ch.basic_reject(method.delivery_tag, requeue=False)
            state["rejected"] += 1
        else:
            ch.basic_ack(method.delivery_tag)
            state["acked"] += 1
res.update(state)

dead = []
deadline = time.time() + 10
while len(dead) < state["rejected"] and time.time() < deadline:
    method, props, body = ch.basic_get("py-dead", auto_ack=True)
    if method is None:
        time.sleep(0.1)
        continue
    deaths = (props.headers or {}).get("x-death") or []
    dead.append({"body": body.decode(), "reason": deaths[0].get("reason") if deaths else None})
res["dead"] = dead

# Exclusive server-named queue.
q = ch.queue_declare("", exclusive=True)
res["server_named"] = q.method.queue.startswith("amq.gen-")
conn.close()
print(json.dumps(res))
