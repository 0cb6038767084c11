"""Runs pika against Weir (argument: the amqp:// URL) and prints what it saw
as JSON; clients_test.go checks it."""
import decimal
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

# TTL: a per-message expiration and a queue's x-message-ttl drop messages;
# with a dead-letter exchange they are dead-lettered as "expired".
ch.queue_declare("py-ttl", durable=True)
ch.basic_publish("", "py-ttl", b"short", pika.BasicProperties(expiration="100"))
ch.basic_publish("", "py-ttl", b"long", pika.BasicProperties(expiration="60000"))
ch.queue_declare("py-ttl-dl", durable=True, arguments={"x-message-ttl": 100, "x-dead-letter-exchange": "py-dlx"})
ch.basic_publish("", "py-ttl-dl", b"stale")
time.sleep(0.5)
left = []
while True:
    method, props, body = ch.basic_get("py-ttl", auto_ack=True)
    if method is None:
        break
    left.append(body.decode())
res["ttl_left"] = left
expired = None
deadline = time.time() + 10
while expired is None and time.time() < deadline:
    method, props, body = ch.basic_get("py-dead", auto_ack=True)
    if method is None:
        time.sleep(0.1)
        continue
    deaths = (props.headers or {}).get("x-death") or []
    expired = {"body": body.decode(), "reason": deaths[0].get("reason") if deaths else None}
res["expired"] = expired

# Header types come back as published.
ch.queue_declare("py-typed", durable=True)
ch.basic_publish("", "py-typed", b"t", pika.BasicProperties(headers={"n": 5, "big": 2**40, "flag": True, "s": "text", "d": decimal.Decimal("-12.34")}))
method, props, body = ch.basic_get("py-typed", auto_ack=True)
h = props.headers or {}
res["typed_ok"] = (h.get("n") == 5 and isinstance(h.get("n"), int) and h.get("big") == 2**40 and h.get("flag") is True
                   and h.get("s") in ("text", b"text") and h.get("d") == decimal.Decimal("-12.34"))

# RPC over direct reply-to: the requester consumes amq.rabbitmq.reply-to
# (no-ack) and publishes with that reply-to; a responder on another channel
# answers to the reply-to it sees.
ch.queue_declare("py-rpc", durable=True)
replies = []
rpc = conn.channel()
rpc.basic_consume("amq.rabbitmq.reply-to", lambda c, m, p, b: replies.append((p.correlation_id, b.decode())), auto_ack=True)
rpc.basic_publish("", "py-rpc", b"ping", pika.BasicProperties(reply_to="amq.rabbitmq.reply-to", correlation_id="rpc-1"))
server = conn.channel()
request = None
deadline = time.time() + 10
while request is None and time.time() < deadline:
    request = server.basic_get("py-rpc", auto_ack=True)
    if request[0] is None:
        request = None
        time.sleep(0.05)
if request is not None:
    method, props, body = request
    res["rpc_reply_to_rewritten"] = props.reply_to != "amq.rabbitmq.reply-to" and props.reply_to != ""
    server.basic_publish("", props.reply_to, b"pong:" + body, pika.BasicProperties(correlation_id=props.correlation_id))
deadline = time.time() + 10
while not replies and time.time() < deadline:
    conn.process_data_events(time_limit=0.1)
res["rpc"] = replies

# Transactions: a rolled-back publish is dropped, a committed one kept.
tx = conn.channel()
tx.queue_declare("py-tx", durable=True)
tx.tx_select()
tx.basic_publish("", "py-tx", b"rolled-back")
tx.tx_rollback()
tx.basic_publish("", "py-tx", b"committed")
before = tx.queue_declare("py-tx", passive=True).method.message_count
tx.tx_commit()
after = tx.queue_declare("py-tx", passive=True).method.message_count
method, props, body = tx.basic_get("py-tx", auto_ack=False)
tx.basic_ack(method.delivery_tag)
tx.tx_rollback()  # the ack is dropped: closing the channel requeues the message
tx.close()
tx = conn.channel()
tx.tx_select()
method, props, body = tx.basic_get("py-tx", auto_ack=False)
redelivered = method is not None and method.redelivered
if method is not None:
    tx.basic_ack(method.delivery_tag)
tx.tx_commit()
tx.close()
left = ch.basic_get("py-tx", auto_ack=True)[0] is not None
res["tx"] = {"before": before, "after": after, "body": body.decode() if body else None, "redelivered": redelivered, "left": left}
conn.close()
print(json.dumps(res))
